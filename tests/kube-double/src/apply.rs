//! Server-side apply (`application/apply-patch+yaml`) with an approximation of field ownership.
//!
//! Each `Apply` manager owns the set of leaf paths it last applied (lists are atomic leaves),
//! stored as a `FieldsV1` entry in `metadata.managedFields` (one entry per manager and
//! subresource). Applying conflicts when another `Apply` manager owns a path whose current value
//! differs from the applied one, unless `force=true`, in which case ownership moves. Fields a
//! manager stops applying are removed when no other `Apply` manager owns them. `Update`
//! operations (PUT/PATCH) are not tracked as owners — a documented difference from the real
//! structured-merge-diff algorithm.

use crate::patch::apply_merge;
use crate::status::{ApiError, ApiResult};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

type Path = Vec<String>;

fn leaf_paths(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaf_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn owned_paths(applied: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    leaf_paths(applied, &mut Vec::new(), &mut out);
    out.retain(|p| {
        let s: Vec<&str> = p.iter().map(String::as_str).collect();
        !matches!(
            s.as_slice(),
            ["apiVersion"]
                | ["kind"]
                | ["metadata", "name"]
                | ["metadata", "namespace"]
                | ["metadata", "resourceVersion"]
                | ["metadata", "uid"]
                | ["metadata", "managedFields", ..]
                | ["metadata", "creationTimestamp"]
        )
    });
    out
}

fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("object");
        }
    }
    Value::Object(root)
}

fn parse_fields_v1(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    let fields: Vec<_> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if fields.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
        return;
    }
    for (k, child) in fields {
        prefix.push(k[2..].to_string());
        parse_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

fn get_path<'a>(v: &'a Value, p: &Path) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, seg| cur.get(seg))
}

fn remove_path(v: &mut Value, p: &Path) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

struct Entry {
    raw: Value,
    manager: String,
    apply: bool,
    subresource: String,
    fields: BTreeSet<Path>,
}

/// Applies `applied` for `manager` onto `current` (None: the object does not exist yet) and
/// returns the merged object with updated `managedFields`.
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: &str,
    api_version: &str,
) -> ApiResult<Value> {
    let mut obj = current.cloned().unwrap_or_else(|| json!({}));
    let mut entries: Vec<Entry> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|raw| {
            let mut fields = BTreeSet::new();
            parse_fields_v1(&raw["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: raw["manager"].as_str().unwrap_or("").to_string(),
                apply: raw["operation"].as_str() == Some("Apply"),
                subresource: raw["subresource"].as_str().unwrap_or("").to_string(),
                fields,
                raw,
            }
        })
        .collect();
    let new_set = owned_paths(applied);
    let is_me = |e: &Entry| e.apply && e.manager == manager && e.subresource == subresource;

    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| e.apply && !is_me(e)) {
        for p in new_set.intersection(&e.fields) {
            if get_path(&obj, p) != get_path(applied, p) {
                conflicts.push((e.manager.clone(), format!(".{}", p.join("."))));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(ApiError::apply_conflict(&conflicts));
        }
        for e in entries.iter_mut().filter(|e| e.apply && !is_me(e)) {
            e.fields
                .retain(|p| !(new_set.contains(p) && get_path(&obj, p) != get_path(applied, p)));
        }
    }

    let previous: BTreeSet<Path> = entries
        .iter()
        .find(|e| is_me(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&new_set) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| e.apply && !is_me(e) && e.fields.contains(p));
        if !owned_elsewhere {
            remove_path(&mut obj, p);
        }
    }
    apply_merge(&mut obj, applied);

    entries.retain(|e| !is_me(e));
    let mut out: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty() || !e.apply)
        .map(|e| {
            let mut raw = e.raw;
            if e.apply {
                raw["fieldsV1"] = fields_v1(&e.fields);
            }
            raw
        })
        .collect();
    let mut mine = json!({"manager": manager, "operation": "Apply", "apiVersion": api_version,
        "time": crate::store::now(), "fieldsType": "FieldsV1", "fieldsV1": fields_v1(&new_set)});
    if !subresource.is_empty() {
        mine["subresource"] = json!(subresource);
    }
    out.push(mine);
    obj["metadata"]["managedFields"] = Value::Array(out);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_force_and_removal() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        let obj = server_side_apply(None, &a, "alice", false, "", "v1").unwrap();
        assert_eq!(obj["data"], json!({"x": "1", "y": "2"}));

        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "9"}});
        let err = server_side_apply(Some(&obj), &b, "bob", false, "", "v1").unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"alice\""),
            "{}",
            err.message
        );

        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}});
        assert!(server_side_apply(Some(&obj), &same, "bob", false, "", "v1").is_ok());

        let obj = server_side_apply(Some(&obj), &b, "bob", true, "", "v1").unwrap();
        assert_eq!(obj["data"]["x"], "9");

        // alice stops applying y: removed; x now belongs to bob and stays.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "3"}});
        let obj = server_side_apply(Some(&obj), &a2, "alice", false, "", "v1").unwrap();
        assert_eq!(obj["data"], json!({"x": "9", "z": "3"}));
    }
}
