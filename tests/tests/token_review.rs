//! `kubernetesServiceAccount` with `tokenReview: true`: the gateway asks the Kubernetes API who
//! a ServiceAccount token belongs to (here the API double, whose TokenReview answers for the
//! tokens the test registers), audience-bound.

use gatehouse_kube_double::{KubeDouble, Options, UserInfo};
use gatehouse_tests::mcp;
use gatehouse_tests::procs::{DemoServer, Gateway};

// ServiceAccount tokens are JWTs; TokenReview, not the gateway, validates them.
const TRIAGE_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0cmlhZ2UifQ.c2lnbmF0dXJl";
const OTHER_AUDIENCE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2lnbmF0dXJl";

#[tokio::test]
async fn service_account_tokens_are_reviewed_by_the_api_server() -> anyhow::Result<()> {
    let double = KubeDouble::start(Options::default()).await?;
    double.register_token(
        TRIAGE_TOKEN,
        UserInfo {
            username: "system:serviceaccount:agents:triage".into(),
            uid: "1".into(),
            groups: vec!["system:serviceaccounts".into()],
            audiences: vec!["gatehouse".into()],
        },
    );
    double.register_token(
        OTHER_AUDIENCE,
        UserInfo {
            username: "system:serviceaccount:agents:triage".into(),
            uid: "1".into(),
            groups: vec![],
            audiences: vec!["vault".into()],
        },
    );
    let dir = tempfile::tempdir()?;
    let demo = DemoServer::start(&dir.path().join("demo.log"))?;
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("all.yaml"),
        format!(
            r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  trustProviders: [cluster]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: cluster, namespace: default}}
spec:
  kubernetesServiceAccount:
    tokenReview: true
    audiences: [gatehouse]
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: demo, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: triage, namespace: default}}
spec:
  subjects:
    - agents: {{serviceAccounts: [agents/triage]}}
  targets:
    - server: demo
      tools: {{allow: [echo]}}
"#,
            upstream = demo.url
        ),
    )?;
    let kubeconfig = double.kubeconfig_path().to_str().unwrap().to_string();
    let gw = Gateway::start(
        &m,
        &dir.path().join("gw.log"),
        &["--kubeconfig", &kubeconfig],
    )?;
    let url = gw.route("/mcp/demo");

    let auth = format!("Bearer {TRIAGE_TOKEN}");
    let (client, _) = mcp::connect_headers(&url, &[("authorization", &auth)]).await?;
    let tools: Vec<String> = client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(tools, vec!["echo"]);
    client.cancel().await?;
    let record = gw.wait_audit(|r| r["method"] == "tools/list")?;
    assert_eq!(record["agent"], "agents/triage", "{record}");
    assert_eq!(record["agent_kind"], "serviceAccount", "{record}");

    // The API server answered the review with the requested audience.
    let reviews: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/tokenreviews"))
        .collect();
    assert!(!reviews.is_empty(), "no TokenReview reached the API server");
    assert!(reviews.iter().all(|r| r.body.contains("\"gatehouse\"")));

    let init = gatehouse_tests::raw::initialize_body("2025-06-18");
    let http = mcp::http_client(None);
    for (token, want) in [
        (OTHER_AUDIENCE, "did not authenticate"),
        (
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ.c2ln",
            "did not authenticate",
        ),
    ] {
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"))
            .body(init.clone())
            .send()
            .await?;
        assert_eq!(resp.status(), 401);
        let body = resp.text().await?;
        assert!(body.contains(want), "{body}");
    }
    Ok(())
}
