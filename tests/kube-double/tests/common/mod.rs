//! Helpers shared by the double's own tests: starting it, running the real `kubectl`.
#![allow(dead_code)]

use gatehouse_kube_double::{KubeDouble, Options};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Starts a double and prints how long it took (informational, not asserted).
pub async fn start(opts: Options) -> KubeDouble {
    let t = Instant::now();
    let double = KubeDouble::start(opts).await.expect("double starts");
    println!(
        "kube-double started in {:?} at {}",
        t.elapsed(),
        double.url()
    );
    double
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repo root")
        .to_path_buf()
}

/// Output of one kubectl run.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real kubectl against the double, with a private discovery cache.
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(double: &KubeDouble) -> Self {
        Self {
            kubeconfig: double.kubeconfig_path().to_path_buf(),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl runs");
        let run = Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!("$ kubectl {}\n{}{}", args.join(" "), run.stdout, run.stderr);
        run
    }

    /// Runs kubectl and fails the test when it fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(r.ok, "kubectl {args:?} failed: {}", r.stderr);
        r.stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(
            !r.ok,
            "kubectl {args:?} unexpectedly succeeded: {}",
            r.stdout
        );
        r.stderr
    }

    /// `kubectl apply -f -` with `manifest` on stdin.
    pub async fn apply_stdin(&self, manifest: &str, extra: &[&str]) -> Run {
        use tokio::io::AsyncWriteExt;
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl spawns");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(manifest.as_bytes())
            .await
            .expect("write manifest");
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl apply timed out")
            .expect("kubectl apply runs");
        let run = Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!(
            "$ kubectl {} <<EOF\n{manifest}EOF\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run
    }
}

/// Polls `cond` until it holds (a readiness check, bounded by `deadline`).
pub async fn eventually(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
