//! The snapshot push server (protocol: `gatehouse_api::push`).
//!
//! Every operator replica serves it. `GET /v1/snapshots/{id}` streams newline-delimited
//! [`StreamMessage`]s: the current snapshot at once, then each new version, with heartbeats in
//! between. `POST /v1/snapshots/{id}/status` records an ACK or NACK in the [`Fleet`].

pub mod auth;
pub mod tls;

use crate::metrics::Metrics;
use crate::replicas::Fleet;
use crate::serve::{self, Body};
use crate::snapshots::Published;
use bytes::Bytes;
use gatehouse_api::config::GatewayId;
use gatehouse_api::push::{POD_HEADER, StatusReport, StreamMessage, parse_id_path};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use kube::Client;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// What the push server needs.
#[derive(Clone)]
pub struct PushState {
    /// For TokenReviews.
    pub client: Client,
    /// The latest compilation.
    pub published: watch::Receiver<Arc<Published>>,
    /// Connected replicas and their reports.
    pub fleet: Fleet,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
}

/// Largest accepted status report.
const MAX_REPORT_BYTES: usize = 64 * 1024;

/// Serves the push endpoints on `listener`, over TLS with `tls` (the certificate it resolves
/// is swapped in place on renewal, see [`tls::watch`]).
pub async fn serve(listener: TcpListener, tls: Option<Arc<tls::ServingCert>>, state: PushState) {
    let state = Arc::new(state);
    let acceptor = tls.map(|cert| tokio_rustls::TlsAcceptor::from(cert.server_config()));
    serve::serve(listener, acceptor, move |req| handle(state.clone(), req)).await
}

async fn handle(state: Arc<PushState>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v1/snapshots/") else {
        return serve::error(StatusCode::NOT_FOUND, "not found");
    };
    let (id_part, is_status) = match rest.strip_suffix("/status") {
        Some(p) => (p, true),
        None => (rest, false),
    };
    let Some(id) = parse_id_path(id_part) else {
        return serve::error(
            StatusCode::NOT_FOUND,
            "expected /v1/snapshots/{gateway|sidecar}/NAMESPACE/NAME[/status]",
        );
    };
    match (req.method().clone(), is_status) {
        (Method::GET, false) => stream(state, req, id).await,
        (Method::POST, true) => status(state, req, id).await,
        _ => serve::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET the stream, POST status",
        ),
    }
}

async fn check(
    state: &PushState,
    req: &Request<Incoming>,
    id: &GatewayId,
    pod: Option<&str>,
) -> Result<(), Response<Body>> {
    let Some(token) = auth::bearer(req.headers()) else {
        let e = auth::AuthError::Missing;
        return Err(serve::error(e.status(), &e.to_string()));
    };
    auth::authorize(&state.client, token, id, pod)
        .await
        .map_err(|e| {
            tracing::warn!(gateway = %id, error = %e, "push request refused");
            state.metrics.failed("push");
            serve::error(e.status(), &e.to_string())
        })
}

async fn stream(state: Arc<PushState>, req: Request<Incoming>, id: GatewayId) -> Response<Body> {
    let pod = req
        .headers()
        .get(POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let Some(pod) = pod else {
        return serve::error(
            StatusCode::BAD_REQUEST,
            &format!("missing {POD_HEADER} header naming the pod"),
        );
    };
    if let Err(resp) = check(&state, &req, &id, Some(&pod)).await {
        return resp;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let connection = state.fleet.connect(&id, &pod);
    state
        .metrics
        .connected_gateways
        .set(state.fleet.connected() as i64);
    tracing::info!(gateway = %id, %pod, "gateway replica connected");
    let task_state = state.clone();
    tokio::spawn(async move {
        feed(&task_state, &id, tx).await;
        drop(connection);
        task_state
            .metrics
            .connected_gateways
            .set(task_state.fleet.connected() as i64);
        tracing::info!(gateway = %id, %pod, "gateway replica disconnected");
    });
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-ndjson")
        .header("cache-control", "no-store")
        .body(BodyExt::boxed(body))
        .expect("static response parts are valid")
}

fn line(msg: &StreamMessage) -> Bytes {
    let mut v = serde_json::to_vec(msg).expect("stream messages serialize");
    v.push(b'\n');
    Bytes::from(v)
}

/// Writes the current snapshot, every new version and heartbeats until the client goes away.
async fn feed(state: &PushState, id: &GatewayId, tx: mpsc::Sender<Bytes>) {
    let mut published = state.published.clone();
    let mut heartbeat = tokio::time::interval(state.heartbeat);
    heartbeat.tick().await;
    let mut sent: Option<String> = None;
    let mut first = true;
    loop {
        let current = published.borrow_and_update().clone();
        if let Some(config) = current.snapshot(id)
            && sent.as_ref() != Some(&config.version)
        {
            let msg = StreamMessage::Snapshot {
                config: Box::new(config.clone()),
            };
            if tx.send(line(&msg)).await.is_err() {
                return;
            }
            if !first && let Some(at) = current.at {
                state
                    .metrics
                    .push_latency
                    .observe(at.elapsed().as_secs_f64());
                tracing::info!(gateway = %id, version = %config.version,
                    latency_us = at.elapsed().as_micros() as u64, "snapshot pushed");
            }
            sent = Some(config.version.clone());
        }
        first = false;
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            _ = heartbeat.tick() => {
                let version = current.snapshot(id).map(|c| c.version.clone());
                if tx.send(line(&StreamMessage::Heartbeat { version })).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

async fn status(state: Arc<PushState>, req: Request<Incoming>, id: GatewayId) -> Response<Body> {
    if let Err(resp) = check(&state, &req, &id, None).await {
        return resp;
    }
    let body = match Limited::new(req.into_body(), MAX_REPORT_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return serve::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let report: StatusReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return serve::error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "status report is not valid JSON ({{pod, version, accepted, reason?}}): {e}"
                ),
            );
        }
    };
    if !report.accepted {
        state.metrics.nacks.inc();
        tracing::warn!(gateway = %id, pod = %report.pod, version = %report.version,
            reason = report.reason.as_deref().unwrap_or(""), "snapshot rejected (NACK)");
    } else {
        tracing::info!(gateway = %id, pod = %report.pod, version = %report.version, "snapshot applied (ACK)");
    }
    if !state.fleet.report(&id, &report) {
        return serve::error(
            StatusCode::CONFLICT,
            &format!(
                "pod {} has no open snapshot stream for {id}; open GET {} first",
                report.pod,
                gatehouse_api::push::stream_path(&id)
            ),
        );
    }
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(BodyExt::boxed(http_body_util::Empty::new()))
        .expect("static response parts are valid")
}
