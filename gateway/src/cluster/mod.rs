//! Cluster mode (`run --cluster`): the configuration comes from the operator's push stream
//! (protocol: `gatehouse_api::push`), Secret values from the Kubernetes API.
//!
//! Data flow: snapshot file (last known good, at start) and push stream → [`apply::Applier`]
//! (reads the Secrets the configuration names, builds the snapshot, swaps it in) → ACK/NACK to
//! the operator. Secret rotations rebuild the served configuration in place — including the
//! listener's TLS certificate ([`tls`]).
//!
//! Per-user consent grants are stored as Secrets
//! ([`SecretTokenStore`](crate::credentials::token_store::SecretTokenStore)) through the same
//! Kubernetes client, unless `--token-store DIR` names a directory.

mod apply;
mod push;
mod secrets;
pub mod tls;

use anyhow::Context;
use apply::Applier;
use gatehouse_api::config::{GatewayConfig, GatewayId};
use gatehouse_api::push::{HEARTBEAT_INTERVAL_SECONDS, SNAPSHOT_DIR, SNAPSHOT_FILE, TOKEN_PATH};
use gatehouse_api::refs::ObjectKey;
use push::PushClient;
use secrets::SecretStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tls::ListenerMode;

use crate::credentials::token_store::SecretTokenStore;
use crate::state::Gateway;

/// Arguments of `run --cluster`.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Cluster mode: take the configuration from the operator (`--operator`) instead of
    /// `--manifests`; serve `--gateway NS/NAME` or `--sidecar NS/SERVER`.
    #[arg(long, requires = "operator", conflicts_with = "manifests")]
    pub cluster: bool,
    /// Cluster mode: run as the sidecar of the workload McpServer `namespace/name`.
    #[arg(long, value_parser = crate::run::parse_key, requires = "cluster", conflicts_with = "gateway")]
    pub sidecar: Option<ObjectKey>,
    /// Cluster mode: base URL of the operator's push endpoint, e.g.
    /// `https://gatehouse-operator.gatehouse-system.svc:8443`. An `http://` URL works but is
    /// logged as a warning: the ServiceAccount token and the snapshots would cross the network
    /// unencrypted.
    #[arg(long, requires = "cluster")]
    pub operator: Option<String>,
    /// Cluster mode: PEM CA bundle that is the only trust root for the operator's certificate
    /// (the operator renders it from its `--push-ca`). Re-read when the stream reconnects, so a
    /// CA rotation in the mounted ConfigMap needs no restart. Without it an `https://`
    /// `--operator` is verified against the system roots. Needs an `https://` `--operator`.
    #[arg(long, requires = "cluster")]
    pub operator_ca: Option<PathBuf>,
    /// Cluster mode: the projected ServiceAccount token (audience `gatehouse`) presented to the
    /// operator; re-read on every reconnect.
    #[arg(long, default_value = TOKEN_PATH)]
    pub token_file: PathBuf,
    /// Cluster mode: the last-known-good snapshot (the mounted snapshot ConfigMap), served at
    /// start until the operator delivers one. Optional.
    #[arg(long, default_value_t = format!("{SNAPSHOT_DIR}/{SNAPSHOT_FILE}"))]
    pub snapshot_file: String,
    /// Cluster mode: this replica's pod name (the Deployment sets `POD_NAME`).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Cluster mode: kubeconfig for reading Secrets (default: in-cluster, then `KUBECONFIG`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Cluster mode: the operator's heartbeat interval, seconds; a stream silent for three of
    /// them is reconnected.
    #[arg(long, default_value_t = HEARTBEAT_INTERVAL_SECONDS, hide = true)]
    pub operator_heartbeat_seconds: u64,
    /// Cluster mode: serve HTTPS only, with the certificate of the snapshot's
    /// `spec.listener.tls` Secret (read and watched like every referenced Secret; rotations
    /// apply to new connections without a restart). The operator sets it when the McpGateway
    /// asks for TLS. Until a valid certificate is loaded no handshake completes and the gateway
    /// is not ready; it never falls back to plain HTTP.
    #[arg(long, requires = "cluster", conflicts_with = "tls_cert")]
    pub listener_tls: bool,
}

/// Cluster mode, connected: which deployment this process serves, as which pod, and the
/// Kubernetes client it reads Secrets (and stores consent grants) with.
pub struct Cluster {
    id: GatewayId,
    operator: String,
    pod: String,
    client: kube::Client,
}

/// Validate the cluster-mode arguments and connect to the Kubernetes API.
pub async fn connect(args: &ClusterArgs, gateway: Option<ObjectKey>) -> anyhow::Result<Cluster> {
    let id = match (gateway, &args.sidecar) {
        (Some(key), None) => GatewayId::Gateway { key },
        (None, Some(server)) => GatewayId::Sidecar {
            server: server.clone(),
        },
        _ => {
            anyhow::bail!("--cluster needs --gateway NAMESPACE/NAME or --sidecar NAMESPACE/SERVER")
        }
    };
    let operator = args
        .operator
        .clone()
        .context("--cluster needs --operator URL")?;
    let uri: http::Uri = operator
        .parse()
        .with_context(|| format!("--operator {operator:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some(),
        "--operator {operator:?} must be an http:// or https:// URL"
    );
    match (uri.scheme_str(), &args.operator_ca) {
        (Some("http"), Some(_)) => anyhow::bail!(
            "--operator-ca is set but --operator {operator:?} is plain http://: use the \
             operator's https:// push URL"
        ),
        (Some("http"), None) => tracing::warn!(%operator,
            "the operator's push endpoint is plain HTTP: this gateway's ServiceAccount token and \
             its snapshots cross the network unencrypted"),
        (_, None) => tracing::info!(%operator,
            "verifying the operator's certificate against the system roots (no --operator-ca)"),
        (_, Some(_)) => {}
    }
    let pod = args
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|p| !p.is_empty())
        .context("--cluster needs the pod name: --pod-name or POD_NAME")?;
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    Ok(Cluster {
        id,
        operator,
        pod,
        client,
    })
}

impl Cluster {
    /// Consent grants as Secrets in each CredentialProvider's namespace.
    pub fn token_store(&self) -> SecretTokenStore {
        SecretTokenStore::new(self.client.clone(), &self.id)
    }

    /// Start applying configurations to `gw`, whose MCP listener was started as `listener`:
    /// the snapshot file first, then the operator's stream, forever.
    pub fn start(
        self,
        gw: Arc<Gateway>,
        args: &ClusterArgs,
        listener: ListenerMode,
    ) -> tokio::task::JoinHandle<()> {
        let Cluster {
            id,
            operator,
            pod,
            client,
        } = self;
        let _ = gw.process.token_reviewer.set(Arc::new(
            crate::authn::token_review::KubeTokenReviewer::new(client.clone()),
        ));
        tracing::info!(gateway = %id, %pod, %operator, ?listener, "cluster mode");
        let applier = Arc::new(Applier::new(
            gw,
            id.clone(),
            SecretStore::new(client),
            listener,
        ));
        let push = Arc::new(PushClient::new(
            &operator,
            args.operator_ca.clone(),
            id,
            pod,
            args.token_file.clone(),
            Duration::from_secs(args.operator_heartbeat_seconds.max(1)),
        ));
        let snapshot_file = PathBuf::from(&args.snapshot_file);
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(last_known_good(applier.clone(), snapshot_file));
            tasks.spawn(rotations(applier.clone(), push.clone()));
            tasks.spawn(push.run(applier));
            while tasks.join_next().await.is_some() {}
        })
    }
}

/// A Kubernetes client from a kubeconfig, else in-cluster configuration.
pub(crate) async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("kubeconfig {}", p.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration: not in a cluster, and no kubeconfig")?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

/// Serve the mounted snapshot until the operator delivers one.
async fn last_known_good(applier: Arc<Applier>, file: PathBuf) {
    let text = match tokio::fs::read(&file).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %file.display(), "no last-known-good snapshot file; waiting for the operator");
            return;
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the snapshot file");
            return;
        }
    };
    let config: GatewayConfig = match serde_json::from_slice(&text) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "the snapshot file is not a snapshot; ignoring it");
            return;
        }
    };
    let version = config.version.clone();
    match applier.offer_last_known_good(config).await {
        Ok(()) => {
            tracing::info!(%version, file = %file.display(), "serving the last-known-good snapshot")
        }
        Err(r) => {
            tracing::error!(%version, reason = %r.0, "the last-known-good snapshot was rejected")
        }
    }
}

/// Rebuild on every Secret change (debounced); ACK a configuration a rotation made valid.
async fn rotations(applier: Arc<Applier>, push: Arc<PushClient>) {
    let mut changed = applier.secrets().subscribe();
    while changed.changed().await.is_ok() {
        // Coalesce a burst (several Secrets rotated by one `kubectl apply`).
        tokio::time::sleep(Duration::from_millis(50)).await;
        changed.borrow_and_update();
        if let Some(version) = applier.secrets_changed().await {
            push.report(&version, None).await;
        }
    }
}
