//! `gatehouse-gateway run`: wiring for local mode — load the manifests, start the listeners,
//! watch for changes, and drain on SIGTERM / Ctrl-C — and for cluster mode (`--cluster`), where
//! the configuration comes from the operator instead (see `crate::cluster`).

use crate::cluster::tls::{ListenerCert, ListenerMode};
use crate::credentials::token_store::{FileTokenStore, TokenStore};
use crate::listener::{self, Handler};
use crate::reload::{self, Source};
use crate::session::SessionKeys;
use crate::state::{Gateway, Process};
use anyhow::Context;
use futures_util::FutureExt;
use gatehouse_api::refs::ObjectKey;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Directory of YAML manifests (searched recursively), or a single file. Watched for
    /// changes. Required unless `--cluster`.
    #[arg(long, required_unless_present = "cluster")]
    pub manifests: Option<PathBuf>,
    /// Address of the MCP listener (`127.0.0.1:0` picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Address of the admin listener (/healthz, /readyz, /metrics). Without it, those are
    /// served on the MCP listener.
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// The McpGateway to serve, `namespace/name`, when the manifests define several.
    #[arg(long, value_parser = parse_key)]
    pub gateway: Option<ObjectKey>,
    /// TLS certificate chain (PEM) for the MCP listener.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the MCP listener.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File holding the session key material (overrides the McpGateway's session key Secret).
    /// Replicas sharing it accept each other's sessions.
    #[arg(long)]
    pub session_key_file: Option<PathBuf>,
    /// Largest accepted request body, bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How often to check the manifests for changes, ms.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Request workers: single-threaded event loops sharing the MCP listener, each serving the
    /// connections it accepted. Default: one per available core.
    #[arg(long, env = "GATEHOUSE_WORKERS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: Option<usize>,
    /// How long to let connections finish on shutdown, seconds.
    #[arg(long, default_value_t = 10)]
    pub drain_seconds: u64,
    /// Cluster mode.
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
    /// Directory of per-user consent grants (`oauth2AuthorizationCode` token sets, AES-256-GCM
    /// encrypted, one file per provider and user). Default in local mode:
    /// `$XDG_STATE_HOME/gatehouse/tokens`, else `~/.local/state/gatehouse/tokens`. Default in
    /// cluster mode: one Secret per provider and user in the provider's namespace, shared by
    /// every replica.
    #[arg(long)]
    pub token_store: Option<PathBuf>,
}

/// Parse `namespace/name`.
pub(crate) fn parse_key(s: &str) -> Result<ObjectKey, String> {
    ObjectKey::parse(s).ok_or_else(|| format!("{s:?} is not namespace/name"))
}

/// Run until SIGTERM or Ctrl-C.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::workers::init(args.workers.unwrap_or_else(crate::workers::default_count));
    // The main runtime runs control work only (reloads, the push stream, the admin listener,
    // signals); requests are served by `workers`, one event loop per core.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let key_file_keys = match &args.session_key_file {
        Some(p) => {
            let material = zeroize::Zeroizing::new(
                std::fs::read(p)
                    .with_context(|| format!("reading session key file {}", p.display()))?,
            );
            let trimmed = material.trim_ascii();
            anyhow::ensure!(
                trimmed.len() >= 16,
                "session key file {} must hold at least 16 bytes of key material",
                p.display()
            );
            Some(Arc::new(SessionKeys::derive(
                trimmed,
                format!("file {}", p.display()),
            )))
        }
        None => None,
    };
    let cluster = if args.cluster.cluster {
        Some(crate::cluster::connect(&args.cluster, args.gateway.clone()).await?)
    } else {
        None
    };
    let token_store: Arc<dyn TokenStore> = match (&args.token_store, &cluster) {
        (Some(dir), _) => Arc::new(FileTokenStore::new(dir.clone())),
        (None, Some(c)) => Arc::new(c.token_store()),
        (None, None) => Arc::new(FileTokenStore::default_location()),
    };
    let gw = Arc::new(Gateway::new(Process {
        key_file_keys,
        random_keys: Arc::new(SessionKeys::random()),
        max_body_bytes: args.max_body_bytes,
        provider_http: crate::provider_http::ProviderHttp::new(),
        grants: Arc::new(crate::credentials::authcode::Grants::new(token_store)),
        token_reviewer: Default::default(),
        listener: Default::default(),
    }));
    // Local mode with a kubeconfig: TokenReview for `kubernetesServiceAccount` providers.
    if !args.cluster.cluster
        && let Some(kc) = &args.cluster.kubeconfig
    {
        let client = crate::cluster::kube_client(Some(kc)).await?;
        let reviewer = crate::authn::token_review::KubeTokenReviewer::new(client);
        let _ = gw.process.token_reviewer.set(Arc::new(reviewer));
    }
    let source = args.manifests.clone().map(|dir| Source {
        dir,
        gateway: args.gateway.clone(),
    });
    if let Some(source) = &source {
        let (gw2, source) = (gw.clone(), source.clone());
        tokio::task::spawn_blocking(move || reload::apply(&gw2, &source, false)).await?;
        if gw.snapshot().is_none() {
            tracing::error!(
                "no valid configuration yet: serving 503 until the manifests are fixed"
            );
        }
    }
    // Local mode serves TLS from the manifests' own Secret when the McpGateway asks for it
    // (`spec.listener.tls`) and no `--tls-cert` files override it; the certificate follows the
    // Secret manifest on reload. A configuration asking for TLS is never served as plain HTTP.
    let local_tls = match (&source, &args.tls_cert, gw.snapshot()) {
        (Some(source), None, Some(snapshot)) if snapshot.config.listener.tls.is_some() => {
            let cert = Arc::new(ListenerCert::default());
            let _ = gw
                .process
                .listener
                .set(ListenerMode::TlsFromSnapshot(cert.clone()));
            let (gw2, source) = (gw.clone(), source.clone());
            if !tokio::task::spawn_blocking(move || reload::apply(&gw2, &source, false)).await? {
                anyhow::bail!(
                    "{} sets spec.listener.tls, but its certificate cannot be served (see the log above); fix the Secret manifest, or pass --tls-cert and --tls-key",
                    snapshot.config.gateway
                );
            }
            Some(cert)
        }
        _ => None,
    };
    let (tls, listener_mode) = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => (
            Some(listener::tls_acceptor(c, k)?),
            ListenerMode::TlsFromFiles,
        ),
        _ if args.cluster.listener_tls => {
            let cert = Arc::new(ListenerCert::default());
            (
                Some(listener::tls_acceptor_with(cert.clone())?),
                ListenerMode::TlsFromSnapshot(cert),
            )
        }
        _ if local_tls.is_some() => {
            let cert = local_tls.clone().expect("checked");
            (
                Some(listener::tls_acceptor_with(cert.clone())?),
                ListenerMode::TlsFromSnapshot(cert),
            )
        }
        _ => (None, ListenerMode::Plain),
    };
    let _ = gw.process.listener.set(listener_mode.clone());
    let mcp = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let admin = match &args.admin_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a}"))?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "gatehouse-gateway listening: mcp {scheme}://{}",
        mcp.local_addr()?
    )?;
    if let Some(a) = &admin {
        writeln!(
            out,
            "gatehouse-gateway listening: admin http://{}",
            a.local_addr()?
        )?;
    }
    out.flush()?;
    drop(out);
    tracing::info!(addr = %mcp.local_addr()?, tls = tls.is_some(), "MCP listener ready");

    let (stop_tx, stop_rx) = watch::channel(false);
    let drain = Duration::from_secs(args.drain_seconds);
    let is_tls = tls.is_some();
    let admin_here = admin.is_none();
    let mcp_handler: Handler = {
        let gw = gw.clone();
        Arc::new(move |req| listener::handle(gw.clone(), req, is_tls, admin_here).boxed())
    };
    let workers = crate::workers::spawn(
        mcp.into_std()?,
        tls,
        mcp_handler,
        stop_rx.clone(),
        drain,
        args.max_body_bytes,
    )?;
    tracing::debug!(workers = workers.len(), "request workers started");
    let mut tasks = Vec::new();
    if let Some(a) = admin {
        let gw = gw.clone();
        let h: Handler = Arc::new(move |req| {
            let gw = gw.clone();
            async move { crate::admin::handle(&gw, req.uri().path()) }.boxed()
        });
        tasks.push(tokio::spawn(listener::serve(
            a,
            None,
            h,
            stop_rx.clone(),
            drain,
            None,
            64 * 1024,
        )));
    }
    let watcher = match (source, cluster) {
        (Some(source), _) => tokio::spawn(reload::watch(
            gw.clone(),
            source,
            Duration::from_millis(args.poll_ms),
        )),
        (None, Some(cluster)) => cluster.start(gw.clone(), &args.cluster, listener_mode),
        (None, None) => anyhow::bail!("run needs --manifests DIR or --cluster"),
    };

    shutdown_signal().await;
    tracing::info!("shutting down: draining connections");
    watcher.abort();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    })
    .await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
