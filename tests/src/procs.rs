//! Child processes: the demo MCP server and the gateway, started on OS-chosen ports, probed for
//! readiness, killed on drop.
//!
//! Binaries: `env!("CARGO_BIN_EXE_…")` only names binaries of the package under test, and the
//! gateway and demo server live in other packages. So the first helper call in each test process
//! runs `cargo build -p gatehouse-gateway -p gatehouse-demo-server` (a no-op when up to date;
//! cargo's build lock serializes parallel test processes) with the same `cargo` that runs the
//! tests, then uses `<target>/debug/<bin>` (honouring `CARGO_TARGET_DIR`). Tests therefore never
//! run a stale binary.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Path of a workspace binary, built first if needed.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "gatehouse-gateway",
                "-p",
                "gatehouse-demo-server",
            ])
            .status()
            .expect("running cargo build");
        assert!(
            status.success(),
            "building the gateway and demo server failed"
        );
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(name)
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait for a predicate with a deadline (a readiness probe, not a sleep).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out waiting for {what}")
}

/// The demo MCP server.
pub struct DemoServer {
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    _child: ChildGuard,
}

impl DemoServer {
    /// Start one on a free port; its stderr log goes to `log`.
    pub fn start(log: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("gatehouse-demo-server"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting gatehouse-demo-server")?;
        let stdout = child.stdout.take().expect("piped");
        let guard = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected demo server output {line:?}"))?
            .to_string();
        Ok(Self { url, _child: guard })
    }
}

/// A running `gatehouse-gateway run`.
pub struct Gateway {
    /// Base URL of the MCP listener (`http(s)://127.0.0.1:PORT`).
    pub url: String,
    /// Base URL of the admin listener.
    pub admin: String,
    /// Every stdout line that is not the listening banner: the audit log.
    lines: Arc<Mutex<Vec<String>>>,
    child: ChildGuard,
}

impl Gateway {
    /// Start a gateway on free ports serving `manifests`, plus `extra` arguments; returns once
    /// `/readyz` answers 200.
    pub fn start(manifests: &Path, log: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_at(manifests, log, "127.0.0.1:0", extra)
    }

    /// [`Gateway::start`] with the MCP listener on `listen` (when the test must know the URL
    /// in advance, e.g. to configure it as the gateway's `publicUrl`).
    pub fn start_at(
        manifests: &Path,
        log: &Path,
        listen: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_with_env(manifests, log, listen, extra, &[])
    }

    /// [`Gateway::start_at`] with extra environment variables (e.g. `RUST_LOG`).
    pub fn start_with_env(
        manifests: &Path,
        log: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("gatehouse-gateway"))
            .envs(env.iter().copied())
            .arg("run")
            .arg("--manifests")
            .arg(manifests)
            .args([
                "--listen",
                listen,
                "--admin-listen",
                "127.0.0.1:0",
                "--poll-ms",
                "100",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting gatehouse-gateway")?;
        let stdout = child.stdout.take().expect("piped");
        let child = ChildGuard(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let banners = Arc::new(Mutex::new(Vec::<String>::new()));
        {
            let (lines, banners) = (lines.clone(), banners.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    match line.strip_prefix("gatehouse-gateway listening: ") {
                        Some(b) => banners.lock().unwrap().push(b.to_string()),
                        None => lines.lock().unwrap().push(line),
                    }
                }
            });
        }
        wait_until(
            "the gateway's listening banner",
            Duration::from_secs(30),
            || banners.lock().unwrap().len() >= 2,
        )?;
        let banners = banners.lock().unwrap().clone();
        let find = |kind: &str| {
            banners
                .iter()
                .find_map(|b| b.strip_prefix(kind).map(|u| u.trim().to_string()))
                .with_context(|| format!("no {kind} banner in {banners:?}"))
        };
        let gw = Self {
            url: find("mcp ")?,
            admin: find("admin ")?,
            lines,
            child,
        };
        let ready = format!("{}/readyz", gw.admin);
        wait_until("/readyz", Duration::from_secs(30), || {
            http_get_status(&ready) == Some(200)
        })?;
        Ok(gw)
    }

    /// The URL of a route.
    pub fn route(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Audit records written so far.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait for an audit record matching `pred`.
    pub fn wait_audit(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let mut found = None;
        wait_until("an audit record", Duration::from_secs(10), || {
            found = self.audit().into_iter().find(|r| pred(r));
            found.is_some()
        })
        .with_context(|| format!("audit so far: {:#?}", self.audit()))?;
        Ok(found.expect("found"))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        http_get_text(&format!("{}/metrics", self.admin)).unwrap_or_default()
    }

    /// The child process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// A port free right now on 127.0.0.1 (for servers that must be configured before they start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A blocking GET with a raw TCP request (no TLS), returning the status. Used for probes so
/// they need no async runtime.
pub fn http_get_status(url: &str) -> Option<u16> {
    raw_get(url).map(|(s, _)| s)
}

/// A blocking GET returning the body.
pub fn http_get_text(url: &str) -> Option<String> {
    raw_get(url).map(|(_, b)| b)
}

fn raw_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(authority).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
