//! Inspection: what a client message is (request, notification or response), its method and
//! id, and the tool, resource or prompt it targets with its arguments.
//!
//! Batches: JSON-RPC batches were removed from MCP in revision 2025-06-18; for those revisions
//! (and later) a batch gets a JSON-RPC error. Under 2025-03-26, where batches are allowed, this
//! gateway refuses them explicitly too — authorizing and relaying each member as one upstream
//! call would change the batch's semantics — and says so in the error.

use crate::error::GatewayError;
use gatehouse_api::policy::Operation;
use serde_json::Value;

/// The revision assumed when a client sends no `MCP-Protocol-Version` (as the spec says).
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-03-26";

/// Kinds of client messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// A reply to a server→client request (sampling, elicitation, roots).
    Response,
}

/// One inspected client message.
#[derive(Clone, Debug)]
pub struct ClientMessage {
    /// Request, notification or response.
    pub kind: Kind,
    /// JSON-RPC method; `response` for responses.
    pub method: String,
    /// JSON-RPC id (requests and responses).
    pub id: Option<Value>,
    /// `tools/call` tool name, as the client sent it (possibly prefixed).
    pub tool: Option<String>,
    /// Resource URI of `resources/read|subscribe|unsubscribe`.
    pub resource: Option<String>,
    /// `prompts/get` prompt name.
    pub prompt: Option<String>,
    /// The whole message.
    pub value: Value,
}

impl ClientMessage {
    /// Tool or prompt arguments.
    pub fn arguments(&self) -> Option<&Value> {
        self.value.get("params")?.get("arguments")
    }

    /// The policy operation, with `tool` being the server's own name for the tool.
    pub fn operation<'a>(&'a self, tool: Option<&'a str>) -> Operation<'a> {
        match (self.method.as_str(), tool, &self.resource, &self.prompt) {
            ("tools/call", Some(name), _, _) => Operation::Tool { name },
            (
                m @ ("resources/read" | "resources/subscribe" | "resources/unsubscribe"),
                _,
                Some(uri),
                _,
            ) => Operation::Resource { method: m, uri },
            ("prompts/get", _, _, Some(name)) => Operation::Prompt { name },
            (m, _, _, _) => Operation::Server { method: m },
        }
    }
}

/// Parse the body of a POST. `header_version` is the `MCP-Protocol-Version` header.
pub fn parse(body: &[u8], header_version: Option<&str>) -> Result<ClientMessage, GatewayError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::Parse(e.to_string()))?;
    if let Value::Array(items) = &value {
        let version = header_version.unwrap_or_else(|| {
            // An initialize inside the batch names the revision the client wants.
            items
                .iter()
                .find_map(|m| m.pointer("/params/protocolVersion").and_then(Value::as_str))
                .unwrap_or(DEFAULT_PROTOCOL_VERSION)
        });
        let message = if items.is_empty() {
            "an empty JSON-RPC batch is not a valid request".to_string()
        } else if version >= "2025-06-18" {
            format!(
                "JSON-RPC batches are not allowed in MCP protocol revision {version}; send one message per request"
            )
        } else {
            format!(
                "JSON-RPC batches are not supported by this gateway (protocol revision {version}); send one message per request"
            )
        };
        return Err(GatewayError::InvalidRequest { id: None, message });
    }
    let Some(obj) = value.as_object() else {
        return Err(GatewayError::InvalidRequest {
            id: None,
            message: "a JSON-RPC message must be a JSON object".into(),
        });
    };
    let id = obj.get("id").cloned().filter(|v| !v.is_null());
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(GatewayError::InvalidRequest {
            id,
            message: "not a JSON-RPC 2.0 message (\"jsonrpc\": \"2.0\" is missing)".into(),
        });
    }
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err(GatewayError::InvalidRequest {
            id: None,
            message: "a JSON-RPC id must be a string or an integer".into(),
        });
    }
    let (kind, method) = match obj.get("method") {
        Some(Value::String(m)) if id.is_some() => (Kind::Request, m.clone()),
        Some(Value::String(m)) => (Kind::Notification, m.clone()),
        Some(_) => {
            return Err(GatewayError::InvalidRequest {
                id,
                message: "\"method\" must be a string".into(),
            });
        }
        None if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            (Kind::Response, "response".to_string())
        }
        None => {
            return Err(GatewayError::InvalidRequest {
                id,
                message: "a JSON-RPC message needs a \"method\" (request or notification) or a \"result\"/\"error\" (response)".into(),
            });
        }
    };
    let params = obj.get("params");
    let str_param = |name: &str| params.and_then(|p| p.get(name)).and_then(Value::as_str);
    let required = |name: &str| {
        str_param(name)
            .map(str::to_string)
            .ok_or_else(|| GatewayError::InvalidParams {
                id: id.clone(),
                message: format!("{method}: params.{name} must be a string"),
            })
    };
    let (mut tool, mut resource, mut prompt) = (None, None, None);
    if kind == Kind::Request {
        match method.as_str() {
            "tools/call" => tool = Some(required("name")?),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                resource = Some(required("uri")?)
            }
            "prompts/get" => prompt = Some(required("name")?),
            _ => {}
        }
    }
    Ok(ClientMessage {
        kind,
        method,
        id,
        tool,
        resource,
        prompt,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_notification_response_and_targets() {
        let m = parse(
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
            None,
        )
        .unwrap();
        assert_eq!((m.kind, m.tool.as_deref()), (Kind::Request, Some("echo")));
        assert_eq!(m.arguments().unwrap()["text"], "hi");
        let n = parse(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            None,
        )
        .unwrap();
        assert_eq!(n.kind, Kind::Notification);
        let r = parse(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#, None).unwrap();
        assert_eq!((r.kind, r.method.as_str()), (Kind::Response, "response"));
        let rr = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"demo://x"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(rr.resource.as_deref(), Some("demo://x"));
    }

    #[test]
    fn batches_and_garbage_are_refused_with_reasons() {
        let e = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            Some("2025-06-18"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("not allowed in MCP protocol revision 2025-06-18"),
            "{e}"
        );
        let e = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, None).unwrap_err();
        assert!(
            e.to_string().contains("not supported by this gateway"),
            "{e}"
        );
        assert!(matches!(parse(b"{nope", None), Err(GatewayError::Parse(_))));
        assert!(matches!(
            parse(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                None
            ),
            Err(GatewayError::InvalidParams { .. })
        ));
        assert!(matches!(
            parse(br#"{"id":1,"method":"x"}"#, None),
            Err(GatewayError::InvalidRequest { .. })
        ));
    }
}
