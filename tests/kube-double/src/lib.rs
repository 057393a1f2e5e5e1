//! # gatehouse-kube-double — a TEST DOUBLE of the Kubernetes API server
//!
//! Not a Kubernetes API server. It serves, over HTTPS with a throwaway CA, the subset of the
//! Kubernetes REST API that the Gatehouse operator, `kubectl` 1.32 and kube-rs use, from an
//! in-memory map, so end-to-end tests can run the operator as a real process against a
//! kubeconfig on machines where no kube-apiserver/etcd can be installed. See `README.md` for
//! what it models and — just as important — what it does not. The real-cluster end-to-end suite
//! is the authority.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use gatehouse_kube_double::{KubeDouble, Options};
//! let double = KubeDouble::start(Options::default()).await?;
//! println!("kubeconfig at {}", double.kubeconfig_path().display());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod api;
mod apply;
mod builtins;
mod cel_rules;
mod discovery;
mod patch;
mod registry;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod tls;
mod validation;
mod watch;
mod write;

pub use cel_rules::SkippedRule;
pub use server::RecordedRequest;
pub use store::UserInfo;

use server::Shared;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch as signal;

/// How to start the double.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 lets the OS choose.
    pub listen: SocketAddr,
    /// Where to write the kubeconfig; `None` writes one into a fresh temporary directory
    /// that is removed on drop.
    pub kubeconfig_path: Option<PathBuf>,
    /// Bearer token put into the kubeconfig (every token is admitted anyway).
    pub token: String,
    /// How many change events are kept for watches resuming from a resourceVersion; older
    /// versions get `410 Gone` (an ERROR watch event with code 410, reason `Expired`).
    pub watch_history_limit: usize,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Record every request for [`KubeDouble::requests`].
    pub record_requests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig_path: None,
            token: "kube-double-token".into(),
            watch_history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
            record_requests: true,
        }
    }
}

/// A running Kubernetes API server double. Stops serving when dropped.
pub struct KubeDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    token: String,
    kubeconfig_path: PathBuf,
    temp_dir: Option<PathBuf>,
    shutdown: signal::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for KubeDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDouble")
            .field("url", &self.url())
            .finish()
    }
}

impl KubeDouble {
    /// Generates certificates, binds the listener, writes the kubeconfig and starts serving.
    pub async fn start(opts: Options) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let tls = tls::generate(addr.ip()).map_err(std::io::Error::other)?;
        let (cut, _) = signal::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(store::State::new(opts.watch_history_limit)),
            records: Mutex::new(Vec::new()),
            record: AtomicBool::new(opts.record_requests),
            cut,
            open_watches: Arc::new(AtomicUsize::new(0)),
            bookmark_interval: opts.bookmark_interval,
            server_address: addr.to_string(),
        });
        let (shutdown, shutdown_rx) = signal::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let task = tokio::spawn(server::serve(
            listener,
            acceptor,
            shared.clone(),
            shutdown_rx,
        ));
        let (kubeconfig_path, temp_dir) = match opts.kubeconfig_path {
            Some(p) => (p, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "kube-double-{}-{}",
                    std::process::id(),
                    addr.port()
                ));
                std::fs::create_dir_all(&dir)?;
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        let double = Self {
            shared,
            addr,
            ca_pem: tls.ca_pem,
            token: opts.token,
            kubeconfig_path,
            temp_dir,
            shutdown,
            task: Some(task),
        };
        double.write_kubeconfig(&double.kubeconfig_path)?;
        Ok(double)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where the kubeconfig was written at start.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The kubeconfig as YAML.
    pub fn kubeconfig_yaml(&self) -> String {
        tls::kubeconfig(self.addr, &self.ca_pem, &self.token)
    }

    /// Writes the kubeconfig to another path too.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Makes TokenReview answer `authenticated: true` with `user` for `token`.
    pub fn register_token(&self, token: &str, user: UserInfo) {
        self.state().tokens.insert(token.to_string(), user);
    }

    /// Every request received so far (when recording is on).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.records.lock().expect("records lock").clone()
    }

    /// Forgets recorded requests.
    pub fn clear_requests(&self) {
        self.shared.records.lock().expect("records lock").clear();
    }

    /// Turns request recording on or off.
    pub fn set_recording(&self, on: bool) {
        self.shared.record.store(on, Ordering::SeqCst);
    }

    /// Changes how many events are kept for resuming watches (older versions get 410).
    pub fn set_watch_history_limit(&self, n: usize) {
        self.state().set_history_limit(n);
    }

    /// Drops every open watch connection mid-stream, as a network failure would.
    pub fn cut_watches(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// How many watch streams are open right now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state().resource_version()
    }

    /// CEL rules the double could not compile or evaluate (so they were not enforced).
    pub fn skipped_rules(&self) -> Vec<SkippedRule> {
        self.state().skipped_rules.clone()
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, store::State> {
        self.shared.state.lock().expect("state lock")
    }
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.cut_watches();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
