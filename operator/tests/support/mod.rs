//! Shared by the binary-level suites: kubectl, the operator process, a kube client, polling,
//! and a raw HTTP client speaking the snapshot push protocol as a gateway would.
#![allow(dead_code)]

pub mod scenario;

use bytes::{Buf, Bytes, BytesMut};
use gatehouse_api::push::{POD_HEADER, StatusReport, StreamMessage};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kube::api::{ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The real kubectl with a private discovery cache.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs kubectl with `stdin`; returns (success, stdout, stderr).
    pub async fn run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut child = self.command(args).spawn().expect("kubectl spawns");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("stdin");
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl timed out")
            .expect("kubectl runs");
        let r = (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        println!("$ kubectl {}\n{}{}", args.join(" "), r.1, r.2);
        r
    }

    /// Runs kubectl and fails the test when it fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, "").await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    /// `kubectl apply -f -`.
    pub async fn apply(&self, manifest: &str) {
        let (ok, _, err) = self.run(&["apply", "-f", "-"], manifest).await;
        assert!(ok, "kubectl apply failed: {err}\n{manifest}");
    }
}

/// YAML files under `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Documents of a YAML file, as JSON.
pub fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).expect("read");
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Example manifests made only of Gatehouse kinds, Secrets and Namespaces (other examples, such
/// as Argo CD Applications, need controllers a test cluster does not run).
pub fn gatehouse_examples(dir: &Path) -> Vec<PathBuf> {
    yaml_files(dir)
        .into_iter()
        .filter(|f| {
            let docs = documents(f);
            !docs.is_empty()
                && docs.iter().all(|d| {
                    d["apiVersion"] == gatehouse_api::API_VERSION
                        || (d["apiVersion"] == "v1"
                            && (d["kind"] == "Secret" || d["kind"] == "Namespace"))
                })
        })
        .collect()
}

/// Namespaces named in the documents of `files`.
pub fn namespaces_in(files: &[PathBuf]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for f in files {
        for v in documents(f) {
            if let Some(ns) = v["metadata"]["namespace"].as_str() {
                out.insert(ns.to_string());
            }
        }
    }
    out.into_iter().collect()
}

/// A running `gatehouse-operator run`, killed on drop.
pub struct Operator {
    pub child: tokio::process::Child,
    pub push: SocketAddr,
    pub metrics: SocketAddr,
}

impl Operator {
    pub async fn start(kubeconfig: &Path, lease_namespace: &str) -> Self {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-operator"))
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args([
                "--push-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--push-url",
                "http://gatehouse-operator.gatehouse-system.svc:8443",
                "--gateway-image",
                "ghcr.io/gatehouse-dev/gatehouse-gateway:test",
                "--leader-election-namespace",
                lease_namespace,
                "--lease-duration-seconds",
                "3",
                "--heartbeat-seconds",
                "1",
            ])
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("operator spawns");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("operator prints its addresses")
            .expect("stdout")
            .expect("a line");
        let v: Value = serde_json::from_str(&line).expect("address line is JSON");
        println!("operator listening {line} after {:?}", started.elapsed());
        Self {
            child,
            push: v["push"].as_str().unwrap().parse().unwrap(),
            metrics: v["metrics"].as_str().unwrap().parse().unwrap(),
        }
    }

    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill operator");
    }
}

/// A kube client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(cfg).expect("client")
}

/// Polls `f` until it returns `Some`, failing after `deadline` with the last observation.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() > deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Any object as JSON.
pub async fn get(client: &Client, ar: &ApiResource, ns: &str, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.get_opt(name)
        .await
        .expect("get")
        .map(|o| serde_json::to_value(o).expect("json"))
}

/// `(status, reason, message)` of condition `type_` in `obj`.
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// Waits until `type_` of the object has `status`; returns the object.
pub async fn wait_condition(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> Value {
    eventually(
        &format!("{} {ns}/{name} {type_}={status}", ar.kind),
        Duration::from_secs(20),
        || async {
            let obj = get(client, ar, ns, name)
                .await
                .ok_or("absent".to_string())?;
            match condition(&obj, type_) {
                Some((s, _, _)) if s == status => Ok(obj),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// A gateway replica's side of the push protocol, over raw HTTP/1.1.
pub struct GatewayStream {
    body: hyper::body::Incoming,
    buf: BytesMut,
    _conn: tokio::task::JoinHandle<()>,
}

async fn send(
    addr: SocketAddr,
    req: hyper::Request<Full<Bytes>>,
) -> (
    hyper::Response<hyper::body::Incoming>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.expect("response");
    (resp, task)
}

impl GatewayStream {
    /// Opens `GET /v1/snapshots/{id}`; returns the status code and, on 200, the stream.
    pub async fn open(addr: SocketAddr, path: &str, token: &str, pod: &str) -> Result<Self, u16> {
        let req = hyper::Request::get(path)
            .header("host", addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header(POD_HEADER, pod)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (resp, conn) = send(addr, req).await;
        if resp.status() != 200 {
            return Err(resp.status().as_u16());
        }
        Ok(Self {
            body: resp.into_body(),
            buf: BytesMut::new(),
            _conn: conn,
        })
    }

    /// The next message (within 10 s).
    pub async fn next(&mut self) -> StreamMessage {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                return serde_json::from_slice(&line[..pos]).expect("a JSON message line");
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("a message within 10 s")
                .expect("stream open")
                .expect("frame");
            if let Ok(mut data) = frame.into_data() {
                while data.has_remaining() {
                    let chunk = data.chunk().to_vec();
                    data.advance(chunk.len());
                    self.buf.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// The next snapshot, skipping heartbeats.
    pub async fn next_snapshot(&mut self) -> gatehouse_api::GatewayConfig {
        loop {
            if let StreamMessage::Snapshot { config } = self.next().await {
                return *config;
            }
        }
    }
}

/// `POST /v1/snapshots/{id}/status`; returns the HTTP status.
pub async fn report(addr: SocketAddr, path: &str, token: &str, report: &StatusReport) -> u16 {
    let req = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(report).unwrap())))
        .unwrap();
    let (resp, _conn) = send(addr, req).await;
    resp.status().as_u16()
}

/// A plain `GET` returning the body as text.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (resp, _conn) = send(addr, req).await;
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
