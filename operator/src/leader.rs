//! Leader election with a `coordination.k8s.io/v1` Lease: only the leader writes status, every
//! replica serves pushes and runs workloads (server-side apply is idempotent).
//!
//! The holder renews every third of the lease duration; a candidate takes over when
//! `renewTime + leaseDurationSeconds` has passed (or the holder released it on shutdown).
//! Updates carry the observed `resourceVersion`, so two candidates cannot both win.

use crate::metrics::Metrics;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How to elect.
#[derive(Clone, Debug)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
}

/// Whether `lease` may be taken by `me` at `now`, and whether `me` already holds it.
pub fn may_hold(lease: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let duration = SignedDuration::from_secs(i64::from(lease.lease_duration_seconds.unwrap_or(15)));
    match &lease.renew_time {
        Some(MicroTime(t)) => t
            .checked_add(duration)
            .map(|expiry| expiry < now)
            .unwrap_or(true),
        None => true,
    }
}

/// Tries once to acquire or renew. `Ok(true)`: we lead until `lease_duration` from now.
pub async fn try_acquire(api: &Api<Lease>, e: &Election) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let secs = i32::try_from(e.lease_duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    match api.get_opt(&e.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(e.name.clone()),
                    namespace: Some(e.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(e.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(err) => Err(err),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if !may_hold(spec, &e.identity, now) {
                return Ok(false);
            }
            if spec.holder_identity.as_deref() != Some(&e.identity) {
                spec.holder_identity = Some(e.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(secs);
            match api.replace(&e.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(err) => Err(err),
            }
        }
    }
}

/// Releases the lease if we hold it, so a successor need not wait for expiry.
pub async fn release(client: Client, e: &Election) {
    let api: Api<Lease> = Api::namespaced(client, &e.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&e.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(&e.identity)
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        let _ = api.replace(&e.name, &PostParams::default(), &lease).await;
        tracing::info!(lease = %e.name, "released leadership");
    }
}

/// Campaigns forever, publishing whether this replica leads.
pub async fn run(client: Client, e: Election, tx: watch::Sender<bool>, metrics: Arc<Metrics>) {
    let api: Api<Lease> = Api::namespaced(client, &e.namespace);
    let period = e.lease_duration / 3;
    let mut last_renewed: Option<tokio::time::Instant> = None;
    loop {
        let leading = match try_acquire(&api, &e).await {
            Ok(true) => {
                last_renewed = Some(tokio::time::Instant::now());
                true
            }
            Ok(false) => false,
            Err(err) => {
                metrics.failed("leader");
                tracing::warn!(error = %err, "lease renewal failed");
                // Keep leading only while the lease we hold has not expired.
                last_renewed.is_some_and(|t| t.elapsed() < e.lease_duration)
            }
        };
        if !leading {
            last_renewed = None;
        }
        tx.send_if_modified(|current| {
            if *current != leading {
                tracing::info!(leading, identity = %e.identity, "leadership changed");
                *current = leading;
                true
            } else {
                false
            }
        });
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(10),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_holder_is_respected() {
        let now = Timestamp::now();
        assert!(may_hold(&spec(Some("me"), 1), "me", now));
        assert!(!may_hold(&spec(Some("other"), 1), "me", now));
        assert!(may_hold(&spec(Some("other"), 11), "me", now));
        assert!(may_hold(&spec(None, 1), "me", now));
    }
}
