//! Credentials for upstreams: the CredentialProvider an allowing policy names yields the header
//! the gateway injects. The agent's own credentials never travel upstream (see
//! [`crate::relay`]'s header allow-list).
//!
//! - `secret`: one shared credential from a Secret.
//! - `perUserSecret`: the user's own credential, from one Secret keyed by user id or from one
//!   Secret per user named by a template.
//! - `oauth2ClientCredentials`: the gateway's own token from a token endpoint ([`oauth2`]),
//!   cached until shortly before expiry, single flight.
//! - `oauth2TokenExchange`: the user's verified token (and optionally the agent's, as actor)
//!   exchanged for one for the upstream, cached per (user, agent).
//! - `oauth2AuthorizationCode`: the user's own grant from a one-time consent ([`authcode`]),
//!   stored encrypted per user ([`token_store`]), refreshed before expiry; no grant (or a
//!   revoked one) answers with a consent link.
//! - `signedJwt`: a short-lived JWT the gateway mints for (user, agent) ([`signed_jwt`]).
//!
//! A provider that cannot work (bad key, no `publicUrl` to build links on) fails closed: its
//! requests get a clear error and are not relayed; other providers keep working.

pub mod authcode;
pub mod discovery;
pub mod oauth2;
pub mod sealed;
pub mod signed_jwt;
pub mod token_store;

use crate::authn::Identity;
use crate::provider_http::ProviderHttp;
use crate::state::SecretValues;
use authcode::{AuthCode, Grants};
use gatehouse_api::config::{CredentialProviderConfig, CredentialSource};
use gatehouse_api::refs::{ObjectKey, SecretRef};
use http::{HeaderName, HeaderValue};
use oauth2::{AuthMethod, ClientAuth, TokenCache};
use signed_jwt::JwtMinter;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Why no credential can be produced. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Misconfiguration, a missing credential, or a provider outage.
    #[error("{0}")]
    Unavailable(String),
    /// The user must authorize the gateway at a provider first (answered as a URL-mode
    /// elicitation, `-32042`).
    #[error("{message}")]
    ConsentRequired {
        /// What the user is asked to do.
        message: String,
        /// The consent link on the gateway.
        url: String,
        /// The elicitation id.
        elicitation_id: String,
    },
}

impl From<String> for CredentialError {
    fn from(s: String) -> Self {
        Self::Unavailable(s)
    }
}

/// How one provider's credential is produced.
enum Credential {
    /// A ready header.
    Static(HeaderValue),
    /// A per-user static credential.
    PerUser {
        /// Secret lookup description, for errors.
        source: PerUserSource,
        /// Values found at load, by lookup key.
        values: HashMap<String, Zeroizing<String>>,
    },
    /// OAuth 2.0 client credentials.
    ClientCredentials {
        client: ClientAuth,
        form: Vec<(String, String)>,
        cache: TokenCache,
    },
    /// OAuth 2.0 token exchange.
    TokenExchange {
        client: ClientAuth,
        scopes: Vec<String>,
        audience: Option<String>,
        resource: Option<String>,
        actor: bool,
        cache: TokenCache,
    },
    /// Per-user consent.
    AuthCode(Box<AuthCode>),
    /// A JWT minted by the gateway.
    SignedJwt {
        minter: Box<JwtMinter>,
        cache: TokenCache,
    },
    /// A provider that cannot work; every request gets this error.
    Broken(String),
}

/// Where per-user credentials live.
enum PerUserSource {
    /// One Secret, keyed by sanitized user id.
    Keyed(SecretRef),
    /// One Secret per user: namespace, name template, key.
    PerSecret {
        namespace: String,
        template: String,
        key: String,
    },
}

struct Provider {
    header: HeaderName,
    format: String,
    credential: Credential,
}

/// The compiled CredentialProviders of one snapshot.
pub struct Credentials {
    by_key: HashMap<ObjectKey, Provider>,
    http: ProviderHttp,
    grants: Arc<Grants>,
}

/// The cache key of a credential made for (user, agent): each named with the TrustProvider
/// that verified it (and the agent's kind), so namesakes from two identity providers — `alice`
/// at the corporate IdP and `alice` at a partner's — never share a token.
fn identity_key(who: &Identity) -> String {
    let user = who
        .user
        .as_ref()
        .map(|u| format!("{}\u{0}{}", u.provider, u.id));
    let agent = who
        .agent
        .as_ref()
        .map(|a| format!("{}\u{0}{:?}\u{0}{}", a.provider, a.kind, a.id));
    format!(
        "{}\u{1}{}",
        user.unwrap_or_default(),
        agent.unwrap_or_default()
    )
}

/// `{user}` in Secret names: lowercase, anything but `[a-z0-9]` becomes `-`, trimmed. The
/// compiler lists exactly the existing Secrets this names (cluster-mode gateways read only those),
/// so both share [`gatehouse_api::config::user_secret_name`].
pub use gatehouse_api::config::user_secret_name;

/// Keys of a Secret keyed by user: anything but `[A-Za-z0-9._-]` becomes `_`.
pub fn user_secret_key(user: &str) -> String {
    user.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn text(p: &ObjectKey, what: &str, raw: &[u8]) -> Result<Zeroizing<String>, String> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| format!("CredentialProvider {p}: {what} is not UTF-8 text"))?;
    // Secrets written from files often end in a newline that is not part of them.
    Ok(Zeroizing::new(s.trim_end_matches(['\r', '\n']).to_string()))
}

fn client_auth(
    p: &ObjectKey,
    token_url: &str,
    client_id: &str,
    secret: &Option<SecretRef>,
    method: &str,
    secrets: &SecretValues,
) -> Result<ClientAuth, String> {
    let method = AuthMethod::parse(method)
        .ok_or_else(|| format!("CredentialProvider {p}: unknown authMethod {method:?}"))?;
    let secret = match secret {
        Some(r) => {
            let raw = secrets
                .key(r)
                .ok_or_else(|| format!("CredentialProvider {p}: {r} is not available"))?;
            Some(text(p, &r.to_string(), raw)?)
        }
        None => None,
    };
    Ok(ClientAuth {
        token_url: token_url.to_string(),
        client_id: client_id.to_string(),
        secret,
        method,
    })
}

impl Credentials {
    /// Build from the snapshot's providers and the secret values they reference.
    /// `grants` is the process-wide per-user grant storage; `public_url` the McpGateway's
    /// `publicUrl` (consent links, the OAuth redirect URI, the default `iss` of minted JWTs).
    pub fn new(
        providers: &[CredentialProviderConfig],
        secrets: &SecretValues,
        http: ProviderHttp,
        grants: Arc<Grants>,
        public_url: Option<&str>,
    ) -> Result<Self, String> {
        let mut by_key = HashMap::new();
        for p in providers {
            let header = HeaderName::from_bytes(p.header.trim().as_bytes()).map_err(|_| {
                format!(
                    "CredentialProvider {}: {:?} is not a header name",
                    p.key, p.header
                )
            })?;
            let credential = match &p.source {
                CredentialSource::Secret { secret } => {
                    let raw = secrets.key(secret).ok_or_else(|| {
                        format!("CredentialProvider {}: {secret} is not available", p.key)
                    })?;
                    let token = text(&p.key, &secret.to_string(), raw)?;
                    Credential::Static(header_value(&p.key, &p.format, &token)?)
                }
                CredentialSource::PerUserSecret {
                    namespace,
                    secret_name,
                    name_template,
                    key,
                } => {
                    let mut values = HashMap::new();
                    let source = match (secret_name, name_template) {
                        (Some(name), _) => {
                            let r = SecretRef::whole(namespace, name);
                            for (user_key, raw) in secrets.whole(&r).into_iter().flatten() {
                                values.insert(user_key.clone(), text(&p.key, &r.to_string(), raw)?);
                            }
                            PerUserSource::Keyed(r)
                        }
                        (None, Some(template)) => {
                            for (name, data) in secrets.in_namespace(namespace) {
                                if let Some(raw) = data.get(key.as_str()) {
                                    values.insert(name.clone(), text(&p.key, name, raw)?);
                                }
                            }
                            PerUserSource::PerSecret {
                                namespace: namespace.clone(),
                                template: template.clone(),
                                key: key.clone(),
                            }
                        }
                        (None, None) => {
                            return Err(format!(
                                "CredentialProvider {}: perUserSecret needs secretName or nameTemplate",
                                p.key
                            ));
                        }
                    };
                    Credential::PerUser { source, values }
                }
                CredentialSource::OAuth2ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    auth_method,
                    scopes,
                    audience,
                    resource,
                } => Credential::ClientCredentials {
                    client: client_auth(
                        &p.key,
                        token_url,
                        client_id,
                        client_secret,
                        auth_method,
                        secrets,
                    )?,
                    form: oauth2::client_credentials_form(
                        scopes,
                        audience.as_deref(),
                        resource.as_deref(),
                    ),
                    cache: TokenCache::default(),
                },
                CredentialSource::OAuth2TokenExchange {
                    token_url,
                    client_id,
                    client_secret,
                    auth_method,
                    audience,
                    resource,
                    scopes,
                    actor_token,
                } => Credential::TokenExchange {
                    client: client_auth(
                        &p.key,
                        token_url,
                        client_id,
                        client_secret,
                        auth_method,
                        secrets,
                    )?,
                    scopes: scopes.clone(),
                    audience: audience.clone(),
                    resource: resource.clone(),
                    actor: *actor_token,
                    cache: TokenCache::default(),
                },
                CredentialSource::OAuth2AuthorizationCode {
                    authorization_url,
                    token_url,
                    discovery,
                    client_id,
                    client_secret,
                    auth_method,
                    scopes,
                    encryption_key,
                } => {
                    let client = client_auth(
                        &p.key,
                        token_url.as_deref().unwrap_or_default(),
                        client_id,
                        client_secret,
                        auth_method,
                        secrets,
                    )?;
                    let key = secrets.key(encryption_key).ok_or_else(|| {
                        format!(
                            "CredentialProvider {}: {encryption_key} is not available",
                            p.key
                        )
                    })?;
                    match public_url {
                        Some(base) => Credential::AuthCode(Box::new(AuthCode::new(
                            &p.key,
                            authorization_url.as_deref(),
                            discovery.as_ref(),
                            client,
                            scopes,
                            key,
                            base,
                        )?)),
                        None => Credential::Broken(format!(
                            "CredentialProvider {}: oauth2AuthorizationCode needs the McpGateway's spec.publicUrl (consent links and the redirect URI <publicUrl>/oauth/callback are built on it)",
                            p.key
                        )),
                    }
                }
                CredentialSource::SignedJwt {
                    signing_key,
                    issuer,
                    audience,
                    ttl_seconds,
                } => {
                    let pem = secrets.key(signing_key).ok_or_else(|| {
                        format!(
                            "CredentialProvider {}: {signing_key} is not available",
                            p.key
                        )
                    })?;
                    match issuer.as_deref().or(public_url) {
                        Some(iss) => Credential::SignedJwt {
                            minter: Box::new(JwtMinter::new(
                                &p.key,
                                pem,
                                iss.trim_end_matches('/').to_string(),
                                audience,
                                *ttl_seconds,
                            )?),
                            cache: TokenCache::default(),
                        },
                        None => Credential::Broken(format!(
                            "CredentialProvider {}: signedJwt needs an issuer, or the McpGateway's spec.publicUrl as the default issuer",
                            p.key
                        )),
                    }
                }
            };
            by_key.insert(
                p.key.clone(),
                Provider {
                    header,
                    format: p.format.clone(),
                    credential,
                },
            );
        }
        Ok(Self {
            by_key,
            http,
            grants,
        })
    }

    /// The consent provider whose links and states start with `id` ([`authcode::provider_id`]).
    pub fn consent_provider(&self, id: &str) -> Option<&AuthCode> {
        self.by_key.values().find_map(|p| match &p.credential {
            Credential::AuthCode(a) if a.id() == id => Some(a.as_ref()),
            _ => None,
        })
    }

    /// Per-user grant storage.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The client for token endpoints.
    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    /// The JWKS document of every `signedJwt` provider's public key.
    pub fn jwks(&self) -> serde_json::Value {
        signed_jwt::jwks(self.by_key.values().filter_map(|p| match &p.credential {
            Credential::SignedJwt { minter, .. } => Some(minter.as_ref()),
            _ => None,
        }))
    }

    /// The header to inject for `provider` on behalf of `who`, or why none can be produced
    /// (then nothing may be relayed). Errors never contain a secret.
    pub async fn credential_for(
        &self,
        provider: &ObjectKey,
        who: &Identity,
    ) -> Result<(HeaderName, HeaderValue), CredentialError> {
        let p = self.by_key.get(provider).ok_or_else(|| {
            format!(
                "CredentialProvider {provider} is not available on this gateway (see its status)"
            )
        })?;
        let value = match &p.credential {
            Credential::Static(v) => v.clone(),
            Credential::PerUser { source, values } => {
                let user = who.user.as_ref().ok_or_else(|| {
                    format!("CredentialProvider {provider} holds personal credentials, but this request has no user")
                })?;
                let lookup = match source {
                    PerUserSource::Keyed(_) => user_secret_key(&user.id),
                    PerUserSource::PerSecret { template, .. } => {
                        user_secret_name(template, &user.id)
                    }
                };
                let token = values.get(&lookup).ok_or_else(|| {
                    let where_ = match source {
                        PerUserSource::Keyed(r) => format!("{r} key {lookup:?}"),
                        PerUserSource::PerSecret { namespace, key, .. } => {
                            format!("Secret {namespace}/{lookup} key {key:?}")
                        }
                    };
                    format!(
                        "no personal credential for user {:?} ({where_} does not exist); ask your administrator to provision it for CredentialProvider {provider}",
                        user.id
                    )
                })?;
                header_value(provider, &p.format, token)?
            }
            Credential::ClientCredentials {
                client,
                form,
                cache,
            } => {
                let token = cache
                    .get("gateway", || client.request(&self.http, form.clone()))
                    .await
                    .map_err(|e| format!("CredentialProvider {provider}: {e}"))?;
                header_value(provider, &p.format, &token.value)?
            }
            Credential::TokenExchange {
                client,
                scopes,
                audience,
                resource,
                actor,
                cache,
            } => {
                let subject = who.user_token.as_ref().ok_or_else(|| {
                    format!(
                        "CredentialProvider {provider} exchanges the user's token, but this request carries no user token from an OIDC TrustProvider"
                    )
                })?;
                let actor_token = if *actor {
                    // Delegation must be provable: without the agent's own token the issued
                    // token would not record the agent, so refuse rather than silently drop it.
                    Some(who.agent_token.as_ref().ok_or_else(|| {
                        format!(
                            "CredentialProvider {provider} records the agent as actor (actorToken: true), but this request carries no token of the agent's own (e.g. a ServiceAccount token in the agent header)"
                        )
                    })?)
                } else {
                    None
                };
                let key = identity_key(who);
                let token = cache
                    .get(&key, || {
                        client.request(
                            &self.http,
                            oauth2::token_exchange_form(
                                subject.expose(),
                                actor_token.map(|t| t.expose()),
                                scopes,
                                audience.as_deref(),
                                resource.as_deref(),
                            ),
                        )
                    })
                    .await
                    .map_err(|e| format!("CredentialProvider {provider}: {e}"))?;
                header_value(provider, &p.format, &token.value)?
            }
            Credential::AuthCode(a) => {
                let user = who.user.as_ref().ok_or_else(|| {
                    format!("CredentialProvider {provider} acts for a user who authorized it, but this request has no user")
                })?;
                // Boxed: this path may refresh or load a grant (HTTP, Secret API); inline,
                // its state would enlarge every request's future.
                let token = Box::pin(a.token(&self.grants, &self.http, user)).await?;
                header_value(provider, &p.format, &token)?
            }
            Credential::SignedJwt { minter, cache } => {
                let key = identity_key(who);
                let token = cache
                    .get(&key, || async {
                        minter.mint(who).map_err(oauth2::TokenFetchError::Config)
                    })
                    .await
                    .map_err(|e| format!("CredentialProvider {provider}: {e}"))?;
                header_value(provider, &p.format, &token.value)?
            }
            Credential::Broken(message) => {
                return Err(CredentialError::Unavailable(message.clone()));
            }
        };
        Ok((p.header.clone(), value))
    }
}

fn header_value(p: &ObjectKey, format: &str, token: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(&format.replace("{token}", token)).map_err(|_| {
        format!("CredentialProvider {p}: the credential cannot be sent in an HTTP header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_credential_types_never_shows_a_secret() {
        use std::time::{Duration, Instant};
        const SECRET: &str = "s3cr3t-t0ken-value";
        let token = oauth2::Token {
            value: Arc::new(Zeroizing::new(SECRET.into())),
            expires_at: Instant::now(),
        };
        let set = oauth2::TokenSet {
            access: token.clone(),
            lifetime: Duration::from_secs(60),
            refresh: Some(Zeroizing::new(SECRET.into())),
        };
        let key = sealed::SealKey::from_secret(b"s3cr3t-t0ken-value-s3cr3t-t0ken-").unwrap();
        let slot = token_store::GrantSlot {
            provider: ObjectKey::new("default", "saas"),
            user: SECRET.into(),
        };
        let err = CredentialError::ConsentRequired {
            message: "m".into(),
            url: "https://gw/oauth/consent/x.y".into(),
            elicitation_id: "e".into(),
        };
        for debug in [
            format!("{token:?}"),
            format!("{set:?}"),
            format!("{key:?}"),
            format!("{slot:?}"),
            format!("{err:?}"),
        ] {
            assert!(!debug.contains("s3cr3t"), "{debug}");
        }
    }

    #[test]
    fn per_user_names_and_keys_are_made_safe() {
        assert_eq!(
            user_secret_name("gh-{user}", "Ana.Lopez@Example.com"),
            "gh-ana-lopez-example-com"
        );
        assert_eq!(user_secret_name("{user}-pat", "__bob__"), "bob-pat");
        assert_eq!(user_secret_key("ana@example.com"), "ana_example.com");
        assert_eq!(user_secret_key("u-1_2.3"), "u-1_2.3");
    }
}
