//! `meta.k8s.io/v1 Table` responses (what `kubectl get` asks for), including a CRD's
//! `additionalPrinterColumns` evaluated with a small JSONPath subset.

use crate::registry::ResourceType;
use serde_json::{Value, json};

/// Evaluates a printer-column JSONPath: `.a.b`, `[0]`, `[*]`, `['key']` and
/// `[?(@.field=="value")]` filters. Returns every match.
pub fn json_path<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur: Vec<&Value> = vec![root];
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            if !field.is_empty() {
                cur = cur.into_iter().filter_map(|v| v.get(field)).collect();
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = find_close(r) else {
                return Vec::new();
            };
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            cur = if inner == "*" {
                cur.into_iter()
                    .flat_map(|v| match v {
                        Value::Array(a) => a.iter().collect::<Vec<_>>(),
                        Value::Object(m) => m.values().collect(),
                        _ => Vec::new(),
                    })
                    .collect()
            } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
            {
                cur.into_iter()
                    .flat_map(|v| {
                        v.as_array()
                            .map(|a| a.iter().collect::<Vec<_>>())
                            .unwrap_or_default()
                    })
                    .filter(|item| filter_matches(item, filter))
                    .collect()
            } else if let Ok(i) = inner.parse::<usize>() {
                cur.into_iter().filter_map(|v| v.get(i)).collect()
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                cur.into_iter().filter_map(|v| v.get(key)).collect()
            };
        } else {
            // bare leading field name
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let field = &rest[..end];
            cur = cur.into_iter().filter_map(|v| v.get(field)).collect();
            rest = &rest[end..];
        }
    }
    cur
}

fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn filter_matches(item: &Value, filter: &str) -> bool {
    let (lhs, rhs, eq) = if let Some((l, r)) = filter.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = filter.split_once("!=") {
        (l, r, false)
    } else {
        let l = filter.trim().trim_start_matches('@');
        return !json_path(item, l).is_empty();
    };
    let l = lhs.trim().trim_start_matches('@');
    let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
    let got = json_path(item, l).first().map(|v| cell_text(v));
    (got.as_deref() == Some(want)) == eq
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders a timestamp as a human duration since then (`5s`, `3m`, `2h`, `4d`).
pub fn human_age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn columns(t: &ResourceType, version: &str) -> Vec<Value> {
    t.crd
        .as_ref()
        .and_then(|c| c.printer_columns.get(version).cloned())
        .unwrap_or_else(|| {
            vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})]
        })
}

/// Builds a Table for objects of type `t`. `include_object` is the `includeObject` parameter.
pub fn table(
    t: &ResourceType,
    version: &str,
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
) -> Value {
    let cols = columns(t, version);
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    for c in &cols {
        defs.push(json!({
            "name": c["name"],
            "type": c["type"].as_str().unwrap_or("string"),
            "format": c["format"].as_str().unwrap_or(""),
            "description": c["description"].as_str().unwrap_or(""),
            "priority": c["priority"].as_i64().unwrap_or(0),
        }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &cols {
                let found = json_path(o, c["jsonPath"].as_str().unwrap_or(""));
                let cell = match (c["type"].as_str(), found.first()) {
                    (_, None) => Value::Null,
                    (Some("date"), Some(Value::String(s))) => json!(human_age(s)),
                    (Some("integer" | "number" | "boolean"), Some(v)) if found.len() == 1 => (*v).clone(),
                    _ => json!(found.iter().map(|v| cell_text(v)).collect::<Vec<_>>().join(",")),
                };
                cells.push(cell);
            }
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True", "reason": "Ok"}]}, "spec": {"n": 3}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(json_path(&o, ".spec.n"), vec![&json!(3)]);
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            vec![&json!("A")]
        );
        assert_eq!(json_path(&o, ".status.conditions[*].type").len(), 2);
        assert!(json_path(&o, ".spec.missing").is_empty());
    }
}
