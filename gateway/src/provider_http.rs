//! The HTTP client the gateway uses to talk to identity providers (OIDC discovery, JWKS) and
//! OAuth token endpoints. HTTPS with the system roots (plain HTTP only where the CRD allows it:
//! localhost), bounded response size and time.

use crate::authn::jwt::JsonFetcher;
use crate::credentials::oauth2::TokenEndpoint;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted response (discovery documents, JWKS, token responses are small).
const MAX_RESPONSE: usize = 1024 * 1024;
/// Time allowed for one call.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A shared client for identity providers and token endpoints.
#[derive(Clone)]
pub struct ProviderHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ProviderHttp {
    /// A client trusting the system's CA roots.
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(outbound_connector(true, None)),
        }
    }

    async fn call(&self, req: http::Request<Full<Bytes>>) -> Result<(u16, Value), String> {
        let url = req.uri().to_string();
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| format!("{url} did not answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(
            TIMEOUT,
            Limited::new(resp.into_body(), MAX_RESPONSE).collect(),
        )
        .await
        .map_err(|_| format!("{url}: response body timed out"))?
        .map_err(|e| format!("{url}: response body: {e}"))?
        .to_bytes();
        let json = serde_json::from_slice(&body)
            .map_err(|_| format!("{url} answered HTTP {status} with a body that is not JSON"))?;
        Ok((status, json))
    }
}

/// An outbound connector trusting the system's CA roots (plain http stays possible: callers
/// only reach http URLs the configuration allows), with a 5 s connect timeout. Shared by every
/// outbound client that is not an upstream MCP server (those may carry their own CA bundle).
pub fn outbound_connector(
    all_versions: bool,
    keepalive: Option<Duration>,
) -> HttpsConnector<HttpConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_keepalive(keepalive);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if all_versions {
        builder.enable_all_versions().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    }
}

impl JsonFetcher for ProviderHttp {
    fn get_json(&self, url: &str) -> BoxFuture<'static, Result<Value, String>> {
        let this = self.clone();
        let url = url.to_string();
        Box::pin(async move {
            let req = http::Request::get(&url)
                .header(http::header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| format!("{url}: {e}"))?;
            match this.call(req).await? {
                (200, v) => Ok(v),
                (status, _) => Err(format!("{url} answered HTTP {status}")),
            }
        })
    }
}

impl TokenEndpoint for ProviderHttp {
    fn post_form(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        form: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(u16, Value), String>> {
        let this = self.clone();
        let url = url.to_string();
        Box::pin(async move {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter())
                .finish();
            let mut req = http::Request::post(&url).header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| format!("{url}: {e}"))?;
            this.call(req).await
        })
    }
}
