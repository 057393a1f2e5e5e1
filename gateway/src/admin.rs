//! The admin endpoints: `/healthz` (the process is up), `/readyz` (a configuration is loaded and
//! served) and `/metrics` (Prometheus / OpenMetrics text).

use crate::body::{self, Body};
use crate::state::Gateway;
use http::{HeaderValue, Response, StatusCode, header};

/// Answer an admin request.
pub fn handle(gw: &Gateway, path: &str) -> Response<Body> {
    let (status, content_type, text) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => match gw.snapshot() {
            Some(s) => (
                StatusCode::OK,
                "text/plain",
                format!("ready: config version {}\n", s.config.version),
            ),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: no valid configuration loaded yet\n".to_string(),
            ),
        },
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gw.metrics.encode(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut r = Response::new(body::full(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
