//! Test fixtures: a kube `Client` backed by a `tower-test` mock (the "API server verifier"),
//! and small builders for published compilations.

use crate::snapshots::Published;
use bytes::Bytes;
use gatehouse_api::manifest::{ManifestFile, load};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use std::sync::Arc;

/// The mock API server's end.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client whose every request the test must answer through the returned handle.
pub fn mock_client() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// One request as the verifier saw it.
#[derive(Debug)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Content type, if any.
    pub content_type: String,
    /// Body as JSON (Null when empty).
    pub body: Value,
}

/// Waits for the next request, answers it with `status` and `reply` (or echoes the request body
/// when `reply` is None) and returns it.
pub async fn answer(handle: &mut Handle, status: u16, reply: Option<Value>) -> Call {
    let (req, send) =
        tokio::time::timeout(std::time::Duration::from_secs(5), handle.next_request())
            .await
            .expect("the client sent another request")
            .expect("a request");
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = req.into_body().collect_bytes().await.expect("body");
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    let out = reply.unwrap_or_else(|| body.clone());
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(Bytes::from(out.to_string())))
            .expect("response"),
    );
    Call {
        method,
        uri,
        content_type,
        body,
    }
}

/// A Kubernetes `Status` error body.
pub fn status_error(code: u16, reason: &str) -> Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("{reason} (test)"), "reason": reason, "code": code})
}

/// An empty list of `kind`.
pub fn empty_list(kind: &str) -> Value {
    serde_json::json!({"kind": format!("{kind}List"), "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"}, "items": []})
}

/// Compiles manifests into a publication; every object gets a uid, generation 1 and
/// resourceVersion 1, as the API server would give them.
pub fn published(yaml: &str) -> Published {
    let loaded = load(&[ManifestFile {
        source: "test.yaml".into(),
        text: yaml.into(),
    }]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let mut res = loaded.resources;
    fn stamp(m: &mut kube::api::ObjectMeta) {
        m.uid = Some(format!("uid-{}", m.name.clone().unwrap_or_default()));
        m.generation = Some(1);
        m.resource_version = Some("1".into());
    }
    res.gateways.iter_mut().for_each(|o| stamp(&mut o.metadata));
    res.servers.iter_mut().for_each(|o| stamp(&mut o.metadata));
    res.policies.iter_mut().for_each(|o| stamp(&mut o.metadata));
    res.trust_providers
        .iter_mut()
        .for_each(|o| stamp(&mut o.metadata));
    res.credential_providers
        .iter_mut()
        .for_each(|o| stamp(&mut o.metadata));
    let compiled = gatehouse_api::compile(&res);
    Published {
        seq: 1,
        changed: compiled.gateways.keys().cloned().collect(),
        resources: Arc::new(res),
        compiled: Arc::new(compiled),
        grant_secrets: Default::default(),
        removed: Default::default(),
        at: None,
    }
}

/// A gateway `gw` (2 replicas) with an API-key trust provider, a server and a policy whose
/// credential is the Secret `cred`.
pub const GATEWAY: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {name: gw, namespace: default}
spec:
  replicas: 2
  publicUrl: https://gw.example.com
  trustProviders: [keys]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {name: keys, namespace: default}
spec:
  apiKey: {secretRef: {name: api-keys}}
---
apiVersion: v1
kind: Secret
metadata: {name: api-keys, namespace: default}
stringData: {alice: "sha256:00"}
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {name: demo, namespace: default}
spec:
  gatewayRef: {name: gw}
  url: http://demo.default.svc/mcp
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {name: cred, namespace: default}
spec:
  secret: {secretRef: {name: cred, key: token}}
---
apiVersion: v1
kind: Secret
metadata: {name: cred, namespace: default}
stringData: {token: t}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: alice, namespace: default}
spec:
  subjects: [{users: {ids: [alice]}}]
  targets: [{server: demo, credentialProvider: cred}]
"#;
