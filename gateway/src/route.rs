//! Routing: request path → the McpServer served there, or the RFC 9728 protected-resource
//! metadata of a route.

use crate::state::Snapshot;
use gatehouse_api::config::TrustMethod;
use http::HeaderMap;
use serde_json::{Value, json};

/// Where a request goes.
pub enum Route {
    /// An MCP endpoint: index of the server in the snapshot.
    Mcp(usize),
    /// `/.well-known/oauth-protected-resource[<path>]`.
    ProtectedResource(String),
    /// An endpoint of the credential providers (consent, OAuth callback, JWKS): not MCP, not
    /// authenticated by a bearer token, served by [`crate::consent`].
    Credentials(CredentialEndpoint),
    /// Nothing here.
    NotFound,
}

/// Endpoints the credential providers serve on the gateway.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialEndpoint {
    /// `/oauth/consent/<link>`: start a per-user consent.
    Consent(String),
    /// `/oauth/callback`: the OAuth redirect URI.
    Callback,
    /// `/oauth/login/callback`: the redirect URI of browser sign-in before a consent.
    LoginCallback,
    /// `/.well-known/jwks.json`: public keys of `signedJwt` providers.
    Jwks,
}

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Route a path.
pub fn route(snapshot: &Snapshot, path: &str) -> Route {
    if let Some(rest) = path.strip_prefix(WELL_KNOWN) {
        if rest.is_empty() || snapshot.server_by_path(rest).is_some() {
            return Route::ProtectedResource(rest.to_string());
        }
        return Route::NotFound;
    }
    if let Some(link) = path.strip_prefix(crate::credentials::authcode::CONSENT_PATH) {
        return Route::Credentials(CredentialEndpoint::Consent(link.to_string()));
    }
    match path {
        crate::credentials::authcode::CALLBACK_PATH => {
            return Route::Credentials(CredentialEndpoint::Callback);
        }
        crate::authn::browser_login::LOGIN_CALLBACK_PATH => {
            return Route::Credentials(CredentialEndpoint::LoginCallback);
        }
        "/.well-known/jwks.json" => return Route::Credentials(CredentialEndpoint::Jwks),
        _ => {}
    }
    match snapshot.servers.iter().position(|s| s.config.path == path) {
        Some(i) => Route::Mcp(i),
        None => Route::NotFound,
    }
}

/// The gateway's public base URL: the configured `publicUrl`, else what the client used.
pub fn public_base(snapshot: &Snapshot, headers: &HeaderMap, tls: bool) -> String {
    if let Some(u) = &snapshot.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// The RFC 9728 metadata URL for `path`, as sent in `WWW-Authenticate`.
pub fn metadata_url(base: &str, path: &str) -> String {
    format!("{base}{WELL_KNOWN}{path}")
}

/// The RFC 9728 metadata document of a route.
pub fn protected_resource(snapshot: &Snapshot, base: &str, path: &str) -> Value {
    let issuers: Vec<&str> = snapshot
        .config
        .trust_providers
        .iter()
        .filter_map(|t| match &t.method {
            TrustMethod::Oidc { issuer, .. } => Some(issuer.as_str()),
            _ => None,
        })
        .collect();
    let mut doc = json!({
        "resource": format!("{base}{path}"),
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
    });
    let scopes = required_scopes(snapshot);
    if !scopes.is_empty() {
        doc["scopes_supported"] = json!(scopes);
    }
    doc
}

/// Scopes the gateway's OIDC providers require (advertised so clients ask for them up front).
pub fn required_scopes(snapshot: &Snapshot) -> Vec<String> {
    let mut scopes: Vec<String> = snapshot
        .config
        .trust_providers
        .iter()
        .filter_map(|t| match &t.method {
            TrustMethod::Oidc {
                required_scopes, ..
            } => Some(required_scopes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}
