//! Gateway state: the snapshot being served (swapped atomically on reload — requests in flight
//! keep the snapshot they started with), and what lives for the whole process (metrics, audit,
//! the fallback session key).

use crate::audit::AuditLog;
use crate::authn::Authenticator;
use crate::credentials::Credentials;
use crate::metrics::Metrics;
use crate::relay::upstream::Upstream;
use crate::session::SessionKeys;
use arc_swap::ArcSwapOption;
use gatehouse_api::config::{GatewayConfig, ServerConfig};
use gatehouse_api::manifest::LocalSecret;
use gatehouse_api::policy::PolicySet;
use gatehouse_api::refs::SecretRef;
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// One Secret's values by key.
pub type SecretData = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// The values of the Secrets a snapshot references — and only those. Zeroized on drop.
#[derive(Default)]
pub struct SecretValues {
    by_name: BTreeMap<(String, String), SecretData>,
}

impl SecretValues {
    /// Keep the values of the Secrets `config` names, and of the per-user Secrets its
    /// `perUserSecret` providers may look up (same namespace, name matching the template).
    pub fn select(config: &GatewayConfig, secrets: &[LocalSecret]) -> Self {
        let mut by_name = BTreeMap::new();
        let per_user: Vec<(&str, &str, &str)> = config
            .credential_providers
            .iter()
            .filter_map(|p| match &p.source {
                gatehouse_api::config::CredentialSource::PerUserSecret {
                    namespace,
                    name_template: Some(t),
                    ..
                } => {
                    let (prefix, suffix) = t.split_once("{user}")?;
                    Some((namespace.as_str(), prefix, suffix))
                }
                _ => None,
            })
            .collect();
        let wanted = |s: &LocalSecret| {
            config
                .secrets
                .iter()
                .any(|r| s.namespace == r.namespace && s.name == r.name)
                || per_user.iter().any(|(ns, prefix, suffix)| {
                    s.namespace == *ns
                        && s.name.len() > prefix.len() + suffix.len()
                        && s.name.starts_with(prefix)
                        && s.name.ends_with(suffix)
                })
        };
        for s in secrets.iter().filter(|s| wanted(s)) {
            by_name
                .entry((s.namespace.clone(), s.name.clone()))
                .or_insert_with(|| {
                    s.data
                        .iter()
                        .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())))
                        .collect()
                });
        }
        Self { by_name }
    }

    /// Values read elsewhere (cluster mode: from the Kubernetes API), by `(namespace, name)`.
    /// The caller selects which Secrets to pass: exactly those its snapshot references.
    pub fn from_secrets(by_name: BTreeMap<(String, String), SecretData>) -> Self {
        Self { by_name }
    }

    /// One key's value.
    pub fn key(&self, r: &SecretRef) -> Option<&[u8]> {
        let data = self.by_name.get(&(r.namespace.clone(), r.name.clone()))?;
        data.get(r.key.as_deref()?).map(|v| v.as_slice())
    }

    /// Every Secret of a namespace, by name.
    pub fn in_namespace<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a String, BTreeMap<&'a str, &'a [u8]>)> + 'a {
        self.by_name
            .iter()
            .filter(move |((ns, _), _)| ns == namespace)
            .map(|((_, name), data)| {
                (
                    name,
                    data.iter()
                        .map(|(k, v)| (k.as_str(), v.as_slice()))
                        .collect(),
                )
            })
    }

    /// Every key of a Secret.
    pub fn whole(&self, r: &SecretRef) -> Option<impl Iterator<Item = (&String, &[u8])>> {
        let data = self.by_name.get(&(r.namespace.clone(), r.name.clone()))?;
        Some(data.iter().map(|(k, v)| (k, v.as_slice())))
    }
}

/// One served McpServer with its upstream client.
pub struct ServerRoute {
    /// Its configuration.
    pub config: ServerConfig,
    /// `namespace/name`, for labels and claims.
    pub label: String,
    /// The HTTP client for its upstream.
    pub upstream: Upstream,
}

/// Everything the request pipeline reads, built from one `GatewayConfig`.
pub struct Snapshot {
    /// The configuration.
    pub config: GatewayConfig,
    /// Compiled policies.
    pub policies: PolicySet,
    /// Compiled trust providers.
    pub authn: Authenticator,
    /// Compiled credential providers.
    pub credentials: Credentials,
    /// Served servers.
    pub servers: Vec<ServerRoute>,
    /// Session id keys.
    pub session_keys: Arc<SessionKeys>,
    /// The gateway's name as audit records show it (rendered once, not per request).
    pub gateway_label: String,
}

impl Snapshot {
    /// Build a snapshot; any error rejects the whole configuration.
    pub fn build(
        config: GatewayConfig,
        secrets: &[LocalSecret],
        process: &Process,
    ) -> Result<Self, Vec<String>> {
        let values = SecretValues::select(&config, secrets);
        Self::build_with(config, &values, process)
    }

    /// Build a snapshot from Secret values already selected (cluster mode); any error rejects
    /// the whole configuration.
    pub fn build_with(
        config: GatewayConfig,
        values: &SecretValues,
        process: &Process,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let policies = PolicySet::new(&config.policies)
            .map_err(|es| errors.extend(es.into_iter().map(|e| e.to_string())))
            .ok();
        let authn = Authenticator::new(
            &config.trust_providers,
            values,
            config.public_url.as_deref(),
            &config
                .servers
                .iter()
                .map(|s| s.path.as_str())
                .collect::<Vec<_>>(),
            Arc::new(process.provider_http.clone()),
            process.token_reviewer.get().cloned(),
        )
        .map_err(|e| errors.push(e))
        .ok();
        let credentials = Credentials::new(
            &config.credential_providers,
            values,
            process.provider_http.clone(),
            process.grants.clone(),
            config.public_url.as_deref(),
        )
        .map_err(|e| errors.push(e))
        .ok();
        let mut servers = Vec::new();
        for s in &config.servers {
            match Upstream::new(s, values) {
                Ok(upstream) => servers.push(ServerRoute {
                    label: s.key.to_string(),
                    config: s.clone(),
                    upstream,
                }),
                Err(e) => errors.push(format!("McpServer {}: {e}", s.key)),
            }
        }
        let session_keys = if let Some(k) = &process.key_file_keys {
            k.clone()
        } else if let Some(r) = &config.session.key {
            match values.key(r) {
                Some(material) if !material.is_empty() => {
                    Arc::new(SessionKeys::derive(material, r.to_string()))
                }
                _ => {
                    errors.push(format!("session key {r} is not available"));
                    process.random_keys.clone()
                }
            }
        } else {
            process.random_keys.clone()
        };
        match (policies, authn, credentials) {
            (Some(policies), Some(authn), Some(credentials)) if errors.is_empty() => Ok(Self {
                gateway_label: config.gateway.to_string(),
                config,
                policies,
                authn,
                credentials,
                servers,
                session_keys,
            }),
            _ => Err(errors),
        }
    }

    /// The server served at `path`.
    pub fn server_by_path(&self, path: &str) -> Option<&ServerRoute> {
        self.servers.iter().find(|s| s.config.path == path)
    }
}

/// What lives as long as the process.
pub struct Process {
    /// Session keys from `--session-key-file`, which override the configured Secret.
    pub key_file_keys: Option<Arc<SessionKeys>>,
    /// The per-process random key used when no key is configured.
    pub random_keys: Arc<SessionKeys>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Client for identity providers and token endpoints.
    pub provider_http: crate::provider_http::ProviderHttp,
    /// Per-user consent grants (`oauth2AuthorizationCode`): their store, and what outlives a
    /// reload.
    pub grants: Arc<crate::credentials::authcode::Grants>,
    /// TokenReview, once a Kubernetes client exists (cluster mode, or `--kubeconfig`).
    pub token_reviewer: std::sync::OnceLock<Arc<dyn crate::authn::token_review::TokenReviewer>>,
    /// How the MCP listener was started, once it is decided (local mode's reloads check the
    /// manifests' `spec.listener.tls` against it).
    pub listener: std::sync::OnceLock<crate::cluster::tls::ListenerMode>,
}

/// Shared gateway state.
pub struct Gateway {
    current: ArcSwapOption<Snapshot>,
    /// Metrics.
    pub metrics: Metrics,
    /// Audit log.
    pub audit: AuditLog,
    /// Process-wide settings.
    pub process: Process,
}

impl Gateway {
    /// A gateway with no configuration yet (not ready).
    pub fn new(process: Process) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            metrics: Metrics::new(),
            audit: AuditLog::new(),
            process,
        }
    }

    /// The snapshot to serve this request from.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Swap in a new snapshot.
    pub fn apply(&self, snapshot: Snapshot) {
        self.metrics.set_config_version(&snapshot.config.version);
        self.metrics.reloads.inc();
        self.current.store(Some(Arc::new(snapshot)));
    }
}
