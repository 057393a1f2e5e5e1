//! Server-side behaviour of specific built-in kinds: Secret `stringData`, Service cluster IPs,
//! Namespace labels and phase, CustomResourceDefinition status, and TokenReview.

use crate::registry::type_from_crd;
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{State, UserInfo};
use base64::Engine;
use serde_json::{Value, json};

/// Fills in what the real server defaults or derives for built-in kinds.
/// `old` is the stored object on updates.
pub fn apply_defaults(
    st: &mut State,
    group: &str,
    plural: &str,
    obj: &mut Value,
    old: Option<&Value>,
) {
    match (group, plural) {
        ("", "secrets") => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                for (k, v) in sd {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(v.as_str().unwrap_or_default());
                    obj["data"][k] = json!(encoded);
                }
            }
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "services") => {
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            if obj["spec"]["type"] != "ExternalName" && obj["spec"]["clusterIP"].is_null() {
                let ip = match old.map(|o| &o["spec"]["clusterIP"]) {
                    Some(Value::String(ip)) => ip.clone(),
                    _ => {
                        let n = st.next_counter();
                        format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 2)
                    }
                };
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                for p in ports {
                    if p["protocol"].is_null() {
                        p["protocol"] = json!("TCP");
                    }
                    if p["targetPort"].is_null() {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
        }
        ("", "namespaces") => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            if obj["metadata"]["deletionTimestamp"].is_null() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let names = obj["spec"]["names"].clone();
            let storage: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let now = crate::store::now();
            let mut accepted = names.clone();
            if accepted["singular"].is_null() {
                accepted["singular"] = json!(names["kind"].as_str().unwrap_or("").to_lowercase());
            }
            if accepted["listKind"].is_null() {
                accepted["listKind"] =
                    json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
            }
            obj["status"] = json!({
                "acceptedNames": accepted,
                "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now}
                ]
            });
        }
        _ => {}
    }
}

/// Validates built-in kinds the double checks (CRDs only).
pub fn validate_builtin(group: &str, plural: &str, obj: &Value) -> ApiResult<()> {
    if (group, plural) == ("apiextensions.k8s.io", "customresourcedefinitions")
        && let Err(msg) = type_from_crd(obj)
    {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let (field, message) = msg.split_once(": ").unwrap_or(("", msg.as_str()));
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                message: message.to_string(),
                field: field.to_string(),
            }],
        ));
    }
    Ok(())
}

/// Answers a TokenReview from the tokens registered with the double.
pub fn token_review(st: &State, body: &Value) -> Value {
    let token = body["spec"]["token"].as_str().unwrap_or("");
    let requested: Vec<Value> = body["spec"]["audiences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut review = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": body["spec"].clone()});
    review["status"] = match st.tokens.get(token) {
        Some(UserInfo {
            username,
            uid,
            groups,
            audiences,
        }) => {
            let audiences: Vec<Value> = if audiences.is_empty() {
                requested.clone()
            } else {
                audiences.iter().map(|a| json!(a)).collect()
            };
            let intersects =
                requested.is_empty() || requested.iter().any(|r| audiences.contains(r));
            if intersects {
                json!({"authenticated": true, "user": {"username": username, "uid": uid, "groups": groups},
                    "audiences": audiences})
            } else {
                json!({"authenticated": false, "user": {}, "error": "token audiences do not intersect the requested audiences"})
            }
        }
        None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
    };
    review
}
