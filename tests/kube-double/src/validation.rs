//! Structural validation of custom resources against a CRD's `openAPIV3Schema`.
//!
//! Covers `default` (absent properties are defaulted first), `type` (incl.
//! `x-kubernetes-int-or-string`), `nullable`, `required`, `enum`,
//! `properties`, `additionalProperties`, `items`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`, `minLength`/`maxLength`, `minimum`/`maximum`,
//! `minItems`/`maxItems` and `pattern`. Unknown fields are pruned and reported so the caller
//! can apply the request's `fieldValidation` directive. `format`, `oneOf`/`anyOf`/`allOf`/`not` and
//! `x-kubernetes-list-type` uniqueness are not checked.

use crate::status::Cause;
use serde_json::Value;

/// What structural validation found.
#[derive(Debug, Default)]
pub struct Report {
    /// Field errors (answered as 422 Invalid).
    pub causes: Vec<Cause>,
    /// Paths of fields not declared in the schema (already pruned from the object).
    pub unknown: Vec<String>,
}

/// Validates and prunes a custom resource in place.
pub fn validate_structure(obj: &mut Value, schema: &Value) -> Report {
    let mut report = Report::default();
    walk(obj, schema, "", &mut report, true);
    report
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type name the real server uses in messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(v: &Value, schema: &Value) -> Option<&'static str> {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        return (!matches!(type_name(v), "integer" | "string")).then_some("integer-or-string");
    }
    let want = schema["type"].as_str()?;
    let actual = type_name(v);
    let ok = match want {
        "number" => matches!(actual, "number" | "integer"),
        other => other == actual,
    };
    if ok {
        None
    } else {
        Some(match want {
            "object" => "object",
            "array" => "array",
            "string" => "string",
            "integer" => "integer",
            "number" => "number",
            "boolean" => "boolean",
            _ => "unknown",
        })
    }
}

fn invalid(report: &mut Report, path: &str, value: String, detail: String) {
    report.causes.push(Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value}: {detail}"),
        field: path.to_string(),
    });
}

fn walk(v: &mut Value, schema: &Value, path: &str, report: &mut Report, root: bool) {
    if !schema.is_object() {
        return;
    }
    if let Some(want) = type_ok(v, schema) {
        let actual = type_name(v);
        invalid(
            report,
            path,
            format!("\"{actual}\""),
            format!("{path} in body must be of type {want}: \"{actual}\""),
        );
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(v)
    {
        let supported: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        report.causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {v}: supported values: {}",
                supported.join(", ")
            ),
            field: path.to_string(),
        });
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64()
                && len > max
            {
                report.causes.push(Cause {
                    reason: "FieldValueTooLong",
                    message: format!("Too long: may not be more than {max} bytes"),
                    field: path.to_string(),
                });
            }
            if let Some(min) = schema["minLength"].as_u64()
                && len < min
            {
                invalid(
                    report,
                    path,
                    format!("\"{s}\""),
                    format!("{path} in body should be at least {min} chars long"),
                );
            }
            if let Some(p) = schema["pattern"].as_str()
                && let Ok(re) = regex::Regex::new(p)
                && !re.is_match(s)
            {
                invalid(
                    report,
                    path,
                    format!("\"{s}\""),
                    format!("{path} in body should match '{p}'"),
                );
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = schema["maximum"].as_f64()
                && x > max
            {
                invalid(
                    report,
                    path,
                    n.to_string(),
                    format!("{path} in body should be less than or equal to {max}"),
                );
            }
            if let Some(min) = schema["minimum"].as_f64()
                && x < min
            {
                invalid(
                    report,
                    path,
                    n.to_string(),
                    format!("{path} in body should be greater than or equal to {min}"),
                );
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                report.causes.push(Cause {
                    reason: "FieldValueTooMany",
                    message: format!("Too many: {}: must have at most {max} items", items.len()),
                    field: path.to_string(),
                });
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                invalid(
                    report,
                    path,
                    format!("{}", items.len()),
                    format!("{path} in body should have at least {min} items"),
                );
            }
            let item_schema = &schema["items"];
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, item_schema, &format!("{path}[{i}]"), report, false);
            }
        }
        Value::Object(map) => {
            let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
            let embedded = schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
            let props = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            // Structural defaulting: absent properties with a `default` get it (as the real
            // server does before validation and CEL).
            for (k, sub) in props.into_iter().flatten() {
                if !map.contains_key(k)
                    && let Some(d) = sub.get("default")
                {
                    map.insert(k.clone(), d.clone());
                }
            }
            if let Some(required) = schema["required"].as_array() {
                for r in required.iter().filter_map(Value::as_str) {
                    if map.get(r).is_none_or(Value::is_null) {
                        let p = child(path, r);
                        report.causes.push(Cause {
                            reason: "FieldValueRequired",
                            message: "Required value".to_string(),
                            field: p,
                        });
                    }
                }
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let p = child(path, &k);
                if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|props| props.get(&k))
                    .or_else(|| additional.is_object().then_some(additional));
                match sub {
                    Some(sub) => {
                        let val = map.get_mut(&k).expect("key present");
                        if val.is_null() && sub["nullable"].as_bool() != Some(true) {
                            // The real server drops nulls of non-nullable fields.
                            map.remove(&k);
                            continue;
                        }
                        if !val.is_null() {
                            walk(val, sub, &p, report, false);
                        }
                    }
                    None if preserve || additional.as_bool() == Some(true) => {}
                    None if props.is_none()
                        && !additional.is_object()
                        && schema["type"].is_null() => {}
                    None => {
                        report.unknown.push(p);
                        map.remove(&k);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "kind": {"type": "string", "default": "plain"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }})
    }

    #[test]
    fn type_required_enum_and_unknown() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"mode": "c", "bogus": 1, "labels": {"a": "b"}, "free": {"any": [1]}}});
        let r = validate_structure(&mut o, &schema());
        let msgs: Vec<_> = r.causes.iter().map(|c| c.message.clone()).collect();
        assert!(msgs.contains(&"Required value".to_string()), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("Unsupported value: \"c\"")),
            "{msgs:?}"
        );
        assert_eq!(r.unknown, vec!["spec.bogus".to_string()]);
        assert!(o["spec"].get("bogus").is_none());
        assert_eq!(o["spec"]["free"]["any"], json!([1]));
        assert_eq!(o["spec"]["kind"], "plain", "defaults are applied");

        let mut o = json!({"spec": {"size": "big"}});
        let r = validate_structure(&mut o, &schema());
        assert_eq!(
            r.causes[0].message,
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
        );
    }
}
