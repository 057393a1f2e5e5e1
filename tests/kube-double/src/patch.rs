//! JSON patch, JSON merge patch and an approximation of strategic merge patch.
//!
//! Strategic merge patch is approximated as a merge patch in which lists of objects under
//! well-known field names are merged by a key (`name` for `containers`, `env`, `volumes`, ...;
//! `containerPort`/`port` for `ports`; `type` for `conditions`), primitive lists named
//! `finalizers` are unioned, and the `$patch`, `$setElementOrder/…`, `$retainKeys` and
//! `$deleteFromPrimitiveList/…` directives kubectl emits are honoured or ignored.

use crate::status::{ApiError, ApiResult};
use serde_json::{Map, Value};

/// Applies an RFC 6902 JSON patch. A malformed patch is 400; one that cannot be applied
/// (failed `test`, missing path) is 422 Invalid, as on the real server.
pub fn json_patch(doc: &mut Value, patch: &[u8]) -> ApiResult<()> {
    let p: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
    json_patch::patch(doc, &p).map_err(|e| {
        let mut err = ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: {e}"
        ));
        err.code = 422;
        err.reason = "Invalid";
        err
    })
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &mut Value, patch: &[u8]) -> ApiResult<()> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    json_patch::merge(doc, &p);
    Ok(())
}

/// Applies a strategic merge patch (documented approximation, see module docs).
pub fn strategic_merge_patch(doc: &mut Value, patch: &[u8]) -> ApiResult<()> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    strategic_merge(doc, &p, "");
    Ok(())
}

/// Merge key for a list field, by field name (and element shape for `ports`).
pub fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "envFrom"
        | "hostAliases" => "name",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

fn strategic_merge(doc: &mut Value, patch: &Value, field: &str) {
    let Value::Object(pm) = patch else {
        *doc = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = pm.clone();
        p.remove("$patch");
        *doc = Value::Object(p);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let _ = field;
    let dm = doc.as_object_mut().expect("object");
    for (k, v) in pm {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (dm.get_mut(list_field), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            dm.remove(k);
            continue;
        }
        match (dm.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(new)) => merge_list(cur, new, k),
            (Some(cur @ Value::Object(_)), Value::Object(_)) => strategic_merge(cur, v, k),
            _ => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, v, k);
                if let Value::Array(items) = v {
                    // strip directives from new lists
                    fresh = Value::Array(
                        items
                            .iter()
                            .filter(|i| i.get("$patch").is_none())
                            .cloned()
                            .collect(),
                    );
                }
                dm.insert(k.clone(), fresh);
            }
        }
    }
}

fn merge_list(cur: &mut Vec<Value>, new: &[Value], field: &str) {
    if field == "finalizers" {
        for item in new {
            if !cur.contains(item) {
                cur.push(item.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(field, new.first().or(cur.first())) else {
        *cur = new.to_vec();
        return;
    };
    if new.iter().any(|i| !i.is_object()) {
        *cur = new.to_vec();
        return;
    }
    for item in new {
        let id = item.get(key).cloned();
        let pos = cur.iter().position(|c| c.get(key) == id.as_ref());
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut cur[i], item, field),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item, field);
                cur.push(fresh);
            }
        }
    }
}

/// Deep-merges `applied` into `doc` for server-side apply: maps merge recursively, keyed lists
/// (see [`merge_key`]) merge by key, other lists and scalars are replaced.
pub fn apply_merge(doc: &mut Value, applied: &Value) {
    strategic_merge(doc, applied, "");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]}});
        strategic_merge_patch(&mut doc, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"containers": [{"name": "a", "image": "z"}]}})
        );
    }

    #[test]
    fn strategic_null_deletes_and_lists_replace() {
        let mut doc = json!({"data": {"a": "1", "b": "2"}, "args": ["x"]});
        let patch = json!({"data": {"a": null}, "args": ["y"]});
        strategic_merge_patch(&mut doc, patch.to_string().as_bytes()).unwrap();
        assert_eq!(doc, json!({"data": {"b": "2"}, "args": ["y"]}));
    }

    #[test]
    fn json_patch_failure_is_invalid() {
        let mut doc = json!({"a": 1});
        let err = json_patch(&mut doc, br#"[{"op":"test","path":"/a","value":2}]"#).unwrap_err();
        assert_eq!(err.code, 422);
    }
}
