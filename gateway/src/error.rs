//! Every way a request can fail, and the one place each failure becomes an HTTP status and a
//! JSON-RPC error. Messages are sentences a user can act on and never contain a secret.

use crate::body::{self, Body};
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// JSON-RPC codes the gateway uses (the `-32000..-32099` range is implementation-defined).
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid JSON-RPC request (or a refused batch).
    pub const INVALID_REQUEST: i64 = -32600;
    /// Bad parameters (e.g. a tool name without the server's prefix).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Authentication required or failed.
    pub const UNAUTHORIZED: i64 = -32001;
    /// Session unknown, expired, or bound to someone else.
    pub const SESSION_NOT_FOUND: i64 = -32002;
    /// Denied by policy.
    pub const FORBIDDEN: i64 = -32003;
    /// The upstream failed, timed out, or no credential could be obtained for it.
    pub const UPSTREAM: i64 = -32000;
    /// URLElicitationRequiredError (MCP 2025-11-25): the user must open a URL (per-user
    /// consent) before the request can succeed.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
}

/// A request failure.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route for the path.
    #[error("no MCP server is served at {0}")]
    NoRoute(String),
    /// HTTP method not supported on an MCP endpoint.
    #[error("method {0} is not allowed on an MCP endpoint (use POST, GET or DELETE)")]
    MethodNotAllowed(String),
    /// Origin header not allowed (DNS-rebinding protection).
    #[error("Origin {0:?} is not allowed on this gateway")]
    ForbiddenOrigin(String),
    /// No valid credential.
    #[error("{reason}")]
    Unauthenticated {
        /// Why.
        reason: String,
        /// RFC 9728 metadata URL for the `WWW-Authenticate` challenge.
        resource_metadata: String,
        /// Scopes to request (`scope=` in the challenge), when the gateway requires some.
        scope: Option<String>,
    },
    /// A valid token without the scopes a TrustProvider requires (step-up).
    #[error("{reason}")]
    InsufficientScope {
        /// Why.
        reason: String,
        /// Scopes to request.
        scopes: Vec<String>,
        /// RFC 9728 metadata URL for the `WWW-Authenticate` challenge.
        resource_metadata: String,
    },
    /// POST body is not `application/json`.
    #[error("Content-Type must be application/json, not {0:?}")]
    UnsupportedMediaType(String),
    /// Body over the limit.
    #[error("request body exceeds the gateway's limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// Body unreadable.
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    /// Not JSON.
    #[error("request body is not valid JSON: {0}")]
    Parse(String),
    /// JSON but not a JSON-RPC message we accept.
    #[error("{message}")]
    InvalidRequest {
        /// JSON-RPC id, when known.
        id: Option<Value>,
        /// What is wrong.
        message: String,
    },
    /// Session id unknown, tampered with, expired, or presented by another identity.
    #[error("session not found: {0}; start a new session with initialize")]
    SessionNotFound(&'static str),
    /// Denied by an AccessPolicy (or by default).
    #[error("{reason}")]
    Denied {
        /// JSON-RPC id of the request, `None` for notifications and responses.
        id: Option<Value>,
        /// The decision's reason (names the policy).
        reason: String,
        /// The deciding policy, `namespace/name`.
        policy: Option<String>,
    },
    /// A bad parameter the gateway detects itself.
    #[error("{message}")]
    InvalidParams {
        /// JSON-RPC id.
        id: Option<Value>,
        /// What is wrong.
        message: String,
    },
    /// The credential for the upstream cannot be produced; nothing is relayed.
    #[error("{message}")]
    CredentialUnavailable {
        /// JSON-RPC id.
        id: Option<Value>,
        /// What is wrong.
        message: String,
    },
    /// The user must authorize the gateway at a provider first: a URL-mode elicitation.
    #[error("{message}")]
    ConsentRequired {
        /// JSON-RPC id.
        id: Option<Value>,
        /// What the user is asked to do.
        message: String,
        /// The consent link.
        url: String,
        /// The elicitation id.
        elicitation_id: String,
    },
    /// The upstream did not answer in time.
    #[error("upstream McpServer {server} did not answer within {ms} ms")]
    UpstreamTimeout {
        /// JSON-RPC id.
        id: Option<Value>,
        /// Server.
        server: String,
        /// The timeout.
        ms: u64,
    },
    /// The upstream could not be reached or answered badly.
    #[error("upstream McpServer {server}: {message}")]
    Upstream {
        /// JSON-RPC id.
        id: Option<Value>,
        /// Server.
        server: String,
        /// What happened.
        message: String,
    },
    /// No configuration loaded yet.
    #[error("the gateway has no valid configuration yet")]
    NotReady,
}

impl GatewayError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            NoRoute(_) | SessionNotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ForbiddenOrigin(_) | InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRead(_) | Parse(_) | InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            // A refused request gets its JSON-RPC error in a 200 response so the client can match
            // it to the call; a refused notification or response has no reply, so HTTP says it.
            Denied { id: Some(_), .. } => StatusCode::OK,
            Denied { id: None, .. } => StatusCode::FORBIDDEN,
            InvalidParams { id: Some(_), .. } => StatusCode::OK,
            InvalidParams { id: None, .. } => StatusCode::BAD_REQUEST,
            CredentialUnavailable { id: Some(_), .. } => StatusCode::OK,
            CredentialUnavailable { id: None, .. } => StatusCode::BAD_GATEWAY,
            ConsentRequired { id: Some(_), .. } => StatusCode::OK,
            ConsentRequired { id: None, .. } => StatusCode::FORBIDDEN,
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Upstream { .. } => StatusCode::BAD_GATEWAY,
            NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        use GatewayError::*;
        match self {
            Parse(_) => code::PARSE_ERROR,
            InvalidRequest { .. } | UnsupportedMediaType(_) | PayloadTooLarge(_) | BodyRead(_) => {
                code::INVALID_REQUEST
            }
            InvalidParams { .. } => code::INVALID_PARAMS,
            Unauthenticated { .. } | ForbiddenOrigin(_) | InsufficientScope { .. } => {
                code::UNAUTHORIZED
            }
            SessionNotFound(_) => code::SESSION_NOT_FOUND,
            Denied { .. } => code::FORBIDDEN,
            ConsentRequired { .. } => code::URL_ELICITATION_REQUIRED,
            NoRoute(_) | MethodNotAllowed(_) => code::INVALID_REQUEST,
            CredentialUnavailable { .. } | UpstreamTimeout { .. } | Upstream { .. } | NotReady => {
                code::UPSTREAM
            }
        }
    }

    /// The JSON-RPC id the error answers.
    pub fn id(&self) -> Value {
        use GatewayError::*;
        match self {
            InvalidRequest { id, .. }
            | Denied { id, .. }
            | InvalidParams { id, .. }
            | CredentialUnavailable { id, .. }
            | ConsentRequired { id, .. }
            | UpstreamTimeout { id, .. }
            | Upstream { id, .. } => id.clone().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// A short machine-readable kind, for audit and metrics.
    pub fn kind(&self) -> &'static str {
        use GatewayError::*;
        match self {
            NoRoute(_) => "no_route",
            MethodNotAllowed(_) => "method_not_allowed",
            ForbiddenOrigin(_) => "forbidden_origin",
            Unauthenticated { .. } => "unauthenticated",
            InsufficientScope { .. } => "insufficient_scope",
            UnsupportedMediaType(_) => "unsupported_media_type",
            PayloadTooLarge(_) => "payload_too_large",
            BodyRead(_) => "body_read",
            Parse(_) => "parse_error",
            InvalidRequest { .. } => "invalid_request",
            SessionNotFound(_) => "session_not_found",
            Denied { .. } => "denied",
            InvalidParams { .. } => "invalid_params",
            CredentialUnavailable { .. } => "credential_unavailable",
            ConsentRequired { .. } => "consent_required",
            UpstreamTimeout { .. } => "upstream_timeout",
            Upstream { .. } => "upstream_error",
            NotReady => "not_ready",
        }
    }

    /// The JSON-RPC error object.
    pub fn to_jsonrpc(&self) -> Value {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let GatewayError::Denied { policy, .. } = self {
            error["data"] = json!({"policy": policy, "decision": "deny"});
        }
        if let GatewayError::ConsentRequired {
            message,
            url,
            elicitation_id,
            ..
        } = self
        {
            error["data"] = json!({"elicitations": [{
                "mode": "url", "elicitationId": elicitation_id, "url": url, "message": message,
            }]});
        }
        json!({"jsonrpc": "2.0", "id": self.id(), "error": error})
    }

    /// The error for a credential that cannot be produced for request `id`.
    pub fn credential(e: crate::credentials::CredentialError, id: Option<Value>) -> Self {
        use crate::credentials::CredentialError;
        match e {
            CredentialError::Unavailable(message) => Self::CredentialUnavailable { id, message },
            CredentialError::ConsentRequired {
                message,
                url,
                elicitation_id,
            } => Self::ConsentRequired {
                id,
                message,
                url,
                elicitation_id,
            },
        }
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut resp = Response::new(body::full(self.to_jsonrpc().to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self {
            GatewayError::Unauthenticated {
                resource_metadata,
                scope,
                ..
            } => {
                let mut challenge = format!("Bearer resource_metadata=\"{resource_metadata}\"");
                if let Some(scope) = scope {
                    challenge.push_str(&format!(", scope=\"{scope}\""));
                }
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::InsufficientScope {
                scopes,
                resource_metadata,
                ..
            } => {
                let challenge = format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{resource_metadata}\"",
                    scopes.join(" ")
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::MethodNotAllowed(_) => {
                h.insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            }
            _ => {}
        }
        resp
    }
}
