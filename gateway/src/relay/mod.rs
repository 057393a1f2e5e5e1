//! The relay: Streamable HTTP between an authenticated, authorized client and its upstream.
//!
//! Stages run in order — route, authenticate, session, inspect, authorize, credential — and
//! only then does anything go upstream. Upstream requests are built from an allow-list of
//! headers, so the client's `Authorization`, cookies and API-key or agent-credential headers can
//! never be forwarded; the credential the policy's CredentialProvider yields is added instead.

pub mod rewrite;
pub mod socket_body;
pub mod sse;
pub mod upstream;

use crate::audit::AuditRecord;
use crate::authn::Identity;
use crate::body::{self, Body, RequestBody};
use crate::error::GatewayError;
use crate::inspect::{self, ClientMessage, Kind};
use crate::session::{self, SessionClaims};
use crate::state::{Gateway, Snapshot};
use crate::{authz, route};
use bytes::Bytes;
use gatehouse_api::policy::Operation;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use rewrite::Rewriter;
use std::borrow::Cow;
use std::sync::Arc;

const MCP_SESSION_ID: &str = "mcp-session-id";
const MCP_PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// Whether a client header is relayed upstream. Everything else — `Authorization`, `Cookie`,
/// API-key and agent-credential headers, `Host`, hop-by-hop headers — stays at the gateway.
/// Matched by name (a length switch, then bytes), not compared with each allowed name in turn.
fn forwarded_request_field(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "accept"
            | "content-type"
            | MCP_PROTOCOL_VERSION
            | "last-event-id"
            | "traceparent"
            | "tracestate"
            | "user-agent"
            | "mcp-method"
            | "mcp-name"
    )
}

/// Upstream headers relayed to the client (the session id is replaced by the gateway's).
static FORWARDED_RESPONSE_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    HeaderName::from_static(MCP_PROTOCOL_VERSION),
    header::RETRY_AFTER,
    header::ALLOW,
];

/// The upstream response fields the gateway reads: those it relays, the session id, and the
/// framing. The plain-HTTP upstream client keeps only these as it parses a response head.
pub(crate) static UPSTREAM_RESPONSE_FIELDS: [HeaderName; 9] = {
    let n = &UPSTREAM_RESPONSE_FIELD_NAMES;
    [
        HeaderName::from_static(n[0]),
        HeaderName::from_static(n[1]),
        HeaderName::from_static(n[2]),
        HeaderName::from_static(n[3]),
        HeaderName::from_static(n[4]),
        HeaderName::from_static(n[5]),
        HeaderName::from_static(n[6]),
        HeaderName::from_static(n[7]),
        HeaderName::from_static(n[8]),
    ]
};

/// [`UPSTREAM_RESPONSE_FIELDS`] as text, for matching raw field names without building a
/// `HeaderName` for each.
pub(crate) const UPSTREAM_RESPONSE_FIELD_NAMES: [&str; 9] = [
    "content-type",
    "cache-control",
    MCP_PROTOCOL_VERSION,
    "retry-after",
    "allow",
    MCP_SESSION_ID,
    "content-length",
    "transfer-encoding",
    "connection",
];

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The session id field, the client's and the upstream's alike.
static UPSTREAM_SESSION_ID: HeaderName = HeaderName::from_static(MCP_SESSION_ID);
static PROTOCOL_VERSION: HeaderName = HeaderName::from_static(MCP_PROTOCOL_VERSION);

/// Everything known about the request being relayed.
pub struct Call<'a, 's> {
    /// The shared gateway.
    pub gateway: &'a Arc<Gateway>,
    /// The snapshot serving it.
    pub snapshot: &'s Arc<Snapshot>,
    /// Index of the server.
    pub server: usize,
    /// The caller.
    pub who: Identity,
    /// The client's session id and its claims, when it sent one.
    pub session: Option<(String, SessionClaims)>,
    /// The audit record being filled.
    pub audit: &'a mut AuditRecord<'s>,
}

/// Relay an MCP request (its head `parts`, its body `incoming`): route and authentication are
/// done; the rest happens here.
///
/// Not an `async fn`, which would keep a second copy of `call` in its future for the whole
/// request: the block below uses its captures in place.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores `call` twice in its future"
)]
pub fn relay<'a, 's>(
    mut call: Call<'a, 's>,
    parts: &'a Parts,
    incoming: RequestBody,
) -> impl Future<Output = Result<Response<Body>, GatewayError>> + Send + 'a {
    async move {
        let route = &call.snapshot.servers[call.server];
        let (message, upstream_body) = match parts.method {
            Method::POST => {
                let ct = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let mime = ct.split(';').next().unwrap_or("").trim();
                if !mime.eq_ignore_ascii_case("application/json") {
                    return Err(GatewayError::UnsupportedMediaType(ct.to_string()));
                }
                let limit = call.gateway.process.max_body_bytes;
                let bytes = read_limited(incoming, limit).await?;
                let version = parts
                    .headers
                    .get(&PROTOCOL_VERSION)
                    .and_then(|v| v.to_str().ok());
                let mut msg = inspect::parse(&bytes, version)?;
                note_message(call.audit, &msg);
                let body = match strip_tool_prefix(route.config.tool_prefix.as_deref(), &mut msg)? {
                    true => Bytes::from(inspect::rename_tool(
                        &bytes,
                        msg.tool.as_deref().unwrap_or_default(),
                    )?),
                    false => bytes,
                };
                (Some(msg), body)
            }
            Method::GET | Method::DELETE => {
                call.audit.method = Some(parts.method.to_string());
                (None, Bytes::new())
            }
            ref other => return Err(GatewayError::MethodNotAllowed(other.to_string())),
        };
        if message.as_ref().is_some_and(|m| m.method == "initialize") && call.session.is_some() {
            // A re-initialize starts a new session: the old binding does not carry over.
            call.session = None;
        }

        // === authorize ===
        let (op, args) = match &message {
            Some(m) => (m.operation(m.tool.as_deref()), m.arguments()),
            None => (
                Operation::Server {
                    method: parts.method.as_str(),
                },
                None,
            ),
        };
        let snapshot: &Snapshot = call.snapshot;
        let decision = authz::decide(
            &snapshot.policies,
            &route.config.key,
            &call.who,
            op,
            args,
            call.audit.arrived,
        );
        call.audit.decision = Some(Cow::Borrowed(decision.effect.as_str()));
        call.audit.policy = decision.policy_name.map(Cow::Borrowed);
        call.audit.credential_provider = decision.credential_provider_name.map(Cow::Borrowed);
        let id = message.as_ref().and_then(|m| m.id.clone());
        let is_request = message.as_ref().is_some_and(|m| m.kind == Kind::Request);
        if !decision.is_allowed() {
            call.audit.reason = Some(decision.reason.clone());
            return Err(GatewayError::Denied {
                id: if is_request { id } else { None },
                reason: decision.reason,
                policy: decision.policy_name.map(str::to_owned),
            });
        }
        call.audit.reason = Some(decision.reason);

        let upstream = &route.upstream;
        // In a block: the upstream request's parts are gone once it is answered, not kept in this
        // future while the response is relayed.
        let resp = {
            // === credential ===
            let credential = match decision.credential_provider {
                Some(cp) => Some(
                    call.snapshot
                        .credentials
                        .credential_for(cp, &call.who)
                        .await
                        .map_err(|e| {
                            GatewayError::credential(e, if is_request { id.clone() } else { None })
                        })?,
                ),
                None => None,
            };

            // === upstream request ===
            // The client's allow-listed fields (never a trust provider's credential header), then the
            // gateway's own, each replacing any field of its name.
            let request_id = HeaderValue::from_str(&call.audit.request_id).ok();
            let upstream_session = call
                .session
                .as_ref()
                .and_then(|(_, claims)| HeaderValue::from_str(&claims.upstream).ok());
            let own = [
                request_id.as_ref().map(|v| (&X_REQUEST_ID, v)),
                upstream_session.as_ref().map(|v| (&UPSTREAM_SESSION_ID, v)),
                credential.as_ref().map(|(n, v)| (n, v)),
            ];
            let mut fields = Vec::with_capacity(parts.headers.len() + own.len());
            for (name, value) in &parts.headers {
                if forwarded_request_field(name)
                    && !call.snapshot.authn.credential_headers().any(|c| c == name)
                {
                    fields.push((name, value));
                }
            }
            for (name, value) in own.into_iter().flatten() {
                fields.retain(|(n, _)| *n != name);
                fields.push((name, value));
            }
            let up = upstream::Outbound {
                method: &parts.method,
                fields,
                body: upstream_body,
            };

            match tokio::time::timeout(upstream.request_timeout, upstream.send(up)).await {
                Err(_) => {
                    call.gateway.metrics.upstream_error(&route.label, "timeout");
                    return Err(GatewayError::UpstreamTimeout {
                        id,
                        server: route.label.clone(),
                        ms: upstream.request_timeout.as_millis() as u64,
                    });
                }
                Ok(Err(e)) => {
                    let kind = if e.is_connect() { "connect" } else { "request" };
                    call.gateway.metrics.upstream_error(&route.label, kind);
                    let message = if e.is_connect() {
                        "cannot connect to the upstream".to_string()
                    } else {
                        format!("request failed: {e}")
                    };
                    return Err(GatewayError::Upstream {
                        id,
                        server: route.label.clone(),
                        message,
                    });
                }
                Ok(Ok(resp)) => resp,
            }
        };
        call.audit.upstream_status = Some(resp.status().as_u16());

        // === response ===
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            call.gateway.metrics.upstream_error(&route.label, "auth");
            return Err(GatewayError::Upstream {
                id,
                server: route.label.clone(),
                message: format!(
                    "the upstream refused the gateway's credential (HTTP {}); check the CredentialProvider",
                    status.as_u16()
                ),
            });
        }
        if status.is_server_error() {
            call.gateway.metrics.upstream_error(&route.label, "status");
        }
        let (up_parts, up_body) = resp.into_parts();
        let mut out = Response::builder().status(status);
        let oh = out.headers_mut().expect("fresh builder");
        // One pass over the upstream's fields (few: the client keeps only those read here), using
        // the first value of each name.
        let mut upstream_sid = None;
        let mut content_type: &[u8] = b"";
        let mut previous = None;
        for (name, value) in &up_parts.headers {
            // A name's values come one after another.
            if previous.replace(name) == Some(name) {
                continue;
            }
            if *name == UPSTREAM_SESSION_ID {
                upstream_sid = value.to_str().ok();
            } else if FORWARDED_RESPONSE_HEADERS.contains(name) {
                if *name == header::CONTENT_TYPE {
                    content_type = value.as_bytes();
                }
                oh.insert(name, value.clone());
            }
        }
        if let Some(upstream_sid) = upstream_sid {
            let token = session_token(&call, upstream_sid);
            call.audit.session = Some(session::digest(&token));
            if let Ok(v) = HeaderValue::from_str(&token) {
                oh.insert(UPSTREAM_SESSION_ID.clone(), v);
            }
        }
        if parts.method == Method::DELETE && status.is_success() && call.session.is_some() {
            call.gateway.metrics.active_sessions.dec();
        }

        let pending = message
            .filter(|m| m.kind == Kind::Request)
            .and_then(|m| Some((m.id?, m.method)));
        let is_sse = starts_with_ignore_case(content_type, b"text/event-stream");
        let may_rewrite = pending
            .as_ref()
            .is_some_and(|(_, m)| authz::is_filtered_list(m));
        let rewriter = |pending| Rewriter {
            snapshot: call.snapshot.clone(),
            server: call.server,
            who: call.who,
            pending,
        };
        let body = if is_sse {
            rewrite::relay_sse(
                up_body,
                rewriter(pending),
                upstream.idle_timeout,
                call.gateway.clone(),
                call.audit.clone().into_owned(),
            )
        } else if may_rewrite && starts_with_ignore_case(content_type, b"application/json") {
            // Boxed: only list results are rewritten; inline its state would enlarge every
            // request's future.
            match Box::pin(rewrite::rewrite_json(up_body, &rewriter(pending))).await {
                Ok(b) => body::full(b),
                Err(message) => {
                    call.gateway
                        .metrics
                        .upstream_error(&route.label, "malformed_json");
                    return Err(GatewayError::Upstream {
                        id,
                        server: route.label.clone(),
                        message,
                    });
                }
            }
        } else {
            up_body.map_err(Into::into).boxed_unsync()
        };
        out.body(body).map_err(|e| GatewayError::Upstream {
            id,
            server: route.label.clone(),
            message: e.to_string(),
        })
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The client's session id for `upstream_sid`: the one it sent if it still names that upstream
/// session, else a freshly minted one bound to this caller and server.
fn session_token(call: &Call<'_, '_>, upstream_sid: &str) -> String {
    if let Some((token, claims)) = &call.session
        && claims.upstream == upstream_sid
    {
        return token.clone();
    }
    let (user, agent) = session::owner(call.who.user.as_deref(), call.who.agent.as_ref());
    let now = chrono::Utc::now().timestamp();
    let ttl = call.snapshot.config.session.ttl_seconds as i64;
    let claims = SessionClaims {
        upstream: upstream_sid.to_string(),
        server: call.snapshot.servers[call.server].label.clone(),
        user,
        agent,
        issued: now,
        expires: now + ttl,
    };
    call.gateway.metrics.active_sessions.inc();
    call.snapshot.session_keys.seal(&claims)
}

/// Read a request body, refusing more than `limit` bytes. An oversized body is still read and
/// discarded (up to a bound, briefly) so the client, still sending, gets to see the 413.
async fn read_limited(body: RequestBody, limit: usize) -> Result<Bytes, GatewayError> {
    let mut body = match body {
        RequestBody::Streamed(body) => body,
        RequestBody::Whole(b) if b.len() > limit => {
            return Err(GatewayError::PayloadTooLarge(limit));
        }
        RequestBody::Whole(b) => return Ok(b),
        RequestBody::TooLarge => return Err(GatewayError::PayloadTooLarge(limit)),
        RequestBody::Unreadable(why) => return Err(GatewayError::BodyRead(why.to_string())),
    };
    let mut buf = bytes::BytesMut::new();
    let mut too_large = false;
    let mut discarded = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) if !too_large => return Err(GatewayError::BodyRead(e.to_string())),
            Ok(None) if !too_large => return Ok(buf.freeze()),
            Err(_) if !too_large => {
                return Err(GatewayError::BodyRead(
                    "timed out reading the request body".into(),
                ));
            }
            _ => return Err(GatewayError::PayloadTooLarge(limit)),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if too_large {
            discarded += data.len();
            if discarded > 4 * limit {
                return Err(GatewayError::PayloadTooLarge(limit));
            }
        } else if buf.len() + data.len() > limit {
            too_large = true;
            buf.clear();
        } else {
            buf.extend_from_slice(&data);
        }
    }
}

/// Fill the audit record's message fields.
fn note_message(audit: &mut AuditRecord<'_>, m: &ClientMessage) {
    audit.method = Some(m.method.clone());
    audit.jsonrpc_id = m.id.clone();
    audit.tool = m.tool.clone();
    audit.resource = m.resource.clone();
    audit.prompt = m.prompt.clone();
}

/// For servers with a `toolPrefix`: agents call `<prefix><name>`; the upstream knows `<name>`.
/// Returns whether the message changed. A name without the prefix names no tool of this server.
fn strip_tool_prefix(prefix: Option<&str>, m: &mut ClientMessage) -> Result<bool, GatewayError> {
    let (Some(prefix), Some(name)) = (prefix, m.tool.as_deref()) else {
        return Ok(false);
    };
    let Some(bare) = name.strip_prefix(prefix) else {
        return Err(GatewayError::InvalidParams {
            id: m.id.clone(),
            message: format!(
                "unknown tool {name:?}: tools of this server are named {prefix}<name>"
            ),
        });
    };
    m.tool = Some(bare.to_string());
    Ok(true)
}

/// Resolve the client's `Mcp-Session-Id`, if any, checking it belongs to `who` and this server.
pub fn open_session(
    snapshot: &Snapshot,
    server: usize,
    who: &Identity,
    headers: &HeaderMap,
    audit: &mut AuditRecord<'_>,
) -> Result<Option<(String, SessionClaims)>, GatewayError> {
    let Some(token) = headers.get(&UPSTREAM_SESSION_ID) else {
        return Ok(None);
    };
    let token = token.to_str().unwrap_or_default().to_string();
    audit.session = Some(session::digest(&token));
    let owner = session::owner(who.user.as_deref(), who.agent.as_ref());
    let now = chrono::Utc::now().timestamp();
    match snapshot
        .session_keys
        .open(&token, &snapshot.servers[server].label, &owner, now)
    {
        Ok(claims) => Ok(Some((token, claims))),
        Err(e) => Err(GatewayError::SessionNotFound(e.public_reason())),
    }
}

/// The RFC 9728 document for a route.
pub fn protected_resource_response(
    snapshot: &Snapshot,
    headers: &HeaderMap,
    tls: bool,
    path: &str,
) -> Response<Body> {
    let base = route::public_base(snapshot, headers, tls);
    let doc = route::protected_resource(snapshot, &base, path);
    let mut r = Response::new(body::full(doc.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_client_fields_are_relayed_upstream() {
        for name in [
            "Accept",
            "content-type",
            "MCP-Protocol-Version",
            "last-event-id",
            "traceparent",
            "tracestate",
            "User-Agent",
            "mcp-method",
            "mcp-name",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(forwarded_request_field(&name), "{name}");
        }
        for name in [
            "authorization",
            "cookie",
            "host",
            "x-api-key",
            "proxy-authorization",
            "connection",
            "transfer-encoding",
            "content-length",
            "mcp-session-id",
            "forwarded",
            "x-forwarded-for",
            "accept-encoding",
            "mcp-names",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(!forwarded_request_field(&name), "{name}");
        }
    }
}
