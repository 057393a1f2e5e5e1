//! Browser sign-in at the gateway (`TrustProvider.spec.oidc.browserLogin`).
//!
//! A per-user consent link ([`crate::credentials::authcode`]) is made for one user, but a link
//! is just a URL: forwarded to — or phished by an attacker who started a consent as themselves
//! — another person, it would connect *that* person's upstream account to the wrong user
//! (cross-app OAuth account takeover). With browser sign-in configured on the user's
//! TrustProvider, [`crate::consent`] first signs the browser in at the same issuer
//! (authorization code + PKCE S256 + nonce, the gateway as an OAuth client), verifies the ID
//! token with the provider's keys, and continues only when the signed-in user is the user the
//! link was made for.
//!
//! This module owns the OIDC client side: the issuer's endpoints (discovery), the
//! authorization URL, and the code exchange with ID token verification. The browser side —
//! cookies, state, redirects — is in [`crate::consent`].

use super::jwt::{JsonFetcher, JwtSettings, JwtVerifier, Mapping};
use crate::credentials::oauth2::TokenEndpoint;
use gatehouse_api::identity::UserIdentity;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Path of the sign-in redirect URI on the gateway.
pub const LOGIN_CALLBACK_PATH: &str = "/oauth/login/callback";

/// The issuer's endpoints, from discovery.
#[derive(Clone)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// The gateway's OAuth client at one OIDC TrustProvider's issuer.
pub struct BrowserLogin {
    provider: String,
    issuer: String,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
    /// Verifies ID tokens: this issuer's keys, audience = our client id, the provider's claim
    /// mapping (so the user id means what it means in bearer tokens).
    verifier: JwtVerifier,
    fetcher: Arc<dyn JsonFetcher>,
    endpoints: tokio::sync::Mutex<Option<Endpoints>>,
}

impl std::fmt::Debug for BrowserLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserLogin")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("confidential", &self.client_secret.is_some())
            .finish()
    }
}

impl BrowserLogin {
    /// A client for `provider` at `issuer`; `mapping` is the provider's user mapping.
    pub fn new(
        provider: &str,
        issuer: &str,
        client_id: &str,
        client_secret: Option<&[u8]>,
        mapping: Mapping,
        clock_skew: Duration,
        fetcher: Arc<dyn JsonFetcher>,
    ) -> Result<Self, String> {
        let client_secret = client_secret
            .map(|s| {
                std::str::from_utf8(s)
                    .map(|s| Zeroizing::new(s.trim().to_string()))
                    .map_err(|_| {
                        format!(
                            "TrustProvider {provider}: the browserLogin client secret is not UTF-8"
                        )
                    })
            })
            .transpose()?;
        let issuer = issuer.trim_end_matches('/').to_string();
        Ok(Self {
            verifier: JwtVerifier::new(
                JwtSettings {
                    provider: provider.to_string(),
                    issuer: issuer.clone(),
                    audiences: vec![client_id.to_string()],
                    jwks_uri: None,
                    mapping,
                    required_scopes: Vec::new(),
                    clock_skew,
                },
                fetcher.clone(),
            ),
            provider: provider.to_string(),
            issuer,
            client_id: client_id.to_string(),
            client_secret,
            fetcher,
            endpoints: tokio::sync::Mutex::new(None),
        })
    }

    /// The TrustProvider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    async fn endpoints(&self) -> Result<Endpoints, String> {
        let mut slot = self.endpoints.lock().await;
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let unavailable = |why: String| {
            format!(
                "sign-in with TrustProvider {} is unavailable: {why}",
                self.provider
            )
        };
        let doc = self.fetcher.get_json(&url).await.map_err(unavailable)?;
        if doc
            .get("issuer")
            .and_then(Value::as_str)
            .map(|i| i.trim_end_matches('/'))
            != Some(self.issuer.as_str())
        {
            return Err(unavailable(format!(
                "the discovery document at {url} names a different issuer"
            )));
        }
        let endpoint = |name: &str| {
            doc.get(name)
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .map(str::to_string)
                .ok_or_else(|| {
                    unavailable(format!("the discovery document at {url} has no {name}"))
                })
        };
        let e = Endpoints {
            authorization: endpoint("authorization_endpoint")?,
            token: endpoint("token_endpoint")?,
        };
        *slot = Some(e.clone());
        Ok(e)
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
        nonce: &str,
    ) -> Result<String, String> {
        let e = self.endpoints().await?;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if e.authorization.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{query}", e.authorization))
    }

    /// Exchange the code for an ID token, verify it (signature, issuer, audience = our client,
    /// expiry, `nonce`), and return the signed-in user. Errors are sentences without secrets.
    pub async fn sign_in(
        &self,
        http: &dyn TokenEndpoint,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
        nonce: &str,
        now: u64,
    ) -> Result<UserIdentity, String> {
        let e = self.endpoints().await?;
        let mut form = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("redirect_uri".to_string(), redirect_uri.to_string()),
            ("code_verifier".to_string(), code_verifier.to_string()),
        ];
        let mut headers = Vec::new();
        match &self.client_secret {
            Some(secret) => {
                use base64::Engine;
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&self.client_id),
                    enc(secret)
                ));
                headers.push(("authorization".to_string(), format!("Basic {basic}")));
            }
            None => form.push(("client_id".to_string(), self.client_id.clone())),
        }
        let failed =
            |why: String| format!("sign-in with TrustProvider {} failed: {why}", self.provider);
        let (status, body) = http
            .post_form(&e.token, headers, form)
            .await
            .map_err(failed)?;
        if status != 200 {
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code")
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect::<String>();
            return Err(failed(format!(
                "the token endpoint answered {status} ({error})"
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| failed("the token response has no id_token".into()))?;
        let verified = self
            .verifier
            .verify(id_token, now)
            .await
            .map_err(|e| failed(format!("the ID token was refused: {e}")))?;
        let user = verified
            .user
            .ok_or_else(|| failed("the ID token names no user".into()))?;
        if user.claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(failed(
                "the ID token does not carry this sign-in's nonce".into(),
            ));
        }
        Ok(Arc::unwrap_or_clone(user))
    }
}
