//! What the gateway changes in server→client traffic: list results filtered by policy, tool
//! names prefixed — in JSON responses and, event by event, in SSE streams. Every other message
//! is forwarded byte for byte the moment it is complete.

use super::sse::{Event, Parser};
use super::upstream::UpstreamBody;
use crate::audit::AuditRecord;
use crate::authn::Identity;
use crate::authz;
use crate::body::{Body, BoxError};
use crate::error::code;
use crate::metrics::StreamGuard;
use crate::state::{Gateway, Snapshot};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Largest single SSE event or JSON response the gateway will rewrite.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Rewrites the messages answering one client request (or of one GET stream).
#[derive(Clone)]
pub struct Rewriter {
    /// The snapshot the request started on.
    pub snapshot: Arc<Snapshot>,
    /// Index of the server in the snapshot.
    pub server: usize,
    /// Who asked.
    pub who: Identity,
    /// The request being answered: its id and method.
    pub pending: Option<(Value, String)>,
}

impl Rewriter {
    fn prefix(&self) -> Option<&str> {
        self.snapshot.servers[self.server]
            .config
            .tool_prefix
            .as_deref()
    }

    /// Rewrite one server→client message in place; `true` if it changed.
    pub fn rewrite(&self, msg: &mut Value) -> bool {
        let Some((id, method)) = &self.pending else {
            return false;
        };
        if !authz::is_filtered_list(method) || msg.get("id") != Some(id) {
            return false;
        }
        let route = &self.snapshot.servers[self.server];
        let Some(result) = msg.get_mut("result") else {
            return false;
        };
        authz::filter_list(
            &self.snapshot.policies,
            &route.config.key,
            &self.who,
            method,
            result,
        );
        if let (Some(prefix), "tools/list") = (self.prefix(), method.as_str())
            && let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut)
        {
            for t in tools {
                if let Some(name) = t.get("name").and_then(Value::as_str) {
                    t["name"] = Value::String(format!("{prefix}{name}"));
                }
            }
        }
        true
    }

    /// A JSON-RPC error answering the pending request, if there is one.
    fn error_for_pending(&self, message: &str) -> Option<Value> {
        let (id, _) = self.pending.as_ref()?;
        Some(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code::UPSTREAM, "message": message}}),
        )
    }
}

/// Collect a JSON response (bounded), rewrite it, and return the new body.
pub async fn rewrite_json(body: UpstreamBody, rewriter: &Rewriter) -> Result<Bytes, String> {
    let bytes = http_body_util::Limited::new(body, MAX_MESSAGE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the upstream's JSON response failed: {e}"))?
        .to_bytes();
    let mut v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the upstream's JSON response is not valid JSON: {e}"))?;
    Ok(if rewriter.rewrite(&mut v) {
        Bytes::from(v.to_string())
    } else {
        bytes
    })
}

struct SseState {
    body: UpstreamBody,
    parser: Parser,
    rewriter: Rewriter,
    idle: Duration,
    answered: bool,
    done: bool,
    gateway: Arc<Gateway>,
    audit: AuditRecord<'static>,
    _guard: StreamGuard,
}

impl SseState {
    /// End the stream after a failure: count it, audit it, and tell the client if it still
    /// waits for an answer.
    fn fail(&mut self, kind: &str, message: String) -> Option<Bytes> {
        self.done = true;
        let server = self.rewriter.snapshot.servers[self.rewriter.server]
            .label
            .clone();
        self.gateway.metrics.upstream_error(&server, kind);
        tracing::warn!(%server, kind, %message, "upstream SSE stream failed");
        let mut record = self.audit.clone();
        record.error = Some(kind.to_string());
        record.reason = Some(message.clone());
        self.gateway
            .audit
            .write(&self.rewriter.snapshot.config.audit, &record);
        if self.answered {
            return None;
        }
        let err = self.rewriter.error_for_pending(&message)?;
        Some(Bytes::from(format!("data: {err}\n\n")))
    }

    fn event(&mut self, ev: Event) -> Result<Bytes, String> {
        let Some(data) = ev.data.as_deref().filter(|d| !d.trim().is_empty()) else {
            // Priming events, keep-alives: no message.
            return Ok(ev.raw);
        };
        let mut msg: Value = serde_json::from_str(data)
            .map_err(|e| format!("the upstream sent an SSE event that is not JSON-RPC: {e}"))?;
        if let Some((id, _)) = &self.rewriter.pending
            && msg.get("id") == Some(id)
            && (msg.get("result").is_some() || msg.get("error").is_some())
        {
            self.answered = true;
        }
        Ok(if self.rewriter.rewrite(&mut msg) {
            ev.with_data(&msg.to_string())
        } else {
            ev.raw
        })
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let mut out = BytesMut::new();
            loop {
                match self.parser.next_event() {
                    Ok(Some(ev)) => match self.event(ev) {
                        Ok(b) => out.extend_from_slice(&b),
                        Err(m) => {
                            if let Some(b) = self.fail("malformed_sse", m) {
                                out.extend_from_slice(&b);
                            }
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        if let Some(b) = self.fail("malformed_sse", e.to_string()) {
                            out.extend_from_slice(&b);
                        }
                        break;
                    }
                }
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
            if self.done {
                return None;
            }
            match tokio::time::timeout(self.idle, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
                Ok(None) => {
                    self.done = true;
                    if !self.answered && self.rewriter.pending.is_some() {
                        return self.fail(
                            "stream_ended",
                            "the upstream ended the SSE stream without answering the request"
                                .into(),
                        );
                    }
                    return None;
                }
                Ok(Some(Err(e))) => {
                    return self.fail(
                        "stream_error",
                        format!("the upstream SSE stream broke: {e}"),
                    );
                }
                Err(_) => {
                    let ms = self.idle.as_millis();
                    return self.fail(
                        "idle_timeout",
                        format!("the upstream sent nothing for {ms} ms (streamIdle timeout)"),
                    );
                }
            }
        }
    }
}

/// Relay an SSE body event by event: each event is forwarded as soon as its terminating blank
/// line arrives, rewritten only when it answers a filtered list request.
pub fn relay_sse(
    body: UpstreamBody,
    rewriter: Rewriter,
    idle: Duration,
    gateway: Arc<Gateway>,
    audit: AuditRecord<'static>,
) -> Body {
    let guard = StreamGuard::open(&gateway.metrics.active_streams);
    let state = SseState {
        body,
        parser: Parser::new(MAX_MESSAGE_BYTES),
        rewriter,
        idle,
        answered: false,
        done: false,
        gateway,
        audit,
        _guard: guard,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok::<_, BoxError>(Frame::data(chunk)), s))
    });
    StreamBody::new(stream).boxed_unsync()
}
