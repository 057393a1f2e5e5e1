//! JWT-based TrustProviders: `oidc` (bearer JWTs from an OpenID Connect identity provider) and
//! `kubernetesServiceAccount` with an `issuer` (projected ServiceAccount tokens verified offline
//! against the cluster's OIDC issuer).
//!
//! Keys come from the issuer's discovery document (or a configured `jwksUri`) and are cached;
//! a token signed with an unknown `kid` triggers one refresh (at most every
//! [`MIN_FORCED_REFRESH`]), and keys are refreshed in the background every [`REFRESH_EVERY`].
//! Only asymmetric algorithms are accepted (RS*, PS*, ES256/384, EdDSA) and the algorithm must
//! agree with the key — never `none`, never HMAC with a public key. `iss`, `aud` (the gateway's
//! public URL or a configured audience), `exp`, `nbf` and `iat` are checked with a bounded skew.
//! Verified tokens are cached by SHA-256 digest until they expire, so the hot path does not redo
//! signature checks.

use futures_util::future::BoxFuture;
use gatehouse_api::identity::{AgentIdentity, AgentKind, UserIdentity};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Keys are refreshed at least this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// An unknown `kid` forces a refresh at most this often (protects the IdP from token spraying).
pub const MIN_FORCED_REFRESH: Duration = Duration::from_secs(30);
/// Verified-token cache bound.
const TOKEN_CACHE_MAX: usize = 50_000;

/// Algorithms the gateway accepts.
pub const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Fetches JSON documents (discovery, JWKS) over HTTP(S).
pub trait JsonFetcher: Send + Sync + 'static {
    /// GET `url` and parse the body as JSON; the error is a sentence safe to log.
    fn get_json(&self, url: &str) -> BoxFuture<'static, Result<Value, String>>;
}

/// Settings of one `oidc` TrustProvider, from the snapshot.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// TrustProvider name.
    pub provider: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (the gateway's public URL first, then configured ones).
    pub audiences: Vec<String>,
    /// JWKS URL override.
    pub jwks_uri: Option<String>,
    /// How claims become identities.
    pub mapping: Mapping,
    /// Scopes every token must carry.
    pub required_scopes: Vec<String>,
    /// Allowed clock skew.
    pub clock_skew: Duration,
}

/// How a verified token's claims become identities.
#[derive(Clone, Debug)]
pub enum Mapping {
    /// A user token: the user from `user`/`email`/`groups` claims, the agent from the client claim.
    User {
        /// Claim with the user id.
        user_claim: String,
        /// Claim with the email.
        email_claim: String,
        /// Claim with the groups.
        groups_claim: String,
        /// Claim with the OAuth client (default `azp`, then `client_id`).
        client_claim: Option<String>,
    },
    /// A Kubernetes ServiceAccount token: `sub` is `system:serviceaccount:<ns>:<name>`; the
    /// identity is the agent `<ns>/<name>`, with no user.
    ServiceAccount,
    /// A client-credentials token: the agent is the client (`client_id`/`azp`/`sub`), no user.
    Client,
}

/// Why a token was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT at all.
    #[error("the bearer token is not a JWT")]
    Malformed,
    /// Disallowed or mismatched algorithm.
    #[error("token algorithm {0} is not accepted")]
    Algorithm(String),
    /// No key with that `kid`, even after a refresh.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// Signature, expiry, issuer, audience or other claim check failed.
    #[error("token rejected: {0}")]
    Invalid(String),
    /// Required scopes missing: `403 insufficient_scope`.
    #[error("token lacks required scope(s): {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    /// Keys could not be fetched and none are cached.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// A verified token's identities.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The user (subject of a user token).
    pub user: Option<Arc<UserIdentity>>,
    /// The OAuth client the token was issued to (the agent), when present.
    pub agent: Option<AgentIdentity>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// `aud` values.
    pub audiences: Vec<String>,
}

struct Keys {
    by_kid: HashMap<String, (Jwk, DecodingKey)>,
    /// Keys without a `kid` (used only when the token has no `kid` either).
    anonymous: Vec<(Jwk, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// Verifies tokens of one OIDC TrustProvider.
pub struct JwtVerifier {
    settings: JwtSettings,
    fetcher: Arc<dyn JsonFetcher>,
    keys: RwLock<Keys>,
    jwks_uri: tokio::sync::Mutex<Option<String>>,
    last_forced: Mutex<Option<Instant>>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

impl JwtVerifier {
    /// A verifier; keys are fetched on first use.
    pub fn new(settings: JwtSettings, fetcher: Arc<dyn JsonFetcher>) -> Self {
        Self {
            jwks_uri: tokio::sync::Mutex::new(settings.jwks_uri.clone()),
            settings,
            fetcher,
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                anonymous: Vec::new(),
                fetched_at: None,
            }),
            last_forced: Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this token claims to come from this provider's issuer (cheap pre-check, unverified).
    pub fn claims_issuer(token: &str) -> Option<String> {
        /// Only `iss` is read (the other claims are skipped, not built into a `Value`); a
        /// payload naming it twice is ambiguous and has no issuer.
        #[derive(serde::Deserialize)]
        struct Issuer<'a> {
            #[serde(borrow)]
            iss: std::borrow::Cow<'a, str>,
        }
        let payload = token.split('.').nth(1)?;
        let bytes = base64_url_decode(payload)?;
        // Claims are an object (a struct would also take an array, by position).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let claims: Issuer<'_> = serde_json::from_slice(&bytes).ok()?;
        Some(claims.iss.into_owned())
    }

    /// The SHA-256 digest of a token: the key of the verified-token cache.
    pub fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The identities of a token this verifier verified before and that has not expired at
    /// `now`, by the token's [`digest`](Self::digest).
    pub fn cached(&self, digest: &[u8; 32], now: u64) -> Option<Verified> {
        let cache = self.verified.lock().expect("lock");
        let v = cache.get(digest)?;
        (v.expires_at + self.settings.clock_skew.as_secs() > now).then(|| v.clone())
    }

    /// Verify a bearer token at `now` (seconds since the epoch).
    pub async fn verify(&self, token: &str, now: u64) -> Result<Verified, TokenError> {
        self.verify_digested(token, &Self::digest(token), now).await
    }

    /// [`verify`](Self::verify), with the token's [`digest`](Self::digest) already computed.
    pub async fn verify_digested(
        &self,
        token: &str,
        digest: &[u8; 32],
        now: u64,
    ) -> Result<Verified, TokenError> {
        let digest = *digest;
        if let Some(v) = self.cached(&digest, now) {
            return Ok(v);
        }
        // Name the algorithm before parsing: `none` and other unknown ones are refused by name.
        if let Some(alg) = header_alg(token)
            && !ALLOWED_ALGORITHMS.iter().any(|a| format!("{a:?}") == alg)
        {
            return Err(TokenError::Algorithm(alg));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        self.ensure_fresh_keys().await?;
        let key = match self.key_for(header.kid.as_deref(), header.alg) {
            Some(k) => k,
            None => {
                // Unknown kid: the IdP may have rotated; refresh once (rate limited) and retry.
                if self.may_force_refresh() {
                    self.refresh().await?;
                }
                self.key_for(header.kid.as_deref(), header.alg)
                    .ok_or(TokenError::UnknownKey)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        // Time checks are ours, against the `now` we are given, with the configured skew.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["exp", "iss", "aud"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let data = jsonwebtoken::decode::<BTreeMap<String, Value>>(token, &key, &validation)
            .map_err(|e| TokenError::Invalid(describe(&e)))?;
        let claims = data.claims;
        let skew = self.settings.clock_skew.as_secs();
        let time = |name: &str| claims.get(name).and_then(Value::as_u64);
        match time("exp") {
            Some(exp) if exp.saturating_add(skew) > now => {}
            Some(_) => return Err(TokenError::Invalid("expired".into())),
            None => return Err(TokenError::Invalid("missing exp claim".into())),
        }
        if time("nbf").is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(TokenError::Invalid("not valid yet (nbf)".into()));
        }
        if time("iat").is_some_and(|iat| iat > now.saturating_add(skew)) {
            return Err(TokenError::Invalid("issued in the future (iat)".into()));
        }
        let missing = self.missing_scopes(&claims);
        if !missing.is_empty() {
            return Err(TokenError::InsufficientScope(missing));
        }
        let verified = self.identities(&claims)?;
        let mut cache = self.verified.lock().expect("lock");
        if cache.len() >= TOKEN_CACHE_MAX {
            cache.retain(|_, v| v.expires_at > now);
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, verified.clone());
        Ok(verified)
    }

    fn missing_scopes(&self, claims: &BTreeMap<String, Value>) -> Vec<String> {
        let granted: Vec<&str> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        self.settings
            .required_scopes
            .iter()
            .filter(|s| !granted.contains(&s.as_str()))
            .cloned()
            .collect()
    }

    fn identities(&self, claims: &BTreeMap<String, Value>) -> Result<Verified, TokenError> {
        let s = &self.settings;
        let str_claim = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let audiences: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let agent = |kind, id: &str| AgentIdentity {
            kind,
            id: id.to_string(),
            provider: s.provider.clone(),
        };
        match &s.mapping {
            Mapping::User {
                user_claim,
                email_claim,
                groups_claim,
                client_claim,
            } => {
                let id = str_claim(user_claim).ok_or_else(|| {
                    TokenError::Invalid(format!("no {user_claim:?} claim to identify the user"))
                })?;
                let groups = match claims.get(groups_claim) {
                    Some(Value::String(g)) => vec![g.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => Vec::new(),
                };
                let client = match client_claim {
                    Some(c) => str_claim(c),
                    None => str_claim("azp").or_else(|| str_claim("client_id")),
                };
                Ok(Verified {
                    user: Some(Arc::new(UserIdentity {
                        id: id.to_string(),
                        email: str_claim(email_claim).map(str::to_string),
                        groups,
                        provider: s.provider.clone(),
                        claims: claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    })),
                    agent: client.map(|c| agent(AgentKind::ClientId, c)),
                    expires_at,
                    audiences,
                })
            }
            Mapping::ServiceAccount => {
                let sub = str_claim("sub").unwrap_or_default();
                let sa = sub
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
                    .ok_or_else(|| {
                        TokenError::Invalid("not a ServiceAccount token (sub)".into())
                    })?;
                Ok(Verified {
                    user: None,
                    agent: Some(agent(
                        AgentKind::ServiceAccount,
                        &format!("{}/{}", sa.0, sa.1),
                    )),
                    expires_at,
                    audiences,
                })
            }
            Mapping::Client => {
                let id = str_claim("client_id")
                    .or_else(|| str_claim("azp"))
                    .or_else(|| str_claim("sub"))
                    .ok_or_else(|| TokenError::Invalid("no client_id, azp or sub claim".into()))?;
                Ok(Verified {
                    user: None,
                    agent: Some(agent(AgentKind::ClientId, id)),
                    expires_at,
                    audiences,
                })
            }
        }
    }

    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().expect("lock");
        let candidates: Vec<&(Jwk, DecodingKey)> = match kid {
            Some(kid) => keys.by_kid.get(kid).into_iter().collect(),
            None => keys.anonymous.iter().collect(),
        };
        candidates
            .into_iter()
            .find(|(jwk, _)| key_fits(jwk, alg))
            .map(|(_, k)| k.clone())
    }

    fn may_force_refresh(&self) -> bool {
        let mut last = self.last_forced.lock().expect("lock");
        match *last {
            Some(t) if t.elapsed() < MIN_FORCED_REFRESH => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    async fn ensure_fresh_keys(&self) -> Result<(), TokenError> {
        let (fetched, have_keys) = {
            let k = self.keys.read().expect("lock");
            (
                k.fetched_at,
                !k.by_kid.is_empty() || !k.anonymous.is_empty(),
            )
        };
        match fetched {
            Some(t) if t.elapsed() < REFRESH_EVERY => Ok(()),
            // Stale: try to refresh, but keep serving cached keys if the IdP is down.
            Some(_) => match self.refresh().await {
                Err(_) if have_keys => Ok(()),
                other => other,
            },
            None => self.refresh().await,
        }
    }

    /// Fetch discovery (once) and the JWKS.
    pub async fn refresh(&self) -> Result<(), TokenError> {
        let mut uri_slot = self.jwks_uri.lock().await;
        if uri_slot.is_none() {
            let url = format!(
                "{}/.well-known/openid-configuration",
                self.settings.issuer.trim_end_matches('/')
            );
            let doc = self
                .fetcher
                .get_json(&url)
                .await
                .map_err(TokenError::Unavailable)?;
            if doc
                .get("issuer")
                .and_then(Value::as_str)
                .map(|i| i.trim_end_matches('/'))
                != Some(self.settings.issuer.trim_end_matches('/'))
            {
                return Err(TokenError::Unavailable(format!(
                    "discovery document at {url} names a different issuer"
                )));
            }
            let jwks = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
                TokenError::Unavailable(format!(
                    "TrustProvider {}: issuer {} has no jwks_uri in its discovery document",
                    self.settings.provider, self.settings.issuer
                ))
            })?;
            *uri_slot = Some(jwks.to_string());
        }
        let uri = uri_slot.clone().expect("set above");
        drop(uri_slot);
        let doc = self
            .fetcher
            .get_json(&uri)
            .await
            .map_err(TokenError::Unavailable)?;
        let set: JwkSet = serde_json::from_value(doc)
            .map_err(|e| TokenError::Unavailable(format!("JWKS at {uri} is not a JWK set: {e}")))?;
        let mut by_kid = HashMap::new();
        let mut anonymous = Vec::new();
        for jwk in set.keys {
            // Symmetric keys never verify tokens here.
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            if matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            ) {
                continue;
            }
            match jwk.common.key_id.clone() {
                Some(kid) => {
                    by_kid.insert(kid, (jwk, key));
                }
                None => anonymous.push((jwk, key)),
            }
        }
        let mut keys = self.keys.write().expect("lock");
        keys.by_kid = by_kid;
        keys.anonymous = anonymous;
        keys.fetched_at = Some(Instant::now());
        Ok(())
    }
}

/// Whether a JWK can verify `alg`: the key type must fit the algorithm family, and a key that
/// names its algorithm must name this one.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    use jsonwebtoken::jwk::EllipticCurve as C;
    if let Some(named) = jwk.common.key_algorithm
        && format!("{named:?}") != format!("{alg:?}")
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (P::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512)
        | (P::RSA(_), Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) => true,
        (P::EllipticCurve(ec), Algorithm::ES256) => ec.curve == C::P256,
        (P::EllipticCurve(ec), Algorithm::ES384) => ec.curve == C::P384,
        (P::OctetKeyPair(_), Algorithm::EdDSA) => true,
        _ => false,
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired".into(),
        K::ImmatureSignature => "not valid yet (nbf)".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidAudience => "wrong audience: the token was not issued for this gateway".into(),
        K::InvalidSignature => "bad signature".into(),
        K::MissingRequiredClaim(c) => format!("missing {c} claim"),
        K::InvalidAlgorithm => "algorithm does not match the key".into(),
        _ => "invalid token".into(),
    }
}

fn header_alg(token: &str) -> Option<String> {
    let header = base64_url_decode(token.split('.').next()?)?;
    let v: Value = serde_json::from_slice(&header).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

#[cfg(test)]
pub(crate) mod tests;
