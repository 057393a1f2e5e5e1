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
    /// Nothing here.
    NotFound,
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
    json!({
        "resource": format!("{base}{path}"),
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
    })
}
