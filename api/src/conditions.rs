//! Status conditions shared by every Gatehouse custom resource.
//!
//! The condition types follow Gateway API: `Accepted` (the spec is valid), `ResolvedRefs`
//! (everything it references exists and may be referenced), `Programmed` (its configuration has
//! reached the gateways) and `Ready` (all of the above).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The spec is syntactically and semantically valid.
pub const ACCEPTED: &str = "Accepted";
/// Every object the spec references exists and may be referenced.
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// The configuration derived from this object was applied by its gateways.
pub const PROGRAMMED: &str = "Programmed";
/// Accepted, resolved and programmed: the object is in effect.
pub const READY: &str = "Ready";

/// Status shared by every Gatehouse custom resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Latest observations of the object's state: `Accepted`, `ResolvedRefs`, `Programmed`,
    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A condition as computed by the compiler, before the operator stamps a transition time on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionStatus {
    /// Condition type, e.g. `Accepted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase machine-readable reason.
    pub reason: String,
    /// A human-readable explanation naming the object and field at fault.
    pub message: String,
}

impl ConditionStatus {
    /// A `True` condition.
    pub fn ok(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_string(),
            status: "True".to_string(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A `False` condition.
    pub fn failed(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_string(),
            status: "False".to_string(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// Whether the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}
