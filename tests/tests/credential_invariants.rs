//! Credential invariants over one full run with real peers: two users behind the same agent and
//! the same policy reach the same upstream with their *own* credentials (per-user consent and
//! gateway-minted JWTs, proven by what the upstream received); minted JWTs verify with `jose`
//! against the gateway's JWKS; and no secret or token used anywhere in the run appears in the
//! gateway's log (every level: `RUST_LOG=trace`), its audit lines or its `/metrics`.

use gatehouse_tests::consent::{
    SAAS_CLIENT_SECRET, STORE_KEY, Setup, connect, elicitation, follow_consent, initialize_error,
    setup_with, signed_jwt_manifests, whoami,
};
use gatehouse_tests::oauth::claims_of;
use serde_json::Value;
use std::path::Path;

/// Verify `jwt` as an upstream would: `tests/node/verify-jwt.mjs` (jose) against the JWKS.
fn verify_with_jose(jwks: &str, issuer: &str, audience: &str, jwt: &str) -> anyhow::Result<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("node")
        .arg(dir.join("node/verify-jwt.mjs"))
        .args([jwks, issuer, audience, jwt])
        .current_dir(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "jose: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Consent as `user`, returning the values the browser saw (`state`, cookie nonce).
async fn consent_collecting(s: &Setup, token: &str, user: &str) -> anyhow::Result<Vec<String>> {
    let e = elicitation(&initialize_error(&s.url(), token).await?)?;
    let trip = follow_consent(&e.url, user).await?;
    anyhow::ensure!(trip.result.0 == 200, "{:?}", trip.result);
    let nonce = trip
        .cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let state = trip.authorize.get("state").unwrap_or_default().to_string();
    Ok(vec![nonce, state])
}

#[tokio::test]
async fn two_users_same_agent_same_policy_own_credentials_and_no_secret_in_logs_audit_or_metrics()
-> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?; // EC P-256
    let pem = key.serialize_pem();
    let s = setup_with(&[("RUST_LOG", "trace")], |up| {
        signed_jwt_manifests(&pem, up)
    })?;
    let alice = s.token("u-alice", "claude-code").await?;
    let bob = s.token("u-bob", "claude-code").await?;
    let mut secrets = vec![alice.clone(), bob.clone()];
    secrets.extend(consent_collecting(&s, &alice, "alice").await?);
    secrets.extend(consent_collecting(&s, &bob, "bob").await?);

    // Per-user consent: each user's own SaaS token, same agent, same policy, same upstream.
    let (ca, cb) = (
        connect(&s.url(), &alice).await?,
        connect(&s.url(), &bob).await?,
    );
    let (a_seen, b_seen) = (whoami(&ca).await?, whoami(&cb).await?);
    assert_ne!(a_seen, b_seen);
    assert_eq!(
        claims_of(a_seen.trim_start_matches("Bearer "))["sub"],
        "alice"
    );
    assert_eq!(
        claims_of(b_seen.trim_start_matches("Bearer "))["sub"],
        "bob"
    );
    for user in ["u-alice", "u-bob"] {
        let r = s.gw.wait_audit(|r| {
            r["user"] == user && r["tool"] == "whoami" && r["server"] == "default/saas"
        })?;
        assert_eq!(r["agent"], "claude-code", "{r}");
        assert_eq!(r["policy"], "default/eng-agents", "{r}");
    }

    // Gateway-minted JWTs: each names its user and the agent, and verifies against the JWKS.
    let minted_url = s.gw.route("/mcp/minted");
    let jwks = format!("{}/.well-known/jwks.json", s.public);
    let mut minted = Vec::new();
    for (token, user) in [(&alice, "u-alice"), (&bob, "u-bob")] {
        let c = connect(&minted_url, token).await?;
        let seen = whoami(&c).await?;
        let jwt = seen
            .strip_prefix("Bearer ")
            .expect("a bearer JWT")
            .to_string();
        let v = verify_with_jose(&jwks, &s.public, "https://upstream.example.com", &jwt)?;
        assert_eq!(v["header"]["alg"], "ES256", "{v}");
        assert_eq!(v["payload"]["sub"], user, "{v}");
        assert_eq!(v["payload"]["act"]["sub"], "claude-code", "{v}");
        assert_eq!(v["payload"]["azp"], "claude-code", "{v}");
        let p = &v["payload"];
        assert_eq!(p["exp"].as_u64().unwrap() - p["iat"].as_u64().unwrap(), 120);
        minted.push(jwt);
        c.cancel().await?;
    }
    assert_ne!(minted[0], minted[1]);
    secrets.extend(minted);
    for c in [ca, cb] {
        c.cancel().await?;
    }

    // Everything secret in this run: inbound tokens, consent state and cookie, every code,
    // access and refresh token the SaaS server issued, minted JWTs, the client secret, the
    // store key (as configured and decoded), and the signing key.
    let issued = s.saas.issued().await?;
    assert!(issued.access.len() >= 2 && issued.refresh.len() >= 2 && issued.codes.len() >= 2);
    secrets.extend(issued.codes);
    secrets.extend(issued.access);
    secrets.extend(issued.refresh);
    secrets.push(SAAS_CLIENT_SECRET.to_string());
    secrets.push(STORE_KEY.to_string());
    secrets.push("0123456789abcdef0123456789abcdef".to_string());
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_string),
    );
    secrets.retain(|v| v.len() >= 16);

    let log = std::fs::read_to_string(s.dir.path().join("gateway.log"))?;
    let audit = serde_json::to_string(&s.gw.audit())?;
    let metrics = s.gw.metrics();
    // The capture is real: it holds this run's activity at every level.
    assert!(log.contains("consent completed"), "log capture is empty?");
    assert!(
        log.contains("TRACE"),
        "RUST_LOG=trace did not reach the gateway"
    );
    assert!(audit.contains("u-bob") && metrics.contains("default/saas"));
    for (what, text) in [("log", &log), ("audit", &audit), ("metrics", &metrics)] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret ({}…) appears in the gateway's {what}",
                &secret[..6]
            );
        }
    }
    Ok(())
}
