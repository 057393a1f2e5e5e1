//! The HTTP client of one upstream McpServer: plain HTTP or HTTPS (system roots, or the CA
//! bundle from the McpServer's Secret), HTTP/1.1 or HTTP/2, with the server's timeouts.

use crate::state::SecretValues;
use bytes::Bytes;
use gatehouse_api::config::{ServerConfig, Upstream as UpstreamKind};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;

/// A configured upstream.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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
            client,
            uri,
            request_timeout: Duration::from_millis(server.request_timeout_ms),
            idle_timeout: Duration::from_millis(server.stream_idle_timeout_ms),
        })
    }

    /// Send a request (the caller applies the request timeout).
    pub fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.client.request(req)
    }
}

fn rustls_native_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "while loading system CA certificates");
    }
    found.certs
}
