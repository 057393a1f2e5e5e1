//! The policy engine: from (user, agent, server, MCP operation, time) to a [`Decision`].
//!
//! Semantics (DESIGN §3): default deny; any matching `Deny` policy wins; otherwise the first
//! matching `Allow` policy in `namespace/name` order decides, and its target's credential
//! provider is used. Every decision names the policy that made it and why.
//!
//! List filtering (`tools/list`, `resources/list`, `prompts/list`) calls [`PolicySet::decide`]
//! for every listed item with the operation the agent would use to call it, so an agent sees
//! exactly what it may call.
//!
//! Policies are indexed per server and by the literal user ids, groups, emails and agent ids
//! their subjects name, so a decision among thousands of policies looks at a handful.

mod condition;
mod index;
mod matching;

pub use condition::{WHEN_FUNCTIONS, WHEN_VARIABLES, check_when};

use crate::access_policy::Action;
use crate::config::PolicyConfig;
use crate::identity::{AgentIdentity, UserIdentity};
use crate::refs::ObjectKey;
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use index::ServerPolicies;
use serde::Serialize;
use std::fmt;

/// What the agent is trying to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation<'a> {
    /// A server-level message: `initialize`, `ping`, notifications, `logging/setLevel`,
    /// `completion/complete`, list requests, responses to server requests.
    Server {
        /// JSON-RPC method.
        method: &'a str,
    },
    /// `tools/call` of a tool.
    Tool {
        /// Tool name (without any gateway prefix).
        name: &'a str,
    },
    /// `resources/read`, `resources/subscribe` or `resources/unsubscribe` of a resource.
    Resource {
        /// JSON-RPC method.
        method: &'a str,
        /// Resource URI.
        uri: &'a str,
    },
    /// `prompts/get` of a prompt.
    Prompt {
        /// Prompt name.
        name: &'a str,
    },
}

impl Operation<'_> {
    /// The JSON-RPC method.
    pub fn method(&self) -> &str {
        match self {
            Operation::Server { method } | Operation::Resource { method, .. } => method,
            Operation::Tool { .. } => "tools/call",
            Operation::Prompt { .. } => "prompts/get",
        }
    }
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Server { method } => write!(f, "{method}"),
            Operation::Tool { name } => write!(f, "tool {name:?}"),
            Operation::Resource { uri, .. } => write!(f, "resource {uri:?}"),
            Operation::Prompt { name } => write!(f, "prompt {name:?}"),
        }
    }
}

/// One question to the policy engine.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The human user, if any.
    pub user: Option<&'a UserIdentity>,
    /// The agent, if identified.
    pub agent: Option<&'a AgentIdentity>,
    /// The McpServer addressed.
    pub server: &'a ObjectKey,
    /// What is attempted.
    pub operation: Operation<'a>,
    /// Tool or prompt arguments as the client sent them (JSON text), when present. They are
    /// parsed only when a `when` condition is evaluated, so a request no condition reads never
    /// pays for building them.
    pub arguments: Option<&'a serde_json::value::RawValue>,
    /// The time of the request (CEL `now`).
    pub now: DateTime<Utc>,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a decision, attributable to a policy. It borrows the policy and credential
/// provider names from the [`PolicySet`] (no copies per request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision<'a> {
    /// Allow or deny.
    pub effect: Effect,
    /// The AccessPolicy that decided; `None` when nothing matched (default deny).
    pub policy: Option<&'a ObjectKey>,
    /// Why, in words a user can act on. Never contains a secret.
    pub reason: String,
    /// The credential provider to inject, for allowed requests whose policy names one.
    pub credential_provider: Option<&'a ObjectKey>,
    /// `policy` rendered `namespace/name` (at compile time, not per decision).
    pub policy_name: Option<&'a str>,
    /// `credential_provider` rendered `namespace/name` (at compile time, not per decision).
    pub credential_provider_name: Option<&'a str>,
}

impl Decision<'_> {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// Every policy of a gateway, compiled and indexed.
#[derive(Debug, Default)]
pub struct PolicySet {
    servers: HashMap<ObjectKey, ServerPolicies>,
}

/// A policy that the engine could not load (the compiler normally rejects these earlier).
#[derive(Debug, thiserror::Error)]
#[error("AccessPolicy {policy}: {message}")]
pub struct PolicyError {
    /// The policy.
    pub policy: ObjectKey,
    /// What is wrong.
    pub message: String,
}

impl PolicySet {
    /// Compile and index policies. Policies are evaluated in `namespace/name` order whatever
    /// the input order.
    pub fn new(policies: &[PolicyConfig]) -> Result<Self, Vec<PolicyError>> {
        let mut sorted: Vec<&PolicyConfig> = policies.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut servers: HashMap<ObjectKey, Vec<matching::CompiledPolicy>> = HashMap::default();
        let mut errors = Vec::new();
        for p in sorted {
            match matching::CompiledPolicy::compile(p) {
                Ok(per_server) => {
                    for (server, compiled) in per_server {
                        servers.entry(server).or_default().push(compiled);
                    }
                }
                Err(message) => errors.push(PolicyError {
                    policy: p.key.clone(),
                    message,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            servers: servers
                .into_iter()
                .map(|(k, v)| (k, ServerPolicies::new(v)))
                .collect(),
        })
    }

    /// Decide one request.
    pub fn decide(&self, req: &Request<'_>) -> Decision<'_> {
        let Some((effect, p, m)) = self.deciding(req) else {
            return default_deny(req);
        };
        let credential = match effect {
            Effect::Allow => p.credential_for(req),
            Effect::Deny => None,
        };
        Decision {
            effect,
            policy: Some(&p.key),
            reason: p.reason(req, &m),
            credential_provider: credential.map(|(key, _)| key),
            policy_name: Some(&p.name),
            credential_provider_name: credential.map(|(_, name)| name),
        }
    }

    /// Whether [`Self::decide`] would allow `req`, without rendering its reason: for the items
    /// of a filtered list, where nothing reads it.
    pub fn allows(&self, req: &Request<'_>) -> bool {
        matches!(self.deciding(req), Some((Effect::Allow, ..)))
    }

    /// The policy that decides `req` — the first deny policy that matches, else the first allow
    /// policy — its effect, and how it matched; `None`: nothing matched (default deny).
    fn deciding(
        &self,
        req: &Request<'_>,
    ) -> Option<(Effect, &matching::CompiledPolicy, matching::Match)> {
        let server = self.servers.get(req.server)?;
        let candidates = server.candidates(req);
        let first_match = |list: &[u32]| {
            list.iter().find_map(|&i| {
                let p = server.policy(i);
                p.matches(req).map(|m| (p, m))
            })
        };
        if let Some((p, m)) = first_match(&candidates.deny) {
            return Some((Effect::Deny, p, m));
        }
        first_match(&candidates.allow).map(|(p, m)| (Effect::Allow, p, m))
    }

    /// Number of servers with at least one policy.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }
}

fn default_deny<'a>(req: &Request<'_>) -> Decision<'a> {
    Decision {
        effect: Effect::Deny,
        policy: None,
        reason: format!(
            "no AccessPolicy allows {} to use {} on McpServer {}",
            describe_principal(req.user, req.agent),
            req.operation,
            req.server
        ),
        credential_provider: None,
        policy_name: None,
        credential_provider_name: None,
    }
}

/// "user "alice" through agent "claude-code"", "agent "bot" acting alone", …
pub(crate) fn describe_principal(
    user: Option<&UserIdentity>,
    agent: Option<&AgentIdentity>,
) -> String {
    let mut out = String::new();
    push_principal(&mut out, user, agent);
    out
}

/// [`describe_principal`], appended to `out`. Decisions are made on every request; this
/// avoids the formatting machinery for the common case of ids that need no escaping.
pub(crate) fn push_principal(
    out: &mut String,
    user: Option<&UserIdentity>,
    agent: Option<&AgentIdentity>,
) {
    match (user, agent) {
        (Some(u), Some(a)) => {
            out.push_str("user ");
            push_quoted(out, &u.id);
            out.push_str(" through agent ");
            push_quoted(out, &a.id);
        }
        (Some(u), None) => {
            out.push_str("user ");
            push_quoted(out, &u.id);
            out.push_str(" (agent not identified)");
        }
        (None, Some(a)) => {
            out.push_str("agent ");
            push_quoted(out, &a.id);
            out.push_str(" acting alone");
        }
        (None, None) => out.push_str("an unauthenticated caller"),
    }
}

/// `s` quoted as `{:?}` would quote it.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ')
    {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        use std::fmt::Write;
        let _ = write!(out, "{s:?}");
    }
}

impl From<Action> for Effect {
    fn from(a: Action) -> Self {
        match a {
            Action::Allow => Effect::Allow,
            Action::Deny => Effect::Deny,
        }
    }
}

#[cfg(test)]
mod tests;
