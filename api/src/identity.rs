//! Who is making a request: the human user and the agent, verified by TrustProviders.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A verified human user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserIdentity {
    /// Stable user id (the mapped `sub` claim or an API-key principal).
    pub id: String,
    /// Email, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Name of the TrustProvider that verified the user.
    pub provider: String,
    /// Other claims, for policy `claims` matches and CEL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
}

/// How an agent was identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AgentKind {
    /// The OAuth client of the user's token, or of a client-credentials token.
    ClientId,
    /// A Kubernetes ServiceAccount (`namespace/name`).
    ServiceAccount,
    /// A SPIFFE id from a client certificate.
    Spiffe,
    /// Any other id: an API-key principal, a certificate DNS name or common name.
    Other,
}

impl AgentKind {
    /// The kind as shown in audit records and CEL.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::ClientId => "clientId",
            AgentKind::ServiceAccount => "serviceAccount",
            AgentKind::Spiffe => "spiffe",
            AgentKind::Other => "other",
        }
    }
}

/// A verified agent (MCP client).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentIdentity {
    /// How the agent was identified.
    pub kind: AgentKind,
    /// The agent's id of that kind.
    pub id: String,
    /// Name of the TrustProvider that verified the agent.
    pub provider: String,
}

impl AgentIdentity {
    /// An agent identified by OAuth client id.
    pub fn client(id: &str, provider: &str) -> Self {
        Self {
            kind: AgentKind::ClientId,
            id: id.to_string(),
            provider: provider.to_string(),
        }
    }
}
