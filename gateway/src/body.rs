//! The response body type every stage returns, and small constructors for it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// Errors inside a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: a full buffer, or a stream relayed frame by frame.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `data`.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// A request body as the handler receives it.
#[derive(Debug)]
pub enum RequestBody {
    /// Streamed by hyper (HTTP/2 connections).
    Streamed(hyper::body::Incoming),
    /// Read whole, before the handler ran, by the HTTP/1.1 server ([`crate::http1`]).
    Whole(Bytes),
    /// Longer than the gateway's limit: discarded, or left unread and the connection closed.
    TooLarge,
    /// Could not be read (broken framing, the client stalled or went away): why.
    Unreadable(&'static str),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self::Whole(Bytes::new())
    }
}
