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
