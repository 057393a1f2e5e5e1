//! Raw Streamable HTTP requests (reqwest), for what an SDK client will not send: replayed or
//! tampered session ids, dropped streams, malformed bodies.

use serde_json::{Value, json};

/// The `initialize` request body.
pub fn initialize_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
    .to_string()
}

/// POST one message with the usual MCP headers.
pub fn post(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    let mut r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body);
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    r
}

/// Initialize a session and send `notifications/initialized`; returns the session id.
pub async fn open_session(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<String> {
    let resp = post(http, url, Some(key), None, initialize_body("2025-06-18"))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "initialize: {}", resp.status());
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .ok_or_else(|| anyhow::anyhow!("no session id"))?
        .to_str()?
        .to_string();
    let _ = resp.text().await?;
    let done = post(
        http,
        url,
        Some(key),
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .send()
    .await?;
    anyhow::ensure!(done.status() == 202, "initialized: {}", done.status());
    Ok(sid)
}

/// The JSON-RPC messages in a response body (JSON or SSE).
pub fn messages(body: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return vec![v];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}
