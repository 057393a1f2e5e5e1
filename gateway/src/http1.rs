//! The gateway's HTTP/1.1 server: the client side of every connection that does not speak
//! HTTP/2.
//!
//! Why not hyper's server: an MCP client's listen stream (a GET answered with SSE) stays open
//! for hours carrying nothing. Held by hyper's HTTP/1 connection it keeps ~21 KiB of buffers —
//! an 8 KiB header write buffer allocated with every connection, and a read buffer re-reserved
//! to notice the client closing (massif, bench/RESULTS.md run 10). Here a connection holds no
//! buffer while it waits: bytes are read onto the stack and copied out only when a request is
//! incomplete or pipelined, and a response is encoded into a buffer freed once written.
//!
//! The scope is deliberately small (RFC 9112):
//! - a request body is read whole before the handler runs (MCP messages are bounded JSON),
//!   framed by `Content-Length` or a lone `chunked` (strict syntax). Both at once, any other
//!   transfer coding, or conflicting lengths are refused and the connection closed: the
//!   gateway never guesses where a request ends;
//! - `Expect: 100-continue` is answered before the body is read (or refused with 413 when
//!   the declared length is over the limit);
//! - keep-alive and pipelining (responses in order); HTTP/1.0 gets one request per connection;
//! - a response is framed by `Content-Length` when its length is known, else chunked
//!   (close-delimited for HTTP/1.0); each body frame is written and flushed as it comes (SSE);
//! - a client closing its side cancels its request (the handler's future is dropped);
//! - HTTP/2 with prior knowledge is handed back to the caller (`Served::Http2`) for hyper.

use crate::authn::mtls::PeerCertificates;
use crate::body::{Body, RequestBody};
use crate::listener::Handler;
use crate::relay::socket_body::{Decoder, Framing, read_some};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// Most header fields in one request (hyper's default too).
const MAX_HEADERS: usize = 100;
/// Longest request head, and most pipelined bytes kept while a response is being written.
const MAX_HEAD: usize = 64 * 1024;
/// A response is written out once this much of it is encoded, even if more is ready.
const WRITE_CHUNK: usize = 64 * 1024;
/// Most pipelined bytes kept while a request is handled or its response written.
const MAX_PIPELINED: usize = 8 * 1024;
/// Time allowed for the rest of a request head once its first bytes arrived.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with no request in flight is closed after this long. Clients pool connections
/// for less (Node's fetch: 4 s), so they do not race the close with a new request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A write that makes no progress for this long means the client is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed to read a request body (as for HTTP/2 bodies in the relay).
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the socket stays open, reading and discarding, after a response that closes the
/// connection on a request not fully read: so the client reads the response before a reset.
const LINGER: Duration = Duration::from_secs(1);
/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a connection ended.
pub enum Served<IO> {
    /// Closed (by either side, or at shutdown).
    Done,
    /// The client speaks HTTP/2: serve `0` with an HTTP/2 server (it replays the bytes read).
    Http2(Prefixed<IO>),
}

/// What the server needs besides the connection.
pub struct Options {
    /// The gateway's request body limit.
    pub max_body: usize,
    /// The client's TLS certificates, attached to every request.
    pub peer: Option<PeerCertificates>,
}

/// Serve HTTP/1.1 requests on `io` with `handler` until the client or the server closes the
/// connection, or `shutdown` flips while no request is in flight.
pub async fn serve<IO>(
    io: IO,
    handler: &Handler,
    options: &Options,
    shutdown: watch::Receiver<bool>,
) -> io::Result<Served<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn {
        io,
        rd: BytesMut::new(),
        read_closed: false,
    };
    // One idle timer and one shutdown watch for the connection's life, re-armed for each wait:
    // a fresh timer and watch registration per request cost ~1k instructions (the timer is
    // moved to a later deadline in place).
    let mut idle = std::pin::pin!(tokio::time::sleep(IDLE_TIMEOUT));
    let mut stop = std::pin::pin!(until_shutdown_owned(shutdown.clone()).fuse());
    let mut first = true;
    loop {
        let head = match conn.read_head(first, idle.as_mut(), stop.as_mut()).await? {
            Next::Request(head) => head,
            Next::Close => break,
            Next::Http2 => {
                let prefix = std::mem::take(&mut conn.rd).freeze();
                return Ok(Served::Http2(Prefixed {
                    prefix,
                    io: conn.io,
                }));
            }
            Next::Refuse(status) => {
                conn.refuse(status).await;
                break;
            }
        };
        first = false;
        let (body, reusable) = conn.read_body(&head, options.max_body).await?;
        if conn.rd.is_empty() {
            // Nothing pipelined: hold no buffer while the request is handled.
            conn.rd = BytesMut::new();
        }
        let mut req = head.req.map(|()| body);
        if let Some(p) = &options.peer {
            req.extensions_mut().insert(p.clone());
        }
        let mut handled = handler(req);
        let response = tokio::select! {
            biased;
            r = &mut handled => r,
            () = poll_fn(|cx| conn.poll_gone(cx)) => return Ok(Served::Done),
        };
        drop(handled);
        let keep_alive = head.keep_alive && reusable && !*shutdown.borrow();
        let reused = conn
            .respond(response, head.head_only, head.http10, keep_alive)
            .await?;
        if !reused {
            if !reusable || !conn.rd.is_empty() {
                conn.linger().await;
            }
            break;
        }
    }
    let _ = conn.io.shutdown().await;
    Ok(Served::Done)
}

/// A connection being served.
struct Conn<IO> {
    io: IO,
    /// Bytes read and not consumed yet: empty, with no allocation, unless a request is
    /// incomplete or the client pipelined the next one.
    rd: BytesMut,
    /// The client closed its side (or the read failed): nothing more to read.
    read_closed: bool,
}

/// What the next bytes on a connection are.
// Moved once per request; boxing the head would allocate once per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A request head.
    Request(Head),
    /// The connection ends (the client closed it, or shutdown while idle).
    Close,
    /// The HTTP/2 preface.
    Http2,
    /// A request that cannot be served: answer `status` and close.
    Refuse(StatusCode),
}

/// A parsed request head.
struct Head {
    req: Request<()>,
    /// Bytes of the head in the read buffer.
    len: usize,
    /// The request body's framing (`Length(0)`: none).
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    head_only: bool,
    http10: bool,
}

/// How a response body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Length(u64),
    Chunked,
    UntilClose,
    /// No body at all (1xx, 204, 304, HEAD).
    Nothing,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Conn<IO> {
    /// Read what the socket has into `rd`: `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        read_some(&mut self.io, &mut self.rd, cx)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// While a request is handled or its response written: ready when the client is gone
    /// (end of stream, or a failed read). Bytes it pipelines are kept for later, up to
    /// [`MAX_PIPELINED`]; past that, reading pauses until the response is done (a client gone
    /// meanwhile is noticed by the write timeout).
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.read_closed || self.rd.len() >= MAX_PIPELINED {
                return Poll::Pending;
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) | Err(_) => {
                    self.read_closed = true;
                    return Poll::Ready(());
                }
                Ok(_) => {}
            }
        }
    }

    /// Wait for the next request head.
    async fn read_head(
        &mut self,
        first: bool,
        mut idle: Pin<&mut tokio::time::Sleep>,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> io::Result<Next> {
        let mut deadline = None;
        // How far `rd` was searched for the head's end: a head sent a byte at a time is
        // parsed once, not once per byte.
        let mut searched = 0;
        loop {
            if !self.rd.is_empty() {
                let preface = self.rd.len().min(H2_PREFACE.len());
                if first && self.rd[..preface] == H2_PREFACE[..preface] {
                    if preface == H2_PREFACE.len() {
                        return Ok(Next::Http2);
                    }
                } else if head_ends(&self.rd, &mut searched) || self.rd.len() >= MAX_HEAD {
                    match parse_head(&self.rd) {
                        Ok(Some(head)) => return Ok(Next::Request(head)),
                        Ok(None) if self.rd.len() >= MAX_HEAD => {
                            return Ok(Next::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
                        }
                        Ok(None) => {}
                        Err(status) => return Ok(Next::Refuse(status)),
                    }
                }
                deadline.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
            }
            if self.read_closed {
                return Ok(Next::Close);
            }
            let n = match deadline {
                // Idle between requests: shutdown closes the connection.
                None => {
                    idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                    tokio::select! {
                        r = self.fill() => r,
                        () = idle.as_mut() => return Ok(Next::Close),
                        () = stop.as_mut() => return Ok(Next::Close),
                    }
                }
                Some(at) => match tokio::time::timeout_at(at, self.fill()).await {
                    Ok(r) => r,
                    Err(_) => return Ok(Next::Refuse(StatusCode::REQUEST_TIMEOUT)),
                },
            };
            match n {
                Ok(0) if self.rd.is_empty() => return Ok(Next::Close),
                // Closed mid-head: nobody to answer.
                Ok(0) => return Ok(Next::Close),
                Ok(_) => {}
                Err(e) if self.rd.is_empty() => {
                    tracing::debug!(error = %e, "connection read failed");
                    return Ok(Next::Close);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read the body `head` announces (its head is still at the front of `rd`). The flag says
    /// whether the connection can carry another request afterwards.
    async fn read_body(&mut self, head: &Head, max: usize) -> io::Result<(RequestBody, bool)> {
        self.rd.advance(head.len);
        if head.framing == Framing::Length(0) {
            return Ok((RequestBody::empty(), true));
        }
        if let Framing::Length(n) = head.framing
            && n > max as u64
            && (head.expect_continue || n > 4 * max as u64)
        {
            // Not worth reading (or the client waits for our word): 413, then close.
            return Ok((RequestBody::TooLarge, false));
        }
        if head.expect_continue {
            self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            self.io.flush().await?;
        }
        let deadline = Instant::now() + BODY_TIMEOUT;
        let mut decoder = Decoder::strict(head.framing);
        // The body's first piece, and the rest appended to a copy when there is more than one
        // (the common case, one piece, is not copied).
        let mut first: Option<Bytes> = None;
        let mut rest = BytesMut::new();
        let mut collected = 0usize;
        let mut too_large = false;
        loop {
            match decoder.decode(&mut self.rd) {
                Ok(Some(data)) => {
                    collected += data.len();
                    if too_large {
                        if collected > 4 * max {
                            return Ok((RequestBody::TooLarge, false));
                        }
                    } else if collected > max {
                        too_large = true;
                        (first, rest) = (None, BytesMut::new());
                    } else if first.is_none() {
                        first = Some(data);
                    } else {
                        if rest.is_empty() {
                            rest.extend_from_slice(first.as_deref().unwrap_or_default());
                        }
                        rest.extend_from_slice(&data);
                    }
                    continue;
                }
                Ok(None) if decoder.is_done() => {
                    let body = match (too_large, first) {
                        (true, _) => RequestBody::TooLarge,
                        (false, None) => RequestBody::empty(),
                        (false, Some(one)) if rest.is_empty() => RequestBody::Whole(one),
                        (false, Some(_)) => RequestBody::Whole(rest.freeze()),
                    };
                    return Ok((body, true));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "unreadable request body");
                    return Ok((
                        RequestBody::Unreadable("the request body's chunked framing is invalid"),
                        false,
                    ));
                }
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.read_closed = true;
                    return Ok((
                        RequestBody::Unreadable("the client closed the connection mid-body"),
                        false,
                    ));
                }
                Ok(Ok(_)) => {}
                Err(_) => {
                    return Ok((
                        RequestBody::Unreadable("timed out reading the request body"),
                        false,
                    ));
                }
            }
        }
    }

    /// Write `response`. `Ok(true)`: the connection can carry the next request.
    async fn respond(
        &mut self,
        response: http::Response<Body>,
        head_only: bool,
        http10: bool,
        mut keep_alive: bool,
    ) -> io::Result<bool> {
        let (parts, mut body) = response.into_parts();
        let status = parts.status;
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| parse_length(v.as_bytes()))
            .or(body.size_hint().exact());
        if status.is_informational() {
            // Interim responses are not relayed: as a final one, the client would pair the
            // next response with the wrong request.
            tracing::warn!(%status, "an interim status as a final response: answering 502");
            self.refuse(StatusCode::BAD_GATEWAY).await;
            return Ok(false);
        }
        let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Out::Nothing
        } else if let Some(n) = length {
            Out::Length(n)
        } else if head_only {
            Out::Nothing
        } else if http10 {
            keep_alive = false;
            Out::UntilClose
        } else {
            Out::Chunked
        };
        let mut out = Vec::with_capacity(256);
        encode_head(
            &mut out,
            http10,
            status,
            &parts.headers,
            framing,
            keep_alive,
        );
        // A stream can stay open for hours: keep nothing of its head while it does.
        drop(parts);
        if head_only || framing == Out::Nothing {
            self.write_out(&mut out).await?;
            return Ok(keep_alive);
        }
        let mut left = match framing {
            Out::Length(n) => n,
            _ => u64::MAX,
        };
        loop {
            // Whatever the body has ready now goes out with what is encoded; when it has
            // nothing ready, what is encoded is written before waiting (no buffering).
            let ready = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
            let frame = match ready {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    self.write_out(&mut out).await?;
                    tokio::select! {
                        biased;
                        f = body.frame() => f,
                        () = poll_fn(|cx| self.poll_gone(cx)) => return Ok(false),
                    }
                }
            };
            match frame {
                None => {
                    if framing == Out::Chunked {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    if matches!(framing, Out::Length(_)) && left > 0 {
                        // The client waits for bytes that will not come: close.
                        tracing::debug!(missing = left, "response body shorter than its length");
                        keep_alive = false;
                    }
                    self.write_out(&mut out).await?;
                    return Ok(keep_alive);
                }
                Some(Err(e)) => {
                    // Too late for a status: the client sees the response cut short.
                    tracing::debug!(error = %e, "response body failed");
                    let _ = self.write_out(&mut out).await;
                    return Ok(false);
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers are not sent over HTTP/1.1
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match framing {
                        Out::Chunked => {
                            push_hex(&mut out, data.len());
                            out.extend_from_slice(b"\r\n");
                            out.extend_from_slice(&data);
                            out.extend_from_slice(b"\r\n");
                        }
                        Out::Length(_) => {
                            if data.len() as u64 > left {
                                tracing::debug!("response body longer than its length");
                                out.extend_from_slice(&data[..left as usize]);
                                self.write_out(&mut out).await?;
                                return Ok(false);
                            }
                            left -= data.len() as u64;
                            out.extend_from_slice(&data);
                        }
                        Out::UntilClose | Out::Nothing => out.extend_from_slice(&data),
                    }
                    if out.len() >= WRITE_CHUNK {
                        self.write_out(&mut out).await?;
                    }
                }
            }
        }
    }

    /// Write and flush `out`, then free it. A write the client does not take within
    /// [`WRITE_TIMEOUT`] fails (the timer is only set when the socket is full).
    async fn write_out(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if !out.is_empty() {
            let io = &mut self.io;
            let mut write = std::pin::pin!(async {
                io.write_all(out).await?;
                io.flush().await
            });
            let now = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            match now {
                Poll::Ready(r) => r?,
                Poll::Pending => {
                    tokio::time::timeout(WRITE_TIMEOUT, write)
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
                        })??
                }
            }
        }
        *out = Vec::new();
        Ok(())
    }

    /// Answer a request that is not served with `status`, closing the connection.
    async fn refuse(&mut self, status: StatusCode) {
        let text = status.canonical_reason().unwrap_or("refused");
        let mut out = Vec::with_capacity(256);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        encode_head(
            &mut out,
            false,
            status,
            &headers,
            Out::Length(text.len() as u64 + 1),
            false,
        );
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        if self.write_out(&mut out).await.is_ok() {
            let _ = self.io.shutdown().await;
            self.linger().await;
        }
    }

    /// After a response that closes the connection with request bytes possibly unread: keep
    /// reading (and discarding) briefly so the client gets the response, not a reset.
    async fn linger(&mut self) {
        if self.read_closed {
            return;
        }
        let _ = self.io.shutdown().await;
        let _ = tokio::time::timeout(LINGER, async {
            let mut total = 0usize;
            loop {
                self.rd.clear();
                match self.fill().await {
                    Ok(n) if n > 0 && total < 16 * MAX_HEAD => total += n,
                    _ => break,
                }
            }
        })
        .await;
        self.rd = BytesMut::new();
        self.read_closed = true;
    }
}

/// Resolves once `shutdown` is (or becomes) true; never if the sender is gone.
pub async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// [`until_shutdown`] owning its receiver, to be kept across requests.
async fn until_shutdown_owned(mut shutdown: watch::Receiver<bool>) {
    until_shutdown(&mut shutdown).await
}

/// Parse a request head from the front of `buf`: `Ok(None)` while it is incomplete, `Err` with
/// the status to refuse it with.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, StatusCode> {
    // Uninitialized: httparse writes only the fields it finds (no 3 KiB zeroed per head).
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    // httparse takes a bare LF as a line end; a front proxy might not (RFC 9112 §2.2). In a
    // head httparse accepted, a CR appears only before an LF (anywhere else it is refused), so
    // there is a bare LF exactly when LFs outnumber CRs: two SIMD counts instead of a stop at
    // every line.
    let head = &buf[..len];
    if memchr::memchr_iter(b'\n', head).count() != memchr::memchr_iter(b'\r', head).count() {
        return Err(StatusCode::BAD_REQUEST);
    }
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()).map_err(bad)?;
    let target = parsed.path.unwrap_or_default();
    let uri = if method == Method::CONNECT || target.starts_with('/') || target.contains("://") {
        Uri::try_from(target).map_err(bad)?
    } else if target == "*" && method == Method::OPTIONS {
        Uri::from_static("*")
    } else {
        return Err(StatusCode::BAD_REQUEST);
    };
    let http10 = parsed.version != Some(1);
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut length: Option<u64> = None;
    let mut hosts = 0usize;
    let mut transfer_encoding = false;
    let mut codings = 0usize;
    let mut chunked_last = false;
    let mut close = http10;
    let mut expect_continue = false;
    for field in parsed.headers.iter() {
        let name = field_name(field.name.as_bytes())?;
        let value = HeaderValue::from_bytes(field.value).map_err(bad)?;
        if name == header::CONTENT_LENGTH {
            let n = parse_length(field.value).ok_or(StatusCode::BAD_REQUEST)?;
            if length.is_some_and(|l| l != n) {
                return Err(StatusCode::BAD_REQUEST);
            }
            length = Some(n);
        } else if name == header::HOST {
            hosts += 1;
        } else if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
            for coding in tokens(field.value) {
                codings += 1;
                chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name == header::CONNECTION {
            close |= tokens(field.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        } else if name == header::EXPECT && !http10 {
            if !field.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(StatusCode::EXPECTATION_FAILED);
            }
            expect_continue = true;
        }
        headers.append(name, value);
    }
    // Exactly one Host on HTTP/1.1 (RFC 9112 §3.2): it names the resource the token is for.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(StatusCode::BAD_REQUEST);
    }
    let framing = if transfer_encoding {
        // A request's end must be unambiguous (RFC 9112 §6.1, §6.3): a lone `chunked`, never
        // with a length, never over HTTP/1.0.
        if length.is_some() || http10 {
            return Err(StatusCode::BAD_REQUEST);
        }
        if codings != 1 || !chunked_last {
            return Err(StatusCode::NOT_IMPLEMENTED);
        }
        Framing::Chunked
    } else {
        Framing::Length(length.unwrap_or(0))
    };
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *req.headers_mut() = headers;
    Ok(Some(Head {
        head_only: req.method() == Method::HEAD,
        req,
        len,
        framing,
        keep_alive: !close,
        expect_continue: expect_continue && framing != Framing::Length(0),
        http10,
    }))
}

/// A request field's name (httparse has checked it is a token). Names sent with nearly every
/// MCP request are matched by length, then bytes, before `HeaderName::from_bytes` (which
/// lowercases each name into a scratch buffer, and allocates for a non-standard one).
fn field_name(raw: &[u8]) -> Result<HeaderName, StatusCode> {
    // Consts: built at compile time, not validated per call.
    const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
    const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
    const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
    let is = |name: &str| token_is(raw, name);
    let known = match raw.len() {
        4 if is("host") => header::HOST,
        6 if is("accept") => header::ACCEPT,
        6 if is("origin") => header::ORIGIN,
        6 if is("cookie") => header::COOKIE,
        9 if is("x-api-key") => X_API_KEY,
        10 if is("user-agent") => header::USER_AGENT,
        10 if is("connection") => header::CONNECTION,
        10 if is("tracestate") => TRACESTATE,
        11 if is("traceparent") => TRACEPARENT,
        12 if is("content-type") => header::CONTENT_TYPE,
        13 if is("authorization") => header::AUTHORIZATION,
        13 if is("last-event-id") => LAST_EVENT_ID,
        14 if is("content-length") => header::CONTENT_LENGTH,
        14 if is("mcp-session-id") => MCP_SESSION_ID,
        15 if is("accept-encoding") => header::ACCEPT_ENCODING,
        17 if is("transfer-encoding") => header::TRANSFER_ENCODING,
        20 if is("mcp-protocol-version") => MCP_PROTOCOL_VERSION,
        _ => return HeaderName::from_bytes(raw).map_err(bad),
    };
    Ok(known)
}

/// Whether `raw`, a token (httparse has checked), is `lower` (lowercase letters, digits and
/// `-`) in any case, compared eight bytes at a time. For such a `lower`, `raw | 0x20 == lower`
/// byte for byte is exactly a case-insensitive match: a byte that differs from a letter only
/// in bit 5 is that letter's other case, and one that differs so from a digit or `-` is a
/// control character, which no token holds.
fn token_is(raw: &[u8], lower: &str) -> bool {
    const CASE: u64 = u64::from_ne_bytes([0x20; 8]);
    let lower = lower.as_bytes();
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    if raw.len() != lower.len() {
        return false;
    }
    if raw.len() < 8 {
        return raw.iter().zip(lower).all(|(r, l)| r | 0x20 == *l);
    }
    // Whole words, then the last eight bytes (overlapping the words already compared).
    let end = raw.len() - 8;
    raw.chunks_exact(8)
        .zip(lower.chunks_exact(8))
        .all(|(r, l)| word(r) | CASE == word(l))
        && word(&raw[end..]) | CASE == word(&lower[end..])
}

fn bad<E>(_: E) -> StatusCode {
    StatusCode::BAD_REQUEST
}

/// Whether `buf` holds a complete head (an empty line: LF CRLF, or a bare LF LF that the parser
/// then refuses), searching from `*searched` on.
fn head_ends(buf: &[u8], searched: &mut usize) -> bool {
    static CRLF_CRLF: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    let from = *searched;
    *searched = buf.len();
    // The usual end, CRLF CRLF, in one search; the bare-LF forms only when it is not there.
    if CRLF_CRLF.find(&buf[from.saturating_sub(3)..]).is_some() {
        return true;
    }
    let from = from.saturating_sub(2);
    memchr::memchr_iter(b'\n', &buf[from..])
        .any(|i| matches!(&buf[from + i + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

/// A `Content-Length` value: digits only, no sign, no list.
fn parse_length(v: &[u8]) -> Option<u64> {
    // Nineteen digits or fewer always fit in a u64.
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Header fields the server frames itself: never copied from a handler's response.
fn is_connection_field(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::CONTENT_LENGTH
        || name == header::UPGRADE
        || name == "keep-alive"
        || name == "proxy-connection"
}

/// Encode a response head into `out`.
fn encode_head(
    out: &mut Vec<u8>,
    http10: bool,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Out,
    keep_alive: bool,
) {
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if is_connection_field(name) {
            continue;
        }
        push_field(out, name, value);
    }
    if !headers.contains_key(header::DATE) {
        push_date(out);
    }
    match framing {
        Out::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Out::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Out::UntilClose | Out::Nothing => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `name: value` and its line end.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `date: <IMF-fixdate>` (RFC 9110 §6.6.1), formatted once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_hex(out: &mut Vec<u8>, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = n as u64;
    loop {
        i -= 1;
        digits[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A connection whose first bytes were already read: they are read again first.
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;
    use futures_util::FutureExt;
    use http_body_util::{Full, StreamBody};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc;

    const LIMIT: usize = 1024;

    /// Sets its flag when dropped: tells a test the server let go of a request or a body.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// What the test server's handler exposes to a test.
    #[derive(Default)]
    struct Probe {
        /// `/stream` responses: the test sends their frames.
        frames: Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>,
        /// Set when a `/stream` body or a `/hang` request is dropped.
        dropped: Arc<AtomicBool>,
    }

    /// The gateway's listener (HTTP/1.1 here, HTTP/2 by preface) with a handler that says what
    /// it received: `/echo` answers `METHOD PATH body`, `/stream` streams the probe's frames,
    /// `/hang` never answers.
    async fn server() -> (std::net::SocketAddr, Arc<Probe>, watch::Sender<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let probe = Arc::new(Probe::default());
        let p = probe.clone();
        let handler: Handler = Arc::new(move |req: Request<RequestBody>| {
            let p = p.clone();
            async move {
                let (parts, body) = req.into_parts();
                let status = |s: StatusCode, text: String| {
                    http::Response::builder()
                        .status(s)
                        .body(full(text))
                        .unwrap()
                };
                match parts.uri.path() {
                    "/stream" => {
                        let rx = p
                            .frames
                            .lock()
                            .unwrap()
                            .take()
                            .expect("one stream per test");
                        let guard = Dropped(p.dropped.clone());
                        let frames =
                            futures_util::stream::unfold((rx, guard), |(mut rx, g)| async {
                                let data = rx.recv().await?;
                                Some((Ok(http_body::Frame::data(data)), (rx, g)))
                            });
                        http::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(BodyExt::boxed_unsync(StreamBody::new(frames)))
                            .unwrap()
                    }
                    "/interim" => http::Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .body(full(""))
                        .unwrap(),
                    "/hang" => {
                        let _guard = Dropped(p.dropped.clone());
                        std::future::pending().await
                    }
                    path => match body {
                        RequestBody::Whole(b) => status(
                            StatusCode::OK,
                            format!("{} {path} {}", parts.method, String::from_utf8_lossy(&b)),
                        ),
                        RequestBody::TooLarge => {
                            status(StatusCode::PAYLOAD_TOO_LARGE, "too large".into())
                        }
                        RequestBody::Unreadable(why) => status(StatusCode::BAD_REQUEST, why.into()),
                        RequestBody::Streamed(b) => {
                            let b = b.collect().await.unwrap().to_bytes();
                            status(
                                StatusCode::OK,
                                format!(
                                    "h2 {} {path} {}",
                                    parts.method,
                                    String::from_utf8_lossy(&b)
                                ),
                            )
                        }
                    },
                }
            }
            .boxed()
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(crate::listener::serve(
            listener,
            None,
            handler,
            stop_rx,
            Duration::from_secs(5),
            None,
            LIMIT,
        ));
        (addr, probe, stop)
    }

    /// Write `wire`, then read until the server closes the connection.
    async fn exchange(addr: std::net::SocketAddr, wire: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(wire).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Wait (at most 5 s) until the server let go of the probe's stream or request.
    async fn until_dropped(probe: &Probe, what: &str) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !probe.dropped.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect(what);
    }

    fn statuses(wire: &str) -> Vec<&str> {
        wire.match_indices("HTTP/1.")
            .map(|(i, _)| &wire[i + 9..i + 12])
            .collect()
    }

    #[tokio::test]
    async fn a_real_client_reuses_its_connection_for_requests_with_bodies() {
        let (addr, _, _stop) = server().await;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let text = |r: http::Response<hyper::body::Incoming>| async move {
            let status = r.status();
            let b = r.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(b.to_vec()).unwrap())
        };
        let get = Request::get("/echo")
            .header("host", "x")
            .body(full(""))
            .unwrap();
        assert_eq!(
            text(send.send_request(get).await.unwrap()).await,
            (StatusCode::OK, "GET /echo ".into())
        );
        // A body of known length, then one hyper sends chunked (no length known up front).
        let post = Request::post("/echo")
            .header("host", "x")
            .body(full("{\"a\":1}"))
            .unwrap();
        assert_eq!(
            text(send.send_request(post).await.unwrap()).await,
            (StatusCode::OK, "POST /echo {\"a\":1}".into())
        );
        let pieces = futures_util::stream::iter(
            ["{\"b\":", "2}"]
                .map(|p| Ok::<_, crate::body::BoxError>(http_body::Frame::data(Bytes::from(p)))),
        );
        let chunked = Request::post("/echo")
            .header("host", "x")
            .body(BodyExt::boxed_unsync(StreamBody::new(pieces)))
            .unwrap();
        assert_eq!(
            text(send.send_request(chunked).await.unwrap()).await,
            (StatusCode::OK, "POST /echo {\"b\":2}".into())
        );
        let big = Request::post("/echo")
            .header("host", "x")
            .body(full(vec![b'x'; LIMIT + 1]))
            .unwrap();
        assert_eq!(
            text(send.send_request(big).await.unwrap()).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // The oversized body was read and discarded: the connection still serves.
        let get = Request::get("/echo")
            .header("host", "x")
            .body(full(""))
            .unwrap();
        assert_eq!(
            send.send_request(get).await.unwrap().status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order() {
        let (addr, _, _stop) = server().await;
        let wire = exchange(
            addr,
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nonePOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let a = wire.find("POST /a one").expect(&wire);
        let b = wire.find("POST /b two").expect(&wire);
        let c = wire.find("GET /c ").expect(&wire);
        assert!(a < b && b < c, "{wire}");
        assert_eq!(statuses(&wire), ["200", "200", "200"], "{wire}");
        assert!(wire.contains("connection: close"), "{wire}");
    }

    /// Requests whose end a proxy in front might read differently are refused, never guessed.
    #[tokio::test]
    async fn ambiguous_request_framing_is_refused_and_the_connection_closed() {
        let (addr, _, _stop) = server().await;
        let smuggle = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
        for (head, status) in [
            ("Transfer-Encoding: chunked\r\nContent-Length: 4", "400"),
            ("Content-Length: 4\r\nContent-Length: 5", "400"),
            ("Content-Length: 4, 4", "400"),
            ("Content-Length: +4", "400"),
            ("Transfer-Encoding: gzip, chunked", "501"),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                "501",
            ),
            ("Transfer-Encoding: identity", "501"),
            ("Expect: something-else\r\nContent-Length: 4", "417"),
            // An empty coding list is still a Transfer-Encoding: it overrides the length.
            ("Transfer-Encoding:\r\nContent-Length: 4", "400"),
            ("Transfer-Encoding: ,", "501"),
            ("Host: y\r\nContent-Length: 4", "400"),
        ] {
            let wire =
                format!("POST /echo HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n0\r\n\r\n{smuggle}");
            let got = exchange(addr, wire.as_bytes()).await;
            assert_eq!(statuses(&got), [status], "{head}: {got}");
            assert!(got.contains("connection: close"), "{head}: {got}");
        }
        // Chunk syntax a lenient reader would take: the body is unreadable, nothing after it
        // is read as a request.
        let got = exchange(
            addr,
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n{smuggle}").as_bytes(),
        )
        .await;
        assert_eq!(statuses(&got), ["400"], "{got}");
        assert!(got.contains("chunked framing is invalid"), "{got}");
        // HTTP/1.0 has no chunked coding.
        let got = exchange(
            addr,
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(statuses(&got), ["400"], "{got}");
    }

    #[tokio::test]
    async fn malformed_and_oversized_heads_are_refused() {
        let (addr, _, _stop) = server().await;
        let got = exchange(addr, b"GET /echo HTTP/1.1\r\nBad Header: x\r\n\r\n").await;
        assert_eq!(statuses(&got), ["400"], "{got}");
        let got = exchange(addr, b"GET echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(statuses(&got), ["400"], "{got}");
        // No Host on HTTP/1.1; a bare LF where a strict proxy would see no line end.
        let got = exchange(addr, b"GET /echo HTTP/1.1\r\n\r\n").await;
        assert_eq!(statuses(&got), ["400"], "{got}");
        let got = exchange(
            addr,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await;
        assert_eq!(statuses(&got), ["400"], "{got}");
        // Bare LFs anywhere (request line, last field, a head ended by LF LF alone) and a CR
        // that ends no line are refused, never waited on.
        for head in [
            &b"GET /echo HTTP/1.1\nHost: x\r\n\r\n"[..],
            b"GET /echo HTTP/1.1\r\nHost: x\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: x\n\n",
            // Ended by LF LF before the CRLF CRLF that ends the next request.
            b"GET /echo HTTP/1.1\r\nHost: x\n\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: x\r\nX: a\r\r\n\r\n",
        ] {
            let got = exchange(addr, head).await;
            assert_eq!(statuses(&got), ["400"], "{}: {got}", head.escape_ascii());
        }
        // A head sent a byte at a time is still read.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        for b in b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
            s.write_all(&[*b]).await.unwrap();
        }
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert_eq!(statuses(&got), ["200"], "{got}");
        let long = format!(
            "GET /echo HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        let got = exchange(addr, long.as_bytes()).await;
        assert_eq!(statuses(&got), ["431"], "{got}");
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let got = exchange(addr, format!("GET /echo HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
        assert_eq!(statuses(&got), ["431"], "{got}");
        // An interim status is never passed off as a final response.
        let got = exchange(
            addr,
            b"GET /interim HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert_eq!(statuses(&got), ["502"], "{got}");
    }

    #[tokio::test]
    async fn expect_continue_is_answered_before_the_body_is_read() {
        let (addr, _, _stop) = server().await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"hi").await.unwrap();
        let mut rest = String::new();
        s.read_to_string(&mut rest).await.unwrap();
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
        assert!(rest.ends_with("POST /echo hi"), "{rest}");
        // Over the limit: refused at once, no 100.
        let got = exchange(
            addr,
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", LIMIT + 1).as_bytes(),
        )
        .await;
        assert_eq!(statuses(&got), ["413"], "{got}");
    }

    #[tokio::test]
    async fn http10_head_and_response_framing() {
        let (addr, _, _stop) = server().await;
        let got = exchange(addr, b"GET /echo HTTP/1.0\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.0 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\nGET /echo "), "{got}");
        assert!(got.contains("\r\ndate: "), "{got}");
        let got = exchange(
            addr,
            b"HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        // The length of what a GET would get (`HEAD /echo `), and no body.
        assert!(got.contains("content-length: 11\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n"), "no body after a HEAD: {got}");
    }

    #[tokio::test]
    async fn streamed_frames_reach_the_client_as_sent_and_a_gone_client_drops_the_stream() {
        let (addr, probe, _stop) = server().await;
        let (tx, rx) = mpsc::unbounded_channel();
        *probe.frames.lock().unwrap() = Some(rx);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut seen = String::new();
        let read_until = async |s: &mut tokio::net::TcpStream, seen: &mut String, want: &str| {
            while !seen.contains(want) {
                let mut buf = [0u8; 1024];
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                    .await
                    .expect("frame arrives without more being sent")
                    .unwrap();
                assert!(n > 0, "closed early: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
        tx.send(Bytes::from_static(b"data: 1\n\n")).unwrap();
        read_until(&mut s, &mut seen, "data: 1\n\n\r\n").await;
        assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
        assert!(seen.contains("transfer-encoding: chunked\r\n"), "{seen}");
        assert!(seen.contains("\r\n\r\n9\r\ndata: 1\n\n\r\n"), "{seen}");
        tx.send(Bytes::from_static(b"data: 2\n\n")).unwrap();
        read_until(&mut s, &mut seen, "data: 2\n\n\r\n").await;
        assert!(!probe.dropped.load(Ordering::SeqCst));
        drop(s);
        until_dropped(
            &probe,
            "the server notices the client leaving without a frame to write",
        )
        .await;
    }

    #[tokio::test]
    async fn a_client_leaving_cancels_its_request() {
        let (addr, probe, _stop) = server().await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!probe.dropped.load(Ordering::SeqCst));
        drop(s);
        until_dropped(&probe, "the handler's future is dropped").await;
    }

    #[tokio::test]
    async fn http2_with_prior_knowledge_is_served_by_hyper() {
        let (addr, _, _stop) = server().await;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = Request::post("http://x/echo")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.version(), Version::HTTP_2);
        let b = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(b, "h2 POST /echo {}");
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_finishes_answers_in_flight() {
        let (addr, _, stop) = server().await;
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        stop.send(true).unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .expect("the idle connection is closed at shutdown")
            .unwrap();
        assert_eq!(n, 0);
    }

    /// The idle limit counts from the end of the last exchange: a client that keeps asking
    /// within it keeps its connection however long that goes on; one that goes quiet loses it.
    #[tokio::test(start_paused = true)]
    async fn the_idle_limit_restarts_with_every_request() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let handler: Handler = Arc::new(|_req| {
            Box::pin(async { http::Response::new(crate::body::full(Bytes::from_static(b"ok"))) })
        });
        let (_stop, shutdown) = watch::channel(false);
        let options = Options {
            max_body: 1024,
            peer: None,
        };
        let served = tokio::spawn(async move { serve(server, &handler, &options, shutdown).await });
        let mut buf = [0u8; 1024];
        // Five requests with four pauses just short of the limit between them: well past it in all.
        for pause in [IDLE_TIMEOUT - Duration::from_secs(5); 4]
            .into_iter()
            .map(Some)
            .chain([None])
        {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = client.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
        tokio::time::sleep(IDLE_TIMEOUT + Duration::from_secs(1)).await;
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed when idle");
        assert!(matches!(served.await.unwrap(), Ok(Served::Done)));
    }

    #[test]
    fn a_content_length_is_digits_only_and_fits_in_64_bits() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"00042"), Some(42));
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for refused in [
            &b""[..],
            b"18446744073709551615", // twenty digits: refused, though it would fit
            b"+1",
            b"-1",
            b" 1",
            b"1 ",
            b"1,1",
            b"0x10",
            b"1e3",
        ] {
            assert_eq!(parse_length(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn a_token_matches_a_known_name_exactly_when_it_is_that_name_in_any_case() {
        let tchars: Vec<u8> = (b'0'..=b'9')
            .chain(b'a'..=b'z')
            .chain(b'A'..=b'Z')
            .chain(b"!#$%&'*+-.^_`|~".iter().copied())
            .collect();
        for name in [
            "host",
            "accept",
            "x-api-key",
            "user-agent",
            "content-type",
            "content-length",
            "transfer-encoding",
            "mcp-protocol-version",
        ] {
            assert!(token_is(name.to_ascii_uppercase().as_bytes(), name));
            assert!(!token_is(&name.as_bytes()[1..], name));
            for at in 0..name.len() {
                for &c in &tchars {
                    let mut raw = name.as_bytes().to_vec();
                    raw[at] = c;
                    assert_eq!(
                        token_is(&raw, name),
                        raw.eq_ignore_ascii_case(name.as_bytes()),
                        "{:?} against {name}",
                        String::from_utf8_lossy(&raw)
                    );
                }
            }
        }
    }

    /// A field value is refused exactly when it holds a byte a `HeaderValue` may not (HTAB,
    /// SP, VCHAR and obs-text are allowed), and kept as sent.
    #[test]
    fn the_parser_admits_exactly_the_bytes_a_header_value_may_hold() {
        for b in 0..=255u8 {
            let mut wire = b"GET / HTTP/1.1\r\nHost: x\r\nX: a".to_vec();
            wire.extend([b, b'b']);
            wire.extend(b"\r\n\r\n");
            let parsed = parse_head(&wire);
            let valid = HeaderValue::from_bytes(&[b'a', b, b'b']).is_ok();
            // CR and LF end the line instead (and are refused as bare line ends).
            if b == b'\r' || b == b'\n' {
                assert!(parsed.is_err(), "{b:#04x}");
                continue;
            }
            assert_eq!(parsed.is_ok(), valid, "{b:#04x}");
            if let Ok(Some(head)) = parsed {
                assert_eq!(head.req.headers()["x"].as_bytes(), [b'a', b, b'b']);
            }
        }
    }

    #[test]
    fn field_names_read_as_from_bytes_reads_them() {
        for raw in [
            "Host",
            "X-API-Key",
            "mcp-protocol-version",
            "MCP-Session-Id",
            "X-Custom",
            "content-lengthx",
            "tracestat",
        ] {
            let ours = field_name(raw.as_bytes()).unwrap();
            assert_eq!(
                ours,
                HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                "{raw}"
            );
            assert_eq!(ours.as_str(), raw.to_ascii_lowercase());
        }
        assert!(field_name(b"bad name").is_err());
    }

    #[test]
    fn numbers_are_encoded_like_format() {
        for n in [0u64, 1, 9, 10, 4095, 4096, u64::MAX] {
            let mut d = Vec::new();
            push_decimal(&mut d, n);
            assert_eq!(d, n.to_string().as_bytes());
            let mut h = Vec::new();
            push_hex(&mut h, n as usize);
            assert_eq!(h, format!("{n:x}").as_bytes());
        }
    }
}
