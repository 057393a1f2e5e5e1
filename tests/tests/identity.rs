//! Identity and credentials end to end: real tokens from a real OAuth server
//! (`oauth2-mock-server`), an `rmcp` client, the gateway and the demo MCP server as processes.
//!
//! - `oidc` users with groups and the agent from the token's client, in one decision;
//! - wrong audience → 401 with `resource_metadata`; missing scope → 403 `insufficient_scope`;
//! - ServiceAccount tokens (offline, against a second issuer) for agents acting alone, and in
//!   the agent header next to a user token;
//! - `oauth2ClientCredentials` upstream tokens fetched, cached and injected; the user's token
//!   never reaches the upstream;
//! - `perUserSecret`: each user's own credential, and a clear error for a user without one.

use gatehouse_tests::mcp::{self, call, text_of};
use gatehouse_tests::oauth::{OAuthServer, claims_of};
use gatehouse_tests::procs::{DemoServer, Gateway};
use serde_json::json;

const PUBLIC_URL: &str = "http://localhost:18080";

fn manifests(idp: &str, cluster: &str, upstream: &str) -> String {
    format!(
        r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  publicUrl: {PUBLIC_URL}
  trustProviders: [corp, cluster]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: corp, namespace: default}}
spec:
  oidc:
    issuer: {idp}
    requiredScopes: ["mcp:tools"]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: cluster, namespace: default}}
spec:
  kubernetesServiceAccount:
    issuer: {cluster}
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
kind: McpServer
metadata: {{name: personal, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: service-token, namespace: default}}
spec:
  oauth2ClientCredentials:
    tokenUrl: {idp}/token
    clientId: gatehouse-gateway
    clientSecretRef: {{name: idp-client, key: secret}}
    scopes: [upstream.read]
    audience: https://upstream.example.com
---
apiVersion: v1
kind: Secret
metadata: {{name: idp-client, namespace: default}}
stringData: {{secret: gateway-client-secret}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: personal-pat, namespace: default}}
spec:
  perUserSecret:
    nameTemplate: "pat-{{user}}"
---
apiVersion: v1
kind: Secret
metadata: {{name: pat-u-alice, namespace: default}}
stringData: {{token: alice-personal-token}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: eng-via-claude-code, namespace: default}}
spec:
  subjects:
    - users: {{groups: [eng]}}
      agents: {{clientIds: [claude-code]}}
  targets:
    - server: demo
      credentialProvider: service-token
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: everyone-personal, namespace: default}}
spec:
  subjects:
    - users: {{}}
  targets:
    - server: personal
      credentialProvider: personal-pat
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: triage-bot, namespace: default}}
spec:
  subjects:
    - agents: {{serviceAccounts: [agents/triage]}}
  targets:
    - server: demo
      credentialProvider: service-token
      tools: {{allow: [echo, whoami]}}
"#
    )
}

struct Setup {
    idp: OAuthServer,
    cluster: OAuthServer,
    gw: Gateway,
    _demo: DemoServer,
    _dir: tempfile::TempDir,
}

fn setup() -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let idp = OAuthServer::start()?;
    let cluster = OAuthServer::start()?;
    let demo = DemoServer::start(&dir.path().join("demo.log"))?;
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("all.yaml"),
        manifests(&idp.issuer, &cluster.issuer, &demo.url),
    )?;
    let gw = Gateway::start(&m, &dir.path().join("gateway.log"), &[])?;
    Ok(Setup {
        idp,
        cluster,
        gw,
        _demo: demo,
        _dir: dir,
    })
}

async fn alice_token(s: &Setup, client: &str) -> anyhow::Result<String> {
    s.idp
        .user_token(
            "u-alice",
            client,
            PUBLIC_URL,
            "openid mcp:tools",
            json!({"groups": ["eng"], "email": "alice@example.com"}),
        )
        .await
}

async fn whoami(client: &mcp::Client) -> anyhow::Result<serde_json::Value> {
    let r = client
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await?;
    Ok(serde_json::from_str(&text_of(&r))?)
}

#[tokio::test]
async fn oidc_user_and_agent_decide_together_and_get_a_client_credentials_token()
-> anyhow::Result<()> {
    let s = setup()?;
    let url = s.gw.route("/mcp/demo");
    let token = alice_token(&s, "claude-code").await?;
    let auth = format!("Bearer {token}");
    let (alice, _) = mcp::connect_headers(&url, &[("authorization", &auth)]).await?;
    let tools: Vec<String> = alice
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.contains(&"whoami".to_string()), "{tools:?}");

    // The upstream got the gateway's client-credentials token — not alice's.
    let seen = whoami(&alice).await?;
    let upstream = seen["authorization"].as_str().unwrap_or_default();
    let upstream_jwt = upstream.strip_prefix("Bearer ").expect("a bearer token");
    assert_ne!(upstream_jwt, token, "token passthrough");
    let claims = claims_of(upstream_jwt);
    assert_eq!(claims["client_id"], "gatehouse-gateway", "{claims}");
    assert_eq!(claims["aud"], "https://upstream.example.com", "{claims}");
    assert_eq!(claims["scope"], "upstream.read", "{claims}");
    // Cached: the second call carries the same token.
    assert_eq!(
        whoami(&alice).await?["authorization"],
        seen["authorization"]
    );

    let record =
        s.gw.wait_audit(|r| r["tool"] == "whoami" && r["decision"] == "allow")?;
    assert_eq!(record["user"], "u-alice", "{record}");
    assert_eq!(record["agent"], "claude-code", "{record}");
    assert_eq!(record["policy"], "default/eng-via-claude-code", "{record}");
    let audit = serde_json::to_string(&s.gw.audit())?;
    assert!(
        !audit.contains(&token) && !audit.contains(upstream_jwt),
        "tokens in the audit log"
    );
    alice.cancel().await?;

    // The same user through another agent: nothing allows it.
    let other = format!("Bearer {}", alice_token(&s, "some-other-agent").await?);
    let refused = mcp::connect_headers(&url, &[("authorization", &other)]).await;
    assert!(
        refused.is_err(),
        "initialize must be denied for an unapproved agent"
    );
    let record = s.gw.wait_audit(|r| r["agent"] == "some-other-agent")?;
    assert_eq!(record["decision"], "deny", "{record}");
    Ok(())
}

#[tokio::test]
async fn wrong_audience_is_401_and_missing_scope_is_403_insufficient_scope() -> anyhow::Result<()> {
    let s = setup()?;
    let url = s.gw.route("/mcp/demo");
    let http = mcp::http_client(None);
    let init = gatehouse_tests::raw::initialize_body("2025-06-18");
    let post = |auth: String| {
        http.post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", auth)
            .body(init.clone())
            .send()
    };

    let wrong_aud = s
        .idp
        .user_token(
            "u-alice",
            "claude-code",
            "https://elsewhere.example.com",
            "mcp:tools",
            json!({"groups": ["eng"]}),
        )
        .await?;
    let resp = post(format!("Bearer {wrong_aud}")).await?;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str()?.to_string();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{PUBLIC_URL}/.well-known/oauth-protected-resource/mcp/demo\""
        )),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    let body = resp.text().await?;
    assert!(body.contains("wrong audience"), "{body}");

    let no_scope = s
        .idp
        .user_token(
            "u-alice",
            "claude-code",
            PUBLIC_URL,
            "openid",
            json!({"groups": ["eng"]}),
        )
        .await?;
    let resp = post(format!("Bearer {no_scope}")).await?;
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"].to_str()?.to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");

    // A token signed by an issuer the gateway does not trust.
    let foreign = OAuthServer::start()?;
    let t = foreign
        .user_token("u-alice", "claude-code", PUBLIC_URL, "mcp:tools", json!({}))
        .await?;
    let resp = post(format!("Bearer {t}")).await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await?.contains("not trusted"));

    // The protected-resource metadata names the authorization server.
    let prm: serde_json::Value = http
        .get(s.gw.route("/.well-known/oauth-protected-resource/mcp/demo"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(prm["resource"], format!("{PUBLIC_URL}/mcp/demo"), "{prm}");
    assert_eq!(prm["authorization_servers"], json!([s.idp.issuer]), "{prm}");
    assert_eq!(prm["scopes_supported"], json!(["mcp:tools"]), "{prm}");
    Ok(())
}

#[tokio::test]
async fn service_account_agents_alone_and_next_to_a_user() -> anyhow::Result<()> {
    let s = setup()?;
    let url = s.gw.route("/mcp/demo");
    let sa = s
        .cluster
        .token(&[
            ("grant_type", "password"),
            ("username", "system:serviceaccount:agents:triage"),
            ("password", "unused"),
            ("aud", "gatehouse"),
        ])
        .await?;
    // Alone, in Authorization.
    let (bot, _) =
        mcp::connect_headers(&url, &[("authorization", &format!("Bearer {sa}"))]).await?;
    let tools: Vec<String> = bot
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let mut sorted = tools.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["echo", "whoami"],
        "only what the bot's policy allows"
    );
    let seen = whoami(&bot).await?;
    assert!(
        seen["authorization"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Bearer ey")
    );
    assert_eq!(seen["x-agent-authorization"], "<none>", "{seen}");
    let record =
        s.gw.wait_audit(|r| r["agent"] == "agents/triage" && r["tool"] == "whoami")?;
    assert_eq!(record["policy"], "default/triage-bot", "{record}");
    bot.cancel().await?;

    // Next to a user token, in the agent header: the agent is the ServiceAccount, so the
    // engineers-through-Claude-Code policy no longer matches (the user is not acting alone, and
    // the agent is not claude-code).
    let user = alice_token(&s, "claude-code").await?;
    let refused = mcp::connect_headers(
        &url,
        &[
            ("authorization", &format!("Bearer {user}")),
            ("x-agent-authorization", &format!("Bearer {sa}")),
        ],
    )
    .await;
    assert!(refused.is_err());
    let record =
        s.gw.wait_audit(|r| r["user"] == "u-alice" && r["agent"] == "agents/triage")?;
    assert_eq!(record["decision"], "deny", "{record}");
    Ok(())
}

#[tokio::test]
async fn per_user_secrets_reach_the_upstream_for_their_user_only() -> anyhow::Result<()> {
    let s = setup()?;
    let url = s.gw.route("/mcp/personal");
    let alice = format!("Bearer {}", alice_token(&s, "claude-code").await?);
    let (c, _) = mcp::connect_headers(&url, &[("authorization", &alice)]).await?;
    assert_eq!(
        whoami(&c).await?["authorization"],
        "Bearer alice-personal-token"
    );
    c.cancel().await?;

    let bob = s
        .idp
        .user_token(
            "u-bob",
            "claude-code",
            PUBLIC_URL,
            "mcp:tools",
            json!({"groups": ["eng"]}),
        )
        .await?;
    // Bob has no personal credential: the server cannot be used at all, and he is told why.
    let err = mcp::connect_headers(&url, &[("authorization", &format!("Bearer {bob}"))])
        .await
        .err()
        .expect("bob has no personal credential");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no personal credential for user \"u-bob\""),
        "{msg}"
    );
    assert!(msg.contains("default/pat-u-bob"), "{msg}");
    assert!(!msg.contains("alice-personal-token"));
    Ok(())
}
