//! The HTTP client of one upstream McpServer: plain HTTP or HTTPS (system roots, or the CA
//! bundle from the McpServer's Secret), HTTP/1.1 or HTTP/2, with the server's timeouts.
//!
//! Plain-HTTP upstreams (the usual in-cluster case) use [`H1Pool`], a small HTTP/1.1 client of
//! our own: the gateway's request task writes the request (head and body in one write), parses
//! the response head (httparse) and reads the body straight from the socket
//! ([`super::socket_body`]) — no hand-off to a connection task and back (each one a wakeup, most
//! of the latency the gateway used to add, bench/RESULTS.md run 8), no per-connection buffers
//! while an SSE stream idles, and a small answer that arrives with its head returns the
//! connection to the pool at once. HTTPS upstreams (HTTP/2 by ALPN, multiplexed) use hyper's
//! pooled client.

use super::socket_body::{Framing, SocketBody, read_some};
use crate::body::BoxError;
use crate::state::SecretValues;
use bytes::Bytes;
use bytes::{Buf, BytesMut};
use gatehouse_api::config::{ServerConfig, Upstream as UpstreamKind};
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A configured upstream.
pub struct Upstream {
    client: Transport,
    /// The upstream's MCP endpoint.
    pub uri: http::Uri,
    /// Time allowed until response headers.
    pub request_timeout: Duration,
    /// Time allowed between two frames of a streamed response.
    pub idle_timeout: Duration,
}

/// A request for an upstream, as the relay builds it: no `HeaderMap` of its own, just the
/// fields to send, in order (the client's allow-listed ones, then the gateway's).
pub struct Outbound<'a> {
    pub method: &'a http::Method,
    pub fields: Vec<(&'a http::HeaderName, &'a HeaderValue)>,
    pub body: Bytes,
}

impl Upstream {
    /// Build the client for `server`.
    pub fn new(server: &ServerConfig, secrets: &SecretValues) -> Result<Self, String> {
        let url = match &server.upstream {
            UpstreamKind::Url { url } => url,
            UpstreamKind::Stdio { .. } => {
                return Err(
                    "stdio upstreams are served by the workload sidecar, not by this gateway yet"
                        .into(),
                );
            }
        };
        if server.transport != "streamableHttp" {
            return Err(format!(
                "transport {} is not supported by this gateway yet (use streamableHttp)",
                server.transport
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("upstream URL {url:?} is not valid: {e}"))?;
        let request_timeout = Duration::from_millis(server.request_timeout_ms);
        let idle_timeout = Duration::from_millis(server.stream_idle_timeout_ms);
        if uri.scheme_str() == Some("http") {
            let pool = H1Pool::new(&uri, Duration::from_millis(server.connect_timeout_ms))?;
            return Ok(Self {
                client: Transport::Plain(Arc::new(pool)),
                uri,
                request_timeout,
                idle_timeout,
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let tls = match &server.ca_bundle {
            Some(r) => {
                let pem = secrets
                    .key(r)
                    .ok_or_else(|| format!("CA bundle {r} is not available"))?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| format!("CA bundle {r} is not PEM: {e}"))?;
                    roots.add(cert).map_err(|e| format!("CA bundle {r}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("CA bundle {r} holds no certificate"));
                }
                tls.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                let mut roots = RootCertStore::empty();
                if uri.scheme_str() == Some("https") {
                    let native = rustls_native_roots();
                    if native.is_empty() {
                        tracing::warn!(server = %server.key, "no system CA certificates found; https upstream verification will fail");
                    }
                    roots.add_parsable_certificates(native);
                }
                tls.with_root_certificates(roots).with_no_client_auth()
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_millis(server.connect_timeout_ms)));
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match &server.server_name {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                    format!("tls.serverName {name:?} is not a DNS name or IP address")
                })?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_all_versions().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            client: Transport::Tls(Box::new(client)),
            uri,
            request_timeout,
            idle_timeout,
        })
    }

    /// Send a request for [`Self::uri`] (the caller applies the request timeout).
    pub async fn send(&self, req: Outbound<'_>) -> Result<Response<UpstreamBody>, SendError> {
        match &self.client {
            Transport::Plain(pool) => pool.send(req).await,
            // Boxed: hyper's client future is large, and HTTPS upstreams are the rarer case.
            Transport::Tls(client) => {
                match Box::pin(client.request(self.http_request(req))).await {
                    Ok(r) => Ok(r.map(|body| UpstreamBody(Inner::Plain(body)))),
                    Err(e) if e.is_connect() => Err(SendError::Connect(e.to_string())),
                    Err(e) => Err(SendError::Request(e.to_string())),
                }
            }
        }
    }
}

impl Upstream {
    /// `req` as an `http::Request` for hyper's client (HTTPS upstreams).
    fn http_request(&self, req: Outbound<'_>) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(req.body));
        *r.method_mut() = req.method.clone();
        *r.uri_mut() = self.uri.clone();
        let h = r.headers_mut();
        for (name, value) in req.fields {
            h.append(name.clone(), value.clone());
        }
        r
    }
}

enum Transport {
    Plain(Arc<H1Pool>),
    Tls(Box<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>),
}

/// Why an upstream request failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(String),
    /// The request or its response failed on a connection.
    Request(String),
}

impl SendError {
    /// Whether no connection could be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) | SendError::Request(e) => f.write_str(e),
        }
    }
}

// === impl H1Pool ===

/// Idle connections kept per plain-HTTP upstream and request worker.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest upstream response head.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in an upstream response head.
const MAX_HEADERS: usize = 100;
/// Request bodies up to this size are written with their head in one write.
const COALESCE: usize = 16 * 1024;

/// HTTP/1.1 connections to one plain-HTTP upstream, each used by one request at a time, read
/// and written by that request's task (see the module documentation).
pub struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header.
    host: HeaderValue,
    /// The request target (origin form).
    target: String,
    connect_timeout: Duration,
    /// Idle connections, oldest first, one list per request worker: a connection's I/O is
    /// registered with the event loop of the worker that opened it, so it is only reused there
    /// (using it from another worker would turn every read into a cross-thread wakeup).
    idle: Box<[Mutex<IdleList>]>,
}

/// Idle connections with the time each became idle, oldest first.
type IdleList = Vec<(Instant, TcpStream)>;

impl H1Pool {
    fn new(uri: &http::Uri, connect_timeout: Duration) -> Result<Self, String> {
        let host = uri
            .host()
            .ok_or_else(|| format!("upstream URL {uri} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Ok(Self {
            addr: format!("{host}:{port}"),
            host: HeaderValue::from_str(authority)
                .map_err(|e| format!("upstream URL {uri}: {e}"))?,
            target: target.to_string(),
            connect_timeout,
            idle: (0..crate::workers::count())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        })
    }

    /// This worker's idle connections.
    fn idle(&self) -> std::sync::MutexGuard<'_, IdleList> {
        let list = &self.idle[crate::workers::current() % self.idle.len()];
        list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that the upstream has not closed.
    fn checkout(&self) -> Option<TcpStream> {
        let mut idle = self.idle();
        let now = Instant::now();
        let stale = idle
            .iter()
            .take_while(|(since, _)| now.duration_since(*since) > IDLE_TIMEOUT)
            .count();
        let stale: Vec<_> = idle.drain(..stale).collect();
        let mut found = None;
        while let Some((_, io)) = idle.pop() {
            if still_open(&io) {
                found = Some(io);
                break;
            }
        }
        drop(idle);
        drop(stale);
        found
    }

    /// Return a connection whose exchange is complete.
    pub(super) fn checkin(&self, io: TcpStream) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push((Instant::now(), io));
        }
    }

    async fn connect(&self) -> Result<TcpStream, SendError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| SendError::Connect(format!("connecting to {} timed out", self.addr)))?
            .map_err(|e| SendError::Connect(format!("connecting to {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The request's head (and its body, when small) as written on the wire.
    fn encode(&self, req: &Outbound<'_>) -> Vec<u8> {
        let body = &req.body;
        let mut out = Vec::with_capacity(
            512 + if body.len() <= COALESCE {
                body.len()
            } else {
                0
            },
        );
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        for &(name, value) in &req.fields {
            if matches!(
                *name,
                http::header::HOST
                    | http::header::CONTENT_LENGTH
                    | http::header::TRANSFER_ENCODING
                    | http::header::CONNECTION
                    | http::header::UPGRADE
                    | http::header::TE
            ) {
                continue;
            }
            crate::http1::push_field(&mut out, name, value);
        }
        if !body.is_empty() || !matches!(*req.method, http::Method::GET | http::Method::DELETE) {
            out.extend_from_slice(b"content-length: ");
            crate::http1::push_decimal(&mut out, body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if body.len() <= COALESCE {
            out.extend_from_slice(body);
        }
        out
    }

    async fn send(
        self: &Arc<Self>,
        req: Outbound<'_>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let wire = self.encode(&req);
        let rest = if req.body.len() > COALESCE {
            &req.body[..]
        } else {
            &[]
        };
        // Connecting is boxed: it is rare on a warm pool, and inline its state would enlarge
        // every request's future.
        let (mut io, mut reused) = match self.checkout() {
            Some(io) => (io, true),
            None => (Box::pin(self.connect()).await?, false),
        };
        loop {
            match write_request(&mut io, &wire, rest).await {
                Ok(()) => break,
                // Not sent: an idle connection the upstream had closed. Retry once, on a fresh
                // connection. A request that may have been read is never retried.
                Err(_) if reused => {
                    io = Box::pin(self.connect()).await?;
                    reused = false;
                }
                Err(e) => return Err(SendError::Request(format!("writing the request: {e}"))),
            }
        }
        let mut read = BytesMut::new();
        let (head, len) = loop {
            if let Some(found) = parse_response(&read)? {
                if found.0.status().is_informational() {
                    // 100 Continue, 103 Early Hints: the final response follows.
                    read.advance(found.1);
                    continue;
                }
                break found;
            }
            if read.len() > MAX_HEAD {
                return Err(SendError::Request(
                    "the upstream's response head is too large".into(),
                ));
            }
            let n = std::future::poll_fn(|cx| read_some(&mut io, &mut read, cx))
                .await
                .map_err(|e| SendError::Request(format!("reading the response: {e}")))?;
            if n == 0 {
                return Err(SendError::Request(
                    "the upstream closed the connection before responding".into(),
                ));
            }
        };
        read.advance(len);
        let status = head.status();
        let framing =
            if status == http::StatusCode::NO_CONTENT || status == http::StatusCode::NOT_MODIFIED {
                Framing::Length(0)
            } else {
                Framing::of(head.headers()).ok_or_else(|| {
                    SendError::Request("the upstream's response framing is invalid".into())
                })?
            };
        // A response framed both ways was read by its Transfer-Encoding (RFC 9112 §6.3), but
        // where it really ended is in doubt: its connection is not reused.
        let ambiguous = head.headers().contains_key(http::header::TRANSFER_ENCODING)
            && head.headers().contains_key(http::header::CONTENT_LENGTH);
        let keep_alive = head.version() == http::Version::HTTP_11
            && framing != Framing::UntilClose
            && !ambiguous
            && !head
                .headers()
                .get_all(http::header::CONNECTION)
                .iter()
                .any(|v| {
                    crate::http1::tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"))
                });
        // The whole body is already here (a small JSON answer, an empty 202): the connection
        // goes back to the pool at once.
        if let Framing::Length(n) = framing
            && read.len() as u64 >= n
        {
            let data = read.split_to(n as usize).freeze();
            if keep_alive && read.is_empty() {
                self.checkin(io);
            }
            return Ok(head.map(|()| UpstreamBody(Inner::Whole(Some(data)))));
        }
        let pool = keep_alive.then(|| self.clone());
        Ok(head.map(|()| UpstreamBody(Inner::Socket(SocketBody::new(io, read, framing, pool)))))
    }
}

/// Whether an idle connection is still open: no readiness event since it went idle (no
/// syscall), or one that was not the upstream closing it.
fn still_open(io: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match io.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        // Readable while idle: closed (0), or bytes nobody asked for — either way unusable.
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}

async fn write_request(io: &mut TcpStream, wire: &[u8], rest: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    io.write_all(wire).await?;
    if !rest.is_empty() {
        io.write_all(rest).await?;
    }
    Ok(())
}

/// An upstream response head at the front of `buf` and its length, once complete.
fn parse_response(buf: &[u8]) -> Result<Option<(Response<()>, usize)>, SendError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let invalid = |what: &str| {
        SendError::Request(format!(
            "the upstream sent an invalid response head ({what})"
        ))
    };
    let parser = httparse::ParserConfig::default();
    let len = match parser.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    let mut head = Response::new(());
    *head.status_mut() = http::StatusCode::from_u16(parsed.code.unwrap_or_default())
        .map_err(|_| invalid("status"))?;
    *head.version_mut() = match parsed.version {
        Some(1) => http::Version::HTTP_11,
        _ => http::Version::HTTP_10,
    };
    let headers = head.headers_mut();
    for field in parsed.headers.iter() {
        // Only the fields something reads are kept (`Server`, `Date`… are not).
        let raw = field.name.as_bytes();
        let Some(i) = super::UPSTREAM_RESPONSE_FIELD_NAMES
            .iter()
            .position(|n| n.len() == raw.len() && n.as_bytes().eq_ignore_ascii_case(raw))
        else {
            continue;
        };
        let name = &super::UPSTREAM_RESPONSE_FIELDS[i];
        let value = HeaderValue::from_bytes(field.value).map_err(|_| invalid("field value"))?;
        headers.append(name.clone(), value);
    }
    Ok(Some((head, len)))
}

/// A response body from an upstream.
pub struct UpstreamBody(Inner);

enum Inner {
    /// From hyper's pooled client (HTTPS upstreams).
    Plain(Incoming),
    /// Read from the connection's socket (plain-HTTP upstreams).
    Socket(SocketBody),
    /// Read whole with the head (its connection already back in the pool).
    Whole(Option<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Inner::Plain(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Socket(b) => Pin::new(b).poll_frame(cx),
            Inner::Whole(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Plain(b) => b.is_end_stream(),
            Inner::Socket(b) => b.is_end_stream(),
            Inner::Whole(b) => b.as_ref().is_none_or(|b| b.is_empty()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Plain(b) => b.size_hint(),
            Inner::Socket(b) => b.size_hint(),
            Inner::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

fn rustls_native_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "while loading system CA certificates");
    }
    found.certs
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that, on its n-th connection, reads one request per entry of `script[n]`
    /// and writes that entry back, then closes the connection. Returns its address and how
    /// many connections it accepted.
    async fn upstream(script: Vec<Vec<&'static [u8]>>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            for answers in script {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = Vec::new();
                for answer in answers {
                    // One request: its head, then `content-length` bytes.
                    let (head_end, length) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                            break (i + 4, length);
                        }
                        let mut chunk = [0u8; 4096];
                        let n = s.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the gateway closed the connection mid-request");
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        let n = s.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.drain(..head_end + length);
                    s.write_all(answer).await.unwrap();
                }
            }
        });
        (addr, accepted)
    }

    fn pool(addr: std::net::SocketAddr) -> Arc<H1Pool> {
        let uri: http::Uri = format!("http://{addr}/mcp").parse().unwrap();
        Arc::new(H1Pool::new(&uri, Duration::from_secs(1)).unwrap())
    }

    static POST: http::Method = http::Method::POST;

    fn post(body: &'static str) -> Outbound<'static> {
        Outbound {
            method: &POST,
            fields: Vec::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    async fn text(r: Response<UpstreamBody>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

    #[tokio::test]
    async fn connections_are_reused_and_one_the_upstream_closed_is_replaced() {
        let (addr, accepted) = upstream(vec![vec![OK, OK], vec![OK]]).await;
        let pool = pool(addr);
        for _ in 0..2 {
            let r = pool.send(post("{\"a\":1}")).await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(text(r).await, "{}");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for both"
        );
        // The upstream closes the first connection once its script is done; the pool notices
        // it is closed and opens another instead of failing the request.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = pool.send(post("{}")).await.unwrap();
        assert_eq!(text(r).await, "{}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_a_chunked_body_returns_its_connection() {
        let (addr, accepted) = upstream(vec![vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
        ]])
        .await;
        let pool = pool(addr);
        let r = pool.send(post("{}")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(text(r).await, "abc");
        let r = pool.send(post("{}")).await.unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(text(r).await, "");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the connection was reused"
        );
        assert_eq!(pool.idle().len(), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_unfinished_takes_its_connection_with_it() {
        let (addr, _) = upstream(vec![vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
        ]])
        .await;
        let pool = pool(addr);
        let r = pool.send(post("{}")).await.unwrap();
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "abc");
        drop(body);
        assert!(
            pool.idle().is_empty(),
            "a connection mid-body is never reused"
        );
    }

    #[tokio::test]
    async fn connection_close_and_bad_responses() {
        let (addr, accepted) = upstream(vec![
            vec![b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"],
            vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"],
            vec![b"not http\r\n\r\n"],
            vec![b""],
        ])
        .await;
        let pool = pool(addr);
        let r = pool.send(post("{}")).await.unwrap();
        assert_eq!(text(r).await, "{}");
        // Framed both ways: read as chunked, and the connection is not reused.
        let r = pool.send(post("{}")).await.unwrap();
        assert_eq!(text(r).await, "{}");
        assert!(pool.idle().is_empty());
        let e = pool
            .send(post("{}"))
            .await
            .err()
            .expect("an unrelayable coding");
        assert!(e.to_string().contains("framing"), "{e}");
        let e = pool.send(post("{}")).await.err().expect("not a response");
        assert!(e.to_string().contains("invalid response head"), "{e}");
        let e = pool
            .send(post("{}"))
            .await
            .err()
            .expect("closed without answering");
        assert!(e.to_string().contains("before responding"), "{e}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            5,
            "no connection reused after close"
        );
    }

    #[test]
    fn a_response_head_keeps_the_fields_the_relay_reads_in_any_case() {
        let wire = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/event-stream\r\n\
            MCP-Session-Id: s1\r\nCache-Control: no-cache\r\nX-Other: 1\r\nSet-Cookie: a=b\r\n\
            Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\nrest";
        let (head, len) = parse_response(wire).unwrap().unwrap();
        assert_eq!(&wire[len..], b"rest");
        let kept: Vec<_> = head
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            kept,
            [
                "content-type: text/event-stream",
                "mcp-session-id: s1",
                "cache-control: no-cache",
                "transfer-encoding: chunked",
                "connection: keep-alive"
            ]
        );
        // Everything the relay forwards to the client is among the fields kept.
        for name in &super::super::FORWARDED_RESPONSE_HEADERS {
            assert!(
                super::super::UPSTREAM_RESPONSE_FIELDS.contains(name),
                "{name}"
            );
        }
    }

    #[test]
    fn the_request_head_carries_the_upstream_host_and_its_own_framing() {
        let pool = H1Pool::new(
            &"http://up:8000/mcp?x=1".parse().unwrap(),
            Duration::from_secs(1),
        )
        .unwrap();
        let fields: Vec<(http::HeaderName, HeaderValue)> = [
            ("accept", "application/json"),
            ("connection", "upgrade"),
            ("host", "evil"),
            ("content-length", "99"),
            ("x-request-id", "r1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect();
        let mut req = post("{}");
        req.fields = fields.iter().map(|(k, v)| (k, v)).collect();
        let wire = String::from_utf8(pool.encode(&req)).unwrap();
        assert_eq!(
            wire,
            "POST /mcp?x=1 HTTP/1.1\r\nhost: up:8000\r\naccept: application/json\r\nx-request-id: r1\r\ncontent-length: 2\r\n\r\n{}"
        );
        let get = Outbound {
            method: &http::Method::GET,
            fields: Vec::new(),
            body: Bytes::new(),
        };
        let wire = String::from_utf8(pool.encode(&get)).unwrap();
        assert_eq!(wire, "GET /mcp?x=1 HTTP/1.1\r\nhost: up:8000\r\n\r\n");
    }
}
