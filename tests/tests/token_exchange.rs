//! `oauth2TokenExchange` (RFC 8693) end to end against a real `oidc-provider` with a registered
//! token-exchange grant handler (`tests/node/token-exchange-server.mjs`), the gateway in local
//! mode, `rmcp` clients, and the demo MCP server recording the headers it received:
//!
//! - alice and bob, through the same agent and the same AccessPolicy, reach the same upstream
//!   each with their own exchanged token (`sub`, `aud`, `scope` as configured, verifiable with
//!   the token service's keys); the client's token never reaches the upstream;
//! - one exchange per user, however many messages and sessions (cached per user);
//! - with `actorToken: true`, the agent's ServiceAccount token is the actor: the issued token
//!   names the agent in `act`;
//! - a wrong client secret, a subject token the service refuses, and a service outage (after
//!   cached tokens, for a user without one) fail closed with a clear JSON-RPC error and an
//!   audit line, and no token or secret reaches the logs or audit.

use gatehouse_tests::consent::initialize_error;
use gatehouse_tests::mcp::{self, call, text_of};
use gatehouse_tests::oauth::{OAuthServer, claims_of};
use gatehouse_tests::procs::{DemoServer, Gateway};
use gatehouse_tests::token_exchange::{
    ACCESS_TOKEN_TYPE, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET, TOKEN_EXCHANGE, TokenService,
};
use serde_json::{Value, json};
use std::path::Path;

const PUBLIC_URL: &str = "http://localhost:18080";
/// `audience` of the `exchange` provider.
const API_AUDIENCE: &str = "https://api.example.com";
/// `resource` of the `exchange-as-agent` provider.
const TICKETS_RESOURCE: &str = "https://tickets.example.com/mcp";
const WRONG_SECRET: &str = "not-the-gateway-exchange-secret";
const TRIAGE_SA: &str = "system:serviceaccount:agents:triage";

fn manifests(sts: &str, cluster: &str, partner: &str, upstream: &str) -> String {
    format!(
        r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  publicUrl: {PUBLIC_URL}
  trustProviders: [corp, partner, cluster]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: corp, namespace: default}}
spec:
  oidc:
    issuer: {sts}
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: partner, namespace: default}}
spec:
  oidc:
    issuer: {partner}
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
metadata: {{name: exchanged, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: delegated, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: misconfigured, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: exchange, namespace: default}}
spec:
  oauth2TokenExchange:
    tokenUrl: {sts}/token
    clientId: {GATEWAY_CLIENT_ID}
    clientSecretRef: {{name: sts-client, key: secret}}
    audience: {API_AUDIENCE}
    scopes: [tickets.read]
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: exchange-as-agent, namespace: default}}
spec:
  oauth2TokenExchange:
    tokenUrl: {sts}/token
    clientId: {GATEWAY_CLIENT_ID}
    clientSecretRef: {{name: sts-client, key: secret}}
    authMethod: client_secret_post
    resource: {TICKETS_RESOURCE}
    scopes: [tickets.read, tickets.write]
    actorToken: true
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: wrong-secret, namespace: default}}
spec:
  oauth2TokenExchange:
    tokenUrl: {sts}/token
    clientId: {GATEWAY_CLIENT_ID}
    clientSecretRef: {{name: sts-client-stale, key: secret}}
    audience: {API_AUDIENCE}
---
apiVersion: v1
kind: Secret
metadata: {{name: sts-client, namespace: default}}
stringData: {{secret: {GATEWAY_CLIENT_SECRET}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sts-client-stale, namespace: default}}
stringData: {{secret: {WRONG_SECRET}}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: users-via-claude-code, namespace: default}}
spec:
  subjects:
    - users: {{}}
      agents: {{clientIds: [claude-code]}}
  targets:
    - server: exchanged
      credentialProvider: exchange
    - server: misconfigured
      credentialProvider: wrong-secret
    - server: delegated
      credentialProvider: exchange-as-agent
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: users-via-triage-bot, namespace: default}}
spec:
  subjects:
    - users: {{}}
      agents: {{serviceAccounts: [agents/triage]}}
  targets:
    - server: delegated
      credentialProvider: exchange-as-agent
"#
    )
}

struct Setup {
    sts: TokenService,
    /// The Kubernetes ServiceAccount issuer (agents' tokens).
    cluster: OAuthServer,
    /// A second IdP the gateway trusts but the token service does not.
    partner: OAuthServer,
    gw: Gateway,
    _demo: DemoServer,
    dir: tempfile::TempDir,
}

fn setup() -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let cluster = OAuthServer::start()?;
    let partner = OAuthServer::start()?;
    let sts = TokenService::start(Some(&cluster.issuer))?;
    let demo = DemoServer::start(&dir.path().join("demo.log"))?;
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("all.yaml"),
        manifests(&sts.issuer, &cluster.issuer, &partner.issuer, &demo.url),
    )?;
    // Every level of the gateway's log, for the no-secrets-in-logs checks.
    let gw = Gateway::start_with_env(
        &m,
        &dir.path().join("gateway.log"),
        "127.0.0.1:0",
        &[],
        &[("RUST_LOG", "trace")],
    )?;
    Ok(Setup {
        sts,
        cluster,
        partner,
        gw,
        _demo: demo,
        dir,
    })
}

/// The headers the demo server received for a `whoami` call.
async fn whoami(client: &mcp::Client) -> anyhow::Result<Value> {
    let r = client
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await?;
    Ok(serde_json::from_str(&text_of(&r))?)
}

/// The bearer token in a recorded `Authorization` header.
fn bearer(seen: &Value) -> String {
    seen["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no bearer token reached the upstream: {seen}"))
        .to_string()
}

/// Verify `jwt` as an upstream would: `tests/node/verify-jwt.mjs` (jose) against the token
/// service's JWKS, checking issuer and audience; returns the payload.
fn verify_as_upstream(sts: &TokenService, audience: &str, jwt: &str) -> anyhow::Result<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("node")
        .arg(dir.join("node/verify-jwt.mjs"))
        .args([&format!("{}/jwks", sts.issuer), &sts.issuer, audience, jwt])
        .current_dir(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "jose: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["payload"].clone())
}

/// The upstream saw none of the client's credentials.
fn assert_no_client_credentials(seen: &Value, inbound: &[&str]) {
    for h in ["x-agent-authorization", "x-api-key", "cookie"] {
        assert_eq!(seen[h], "<none>", "{h} reached the upstream: {seen}");
    }
    let auth = seen["authorization"].as_str().unwrap_or_default();
    for t in inbound {
        assert!(
            !auth.contains(t),
            "a client token reached the upstream: {seen}"
        );
    }
}

/// No value in `secrets` appears in the gateway's log (every level) or audit lines.
fn assert_nothing_secret_in_log_or_audit(s: &Setup, secrets: &[&str]) -> anyhow::Result<()> {
    let log = std::fs::read_to_string(s.dir.path().join("gateway.log"))?;
    let audit = serde_json::to_string(&s.gw.audit())?;
    assert!(
        log.contains("TRACE"),
        "RUST_LOG=trace did not reach the gateway"
    );
    for secret in secrets {
        assert!(secret.len() >= 16, "too short to search for: {secret}");
        for (what, text) in [("log", &log), ("audit", &audit)] {
            assert!(
                !text.contains(secret),
                "a secret ({}…) appears in the gateway's {what}",
                &secret[..8]
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn two_users_same_agent_same_policy_each_get_their_own_exchanged_token_once()
-> anyhow::Result<()> {
    let s = setup()?;
    let url = s.gw.route("/mcp/exchanged");
    let alice = s.sts.user_token("alice", PUBLIC_URL).await?;
    let bob = s.sts.user_token("bob", PUBLIC_URL).await?;
    let auth = |t: &str| format!("Bearer {t}");

    let (ca, _) = mcp::connect_headers(&url, &[("authorization", &auth(&alice))]).await?;
    let (cb, _) = mcp::connect_headers(&url, &[("authorization", &auth(&bob))]).await?;
    let a_seen = whoami(&ca).await?;
    let b_seen = whoami(&cb).await?;
    assert_no_client_credentials(&a_seen, &[&alice, &bob]);
    assert_no_client_credentials(&b_seen, &[&alice, &bob]);

    // Each user's own token, issued by the token service for the configured audience and scope.
    let (a_jwt, b_jwt) = (bearer(&a_seen), bearer(&b_seen));
    assert_ne!(a_jwt, b_jwt);
    for (jwt, user) in [(&a_jwt, "alice"), (&b_jwt, "bob")] {
        let p = verify_as_upstream(&s.sts, API_AUDIENCE, jwt)?;
        assert_eq!(p["sub"], user, "{p}");
        assert_eq!(p["aud"], API_AUDIENCE, "{p}");
        assert_eq!(p["scope"], "tickets.read", "{p}");
        assert_eq!(p["client_id"], GATEWAY_CLIENT_ID, "{p}");
        assert!(p.get("act").is_none(), "no actor was configured: {p}");
    }

    // Cached per user: more calls, and a new session, reuse alice's token.
    assert_eq!(bearer(&whoami(&ca).await?), a_jwt);
    let (ca2, _) = mcp::connect_headers(&url, &[("authorization", &auth(&alice))]).await?;
    assert_eq!(bearer(&whoami(&ca2).await?), a_jwt);
    assert_eq!(bearer(&whoami(&cb).await?), b_jwt);
    let exchanges = s.sts.exchanges().await?;
    let count = |u: &str| exchanges.iter().filter(|e| e.sub == u).count();
    assert_eq!(
        (count("alice"), count("bob"), exchanges.len()),
        (1, 1, 2),
        "one exchange per user: {exchanges:?}"
    );
    assert!(exchanges.iter().all(|e| e.aud == [API_AUDIENCE]));

    // The same agent and policy decided both, and the audit names the credential provider.
    for user in ["alice", "bob"] {
        let r = s.gw.wait_audit(|r| {
            r["user"] == user && r["tool"] == "whoami" && r["server"] == "default/exchanged"
        })?;
        assert_eq!(r["agent"], "claude-code", "{r}");
        assert_eq!(r["policy"], "default/users-via-claude-code", "{r}");
        assert_eq!(r["credential_provider"], "default/exchange", "{r}");
        assert_eq!(r["decision"], "allow", "{r}");
    }
    for c in [ca, ca2, cb] {
        c.cancel().await?;
    }
    assert_nothing_secret_in_log_or_audit(
        &s,
        &[&alice, &bob, &a_jwt, &b_jwt, GATEWAY_CLIENT_SECRET],
    )
}

#[tokio::test]
async fn the_agents_token_is_the_actor_and_the_issued_token_names_it_in_act() -> anyhow::Result<()>
{
    let s = setup()?;
    let url = s.gw.route("/mcp/delegated");
    let sa = s
        .cluster
        .token(&[
            ("grant_type", "password"),
            ("username", TRIAGE_SA),
            ("password", "unused"),
            ("aud", "gatehouse"),
        ])
        .await?;
    let mut secrets = vec![sa.clone(), GATEWAY_CLIENT_SECRET.to_string()];
    for user in ["alice", "bob"] {
        let token = s.sts.user_token(user, PUBLIC_URL).await?;
        let (c, _) = mcp::connect_headers(
            &url,
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-agent-authorization", &format!("Bearer {sa}")),
            ],
        )
        .await?;
        let seen = whoami(&c).await?;
        assert_no_client_credentials(&seen, &[&token, &sa]);
        let jwt = bearer(&seen);
        let p = verify_as_upstream(&s.sts, TICKETS_RESOURCE, &jwt)?;
        assert_eq!(p["sub"], user, "{p}");
        assert_eq!(p["aud"], TICKETS_RESOURCE, "{p}");
        assert_eq!(p["scope"], "tickets.read tickets.write", "{p}");
        assert_eq!(
            p["act"],
            json!({"sub": TRIAGE_SA, "iss": s.cluster.issuer}),
            "{p}"
        );
        let r = s.gw.wait_audit(|r| {
            r["user"] == user && r["tool"] == "whoami" && r["server"] == "default/delegated"
        })?;
        assert_eq!(r["agent"], "agents/triage", "{r}");
        assert_eq!(r["policy"], "default/users-via-triage-bot", "{r}");
        assert_eq!(r["credential_provider"], "default/exchange-as-agent", "{r}");
        c.cancel().await?;
        secrets.extend([token, jwt]);
    }
    let exchanges = s.sts.exchanges().await?;
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    assert!(
        exchanges.iter().all(|e| e.act["sub"] == TRIAGE_SA),
        "{exchanges:?}"
    );

    // An agent known only from the user token's client claim has no token of its own to be the
    // actor: refused, rather than exchanged without recording the delegation.
    let token = s.sts.user_token("carol", PUBLIC_URL).await?;
    let error = initialize_error(&url, &token).await?;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("records the agent as actor"), "{error}");
    assert_eq!(
        s.sts.exchanges().await?.len(),
        2,
        "no exchange was attempted"
    );
    secrets.push(token);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_nothing_secret_in_log_or_audit(&s, &secrets)
}

#[tokio::test]
async fn exchange_failures_fail_closed_with_a_clear_audited_error() -> anyhow::Result<()> {
    let mut s = setup()?;
    let alice = s.sts.user_token("alice", PUBLIC_URL).await?;
    let carol = s.sts.user_token("carol", PUBLIC_URL).await?;
    let dave = s
        .partner
        .user_token("dave", "claude-code", PUBLIC_URL, "openid", json!({}))
        .await?;
    let mut secrets = vec![
        alice.clone(),
        carol.clone(),
        dave.clone(),
        GATEWAY_CLIENT_SECRET.to_string(),
        WRONG_SECRET.to_string(),
    ];

    // The token service refuses the gateway's client credentials.
    let e = initialize_error(&s.gw.route("/mcp/misconfigured"), &alice).await?;
    let msg = e["message"].as_str().unwrap_or_default();
    assert_eq!(e["code"], -32000, "{e}");
    assert!(
        msg.contains("CredentialProvider default/wrong-secret") && msg.contains("invalid_client"),
        "{e}"
    );
    let r = s.gw.wait_audit(|r| {
        r["user"] == "alice" && r["server"] == "default/misconfigured" && r["error"].is_string()
    })?;
    assert_eq!(r["error"], "credential_unavailable", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("invalid_client"),
        "{r}"
    );

    // A user the gateway trusts, but whose token the token service does not accept
    // (RFC 8693: invalid_request), gets the service's reason.
    let e = initialize_error(&s.gw.route("/mcp/exchanged"), &dave).await?;
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("CredentialProvider default/exchange")
            && msg.contains("invalid_request")
            && msg.contains("subject_token is invalid"),
        "{e}"
    );
    let r =
        s.gw.wait_audit(|r| r["user"] == "dave" && r["error"].is_string())?;
    assert_eq!(r["error"], "credential_unavailable", "{r}");
    assert_eq!(r["server"], "default/exchanged", "{r}");

    // Outage: alice's cached token keeps working; carol, who has none, fails closed.
    let url = s.gw.route("/mcp/exchanged");
    let (ca, _) =
        mcp::connect_headers(&url, &[("authorization", &format!("Bearer {alice}"))]).await?;
    let before = bearer(&whoami(&ca).await?);
    s.sts.stop();
    assert_eq!(bearer(&whoami(&ca).await?), before);
    let (ca2, _) =
        mcp::connect_headers(&url, &[("authorization", &format!("Bearer {alice}"))]).await?;
    assert_eq!(bearer(&whoami(&ca2).await?), before);
    let e = initialize_error(&url, &carol).await?;
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("CredentialProvider default/exchange") && msg.contains("unavailable"),
        "{e}"
    );
    let r =
        s.gw.wait_audit(|r| r["user"] == "carol" && r["error"].is_string())?;
    assert_eq!(r["error"], "credential_unavailable", "{r}");
    for c in [ca, ca2] {
        c.cancel().await?;
    }
    secrets.push(before);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_nothing_secret_in_log_or_audit(&s, &secrets)
}

async fn post_form(
    sts: &TokenService,
    form: Vec<(&'static str, String)>,
    client: Option<(&str, &str)>,
) -> anyhow::Result<(u16, Value)> {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sts.post(client, &pairs).await
}

/// The token service is a real check, not a rubber stamp: what the gateway tests rely on it
/// refusing, it refuses.
#[tokio::test]
async fn the_token_service_validates_what_it_exchanges() -> anyhow::Result<()> {
    let partner = OAuthServer::start()?;
    let sts = TokenService::start(None)?;
    let alice = sts.user_token("alice", PUBLIC_URL).await?;
    let client = Some((GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET));
    let exchange = |subject: &str, extra: &[(&'static str, String)]| {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE.to_string()),
            ("subject_token", subject.to_string()),
            ("subject_token_type", ACCESS_TOKEN_TYPE.to_string()),
        ];
        form.extend_from_slice(extra);
        form
    };
    let post = |form: Vec<(&'static str, String)>, client| post_form(&sts, form, client);
    let aud = ("audience", API_AUDIENCE.to_string());

    let (status, body) = post(exchange(&alice, std::slice::from_ref(&aud)), client).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["sub"],
        "alice"
    );

    // alice's signed token with bob's name put in it.
    let mut parts: Vec<String> = alice.split('.').map(str::to_string).collect();
    let mut claims = claims_of(&alice);
    claims["sub"] = "bob".into();
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let foreign = partner
        .user_token("alice", "claude-code", PUBLIC_URL, "openid", json!({}))
        .await?;
    for (what, form) in [
        (
            "tampered subject",
            exchange(&tampered, std::slice::from_ref(&aud)),
        ),
        (
            "foreign subject",
            exchange(&foreign, std::slice::from_ref(&aud)),
        ),
        (
            "foreign actor",
            exchange(
                &alice,
                &[
                    aud.clone(),
                    ("actor_token", foreign.clone()),
                    ("actor_token_type", ACCESS_TOKEN_TYPE.to_string()),
                ],
            ),
        ),
    ] {
        let (status, body) = post(form, client).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {body}"
        );
    }
    let (status, body) = post(
        exchange(&alice, std::slice::from_ref(&aud)),
        Some((GATEWAY_CLIENT_ID, WRONG_SECRET)),
    )
    .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = post(exchange(&alice, &[]), client).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    // Only the first request was granted.
    assert_eq!(sts.exchanges().await?.len(), 1);
    Ok(())
}

/// Cached tokens belong to a verified identity, not to a user name: "alice" at another IdP the
/// gateway trusts is another person, and never gets the token exchanged for corp's alice.
#[tokio::test]
async fn a_namesake_at_another_idp_never_gets_the_cached_token() -> anyhow::Result<()> {
    let s = setup()?;
    let url = s.gw.route("/mcp/exchanged");
    let alice = s.sts.user_token("alice", PUBLIC_URL).await?;
    let (ca, _) =
        mcp::connect_headers(&url, &[("authorization", &format!("Bearer {alice}"))]).await?;
    let corp_alice = bearer(&whoami(&ca).await?);
    ca.cancel().await?;

    let namesake = s
        .partner
        .user_token("alice", "claude-code", PUBLIC_URL, "openid", json!({}))
        .await?;
    match mcp::connect_headers(&url, &[("authorization", &format!("Bearer {namesake}"))]).await {
        Ok((c, _)) => {
            let seen = bearer(&whoami(&c).await?);
            panic!(
                "{}",
                if seen == corp_alice {
                    "partner's alice was given corp alice's exchanged token"
                } else {
                    "partner's alice reached the upstream, yet the token service refuses her tokens"
                }
            );
        }
        // The token service does not accept the partner's tokens: refused, as it should be.
        Err(e) => assert!(format!("{e:#}").contains("invalid_request"), "{e:#}"),
    }
    Ok(())
}
