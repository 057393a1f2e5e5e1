//! `AccessPolicy`: which users, through which agents, may reach which MCP servers and which of
//! their tools, resources and prompts — and with which downstream credential.

use crate::conditions::CommonStatus;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Grants (or denies) users and agents access to MCP servers, down to tools, resources and
/// prompts. Semantics: default deny; any matching `Deny` wins; otherwise the first matching
/// `Allow` by `namespace/name` order decides, and its target's credential provider is used.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "AccessPolicy",
    namespaced,
    status = "AccessPolicyStatus",
    shortname = "mcpap",
    category = "gatehouse",
    doc = "Which users, through which agents, may reach which MCP servers, tools, resources and prompts, with which downstream credential.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.action"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("self.action == 'Allow' || self.targets.all(t, !has(t.credentialProvider))").message("a Deny policy grants nothing, so its targets cannot name a credentialProvider"))]
pub struct AccessPolicySpec {
    /// `Allow` (default) or `Deny`. A matching Deny overrides every Allow.
    #[serde(default)]
    pub action: Action,
    /// Who the policy applies to: a request matches when it matches any entry.
    #[schemars(length(min = 1, max = 64))]
    pub subjects: Vec<Subject>,
    /// Which servers, and which of their tools, resources and prompts.
    #[schemars(length(min = 1, max = 64))]
    pub targets: Vec<Target>,
    /// Optional CEL condition; the policy applies only when it evaluates to `true`. Variables:
    /// `user` (`{id, email, groups, claims, provider}` or null), `agent` (`{id, kind, provider}`
    /// or null), `server` (`{namespace, name}`), `request` (`{method, tool, resource, prompt,
    /// arguments}`), `now` (timestamp: when the message arrived; for list filtering, when the
    /// list is filtered). Functions: CEL's standard ones except `matches` (no
    /// regular expressions), plus `lowerAscii()` and `upperAscii()`; an expression calling any
    /// other is refused. An evaluation error counts as "no match" for Allow and
    /// as "match" for Deny (fail closed). List filtering (`tools/list`, …) decides each item with
    /// empty `request.arguments`, so guard argument checks with `has()`, e.g.
    /// `!has(request.arguments.sql) || !request.arguments.sql.contains('drop ')`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub when: Option<String>,
}

/// Effect of a policy.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Grant access.
    #[default]
    Allow,
    /// Deny access, overriding any Allow.
    Deny,
}

/// One subject entry: a user selector, an agent selector, or both.
///
/// - `users` set: the request must carry a user matching it (`users: {}` matches any user).
/// - `users` omitted: the entry matches only agents acting alone (requests with no user).
/// - `agents` set: the request's agent must match it. Omitted: any agent, or none.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("has(self.users) || has(self.agents)").message("a subject needs users, agents, or both (users: {} matches every user)"))]
pub struct Subject {
    /// Which users. Fields are ANDed; entries within a list are ORed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UserSelector>,
    /// Which agents. The agent matches when its id matches any listed entry of its kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentSelector>,
}

/// Selects users. Every field that is set must match; within a list any entry may match.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSelector {
    /// Only users verified by this TrustProvider (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_provider: Option<String>,
    /// User ids (the mapped `sub` claim, or an API key's principal). Globs allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Email addresses; globs allowed, e.g. `*@example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    /// Groups; the user must be in at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Claims that must have these exact values (for array claims: contain the value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// Selects agents.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSelector {
    /// Only agents verified by this TrustProvider (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_provider: Option<String>,
    /// OAuth client ids (the user token's `azp`/`client_id`, or a client-credentials token's
    /// client). Globs allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_ids: Vec<String>,
    /// Kubernetes ServiceAccounts as `namespace/name`. Globs allowed (`team-a/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// SPIFFE ids from client certificates. Globs allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spiffe_ids: Vec<String>,
    /// Other agent ids (API-key principals, certificate DNS names or common names). Globs allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

/// A server the policy applies to, and what on it.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// Name of an McpServer in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub server: String,
    /// Namespace of the server. Policies can only target servers in their own namespace; any
    /// other value is refused with `RefNotPermitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// CredentialProvider (in this namespace) whose credential is injected when this policy
    /// allows a request. Omit for upstreams that need no credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_provider: Option<String>,
    /// Tools by name. Omitted: all tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<NameFilter>,
    /// Resources by URI. Omitted: all resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<NameFilter>,
    /// Prompts by name. Omitted: all prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<NameFilter>,
}

/// Glob lists over names (`*` any run of characters, `?` one character, `[abc]` a class).
/// A name passes when it matches `allow` (or `allow` is omitted) and matches no `deny`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("!has(self.allow) || self.allow.size() > 0").message("allow is empty, which allows nothing: omit allow to allow every name not denied, or list the names"))]
pub struct NameFilter {
    /// Names allowed. Omit to allow every name not denied; an empty list is refused (it would
    /// allow nothing — use a Deny policy or remove the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Names refused even when allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Observed state of an AccessPolicy.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
}
