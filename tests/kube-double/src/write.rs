//! The write side of the resource API: create, update, patch, server-side apply, delete.
//!
//! Every write goes through [`commit`], which keeps server-owned metadata, separates spec and
//! status for types with a status subresource, bumps `metadata.generation` on non-metadata,
//! non-status changes, fills kind-specific defaults, validates, and stores.

use crate::api::{Reply, Request, Target, as_version, json_reply, matching};
use crate::apply::server_side_apply;
use crate::builtins;
use crate::cel_rules;
use crate::patch;
use crate::status::{ApiError, ApiResult, success_status};
use crate::store::State;
use crate::validation;
use serde_json::{Value, json};

fn parse_body(req: &Request) -> ApiResult<Value> {
    if req.content_type.contains("protobuf") || req.content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(&req.content_type));
    }
    let v: Value = if req.content_type.contains("yaml") {
        serde_yaml::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

fn dry_run(req: &Request) -> bool {
    req.query.get("dryRun").is_some_and(|d| d == "All")
}

fn field_validation(req: &Request) -> &str {
    req.q("fieldValidation").unwrap_or("Warn")
}

/// Removes fields that only the server sets.
fn strip_status_if_needed(tgt: &Target, obj: &mut Value, old: Option<&Value>) {
    if !tgt.t.has_status || tgt.t.plural == "namespaces" && tgt.t.group.is_empty() {
        return;
    }
    let m = obj.as_object_mut().expect("object");
    match old.and_then(|o| o.get("status")) {
        Some(s) => {
            m.insert("status".into(), s.clone());
        }
        None => {
            m.remove("status");
        }
    }
}

fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Validates the object; returns warnings (pruned unknown fields under `Warn`).
fn validate(
    st: &mut State,
    req: &Request,
    tgt: &Target,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<Vec<String>> {
    builtins::validate_builtin(&tgt.t.group, &tgt.t.plural, obj)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(ApiError::invalid(
            &tgt.t.kind,
            &tgt.t.group,
            "",
            vec![crate::status::Cause {
                reason: "FieldValueRequired",
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            }],
        ));
    }
    let Some(crd) = &tgt.t.crd else {
        return Ok(Vec::new());
    };
    let Some(schema) = crd.schemas.get(&tgt.version).cloned() else {
        return Ok(Vec::new());
    };
    let report = validation::validate_structure(obj, &schema);
    let mut causes = report.causes;
    if causes.is_empty() {
        let mut skipped = std::mem::take(&mut st.skipped_rules);
        cel_rules::evaluate(&crd.crd_name, obj, old, &schema, &mut causes, &mut skipped);
        st.skipped_rules = skipped;
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&tgt.t.kind, &tgt.t.group, &name, causes));
    }
    let unknown: Vec<String> = report
        .unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    match field_validation(req) {
        "Strict" => Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = tgt.t.kind,
            v = tgt.version
        ))),
        "Ignore" => Ok(Vec::new()),
        _ => Ok(unknown),
    }
}

/// Common tail of every write: server metadata, spec/status split, generation, defaults,
/// validation and storage. `old` is None for creates.
fn commit(
    st: &mut State,
    req: &Request,
    tgt: &Target,
    mut obj: Value,
    old: Option<Value>,
) -> ApiResult<Reply> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    obj["apiVersion"] = json!(tgt.t.api_version(&tgt.version));
    obj["kind"] = json!(tgt.t.kind);
    if tgt.t.namespaced {
        obj["metadata"]["namespace"] = json!(tgt.namespace.clone().unwrap_or_default());
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let is_status = tgt.sub.as_deref() == Some("status");
    match &old {
        None => {
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                obj["metadata"].as_object_mut().expect("metadata").remove(f);
            }
            obj["metadata"]["generation"] = json!(1);
            strip_status_if_needed(tgt, &mut obj, None);
        }
        Some(old) => {
            let sent_rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !sent_rv.is_empty()
                && sent_rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("")
            {
                return Err(ApiError::conflict(&tgt.t.group, &tgt.t.plural, &name));
            }
            if is_status {
                let mut merged = old.clone();
                match obj.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        merged.as_object_mut().expect("object").remove("status");
                    }
                }
                obj = merged;
            } else {
                strip_status_if_needed(tgt, &mut obj, Some(old));
                let meta = &old["metadata"];
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match meta.get(f) {
                        Some(v) => obj["metadata"][f] = v.clone(),
                        None => {
                            obj["metadata"].as_object_mut().expect("metadata").remove(f);
                        }
                    }
                }
                if obj["metadata"]["managedFields"].is_null() && !meta["managedFields"].is_null() {
                    obj["metadata"]["managedFields"] = meta["managedFields"].clone();
                }
                if spec_part(&obj) != spec_part(old) {
                    let g = meta["generation"].as_i64().unwrap_or(1) + 1;
                    obj["metadata"]["generation"] = json!(g);
                }
            }
        }
    }
    builtins::apply_defaults(st, &tgt.t.group, &tgt.t.plural, &mut obj, old.as_ref());
    let old_for_rules = old.as_ref().map(|o| as_version(&tgt.t, &tgt.version, o));
    let warnings = validate(st, req, tgt, &mut obj, old_for_rules.as_ref())?;
    let key = tgt.key(&name);
    let is_crd =
        tgt.t.group == "apiextensions.k8s.io" && tgt.t.plural == "customresourcedefinitions";
    let reply = |code: u16, body: Value| Reply::Json {
        code,
        body,
        content_type: "application/json",
        warnings: warnings.clone(),
    };
    if dry_run(req) {
        return Ok(reply(if old.is_some() { 200 } else { 201 }, obj));
    }
    if old.is_none() {
        let stored = st.insert(key, obj);
        if is_crd {
            st.registry
                .register_crd(&stored)
                .map_err(ApiError::internal)?;
        }
        st.collect_garbage();
        return Ok(reply(201, as_version(&tgt.t, &tgt.version, &stored)));
    }
    let stored = st.replace(key, obj);
    if is_crd {
        st.registry
            .register_crd(&stored)
            .map_err(ApiError::internal)?;
    }
    // Releases terminating objects whose last finalizer this write removed, and re-checks owners.
    st.collect_garbage();
    Ok(reply(200, as_version(&tgt.t, &tgt.version, &stored)))
}

/// POST to a collection.
pub fn create(st: &mut State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let mut obj = parse_body(req)?;
    if tgt.t.create_only {
        let review = builtins::token_review(st, &obj);
        return Ok(json_reply(201, review));
    }
    if tgt.t.namespaced {
        let Some(ns) = &tgt.namespace else {
            return Err(ApiError::method_not_allowed(
                "POST requires a namespace for namespaced resources",
            ));
        };
        if let Some(body_ns) = obj["metadata"]["namespace"].as_str()
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if !st.namespace_exists(ns) {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
    }
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = obj["metadata"]["generateName"].as_str().map(String::from)
    {
        obj["metadata"]["name"] = json!(format!("{prefix}{}", st.name_suffix()));
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if !name.is_empty() && st.get(&tgt.key(&name)).is_some() {
        return Err(ApiError::already_exists(&tgt.t.group, &tgt.t.plural, &name));
    }
    commit(st, req, tgt, obj, None)
}

fn existing(st: &State, tgt: &Target) -> ApiResult<Value> {
    let name = tgt.name.as_deref().unwrap_or("");
    st.get(&tgt.key(name))
        .cloned()
        .ok_or_else(|| ApiError::not_found(&tgt.t.group, &tgt.t.plural, name))
}

fn check_name(tgt: &Target, obj: &Value) -> ApiResult<()> {
    let name = tgt.name.as_deref().unwrap_or("");
    match obj["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// PUT on an object (or its status).
pub fn update(st: &mut State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let mut obj = parse_body(req)?;
    check_name(tgt, &obj)?;
    let old = existing(st, tgt)?;
    obj["metadata"]["name"] = json!(tgt.name.clone().unwrap_or_default());
    commit(st, req, tgt, obj, Some(old))
}

/// PATCH (JSON, merge, strategic, apply) on an object (or its status).
pub fn patch(st: &mut State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let ct = req
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if ct == "application/apply-patch+yaml" {
        return apply(st, req, tgt);
    }
    let old = existing(st, tgt)?;
    let mut doc = as_version(&tgt.t, &tgt.version, &old);
    match ct.as_str() {
        "application/json-patch+json" => patch::json_patch(&mut doc, &req.body)?,
        "application/merge-patch+json" => patch::merge_patch(&mut doc, &req.body)?,
        "application/strategic-merge-patch+json" if tgt.t.crd.is_none() => {
            patch::strategic_merge_patch(&mut doc, &req.body)?
        }
        _ => return Err(ApiError::unsupported_media_type(&req.content_type)),
    }
    check_name(tgt, &doc)?;
    commit(st, req, tgt, doc, Some(old))
}

fn apply(st: &mut State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let applied = parse_body(req)?;
    let manager = req
        .q("fieldManager")
        .ok_or_else(|| ApiError::bad_request("PATCH /apply requires fieldManager: fieldManager: Required value: is required for apply patch"))?;
    let force = matches!(req.q("force"), Some("true" | "1"));
    check_name(tgt, &applied)?;
    let name = tgt.name.clone().unwrap_or_default();
    let old = st.get(&tgt.key(&name)).cloned();
    if old.is_none() && tgt.sub.is_some() {
        return Err(ApiError::not_found(&tgt.t.group, &tgt.t.plural, &name));
    }
    if old.is_none()
        && let Some(ns) = &tgt.namespace
        && !st.namespace_exists(ns)
    {
        return Err(ApiError::not_found("", "namespaces", ns));
    }
    let mut scoped = applied.clone();
    let sub = tgt.sub.clone().unwrap_or_default();
    if let Some(m) = scoped.as_object_mut() {
        if sub == "status" {
            m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        } else if tgt.t.has_status && tgt.t.plural != "namespaces" {
            m.remove("status");
        }
    }
    let base = old.as_ref().map(|o| as_version(&tgt.t, &tgt.version, o));
    let mut merged = server_side_apply(
        base.as_ref(),
        &scoped,
        manager,
        force,
        &sub,
        &tgt.t.api_version(&tgt.version),
    )?;
    merged["metadata"]["name"] = json!(name);
    commit(st, req, tgt, merged, old)
}

fn delete_options(req: &Request) -> ApiResult<Value> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
}

fn propagation(req: &Request, opts: &Value) -> String {
    if let Some(p) = req
        .q("propagationPolicy")
        .or(opts["propagationPolicy"].as_str())
    {
        return p.to_string();
    }
    if opts["orphanDependents"].as_bool() == Some(true) {
        return "Orphan".into();
    }
    "Background".into()
}

/// DELETE on an object.
pub fn delete(st: &mut State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let opts = delete_options(req)?;
    let old = existing(st, tgt)?;
    let name = tgt.name.clone().unwrap_or_default();
    let pre = &opts["preconditions"];
    if let Some(uid) = pre["uid"].as_str()
        && Some(uid) != old["metadata"]["uid"].as_str()
    {
        return Err(ApiError::conflict(&tgt.t.group, &tgt.t.plural, &name));
    }
    if let Some(rv) = pre["resourceVersion"].as_str()
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(&tgt.t.group, &tgt.t.plural, &name));
    }
    if dry_run(req) {
        return Ok(json_reply(200, as_version(&tgt.t, &tgt.version, &old)));
    }
    let policy = propagation(req, &opts);
    let (last, gone) = st
        .delete(&tgt.key(&name), &policy)
        .ok_or_else(|| ApiError::not_found(&tgt.t.group, &tgt.t.plural, &name))?;
    if gone {
        Ok(json_reply(
            200,
            success_status(
                json!({"name": name, "group": tgt.t.group, "kind": tgt.t.plural,
                "uid": last["metadata"]["uid"]}),
            ),
        ))
    } else {
        Ok(json_reply(200, as_version(&tgt.t, &tgt.version, &last)))
    }
}

/// DELETE on a collection (honours label and field selectors).
pub fn delete_collection(st: &mut State, req: &Request, tgt: &Target) -> ApiResult<Reply> {
    let opts = delete_options(req)?;
    let policy = propagation(req, &opts);
    let items = matching(st, req, tgt)?;
    let mut deleted = Vec::new();
    for (k, o) in items {
        if !dry_run(req) {
            st.delete(&k, &policy);
        }
        deleted.push(as_version(&tgt.t, &tgt.version, &o));
    }
    Ok(json_reply(
        200,
        json!({"kind": tgt.t.list_kind, "apiVersion": tgt.t.api_version(&tgt.version),
            "metadata": {"resourceVersion": st.resource_version().to_string()}, "items": deleted}),
    ))
}
