//! The audit log: one JSON line per client→server MCP message (and per refused request), to the
//! sink the gateway's configuration names. Records hold identities, targets and decisions —
//! never credentials, session keys or message arguments.

use chrono::{SecondsFormat, Utc};
use gatehouse_api::config::AuditConfig;
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

/// One audit record.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 time the request arrived.
    pub timestamp: String,
    /// Gateway-assigned request id (also sent upstream as `X-Request-Id`).
    pub request_id: String,
    /// Digest of the client-visible session id (never the id itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Authenticated user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's email, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// TrustProvider that verified the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_provider: Option<String>,
    /// Authenticated agent id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How the agent was identified (`clientId`, `serviceAccount`, `spiffe`, `other`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_kind: Option<String>,
    /// TrustProvider that verified the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_provider: Option<String>,
    /// The gateway (or sidecar) that served the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// W3C trace id from the client's `traceparent`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// McpServer `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// HTTP method of the request.
    pub http_method: String,
    /// Request path.
    pub path: String,
    /// JSON-RPC method (`response` for a client's reply to a server request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// JSON-RPC id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<serde_json::Value>,
    /// Tool name (as the server knows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Resource URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Prompt name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `allow` or `deny`, when a policy decision was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The deciding AccessPolicy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The CredentialProvider whose credential was injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_provider: Option<String>,
    /// The decision's or the error's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Error kind, when the gateway refused or failed the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP status returned to the client.
    pub status: u16,
    /// HTTP status the upstream returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Milliseconds until the response headers were sent.
    pub latency_ms: f64,
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
pub fn trace_id(traceparent: Option<&http::HeaderValue>) -> Option<String> {
    let v = traceparent?.to_str().ok()?;
    let mut parts = v.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let well_formed = trace.len() == 32
        && trace
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && trace.bytes().any(|b| b != b'0');
    well_formed.then(|| trace.to_string())
}

impl AuditRecord {
    /// A record for a request that just arrived.
    pub fn start(request_id: String, http_method: &str, path: &str) -> Self {
        Self {
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            request_id,
            http_method: http_method.to_string(),
            path: path.to_string(),
            ..Default::default()
        }
    }
}

enum Sink {
    Stdout,
    File(std::fs::File),
    None,
}

/// Writes audit records to the configured sink; reopens it when the configuration changes.
pub struct AuditLog {
    state: Mutex<Option<(AuditConfig, Sink)>>,
}

impl AuditLog {
    /// An audit log with no sink until the first record (the sink follows the config).
    pub fn new() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }

    /// Write one record to the sink `config` names.
    pub fn write(&self, config: &AuditConfig, record: &AuditRecord) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.as_ref().is_none_or(|(c, _)| c != config) {
            let sink = match config {
                AuditConfig::Stdout => Sink::Stdout,
                AuditConfig::None => Sink::None,
                AuditConfig::File { path } => {
                    match OpenOptions::new().create(true).append(true).open(path) {
                        Ok(f) => Sink::File(f),
                        Err(e) => {
                            tracing::error!(%path, error = %e, "cannot open the audit file; auditing to stdout");
                            Sink::Stdout
                        }
                    }
                }
            };
            *state = Some((config.clone(), sink));
        }
        let result = match state.as_mut().map(|(_, s)| s) {
            Some(Sink::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line).and_then(|_| out.flush())
            }
            Some(Sink::File(f)) => f.write_all(&line),
            Some(Sink::None) | None => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "audit write failed");
        }
    }
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::new()
    }
}
