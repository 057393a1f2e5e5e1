//! Request routing and the read side of the resource API (get, list, watch set-up).
//! Writes live in [`crate::write`].

use crate::discovery;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{Event, ObjKey, State};
use crate::table;
use crate::write;
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// A parsed HTTP request, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path segments (percent-decoding is not needed for Kubernetes names).
    pub segments: Vec<String>,
    /// Query parameters (last value wins).
    pub query: HashMap<String, String>,
    /// `Content-Type` header.
    pub content_type: String,
    /// `Accept` header.
    pub accept: String,
    /// Body bytes.
    pub body: bytes::Bytes,
    /// `host:port` the server is reachable at.
    pub server_address: String,
}

impl Request {
    /// A query parameter.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// A JSON document.
    Json {
        /// HTTP status.
        code: u16,
        /// Body.
        body: Value,
        /// Content type (defaults to `application/json`).
        content_type: &'static str,
        /// `Warning` headers.
        warnings: Vec<String>,
    },
    /// Plain text (health endpoints).
    Text(u16, String),
    /// A watch stream.
    Watch(Box<WatchSpec>),
}

/// Everything a watch stream needs, captured atomically under the store lock.
#[derive(Debug)]
pub struct WatchSpec {
    /// Watched type.
    pub t: ResourceType,
    /// Requested version (apiVersion of emitted objects).
    pub version: String,
    /// Namespace filter.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Events to send first (synthetic ADDED, or replayed history).
    pub initial: Vec<Arc<Event>>,
    /// A 410 to send instead of events.
    pub expired: Option<Value>,
    /// Live events.
    pub rx: Option<broadcast::Receiver<Arc<Event>>>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// Current resourceVersion when the watch started (initial bookmark).
    pub start_rv: u64,
}

/// Builds a JSON reply.
pub fn json_reply(code: u16, body: Value) -> Reply {
    Reply::Json {
        code,
        body,
        content_type: "application/json",
        warnings: Vec::new(),
    }
}

/// The target of a resource request.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resource type.
    pub t: ResourceType,
    /// Requested version.
    pub version: String,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Name from the path.
    pub name: Option<String>,
    /// Subresource (`status`).
    pub sub: Option<String>,
}

impl Target {
    /// Storage key for `name` (or the path's name).
    pub fn key(&self, name: &str) -> ObjKey {
        ObjKey::new(
            &self.t.group,
            &self.t.plural,
            self.namespace.as_deref().unwrap_or(""),
            name,
        )
    }
}

/// Routes a request.
pub fn handle(st: &mut State, req: &Request) -> ApiResult<Reply> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let get = req.method == "GET";
    let agg = discovery::wants_aggregated(&req.accept);
    let aggregated = |body: Value| Reply::Json {
        code: 200,
        body,
        content_type: discovery::AGGREGATED_CONTENT_TYPE,
        warnings: Vec::new(),
    };
    match segs.as_slice() {
        ["version"] if get => Ok(json_reply(200, discovery::version())),
        ["healthz" | "livez" | "readyz"] if get => Ok(Reply::Text(200, "ok".into())),
        ["api"] if get && agg => Ok(aggregated(discovery::aggregated(&st.registry, true))),
        ["api"] if get => Ok(json_reply(
            200,
            discovery::core_versions(&req.server_address),
        )),
        ["apis"] if get && agg => Ok(aggregated(discovery::aggregated(&st.registry, false))),
        ["apis"] if get => Ok(json_reply(200, discovery::group_list(&st.registry))),
        ["api", "v1"] if get => discovery::resource_list(&st.registry, "", "v1")
            .map(|b| json_reply(200, b))
            .ok_or_else(ApiError::no_route),
        ["apis", g] if get => discovery::group(&st.registry, g)
            .map(|b| json_reply(200, b))
            .ok_or_else(ApiError::no_route),
        ["apis", g, v] if get => discovery::resource_list(&st.registry, g, v)
            .map(|b| json_reply(200, b))
            .ok_or_else(ApiError::no_route),
        ["openapi", "v3"] if get => Ok(json_reply(200, discovery::openapi_paths(&st.registry))),
        ["openapi", "v3", "api", "v1"] if get => {
            discovery::openapi_group_version(&st.registry, "", "v1")
                .map(|b| json_reply(200, b))
                .ok_or_else(ApiError::no_route)
        }
        ["openapi", "v3", "apis", g, v] if get => {
            discovery::openapi_group_version(&st.registry, g, v)
                .map(|b| json_reply(200, b))
                .ok_or_else(ApiError::no_route)
        }
        ["api", "v1", rest @ ..] => resource(st, req, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(st, req, g, v, rest),
        _ => Err(ApiError::no_route()),
    }
}

fn resource(
    st: &mut State,
    req: &Request,
    group: &str,
    version: &str,
    rest: &[&str],
) -> ApiResult<Reply> {
    let s = |x: &&str| x.to_string();
    let (ns, plural, name, sub) = match rest {
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(s(name)), Some(s(sub)))
        }
        ["namespaces", ns, plural] => (Some(s(ns)), *plural, None, None),
        ["namespaces", ns, plural, name] => (Some(s(ns)), *plural, Some(s(name)), None),
        ["namespaces", ns, plural, name, sub] => {
            (Some(s(ns)), *plural, Some(s(name)), Some(s(sub)))
        }
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(s(name)), None),
        [plural, name, sub] => (None, *plural, Some(s(name)), Some(s(sub))),
        _ => return Err(ApiError::no_route()),
    };
    let t = st
        .registry
        .get(group, plural)
        .filter(|t| t.serves(version))
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    if (!t.namespaced && ns.is_some()) || (t.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = &sub
        && !(sub == "status" && t.has_status)
    {
        return Err(ApiError::no_route());
    }
    let target = Target {
        t,
        version: version.to_string(),
        namespace: ns,
        name,
        sub,
    };
    let m = req.method.as_str();
    if target.t.create_only && m != "POST" {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        )));
    }
    match (m, target.name.is_some()) {
        ("GET", true) => get(st, req, &target),
        ("GET", false) if matches!(req.q("watch"), Some("true" | "1")) => watch(st, req, &target),
        ("GET", false) => list(st, req, &target),
        ("POST", false) => write::create(st, req, &target),
        ("PUT", true) => write::update(st, req, &target),
        ("PATCH", true) => write::patch(st, req, &target),
        ("DELETE", true) => write::delete(st, req, &target),
        ("DELETE", false) => write::delete_collection(st, req, &target),
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// Returns the object as the requested version (no conversion: only `apiVersion` changes).
pub fn as_version(t: &ResourceType, version: &str, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(t.api_version(version));
    o
}

fn wants_table(req: &Request) -> bool {
    req.accept.contains("as=Table")
}

fn get(st: &State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let name = tgt.name.as_deref().unwrap_or("");
    let obj = st
        .get(&tgt.key(name))
        .ok_or_else(|| ApiError::not_found(&tgt.t.group, &tgt.t.plural, name))?;
    let obj = as_version(&tgt.t, &tgt.version, obj);
    if wants_table(req) {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        let include = req.q("includeObject").unwrap_or("Metadata");
        return Ok(json_reply(
            200,
            table::table(&tgt.t, &tgt.version, &[obj], meta, include),
        ));
    }
    Ok(json_reply(200, obj))
}

fn selectors(req: &Request, t: &ResourceType) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or(""))?;
    fields.check_supported(t.crd.is_some(), &t.kind)?;
    Ok((labels, fields))
}

/// Lists matching objects of a target (used by list and deletecollection).
pub fn matching(st: &State, req: &Request, tgt: &Target) -> ApiResult<Vec<(ObjKey, Value)>> {
    let (labels, fields) = selectors(req, &tgt.t)?;
    Ok(st
        .list(&tgt.t.group, &tgt.t.plural, tgt.namespace.as_deref())
        .filter(|(_, o)| labels.matches(o) && fields.matches(o))
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect())
}

fn list(st: &State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let mut items = matching(st, req, tgt)?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if let Some(token) = req.q("continue") {
        let decoded = b64
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
        let ns = decoded["ns"].as_str().unwrap_or("");
        let name = decoded["name"].as_str().unwrap_or("");
        items.retain(|(k, _)| (k.namespace.as_str(), k.name.as_str()) > (ns, name));
    }
    let mut meta = json!({"resourceVersion": st.resource_version().to_string()});
    if let Some(limit) = req
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let (last, _) = items.last().expect("limit > 0");
        let token = json!({"ns": last.namespace, "name": last.name, "rv": st.resource_version()});
        meta["continue"] = json!(b64.encode(token.to_string()));
        meta["remainingItemCount"] = json!(remaining);
    }
    let objects: Vec<Value> = items
        .into_iter()
        .map(|(_, o)| as_version(&tgt.t, &tgt.version, &o))
        .collect();
    if wants_table(req) {
        let include = req.q("includeObject").unwrap_or("Metadata");
        return Ok(json_reply(
            200,
            table::table(&tgt.t, &tgt.version, &objects, meta, include),
        ));
    }
    Ok(json_reply(
        200,
        json!({"kind": tgt.t.list_kind, "apiVersion": tgt.t.api_version(&tgt.version),
            "metadata": meta, "items": objects}),
    ))
}

fn watch(st: &State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let (labels, fields) = selectors(req, &tgt.t)?;
    let rv = req.q("resourceVersion").unwrap_or("0");
    let mut spec = WatchSpec {
        t: tgt.t.clone(),
        version: tgt.version.clone(),
        namespace: tgt.namespace.clone(),
        labels,
        fields,
        initial: Vec::new(),
        expired: None,
        rx: None,
        bookmarks: matches!(req.q("allowWatchBookmarks"), Some("true" | "1")),
        timeout: req
            .q("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs),
        start_rv: st.resource_version(),
    };
    if rv == "0" {
        // "Any" resourceVersion: synthetic ADDED for the current state, then live events.
        spec.rx = Some(st.live());
        spec.initial = st
            .list(&tgt.t.group, &tgt.t.plural, tgt.namespace.as_deref())
            .map(|(k, o)| {
                Arc::new(Event {
                    rv: st.resource_version(),
                    kind: crate::store::EventType::Added,
                    key: k.clone(),
                    object: o.clone(),
                    old: None,
                })
            })
            .collect();
        return Ok(Reply::Watch(Box::new(spec)));
    }
    let from: u64 = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
    match st.subscribe(from) {
        Ok((replay, rx)) => {
            spec.initial = replay;
            spec.rx = Some(rx);
        }
        Err(floor) => {
            spec.expired = Some(
                ApiError::gone(format!("too old resource version: {from} ({floor})")).to_status(),
            );
        }
    }
    Ok(Reply::Watch(Box::new(spec)))
}
