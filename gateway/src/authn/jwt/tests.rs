//! Unit tests of JWT verification against an in-memory IdP (the end-to-end tests use a real
//! OAuth server).

use super::*;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header, encode};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) const ISS: &str = "https://idp.test";
const AUD: &str = "https://mcp.example.com";

pub(crate) struct TestKey {
    kid: String,
    enc: EncodingKey,
    jwk: Value,
}

pub(crate) fn mk_key(kid: &str) -> TestKey {
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    TestKey {
        kid: kid.to_string(),
        enc: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        jwk: serde_json::json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(private.n().to_bytes_be()), "e": b64(private.e().to_bytes_be()),
        }),
    }
}

/// In-memory stand-in for the IdP's discovery and JWKS endpoints (a test double: the
/// end-to-end tests use a real OIDC server).
pub(crate) struct FakeIdp {
    jwks: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl JsonFetcher for Arc<FakeIdp> {
    fn get_json(&self, url: &str) -> BoxFuture<'static, Result<Value, String>> {
        let this = self.clone();
        let url = url.to_string();
        Box::pin(async move {
            if this.down.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            if url.ends_with("/.well-known/openid-configuration") {
                return Ok(serde_json::json!({"issuer": ISS, "jwks_uri": format!("{ISS}/jwks")}));
            }
            this.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(serde_json::json!({"keys": this.jwks.lock().unwrap().clone()}))
        })
    }
}

impl FakeIdp {
    /// An IdP publishing `keys`.
    pub(crate) fn serving(keys: &[&TestKey]) -> Arc<FakeIdp> {
        Arc::new(FakeIdp {
            jwks: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
            down: Default::default(),
        })
    }
}

fn mk_verifier(keys: &[&TestKey], scopes: &[&str]) -> (JwtVerifier, Arc<FakeIdp>) {
    let idp = FakeIdp::serving(keys);
    let settings = JwtSettings {
        provider: "corp".into(),
        issuer: ISS.into(),
        audiences: vec![AUD.into()],
        jwks_uri: None,
        mapping: Mapping::User {
            user_claim: "sub".into(),
            email_claim: "email".into(),
            groups_claim: "groups".into(),
            client_claim: None,
        },
        required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        clock_skew: Duration::from_secs(60),
    };
    (JwtVerifier::new(settings, Arc::new(idp.clone())), idp)
}

pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(crate) fn token(key: &TestKey, claims: Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(key.kid.clone());
    encode(&h, &claims, &key.enc).unwrap()
}

fn claims() -> Value {
    serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": "u-123", "email": "ana@example.com",
        "groups": ["eng", "oncall"], "azp": "claude-code", "scope": "mcp:tools openid",
        "iat": now(), "exp": now() + 300,
    })
}

#[tokio::test]
async fn verifies_and_maps_user_and_agent() {
    let k = mk_key("k1");
    let (v, _) = mk_verifier(&[&k], &["mcp:tools"]);
    let got = v.verify(&token(&k, claims()), now()).await.unwrap();
    let user = got.user.unwrap();
    assert_eq!(user.id, "u-123");
    assert_eq!(user.email.as_deref(), Some("ana@example.com"));
    assert_eq!(user.groups, vec!["eng", "oncall"]);
    assert_eq!(user.provider, "corp");
    assert_eq!(got.agent.unwrap().id, "claude-code");
}

#[tokio::test]
async fn rejects_wrong_audience_issuer_expired_and_future_tokens() {
    let k = mk_key("k1");
    let (v, _) = mk_verifier(&[&k], &[]);
    let cases = [
        (
            "aud",
            serde_json::json!("https://other.example.com"),
            "wrong audience",
        ),
        (
            "iss",
            serde_json::json!("https://evil.test"),
            "wrong issuer",
        ),
        ("exp", serde_json::json!(now() - 3600), "expired"),
        ("nbf", serde_json::json!(now() + 3600), "not valid yet"),
        (
            "iat",
            serde_json::json!(now() + 3600),
            "issued in the future",
        ),
    ];
    for (claim, value, want) in cases {
        let mut c = claims();
        c[claim] = value;
        let err = v.verify(&token(&k, c), now()).await.unwrap_err();
        assert!(err.to_string().contains(want), "{claim}: {err}");
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert!(
        v.verify(&token(&k, c), now()).await.is_err(),
        "aud is required"
    );
}

#[tokio::test]
async fn refuses_none_and_hmac_with_the_public_key() {
    let k = mk_key("k1");
    let (v, _) = mk_verifier(&[&k], &[]);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","kid":"k1"}"#),
        b64(&claims().to_string())
    );
    assert!(matches!(
        v.verify(&none, now()).await,
        Err(TokenError::Malformed | TokenError::Algorithm(_))
    ));
    // HS256 signed with the RSA modulus as the "secret": the classic confusion attack.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let forged = encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(k.jwk["n"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    assert!(matches!(
        v.verify(&forged, now()).await,
        Err(TokenError::Algorithm(_))
    ));
    // A valid token with a signature from another key.
    let other = mk_key("k1");
    let err = v.verify(&token(&other, claims()), now()).await.unwrap_err();
    assert!(err.to_string().contains("bad signature"), "{err}");
}

#[tokio::test]
async fn unknown_kid_refreshes_once_and_is_rate_limited() {
    let k1 = mk_key("k1");
    let k2 = mk_key("k2");
    let (v, idp) = mk_verifier(&[&k1], &[]);
    v.verify(&token(&k1, claims()), now()).await.unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    // The IdP rotates to k2: the first k2 token triggers one refresh and succeeds.
    idp.jwks.lock().unwrap().push(k2.jwk.clone());
    v.verify(&token(&k2, claims()), now()).await.unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Tokens with random kids do not hammer the IdP.
    let k3 = mk_key("k3");
    for _ in 0..5 {
        assert_eq!(
            v.verify(&token(&k3, claims()), now()).await.unwrap_err(),
            TokenError::UnknownKey
        );
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn verified_tokens_are_cached_and_cached_keys_survive_an_outage() {
    let k = mk_key("k1");
    let (v, idp) = mk_verifier(&[&k], &[]);
    let t = token(&k, claims());
    v.verify(&t, now()).await.unwrap();
    idp.down.store(true, Ordering::SeqCst);
    v.verify(&t, now()).await.unwrap();
    // A new token still verifies with the cached keys while the IdP is down.
    let mut c = claims();
    c["sub"] = "u-456".into();
    assert_eq!(
        v.verify(&token(&k, c), now())
            .await
            .unwrap()
            .user
            .unwrap()
            .id,
        "u-456"
    );
    // Cached verification still honours expiry.
    let later = now() + 3600;
    assert!(v.verify(&t, later).await.is_err());
}

#[tokio::test]
async fn missing_required_scope_is_insufficient_scope() {
    let k = mk_key("k1");
    let (v, _) = mk_verifier(&[&k], &["mcp:tools", "mcp:admin"]);
    let err = v.verify(&token(&k, claims()), now()).await.unwrap_err();
    assert_eq!(err, TokenError::InsufficientScope(vec!["mcp:admin".into()]));
}

#[tokio::test]
async fn service_account_tokens_identify_agents_alone() {
    let k = mk_key("k1");
    let (mut v, _) = mk_verifier(&[&k], &[]);
    v.settings.mapping = Mapping::ServiceAccount;
    let mut c = claims();
    c["sub"] = "system:serviceaccount:agents:triage-bot".into();
    let got = v.verify(&token(&k, c), now()).await.unwrap();
    assert!(got.user.is_none());
    let agent = got.agent.unwrap();
    assert_eq!(
        (agent.kind, agent.id.as_str()),
        (AgentKind::ServiceAccount, "agents/triage-bot")
    );
    let mut c = claims();
    c["sub"] = "alice".into();
    assert!(v.verify(&token(&k, c), now()).await.is_err());
}

#[tokio::test]
async fn idp_down_with_no_keys_fails_closed() {
    let k = mk_key("k1");
    let (v, idp) = mk_verifier(&[&k], &[]);
    idp.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        v.verify(&token(&k, claims()), now()).await,
        Err(TokenError::Unavailable(_))
    ));
}

#[test]
fn the_claimed_issuer_is_read_from_the_payload_alone() {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = |payload: &str| format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(payload));
    let iss = |payload: &str| JwtVerifier::claims_issuer(&token(payload));
    assert_eq!(
        iss(r#"{"sub":"u1","iss":"https://idp.example","aud":["a","b"],"x":{"y":[1]}}"#).as_deref(),
        Some("https://idp.example")
    );
    assert_eq!(
        iss(r#"{"iss":"https:\/\/idp.example\u002f"}"#).as_deref(),
        Some("https://idp.example/"),
        "escapes are decoded"
    );
    for no_issuer in [
        r#"{"sub":"u1"}"#,
        r#"{"iss":7}"#,
        r#"{"iss":"https://a","iss":"https://b"}"#,
        r#"["iss"]"#,
        "not json",
    ] {
        assert_eq!(iss(no_issuer), None, "{no_issuer}");
    }
    assert_eq!(JwtVerifier::claims_issuer("no-dots"), None);
}
