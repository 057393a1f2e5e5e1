//! Authorization: one [`PolicySet::decide`] per client message, and the same call per listed
//! item when filtering `tools/list`, `resources/list`, `resources/templates/list` and
//! `prompts/list` results — so an agent sees exactly what it may call.

use crate::authn::Identity;
use chrono::{DateTime, Utc};
use gatehouse_api::policy::{Decision, Operation, PolicySet, Request};
use gatehouse_api::refs::ObjectKey;
use serde_json::Value;
use serde_json::value::RawValue;

/// Decide one operation at `now` (a `when` condition's `now`): a client message is decided
/// at the time it arrived, the items of a list when the list is filtered.
pub fn decide<'p>(
    policies: &'p PolicySet,
    server: &ObjectKey,
    who: &Identity,
    operation: Operation<'_>,
    arguments: Option<&RawValue>,
    now: DateTime<Utc>,
) -> Decision<'p> {
    policies.decide(&request(server, who, operation, arguments, now))
}

fn request<'r>(
    server: &'r ObjectKey,
    who: &'r Identity,
    operation: Operation<'r>,
    arguments: Option<&'r RawValue>,
    now: DateTime<Utc>,
) -> Request<'r> {
    Request {
        user: who.user.as_deref(),
        agent: who.agent.as_ref(),
        server,
        operation,
        arguments,
        now,
    }
}

/// Whether `method`'s result is a list this module filters.
pub fn is_filtered_list(method: &str) -> bool {
    matches!(
        method,
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list"
    )
}

/// Remove the items of a list result that `who` may not use (each decided as a message using
/// it would be); returns how many were removed.
/// Tool names are the server's own (a prefix is added afterwards by the relay).
pub fn filter_list(
    policies: &PolicySet,
    server: &ObjectKey,
    who: &Identity,
    method: &str,
    result: &mut Value,
) -> usize {
    let (field, key) = match method {
        "tools/list" => ("tools", "name"),
        "resources/list" => ("resources", "uri"),
        "resources/templates/list" => ("resourceTemplates", "uriTemplate"),
        "prompts/list" => ("prompts", "name"),
        _ => return 0,
    };
    let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = items.len();
    let now = Utc::now();
    items.retain(|item| {
        let Some(id) = item.get(key).and_then(Value::as_str) else {
            // An item the gateway cannot name cannot be authorized: drop it (fail closed).
            return false;
        };
        let op = match method {
            "tools/list" => Operation::Tool { name: id },
            "prompts/list" => Operation::Prompt { name: id },
            _ => Operation::Resource {
                method: "resources/read",
                uri: id,
            },
        };
        // The same decision as a message's, without rendering a reason nobody reads.
        policies.allows(&request(server, who, op, None, now))
    });
    before - items.len()
}
