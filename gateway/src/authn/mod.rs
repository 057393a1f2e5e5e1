//! Authentication: the gateway's TrustProviders turn request credentials into a user and/or an
//! agent identity.
//!
//! Implemented here: `apiKey` (keys hashed with SHA-256 in a Secret, `principal: sha256:<hex>`;
//! `Authorization` as the header means `Bearer <key>`). Other kinds are other issues: they are
//! reported as unsupported and authenticate nobody — fail closed.

use crate::state::SecretValues;
use gatehouse_api::config::{PrincipalKind, TrustMethod, TrustProviderConfig};
use gatehouse_api::identity::{AgentIdentity, AgentKind, UserIdentity};
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Who is calling.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The human user.
    pub user: Option<UserIdentity>,
    /// The agent.
    pub agent: Option<AgentIdentity>,
}

impl Identity {
    /// Whether anything was verified.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.agent.is_none()
    }
}

struct ApiKeyProvider {
    name: String,
    authenticates: PrincipalKind,
    header: HeaderName,
    /// SHA-256 of each key → principal.
    keys: HashMap<[u8; 32], String>,
}

/// The compiled TrustProviders of one snapshot.
pub struct Authenticator {
    api_keys: Vec<ApiKeyProvider>,
    unsupported: Vec<(String, &'static str)>,
}

/// Why a request is not authenticated (safe to show: never contains the presented value).
#[derive(Debug)]
pub struct AuthnError(pub String);

impl Authenticator {
    /// Build from the snapshot's trust providers and the secret values they reference.
    pub fn new(providers: &[TrustProviderConfig], secrets: &SecretValues) -> Result<Self, String> {
        let mut api_keys = Vec::new();
        let mut unsupported = Vec::new();
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
                    let mut map = HashMap::new();
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
                TrustMethod::Oidc { .. } => unsupported.push((tp.name.clone(), "oidc")),
                TrustMethod::KubernetesServiceAccount { .. } => {
                    unsupported.push((tp.name.clone(), "kubernetesServiceAccount"))
                }
                TrustMethod::Mtls { .. } => unsupported.push((tp.name.clone(), "mtls")),
            }
        }
        Ok(Self {
            api_keys,
            unsupported,
        })
    }

    /// Every header that carries a credential for some provider (stripped before relaying).
    pub fn credential_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.api_keys.iter().map(|p| &p.header)
    }

    /// Verify the request's credentials.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthnError> {
        let mut id = Identity::default();
        for p in &self.api_keys {
            let Some(raw) = headers.get(&p.header) else {
                continue;
            };
            let raw = raw.to_str().unwrap_or_default().trim();
            let key = if p.header == http::header::AUTHORIZATION {
                match raw.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => {
                        return Err(AuthnError(format!(
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
                return Err(AuthnError(format!(
                    "the API key in the {} header is not valid for TrustProvider {}",
                    p.header, p.name
                )));
            };
            match p.authenticates {
                PrincipalKind::User if id.user.is_none() => {
                    id.user = Some(UserIdentity {
                        id: principal.clone(),
                        provider: p.name.clone(),
                        ..Default::default()
                    })
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
            for (name, kind) in &self.unsupported {
                reason.push_str(&format!(
                    "; TrustProvider {name} (type {kind}) is not supported by this gateway yet"
                ));
            }
            return Err(AuthnError(reason));
        }
        Ok(id)
    }
}
