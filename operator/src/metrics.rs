//! Prometheus metrics of the operator and the `/metrics`, `/healthz`, `/readyz` endpoint.

use crate::serve::{self, Body};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Which controller a reconcile or error belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `snapshots`, `workloads`, `status`, `push`, `index`, `leader`.
    pub controller: &'static str,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconcile passes, per controller.
    pub reconciles: Family<ControllerLabel, Counter>,
    /// Failed API calls or passes, per controller.
    pub errors: Family<ControllerLabel, Counter>,
    /// Time `gatehouse_api::compile` takes.
    pub compile_duration: Histogram,
    /// Time from a compile publishing a new snapshot to it being written to a gateway stream.
    pub push_latency: Histogram,
    /// Gateway replicas with an open snapshot stream.
    pub connected_gateways: Gauge,
    /// Snapshots rejected by gateways.
    pub nacks: Counter,
    /// Status subresource patches written.
    pub status_patches: Counter,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse_operator");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ControllerLabel, Counter>::default();
        let compile_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let push_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let connected_gateways = Gauge::default();
        let nacks = Counter::default();
        let status_patches = Counter::default();
        registry.register("reconciles", "Reconcile passes", reconciles.clone());
        registry.register("errors", "Failed reconcile steps", errors.clone());
        registry.register(
            "compile_duration_seconds",
            "Time to compile all custom resources",
            compile_duration.clone(),
        );
        registry.register(
            "push_latency_seconds",
            "Time from compile to snapshot written to a gateway stream",
            push_latency.clone(),
        );
        registry.register(
            "connected_gateways",
            "Gateway replicas with an open snapshot stream",
            connected_gateways.clone(),
        );
        registry.register("nacks", "Snapshots rejected by gateways", nacks.clone());
        registry.register(
            "status_patches",
            "Status subresource patches written",
            status_patches.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            compile_duration,
            push_latency,
            connected_gateways,
            nacks,
            status_patches,
            ready: AtomicBool::new(false),
        }
    }

    /// Counts one pass of `controller`.
    pub fn reconciled(&self, controller: &'static str) {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .inc();
    }

    /// Counts one error of `controller`.
    pub fn failed(&self, controller: &'static str) {
        self.errors
            .get_or_create(&ControllerLabel { controller })
            .inc();
    }

    /// Marks the operator ready (caches synced).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    serve::serve(
        listener,
        None,
        move |req: Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            async move { respond(&req, &metrics) }
        },
    )
    .await
}

fn respond<B>(req: &Request<B>, metrics: &Metrics) -> Response<Body> {
    if req.method() != Method::GET {
        return serve::error(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = serve::text(StatusCode::OK, metrics.encode());
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/healthz" => serve::text(StatusCode::OK, "ok\n"),
        "/readyz" if metrics.ready.load(Ordering::SeqCst) => serve::text(StatusCode::OK, "ok\n"),
        "/readyz" => serve::text(StatusCode::SERVICE_UNAVAILABLE, "caches not synced\n"),
        _ => serve::error(StatusCode::NOT_FOUND, "not found"),
    }
}
