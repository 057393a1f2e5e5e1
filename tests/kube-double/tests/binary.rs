//! The `kube-double` binary: prints its URL once serving, writes a kubeconfig kubectl can use,
//! and is killed at the end of the test.

use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_kubectl_until_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kube-double spawns");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("URL printed")
        .expect("stdout readable")
        .expect("a line");
    println!(
        "kube-double binary ready at {url} after {:?}",
        started.elapsed()
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let config = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    assert!(
        config.contains(&url) && config.contains("certificate-authority-data"),
        "{config}"
    );

    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "namespaces", "-o", "name"])
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs");
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        names.contains("namespace/default") && names.contains("namespace/kube-system"),
        "{names}"
    );

    child.kill().await.expect("kill kube-double");
}
