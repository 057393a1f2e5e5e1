//! The demo server's tools, resources and prompts.
//!
//! Results are written as JSON and decoded into the SDK's types, so what goes on the wire is
//! exactly what a reader sees here.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    CreateMessageRequestParams, ElicitRequestParams, ErrorData, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, SamplingMessage,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// The demo MCP server (one instance per session).
#[derive(Clone, Default)]
pub struct Demo;

/// Headers worth logging: every header, with credential values reduced to their scheme so the
/// log proves what arrived without printing it.
pub fn visible_headers(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            let v = v.to_str().unwrap_or("<binary>");
            let shown = match k.as_str() {
                "authorization" | "cookie" | "x-api-key" | "x-agent-authorization" => {
                    format!("{} <{} bytes>", v.split(' ').next().unwrap_or(""), v.len())
                }
                _ => v.to_string(),
            };
            (k.to_string(), shown)
        })
        .collect()
}

fn from_json<T: DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn text(s: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(s.into())]).into())
}

fn arg<'a>(req: &'a CallToolRequestParams, name: &str) -> Option<&'a Value> {
    req.arguments.as_ref().and_then(|a| a.get(name))
}

fn header(ctx: &RequestContext<RoleServer>, name: &str) -> Option<String> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get(name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_instructions("Gatehouse demo server: echo, add, whoami and friends.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let obj = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
        from_json(json!({"tools": [
            {"name": "echo", "description": "Echo the text back",
             "inputSchema": obj(json!({"text": {"type": "string"}}), json!(["text"]))},
            {"name": "add", "description": "Add two numbers",
             "inputSchema": obj(json!({"a": {"type": "number"}, "b": {"type": "number"}}), json!(["a", "b"]))},
            {"name": "whoami", "description": "Show the Authorization header this server received",
             "inputSchema": obj(json!({}), json!([]))},
            {"name": "admin_reset", "description": "Pretend to reset everything (admins only)",
             "inputSchema": obj(json!({}), json!([]))},
            {"name": "slow_count", "description": "Count to n, one progress notification per step",
             "inputSchema": obj(json!({"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}), json!([]))},
            {"name": "ask_user", "description": "Ask the user a question (elicitation)",
             "inputSchema": obj(json!({"question": {"type": "string"}}), json!([]))},
            {"name": "summarize", "description": "Ask the client's model to summarize (sampling)",
             "inputSchema": obj(json!({"text": {"type": "string"}}), json!(["text"]))},
        ]}))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        tracing::info!(tool = %request.name, arguments = ?request.arguments, "tools/call");
        match request.name.as_ref() {
            "echo" => text(
                arg(&request, "text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            "add" => {
                let n = |k| arg(&request, k).and_then(Value::as_f64).unwrap_or(0.0);
                text((n("a") + n("b")).to_string())
            }
            "whoami" => {
                let auth = header(&context, "authorization").unwrap_or_else(|| "<none>".into());
                let api_key = header(&context, "x-api-key").unwrap_or_else(|| "<none>".into());
                let cookie = header(&context, "cookie").unwrap_or_else(|| "<none>".into());
                let agent =
                    header(&context, "x-agent-authorization").unwrap_or_else(|| "<none>".into());
                text(
                    json!({"authorization": auth, "x-api-key": api_key, "cookie": cookie, "x-agent-authorization": agent})
                        .to_string(),
                )
            }
            "admin_reset" => text("reset done"),
            "slow_count" => {
                let n = arg(&request, "n").and_then(Value::as_u64).unwrap_or(3);
                let delay = arg(&request, "delay_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(200);
                let token = context.meta.get_progress_token();
                for i in 1..=n {
                    if let Some(token) = &token {
                        let p = ProgressNotificationParam::new(token.clone(), i as f64)
                            .with_total(n as f64)
                            .with_message(format!("step {i} of {n}"));
                        if context.peer.notify_progress(p).await.is_err() {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                text(format!("counted to {n}"))
            }
            "ask_user" => {
                let question = arg(&request, "question")
                    .and_then(Value::as_str)
                    .unwrap_or("What is your favourite colour?");
                let params: ElicitRequestParams = from_json(json!({
                    "mode": "form",
                    "message": question,
                    "requestedSchema": {"type": "object",
                        "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
                }))?;
                let result = context
                    .peer
                    .create_elicitation(params)
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let out = serde_json::to_value(&result).unwrap_or_default();
                text(format!("user answered: {out}"))
            }
            "summarize" => {
                let t = arg(&request, "text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let params = CreateMessageRequestParams::new(
                    vec![SamplingMessage::user_text(format!("Summarize: {t}"))],
                    100,
                );
                #[allow(deprecated)]
                let result = context
                    .peer
                    .create_message(params)
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let out = serde_json::to_value(&result).unwrap_or_default();
                text(format!(
                    "model said: {}",
                    out["content"]["text"].as_str().unwrap_or("?")
                ))
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        from_json(json!({"resources": [
            {"uri": "demo://readme", "name": "readme", "mimeType": "text/plain"},
            {"uri": "demo://secret-plans", "name": "secret-plans", "mimeType": "text/plain"},
        ]}))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        from_json(json!({"resourceTemplates": [
            {"uriTemplate": "demo://items/{id}", "name": "item", "mimeType": "text/plain"},
        ]}))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let body = match uri {
            "demo://readme" => "This is the Gatehouse demo server.".to_string(),
            "demo://secret-plans" => "world domination, step 1".to_string(),
            u if u.starts_with("demo://items/") => format!("item {}", &u["demo://items/".len()..]),
            _ => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource {uri}"),
                    None,
                ));
            }
        };
        let r: ReadResourceResult = from_json(json!({"contents": [
            {"uri": uri, "mimeType": "text/plain", "text": body}
        ]}))?;
        Ok(r.into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        from_json(json!({"prompts": [
            {"name": "greeting", "description": "Greet someone",
             "arguments": [{"name": "name", "required": true}]},
        ]}))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greeting" {
            return Err(ErrorData::invalid_params(
                format!("no prompt {:?}", request.name),
                None,
            ));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("world")
            .to_string();
        let r: GetPromptResult = from_json(json!({"description": "A greeting", "messages": [
            {"role": "user", "content": {"type": "text", "text": format!("Say hello to {name}")}}
        ]}))?;
        Ok(r.into())
    }
}
