//! The gateway's side of the snapshot push protocol (`gatehouse_api::push`): hold a stream open
//! to the operator, apply every snapshot it delivers and report an ACK or NACK for it; on EOF,
//! error or a silent stream, reconnect with capped exponential backoff and jitter while the
//! last applied configuration keeps serving. With `--operator-ca` the operator's certificate is
//! verified against that bundle only; a certificate it did not sign ends the connection before
//! any request (or token) is sent.

use super::apply::Applier;
use bytes::{Bytes, BytesMut};
use gatehouse_api::config::{GatewayConfig, GatewayId};
use gatehouse_api::push::{POD_HEADER, StatusReport, StreamMessage, status_path, stream_path};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// Time allowed to get the stream's response headers, or a status report answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted stream line (a full snapshot).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The `--operator-ca` bundle could not be used.
    #[error("the operator CA bundle {path} (--operator-ca): {reason}")]
    OperatorCa {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The token file could not be read.
    #[error("reading the ServiceAccount token {path}: {source}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The operator could not be reached.
    #[error("connecting to the operator at {url}: {reason}")]
    Connect {
        /// The stream URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The operator answered, but not with a stream.
    #[error("the operator refused the snapshot stream: HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The operator's explanation.
        body: String,
    },
    /// Nothing arrived for three heartbeat intervals.
    #[error("no message for {0:?} (three heartbeat intervals): treating the stream as dead")]
    Silent(Duration),
    /// The stream broke.
    #[error("the snapshot stream broke: {0}")]
    Broken(String),
    /// The operator closed the stream.
    #[error("the operator closed the snapshot stream")]
    Closed,
}

/// One stream line, decoded.
#[derive(Debug)]
pub enum Line {
    /// A full configuration to apply.
    Snapshot(Box<GatewayConfig>),
    /// Keep-alive with the version the operator publishes.
    Heartbeat(Option<String>),
    /// A message type this gateway does not know (ignored for forward compatibility).
    Unknown(String),
}

/// Decode one line. Unknown `type`s are not an error.
pub fn decode(line: &[u8]) -> Result<Line, String> {
    match serde_json::from_slice::<StreamMessage>(line) {
        Ok(StreamMessage::Snapshot { config }) => Ok(Line::Snapshot(config)),
        Ok(StreamMessage::Heartbeat { version }) => Ok(Line::Heartbeat(version)),
        Err(e) => match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) => match v["type"].as_str() {
                Some(t) if t != "snapshot" && t != "heartbeat" => Ok(Line::Unknown(t.to_string())),
                _ => Err(format!("malformed stream message: {e}")),
            },
            Err(_) => Err(format!("stream line is not JSON: {e}")),
        },
    }
}

/// Reconnect delays: start 200 ms, factor 2, cap 10 s, ±20 % jitter.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const START: Duration = Duration::from_millis(200);
    const CAP: Duration = Duration::from_secs(10);

    /// The next delay (without jitter, for tests), and advance.
    fn next_base(&mut self) -> Duration {
        let base = Self::START
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(Self::CAP);
        self.attempt = self.attempt.saturating_add(1).min(16);
        base
    }

    /// The next delay, jittered by ±20 %.
    pub fn next_delay(&mut self) -> Duration {
        self.next_base().mul_f64(rand::random_range(0.8..1.2))
    }

    /// A stream delivered its first message: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Keep-alive probes on the long-lived stream's socket.
const KEEPALIVE: Option<Duration> = Some(Duration::from_secs(30));

/// What the operator's certificate is verified against.
enum Trust {
    /// The system roots (or none needed: a plain `http://` URL).
    System(HttpClient),
    /// Only the CAs of this PEM bundle; re-read on every request, the client rebuilt when its
    /// content changes (the kubelet updates the mounted ConfigMap on a CA rotation).
    Bundle {
        path: PathBuf,
        current: Mutex<Option<(Vec<u8>, HttpClient)>>,
    },
}

/// The CAs of a PEM bundle as the only roots.
fn roots(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut seen = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM bundle: {e}"))?;
        seen += 1;
        roots
            .add(cert)
            .map_err(|e| format!("certificate {seen} is not a usable CA: {e}"))?;
    }
    if seen == 0 {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(roots)
}

impl Trust {
    fn client(&self) -> Result<HttpClient, StreamError> {
        let (path, current) = match self {
            Trust::System(client) => return Ok(client.clone()),
            Trust::Bundle { path, current } => (path, current),
        };
        let err = |reason: String| StreamError::OperatorCa {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let mut current = current.lock().expect("not poisoned");
        if let Some((seen, client)) = current.as_ref()
            && *seen == pem
        {
            return Ok(client.clone());
        }
        let roots = roots(&pem).map_err(err)?;
        tracing::info!(ca = %path.display(), cas = roots.len(),
            "verifying the operator's certificate against the --operator-ca bundle only");
        let client = Client::builder(TokioExecutor::new())
            .build(crate::provider_http::connector_trusting(roots, KEEPALIVE));
        *current = Some((pem, client.clone()));
        Ok(client)
    }
}

/// Where and how to reach the operator.
pub struct PushClient {
    trust: Trust,
    operator: String,
    id: GatewayId,
    pod: String,
    token_file: PathBuf,
    heartbeat: Duration,
}

impl PushClient {
    /// A client for the operator at `operator` (`http://…` or `https://…`), verifying its
    /// certificate against the CA bundle `ca` only, or the system roots without one.
    pub fn new(
        operator: &str,
        ca: Option<PathBuf>,
        id: GatewayId,
        pod: String,
        token_file: PathBuf,
        heartbeat: Duration,
    ) -> Self {
        // HTTP/1.1 only: the snapshot stream is one long response per connection.
        let trust = match ca {
            Some(path) => Trust::Bundle {
                path,
                current: Mutex::new(None),
            },
            None => Trust::System(
                Client::builder(TokioExecutor::new())
                    .build(crate::provider_http::outbound_connector(false, KEEPALIVE)),
            ),
        };
        Self {
            trust,
            operator: operator.trim_end_matches('/').to_string(),
            id,
            pod,
            token_file,
            heartbeat,
        }
    }

    /// Re-read on every use: the kubelet rotates projected tokens.
    fn token(&self) -> Result<Zeroizing<String>, StreamError> {
        let raw = Zeroizing::new(std::fs::read_to_string(&self.token_file).map_err(|source| {
            StreamError::Token {
                path: self.token_file.display().to_string(),
                source,
            }
        })?);
        Ok(Zeroizing::new(raw.trim().to_string()))
    }

    fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<http::Request<Full<Bytes>>, StreamError> {
        let token = self.token()?;
        let url = format!("{}{path}", self.operator);
        let bearer = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let mut auth = http::HeaderValue::from_str(&bearer).map_err(|_| {
            StreamError::Broken("the token file holds an invalid header value".into())
        })?;
        auth.set_sensitive(true);
        http::Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::AUTHORIZATION, auth)
            .header(POD_HEADER, &self.pod)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| StreamError::Connect {
                url,
                reason: e.to_string(),
            })
    }

    /// Hold the stream open forever, reconnecting as the protocol says.
    pub async fn run(self: Arc<Self>, applier: Arc<Applier>) {
        let mut backoff = Backoff::default();
        loop {
            let e = self.stream_once(&applier, &mut backoff).await;
            let delay = backoff.next_delay();
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                "snapshot stream down; serving the last applied configuration");
            tokio::time::sleep(delay).await;
        }
    }

    /// One stream, until it ends.
    async fn stream_once(&self, applier: &Applier, backoff: &mut Backoff) -> StreamError {
        let path = stream_path(&self.id);
        let url = format!("{}{path}", self.operator);
        let req = match self.request(http::Method::GET, &path, Bytes::new()) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let http = match self.trust.client() {
            Ok(c) => c,
            Err(e) => return e,
        };
        let resp = match tokio::time::timeout(REQUEST_TIMEOUT, http.request(req)).await {
            Err(_) => {
                return StreamError::Connect {
                    url,
                    reason: format!("no answer within {REQUEST_TIMEOUT:?}"),
                };
            }
            Ok(Err(e)) => {
                return StreamError::Connect {
                    url,
                    reason: self.explain(error_chain(&e)),
                };
            }
            Ok(Ok(r)) => r,
        };
        if resp.status() != http::StatusCode::OK {
            let status = resp.status().as_u16();
            let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
                .unwrap_or_default();
            return StreamError::Refused { status, body };
        }
        tracing::info!(%url, pod = %self.pod, "snapshot stream open");
        let mut body = resp.into_body();
        let mut buf = BytesMut::new();
        let dead_after = self.heartbeat * 3;
        loop {
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(pos + 1);
                self.handle(&line[..pos], applier, backoff).await;
            }
            if buf.len() > MAX_LINE {
                return StreamError::Broken(format!("a line longer than {MAX_LINE} bytes"));
            }
            match tokio::time::timeout(dead_after, body.frame()).await {
                Err(_) => return StreamError::Silent(dead_after),
                Ok(None) => return StreamError::Closed,
                Ok(Some(Err(e))) => return StreamError::Broken(error_chain(&e)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    async fn handle(&self, line: &[u8], applier: &Applier, backoff: &mut Backoff) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match decode(line) {
            Ok(Line::Snapshot(config)) => {
                backoff.reset();
                let version = config.version.clone();
                tracing::info!(%version, "snapshot received");
                let outcome = applier.offer(*config).await;
                self.report(&version, outcome.err().map(|r| r.0)).await;
            }
            Ok(Line::Heartbeat(version)) => {
                backoff.reset();
                tracing::debug!(?version, "heartbeat");
            }
            Ok(Line::Unknown(t)) => tracing::debug!(r#type = %t, "ignoring unknown stream message"),
            Err(e) => tracing::warn!(error = %e, "ignoring a stream line"),
        }
    }

    /// Post an ACK (`rejection == None`) or a NACK for `version`.
    pub async fn report(&self, version: &str, rejection: Option<String>) {
        let report = StatusReport {
            pod: self.pod.clone(),
            version: version.to_string(),
            accepted: rejection.is_none(),
            reason: rejection,
        };
        let body = Bytes::from(serde_json::to_vec(&report).expect("reports serialize"));
        let req = match self.request(http::Method::POST, &status_path(&self.id), body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, %version, "could not report to the operator");
                return;
            }
        };
        let kind = if report.accepted { "ACK" } else { "NACK" };
        let http = match self.trust.client() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, %version, "could not send the {kind}");
                return;
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, http.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                tracing::info!(%version, "reported {kind}")
            }
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
                    .unwrap_or_default();
                tracing::warn!(%version, status, %body, "the operator refused the {kind}")
            }
            Ok(Err(e)) => {
                tracing::warn!(%version, error = %error_chain(&e), "could not send the {kind}")
            }
            Err(_) => tracing::warn!(%version, "the operator did not answer the {kind} in time"),
        }
    }
}

impl PushClient {
    /// Says what a certificate verification failure means for the operator connection.
    fn explain(&self, chain: String) -> String {
        if !chain.contains("invalid peer certificate") {
            return chain;
        }
        match &self.trust {
            Trust::Bundle { path, .. } => format!(
                "{chain} (the operator's certificate is not signed by a CA in --operator-ca {} \
                 or does not name the host of --operator; no snapshot is accepted from it)",
                path.display()
            ),
            Trust::System(_) => format!(
                "{chain} (the operator's certificate is not trusted by the system roots; give \
                 its CA with --operator-ca)"
            ),
        }
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let seen: Vec<u128> = (0..8).map(|_| b.next_base().as_millis()).collect();
        assert_eq!(seen, [200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        b.reset();
        assert_eq!(b.next_base(), Duration::from_millis(200));
        for _ in 0..50 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(320) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
    }

    #[test]
    fn an_operator_ca_bundle_must_hold_ca_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap().pem();
        assert_eq!(roots(format!("{ca}{ca}").as_bytes()).unwrap().len(), 2);
        let e = roots(b"junk").unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        let trust = Trust::Bundle {
            path: path.clone(),
            current: Mutex::new(None),
        };
        let e = trust.client().err().unwrap().to_string();
        assert!(e.contains("ca.crt (--operator-ca)"), "{e}");
        std::fs::write(&path, &ca).unwrap();
        assert!(trust.client().is_ok());
    }

    #[test]
    fn lines_decode_and_unknown_types_are_ignored() {
        assert!(matches!(
            decode(br#"{"type":"heartbeat","version":"v1"}"#),
            Ok(Line::Heartbeat(Some(v))) if v == "v1"
        ));
        assert!(matches!(
            decode(br#"{"type":"heartbeat","version":null}"#),
            Ok(Line::Heartbeat(None))
        ));
        assert!(matches!(
            decode(br#"{"type":"drain","deadline":3}"#),
            Ok(Line::Unknown(t)) if t == "drain"
        ));
        assert!(decode(br#"{"type":"snapshot","config":{}}"#).is_err());
        assert!(decode(b"not json").is_err());
    }
}
