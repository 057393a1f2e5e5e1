//! Credentials for upstreams: the CredentialProvider an allowing policy names yields the header
//! the gateway injects. The agent's own credentials never travel upstream (see
//! [`crate::relay`]'s header allow-list).
//!
//! Implemented here: `secret` (one shared credential from a Secret, injected with the provider's
//! `{token}` format). Other kinds are other issues; a request that needs one fails closed with a
//! clear error and is not relayed.

use crate::state::SecretValues;
use gatehouse_api::config::{CredentialProviderConfig, CredentialSource};
use gatehouse_api::refs::ObjectKey;
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;

/// How one provider's credential is produced.
enum Credential {
    /// A ready header.
    Inject {
        header: HeaderName,
        value: HeaderValue,
    },
    /// A provider type this gateway does not implement yet.
    Unsupported(&'static str),
}

/// The compiled CredentialProviders of one snapshot.
pub struct Credentials {
    by_key: HashMap<ObjectKey, Credential>,
}

impl Credentials {
    /// Build from the snapshot's providers and the secret values they reference.
    pub fn new(
        providers: &[CredentialProviderConfig],
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let mut by_key = HashMap::new();
        for p in providers {
            let cred = match &p.source {
                CredentialSource::Secret { secret } => {
                    let header =
                        HeaderName::from_bytes(p.header.trim().as_bytes()).map_err(|_| {
                            format!(
                                "CredentialProvider {}: {:?} is not a header name",
                                p.key, p.header
                            )
                        })?;
                    let raw = secrets.key(secret).ok_or_else(|| {
                        format!("CredentialProvider {}: {secret} is not available", p.key)
                    })?;
                    // Secrets written from files often end in a newline that is not part of it.
                    let token = std::str::from_utf8(raw)
                        .map_err(|_| {
                            format!("CredentialProvider {}: {secret} is not UTF-8 text", p.key)
                        })?
                        .trim_end_matches(['\r', '\n']);
                    let mut value = HeaderValue::from_str(&p.format.replace("{token}", token))
                        .map_err(|_| {
                            format!(
                                "CredentialProvider {}: the value from {secret} cannot be sent in an HTTP header",
                                p.key
                            )
                        })?;
                    value.set_sensitive(true);
                    Credential::Inject { header, value }
                }
                CredentialSource::PerUserSecret { .. } => Credential::Unsupported("perUserSecret"),
                CredentialSource::OAuth2ClientCredentials { .. } => {
                    Credential::Unsupported("oauth2ClientCredentials")
                }
                CredentialSource::OAuth2TokenExchange { .. } => {
                    Credential::Unsupported("oauth2TokenExchange")
                }
                CredentialSource::OAuth2AuthorizationCode { .. } => {
                    Credential::Unsupported("oauth2AuthorizationCode")
                }
                CredentialSource::SignedJwt { .. } => Credential::Unsupported("signedJwt"),
            };
            by_key.insert(p.key.clone(), cred);
        }
        Ok(Self { by_key })
    }

    /// The header to inject for `provider`, or why none can be produced (then nothing may be
    /// relayed).
    pub fn header_for(&self, provider: &ObjectKey) -> Result<(&HeaderName, &HeaderValue), String> {
        match self.by_key.get(provider) {
            Some(Credential::Inject { header, value }) => Ok((header, value)),
            Some(Credential::Unsupported(kind)) => Err(format!(
                "CredentialProvider {provider}: credential provider type {kind} is not supported by this gateway yet"
            )),
            None => Err(format!(
                "CredentialProvider {provider} is not available on this gateway (see its status)"
            )),
        }
    }
}
