//! The MCP client side: an `rmcp` client that answers sampling and elicitation requests and
//! records progress notifications, connected through the gateway with an API key.

#![allow(deprecated)] // Sampling is deprecated upstream (SEP-2577) but part of the 2025 revisions.

use rmcp::model::{
    ClientConfig, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ErrorData, ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A client that says "blue" to every elicitation, answers sampling with a canned summary,
/// and records progress notifications.
#[derive(Clone, Default)]
pub struct TestClient {
    /// Progress notifications received, in order.
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    /// Sampling requests received.
    pub sampled: Arc<Mutex<usize>>,
    /// Elicitation requests received.
    pub elicited: Arc<Mutex<usize>>,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        serde_json::from_value(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"sampling": {}, "elicitation": {"form": {}}},
            "clientInfo": {"name": "gatehouse-e2e", "version": "1.0.0"}
        }))
        .expect("client info")
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        *self.sampled.lock().unwrap() += 1;
        serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "a short summary"},
            "model": "test-model",
            "stopReason": "endTurn"
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        *self.elicited.lock().unwrap() += 1;
        serde_json::from_value(json!({"action": "accept", "content": {"answer": "blue"}}))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

/// A connected client.
pub type Client = RunningService<RoleClient, TestClient>;

/// The reqwest client used by MCP clients and raw requests (rustls with the ring provider).
pub fn http_client(root: Option<&[u8]>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder();
    if let Some(pem) = root {
        b = b.tls_certs_only([reqwest::Certificate::from_pem(pem).expect("CA PEM")]);
    }
    b.build().expect("reqwest client")
}

/// Connect through the gateway at `url` with `api_key` in `X-API-Key` (`None`: no key).
pub async fn connect(url: &str, api_key: Option<&str>) -> anyhow::Result<(Client, TestClient)> {
    connect_with(url, api_key, http_client(None)).await
}

/// [`connect`] with a given HTTP client (e.g. trusting a test CA).
pub async fn connect_with(
    url: &str,
    api_key: Option<&str>,
    http: reqwest::Client,
) -> anyhow::Result<(Client, TestClient)> {
    let mut headers = HashMap::new();
    if let Some(k) = api_key {
        headers.insert(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_str(k)?,
        );
    }
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers);
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let handler = TestClient::default();
    let client = handler.clone().serve(transport).await?;
    Ok((client, handler))
}

/// Connect through the gateway at `url` sending the given headers (e.g. `Authorization`).
pub async fn connect_headers(
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(Client, TestClient)> {
    let mut map = HashMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes())?,
            http::HeaderValue::from_str(v)?,
        );
    }
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(map);
    let transport = StreamableHttpClientTransport::with_client(http_client(None), config);
    let handler = TestClient::default();
    let client = handler.clone().serve(transport).await?;
    Ok((client, handler))
}

/// `tools/call` parameters from JSON (`{"name": …, "arguments": …, "_meta": …}`).
pub fn call(params: serde_json::Value) -> rmcp::model::CallToolRequestParams {
    serde_json::from_value(params).expect("CallToolRequestParams")
}

/// The text of a tool result's first content block.
pub fn text_of(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).expect("serializes");
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
