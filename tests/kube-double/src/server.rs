//! The HTTPS listener: TLS handshakes, HTTP/1.1 connections (hyper), request recording, and
//! turning handler replies into responses.

use crate::api::{self, Reply, Request};
use crate::store::State;
use crate::watch::{self, WatchBody};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio_rustls::TlsAcceptor;

/// One request as received, for assertions in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// `Content-Type` header (empty when none).
    pub content_type: String,
    /// Body, lossily decoded as UTF-8.
    pub body: String,
}

/// State shared by every connection.
pub struct Shared {
    /// Objects, types and watch history.
    pub state: Mutex<State>,
    /// Recorded requests.
    pub records: Mutex<Vec<RecordedRequest>>,
    /// Whether to record requests.
    pub record: AtomicBool,
    /// Bumped to cut every open watch.
    pub cut: signal::Sender<u64>,
    /// Number of open watch streams.
    pub open_watches: Arc<AtomicUsize>,
    /// Interval between BOOKMARK events.
    pub bookmark_interval: Duration,
    /// `host:port` of the listener.
    pub server_address: String,
}

type ResponseBody = Either<Full<Bytes>, WatchBody>;

fn full(code: u16, content_type: &str, body: Vec<u8>) -> Response<ResponseBody> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("cache-control", "no-cache, private")
        .body(Either::Left(Full::new(Bytes::from(body))))
        .expect("valid response")
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let request = Request {
        method: parts.method.as_str().to_string(),
        segments: parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        query: form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect::<HashMap<_, _>>(),
        content_type: header("content-type"),
        accept: header("accept"),
        body: body.clone(),
        server_address: shared.server_address.clone(),
    };
    if shared.record.load(std::sync::atomic::Ordering::SeqCst) {
        shared
            .records
            .lock()
            .expect("records lock")
            .push(RecordedRequest {
                method: request.method.clone(),
                path: parts.uri.path().to_string(),
                query: raw_query,
                content_type: request.content_type.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
    }
    let reply = {
        let mut st = shared.state.lock().expect("state lock");
        api::handle(&mut st, &request)
    };
    let resp = match reply {
        Ok(Reply::Json {
            code,
            body,
            content_type,
            warnings,
        }) => {
            let mut r = full(code, content_type, body.to_string().into_bytes());
            for w in warnings {
                let v = format!("299 - {}", serde_json::Value::String(w));
                if let Ok(h) = hyper::header::HeaderValue::from_str(&v) {
                    r.headers_mut().append("warning", h);
                }
            }
            r
        }
        Ok(Reply::Text(code, text)) => full(code, "text/plain; charset=utf-8", text.into_bytes()),
        Ok(Reply::Watch(spec)) => {
            let body = watch::start(
                *spec,
                shared.cut.subscribe(),
                shared.open_watches.clone(),
                shared.bookmark_interval,
            );
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("cache-control", "no-cache, private")
                .body(Either::Right(body))
                .expect("valid response")
        }
        Err(e) => full(
            e.code,
            "application/json",
            e.to_status().to_string().into_bytes(),
        ),
    };
    Ok(resp)
}

/// Accepts connections until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: signal::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = service_fn(move |req| handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}
