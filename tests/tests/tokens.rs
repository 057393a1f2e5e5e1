//! The adversarial token suite: every way a bearer token can be wrong, against a gateway
//! trusting a real IdP (`oauth2-mock-server`). Each is refused with 401 and an audit line whose
//! reason says why — and never contains the token. Also: the IdP rotates its signing key
//! mid-test and requests keep working.

use base64::Engine;
use gatehouse_tests::mcp;
use gatehouse_tests::oauth::{OAuthServer, claims_of, kid_of};
use gatehouse_tests::procs::Gateway;
use serde_json::json;

const PUBLIC_URL: &str = "http://localhost:18080";

fn manifests(idp: &str) -> String {
    format!(
        r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  publicUrl: {PUBLIC_URL}
  trustProviders: [corp]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: corp, namespace: default}}
spec:
  oidc:
    issuer: {idp}
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: demo, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: http://127.0.0.1:9/mcp
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: other, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: http://127.0.0.1:9/mcp
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: everyone, namespace: default}}
spec:
  subjects:
    - users: {{}}
  targets:
    - server: demo
    - server: other
"#
    )
}

fn start(idp: &OAuthServer) -> anyhow::Result<(Gateway, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    std::fs::write(m.join("all.yaml"), manifests(&idp.issuer))?;
    let gw = Gateway::start(&m, &dir.path().join("gateway.log"), &[])?;
    Ok((gw, dir))
}

/// POST `initialize` with `auth` (sent as `Authorization`) to `path`; status and body.
async fn initialize(gw: &Gateway, path: &str, auth: &str) -> anyhow::Result<(u16, String)> {
    let resp = mcp::http_client(None)
        .post(gw.route(path))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", auth)
        .body(gatehouse_tests::raw::initialize_body("2025-06-18"))
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_reason_audited() -> anyhow::Result<()> {
    let idp = OAuthServer::start()?;
    let (gw, _dir) = start(&idp)?;
    let user = |claims: serde_json::Value| {
        idp.user_token("u-1", "claude-code", PUBLIC_URL, "openid", claims)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();

    let good = user(json!({})).await?;
    // A valid token gets past authentication (the upstream is down: 502, not 401).
    let (status, _) = initialize(&gw, "/mcp/demo", &format!("Bearer {good}")).await?;
    assert_eq!(status, 502, "a valid token must authenticate");

    let [h, p, sig]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut tampered_claims = claims_of(&good);
    tampered_claims["sub"] = "admin".into();
    let tampered = format!("{h}.{}.{sig}", b64(tampered_claims.to_string().as_bytes()));
    let none = format!(
        "{}.{p}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": kid_of(&good)})
            .to_string()
            .as_bytes())
    );
    // HS256 "signed" with the issuer's public RSA key material: the algorithm-confusion attack.
    let jwks: serde_json::Value = mcp::http_client(None)
        .get(format!("{}/jwks", idp.issuer))
        .send()
        .await?
        .json()
        .await?;
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_string();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid_of(&good));
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims_of(&good),
        &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
    )?;
    let foreign = OAuthServer::start()?;
    let mut foreign_token = foreign
        .user_token("u-1", "claude-code", PUBLIC_URL, "openid", json!({}))
        .await?;
    // Same issuer name, but signed by a key the real issuer never published: unknown kid.
    let forged_iss = foreign
        .user_token(
            "u-1",
            "claude-code",
            PUBLIC_URL,
            "openid",
            json!({"iss": idp.issuer}),
        )
        .await?;
    let oversized = format!("{h}.{}.{sig}", "A".repeat(20_000));

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired",
            user(json!({"exp": now - 600})).await?,
            "/mcp/demo",
            "expired",
        ),
        (
            "not yet valid",
            user(json!({"nbf": now + 3600})).await?,
            "/mcp/demo",
            "not valid yet",
        ),
        (
            "issued in the future",
            user(json!({"iat": now + 3600})).await?,
            "/mcp/demo",
            "issued in the future",
        ),
        (
            "wrong issuer",
            user(json!({"iss": "https://evil.example.com"})).await?,
            "/mcp/demo",
            "not trusted",
        ),
        (
            "untrusted IdP",
            std::mem::take(&mut foreign_token),
            "/mcp/demo",
            "not trusted",
        ),
        ("unknown kid", forged_iss, "/mcp/demo", "unknown key"),
        (
            "another resource's token (confused deputy)",
            idp.user_token(
                "u-1",
                "claude-code",
                &format!("{PUBLIC_URL}/mcp/other"),
                "openid",
                json!({}),
            )
            .await?,
            "/mcp/demo",
            "wrong audience",
        ),
        (
            "another service's token",
            user(json!({"aud": "https://api.example.com"})).await?,
            "/mcp/demo",
            "wrong audience",
        ),
        ("alg none", none, "/mcp/demo", "not accepted"),
        (
            "HS256 with the public key",
            hs256,
            "/mcp/demo",
            "not accepted",
        ),
        ("tampered payload", tampered, "/mcp/demo", "bad signature"),
        ("oversized", oversized, "/mcp/demo", "larger than"),
    ];
    for (name, token, path, want) in &cases {
        let (status, body) = initialize(&gw, path, &format!("Bearer {token}")).await?;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(body.contains(want), "{name}: expected {want:?} in {body}");
        let record = gw.wait_audit(|r| {
            r["error"] == "unauthenticated"
                && r["reason"].as_str().is_some_and(|s| s.contains(want))
        })?;
        let line = record.to_string();
        assert!(
            !line.contains(token.as_str()),
            "{name}: token in the audit line"
        );
    }
    // The route-specific token is good for its own route.
    let own = idp
        .user_token(
            "u-1",
            "claude-code",
            &format!("{PUBLIC_URL}/mcp/other"),
            "openid",
            json!({}),
        )
        .await?;
    assert_eq!(
        initialize(&gw, "/mcp/other", &format!("Bearer {own}"))
            .await?
            .0,
        502
    );

    // A token in the query string is refused even when valid.
    let resp = mcp::http_client(None)
        .post(format!("{}?access_token={good}", gw.route("/mcp/demo")))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(gatehouse_tests::raw::initialize_body("2025-06-18"))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await?.contains("query string"));
    let audit = serde_json::to_string(&gw.audit())?;
    assert!(!audit.contains(&good), "a token reached the audit log");
    Ok(())
}

#[tokio::test]
async fn idp_key_rotation_mid_session_does_not_fail_requests() -> anyhow::Result<()> {
    let idp = OAuthServer::start()?;
    let (gw, _dir) = start(&idp)?;
    let before = idp
        .user_token("u-1", "claude-code", PUBLIC_URL, "openid", json!({}))
        .await?;
    assert_eq!(
        initialize(&gw, "/mcp/demo", &format!("Bearer {before}"))
            .await?
            .0,
        502
    );

    let new_kid = idp.rotate_key().await?;
    let mut after = String::new();
    // The mock signs with its keys in turn (client credentials issue no ID token, so every call
    // advances the rotation by one).
    for _ in 0..4 {
        let t = idp
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", "svc"),
                ("aud", PUBLIC_URL),
            ])
            .await?;
        if kid_of(&t) == new_kid {
            after = t;
            break;
        }
    }
    assert!(!after.is_empty(), "the IdP never signed with the new key");
    // Signed with a key the gateway has not seen: it refreshes the JWKS once and accepts.
    assert_eq!(
        initialize(&gw, "/mcp/demo", &format!("Bearer {after}"))
            .await?
            .0,
        502
    );
    // Tokens signed with the old key keep working.
    assert_eq!(
        initialize(&gw, "/mcp/demo", &format!("Bearer {before}"))
            .await?
            .0,
        502
    );
    Ok(())
}
