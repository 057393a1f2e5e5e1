#![allow(dead_code)]
//! The cluster-mode flow's processes and fixtures: the operator on a fixed push port serving
//! TLS with a test CA's certificate, a `gatehouse-gateway run --cluster` process started with
//! the Deployment's arguments (that CA as `--operator-ca`), the manifests applied along the way,
//! and an MCP `whoami` probe.

use super::support::*;
use gatehouse_tests::mcp::{self, call, text_of};
use gatehouse_tests::procs::{self, ChildGuard, http_get_status, http_get_text};
use kube::api::ApiResource;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The upstream token after the rotation.
pub const ROTATED_TOKEN: &str = "rotated-upstream-token";

/// Grants bob the `whoami` tool.
pub const BOB_WHOAMI: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: bob-whoami, namespace: default}
spec:
  subjects:
    - users: {ids: [bob]}
  targets:
    - server: demo
      credentialProvider: demo-token
      tools: {allow: [whoami]}
"#;

/// Carol's API key (added to the keys Secret during the test).
pub const CAROL_KEY: &str = "carol-quickstart-key";

/// The API keys Secret with carol's entry, hashed (`Some`) or malformed (`None`).
pub fn api_keys(carol: Option<&str>) -> String {
    let carol = carol.unwrap_or("not-a-hash");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: quickstart-api-keys, namespace: default}}\n\
         stringData:\n  \
         alice: sha256:b15978c79831317b764bd52a9bef55df447f2ec428655a0cb2caee246811b389\n  \
         bob: sha256:ca63948126371628e676926474d395ed97c99d459243f77543c72b7eae4eb9f8\n  \
         carol: {carol}\n"
    )
}

/// `sha256:` of [`CAROL_KEY`].
pub const CAROL_HASH: &str =
    "sha256:e0dea5aa41519a65318f2c4c2b9764c8454bc7c96f66dd5b73138b731ace6e1a";

/// Lets carol call `whoami`.
pub const CAROL_DEMO: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: carol-demo, namespace: default}
spec:
  subjects:
    - users: {ids: [carol]}
  targets:
    - server: demo
      credentialProvider: demo-token
      tools: {allow: [whoami]}
"#;

/// A policy whose server does not exist.
pub const BROKEN: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: broken, namespace: default}
spec:
  subjects:
    - users: {ids: [mallory]}
  targets:
    - server: does-not-exist
"#;

/// The `ApiResource` of a typed kind.
/// The projected ServiceAccount token of gateway ServiceAccount `namespace/service_account`, as
/// the kubelet would mount it: registered with the double's TokenReview and written to a file
/// in `dir`. Returns the file.
pub fn projected_token(
    double: &gatehouse_kube_double::KubeDouble,
    dir: &Path,
    namespace: &str,
    service_account: &str,
) -> PathBuf {
    let token = format!("projected-token-{namespace}-{service_account}");
    double.register_token(
        &token,
        gatehouse_kube_double::UserInfo {
            username: format!("system:serviceaccount:{namespace}:{service_account}"),
            ..Default::default()
        },
    );
    let file = dir.join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    file
}

pub fn ar<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// A port nothing listens on right now (the operator is restarted on the same one, as a
/// Service address would stay the same).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A test CA and a server certificate for 127.0.0.1 and localhost it issued, as PEM.
pub struct Issued {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues a CA named `ca_name` and a server certificate for 127.0.0.1 / localhost.
pub fn issue(ca_name: &str) -> Issued {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Issued {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The operator's push endpoint as these tests run it — as the chart does by default: HTTPS on
/// a port fixed across operator restarts, with a certificate a test CA issued; gateways are
/// given that CA (`--operator-ca`).
pub struct PushEndpoint {
    pub addr: SocketAddr,
    /// The CA bundle gateways trust.
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl PushEndpoint {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let issued = issue("gatehouse push test CA");
        let write = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Self {
            addr: free_port(),
            ca: write("ca.crt", &issued.ca_pem),
            cert: write("tls.crt", &issued.cert_pem),
            key: write("tls.key", &issued.key_pem),
            _dir: Arc::new(dir),
        }
    }

    /// `https://127.0.0.1:PORT`, the URL the operator renders into gateway Deployments.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA bundle's PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.ca).unwrap()
    }

    /// The same endpoint, but what a gateway given `ca` instead of the operator's CA sees.
    pub fn trusting(&self, ca: PathBuf) -> Self {
        Self {
            addr: self.addr,
            ca,
            cert: self.cert.clone(),
            key: self.key.clone(),
            _dir: self._dir.clone(),
        }
    }
}

/// `gatehouse-operator run` with its push server on `push` (fixed across restarts), serving
/// TLS with `push`'s certificate and handing its CA to the gateways.
pub async fn operator_on(kubeconfig: &Path, push: &PushEndpoint) -> Operator {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-operator"))
        .args(["run", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--push-listen", &push.addr.to_string()])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--push-url", &push.url()])
        .arg("--push-tls-cert")
        .arg(&push.cert)
        .arg("--push-tls-key")
        .arg(&push.key)
        .arg("--push-ca")
        .arg(&push.ca)
        .args([
            "--gateway-image",
            "ghcr.io/gatehouse-dev/gatehouse-gateway:test",
        ])
        .args(["--leader-election-namespace", "default"])
        .args(["--lease-duration-seconds", "3", "--heartbeat-seconds", "1"])
        .env("RUST_LOG", "info,kube=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("operator spawns");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("operator prints its addresses")
        .expect("stdout")
        .expect("a line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("address line is JSON");
    Operator {
        child,
        push: v["push"].as_str().unwrap().parse().unwrap(),
        metrics: v["metrics"].as_str().unwrap().parse().unwrap(),
    }
}

/// A `gatehouse-gateway run --cluster` process, started with the Deployment's arguments.
pub struct ClusterGateway {
    /// The demo server's route, `http://127.0.0.1:PORT/mcp/demo`.
    pub mcp: String,
    /// The MCP listener's base URL.
    pub base: String,
    /// The admin listener's base URL.
    pub admin: String,
    child: ChildGuard,
}

impl ClusterGateway {
    pub fn start(
        kubeconfig: &Path,
        operator: &PushEndpoint,
        token_file: &Path,
        snapshot_file: &Path,
        pod: &str,
        log: &Path,
    ) -> Self {
        Self::start_with(
            kubeconfig,
            operator,
            token_file,
            snapshot_file,
            pod,
            log,
            &[],
        )
    }

    /// [`start`](Self::start) with more arguments (e.g. `--listener-tls`, as the Deployment
    /// renders it for a TLS listener).
    pub fn start_with(
        kubeconfig: &Path,
        operator: &PushEndpoint,
        token_file: &Path,
        snapshot_file: &Path,
        pod: &str,
        log: &Path,
        extra: &[&str],
    ) -> Self {
        Self::start_as(
            "default/local",
            "127.0.0.1:0",
            kubeconfig,
            operator,
            token_file,
            snapshot_file,
            pod,
            log,
            extra,
        )
    }

    /// [`start_with`](Self::start_with) for the McpGateway `gateway` (`NS/NAME`), listening on
    /// `listen`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_as(
        gateway: &str,
        listen: &str,
        kubeconfig: &Path,
        operator: &PushEndpoint,
        token_file: &Path,
        snapshot_file: &Path,
        pod: &str,
        log: &Path,
        extra: &[&str],
    ) -> Self {
        let mut child = Command::new(procs::binary("gatehouse-gateway"))
            .args(["run", "--cluster", "--gateway", gateway])
            .args(extra)
            .args(["--operator", &operator.url()])
            .arg("--operator-ca")
            .arg(&operator.ca)
            .args(["--listen", listen, "--admin-listen", "127.0.0.1:0"])
            .arg("--token-file")
            .arg(token_file)
            .arg("--snapshot-file")
            .arg(snapshot_file)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("POD_NAME", pod)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("gateway spawns");
        let stdout = child.stdout.take().expect("piped");
        let child = ChildGuard(child);
        let banners = Arc::new(Mutex::new(Vec::<String>::new()));
        let b = banners.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("gatehouse-gateway listening: ") {
                    b.lock().unwrap().push(rest.to_string());
                }
            }
        });
        procs::wait_until("the gateway's banners", Duration::from_secs(30), || {
            banners.lock().unwrap().len() >= 2
        })
        .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(log).unwrap_or_default()));
        let banners = banners.lock().unwrap().clone();
        let find = |kind: &str| {
            banners
                .iter()
                .find_map(|b| b.strip_prefix(kind).map(|u| u.trim().to_string()))
                .expect("banner")
        };
        Self {
            mcp: format!("{}/mcp/demo", find("mcp ")),
            base: find("mcp "),
            admin: find("admin "),
            child,
        }
    }

    /// `/readyz` once it answers 200 (its body names the config version).
    pub async fn ready(&self) -> String {
        let url = format!("{}/readyz", self.admin);
        eventually("gateway /readyz", Duration::from_secs(30), || async {
            match http_get_status(&url) {
                Some(200) => Ok(http_get_text(&url).unwrap_or_default()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    pub fn still_running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }
}

/// What the upstream saw in `Authorization` for a `whoami` call, or the refusal.
pub async fn whoami(client: &mcp::Client) -> Result<String, String> {
    let r = client
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await
        .map_err(|e| e.to_string())?;
    let seen: serde_json::Value = serde_json::from_str(&text_of(&r)).map_err(|e| e.to_string())?;
    Ok(seen["authorization"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}
