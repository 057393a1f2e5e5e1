//! Authentication: the gateway's TrustProviders turn request credentials into a user and/or an
//! agent identity.
//!
//! - `apiKey`: keys hashed with SHA-256 in a Secret (`principal: sha256:<hex>`); `Authorization`
//!   as the header means `Bearer <key>`.
//! - `oidc`: a bearer JWT in `Authorization`, verified against the issuer's keys ([`jwt`]); the
//!   user comes from the token, the agent from its client (`azp`/`client_id`). Its audience must
//!   be the gateway's public URL, this route's URL, or a configured audience.
//! - `kubernetesServiceAccount` with an `issuer`: a projected ServiceAccount token, verified
//!   offline, in the provider's agent header (default `X-Agent-Authorization`) or, when no user
//!   token is sent, in `Authorization`. `tokenReview` needs cluster mode.
//!
//! - `mtls`: a client certificate on the TLS connection, validated against the provider's CA
//!   bundle ([`mtls`]); names the agent (or the user), and takes precedence over a token's client
//!   claim.
//!
//! - `kubernetesServiceAccount` with `tokenReview: true`: verified online by the Kubernetes API
//!   ([`token_review`]) — in cluster mode, or in local mode given `--kubeconfig`; without an API
//!   server it authenticates nobody (fail closed, with the reason in the 401).

pub mod browser_login;
pub mod jwt;
pub mod mtls;
pub mod token_review;

use crate::state::SecretValues;
use gatehouse_api::config::{PrincipalKind, TrustMethod, TrustProviderConfig};
use gatehouse_api::identity::{AgentIdentity, AgentKind, UserIdentity};
use http::{HeaderMap, HeaderName, HeaderValue};
use jwt::{JsonFetcher, JwtSettings, JwtVerifier, Mapping, TokenError};
use mtls::{IdentityFrom, MtlsProvider, PeerCertificates};
use sha2::{Digest, Sha256};
// foldhash: seeded, and faster than SipHash for the per-request API-key digest lookup.
use foldhash::HashMap;
use std::sync::Arc;
use std::time::Duration;
use token_review::{ReviewCache, TokenReviewer};

/// A bearer token as received (kept only for token exchange; never logged). It shares the
/// request's header field (a reference count per request, not a copy of the token that is
/// then wiped: the field's own bytes were never wiped, so the copy's wiping protected nothing).
#[derive(Clone)]
pub struct BearerToken(HeaderValue);

impl BearerToken {
    /// The token text.
    pub fn expose(&self) -> &str {
        bearer_token(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Who is calling.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The human user (shared with the verified-token cache: not copied per request).
    pub user: Option<Arc<UserIdentity>>,
    /// The agent.
    pub agent: Option<AgentIdentity>,
    /// The user's verified token, when the user came from a JWT (subject of token exchange).
    pub user_token: Option<BearerToken>,
    /// The agent's verified token, when it came from a JWT (actor of token exchange).
    pub agent_token: Option<BearerToken>,
}

impl Identity {
    /// Whether anything was verified.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.agent.is_none()
    }
}

/// A JWT-verifying provider.
struct JwtProvider {
    name: String,
    issuer: String,
    verifier: Arc<JwtVerifier>,
    /// For ServiceAccount providers: the agent-credential header.
    agent_header: Option<HeaderName>,
    /// Audiences accepted besides the gateway's and the route's URL.
    audiences: Vec<String>,
}

struct ApiKeyProvider {
    name: String,
    authenticates: PrincipalKind,
    header: HeaderName,
    /// SHA-256 of each key → principal.
    keys: HashMap<[u8; 32], String>,
}

/// A `kubernetesServiceAccount` provider verifying tokens with TokenReview.
struct ReviewProvider {
    name: String,
    audiences: Vec<String>,
    agent_header: HeaderName,
    reviewer: Arc<dyn TokenReviewer>,
    cache: ReviewCache,
}

/// The compiled TrustProviders of one snapshot.
pub struct Authenticator {
    review: Vec<ReviewProvider>,
    api_keys: Vec<ApiKeyProvider>,
    jwt: Vec<JwtProvider>,
    mtls: Vec<(MtlsProvider, PrincipalKind)>,
    unsupported: Vec<(String, &'static str)>,
    public_url: Option<String>,
    browser_logins: Vec<Arc<browser_login::BrowserLogin>>,
}

/// Why a request is not authenticated (safe to show: never contains the presented value).
#[derive(Debug)]
pub enum AuthnError {
    /// No valid credential: `401`.
    Unauthenticated(String),
    /// A valid token without the scopes the provider requires: `403 insufficient_scope`.
    InsufficientScope {
        /// Why, in words.
        reason: String,
        /// The scopes to ask for.
        scopes: Vec<String>,
    },
}

impl AuthnError {
    fn new(reason: impl Into<String>) -> Self {
        AuthnError::Unauthenticated(reason.into())
    }
}

/// The `name` field, when it carries `Bearer <token>`, and the token.
fn bearer<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<(&'h HeaderValue, &'h str)> {
    let field = headers.get(name)?;
    Some((field, bearer_token(field)?))
}

/// The token of a `Bearer <token>` field value.
fn bearer_token(field: &HeaderValue) -> Option<&str> {
    let (scheme, rest) = field.to_str().ok()?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Bearer tokens larger than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

fn looks_like_jwt(token: &str) -> bool {
    // Two dots, counted with SIMD (a token is hundreds of bytes, read on every request).
    token.starts_with("ey") && memchr::memchr_iter(b'.', token.as_bytes()).count() == 2
}

impl Authenticator {
    /// Build from the snapshot's trust providers and the secret values they reference.
    pub fn new(
        providers: &[TrustProviderConfig],
        secrets: &SecretValues,
        public_url: Option<&str>,
        route_paths: &[&str],
        fetcher: Arc<dyn JsonFetcher>,
        reviewer: Option<Arc<dyn TokenReviewer>>,
    ) -> Result<Self, String> {
        let mut review = Vec::new();
        let mut api_keys = Vec::new();
        let mut jwt = Vec::new();
        let mut mtls = Vec::new();
        let mut unsupported = Vec::new();
        let mut browser_logins = Vec::new();
        // Every audience a token may carry here: the gateway's URL and each route's URL (RFC 8707
        // resource indicators name the MCP server); the route check in `authenticate` narrows it
        // to the route addressed.
        let base_audiences: Vec<String> = match public_url {
            Some(u) => {
                let u = u.trim_end_matches('/');
                std::iter::once(u.to_string())
                    .chain(route_paths.iter().map(|p| format!("{u}{p}")))
                    .collect()
            }
            None => Vec::new(),
        };
        for tp in providers {
            match &tp.method {
                TrustMethod::ApiKey { keys, header } => {
                    let header =
                        HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
                            format!("TrustProvider {}: {header:?} is not a header name", tp.name)
                        })?;
                    let entries = secrets.whole(keys).ok_or_else(|| {
                        format!("TrustProvider {}: {keys} is not available", tp.name)
                    })?;
                    let mut map = HashMap::default();
                    for (principal, value) in entries {
                        let text = std::str::from_utf8(value).unwrap_or_default().trim();
                        let digest = text
                            .strip_prefix("sha256:")
                            .and_then(|h| hex::decode(h).ok())
                            .and_then(|d| <[u8; 32]>::try_from(d).ok())
                            .ok_or_else(|| {
                                format!(
                                    "TrustProvider {}: {keys} entry {principal:?} must be sha256:<64 hex digits>",
                                    tp.name
                                )
                            })?;
                        map.insert(digest, principal.clone());
                    }
                    api_keys.push(ApiKeyProvider {
                        name: tp.name.clone(),
                        authenticates: tp.authenticates,
                        header,
                        keys: map,
                    });
                }
                TrustMethod::Oidc {
                    issuer,
                    audiences,
                    jwks_uri,
                    user_claim,
                    email_claim,
                    groups_claim,
                    client_claim,
                    required_scopes,
                    clock_skew_seconds,
                    browser_login,
                } => {
                    if let (Some(b), PrincipalKind::User) = (browser_login, tp.authenticates) {
                        let secret = match &b.client_secret {
                            Some(r) => Some(secrets.key(r).ok_or_else(|| {
                                format!("TrustProvider {}: {r} is not available", tp.name)
                            })?),
                            None => None,
                        };
                        browser_logins.push(Arc::new(browser_login::BrowserLogin::new(
                            &tp.name,
                            issuer,
                            &b.client_id,
                            secret,
                            Mapping::User {
                                user_claim: user_claim.clone(),
                                email_claim: email_claim.clone(),
                                groups_claim: groups_claim.clone(),
                                client_claim: client_claim.clone(),
                            },
                            Duration::from_secs(*clock_skew_seconds),
                            fetcher.clone(),
                        )?));
                    }
                    let mapping = match tp.authenticates {
                        PrincipalKind::User => Mapping::User {
                            user_claim: user_claim.clone(),
                            email_claim: email_claim.clone(),
                            groups_claim: groups_claim.clone(),
                            client_claim: client_claim.clone(),
                        },
                        PrincipalKind::Agent => Mapping::Client,
                    };
                    jwt.push(JwtProvider {
                        name: tp.name.clone(),
                        issuer: issuer.clone(),
                        verifier: Arc::new(JwtVerifier::new(
                            JwtSettings {
                                provider: tp.name.clone(),
                                issuer: issuer.clone(),
                                audiences: base_audiences
                                    .iter()
                                    .chain(audiences)
                                    .cloned()
                                    .collect(),
                                jwks_uri: jwks_uri.clone(),
                                mapping,
                                required_scopes: required_scopes.clone(),
                                clock_skew: Duration::from_secs(*clock_skew_seconds),
                            },
                            fetcher.clone(),
                        )),
                        agent_header: None,
                        audiences: audiences.clone(),
                    });
                }
                TrustMethod::KubernetesServiceAccount {
                    issuer: Some(issuer),
                    token_review: false,
                    audiences,
                    header,
                } => {
                    let agent_header =
                        HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
                            format!("TrustProvider {}: {header:?} is not a header name", tp.name)
                        })?;
                    jwt.push(JwtProvider {
                        name: tp.name.clone(),
                        issuer: issuer.clone(),
                        verifier: Arc::new(JwtVerifier::new(
                            JwtSettings {
                                provider: tp.name.clone(),
                                issuer: issuer.clone(),
                                // Projected tokens are bound to the configured audiences only.
                                audiences: audiences.clone(),
                                jwks_uri: None,
                                mapping: Mapping::ServiceAccount,
                                required_scopes: Vec::new(),
                                clock_skew: Duration::from_secs(60),
                            },
                            fetcher.clone(),
                        )),
                        agent_header: Some(agent_header),
                        audiences: audiences.clone(),
                    });
                }
                TrustMethod::KubernetesServiceAccount {
                    audiences, header, ..
                } => match &reviewer {
                    Some(reviewer) => {
                        let agent_header =
                            HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
                                format!("TrustProvider {}: {header:?} is not a header name", tp.name)
                            })?;
                        review.push(ReviewProvider {
                            name: tp.name.clone(),
                            audiences: audiences.clone(),
                            agent_header,
                            reviewer: reviewer.clone(),
                            cache: ReviewCache::default(),
                        });
                    }
                    None => unsupported.push((
                        tp.name.clone(),
                        "kubernetesServiceAccount with tokenReview (needs cluster mode or --kubeconfig)",
                    )),
                },
                TrustMethod::Mtls {
                    ca_bundle,
                    identity_from,
                } => {
                    let pem = secrets.key(ca_bundle).ok_or_else(|| {
                        format!("TrustProvider {}: {ca_bundle} is not available", tp.name)
                    })?;
                    mtls.push((
                        MtlsProvider::new(&tp.name, pem, identity_from)?,
                        tp.authenticates,
                    ));
                }
            }
        }
        Ok(Self {
            review,
            api_keys,
            jwt,
            mtls,
            unsupported,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            browser_logins,
        })
    }

    /// Browser sign-in for users of TrustProvider `provider`, if it is configured.
    pub fn browser_login(&self, provider: &str) -> Option<&browser_login::BrowserLogin> {
        self.browser_logins
            .iter()
            .find(|b| b.provider() == provider)
            .map(Arc::as_ref)
    }

    /// Every header that carries a credential for some provider (stripped before relaying).
    pub fn credential_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.api_keys
            .iter()
            .map(|p| &p.header)
            .chain(self.jwt.iter().filter_map(|p| p.agent_header.as_ref()))
            .chain(self.review.iter().map(|p| &p.agent_header))
    }

    /// Issuers of the `oidc` providers (advertised as authorization servers).
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.jwt
            .iter()
            .filter(|p| p.agent_header.is_none())
            .map(|p| p.issuer.as_str())
    }

    fn trusts_issuer_of(&self, token: &str) -> bool {
        JwtVerifier::claims_issuer(token).is_some_and(|iss| {
            self.jwt
                .iter()
                .any(|p| p.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
        })
    }

    /// Ask TokenReview (through `only`, or each provider in turn) who a ServiceAccount token
    /// belongs to.
    async fn review_any(
        &self,
        token: &str,
        only: Option<&ReviewProvider>,
    ) -> Result<(AgentIdentity, String), AuthnError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthnError::new(format!(
                "the bearer token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let providers: Vec<&ReviewProvider> = match only {
            Some(p) => vec![p],
            None => self.review.iter().collect(),
        };
        let mut reasons = Vec::new();
        for p in providers {
            match p
                .cache
                .review(p.reviewer.as_ref(), token, &p.audiences)
                .await
            {
                Ok(Some(username)) => {
                    let sa = username
                        .strip_prefix("system:serviceaccount:")
                        .and_then(|rest| rest.split_once(':'))
                        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty());
                    return match sa {
                        Some((ns, name)) => Ok((
                            AgentIdentity {
                                kind: AgentKind::ServiceAccount,
                                id: format!("{ns}/{name}"),
                                provider: p.name.clone(),
                            },
                            p.name.clone(),
                        )),
                        None => Err(AuthnError::new(format!(
                            "TrustProvider {}: the token belongs to {username:?}, not a ServiceAccount",
                            p.name
                        ))),
                    };
                }
                Ok(None) => reasons.push(format!(
                    "TrustProvider {}: TokenReview did not authenticate the token for audiences {}",
                    p.name,
                    p.audiences.join(", ")
                )),
                Err(e) => reasons.push(format!("TrustProvider {}: {e}", p.name)),
            }
        }
        Err(AuthnError::new(reasons.join("; ")))
    }

    /// Verify a JWT with the provider of its issuer; `agent_header` picks ServiceAccount
    /// providers.
    async fn verify_jwt(
        &self,
        token: &str,
        route_url: Option<&str>,
        agent_header: Option<&HeaderName>,
    ) -> Result<(&JwtProvider, jwt::Verified), AuthnError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthnError::new(format!(
                "the bearer token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let eligible =
            |p: &JwtProvider| agent_header.is_none() || p.agent_header.as_ref() == agent_header;
        let now = jsonwebtoken::get_current_timestamp();
        let digest = JwtVerifier::digest(token);
        // A token verified before is found by its digest, without decoding it again: in the
        // cache of the provider its issuer selects (the first eligible one with that issuer).
        let hit = self.jwt.iter().enumerate().find_map(|(i, p)| {
            let v = eligible(p).then(|| p.verifier.cached(&digest, now))??;
            let issuer = p.issuer.trim_end_matches('/');
            let shadowed = self.jwt[..i]
                .iter()
                .any(|q| eligible(q) && q.issuer.trim_end_matches('/') == issuer);
            (!shadowed).then_some((p, v))
        });
        let (p, verified) = match hit {
            Some(hit) => hit,
            None => {
                let iss = JwtVerifier::claims_issuer(token).ok_or_else(|| {
                    AuthnError::new("the bearer token is not a JWT with an issuer")
                })?;
                let iss = iss.trim_end_matches('/');
                let p = self
                    .jwt
                    .iter()
                    .find(|p| p.issuer.trim_end_matches('/') == iss && eligible(p))
                    .ok_or_else(|| {
                        AuthnError::new(format!(
                            "tokens from issuer {iss} are not trusted by this gateway"
                        ))
                    })?;
                let verified = p
                    .verifier
                    .verify_digested(token, &digest, now)
                    .await
                    .map_err(|e| match e {
                        TokenError::InsufficientScope(ref scopes) => {
                            AuthnError::InsufficientScope {
                                reason: format!("TrustProvider {}: {e}", p.name),
                                scopes: scopes.clone(),
                            }
                        }
                        other => AuthnError::new(format!("TrustProvider {}: {other}", p.name)),
                    })?;
                (p, verified)
            }
        };
        // A token for another MCP server behind the same gateway is not good here.
        if p.agent_header.is_none() {
            let ok = verified.audiences.iter().any(|a| {
                let a = a.trim_end_matches('/');
                self.public_url.as_deref() == Some(a)
                    || route_url.is_some_and(|r| r.trim_end_matches('/') == a)
                    || p.audiences.iter().any(|c| c.trim_end_matches('/') == a)
            });
            if !ok {
                return Err(AuthnError::new(format!(
                    "TrustProvider {}: token rejected: wrong audience: the token was not issued for this gateway or this server",
                    p.name
                )));
            }
        }
        Ok((p, verified))
    }

    /// Whether any provider verifies JWTs (and so may check a token's audience against the
    /// route's public URL).
    pub fn verifies_jwts(&self) -> bool {
        !self.jwt.is_empty()
    }

    /// Verify the request's credentials. `route_url` is the public URL of the MCP server
    /// addressed (a token's audience may name it).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        route_url: Option<&str>,
        peer: Option<&PeerCertificates>,
    ) -> Result<Identity, AuthnError> {
        let mut id = Identity::default();
        // A client certificate names the agent (or the user, per the provider).
        if let Some(peer) = peer.filter(|_| !self.mtls.is_empty()) {
            let mut reasons = Vec::new();
            for (p, kind) in &self.mtls {
                match p.identify(peer) {
                    Ok((from, subject)) => {
                        match kind {
                            PrincipalKind::Agent => {
                                id.agent = Some(AgentIdentity {
                                    kind: if from == IdentityFrom::SpiffeUri {
                                        AgentKind::Spiffe
                                    } else {
                                        AgentKind::Other
                                    },
                                    id: subject,
                                    provider: p.name.clone(),
                                })
                            }
                            PrincipalKind::User => {
                                id.user = Some(Arc::new(UserIdentity {
                                    id: subject,
                                    provider: p.name.clone(),
                                    ..Default::default()
                                }))
                            }
                        }
                        reasons.clear();
                        break;
                    }
                    Err(e) => reasons.push(e),
                }
            }
            if !reasons.is_empty() {
                return Err(AuthnError::new(reasons.join("; ")));
            }
        }
        // A JWT in Authorization belongs to a JWT provider (an API key never looks like one).
        let auth_bearer =
            bearer(headers, &http::header::AUTHORIZATION).filter(|(_, t)| looks_like_jwt(t));
        // A token whose issuer no JWT provider trusts goes to TokenReview, when configured
        // (ServiceAccount tokens of agents acting alone).
        let for_review =
            auth_bearer.filter(|(_, t)| !self.review.is_empty() && !self.trusts_issuer_of(t));
        if let Some((field, token)) = for_review {
            let (agent, _) = self.review_any(token, None).await?;
            id.agent = Some(agent);
            id.agent_token = Some(BearerToken(field.clone()));
        }
        let auth_jwt = auth_bearer.filter(|_| for_review.is_none() && !self.jwt.is_empty());
        if let Some((field, token)) = auth_jwt {
            let (_, v) = self.verify_jwt(token, route_url, None).await?;
            let token = BearerToken(field.clone());
            if v.user.is_some() {
                id.user_token = Some(token.clone());
            } else {
                id.agent_token = Some(token.clone());
            }
            id.user = v.user;
            if id.agent.is_none() {
                id.agent = v.agent;
            }
        }
        // A separate agent credential (ServiceAccount token) names the agent, overriding the
        // user token's client claim: it is the stronger proof.
        for p in self.jwt.iter().filter(|p| p.agent_header.is_some()) {
            let header = p.agent_header.as_ref().expect("filtered");
            let Some((field, token)) = bearer(headers, header) else {
                continue;
            };
            let (_, v) = self.verify_jwt(token, route_url, Some(header)).await?;
            id.agent = v.agent;
            id.agent_token = Some(BearerToken(field.clone()));
        }
        // TokenReview providers' agent headers.
        for p in &self.review {
            let Some((field, token)) = bearer(headers, &p.agent_header) else {
                continue;
            };
            let (agent, _) = self.review_any(token, Some(p)).await?;
            id.agent = Some(agent);
            id.agent_token = Some(BearerToken(field.clone()));
        }
        for p in &self.api_keys {
            if p.header == http::header::AUTHORIZATION && auth_bearer.is_some() {
                continue;
            }
            let Some(raw) = headers.get(&p.header) else {
                continue;
            };
            let raw = raw.to_str().unwrap_or_default().trim();
            let key = if p.header == http::header::AUTHORIZATION {
                match raw.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => {
                        return Err(AuthnError::new(format!(
                            "the {} header must be `Bearer <API key>`",
                            p.header
                        )));
                    }
                }
            } else {
                raw
            };
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            let Some(principal) = p.keys.get(&digest) else {
                return Err(AuthnError::new(format!(
                    "the API key in the {} header is not valid for TrustProvider {}",
                    p.header, p.name
                )));
            };
            match p.authenticates {
                PrincipalKind::User if id.user.is_none() => {
                    id.user = Some(Arc::new(UserIdentity {
                        id: principal.clone(),
                        provider: p.name.clone(),
                        ..Default::default()
                    }))
                }
                PrincipalKind::Agent if id.agent.is_none() => {
                    id.agent = Some(AgentIdentity {
                        kind: AgentKind::Other,
                        id: principal.clone(),
                        provider: p.name.clone(),
                    })
                }
                _ => {}
            }
        }
        if id.is_anonymous() {
            let mut reason = String::from("authentication required");
            let headers: Vec<String> = self.api_keys.iter().map(|p| p.header.to_string()).collect();
            if !headers.is_empty() {
                reason.push_str(&format!(
                    ": send an API key in the {} header",
                    headers.join(" or ")
                ));
            }
            if self.issuers().next().is_some() {
                reason.push_str(&format!(
                    "{} a bearer token from {}",
                    if headers.is_empty() { ": send" } else { ", or" },
                    self.issuers().collect::<Vec<_>>().join(" or ")
                ));
            }
            for (name, kind) in &self.unsupported {
                reason.push_str(&format!(
                    "; TrustProvider {name} (type {kind}) is not supported by this gateway yet"
                ));
            }
            return Err(AuthnError::new(reason));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::jwt::tests::{FakeIdp, ISS, mk_key, now, token};
    use super::*;
    use gatehouse_api::config::{TrustMethod, TrustProviderConfig};

    #[test]
    fn only_three_part_tokens_look_like_jwts() {
        assert!(looks_like_jwt("eyJh.eyJi.sig"));
        assert!(looks_like_jwt("eyJh.eyJi."));
        for not in [
            "eyJh.eyJi",
            "eyJh.eyJi.sig.more",
            "abc.def.ghi",
            "eyJhbGciOi",
            "",
        ] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }

    /// The token kept for token exchange is the one sent, whatever spacing and scheme case
    /// surround it.
    #[test]
    fn a_kept_bearer_token_is_the_token_sent() {
        for sent in [
            "Bearer abc.def.ghi",
            "bearer   abc.def.ghi  ",
            " BEARER abc.def.ghi",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static(sent));
            let (field, _) = bearer(&headers, &http::header::AUTHORIZATION).expect(sent);
            let kept = BearerToken(field.clone());
            drop(headers);
            assert_eq!(kept.expose(), "abc.def.ghi", "{sent:?}");
            assert_eq!(format!("{kept:?}"), "BearerToken(<redacted>)");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic abc"),
        );
        assert!(bearer(&headers, &http::header::AUTHORIZATION).is_none());
    }

    fn oidc(name: &str) -> TrustProviderConfig {
        TrustProviderConfig {
            name: name.into(),
            authenticates: PrincipalKind::User,
            method: TrustMethod::Oidc {
                issuer: ISS.into(),
                audiences: vec!["https://mcp.example.com".into()],
                jwks_uri: None,
                user_claim: "sub".into(),
                email_claim: "email".into(),
                groups_claim: "groups".into(),
                client_claim: None,
                required_scopes: vec![],
                clock_skew_seconds: 60,
                browser_login: None,
            },
        }
    }

    fn service_accounts(name: &str) -> TrustProviderConfig {
        TrustProviderConfig {
            name: name.into(),
            authenticates: PrincipalKind::Agent,
            method: TrustMethod::KubernetesServiceAccount {
                issuer: Some(ISS.into()),
                token_review: false,
                audiences: vec!["gatehouse".into()],
                header: "x-agent-token".into(),
            },
        }
    }

    /// A token found in the verified-token cache is answered by the provider its issuer
    /// selects, as an uncached one would be: one verified as an agent credential (by a
    /// ServiceAccount provider with the same issuer) is still a user token in `Authorization`.
    #[tokio::test]
    async fn a_cached_token_keeps_the_provider_its_issuer_selects() {
        let key = mk_key("k1");
        let idp = FakeIdp::serving(&[&key]);
        let authn = Authenticator::new(
            &[oidc("corp"), service_accounts("cluster")],
            &SecretValues::default(),
            None,
            &["/mcp/demo"],
            Arc::new(idp),
            None,
        )
        .unwrap();
        let t = token(
            &key,
            serde_json::json!({
                "iss": ISS, "aud": ["https://mcp.example.com", "gatehouse"],
                "sub": "system:serviceaccount:agents:triage", "iat": now(), "exp": now() + 300,
            }),
        );
        let with = |name: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                format!("Bearer {t}").parse().unwrap(),
            );
            h
        };
        let as_agent = authn
            .authenticate(&with("x-agent-token"), None, None)
            .await
            .unwrap();
        assert_eq!(as_agent.agent.unwrap().id, "agents/triage");
        assert!(as_agent.user.is_none());
        for _ in 0..2 {
            let as_user = authn
                .authenticate(&with("authorization"), None, None)
                .await
                .unwrap();
            let user = as_user.user.expect("a user token");
            assert_eq!(
                (user.id.as_str(), user.provider.as_str()),
                ("system:serviceaccount:agents:triage", "corp")
            );
            let again = authn
                .authenticate(&with("x-agent-token"), None, None)
                .await
                .unwrap();
            assert_eq!(again.agent.unwrap().provider, "cluster");
        }
    }
}
