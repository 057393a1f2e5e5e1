//! The HTTP client of one upstream McpServer: plain HTTP or HTTPS (system roots, or the CA
//! bundle from the McpServer's Secret), HTTP/1.1 or HTTP/2, with the server's timeouts.
//!
//! Plain-HTTP upstreams (the usual in-cluster case) use [`H1Pool`]: HTTP/1.1 connections that
//! the task of the request using them drives itself. The gateway's request task writes the
//! upstream request, reads the response and streams its body with no hand-off to a separate
//! connection task and back — each hand-off is a wakeup, on a busy machine often of another
//! thread, and they were most of the latency the gateway added (bench/RESULTS.md). HTTPS
//! upstreams (HTTP/2 by ALPN, multiplexed) keep hyper's pooled client.

use super::socket_body::{Framing, GatedStream, HeadGate, SocketBody};
use crate::body::BoxError;
use crate::state::SecretValues;
use bytes::Bytes;
use gatehouse_api::config::{ServerConfig, Upstream as UpstreamKind};
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::future::Future;
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
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        match &self.client {
            Transport::Plain(pool) => pool.send(req).await,
            Transport::Tls(client) => match client.request(req).await {
                Ok(r) => Ok(r.map(|body| UpstreamBody(Inner::Plain(body)))),
                Err(e) if e.is_connect() => Err(SendError::Connect(e.to_string())),
                Err(e) => Err(SendError::Request(e.to_string())),
            },
        }
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

/// HTTP/1.1 connections to one plain-HTTP upstream, each used by one request at a time and
/// driven by that request's task (see the module documentation).
pub struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header.
    host: HeaderValue,
    /// The request target (origin form).
    target: http::Uri,
    connect_timeout: Duration,
    /// Idle connections, oldest first, one list per request worker: a connection's I/O is
    /// registered with the event loop of the worker that opened it, so it is only reused there
    /// (using it from another worker would turn every read into a cross-thread wakeup).
    idle: Box<[Mutex<IdleList>]>,
}

/// Idle connections with the time each became idle, oldest first.
type IdleList = Vec<(Instant, H1Conn)>;

/// One connection: its request handle and the connection future that does its I/O.
struct H1Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    conn: http1::Connection<TokioIo<GatedStream>, Full<Bytes>>,
    /// Holds hyper after a response head, so a stream's body can be read from the socket.
    gate: Arc<HeadGate>,
    /// The connection future completed: the connection is closed.
    closed: bool,
}

impl H1Conn {
    /// Drive the connection's I/O.
    fn poll_io(&mut self, cx: &mut Context<'_>) {
        if !self.closed && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.closed = true;
        }
    }
}

impl H1Pool {
    fn new(uri: &http::Uri, connect_timeout: Duration) -> Result<Self, String> {
        let host = uri
            .host()
            .ok_or_else(|| format!("upstream URL {uri} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let target = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .map_err(|e| format!("upstream URL {uri}: {e}"))?;
        Ok(Self {
            addr: format!("{host}:{port}"),
            host: HeaderValue::from_str(authority)
                .map_err(|e| format!("upstream URL {uri}: {e}"))?,
            target,
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

    /// The most recently used idle connection still good for a request.
    fn checkout(&self) -> Option<H1Conn> {
        let mut idle = self.idle();
        let now = Instant::now();
        let stale = idle
            .iter()
            .take_while(|(since, _)| now.duration_since(*since) > IDLE_TIMEOUT)
            .count();
        let stale: Vec<_> = idle.drain(..stale).collect();
        let mut found = None;
        while let Some((_, c)) = idle.pop() {
            if !c.closed && c.sender.is_ready() {
                found = Some(c);
                break;
            }
        }
        drop(idle);
        drop(stale);
        found
    }

    /// Return a connection whose exchange is complete; one not ready for another request is
    /// closed.
    fn checkin(&self, c: H1Conn) {
        if c.closed || !c.sender.is_ready() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push((Instant::now(), c));
        }
    }

    async fn connect(&self) -> Result<H1Conn, SendError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| SendError::Connect(format!("connecting to {} timed out", self.addr)))?
            .map_err(|e| SendError::Connect(format!("connecting to {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let gate = Arc::new(HeadGate::default());
        let io = TokioIo::new(GatedStream::new(stream, gate.clone()));
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        Ok(H1Conn {
            sender,
            conn,
            gate,
            closed: false,
        })
    }

    async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        *req.uri_mut() = self.target.clone();
        req.headers_mut()
            .insert(http::header::HOST, self.host.clone());
        // Connecting is boxed: it is rare on a warm pool, and inline its state would enlarge
        // every request's future.
        let (mut c, mut reused) = match self.checkout() {
            Some(c) => (c, true),
            None => (Box::pin(self.connect()).await?, false),
        };
        // A GET opens a server-to-client SSE stream, which may stay open and idle for hours:
        // hold hyper after its response head so the relay can take the socket back.
        let gated = req.method() == http::Method::GET;
        loop {
            if gated {
                c.gate.hold_after_head();
            }
            let mut pending = std::pin::pin!(c.sender.try_send_request(req));
            let sent = std::future::poll_fn(|cx| {
                c.poll_io(cx);
                pending.as_mut().poll(cx)
            })
            .await;
            match sent {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let mut body = PooledBody {
                        body,
                        conn: Some(c),
                        pool: self.clone(),
                    };
                    if !gated {
                        body.release();
                    }
                    if body.body.is_end_stream() {
                        std::future::poll_fn(|cx| {
                            body.finish(cx);
                            Poll::Ready(())
                        })
                        .await;
                    }
                    return Ok(Response::from_parts(
                        parts,
                        UpstreamBody(Inner::Pooled(body)),
                    ));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: an idle connection the upstream had closed. Retry once, on a
                    // fresh connection. A request that may have been sent is never retried.
                    Some(r) if reused => {
                        req = r;
                        c = Box::pin(self.connect()).await?;
                        reused = false;
                    }
                    _ => return Err(SendError::Request(e.into_error().to_string())),
                },
            }
        }
    }
}

/// A response body from an upstream.
pub struct UpstreamBody(Inner);

// A body is created once per response and moved a few times; boxing the connection would
// allocate on every request instead.
#[allow(clippy::large_enum_variant)]
enum Inner {
    /// From hyper's pooled client (or with the connection already returned).
    Plain(Incoming),
    /// Reading it drives its connection, which returns to the pool at its end.
    Pooled(PooledBody),
    /// Read from the socket taken back from hyper (long-lived streams).
    Socket(SocketBody),
}

impl UpstreamBody {
    /// Prepare the body for a long life (an SSE stream): when it comes from a pooled
    /// connection, take the socket back from hyper and read the body from it directly, which
    /// frees hyper's per-connection buffers (see [`super::socket_body`]). `head` is the
    /// response's headers. Bodies that cannot be detached are returned unchanged.
    pub fn detach_for_stream(self, head: &http::HeaderMap) -> Self {
        let Inner::Pooled(mut p) = self.0 else {
            return self;
        };
        let (Some(framing), Some(c)) = (Framing::of(head), p.conn.as_ref()) else {
            return UpstreamBody(Inner::Pooled(p));
        };
        if c.closed || !c.gate.is_held() {
            return UpstreamBody(Inner::Pooled(p));
        }
        let c = p.conn.take().expect("checked");
        // hyper holds the response head and not one byte past it (the gate), so its body
        // decoder never started: the body is read from the socket from its first byte.
        drop(p.body);
        drop(c.sender);
        let parts = c.conn.into_parts();
        UpstreamBody(Inner::Socket(SocketBody::new(
            parts.io.into_inner().into_inner(),
            parts.read_buf,
            framing,
        )))
    }
}

struct PooledBody {
    body: Incoming,
    conn: Option<H1Conn>,
    pool: Arc<H1Pool>,
}

impl PooledBody {
    /// The response is complete: let the connection settle into idle and pool it.
    /// Let hyper read the body (unless it was never held).
    fn release(&self) {
        if let Some(c) = &self.conn {
            c.gate.release();
        }
    }

    fn finish(&mut self, cx: &mut Context<'_>) {
        self.release();
        if let Some(mut c) = self.conn.take() {
            if !c.sender.is_ready() {
                c.poll_io(cx);
            }
            self.pool.checkin(c);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let p = match &mut self.get_mut().0 {
            Inner::Plain(b) => return Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Socket(b) => return Pin::new(b).poll_frame(cx),
            Inner::Pooled(p) => p,
        };
        p.release();
        let mut r = Pin::new(&mut p.body).poll_frame(cx);
        if r.is_pending()
            && let Some(c) = p.conn.as_mut()
        {
            // The first poll told the connection the body is wanted; now let it deliver.
            c.poll_io(cx);
            r = Pin::new(&mut p.body).poll_frame(cx);
        }
        match &r {
            Poll::Ready(None) => p.finish(cx),
            Poll::Ready(Some(Ok(_))) if p.body.is_end_stream() => p.finish(cx),
            Poll::Ready(Some(Err(_))) => p.conn = None,
            _ => {}
        }
        r.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Plain(b) => b.is_end_stream(),
            Inner::Pooled(p) => p.body.is_end_stream(),
            Inner::Socket(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Plain(b) => b.size_hint(),
            Inner::Pooled(p) => p.body.size_hint(),
            Inner::Socket(b) => b.size_hint(),
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
