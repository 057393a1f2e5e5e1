//! `oauth2AuthorizationCode`: per-user consent, keyed to the user (not the session), so every
//! agent the policy lets act for that user benefits from one consent.
//!
//! 1. A request for a user without a stored grant is answered with a URL-mode elicitation
//!    (`-32042`) whose link is `<publicUrl>/oauth/consent/<id>.<sealed>`: the sealed part names
//!    the authenticated user and expires after [`LINK_TTL`] seconds. Nothing in it is readable
//!    by the client.
//! 2. Opening the link starts the authorization code grant with PKCE (S256) at the provider:
//!    the `state` carries (sealed) the user, the PKCE verifier, a nonce and an expiry; the nonce
//!    is also set in an `HttpOnly` cookie scoped to the callback, so a callback replayed into
//!    another browser fails. The redirect URI is exactly `<publicUrl>/oauth/callback`.
//! 3. The callback checks state, expiry, cookie and single use, exchanges the code (client
//!    authentication as configured), and stores the token set sealed with the provider's key
//!    in the [`TokenStore`] slot of (provider, user).
//! 4. Later requests use the stored access token; it is refreshed [`REFRESH_MARGIN`] before it
//!    expires (rotated refresh tokens replace the old one; one refresh per user at a time). A
//!    refresh refused with `invalid_grant` deletes the grant and asks for consent again.
//!
//! The provider's endpoints are named in the CredentialProvider or discovered from the upstream
//! ([`super::discovery`]); with discovery, the protected resource is sent as the RFC 8707
//! `resource` indicator on the authorization request and every token request, and the token
//! endpoint is reached through the SSRF-guarded client. A discovery failure answers the MCP
//! request (or the consent link) with an error saying why; no consent link is handed out for a
//! provider whose authorization server cannot be found.
//!
//! Known limit: the consent link is a bearer link for its lifetime. A user who forwards it to
//! someone else lets that person connect *their* provider account to the sender's identity
//! (the MCP spec's phishing case). Closing it needs a browser login at the gateway (OIDC against
//! the user's TrustProvider) before redirecting, comparing that `sub` with the link's user.

use super::discovery::Discovery;
use super::oauth2::{ClientAuth, REFRESH_MARGIN, TokenFetchError, random_id};
use super::sealed::SealKey;
use super::token_store::{GrantSlot, TokenStore};
use super::{CredentialError, oauth2::TokenEndpoint};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_api::config::AuthorizationServerDiscovery;
use gatehouse_api::identity::UserIdentity;
use gatehouse_api::refs::ObjectKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Lifetime of consent links and of the `state` of a started consent, seconds.
pub const LINK_TTL: i64 = 600;
/// The cookie binding a started consent to its browser.
pub const CONSENT_COOKIE: &str = "gatehouse_consent";
/// Path of the OAuth redirect URI on the gateway.
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// Path prefix of consent links.
pub const CONSENT_PATH: &str = "/oauth/consent/";

/// A user's token set, in memory.
struct Grant {
    access: Arc<Zeroizing<String>>,
    refresh: Option<Zeroizing<String>>,
    /// Unix seconds.
    expires_at: i64,
}

/// A grant as sealed into the store.
#[derive(Serialize, Deserialize)]
struct GrantRecord {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    expires_at: i64,
}

impl Drop for GrantRecord {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

/// What a consent link says (sealed).
#[derive(Serialize, Deserialize)]
struct LinkClaims {
    /// User slot key.
    u: String,
    /// Expiry, unix seconds.
    x: i64,
}

/// What the OAuth `state` says (sealed).
#[derive(Serialize, Deserialize)]
struct StateClaims {
    u: String,
    /// PKCE verifier.
    v: String,
    /// Nonce, also in the browser's cookie; redeemed once.
    n: String,
    x: i64,
}

impl Drop for StateClaims {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.v.zeroize();
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Grant>>>;

/// The process-wide side of per-user consent: the token store, the grants in memory (one lock
/// per user, so concurrent requests refresh once), and the consent states already redeemed.
/// Outlives configuration reloads, so a reload never makes two refreshes race with one
/// rotating refresh token.
pub struct Grants {
    store: Arc<dyn TokenStore>,
    slots: Mutex<HashMap<GrantSlot, Slot>>,
    redeemed: Mutex<HashMap<String, i64>>,
}

impl Grants {
    /// Grants persisted in `store`.
    pub fn new(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            slots: Mutex::default(),
            redeemed: Mutex::default(),
        }
    }

    fn slot(&self, s: &GrantSlot) -> Slot {
        self.slots
            .lock()
            .expect("lock")
            .entry(s.clone())
            .or_default()
            .clone()
    }

    /// Mark a consent nonce used; false if it already was.
    fn redeem(&self, nonce: &str, expires: i64, now: i64) -> bool {
        let mut used = self.redeemed.lock().expect("lock");
        used.retain(|_, x| *x > now);
        used.insert(nonce.to_string(), expires).is_none()
    }
}

/// A consent that was started: where to send the browser and the cookie to set.
pub struct ConsentStart {
    /// The provider's authorization URL with all parameters.
    pub location: String,
    /// `Set-Cookie` value.
    pub cookie: String,
}

/// Where a provider's endpoints come from.
enum Endpoints {
    /// Named in the CredentialProvider (the token endpoint is in the [`ClientAuth`]).
    Named { authorization_url: String },
    /// Discovered from the upstream.
    Discovered(Box<Discovery>),
}

/// The endpoints to use for one operation.
struct Resolved<'a> {
    authorization_url: String,
    /// The configured client registration.
    named: &'a ClientAuth,
    /// The same registration at the discovered token endpoint.
    discovered: Option<ClientAuth>,
    /// RFC 8707 `resource`, with discovery.
    resource: Option<String>,
    http: &'a dyn TokenEndpoint,
}

impl Resolved<'_> {
    fn client(&self) -> &ClientAuth {
        self.discovered.as_ref().unwrap_or(self.named)
    }
}

/// One `oauth2AuthorizationCode` CredentialProvider.
pub struct AuthCode {
    key: ObjectKey,
    /// Prefix of this provider's links and states.
    id: String,
    endpoints: Endpoints,
    /// Client registration; its `token_url` is unused (empty) with discovery.
    client: ClientAuth,
    scopes: Vec<String>,
    grant_key: SealKey,
    link_key: SealKey,
    public_url: String,
}

/// The prefix naming a provider in links and `state`: 16 hex digits of its key's digest.
pub fn provider_id(key: &ObjectKey) -> String {
    hex::encode(&Sha256::digest(format!("gatehouse-provider\0{key}").as_bytes())[..8])
}

fn user_key(user: &UserIdentity) -> String {
    format!("{}\0{}", user.provider, user.id)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl AuthCode {
    /// Build from configuration: the named `authorization_url` (with the token endpoint in
    /// `client`) or `discovery`; `encryption_key` is the Secret's value.
    pub fn new(
        key: &ObjectKey,
        authorization_url: Option<&str>,
        discovery: Option<&AuthorizationServerDiscovery>,
        client: ClientAuth,
        scopes: &[String],
        encryption_key: &[u8],
        public_url: &str,
    ) -> Result<Self, String> {
        let bad = || {
            format!("CredentialProvider {key}: the encryption key must be 32 bytes, raw or base64")
        };
        let endpoints = match (discovery, authorization_url) {
            (Some(d), _) => Endpoints::Discovered(Box::new(Discovery::new(key, d))),
            (None, Some(a)) if !client.token_url.is_empty() => Endpoints::Named {
                authorization_url: a.to_string(),
            },
            _ => {
                return Err(format!(
                    "CredentialProvider {key}: oauth2AuthorizationCode needs authorizationUrl and tokenUrl, or discovery"
                ));
            }
        };
        Ok(Self {
            key: key.clone(),
            id: provider_id(key),
            endpoints,
            client,
            scopes: scopes.to_vec(),
            grant_key: SealKey::from_secret(encryption_key).ok_or_else(bad)?,
            link_key: SealKey::derive(encryption_key, "consent-link-and-state").ok_or_else(bad)?,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    /// The prefix of this provider's links and states.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.public_url)
    }

    fn slot(&self, user: &str) -> GrantSlot {
        GrantSlot {
            provider: self.key.clone(),
            user: user.to_string(),
        }
    }

    fn aad(&self, purpose: &str) -> Vec<u8> {
        format!("{purpose}\0{}", self.key).into_bytes()
    }

    /// The endpoints to use now (discovered or cached, with discovery). `named_http` is the
    /// client for named token endpoints.
    async fn resolve<'a>(
        &'a self,
        named_http: &'a dyn TokenEndpoint,
    ) -> Result<Resolved<'a>, String> {
        match &self.endpoints {
            Endpoints::Named { authorization_url } => Ok(Resolved {
                authorization_url: authorization_url.clone(),
                named: &self.client,
                discovered: None,
                resource: None,
                http: named_http,
            }),
            Endpoints::Discovered(d) => {
                let e = d.endpoints().await?;
                Ok(Resolved {
                    authorization_url: e.authorization_endpoint.clone(),
                    named: &self.client,
                    discovered: Some(ClientAuth {
                        token_url: e.token_endpoint.clone(),
                        client_id: self.client.client_id.clone(),
                        secret: self.client.secret.clone(),
                        method: self.client.method,
                    }),
                    resource: Some(e.resource.clone()),
                    http: d.http(),
                })
            }
        }
    }

    /// The `-32042` answer for `user`.
    fn consent_required(&self, user: &str, revoked: bool) -> CredentialError {
        let claims = LinkClaims {
            u: user.to_string(),
            x: now() + LINK_TTL,
        };
        let sealed = self.link_key.seal_text(
            &self.aad("consent-link"),
            &serde_json::to_vec(&claims).expect("serializes"),
        );
        let why = if revoked {
            "your earlier authorization was revoked or has expired; "
        } else {
            ""
        };
        CredentialError::ConsentRequired {
            message: format!(
                "CredentialProvider {} needs your authorization: {why}open the link, sign in and approve, then retry",
                self.key
            ),
            url: format!("{}{CONSENT_PATH}{}.{sealed}", self.public_url, self.id),
            elicitation_id: random_id(),
        }
    }

    /// The access token to inject for `user`: the stored one, refreshed when about to expire,
    /// or a consent prompt.
    pub async fn token(
        &self,
        grants: &Grants,
        http: &dyn TokenEndpoint,
        user: &UserIdentity,
    ) -> Result<Arc<Zeroizing<String>>, CredentialError> {
        let user = user_key(user);
        let slot = self.slot(&user);
        let cell = grants.slot(&slot);
        let mut guard = cell.lock().await;
        if guard.is_none() {
            *guard = self.load(grants, &slot).await?;
        }
        let Some(grant) = guard.as_ref() else {
            // A consent link is only worth handing out if the provider can be reached.
            self.resolve(http).await?;
            return Err(self.consent_required(&user, false));
        };
        let t = now();
        if grant.expires_at > t + REFRESH_MARGIN.as_secs() as i64 {
            return Ok(grant.access.clone());
        }
        let Some(refresh) = grant.refresh.as_ref() else {
            if grant.expires_at > t {
                return Ok(grant.access.clone());
            }
            *guard = None;
            self.forget(grants, &slot).await;
            self.resolve(http).await?;
            return Err(self.consent_required(&user, true));
        };
        let resolved = match self.resolve(http).await {
            Ok(r) => r,
            // Discovery is down: keep using the access token while it lasts.
            Err(_) if grant.expires_at > t => return Ok(grant.access.clone()),
            Err(e) => return Err(CredentialError::Unavailable(e)),
        };
        let mut form = vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), refresh.to_string()),
        ];
        if let Some(resource) = &resolved.resource {
            form.push(("resource".to_string(), resource.clone()));
        }
        match resolved.client().request_set(resolved.http, form).await {
            Ok(set) => {
                let fresh = Grant {
                    access: set.access.value.clone(),
                    // Rotating providers send a new refresh token; others keep the old one.
                    refresh: set.refresh.or_else(|| grant.refresh.clone()),
                    expires_at: now() + set.lifetime.as_secs() as i64,
                };
                let access = fresh.access.clone();
                self.save(grants, &slot, &fresh).await?;
                *guard = Some(fresh);
                Ok(access)
            }
            Err(TokenFetchError::Refused { error, .. }) if error == "invalid_grant" => {
                tracing::warn!(provider = %self.key, slot = ?slot, "the provider refused the stored grant (invalid_grant): asking the user to consent again");
                *guard = None;
                self.forget(grants, &slot).await;
                Err(self.consent_required(&user, true))
            }
            // An outage: keep using the access token while it lasts, then fail closed.
            Err(_) if grant.expires_at > now() => Ok(grant.access.clone()),
            Err(e) => Err(CredentialError::Unavailable(format!(
                "CredentialProvider {}: refreshing your authorization failed: {e}",
                self.key
            ))),
        }
    }

    async fn load(
        &self,
        grants: &Grants,
        slot: &GrantSlot,
    ) -> Result<Option<Grant>, CredentialError> {
        let sealed = grants.store.load(slot).await.map_err(|e| {
            CredentialError::Unavailable(format!("CredentialProvider {}: {e}", self.key))
        })?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let record = self
            .grant_key
            .open(&slot.aad(), &sealed)
            .and_then(|plain| serde_json::from_slice::<GrantRecord>(&plain).ok());
        let Some(mut record) = record else {
            // Sealed with another key (rotated) or damaged: unusable, so consent again.
            tracing::warn!(provider = %self.key, slot = ?slot, "a stored grant does not open with the current encryption key: discarding it");
            self.forget(grants, slot).await;
            return Ok(None);
        };
        Ok(Some(Grant {
            access: Arc::new(Zeroizing::new(std::mem::take(&mut record.access_token))),
            refresh: record.refresh_token.take().map(Zeroizing::new),
            expires_at: record.expires_at,
        }))
    }

    async fn save(
        &self,
        grants: &Grants,
        slot: &GrantSlot,
        g: &Grant,
    ) -> Result<(), CredentialError> {
        let record = GrantRecord {
            access_token: g.access.to_string(),
            refresh_token: g.refresh.as_ref().map(|r| r.to_string()),
            expires_at: g.expires_at,
        };
        let plain = Zeroizing::new(serde_json::to_vec(&record).expect("serializes"));
        let sealed = self.grant_key.seal(&slot.aad(), &plain);
        grants.store.save(slot, sealed).await.map_err(|e| {
            CredentialError::Unavailable(format!("CredentialProvider {}: {e}", self.key))
        })
    }

    async fn forget(&self, grants: &Grants, slot: &GrantSlot) {
        if let Err(e) = grants.store.delete(slot).await {
            tracing::warn!(provider = %self.key, error = %e, "could not delete a stored grant");
        }
    }

    /// Open a consent link (the part after `<id>.`) and start the authorization code grant.
    /// `http` is the client for named token endpoints (discovery uses its own).
    pub async fn start(
        &self,
        http: &dyn TokenEndpoint,
        sealed: &str,
    ) -> Result<ConsentStart, String> {
        let expired = "this consent link is invalid or has expired; retry the request in your agent for a new one";
        let plain = self
            .link_key
            .open_text(&self.aad("consent-link"), sealed)
            .ok_or(expired)?;
        let link: LinkClaims = serde_json::from_slice(&plain).map_err(|_| expired)?;
        if link.x < now() {
            return Err(expired.into());
        }
        let resolved = self.resolve(http).await?;
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let state = StateClaims {
            u: link.u.clone(),
            v: verifier,
            n: nonce.clone(),
            x: now() + LINK_TTL,
        };
        let plain = Zeroizing::new(serde_json::to_vec(&state).expect("serializes"));
        let state = format!(
            "{}.{}",
            self.id,
            self.link_key.seal_text(&self.aad("oauth-state"), &plain)
        );
        let mut params = vec![
            ("response_type", "code".to_string()),
            ("client_id", self.client.client_id.clone()),
            ("redirect_uri", self.redirect_uri()),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256".to_string()),
        ];
        if !self.scopes.is_empty() {
            params.push(("scope", self.scopes.join(" ")));
        }
        if let Some(resource) = &resolved.resource {
            params.push(("resource", resource.clone()));
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let authorization_url = resolved.authorization_url;
        let sep = if authorization_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let secure = if self.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        tracing::info!(provider = %self.key, "consent started");
        Ok(ConsentStart {
            location: format!("{authorization_url}{sep}{query}"),
            cookie: format!(
                "{CONSENT_COOKIE}={nonce}; Path={CALLBACK_PATH}; Max-Age={LINK_TTL}; HttpOnly; SameSite=Lax{secure}"
            ),
        })
    }

    /// Finish a consent: check the `state` (the part after `<id>.`) against the browser's
    /// cookie, redeem it once, exchange the code and store the grant for the state's user.
    pub async fn callback(
        &self,
        grants: &Grants,
        http: &dyn TokenEndpoint,
        code: &str,
        sealed_state: &str,
        cookie: Option<&str>,
    ) -> Result<(), String> {
        let invalid = "this authorization response is invalid, expired or was already used; retry the request in your agent";
        let plain = self
            .link_key
            .open_text(&self.aad("oauth-state"), sealed_state)
            .ok_or(invalid)?;
        let state: StateClaims = serde_json::from_slice(&plain).map_err(|_| invalid)?;
        let t = now();
        if state.x < t {
            return Err(invalid.into());
        }
        if !cookie.is_some_and(|c| constant_time_eq(c.as_bytes(), state.n.as_bytes())) {
            return Err("this authorization was started in another browser (or its cookie was blocked); open the consent link again from this browser".into());
        }
        let resolved = self.resolve(http).await?;
        if !grants.redeem(&state.n, state.x, t) {
            return Err(invalid.into());
        }
        let mut form = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("redirect_uri".to_string(), self.redirect_uri()),
            ("code_verifier".to_string(), state.v.clone()),
        ];
        if let Some(resource) = &resolved.resource {
            form.push(("resource".to_string(), resource.clone()));
        }
        let set = resolved
            .client()
            .request_set(resolved.http, form)
            .await
            .map_err(|e| {
                format!(
                    "CredentialProvider {}: the code exchange failed: {e}",
                    self.key
                )
            })?;
        let grant = Grant {
            access: set.access.value.clone(),
            refresh: set.refresh,
            expires_at: now() + set.lifetime.as_secs() as i64,
        };
        let slot = self.slot(&state.u);
        let cell = grants.slot(&slot);
        let mut guard = cell.lock().await;
        self.save(grants, &slot, &grant)
            .await
            .map_err(|e| e.to_string())?;
        *guard = Some(grant);
        tracing::info!(provider = %self.key, slot = ?slot, "consent completed: grant stored for the user");
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// === browser sign-in (crate::consent) ===

impl AuthCode {
    /// The user a live consent link was made for (`<trust provider>\0<user id>`), without
    /// starting anything; `None` if the link does not open or has expired.
    pub fn link_user(&self, sealed: &str) -> Option<String> {
        let plain = self.link_key.open_text(&self.aad("consent-link"), sealed)?;
        let link: LinkClaims = serde_json::from_slice(&plain).ok()?;
        (link.x >= now()).then(|| link.u.clone())
    }

    /// Seal browser sign-in data (its OAuth state, its cookie) with this provider's link key,
    /// bound to `purpose`.
    pub fn seal_for(&self, purpose: &str, plain: &[u8]) -> String {
        self.link_key.seal_text(&self.aad(purpose), plain)
    }

    /// Open what [`Self::seal_for`] sealed for `purpose`.
    pub fn open_for(&self, purpose: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        self.link_key.open_text(&self.aad(purpose), sealed)
    }

    /// The gateway's public base URL (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }
}

/// Whether two secrets (nonces) are equal, in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    constant_time_eq(a.as_bytes(), b.as_bytes())
}
