//! The listener: TCP (optionally TLS with rustls) accept loops serving HTTP/1.1 (our own
//! server, [`crate::http1`]) and HTTP/2 (hyper),
//! graceful drain on shutdown, and the front of the pipeline — Origin validation (DNS-rebinding
//! protection), routing, authentication, session — before [`crate::relay`] takes over.

use crate::audit::AuditRecord;
use crate::authn::AuthnError;
use crate::authn::mtls::PeerCertificates;
use crate::body::{Body, RequestBody};
use crate::error::GatewayError;
use crate::http1::{self, Served};
use crate::metrics::method_label;
use crate::relay::{self, Call};
use crate::route::{self, Route};
use crate::state::{Gateway, Snapshot};
use anyhow::Context;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A request handler shared by every connection of a listener.
pub type Handler =
    Arc<dyn Fn(Request<RequestBody>) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// Build a TLS acceptor (HTTP/2 and HTTP/1.1 by ALPN) from PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading TLS private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Client certificates are requested, never required: `mtls` TrustProviders validate them
    // per request against the current snapshot's CA bundles.
    let client_auth = Arc::new(crate::authn::mtls::OptionalClientCert::new(&provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_auth)
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not form a valid pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TLS acceptor (HTTP/2 and HTTP/1.1 by ALPN) whose certificate `resolver` picks on every
/// handshake: cluster mode serves the listener Secret's certificate and swaps it on rotation.
pub fn tls_acceptor_with(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_auth = Arc::new(crate::authn::mtls::OptionalClientCert::new(&provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_auth)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The request workers sharing one listener (see `crate::workers`): how many connections
/// each has open, and a hand-off queue into each.
///
/// A connection stays with the worker serving it, so whichever worker accepts it hands it to
/// the least loaded one when that holds fewer: otherwise a burst of new connections can land
/// on one core while the other idles (one cross-thread wakeup per connection, none per
/// request).
pub struct WorkerLoad {
    open: Box<[AtomicUsize]>,
    handoff: Box<[mpsc::UnboundedSender<Accepted>]>,
}

/// A connection accepted by one worker for another.
type Accepted = (std::net::TcpStream, SocketAddr);

/// What a request worker needs to share a listener with the others.
pub struct Share {
    load: Arc<WorkerLoad>,
    worker: usize,
    handed: mpsc::UnboundedReceiver<Accepted>,
}

impl WorkerLoad {
    /// Shares for `workers` request workers, one each.
    pub fn shares(workers: usize) -> Vec<Share> {
        let n = workers.max(1);
        let (handoff, queues): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let load = Arc::new(Self {
            open: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            handoff: handoff.into(),
        });
        queues
            .into_iter()
            .enumerate()
            .map(|(worker, handed)| Share {
                load: load.clone(),
                worker,
                handed,
            })
            .collect()
    }

    /// The worker a new connection accepted by `me` should go to: `me`, unless another holds
    /// fewer connections.
    fn pick(&self, me: usize) -> usize {
        let mut best = (self.open[me].load(Ordering::Relaxed), me);
        for (i, n) in self.open.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n < best.0 {
                best = (n, i);
            }
        }
        best.1
    }
}

/// A connection counted in [`WorkerLoad`] until dropped.
struct OpenConnection(Arc<WorkerLoad>, usize);

impl OpenConnection {
    /// Count a connection for `worker`.
    fn count(load: &Arc<WorkerLoad>, worker: usize) -> Self {
        load.open[worker].fetch_add(1, Ordering::Relaxed);
        Self(load.clone(), worker)
    }

    /// Hand the connection to the worker it is counted for; `Err` gives it back, uncounted,
    /// when that worker is gone.
    fn hand_off(self, stream: TcpStream, peer: SocketAddr) -> Result<(), std::net::TcpStream> {
        let Ok(std) = stream.into_std() else {
            return Ok(()); // not a usable socket any more: dropped, and uncounted
        };
        match self.0.handoff[self.1].send((std, peer)) {
            // Uncounted by the receiver's guard when it closes.
            Ok(()) => {
                std::mem::forget(self);
                Ok(())
            }
            Err(mpsc::error::SendError((std, _))) => Err(std),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open[self.1].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections until `shutdown` flips, then drain for at most `drain`. `share` is set
/// when several request workers share `listener`; `max_body` bounds request bodies.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    mut share: Option<Share>,
    max_body: usize,
) {
    // Every connection task holds a sender: when none is left, all have drained.
    let (alive, mut all_closed) = mpsc::channel::<Infallible>(1);
    let handed = async |share: &mut Option<Share>| match share {
        Some(s) => s.handed.recv().await,
        None => std::future::pending().await,
    };
    loop {
        let (stream, peer, open) = tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors (EMFILE/ENFILE) or memory: the pending
                        // connection stays queued, so retrying at once would spin a core.
                        // Pause; established connections keep being served meanwhile.
                        tracing::warn!(error = %e, "accept failed; pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match &share {
                    None => (stream, peer, None),
                    Some(s) => {
                        let to = s.load.pick(s.worker);
                        let open = OpenConnection::count(&s.load, to);
                        if to == s.worker {
                            (stream, peer, Some(open))
                        } else {
                            match open.hand_off(stream, peer) {
                                Ok(()) => continue,
                                // That worker is gone: serve the connection here.
                                Err(std) => match TcpStream::from_std(std) {
                                    Ok(stream) => (stream, peer, Some(OpenConnection::count(&s.load, s.worker))),
                                    Err(_) => continue,
                                },
                            }
                        }
                    }
                }
            }
            Some((std, peer)) = handed(&mut share) => {
                let s = share.as_ref().expect("handed connections come with a share");
                // Counted for this worker by the one that accepted it.
                let open = OpenConnection(s.load.clone(), s.worker);
                match TcpStream::from_std(std) {
                    Ok(stream) => (stream, peer, Some(open)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take over a connection");
                        continue;
                    }
                }
            }
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            handler: handler.clone(),
            max_body,
            shutdown: shutdown.clone(),
            peer,
            _alive: alive.clone(),
            _open: open,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => conn.serve(stream, None).await,
                // Boxed: the TLS state would otherwise enlarge every plain connection's task.
                Some(acceptor) => Box::pin(conn.serve_tls(acceptor, stream)).await,
            }
        });
    }
    drop(listener);
    drop(alive);
    tokio::select! {
        _ = all_closed.recv() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout: closing remaining connections"),
    }
}

/// One client connection's task.
struct Connection {
    handler: Handler,
    max_body: usize,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    /// Held until the connection ends (see `serve`'s drain).
    _alive: mpsc::Sender<Infallible>,
    _open: Option<OpenConnection>,
}

impl Connection {
    /// Complete the TLS handshake, then serve HTTP/2 (ALPN `h2`) or HTTP/1.1.
    async fn serve_tls(self, acceptor: TlsAcceptor, stream: TcpStream) {
        let s = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            _ => {
                tracing::debug!(peer = %self.peer, "TLS handshake failed");
                return;
            }
        };
        let peer = s.get_ref().1.peer_certificates().map(|c| {
            PeerCertificates(Arc::new(c.iter().map(|d| d.clone().into_owned()).collect()))
        });
        if s.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.serve_h2(s, peer).await
        } else {
            self.serve(s, peer).await
        }
    }

    /// Serve HTTP/1.1 (see [`crate::http1`]), or HTTP/2 when the client opens with its preface.
    async fn serve<IO>(self, io: IO, peer: Option<PeerCertificates>)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let options = http1::Options {
            max_body: self.max_body,
            peer,
        };
        match http1::serve(io, &self.handler, &options, self.shutdown.clone()).await {
            Ok(Served::Done) => {}
            // Boxed: hyper's HTTP/2 connection is large and rare here.
            Ok(Served::Http2(io)) => Box::pin(self.serve_h2(io, options.peer)).await,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error")
            }
        }
    }

    /// Serve HTTP/2 with hyper; at shutdown, stop taking streams and finish the open ones.
    async fn serve_h2<IO>(mut self, io: IO, peer: Option<PeerCertificates>)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let handler = self.handler.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(RequestBody::Streamed);
            if let Some(p) = &peer {
                req.extensions_mut().insert(p.clone());
            }
            let h = handler.clone();
            async move { Ok::<_, Infallible>(h(req).await) }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = http1::until_shutdown(&mut self.shutdown) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

/// Whether the request's `Origin` (if any) may talk to this gateway.
pub fn check_origin(snapshot: &Snapshot, headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("<not text>");
    if snapshot
        .config
        .allowed_origins
        .iter()
        .any(|a| a.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    let host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .map(|rest| {
            if let Some(v6) = rest.strip_prefix('[') {
                v6.split(']').next().unwrap_or("")
            } else {
                rest.split(':').next().unwrap_or("")
            }
        })
        .unwrap_or("");
    if matches!(host, "localhost" | "127.0.0.1" | "::1") {
        return Ok(());
    }
    Err(GatewayError::ForbiddenOrigin(origin.to_string()))
}

static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The MCP listener's handler: every request ends here with a response, an audit line and
/// metrics.
///
/// Not an `async fn`: one keeps a second copy of every argument in its future (which lives
/// for the whole request). The block below uses its captures in place.
pub fn handle(
    gw: Arc<Gateway>,
    req: Request<RequestBody>,
    tls: bool,
    admin_here: bool,
) -> impl Future<Output = Response<Body>> + Send + 'static {
    let (parts, body) = req.into_parts();
    async move {
        let path = parts.uri.path();
        if admin_here && matches!(path, "/healthz" | "/readyz" | "/metrics") {
            return crate::admin::handle(&gw, path);
        }
        let started = Instant::now();
        let request_id = request_id();
        let mut audit = AuditRecord::start(request_id, parts.method.as_str(), path);
        audit.trace_id = crate::audit::trace_id(parts.headers.get(&TRACEPARENT));
        let snapshot = gw.snapshot();
        audit.gateway = snapshot
            .as_ref()
            .map(|s| Cow::Borrowed(s.gateway_label.as_str()));
        let response = front(&gw, snapshot.as_ref(), &parts, body, path, tls, &mut audit).await;
        finish(&gw, snapshot.as_ref(), response, started, audit)
    }
}

/// The response for `front`'s outcome; the request's metrics and audit line recorded.
fn finish(
    gw: &Gateway,
    snapshot: Option<&Arc<Snapshot>>,
    outcome: Result<Outcome, GatewayError>,
    started: Instant,
    mut audit: AuditRecord<'_>,
) -> Response<Body> {
    let response = match outcome {
        Ok(Outcome::Mcp(r)) => r,
        Ok(Outcome::Metadata(r)) => return r,
        Err(e) => {
            audit.error = Some(e.kind().to_string());
            if audit.reason.is_none() || !matches!(e, GatewayError::Denied { .. }) {
                audit.reason = Some(e.to_string());
            }
            e.into_response()
        }
    };
    let elapsed = started.elapsed();
    audit.status = response.status().as_u16();
    audit.latency_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    gw.metrics.request(
        audit.server.as_deref(),
        method_label(audit.method.as_deref().unwrap_or("-")),
        match audit.decision.as_deref() {
            Some("allow") => "allow",
            Some("deny") => "deny",
            Some(_) => "other",
            None => "-",
        },
        audit.status,
        elapsed.as_secs_f64(),
    );
    match snapshot {
        Some(s) => gw.audit.write(&s.config.audit, &audit),
        None => gw
            .audit
            .write(&gatehouse_api::config::AuditConfig::Stdout, &audit),
    }
    response
}

async fn front<'s>(
    gw: &Arc<Gateway>,
    snapshot: Option<&'s Arc<Snapshot>>,
    head: &http::request::Parts,
    body: RequestBody,
    path: &str,
    tls: bool,
    audit: &mut AuditRecord<'s>,
) -> Result<Outcome, GatewayError> {
    let snapshot = snapshot.ok_or(GatewayError::NotReady)?;
    check_origin(snapshot, &head.headers)?;
    let server = match route::route(snapshot, path) {
        Route::ProtectedResource(rest) => {
            return Ok(Outcome::Metadata(relay::protected_resource_response(
                snapshot,
                &head.headers,
                tls,
                &rest,
            )));
        }
        Route::Credentials(ep) => {
            let (m, q) = (&head.method, head.uri.query());
            // Boxed: consent pages are rare; inline they would enlarge every request's future.
            let r = Box::pin(crate::consent::serve(snapshot, ep, m, q, &head.headers)).await;
            return Ok(Outcome::Metadata(r));
        }
        Route::NotFound => return Err(GatewayError::NoRoute(path.to_string())),
        Route::Mcp(i) => i,
    };
    audit.server = Some(Cow::Borrowed(snapshot.servers[server].label.as_str()));
    // In a block: what it borrows is gone before the relay's await, not kept in this future.
    let call = {
        let metadata_url =
            || route::metadata_url(&route::public_base(snapshot, &head.headers, tls), path);
        // Tokens in URLs leak into logs and histories; the MCP authorization spec forbids them.
        if head
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token=")))
        {
            return Err(GatewayError::Unauthenticated {
            reason: "access tokens in the query string are not accepted; send Authorization: Bearer <token>".into(),
            resource_metadata: metadata_url(),
            scope: None,
        });
        }
        // The route's public URL, which a JWT's audience may name (built only when a JWT provider
        // could read it).
        let route_url = snapshot.authn.verifies_jwts().then(|| {
            [
                route::public_base(snapshot, &head.headers, tls).as_str(),
                path,
            ]
            .concat()
        });
        let who = snapshot
            .authn
            .authenticate(
                &head.headers,
                route_url.as_deref(),
                head.extensions.get::<PeerCertificates>(),
            )
            .await
            .map_err(|e| {
                let resource_metadata = metadata_url();
                match e {
                    AuthnError::Unauthenticated(reason) => GatewayError::Unauthenticated {
                        reason,
                        resource_metadata,
                        scope: Some(route::required_scopes(snapshot).join(" "))
                            .filter(|s| !s.is_empty()),
                    },
                    AuthnError::InsufficientScope { reason, scopes } => {
                        GatewayError::InsufficientScope {
                            reason,
                            scopes,
                            resource_metadata,
                        }
                    }
                }
            })?;
        if let Some(u) = &who.user {
            audit.user = Some(u.id.clone());
            audit.email = u.email.clone();
            audit.user_provider = Some(u.provider.clone());
        }
        if let Some(a) = &who.agent {
            audit.agent = Some(a.id.clone());
            audit.agent_kind = Some(a.kind.as_str().to_string());
            audit.agent_provider = Some(a.provider.clone());
        }
        let session = relay::open_session(snapshot, server, &who, &head.headers, audit)?;
        Call {
            gateway: gw,
            snapshot,
            server,
            who,
            session,
            audit,
        }
    };
    relay::relay(call, head, body).await.map(Outcome::Mcp)
}

/// A fresh request id: 16 lowercase hex digits. SplitMix64 of a per-thread counter from a
/// random start: a bijection, so a thread repeats no id in 2^64 requests, and threads start
/// 64 random bits apart. Ids name requests; they guard nothing, so they need not be
/// unpredictable (the thread's CSPRNG cost ~300 instructions per request).
fn request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static NEXT: Cell<u64> = Cell::new(rand::random());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = NEXT.with(|c| {
        let n = c.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        c.set(n);
        n
    });
    n = (n ^ (n >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    n = (n ^ (n >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    n ^= n >> 31;
    let mut id = [0u8; 16];
    for (i, d) in id.iter_mut().enumerate() {
        *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Hex digits: always UTF-8.
    String::from_utf8_lossy(&id).into_owned()
}

/// What the front of the pipeline produced.
enum Outcome {
    /// A relayed MCP exchange (audited).
    Mcp(Response<Body>),
    /// A metadata document (not an MCP message: not audited).
    Metadata(Response<Body>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_never_repeat() {
        let ids: Vec<String> = (0..100_000).map(|_| request_id()).collect();
        assert!(
            ids.iter().all(|id| id.len() == 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
            "{:?}",
            &ids[..3]
        );
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Another thread starts elsewhere.
        let other = std::thread::spawn(request_id).join().unwrap();
        assert!(!distinct.contains(&other));
    }
}
