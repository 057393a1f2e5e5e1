//! A real MCP client configured with nothing but the gateway URL: the TypeScript SDK discovers
//! the protected-resource metadata from the gateway's 401, finds the IdP, runs authorization
//! code + PKCE with the `resource` parameter against a real OAuth server, and calls tools with
//! the token it got — no manual token copying.

use gatehouse_tests::oauth::{OAuthServer, ensure_node_modules};
use gatehouse_tests::procs::{DemoServer, Gateway, free_port};
use std::path::Path;
use std::process::Command;

#[test]
fn typescript_sdk_discovers_logs_in_and_calls_tools() -> anyhow::Result<()> {
    ensure_node_modules()?;
    let dir = tempfile::tempdir()?;
    let idp = OAuthServer::start()?;
    let demo = DemoServer::start(&dir.path().join("demo.log"))?;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("all.yaml"),
        format!(
            r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  publicUrl: {public}
  trustProviders: [corp]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: corp, namespace: default}}
spec:
  oidc:
    issuer: {issuer}
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
metadata: {{name: claude-code-users, namespace: default}}
spec:
  subjects:
    - users: {{}}
      agents: {{clientIds: [claude-code]}}
  targets:
    - server: demo
      tools: {{deny: ["admin_*"]}}
"#,
            issuer = idp.issuer,
            upstream = demo.url
        ),
    )?;
    let gw = Gateway::start_at(
        &m,
        &dir.path().join("gateway.log"),
        &format!("127.0.0.1:{port}"),
        &[],
    )?;
    let url = gw.route("/mcp/demo");
    assert_eq!(url, format!("{public}/mcp/demo"));

    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(tests.join("node/oauth-client-session.mjs"))
        .args([&url, "claude-code"])
        .current_dir(tests)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the SDK's OAuth flow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(got["resource"], url, "{got}");
    assert_eq!(
        got["tokenAudience"], url,
        "the token is bound to this MCP server: {got}"
    );
    assert_eq!(
        got["authorizationServer"]
            .as_str()
            .map(|s| s.trim_end_matches('/')),
        Some(idp.issuer.as_str()),
        "{got}"
    );
    assert_eq!(got["echo"], "via oauth", "{got}");
    let tools: Vec<&str> = got["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tools.contains(&"whoami") && !tools.contains(&"admin_reset"),
        "{tools:?}"
    );

    let record = gw.wait_audit(|r| r["tool"] == "echo")?;
    assert_eq!(record["user"], "johndoe", "{record}");
    assert_eq!(record["agent"], "claude-code", "{record}");
    assert_eq!(record["agent_kind"], "clientId", "{record}");
    assert_eq!(record["policy"], "default/claude-code-users", "{record}");
    Ok(())
}
