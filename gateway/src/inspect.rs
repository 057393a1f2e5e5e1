//! Inspection: what a client message is (request, notification or response), its method and
//! id, and the tool, resource or prompt it targets with its arguments.
//!
//! Batches: JSON-RPC batches were removed from MCP in revision 2025-06-18; for those revisions
//! (and later) a batch gets a JSON-RPC error. Under 2025-03-26, where batches are allowed, this
//! gateway refuses them explicitly too — authorizing and relaying each member as one upstream
//! call would change the batch's semantics — and says so in the error.

use crate::error::GatewayError;
use gatehouse_api::policy::Operation;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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
    /// `params.arguments` (tool or prompt arguments) as sent, for policy conditions.
    pub arguments: Option<Box<RawValue>>,
}

impl ClientMessage {
    /// Tool or prompt arguments.
    pub fn arguments(&self) -> Option<&RawValue> {
        self.arguments.as_deref()
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

/// The members of a JSON-RPC message the gateway reads, borrowed from the body in one pass:
/// nothing is built for the rest (a `tools/call`'s arguments stay JSON text until a policy
/// condition reads them). A member given twice is refused: the gateway and the upstream must
/// not read different ones.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// The `params` members the gateway reads. Only an object has members: `params` of any other
/// JSON type reads as none (a struct would also take an array, by position).
#[derive(Default)]
struct Params<'a> {
    name: Option<&'a RawValue>,
    uri: Option<&'a RawValue>,
    arguments: Option<&'a RawValue>,
    /// A member given twice, refused once the method is known (the error names it).
    duplicate: Option<&'static str>,
}

/// The `params` member names the gateway reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum ParamsMember {
    Name,
    Uri,
    Arguments,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor(std::marker::PhantomData))
    }
}

struct ParamsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ParamsVisitor<'a> {
    type Value = Params<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON-RPC params")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'a>, A::Error> {
        let mut p = Params::default();
        while let Some(member) = map.next_key()? {
            let (slot, name) = match member {
                ParamsMember::Name => (&mut p.name, "name"),
                ParamsMember::Uri => (&mut p.uri, "uri"),
                ParamsMember::Arguments => (&mut p.arguments, "arguments"),
                ParamsMember::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value()?;
            if slot.replace(value).is_some() {
                p.duplicate.get_or_insert(name);
            }
        }
        Ok(p)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Params::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Params<'a>, E> {
        Ok(Params::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Params<'a>, E> {
        Ok(Params::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Params<'a>, E> {
        Ok(Params::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Params<'a>, E> {
        Ok(Params::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Params<'a>, E> {
        Ok(Params::default())
    }

    fn visit_unit<E>(self) -> Result<Params<'a>, E> {
        Ok(Params::default())
    }
}

/// A member that is present, `null` included (`Option` alone would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A JSON string's value; `None` for any other JSON.
fn as_string(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    // A valid JSON string (serde_json checked it) without escapes is its own text.
    if !text.contains('\\') {
        return Some(text[1..text.len() - 1].to_string());
    }
    serde_json::from_str(text).ok()
}

/// A JSON-RPC id: `None` for `null`; strings and integers read without building a tree first.
fn parse_id(raw: &RawValue) -> Result<Option<Value>, GatewayError> {
    let text = raw.get();
    if let Some(s) = as_string(raw) {
        return Ok(Some(Value::String(s)));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Some(n.into()));
        }
    } else if let Some(digits) = text.strip_prefix('-')
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = text.parse::<i64>()
    {
        return Ok(Some(n.into()));
    }
    let id: Value = serde_json::from_str(text).map_err(|e| GatewayError::Parse(e.to_string()))?;
    Ok((!id.is_null()).then_some(id))
}

/// Parse the body of a POST. `header_version` is the `MCP-Protocol-Version` header.
pub fn parse(body: &[u8], header_version: Option<&str>) -> Result<ClientMessage, GatewayError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        // Batches and non-objects are refused; parsed whole only to say why.
        _ => return Err(not_an_object(body, header_version)),
    }
    // Checked as UTF-8 once, whole: parsed from bytes, serde_json would check every string
    // and every raw value it lends on its own (JSON text is UTF-8 either way, RFC 8259 §8.1).
    let text = std::str::from_utf8(body).map_err(|e| {
        GatewayError::Parse(format!(
            "the body is not UTF-8 (byte {} is not)",
            e.valid_up_to()
        ))
    })?;
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => GatewayError::InvalidRequest {
            id: None,
            message: format!("not a valid JSON-RPC message: {e}"),
        },
        _ => GatewayError::Parse(e.to_string()),
    })?;
    let id = match envelope.id {
        None => None,
        Some(raw) => parse_id(raw)?,
    };
    if envelope.jsonrpc.and_then(as_string).as_deref() != Some("2.0") {
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
    let (kind, method) = match envelope.method.map(as_string) {
        Some(Some(m)) if id.is_some() => (Kind::Request, m),
        Some(Some(m)) => (Kind::Notification, m),
        Some(None) => {
            return Err(GatewayError::InvalidRequest {
                id,
                message: "\"method\" must be a string".into(),
            });
        }
        None if id.is_some() && (envelope.result.is_some() || envelope.error.is_some()) => {
            (Kind::Response, "response".to_string())
        }
        None => {
            return Err(GatewayError::InvalidRequest {
                id,
                message: "a JSON-RPC message needs a \"method\" (request or notification) or a \"result\"/\"error\" (response)".into(),
            });
        }
    };
    let params = envelope.params.unwrap_or_default();
    if let Some(member) = params.duplicate {
        return Err(GatewayError::InvalidParams {
            id,
            message: format!("{method}: params: duplicate field `{member}`"),
        });
    }
    let required = |raw: Option<&RawValue>, name: &str| {
        raw.and_then(as_string)
            .ok_or_else(|| GatewayError::InvalidParams {
                id: id.clone(),
                message: format!("{method}: params.{name} must be a string"),
            })
    };
    let (mut tool, mut resource, mut prompt) = (None, None, None);
    if kind == Kind::Request {
        match method.as_str() {
            "tools/call" => tool = Some(required(params.name, "name")?),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                resource = Some(required(params.uri, "uri")?)
            }
            "prompts/get" => prompt = Some(required(params.name, "name")?),
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
        arguments: params.arguments.map(RawValue::to_owned),
    })
}

/// Why a body that is not one JSON object is refused: a batch (with the revision's rule), any
/// other JSON, or no JSON at all.
fn not_an_object(body: &[u8], header_version: Option<&str>) -> GatewayError {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return GatewayError::Parse(e.to_string()),
    };
    let Value::Array(items) = &value else {
        return GatewayError::InvalidRequest {
            id: None,
            message: "a JSON-RPC message must be a JSON object".into(),
        };
    };
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
    GatewayError::InvalidRequest { id: None, message }
}

/// The message in `body` with `params.name` replaced by `name` (a prefixed tool's own name).
pub fn rename_tool(body: &[u8], name: &str) -> Result<Vec<u8>, GatewayError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::Parse(e.to_string()))?;
    value["params"]["name"] = Value::String(name.to_string());
    serde_json::to_vec(&value).map_err(|e| GatewayError::Parse(e.to_string()))
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
        assert_eq!(m.arguments().unwrap().get(), r#"{"text":"hi"}"#);
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
    fn a_body_that_is_not_utf8_is_a_parse_error_and_non_ascii_names_read_whole() {
        let m = parse(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ünï€\"}}"
                .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(m.tool.as_deref(), Some("ünï€"));
        // Invalid UTF-8 inside a string, and outside one.
        for body in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"e\xffcho\"}}"[..],
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\xc3",
        ] {
            assert!(
                matches!(parse(body, None), Err(GatewayError::Parse(_))),
                "{body:?}"
            );
        }
    }

    /// A member given twice could be read one way here and the other way upstream (first
    /// wins in some parsers, last in others): such a message is refused, not guessed.
    #[test]
    fn duplicate_members_are_refused() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"echo"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","name":"echo"}}"#,
        ] {
            let e = parse(body, None).unwrap_err();
            assert!(e.to_string().contains("duplicate field"), "{e}");
        }
    }

    #[test]
    fn edge_shapes_read_as_before() {
        // params as an array has no members (not read by position).
        assert!(matches!(
            parse(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}"#,
                None
            ),
            Err(GatewayError::InvalidParams { .. })
        ));
        // A null method is not a string; a null result still makes a response; a null id is
        // no id; null arguments are null arguments.
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":null}"#, None),
            Err(GatewayError::InvalidRequest { .. })
        ));
        let r = parse(br#"{"jsonrpc":"2.0","id":"s1","result":null}"#, None).unwrap();
        assert_eq!(r.kind, Kind::Response);
        let n = parse(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, None).unwrap();
        assert_eq!((n.kind, n.id), (Kind::Notification, None));
        let a = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e\u0063ho","arguments":null}}"#,
            None,
        )
        .unwrap();
        assert_eq!(a.tool.as_deref(), Some("echo"), "escapes are decoded");
        let u = parse(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"naïve_€"}}"#
                .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(u.tool.as_deref(), Some("naïve_€"), "non-ASCII as sent");
        assert_eq!(a.arguments().map(RawValue::get), Some("null"));
        assert!(matches!(
            parse(br#""just a string""#, None),
            Err(GatewayError::InvalidRequest { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, None),
            Err(GatewayError::InvalidRequest { .. })
        ));
    }

    /// `params` of any JSON type is read in the same pass as the envelope; only an object's
    /// own members count (not members nested in its arguments, not array positions).
    #[test]
    fn params_of_every_shape() {
        for params in ["\"echo\"", "7", "-1.5", "true", "null", "[\"echo\",{}]"] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            assert!(
                matches!(
                    parse(body.as_bytes(), None),
                    Err(GatewayError::InvalidParams { .. })
                ),
                "params {params}"
            );
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{params}}}"#);
            assert_eq!(
                parse(body.as_bytes(), None).unwrap().method,
                "ping",
                "params {params}"
            );
        }
        let m = parse(
            br#"{"params":{"arguments":{"name":"admin_reset","uri":"x"},"_meta":{"name":"n"},"name":"echo"},"method":"tools/call","id":1,"jsonrpc":"2.0"}"#,
            None,
        )
        .unwrap();
        assert_eq!(m.tool.as_deref(), Some("echo"));
        assert_eq!(
            m.arguments().map(RawValue::get),
            Some(r#"{"name":"admin_reset","uri":"x"}"#)
        );
        let e = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"arguments":{"x":1}}}"#,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&e, GatewayError::InvalidParams { id: Some(_), .. }),
            "{e}"
        );
        assert!(e.to_string().contains("duplicate field `arguments`"), "{e}");
    }

    /// Ids keep their JSON type and value; anything but a string or an integer is refused.
    #[test]
    fn ids() {
        for (id, want) in [
            ("0", serde_json::json!(0)),
            ("-0", serde_json::json!(0)),
            ("-42", serde_json::json!(-42)),
            ("18446744073709551615", serde_json::json!(u64::MAX)),
            ("-9223372036854775808", serde_json::json!(i64::MIN)),
            (r#""a\"b""#, serde_json::json!("a\"b")),
            (r#""""#, serde_json::json!("")),
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(
                parse(body.as_bytes(), None).unwrap().id,
                Some(want),
                "id {id}"
            );
        }
        for id in [
            "1.0",
            "1e2",
            "18446744073709551616",
            "-9223372036854775809",
            "{}",
            "[1]",
            "true",
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert!(
                matches!(
                    parse(body.as_bytes(), None),
                    Err(GatewayError::InvalidRequest { .. })
                ),
                "id {id}"
            );
        }
    }

    #[test]
    fn a_prefixed_tool_is_renamed_in_place() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"gh_echo","arguments":{"x":[1,"y"]}}}"#;
        let renamed: Value = serde_json::from_slice(&rename_tool(body, "echo").unwrap()).unwrap();
        let mut want: Value = serde_json::from_slice(body).unwrap();
        want["params"]["name"] = "echo".into();
        assert_eq!(renamed, want);
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
