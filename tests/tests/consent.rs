//! Per-user consent (`oauth2AuthorizationCode`) end to end, headless: real user tokens from
//! `oauth2-mock-server` (the corporate IdP), a second `oauth2-mock-server` as the "SaaS"
//! authorization server (`tests/node/saas-server.mjs`: real code + PKCE S256 checks, rotating
//! refresh tokens, revocation), the gateway and the demo MCP server as processes.
//!
//! - no grant → `-32042` URL elicitation with a consent link on the gateway; the link starts
//!   code + PKCE with the exact redirect URI; the callback stores the grant; it works once;
//! - the grant is keyed to the user: another agent of the same user needs no consent, another
//!   user behind the same agent and policy does, and a new gateway process reuses the store;
//! - refresh before expiry with rotating refresh tokens; a revoked grant → a fresh prompt.

use gatehouse_tests::consent::{
    SAAS_CLIENT_ID, connect, consent, elicitation, follow_consent, get, initialize_error, setup,
    whoami,
};
use gatehouse_tests::mcp::call;
use gatehouse_tests::oauth::claims_of;
use gatehouse_tests::procs::Gateway;
use serde_json::json;

#[tokio::test]
async fn consent_once_then_every_allowed_agent_of_the_user_shares_the_grant() -> anyhow::Result<()>
{
    let s = setup(&[])?;
    let alice = s.token("u-alice", "claude-code").await?;

    // No grant yet: a URL-mode elicitation, not a generic error.
    let error = initialize_error(&s.url(), &alice).await?;
    let e = elicitation(&error)?;
    assert!(
        e.url.starts_with(&format!("{}/oauth/consent/", s.public)),
        "{e:?}"
    );
    assert!(!e.url.contains("alice"), "the link is opaque: {}", e.url);
    assert!(e.message.contains("default/saas-oauth"), "{e:?}");
    assert!(!e.id.is_empty());
    let record = s.gw.wait_audit(|r| r["error"] == "consent_required")?;
    assert_eq!(record["user"], "u-alice", "{record}");
    assert!(s.stored().is_empty());

    // The browser trip: the gateway starts code + PKCE S256 with the exact redirect URI.
    let trip = follow_consent(&e.url, "alice").await?;
    let a = &trip.authorize;
    assert_eq!(a.base, format!("{}/authorize", s.saas.url()));
    assert_eq!(a.get("response_type"), Some("code"));
    assert_eq!(a.get("client_id"), Some(SAAS_CLIENT_ID));
    let callback = format!("{}/oauth/callback", s.public);
    assert_eq!(a.get("redirect_uri"), Some(callback.as_str()));
    assert_eq!(a.get("code_challenge_method"), Some("S256"));
    assert_eq!(a.get("code_challenge").map(str::len), Some(43));
    assert_eq!(a.get("scope"), Some("files.read"));
    assert!(!a.get("state").unwrap_or_default().contains("alice"));
    assert!(trip.cookie.contains("HttpOnly"), "{}", trip.cookie);
    assert!(trip.cookie.contains("SameSite=Lax"), "{}", trip.cookie);
    assert_eq!(trip.result.0, 200, "{}", trip.result.1);
    assert!(trip.result.1.contains("Connected"), "{}", trip.result.1);

    // The callback works once, and only in the browser that started it.
    let pair = trip.cookie.split(';').next().unwrap().to_string();
    let (status, page) = get(&trip.callback, Some(&pair)).await?;
    assert_eq!(status, 400, "a replayed callback is refused: {page}");
    let (status, page) = get(&trip.callback, None).await?;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("another browser"), "{page}");

    // Alice, through Claude Code: her SaaS token reaches the upstream (not her IdP token).
    let c = connect(&s.url(), &alice).await?;
    let seen = whoami(&c).await?;
    let saas_token = seen.strip_prefix("Bearer ").expect("a bearer token");
    assert_ne!(saas_token, alice, "token passthrough");
    assert_eq!(claims_of(saas_token)["sub"], "alice");
    assert_eq!(claims_of(saas_token)["iss"], s.saas.url());
    c.cancel().await?;

    // Alice through another agent the policy allows: the same grant, no consent.
    let alice_cursor = s.token("u-alice", "cursor").await?;
    let c = connect(&s.url(), &alice_cursor).await?;
    assert_eq!(whoami(&c).await?, seen);
    c.cancel().await?;
    let via_cursor =
        s.gw.wait_audit(|r| r["agent"] == "cursor" && r["tool"] == "whoami")?;
    assert_eq!(via_cursor["policy"], "default/eng-agents", "{via_cursor}");

    // Bob, same agent, same policy: his own consent, never alice's grant.
    let bob = s.token("u-bob", "claude-code").await?;
    elicitation(&initialize_error(&s.url(), &bob).await?)?;

    // One file, sealed: no token in it.
    let files = s.stored();
    assert_eq!(files.len(), 1);
    let text = String::from_utf8_lossy(&files[0]);
    let issued = s.saas.issued().await?;
    for t in issued.access.iter().chain(&issued.refresh) {
        assert!(
            !text.contains(t.as_str()),
            "a token in the store, unencrypted"
        );
    }

    // A new gateway process on the same store serves alice without asking again.
    let gw2 = Gateway::start(
        &s.manifests,
        &s.dir.path().join("gateway2.log"),
        &["--token-store", s.store.to_str().unwrap()],
    )?;
    let c = connect(&gw2.route("/mcp/saas"), &alice).await?;
    assert_eq!(whoami(&c).await?, seen);
    c.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_revoked_grant_asks_for_consent_again() -> anyhow::Result<()> {
    let s = setup(&[])?;
    // Tokens that expire within the refresh margin: every use refreshes.
    s.saas.set_ttl(1).await?;
    let alice = s.token("u-alice", "claude-code").await?;
    consent(&s, &alice, "alice").await?;

    let c = connect(&s.url(), &alice).await?;
    let first = whoami(&c).await?;
    let second = whoami(&c).await?;
    assert_ne!(first, second, "refreshed before expiry");
    let third = whoami(&c).await?;
    assert_ne!(second, third);
    // Each refresh token works once at the SaaS server: every refresh succeeding proves the
    // gateway stored and used the rotated one.
    let refreshed = s.saas.issued().await?.refreshes;
    assert!(refreshed >= 3, "{refreshed} refreshes");
    assert_eq!(
        claims_of(third.trim_start_matches("Bearer "))["sub"],
        "alice"
    );

    // The user revokes the grant at the provider: the next call is a fresh consent prompt.
    s.saas.revoke("alice").await?;
    let err = c
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await
        .expect_err("a revoked grant cannot be used");
    let rmcp::ServiceError::McpError(data) = err else {
        panic!("expected a JSON-RPC error, got {err:?}");
    };
    let e = elicitation(&serde_json::to_value(&data)?)?;
    assert!(e.message.contains("revoked"), "{e:?}");
    assert!(s.stored().is_empty(), "the dead grant is deleted");
    let record =
        s.gw.wait_audit(|r| r["error"] == "consent_required" && r["tool"] == "whoami")?;
    assert_eq!(record["user"], "u-alice", "{record}");

    // Consenting again restores access, in the same MCP session.
    let trip = follow_consent(&e.url, "alice").await?;
    assert_eq!(trip.result.0, 200, "{}", trip.result.1);
    let after = whoami(&c).await?;
    assert_eq!(
        claims_of(after.trim_start_matches("Bearer "))["sub"],
        "alice"
    );
    c.cancel().await?;
    Ok(())
}
