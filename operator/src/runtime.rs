//! Wiring: the API client, reflectors, the compile loop, the push and metrics servers, leader
//! election, and the controllers that only the leader runs (workloads, status).

use crate::index::Index;
use crate::leader::{self, Election};
use crate::metrics::{self, Metrics};
use crate::push::tls::{CertFiles, ServingCert};
use crate::push::{self, PushState};
use crate::replicas::Fleet;
use crate::snapshots::{self, Published};
use crate::status::StatusController;
use crate::workloads::{self, Applier};
use anyhow::Context;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// `gatehouse-operator run` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Container image of the gateway (for McpGateways and workload sidecars).
    #[arg(
        long,
        env = "GATEHOUSE_GATEWAY_IMAGE",
        default_value = "ghcr.io/gatehouse-dev/gatehouse-gateway:latest"
    )]
    pub gateway_image: String,
    /// Address the snapshot push server listens on (HTTPS with `--push-tls-cert`, else plain
    /// HTTP).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub push_listen: SocketAddr,
    /// URL gateways use to reach the push server (passed to them as `--operator`): `https://`
    /// when the push server serves TLS.
    #[arg(
        long,
        env = "GATEHOUSE_PUSH_URL",
        default_value = "http://gatehouse-operator.gatehouse-system.svc:8443"
    )]
    pub push_url: String,
    /// PEM certificate chain the push server presents (TLS on; needs `--push-tls-key`). Re-read
    /// when the file changes, e.g. when the kubelet updates a mounted Secret.
    #[arg(long, requires = "push_tls_key")]
    pub push_tls_cert: Option<PathBuf>,
    /// PEM private key of `--push-tls-cert`.
    #[arg(long, requires = "push_tls_cert")]
    pub push_tls_key: Option<PathBuf>,
    /// PEM CA bundle that signed the push server's certificate: copied into a ConfigMap next to
    /// every gateway Deployment, which verifies the operator with it (`--operator-ca`) and with
    /// nothing else. Without it, gateways verify an `https` push URL against their system roots.
    #[arg(long)]
    pub push_ca: Option<PathBuf>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "gatehouse-system")]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "gatehouse-operator")]
    pub lease_name: String,
    /// Seconds a lease stays valid without renewal (a successor waits this long after a crash).
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// This replica's identity in the Lease (defaults to `$POD_NAME`, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Quiet period after a change before recompiling (coalesces bursts).
    #[arg(long, default_value_t = 100)]
    pub debounce_ms: u64,
    /// Seconds between heartbeats on snapshot streams.
    #[arg(long, default_value_t = gatehouse_api::push::HEARTBEAT_INTERVAL_SECONDS)]
    pub heartbeat_seconds: u64,
    /// Kubeconfig to use instead of `$KUBECONFIG` / in-cluster configuration.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

async fn client(settings: &Settings) -> anyhow::Result<Client> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => Config::infer()
            .await
            .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?,
    };
    Ok(Client::try_from(config)?)
}

fn identity(settings: &Settings) -> String {
    settings.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "gatehouse-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

/// The push endpoint's TLS, checked against the push URL gateways are given: a push server
/// serving TLS behind an `http://` URL, or a CA for one, would only produce gateways that never
/// connect.
fn push_tls(settings: &Settings) -> anyhow::Result<(Option<Arc<ServingCert>>, Option<String>)> {
    let https = settings.push_url.starts_with("https://");
    anyhow::ensure!(
        https || settings.push_url.starts_with("http://"),
        "--push-url {:?} must be an http:// or https:// URL",
        settings.push_url
    );
    let cert = match (&settings.push_tls_cert, &settings.push_tls_key) {
        (Some(cert), Some(key)) => {
            anyhow::ensure!(
                https,
                "--push-tls-cert is set but --push-url {:?} is not https://: gateways would speak \
                 plain HTTP to a TLS endpoint",
                settings.push_url
            );
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            Some(Arc::new(
                ServingCert::load(files).context("--push-tls-cert/--push-tls-key")?,
            ))
        }
        _ => None,
    };
    let ca = match &settings.push_ca {
        Some(path) => {
            anyhow::ensure!(
                https,
                "--push-ca is set but --push-url {:?} is not https://",
                settings.push_url
            );
            Some(push::tls::read_ca(path).context("--push-ca")?)
        }
        None => None,
    };
    match (&cert, https) {
        (Some(_), _) => tracing::info!(url = %settings.push_url, ca = ca.is_some(),
            "push endpoint serves TLS"),
        (None, true) => tracing::info!(url = %settings.push_url,
            "push endpoint serves plain HTTP; gateways dial an https URL (TLS terminated in front)"),
        (None, false) => tracing::warn!(url = %settings.push_url,
            "push endpoint serves plain HTTP: gateway tokens and snapshots cross the network \
             unencrypted (set --push-tls-cert/--push-tls-key/--push-ca)"),
    }
    Ok((cert, ca))
}

/// Runs the operator until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (serving_cert, push_ca) = push_tls(&settings)?;
    let client = client(&settings).await?;
    let metrics = Arc::new(Metrics::new());
    let push_listener = TcpListener::bind(settings.push_listen)
        .await
        .with_context(|| format!("binding --push-listen {}", settings.push_listen))?;
    let metrics_listener = TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("binding --metrics-listen {}", settings.metrics_listen))?;
    // One machine-readable line on stdout with the bound addresses (ports may be OS-chosen).
    println!(
        "{}",
        serde_json::json!({"push": push_listener.local_addr()?.to_string(),
                           "metrics": metrics_listener.local_addr()?.to_string()})
    );
    tokio::spawn(metrics::serve(metrics_listener, metrics.clone()));

    let (index, drivers) = Index::new(client.clone(), metrics.clone());
    for d in drivers {
        tokio::spawn(d);
    }
    let (published_tx, published) = snapshots::channel();
    tokio::spawn(snapshots::run(
        index.clone(),
        published_tx,
        metrics.clone(),
        Duration::from_millis(settings.debounce_ms),
    ));

    let fleet = Fleet::default();
    let (ca_tx, ca_rx) = watch::channel(push_ca);
    tokio::spawn(push::tls::watch(
        serving_cert.clone(),
        settings.push_ca.clone().map(|path| (path, ca_tx)),
    ));
    tokio::spawn(push::serve(
        push_listener,
        serving_cert,
        PushState {
            client: client.clone(),
            published: published.clone(),
            fleet: fleet.clone(),
            metrics: metrics.clone(),
            heartbeat: Duration::from_secs(settings.heartbeat_seconds.max(1)),
        },
    ));

    let election = Election {
        namespace: settings.leader_election_namespace.clone(),
        name: settings.lease_name.clone(),
        identity: identity(&settings),
        lease_duration: Duration::from_secs(settings.lease_duration_seconds.max(3)),
    };
    // Share this replica's gateway ACKs with the leader (and read the others').
    tokio::spawn(crate::fleet_sync::run(
        client.clone(),
        election.namespace.clone(),
        election.identity.clone(),
        fleet.clone(),
    ));
    let (leader_tx, leader) = watch::channel(false);
    tokio::spawn(leader::run(
        client.clone(),
        election.clone(),
        leader_tx,
        metrics.clone(),
    ));

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "gatehouse-operator".into(),
            instance: Some(election.identity.clone()),
        },
    );
    let status = StatusController {
        client: client.clone(),
        index: index.clone(),
        fleet,
        metrics: metrics.clone(),
        recorder,
    };
    let debounce = Duration::from_millis(settings.debounce_ms);
    tokio::spawn(status.run(published.clone(), leader.clone(), debounce));
    tokio::spawn(run_workloads(
        Applier::new(client.clone(), metrics.clone()),
        workloads::Settings {
            gateway_image: settings.gateway_image.clone(),
            push_url: settings.push_url.clone(),
            operator_ca: None,
        },
        published,
        leader,
        ca_rx,
    ));

    shutdown_signal().await;
    tracing::info!("shutting down");
    leader::release(client, &election).await;
    Ok(())
}

/// Applies workloads on every publication (and CA bundle change) while leading; retries
/// failures after 2 s and re-applies everything every 5 minutes (repairing out-of-band edits).
async fn run_workloads(
    mut applier: Applier,
    mut settings: workloads::Settings,
    mut published: watch::Receiver<Arc<Published>>,
    mut leader: watch::Receiver<bool>,
    mut push_ca: watch::Receiver<Option<String>>,
) {
    let mut resync = tokio::time::interval(Duration::from_secs(300));
    let mut retry = false;
    loop {
        tokio::select! {
            r = published.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            // The sender lives as long as the file watch, which runs forever.
            Ok(()) = push_ca.changed() => {}
            _ = resync.tick() => applier.resync(),
            _ = tokio::time::sleep(Duration::from_secs(2)), if retry => {}
        }
        let current = published.borrow_and_update().clone();
        settings.operator_ca = push_ca.borrow_and_update().clone();
        if !*leader.borrow_and_update() || current.seq == 0 {
            applier.resync();
            continue;
        }
        let desired = workloads::desired(&current, &settings);
        retry = applier.reconcile(&desired).await > 0;
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
