//! The compile loop: on any change of a compiler input, wait for the burst to settle
//! (debounce), compile everything with `gatehouse_api::compile`, diff the snapshots by version,
//! and publish the result. Consumers (push, workloads, status) see every [`Published`]; `changed`
//! names the gateways whose snapshot differs from the previous publication.

use crate::grant_secrets::GrantSecret;
use crate::index::Index;
use crate::metrics::Metrics;
use gatehouse_api::config::{GatewayConfig, GatewayId};
use gatehouse_api::{Compiled, Resources};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One compilation, as published to the controllers.
#[derive(Debug, Default)]
pub struct Published {
    /// Increases with every publication; 0 means "nothing compiled yet".
    pub seq: u64,
    /// The inputs it was compiled from.
    pub resources: Arc<Resources>,
    /// The result.
    pub compiled: Arc<Compiled>,
    /// Per-user consent grant Secrets, for the gateways' Roles.
    pub grant_secrets: Arc<BTreeSet<GrantSecret>>,
    /// Gateways whose snapshot is new or has a new version.
    pub changed: BTreeSet<GatewayId>,
    /// Gateways that had a snapshot before and have none now.
    pub removed: BTreeSet<GatewayId>,
    /// When compilation finished (push latency is measured from here).
    pub at: Option<Instant>,
}

impl Published {
    /// The current snapshot of a gateway, if it compiled.
    pub fn snapshot(&self, id: &GatewayId) -> Option<&GatewayConfig> {
        self.compiled.gateways.get(id)
    }
}

/// Which snapshots changed version, and which disappeared.
pub fn diff(
    old: &BTreeMap<GatewayId, GatewayConfig>,
    new: &BTreeMap<GatewayId, GatewayConfig>,
) -> (BTreeSet<GatewayId>, BTreeSet<GatewayId>) {
    let changed = new
        .iter()
        .filter(|(id, c)| old.get(*id).map(|o| &o.version) != Some(&c.version))
        .map(|(id, _)| id.clone())
        .collect();
    let removed = old
        .keys()
        .filter(|id| !new.contains_key(*id))
        .cloned()
        .collect();
    (changed, removed)
}

/// A channel of publications, starting with an empty one (`seq == 0`).
pub fn channel() -> (
    watch::Sender<Arc<Published>>,
    watch::Receiver<Arc<Published>>,
) {
    watch::channel(Arc::new(Published::default()))
}

/// Longest a burst of changes can postpone a compilation.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Waits for the caches, then compiles on every (debounced) change, forever.
pub async fn run(
    index: Index,
    tx: watch::Sender<Arc<Published>>,
    metrics: Arc<Metrics>,
    debounce: Duration,
) {
    index.wait_ready().await;
    metrics.set_ready();
    let mut changes = index.config_changes();
    changes.mark_unchanged();
    let mut seq = 0;
    loop {
        let resources = index.resources();
        let grant_secrets = index.grant_secrets();
        let started = Instant::now();
        let compiled = gatehouse_api::compile(&resources);
        let took = started.elapsed();
        metrics.compile_duration.observe(took.as_secs_f64());
        metrics.reconciled("snapshots");
        let prev = tx.borrow().clone();
        let (changed, removed) = diff(&prev.compiled.gateways, &compiled.gateways);
        seq += 1;
        tracing::info!(
            seq,
            objects = compiled.statuses.len(),
            gateways = compiled.gateways.len(),
            changed = changed.len(),
            removed = removed.len(),
            took_us = took.as_micros() as u64,
            "compiled"
        );
        tx.send_replace(Arc::new(Published {
            seq,
            resources: Arc::new(resources),
            compiled: Arc::new(compiled),
            grant_secrets: Arc::new(grant_secrets),
            changed,
            removed,
            at: Some(Instant::now()),
        }));
        if !settle(&mut changes, debounce).await {
            return;
        }
    }
}

/// Waits for a change, then until no further change arrives for `debounce` (at most
/// [`MAX_DELAY`] after the first). Returns false when the index is gone.
pub async fn settle(changes: &mut watch::Receiver<u64>, debounce: Duration) -> bool {
    if changes.changed().await.is_err() {
        return false;
    }
    let first = Instant::now();
    loop {
        changes.mark_unchanged();
        tokio::time::sleep(debounce).await;
        if !changes.has_changed().unwrap_or(false) || first.elapsed() >= MAX_DELAY {
            changes.mark_unchanged();
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_api::refs::ObjectKey;

    fn mk(name: &str, version: &str) -> (GatewayId, GatewayConfig) {
        let id = GatewayId::Gateway {
            key: ObjectKey::new("ns", name),
        };
        let mut c: GatewayConfig = serde_json::from_value(serde_json::json!({
            "version": version, "gateway": {"kind": "gateway", "namespace": "ns", "name": name},
            "listener": {"port": 8080}, "session": {"ttlSeconds": 1}, "audit": {"sink": "stdout"},
            "trustProviders": [], "servers": [], "credentialProviders": [], "policies": [],
            "secrets": []
        }))
        .unwrap();
        c.version = version.into();
        (id, c)
    }

    #[test]
    fn diff_reports_new_changed_and_removed_only() {
        let old = BTreeMap::from([mk("a", "1"), mk("b", "1"), mk("c", "1")]);
        let new = BTreeMap::from([mk("a", "1"), mk("b", "2"), mk("d", "1")]);
        let (changed, removed) = diff(&old, &new);
        let names =
            |s: &BTreeSet<GatewayId>| s.iter().map(crate::names::workload).collect::<Vec<_>>();
        assert_eq!(names(&changed), ["b", "d"]);
        assert_eq!(names(&removed), ["c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_are_coalesced() {
        let (tx, mut rx) = watch::channel(0u64);
        let sender = tokio::spawn(async move {
            for i in 0..5 {
                tx.send_replace(i);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            tx.send_replace(99);
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let t = tokio::time::Instant::now();
        assert!(settle(&mut rx, Duration::from_millis(100)).await);
        // one settle for the whole burst of five, ~100 ms after the last
        assert!(
            t.elapsed() >= Duration::from_millis(220),
            "{:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(settle(&mut rx, Duration::from_millis(100)).await);
        assert_eq!(*rx.borrow(), 99);
        sender.await.unwrap();
    }
}
