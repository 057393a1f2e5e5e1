//! Connected gateway replicas and what each reported (ACK/NACK), shared between the push server
//! (which writes it) and the status controller (which turns it into `Programmed`).
//!
//! Every operator replica serves push streams, but only the leader writes status: each replica
//! therefore also publishes what its own streams reported ([`crate::fleet_sync`]), and the
//! leader merges the other replicas' fresh views into its own ([`Fleet::set_remote`]).

use gatehouse_api::config::GatewayId;
use gatehouse_api::push::StatusReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What one operator replica knows: gateway → pod → replica.
pub type View = BTreeMap<GatewayId, BTreeMap<String, Replica>>;

/// One replica (pod) of a gateway deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Open snapshot streams from this pod (normally 0 or 1).
    pub streams: usize,
    /// The last version it ACKed.
    pub applied: Option<String>,
    /// The last version it NACKed, and why; cleared by a later ACK.
    pub rejected: Option<(String, String)>,
}

/// How a gateway's replicas stand with respect to one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// No replica is connected.
    NoReplicas,
    /// `applied` of `connected` replicas ACKed the version; none NACKed it.
    Applying {
        /// Replicas that applied it.
        applied: usize,
        /// Connected replicas.
        connected: usize,
    },
    /// Every connected replica applied it.
    Applied {
        /// Connected replicas.
        connected: usize,
    },
    /// A replica rejected it.
    Rejected {
        /// The pod.
        pod: String,
        /// Its reason.
        reason: String,
    },
}

/// Every known replica of every gateway, with change notifications.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Mutex<View>>,
    /// Other operator replicas' views, by operator identity.
    remote: Arc<Mutex<BTreeMap<String, View>>>,
    changes: Arc<watch::Sender<u64>>,
    local_changes: Arc<watch::Sender<u64>>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            remote: Arc::default(),
            changes: Arc::new(watch::channel(0).0),
            local_changes: Arc::new(watch::channel(0).0),
        }
    }
}

/// Keeps a replica counted as connected while alive.
pub struct Connection {
    fleet: Fleet,
    id: GatewayId,
    pod: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.fleet.update(|all| {
            if let Some(pods) = all.get_mut(&self.id) {
                if let Some(r) = pods.get_mut(&self.pod) {
                    r.streams = r.streams.saturating_sub(1);
                    if r.streams == 0 {
                        pods.remove(&self.pod);
                    }
                }
                if pods.is_empty() {
                    all.remove(&self.id);
                }
            }
        });
    }
}

impl Fleet {
    fn update(&self, f: impl FnOnce(&mut View)) {
        f(&mut self.inner.lock().expect("fleet lock"));
        self.changes.send_modify(|n| *n += 1);
        self.local_changes.send_modify(|n| *n += 1);
    }

    /// What this operator replica's own streams know (published for the leader).
    pub fn local_view(&self) -> View {
        self.inner.lock().expect("fleet lock").clone()
    }

    /// Replace the other operator replicas' views (only fresh ones should be passed); wakes
    /// the status controller when anything changed.
    pub fn set_remote(&self, views: BTreeMap<String, View>) {
        let mut remote = self.remote.lock().expect("fleet lock");
        if *remote != views {
            *remote = views;
            drop(remote);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Bumped only when this replica's own streams change (connect, disconnect, report).
    pub fn subscribe_local(&self) -> watch::Receiver<u64> {
        self.local_changes.subscribe()
    }

    /// Registers an open stream from `pod`; it counts until the returned guard drops.
    pub fn connect(&self, id: &GatewayId, pod: &str) -> Connection {
        self.update(|all| {
            all.entry(id.clone())
                .or_default()
                .entry(pod.to_string())
                .or_default()
                .streams += 1;
        });
        Connection {
            fleet: self.clone(),
            id: id.clone(),
            pod: pod.to_string(),
        }
    }

    /// Records an ACK or NACK. Reports from pods without an open stream are ignored (they do
    /// not count as connected replicas); returns whether it was recorded.
    pub fn report(&self, id: &GatewayId, report: &StatusReport) -> bool {
        let mut recorded = false;
        self.update(|all| {
            if let Some(r) = all.get_mut(id).and_then(|p| p.get_mut(&report.pod)) {
                recorded = true;
                if report.accepted {
                    r.applied = Some(report.version.clone());
                    r.rejected = None;
                } else {
                    let reason = report
                        .reason
                        .clone()
                        .unwrap_or_else(|| "rejected without a reason".into());
                    r.rejected = Some((report.version.clone(), reason));
                }
            }
        });
        recorded
    }

    /// Connected replicas of a gateway, by pod name: those streaming from this operator
    /// replica, and those the other operator replicas reported.
    pub fn replicas(&self, id: &GatewayId) -> BTreeMap<String, Replica> {
        let mut out = self
            .inner
            .lock()
            .expect("fleet lock")
            .get(id)
            .cloned()
            .unwrap_or_default();
        for view in self.remote.lock().expect("fleet lock").values() {
            for (pod, r) in view.get(id).into_iter().flatten() {
                out.entry(pod.clone()).or_insert_with(|| r.clone());
            }
        }
        out
    }

    /// Number of connected replicas across all gateways.
    pub fn connected(&self) -> usize {
        self.inner
            .lock()
            .expect("fleet lock")
            .values()
            .map(|p| p.len())
            .sum()
    }

    /// Bumped on every connect, disconnect and report.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Where the replicas of `id` stand with `version`.
    pub fn rollout(&self, id: &GatewayId, version: &str) -> Rollout {
        rollout(&self.replicas(id), version)
    }
}

/// Where `replicas` stand with `version`.
pub fn rollout(replicas: &BTreeMap<String, Replica>, version: &str) -> Rollout {
    if replicas.is_empty() {
        return Rollout::NoReplicas;
    }
    if let Some((pod, (_, reason))) = replicas.iter().find_map(|(pod, r)| {
        r.rejected
            .as_ref()
            .filter(|(v, _)| v == version)
            .map(|x| (pod, x))
    }) {
        return Rollout::Rejected {
            pod: pod.clone(),
            reason: reason.clone(),
        };
    }
    let applied = replicas
        .values()
        .filter(|r| r.applied.as_deref() == Some(version))
        .count();
    if applied == replicas.len() {
        Rollout::Applied { connected: applied }
    } else {
        Rollout::Applying {
            applied,
            connected: replicas.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_api::refs::ObjectKey;

    fn report(pod: &str, version: &str, accepted: bool) -> StatusReport {
        StatusReport {
            pod: pod.into(),
            version: version.into(),
            accepted,
            reason: (!accepted).then(|| "bad policy".to_string()),
        }
    }

    #[test]
    fn acks_nacks_and_disconnects() {
        let fleet = Fleet::default();
        let id = GatewayId::Gateway {
            key: ObjectKey::new("ns", "gw"),
        };
        assert_eq!(fleet.rollout(&id, "v1"), Rollout::NoReplicas);
        let a = fleet.connect(&id, "a");
        let b = fleet.connect(&id, "b");
        assert!(!fleet.report(&id, &report("stranger", "v1", true)));
        fleet.report(&id, &report("a", "v1", true));
        assert_eq!(
            fleet.rollout(&id, "v1"),
            Rollout::Applying {
                applied: 1,
                connected: 2
            }
        );
        fleet.report(&id, &report("b", "v1", true));
        assert_eq!(fleet.rollout(&id, "v1"), Rollout::Applied { connected: 2 });
        fleet.report(&id, &report("b", "v2", false));
        assert_eq!(
            fleet.rollout(&id, "v2"),
            Rollout::Rejected {
                pod: "b".into(),
                reason: "bad policy".into()
            }
        );
        drop(b);
        assert_eq!(fleet.rollout(&id, "v1"), Rollout::Applied { connected: 1 });
        drop(a);
        assert_eq!(fleet.connected(), 0);
    }

    #[test]
    fn other_operator_replicas_reports_count_too() {
        let fleet = Fleet::default();
        let id = GatewayId::Gateway {
            key: ObjectKey::new("ns", "gw"),
        };
        let _a = fleet.connect(&id, "a");
        fleet.report(&id, &report("a", "v1", true));
        // Pod b streams from another operator replica, which published its view.
        let mut other = View::new();
        other.entry(id.clone()).or_default().insert(
            "b".into(),
            Replica {
                streams: 1,
                applied: Some("v0".into()),
                rejected: None,
            },
        );
        let mut changes = fleet.subscribe();
        let mut local = fleet.subscribe_local();
        changes.mark_unchanged();
        local.mark_unchanged();
        fleet.set_remote([("operator-2".to_string(), other.clone())].into());
        assert!(
            changes.has_changed().unwrap(),
            "the status controller is woken"
        );
        assert!(
            !local.has_changed().unwrap(),
            "remote views are not republished"
        );
        assert_eq!(
            fleet.rollout(&id, "v1"),
            Rollout::Applying {
                applied: 1,
                connected: 2
            }
        );
        other.get_mut(&id).unwrap().get_mut("b").unwrap().applied = Some("v1".into());
        fleet.set_remote([("operator-2".to_string(), other)].into());
        assert_eq!(fleet.rollout(&id, "v1"), Rollout::Applied { connected: 2 });
        assert_eq!(fleet.local_view().get(&id).unwrap().len(), 1);
        fleet.set_remote(BTreeMap::new());
        assert_eq!(fleet.rollout(&id, "v1"), Rollout::Applied { connected: 1 });
    }
}
