//! OAuth 2.0 token endpoints as credential sources: the client-credentials grant (the gateway's
//! own token for an upstream) and token exchange (RFC 8693: the user's token, optionally with
//! the agent's as actor, exchanged for one for the upstream).
//!
//! Tokens are cached per key until shortly before expiry ([`REFRESH_MARGIN`]); concurrent misses
//! for one key make a single upstream call (single flight); while the provider is down, cached
//! tokens are served until they expire, then requests fail closed with a clear error.
//!
//! A provider's error text reaches users and the audit log, so it is cleaned first: any secret
//! the request carried (a subject token echoed back, the client secret) is redacted, and the
//! text is bounded ([`MAX_PROVIDER_TEXT`]).

use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Refresh a token this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the provider does not say (`expires_in` absent).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest provider-supplied text (`error`, `error_description`) kept in an error, in bytes.
pub const MAX_PROVIDER_TEXT: usize = 300;

/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of OAuth access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 token type of JWTs (an access token in JWT form is injectable too).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Form parameters whose values are secrets: never echoed into an error.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "subject_token",
    "actor_token",
    "code",
    "code_verifier",
    "refresh_token",
    "assertion",
    "password",
];

/// Posts a form to a token endpoint.
pub trait TokenEndpoint: Send + Sync + 'static {
    /// POST `form` (urlencoded) to `url` with extra `headers`; returns the status and JSON body.
    fn post_form(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        form: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(u16, Value), String>>;
}

/// How the gateway authenticates to the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP basic.
    ClientSecretBasic,
    /// In the form body.
    ClientSecretPost,
    /// RFC 7523 client assertion signed with a private key (PEM, RSA or EC).
    PrivateKeyJwt,
    /// Public client.
    None,
}

impl AuthMethod {
    /// Parse the snapshot's name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "client_secret_basic" => Self::ClientSecretBasic,
            "client_secret_post" => Self::ClientSecretPost,
            "private_key_jwt" => Self::PrivateKeyJwt,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// The gateway's client registration at a token endpoint.
pub struct ClientAuth {
    /// Token endpoint URL.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret, or PEM private key for `private_key_jwt`.
    pub secret: Option<Zeroizing<String>>,
    /// Method.
    pub method: AuthMethod,
}

/// Why no token could be obtained. Never contains a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFetchError {
    /// The provider answered with an OAuth error.
    #[error("token endpoint {url} refused: {error}{}", .description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// Endpoint.
        url: String,
        /// `error`.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
    /// The provider could not be reached or answered nonsense.
    #[error("token endpoint {url} unavailable: {reason}")]
    Unavailable {
        /// Endpoint.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The provider answered with something the gateway must not inject (RFC 8693: a token
    /// exchange that issued another kind of token than an access token).
    #[error("token endpoint {url} issued an unusable token: {reason}")]
    Unusable {
        /// Endpoint.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Misconfiguration (e.g. an unusable private key).
    #[error("{0}")]
    Config(String),
}

/// A token with its expiry.
#[derive(Clone)]
pub struct Token {
    /// The access token.
    pub value: Arc<Zeroizing<String>>,
    /// When it stops being usable.
    pub expires_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's whole answer: the access token, its lifetime, and the refresh token if
/// one was issued.
pub struct TokenSet {
    /// The access token.
    pub access: Token,
    /// `expires_in` (or [`DEFAULT_LIFETIME`]).
    pub lifetime: Duration,
    /// `refresh_token`, when issued (rotating providers issue a new one on every refresh).
    pub refresh: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access", &self.access)
            .field("lifetime", &self.lifetime)
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ClientAuth {
    fn apply(
        &self,
        headers: &mut Vec<(String, String)>,
        form: &mut Vec<(String, String)>,
    ) -> Result<(), TokenFetchError> {
        use base64::Engine;
        let secret = || {
            self.secret.as_ref().ok_or_else(|| {
                TokenFetchError::Config(format!(
                    "client {}: no client secret configured",
                    self.client_id
                ))
            })
        };
        match self.method {
            AuthMethod::ClientSecretBasic => {
                // RFC 6749 §2.3.1: form-urlencode id and secret before base64.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&self.client_id), enc(secret()?));
                let b64 = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
                );
                headers.push(("authorization".into(), format!("Basic {}", b64.as_str())));
            }
            AuthMethod::ClientSecretPost => {
                form.push(("client_id".into(), self.client_id.clone()));
                form.push(("client_secret".into(), secret()?.to_string()));
            }
            AuthMethod::PrivateKeyJwt => {
                let pem = secret()?;
                let (key, alg) = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map(|k| (k, Algorithm::RS256))
                    .or_else(|_| {
                        EncodingKey::from_ec_pem(pem.as_bytes()).map(|k| (k, Algorithm::ES256))
                    })
                    .map_err(|_| {
                        TokenFetchError::Config(format!(
                            "client {}: the private_key_jwt key is not an RSA or EC P-256 PEM key",
                            self.client_id
                        ))
                    })?;
                let now = jsonwebtoken::get_current_timestamp();
                let claims = serde_json::json!({
                    "iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                    "iat": now, "exp": now + 60, "jti": random_id(),
                });
                let assertion =
                    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(|e| {
                        TokenFetchError::Config(format!("signing client assertion: {e}"))
                    })?;
                form.push(("client_id".into(), self.client_id.clone()));
                form.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion".into(), assertion));
            }
            AuthMethod::None => form.push(("client_id".into(), self.client_id.clone())),
        }
        Ok(())
    }

    /// Request a token with `grant` parameters.
    pub async fn request(
        &self,
        endpoint: &dyn TokenEndpoint,
        form: Vec<(String, String)>,
    ) -> Result<Token, TokenFetchError> {
        self.request_set(endpoint, form).await.map(|set| set.access)
    }

    /// Request a token with `grant` parameters and keep the whole token set (the refresh token
    /// of the authorization-code and refresh grants).
    pub async fn request_set(
        &self,
        endpoint: &dyn TokenEndpoint,
        mut form: Vec<(String, String)>,
    ) -> Result<TokenSet, TokenFetchError> {
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        self.apply(&mut headers, &mut form)?;
        let exchange = form
            .iter()
            .any(|(k, v)| k == "grant_type" && v == TOKEN_EXCHANGE_GRANT);
        // What the request reveals, so that no error repeats it.
        let secrets: Vec<Zeroizing<String>> = form
            .iter()
            .filter(|(k, _)| SECRET_PARAMS.contains(&k.as_str()))
            .map(|(_, v)| v)
            .chain(self.secret.as_deref())
            .map(|v| Zeroizing::new(v.clone()))
            .collect();
        let clean = |text: &str| provider_text(text, &secrets);
        let started = Instant::now();
        let (status, body) = endpoint
            .post_form(&self.token_url, headers, form)
            .await
            .map_err(|reason| TokenFetchError::Unavailable {
                url: self.token_url.clone(),
                reason: clean(&reason),
            })?;
        if !(200..300).contains(&status) {
            let error = body.get("error").and_then(Value::as_str).map(clean);
            return Err(match error {
                Some(error) => TokenFetchError::Refused {
                    url: self.token_url.clone(),
                    error,
                    description: body
                        .get("error_description")
                        .and_then(Value::as_str)
                        .map(clean),
                },
                None => TokenFetchError::Unavailable {
                    url: self.token_url.clone(),
                    reason: format!("HTTP {status}"),
                },
            });
        }
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenFetchError::Unavailable {
                url: self.token_url.clone(),
                reason: "no access_token in the response".into(),
            })?;
        if exchange {
            check_issued_token(&body).map_err(|reason| TokenFetchError::Unusable {
                url: self.token_url.clone(),
                reason: clean(&reason),
            })?;
        }
        let lifetime = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        let refresh = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|r| Zeroizing::new(r.to_string()));
        Ok(TokenSet {
            access: Token {
                value: Arc::new(Zeroizing::new(value.to_string())),
                expires_at: started + lifetime,
            },
            lifetime,
            refresh,
        })
    }
}

/// RFC 8693 §2.2.1: the `access_token` of an exchange response is whatever `issued_token_type`
/// says, and `token_type` is `N_A` when it is not an access token. Only access tokens (or JWTs)
/// may be injected as the upstream credential; a server that does not say is trusted to have
/// issued what was requested.
fn check_issued_token(body: &Value) -> Result<(), String> {
    let issued = body.get("issued_token_type").and_then(Value::as_str);
    if let Some(t) = issued
        && t != ACCESS_TOKEN_TYPE
        && t != JWT_TOKEN_TYPE
    {
        return Err(format!(
            "the token exchange issued a token of type {t}, not an access token"
        ));
    }
    let token_type = body.get("token_type").and_then(Value::as_str);
    if token_type.is_some_and(|t| t.eq_ignore_ascii_case("N_A")) {
        return Err(
            "the token exchange issued something that is not an access token \
             (token_type N_A)"
                .into(),
        );
    }
    Ok(())
}

/// Provider-supplied text fit for an error: any secret the request carried redacted, control
/// characters dropped, at most [`MAX_PROVIDER_TEXT`] bytes.
fn provider_text(text: &str, secrets: &[Zeroizing<String>]) -> String {
    let mut out = text.to_string();
    // Short values (a one-character test secret) would redact ordinary words and say nothing.
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    let mut out: String = out.chars().filter(|c| !c.is_control()).collect();
    if out.len() > MAX_PROVIDER_TEXT {
        let mut end = MAX_PROVIDER_TEXT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// 128 random bits as hex (JWT ids, elicitation ids).
pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A per-key token cache with single flight and serve-stale-while-valid.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
}

impl TokenCache {
    /// The cached token for `key`, or one fetched with `fetch` (once, however many callers wait).
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<Token, TokenFetchError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Token, TokenFetchError>>,
    {
        let slot = self
            .slots
            .lock()
            .expect("lock")
            .entry(key.to_string())
            .or_default()
            .clone();
        let mut guard = slot.lock().await;
        let now = Instant::now();
        if let Some(t) = guard.as_ref()
            && t.expires_at > now + REFRESH_MARGIN
        {
            return Ok(t.clone());
        }
        // Boxed: a fetch (an HTTP exchange) is rare, and inline its state would make every
        // request's future — moved on each request — kilobytes larger.
        match Box::pin(fetch()).await {
            Ok(t) => {
                *guard = Some(t.clone());
                Ok(t)
            }
            // The provider is failing: keep using a token that has not expired yet.
            Err(e) => match guard.as_ref() {
                Some(t) if t.expires_at > Instant::now() => Ok(t.clone()),
                _ => {
                    *guard = None;
                    Err(e)
                }
            },
        }
    }
}

/// Form parameters of the client-credentials grant.
pub fn client_credentials_form(
    scopes: &[String],
    audience: Option<&str>,
    resource: Option<&str>,
) -> Vec<(String, String)> {
    let mut form = vec![("grant_type".to_string(), "client_credentials".to_string())];
    if !scopes.is_empty() {
        form.push(("scope".into(), scopes.join(" ")));
    }
    if let Some(a) = audience {
        form.push(("audience".into(), a.to_string()));
    }
    if let Some(r) = resource {
        form.push(("resource".into(), r.to_string()));
    }
    form
}

/// Form parameters of an RFC 8693 token exchange.
pub fn token_exchange_form(
    subject_token: &str,
    actor_token: Option<&str>,
    scopes: &[String],
    audience: Option<&str>,
    resource: Option<&str>,
) -> Vec<(String, String)> {
    let mut form = vec![
        ("grant_type".to_string(), TOKEN_EXCHANGE_GRANT.to_string()),
        ("subject_token".into(), subject_token.to_string()),
        ("subject_token_type".into(), ACCESS_TOKEN_TYPE.into()),
        ("requested_token_type".into(), ACCESS_TOKEN_TYPE.into()),
    ];
    if let Some(a) = actor_token {
        form.push(("actor_token".into(), a.to_string()));
        form.push(("actor_token_type".into(), ACCESS_TOKEN_TYPE.into()));
    }
    if !scopes.is_empty() {
        form.push(("scope".into(), scopes.join(" ")));
    }
    if let Some(a) = audience {
        form.push(("audience".into(), a.to_string()));
    }
    if let Some(r) = resource {
        form.push(("resource".into(), r.to_string()));
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Headers and form of one request.
    type Seen = (Vec<(String, String)>, Vec<(String, String)>);

    /// In-memory token endpoint (a test double; end-to-end tests use oauth2-mock-server).
    struct FakeEndpoint {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
        expires_in: u64,
        seen: Mutex<Vec<Seen>>,
    }

    impl TokenEndpoint for Arc<FakeEndpoint> {
        fn post_form(
            &self,
            _url: &str,
            headers: Vec<(String, String)>,
            form: Vec<(String, String)>,
        ) -> BoxFuture<'static, Result<(u16, Value), String>> {
            let this = self.clone();
            Box::pin(async move {
                let n = this.calls.fetch_add(1, Ordering::SeqCst);
                this.seen.lock().unwrap().push((headers, form));
                tokio::time::sleep(Duration::from_millis(20)).await;
                if this.fail.load(Ordering::SeqCst) {
                    return Err("connection refused".into());
                }
                Ok((
                    200,
                    serde_json::json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": this.expires_in}),
                ))
            })
        }
    }

    fn endpoint(expires_in: u64) -> Arc<FakeEndpoint> {
        Arc::new(FakeEndpoint {
            calls: AtomicUsize::new(0),
            fail: Default::default(),
            expires_in,
            seen: Mutex::new(vec![]),
        })
    }

    fn client(method: AuthMethod) -> ClientAuth {
        ClientAuth {
            token_url: "https://auth.test/token".into(),
            client_id: "gate house".into(),
            secret: Some(Zeroizing::new("s3cr&t".into())),
            method,
        }
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_call() {
        let ep = endpoint(3600);
        let cache = Arc::new(TokenCache::default());
        let c = Arc::new(client(AuthMethod::ClientSecretBasic));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (ep, cache, c) = (ep.clone(), cache.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("k", || async {
                        c.request(&ep, client_credentials_form(&[], None, None))
                            .await
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().value.as_str(), "tok-0");
        }
        assert_eq!(ep.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn short_lived_tokens_refresh_and_outages_serve_valid_cache_then_fail_closed() {
        // expires_in below the refresh margin: every get refreshes.
        let ep = endpoint(30);
        let cache = TokenCache::default();
        let c = client(AuthMethod::ClientSecretPost);
        let get = || {
            cache.get("k", || async {
                c.request(&ep, client_credentials_form(&[], None, None))
                    .await
            })
        };
        assert_eq!(get().await.unwrap().value.as_str(), "tok-0");
        assert_eq!(get().await.unwrap().value.as_str(), "tok-1");
        ep.fail.store(true, Ordering::SeqCst);
        // Still valid for ~30s: served from cache despite the outage.
        assert_eq!(get().await.unwrap().value.as_str(), "tok-1");
        // Once expired, fail closed.
        let cache2 = TokenCache::default();
        let err = cache2
            .get("k", || async {
                c.request(&ep, client_credentials_form(&[], None, None))
                    .await
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unavailable"), "{err}");
        assert!(!err.to_string().contains("s3cr"), "no secret in errors");
    }

    #[tokio::test]
    async fn client_authentication_methods() {
        let ep = endpoint(3600);
        client(AuthMethod::ClientSecretBasic)
            .request(
                &ep,
                client_credentials_form(&["a".into(), "b".into()], Some("aud"), Some("https://r")),
            )
            .await
            .unwrap();
        client(AuthMethod::ClientSecretPost)
            .request(&ep, client_credentials_form(&[], None, None))
            .await
            .unwrap();
        let seen = ep.seen.lock().unwrap();
        let (h, f) = &seen[0];
        let basic = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "gate+house:s3cr%26t");
        assert!(f.contains(&("scope".into(), "a b".into())));
        assert!(f.contains(&("audience".into(), "aud".into())));
        assert!(f.contains(&("resource".into(), "https://r".into())));
        let (h, f) = &seen[1];
        assert!(!h.iter().any(|(k, _)| k == "authorization"));
        assert!(f.contains(&("client_secret".into(), "s3cr&t".into())));
    }

    /// A token endpoint that answers every request with one scripted response.
    struct Scripted(u16, Value);

    impl TokenEndpoint for Scripted {
        fn post_form(
            &self,
            _url: &str,
            _headers: Vec<(String, String)>,
            _form: Vec<(String, String)>,
        ) -> BoxFuture<'static, Result<(u16, Value), String>> {
            let answer = (self.0, self.1.clone());
            Box::pin(async move { Ok(answer) })
        }
    }

    fn exchange_form() -> Vec<(String, String)> {
        token_exchange_form(
            "subject-token-of-alice",
            Some("actor-token-of-the-agent"),
            &[],
            Some("https://api.example.com"),
            None,
        )
    }

    #[tokio::test]
    async fn provider_errors_never_echo_what_the_request_carried() {
        // A careless provider quotes the tokens and the client secret back.
        let ep = Scripted(
            400,
            serde_json::json!({
                "error": "invalid_request",
                "error_description": "bad subject_token subject-token-of-alice for actor \
                    actor-token-of-the-agent (client secret s3cr&t-client)\n",
            }),
        );
        for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
            let mut c = client(method);
            c.secret = Some(Zeroizing::new("s3cr&t-client".into()));
            let err = c.request(&ep, exchange_form()).await.unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("token endpoint https://auth.test/token refused: invalid_request (bad subject_token <redacted>"), "{text}");
            for secret in [
                "subject-token-of-alice",
                "actor-token-of-the-agent",
                "s3cr&t",
            ] {
                assert!(!text.contains(secret), "{method:?}: {text}");
            }
            assert!(!text.contains('\n'), "control characters dropped: {text:?}");
        }
    }

    #[tokio::test]
    async fn provider_error_text_is_bounded() {
        let ep = Scripted(
            400,
            serde_json::json!({"error": "invalid_grant", "error_description": "é".repeat(1000)}),
        );
        let err = client(AuthMethod::ClientSecretBasic)
            .request(&ep, exchange_form())
            .await
            .unwrap_err();
        match err {
            TokenFetchError::Refused {
                error, description, ..
            } => {
                assert_eq!(error, "invalid_grant");
                let d = description.unwrap();
                assert!(d.len() <= MAX_PROVIDER_TEXT + '…'.len_utf8(), "{}", d.len());
                assert!(d.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_token_exchange_must_issue_an_access_token() {
        let answer = |extra: Value| {
            let mut v = serde_json::json!({"access_token": "issued", "expires_in": 600});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Scripted(200, v)
        };
        let c = client(AuthMethod::ClientSecretBasic);
        for ok in [
            serde_json::json!({"issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer"}),
            serde_json::json!({"issued_token_type": JWT_TOKEN_TYPE, "token_type": "bearer"}),
            // Servers that omit it are trusted to have issued what was requested.
            serde_json::json!({"token_type": "Bearer"}),
        ] {
            let t = c.request(&answer(ok.clone()), exchange_form()).await;
            assert_eq!(t.unwrap().value.as_str(), "issued", "{ok}");
        }
        for bad in [
            serde_json::json!({"issued_token_type": "urn:ietf:params:oauth:token-type:id_token"}),
            serde_json::json!({"issued_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}),
            serde_json::json!({"issued_token_type": "urn:ietf:params:oauth:token-type:saml2", "token_type": "N_A"}),
            serde_json::json!({"token_type": "N_A"}),
        ] {
            let err = c
                .request(&answer(bad.clone()), exchange_form())
                .await
                .unwrap_err();
            assert!(
                matches!(err, TokenFetchError::Unusable { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("not an access token"), "{err}");
            assert!(
                !err.to_string().contains("issued\""),
                "no token value: {err}"
            );
        }
        // Other grants are not held to RFC 8693's response rules.
        let other = c
            .request(
                &answer(serde_json::json!({"token_type": "N_A"})),
                client_credentials_form(&[], None, None),
            )
            .await;
        assert!(other.is_ok());
    }

    #[test]
    fn token_exchange_form_carries_subject_and_actor() {
        let f = token_exchange_form(
            "user-token",
            Some("agent-token"),
            &["repo".into(), "read:org".into()],
            Some("github"),
            Some("https://api.github.test"),
        );
        let has = |k: &str, v: &str| f.contains(&(k.to_string(), v.to_string()));
        assert!(has("grant_type", TOKEN_EXCHANGE_GRANT));
        assert!(has("subject_token", "user-token"));
        assert!(has("subject_token_type", ACCESS_TOKEN_TYPE));
        assert!(has("requested_token_type", ACCESS_TOKEN_TYPE));
        assert!(has("actor_token", "agent-token"));
        assert!(has("actor_token_type", ACCESS_TOKEN_TYPE));
        assert!(has("scope", "repo read:org"));
        assert!(has("audience", "github"));
        assert!(has("resource", "https://api.github.test"));

        // Without an actor, neither actor parameter is sent (RFC 8693 §2.1: actor_token_type
        // is present exactly when actor_token is).
        let f = token_exchange_form("user-token", None, &[], Some("github"), None);
        assert!(
            !f.iter().any(|(k, _)| k.starts_with("actor_token")),
            "{f:?}"
        );
        assert!(
            !f.iter().any(|(k, _)| k == "scope" || k == "resource"),
            "{f:?}"
        );
    }
}
