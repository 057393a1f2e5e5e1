//! The operator's view of the cluster: one kube-runtime reflector per input kind, and the
//! [`Resources`] the compiler reads, built from them on demand.
//!
//! Watched: the five Gatehouse kinds, Secrets (as [`SecretKeys`]: key names only, values are
//! dropped while parsing), Namespaces (labels, for `allowedNamespaces`), and the Deployments the
//! operator manages (ready replicas, for `McpGateway` status).

use crate::grant_secrets::GrantSecret;
use crate::metrics::Metrics;
use crate::names;
use crate::secret_keys::SecretKeys;
use futures_util::StreamExt;
use gatehouse_api::compile::NamespaceMeta;
use gatehouse_api::{
    AccessPolicy, CredentialProvider, McpGateway, McpServer, Resources, TrustProvider,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// Reflector stores of everything the operator reads.
#[derive(Clone)]
pub struct Index {
    /// McpGateways.
    pub gateways: Store<McpGateway>,
    /// McpServers.
    pub servers: Store<McpServer>,
    /// AccessPolicies.
    pub policies: Store<AccessPolicy>,
    /// TrustProviders.
    pub trust_providers: Store<TrustProvider>,
    /// CredentialProviders.
    pub credential_providers: Store<CredentialProvider>,
    /// Secrets: names and key names only.
    pub secrets: Store<SecretKeys>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
    /// Deployments managed by the operator.
    pub deployments: Store<Deployment>,
    config_changes: watch::Receiver<u64>,
    workload_changes: watch::Receiver<u64>,
}

/// The futures that drive the reflectors; run them all for as long as the operator runs.
pub type Drivers = Vec<Pin<Box<dyn Future<Output = ()> + Send>>>;

impl Index {
    /// Creates the stores and the watch streams that fill them.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> (Self, Drivers) {
        let (config_tx, config_changes) = watch::channel(0u64);
        let (workload_tx, workload_changes) = watch::channel(0u64);
        let config_tx = Arc::new(config_tx);
        let workload_tx = Arc::new(workload_tx);
        let mut drivers: Drivers = Vec::new();
        let all = watcher::Config::default();
        let managed = watcher::Config::default().labels(names::MANAGED_SELECTOR);

        macro_rules! reflect {
            ($kind:ty, $cfg:expr, $tx:expr) => {{
                let (store, driver) = reflect::<$kind>(
                    Api::all(client.clone()),
                    $cfg.clone(),
                    $tx.clone(),
                    metrics.clone(),
                );
                drivers.push(Box::pin(driver));
                store
            }};
        }
        let index = Self {
            gateways: reflect!(McpGateway, all, config_tx),
            servers: reflect!(McpServer, all, config_tx),
            policies: reflect!(AccessPolicy, all, config_tx),
            trust_providers: reflect!(TrustProvider, all, config_tx),
            credential_providers: reflect!(CredentialProvider, all, config_tx),
            secrets: reflect!(SecretKeys, all, config_tx),
            namespaces: reflect!(Namespace, all, config_tx),
            deployments: reflect!(Deployment, managed, workload_tx),
            config_changes,
            workload_changes,
        };
        (index, drivers)
    }

    /// Waits until every store holds a complete initial list.
    pub async fn wait_ready(&self) {
        let _ = tokio::join!(
            self.gateways.wait_until_ready(),
            self.servers.wait_until_ready(),
            self.policies.wait_until_ready(),
            self.trust_providers.wait_until_ready(),
            self.credential_providers.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.deployments.wait_until_ready(),
        );
    }

    /// Bumped on every change of a compiler input.
    pub fn config_changes(&self) -> watch::Receiver<u64> {
        self.config_changes.clone()
    }

    /// Bumped on every change of a managed Deployment.
    pub fn workload_changes(&self) -> watch::Receiver<u64> {
        self.workload_changes.clone()
    }

    /// Everything the compiler reads, as of now.
    pub fn resources(&self) -> Resources {
        fn owned<K: Clone + Resource<DynamicType = ()>>(s: &Store<K>) -> Vec<K> {
            s.state().iter().map(|o| (**o).clone()).collect()
        }
        Resources {
            gateways: owned(&self.gateways),
            servers: owned(&self.servers),
            policies: owned(&self.policies),
            trust_providers: owned(&self.trust_providers),
            credential_providers: owned(&self.credential_providers),
            secrets: self.secrets.state().iter().map(|s| s.to_meta()).collect(),
            namespaces: self
                .namespaces
                .state()
                .iter()
                .map(|n| NamespaceMeta {
                    name: n.metadata.name.clone().unwrap_or_default(),
                    labels: n.metadata.labels.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The per-user consent grant Secrets gateways wrote (see [`GrantSecret::of`]).
    pub fn grant_secrets(&self) -> BTreeSet<GrantSecret> {
        self.secrets
            .state()
            .iter()
            .filter_map(|s| GrantSecret::of(s))
            .collect()
    }

    /// The managed Deployment `namespace/name`, if it exists.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    changes: Arc<watch::Sender<u64>>,
    metrics: Arc<Metrics>,
) -> (Store<K>, impl Future<Output = ()> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let kind = K::kind(&());
    let driver = async move {
        let stream = watcher(api, config).default_backoff().reflect(writer);
        futures_util::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(_) => {
                    changes.send_modify(|n| *n += 1);
                }
                Err(e) => {
                    metrics.failed("index");
                    tracing::warn!(%kind, error = %e, "watch failed; retrying with backoff");
                }
            }
        }
    };
    (store, driver)
}
