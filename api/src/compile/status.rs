//! Building the per-object status the compiler reports.

use crate::conditions::{ACCEPTED, ConditionStatus, RESOLVED_REFS};
use crate::config::GatewayId;

/// The compiler's view of one object's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectStatus {
    /// `metadata.generation` the status was computed from.
    pub observed_generation: Option<i64>,
    /// `Accepted` and `ResolvedRefs` (the operator adds `Programmed` and `Ready`).
    pub conditions: Vec<ConditionStatus>,
    /// The snapshots this object contributes to.
    pub gateways: Vec<GatewayId>,
    /// For McpServers: the URL agents use, when the gateway has a public URL.
    pub url: Option<String>,
    /// For providers: which kind they are.
    pub provider_type: Option<String>,
}

/// Problems found while compiling one object.
#[derive(Debug, Default)]
pub struct Problems {
    invalid: Vec<String>,
    invalid_reason: Option<&'static str>,
    unresolved: Vec<String>,
    unresolved_reason: Option<&'static str>,
}

impl Problems {
    /// The spec is invalid (reason `Invalid`).
    pub fn invalid(&mut self, message: impl Into<String>) {
        self.invalid_with("Invalid", message);
    }

    /// The spec is invalid for a specific reason (e.g. `PathConflict`).
    pub fn invalid_with(&mut self, reason: &'static str, message: impl Into<String>) {
        self.invalid_reason.get_or_insert(reason);
        self.invalid.push(message.into());
    }

    /// A reference does not resolve.
    pub fn unresolved(&mut self, reason: &'static str, message: impl Into<String>) {
        self.unresolved_reason.get_or_insert(reason);
        self.unresolved.push(message.into());
    }

    /// Whether the spec is valid.
    pub fn is_valid(&self) -> bool {
        self.invalid.is_empty()
    }

    /// Whether every reference resolved.
    pub fn is_resolved(&self) -> bool {
        self.unresolved.is_empty()
    }

    /// Whether the object is fully usable.
    pub fn is_clean(&self) -> bool {
        self.is_valid() && self.is_resolved()
    }

    /// The invalid-spec messages, joined.
    pub fn invalid_message(&self) -> String {
        self.invalid.join("; ")
    }

    /// Turn into conditions.
    pub fn into_status(self, generation: Option<i64>, kind: &str) -> ObjectStatus {
        let accepted = if self.invalid.is_empty() {
            ConditionStatus::ok(ACCEPTED, "Accepted", format!("{kind} is valid"))
        } else {
            ConditionStatus::failed(
                ACCEPTED,
                self.invalid_reason.unwrap_or("Invalid"),
                self.invalid.join("; "),
            )
        };
        let resolved = if self.unresolved.is_empty() {
            ConditionStatus::ok(RESOLVED_REFS, "ResolvedRefs", "all references resolved")
        } else {
            ConditionStatus::failed(
                RESOLVED_REFS,
                self.unresolved_reason.unwrap_or("RefNotResolved"),
                self.unresolved.join("; "),
            )
        };
        ObjectStatus {
            observed_generation: generation,
            conditions: vec![accepted, resolved],
            ..Default::default()
        }
    }
}
