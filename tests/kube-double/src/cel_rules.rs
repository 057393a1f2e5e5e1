//! Approximate evaluation of CRD `x-kubernetes-validations` CEL rules with the `cel` crate.
//!
//! The object (or the schema node's value) is converted to CEL values and bound as `self`
//! (and `oldSelf` on updates). A rule the interpreter cannot compile or evaluate is skipped and
//! recorded as a [`SkippedRule`], so tests can tell which rules the double did not cover.
//! Transition rules (mentioning `oldSelf`) are skipped on create, as on the real server.

use crate::status::Cause;
use crate::validation::type_name;
use serde_json::Value;

/// A CEL rule the double could not evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    /// CRD name (`plural.group`).
    pub crd: String,
    /// Field path of the schema node holding the rule (empty for the root).
    pub path: String,
    /// The rule text.
    pub rule: String,
    /// Why the interpreter could not evaluate it.
    pub reason: String,
}

/// Evaluates all rules of `schema` against `value` (and `old`, when updating).
pub fn evaluate(
    crd: &str,
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    causes: &mut Vec<Cause>,
    skipped: &mut Vec<SkippedRule>,
) {
    walk(crd, value, old, schema, "", causes, skipped);
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    crd: &str,
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
    skipped: &mut Vec<SkippedRule>,
) {
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for rule in rules {
            check_rule(crd, value, old, rule, path, causes, skipped);
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            for (k, v) in map {
                let sub = props
                    .and_then(|p| p.get(k))
                    .or_else(|| additional.is_object().then_some(additional));
                if let Some(sub) = sub {
                    let old_child = old.and_then(|o| o.get(k));
                    walk(crd, v, old_child, sub, &child(path, k), causes, skipped);
                }
            }
        }
        Value::Array(items) => {
            let sub = &schema["items"];
            if sub.is_object() {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        crd,
                        item,
                        None,
                        sub,
                        &format!("{path}[{i}]"),
                        causes,
                        skipped,
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_rule(
    crd: &str,
    value: &Value,
    old: Option<&Value>,
    rule: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
    skipped: &mut Vec<SkippedRule>,
) {
    let Some(text) = rule["rule"].as_str() else {
        return;
    };
    let uses_old = text.contains("oldSelf");
    if uses_old && old.is_none() {
        return;
    }
    let mut skip = |reason: String| {
        let s = SkippedRule {
            crd: crd.to_string(),
            path: path.to_string(),
            rule: text.to_string(),
            reason,
        };
        if !skipped.contains(&s) {
            skipped.push(s);
        }
    };
    let program = match cel::Program::compile(text) {
        Ok(p) => p,
        Err(e) => return skip(format!("compile: {e}")),
    };
    let mut ctx = cel::Context::default();
    match cel::to_value(value) {
        Ok(v) => ctx.add_variable_from_value("self", v),
        Err(e) => return skip(format!("convert self: {e}")),
    }
    if let Some(old) = old {
        match cel::to_value(old) {
            Ok(v) => ctx.add_variable_from_value("oldSelf", v),
            Err(e) => return skip(format!("convert oldSelf: {e}")),
        }
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => {
            let message = rule["message"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("failed rule: {text}"));
            let field = match rule["fieldPath"].as_str() {
                Some(fp) => format!("{path}{fp}"),
                None => path.to_string(),
            };
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: \"{}\": {message}", type_name(value)),
                field,
            });
        }
        Ok(other) => skip(format!("rule returned a non-boolean: {other:?}")),
        Err(e) => skip(format!("evaluate: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rule: &str, value: Value) -> (Vec<Cause>, Vec<SkippedRule>) {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": rule, "message": "nope"}]});
        let (mut c, mut s) = (Vec::new(), Vec::new());
        evaluate("w.test", &value, None, &schema, &mut c, &mut s);
        (c, s)
    }

    #[test]
    fn one_of_shapes() {
        for rule in [
            "has(self.a) != has(self.b)",
            "[has(self.a), has(self.b)].exists_one(x, x)",
        ] {
            assert!(run(rule, json!({"a": 1})).0.is_empty(), "{rule}");
            assert_eq!(run(rule, json!({"a": 1, "b": 2})).0.len(), 1, "{rule}");
            assert_eq!(run(rule, json!({})).0.len(), 1, "{rule}");
        }
        assert!(run("has(self.x)", json!({"x": "y"})).0.is_empty());
        assert_eq!(
            run("has(self.x)", json!({})).0[0].message,
            "Invalid value: \"object\": nope"
        );
        assert!(run("self.size() <= 2", json!({"x": 1})).0.is_empty());
        assert!(run("self.n >= 1", json!({"n": 3})).0.is_empty());
    }

    #[test]
    fn unsupported_rules_are_skipped() {
        let (c, s) = run("this is not cel (", json!({}));
        assert!(c.is_empty());
        assert_eq!(s.len(), 1);
        let (c, s) = run("self.missing.deeper == 1", json!({}));
        assert!(c.is_empty());
        assert_eq!(s.len(), 1);
    }
}
