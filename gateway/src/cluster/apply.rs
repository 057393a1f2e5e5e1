//! Turning pushed configurations into served snapshots: read the Secrets a configuration names,
//! build the snapshot, swap it in atomically — or reject it and keep serving the previous one.
//! Secret rotations rebuild the served configuration (and retry one rejected for want of a
//! Secret) without a restart.
//!
//! With listener TLS from the snapshot ([`ListenerMode::TlsFromSnapshot`]) the certificate is
//! part of what is built: a configuration whose TLS Secret is missing or invalid is rejected
//! like one missing any other Secret, and a rotation to a broken certificate keeps serving the
//! previous one (and says so in the log and `reload_failures`).

use super::secrets::{SecretStore, keys_of};
use super::tls::{ListenerMode, certified_key};
use crate::state::{Gateway, SecretValues, Snapshot};
use gatehouse_api::config::{GatewayConfig, GatewayId};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::Duration;

/// How long a new configuration waits for its Secrets to be read before it is rejected.
const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest rejection reason reported to the operator (it ends up in a status condition).
const MAX_REASON: usize = 2048;

/// Applies configurations to the gateway, one at a time.
pub struct Applier {
    gw: Arc<Gateway>,
    id: GatewayId,
    secrets: SecretStore,
    listener: ListenerMode,
    state: tokio::sync::Mutex<State>,
}

/// A configuration ready to serve: its snapshot and, for a TLS listener fed from the snapshot,
/// its certificate.
struct Built {
    snapshot: Snapshot,
    cert: Option<Arc<CertifiedKey>>,
}

#[derive(Default)]
struct State {
    /// The newest configuration offered (by the operator or the snapshot file).
    latest: Option<GatewayConfig>,
    /// The configuration serving now.
    applied: Option<GatewayConfig>,
    /// The Secret generation the served snapshot was built from.
    built_at: u64,
}

/// Why a configuration was rejected: a sentence for the NACK, free of Secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl Rejection {
    fn new(problems: Vec<String>) -> Self {
        let mut reason = problems.join("; ");
        if reason.is_empty() {
            reason = "the configuration could not be built".into();
        }
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        Self(reason)
    }
}

impl Applier {
    /// An applier for `gw`, serving the configuration of `id`, reading Secrets through
    /// `secrets`, for a listener started as `listener`.
    pub fn new(
        gw: Arc<Gateway>,
        id: GatewayId,
        secrets: SecretStore,
        listener: ListenerMode,
    ) -> Self {
        Self {
            gw,
            id,
            secrets,
            listener,
            state: Default::default(),
        }
    }

    /// Build `config` from `values`: the snapshot, and the listener certificate when this
    /// listener serves the snapshot's. Problems are sentences without Secret values.
    fn build(&self, config: &GatewayConfig, values: &SecretValues) -> Result<Built, Vec<String>> {
        let mut problems = Vec::new();
        let cert = match (&config.listener.tls, &self.listener) {
            (Some(r), ListenerMode::TlsFromSnapshot(_)) => match certified_key(r, values) {
                Ok(c) => Some(c),
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
            (Some(r), ListenerMode::Plain) => {
                problems.push(format!(
                    "spec.listener.tls names Secret {}/{}, but this gateway process serves plain HTTP \
                     (started without --listener-tls); restart it with the operator's current \
                     Deployment",
                    r.namespace, r.name
                ));
                None
            }
            (None, ListenerMode::TlsFromSnapshot(_)) => {
                problems.push(
                    "this gateway process serves HTTPS with the certificate of \
                     spec.listener.tls (--listener-tls), but the configuration has no \
                     spec.listener.tls; restart it with the operator's current Deployment"
                        .to_string(),
                );
                None
            }
            (_, ListenerMode::TlsFromFiles) | (None, ListenerMode::Plain) => None,
        };
        let snapshot = Snapshot::build_with(config.clone(), values, &self.gw.process);
        match snapshot {
            Ok(snapshot) if problems.is_empty() => Ok(Built { snapshot, cert }),
            Ok(_) => Err(problems),
            Err(more) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }

    /// The Secret store (for rotation notifications).
    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// Apply the last-known-good configuration from the snapshot file, unless the operator
    /// already delivered one.
    pub async fn offer_last_known_good(&self, config: GatewayConfig) -> Result<(), Rejection> {
        self.offer_from(config, true).await
    }

    /// Validate and apply `config` atomically. `Err` leaves the previous configuration serving.
    pub async fn offer(&self, config: GatewayConfig) -> Result<(), Rejection> {
        self.offer_from(config, false).await
    }

    async fn offer_from(
        &self,
        config: GatewayConfig,
        last_known_good: bool,
    ) -> Result<(), Rejection> {
        let version = config.version.clone();
        if config.gateway != self.id {
            let problem = format!(
                "the snapshot is for {}, but this gateway serves {}",
                config.gateway, self.id
            );
            return Err(self.rejected(&version, vec![problem]));
        }
        let mut st = self.state.lock().await;
        if last_known_good && st.latest.is_some() {
            tracing::info!("the operator's snapshot arrived first; ignoring the snapshot file");
            return Ok(());
        }
        // Re-delivery of what is served (e.g. after a reconnect): nothing to rebuild.
        if st.applied.as_ref().is_some_and(|a| a == &config)
            && st.built_at == self.secrets.generation()
        {
            st.latest = Some(config);
            tracing::info!(%version, "configuration already applied");
            return Ok(());
        }
        // Watch the new configuration's Secrets, and keep those of the one serving until the
        // new one is in (rotations must still reach it if the new one is rejected).
        let mut wanted = keys_of(&config.secrets);
        if let Some(a) = &st.applied {
            wanted.extend(keys_of(&a.secrets));
        }
        let unread: Vec<String> = {
            let pending = self
                .secrets
                .watch_exactly(&wanted, SECRET_READ_TIMEOUT)
                .await;
            let own = keys_of(&config.secrets);
            pending
                .into_iter()
                .filter(|(key, _)| own.contains(key))
                .map(|(_, reason)| reason)
                .collect()
        };
        st.latest = Some(config.clone());
        if !unread.is_empty() {
            return Err(self.rejected(&version, unread));
        }
        let generation = self.secrets.generation();
        let values = self.secrets.values_for(&config.secrets);
        match self.build(&config, &values) {
            Ok(built) => {
                self.swap(built, "configuration applied");
                st.applied = Some(config.clone());
                st.built_at = generation;
                // Only the served configuration's Secrets stay watched.
                self.secrets
                    .watch_exactly(&keys_of(&config.secrets), Duration::ZERO)
                    .await;
                Ok(())
            }
            Err(problems) => Err(self.rejected(&version, problems)),
        }
    }

    /// Rebuild after Secrets changed. Returns the version of a configuration that had been
    /// rejected and now applied (the caller ACKs it).
    pub async fn secrets_changed(&self) -> Option<String> {
        let mut st = self.state.lock().await;
        let generation = self.secrets.generation();
        if generation == st.built_at {
            return None;
        }
        let retry = st.latest.clone().filter(|l| st.applied.as_ref() != Some(l));
        if let Some(config) = retry {
            let values = self.secrets.values_for(&config.secrets);
            if let Ok(built) = self.build(&config, &values) {
                self.swap(built, "Secrets changed: rejected configuration now applied");
                let version = config.version.clone();
                st.applied = Some(config);
                st.built_at = generation;
                return Some(version);
            }
        }
        let config = st.applied.clone()?;
        let values = self.secrets.values_for(&config.secrets);
        match self.build(&config, &values) {
            Ok(built) => {
                self.swap(built, "Secrets changed: configuration rebuilt");
                st.built_at = generation;
            }
            Err(problems) => {
                self.gw.metrics.reload_failures.inc();
                for p in &problems {
                    tracing::error!(version = %config.version, problem = %p,
                        "Secrets changed but the configuration no longer builds; keeping the previous values");
                }
                // Do not retry until the next change.
                st.built_at = generation;
            }
        }
        None
    }

    fn swap(&self, built: Built, what: &str) {
        let Built { snapshot, cert } = built;
        // The certificate first: a configuration never serves before its certificate does.
        if let (Some(cert), ListenerMode::TlsFromSnapshot(served)) = (cert, &self.listener) {
            served.install(cert);
        }
        tracing::info!(
            version = %snapshot.config.version,
            gateway = %snapshot.config.gateway,
            servers = snapshot.servers.len(),
            policies = snapshot.config.policies.len(),
            session_key = %snapshot.session_keys.source,
            "{what}"
        );
        self.gw.apply(snapshot);
    }

    fn rejected(&self, version: &str, problems: Vec<String>) -> Rejection {
        self.gw.metrics.reload_failures.inc();
        for p in &problems {
            tracing::error!(%version, problem = %p, "configuration rejected");
        }
        if self.gw.snapshot().is_some() {
            tracing::error!("keeping the last good configuration");
        }
        Rejection::new(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_reasons_are_joined_and_bounded() {
        assert_eq!(Rejection::new(vec!["a".into(), "b".into()]).0, "a; b");
        assert!(!Rejection::new(vec![]).0.is_empty());
        let long = Rejection::new(vec!["é".repeat(MAX_REASON)]);
        assert!(long.0.len() <= MAX_REASON + '…'.len_utf8());
        assert!(long.0.ends_with('…'));
    }
}
