//! `McpGateway`: a gateway deployment that serves MCP servers to agents.

use crate::conditions::CommonStatus;
use crate::refs::{SecretKeySelector, SecretSelector};
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An MCP gateway: agents connect to it as if it were an MCP server; it authenticates the user
/// and the agent, applies AccessPolicies, injects downstream credentials and relays the traffic.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "McpGateway",
    namespaced,
    status = "McpGatewayStatus",
    shortname = "mcpgw",
    category = "gatehouse",
    doc = "An MCP gateway deployment: authenticates users and agents, enforces AccessPolicies, injects downstream credentials and relays MCP traffic.",
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
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.publicUrl"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpGatewaySpec {
    /// Number of gateway replicas. Sessions are encrypted and bound to the user, so any replica
    /// serves any request: no sticky sessions are needed.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Where the gateway listens.
    #[serde(default)]
    pub listener: Listener,

    /// The canonical https URL agents use to reach this gateway (RFC 9728 protected resource).
    /// Advertised in `/.well-known/oauth-protected-resource` and used as the expected token
    /// audience. Each McpServer is served at `publicUrl` + its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://localhost') || self.startsWith('http://127.0.0.1')").message("publicUrl must be an https:// URL (plain http is allowed only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub public_url: Option<String>,

    /// TrustProviders (in this namespace) that may authenticate users and agents on this gateway.
    /// A request whose credentials no listed provider accepts gets `401`.
    #[schemars(length(min = 1))]
    pub trust_providers: Vec<String>,

    /// Which namespaces may attach McpServers to this gateway. Default: this namespace only.
    #[serde(default)]
    pub allowed_namespaces: AllowedNamespaces,

    /// Session settings (`Mcp-Session-Id` encryption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSettings>,

    /// Allowed values of the `Origin` header for browser-based clients (DNS-rebinding protection).
    /// Requests carrying any other Origin get `403`. Requests without Origin are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,

    /// The Kubernetes Service in front of the gateway pods.
    #[serde(default)]
    pub service: ServiceSettings,

    /// Where audit records (one JSON line per MCP message) go.
    #[serde(default)]
    pub audit: AuditSettings,

    /// Overrides for the gateway pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

fn default_replicas() -> i32 {
    1
}

/// The gateway's listener.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// Container port the gateway listens on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// TLS for the listener. Without it the gateway serves plain HTTP (terminate TLS in front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            port: default_port(),
            tls: None,
        }
    }
}

fn default_port() -> i32 {
    8080
}

/// TLS certificate for the listener.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTls {
    /// A `kubernetes.io/tls` Secret in this namespace with `tls.crt` and `tls.key`.
    pub secret_ref: SecretSelector,
}

/// Which namespaces may attach McpServers to a gateway (like Gateway API's `allowedRoutes`).
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("self.from == 'Selector' ? has(self.selector) : !has(self.selector)").message("allowedNamespaces.selector is required when from is Selector, and only then"))]
pub struct AllowedNamespaces {
    /// `Same` (default): only this namespace. `All`: every namespace. `Selector`: namespaces
    /// whose labels match `selector`.
    #[serde(default)]
    pub from: NamespacesFrom,
    /// Label selector over namespaces, when `from` is `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// See [`AllowedNamespaces::from`].
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
pub enum NamespacesFrom {
    /// Only the gateway's namespace.
    #[default]
    Same,
    /// Every namespace.
    All,
    /// Namespaces matching a label selector.
    Selector,
}

/// Session settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSettings {
    /// Secret key holding at least 32 random bytes, shared by every replica, from which the key
    /// that encrypts `Mcp-Session-Id` values is derived. Without it each replica generates its own
    /// key at start and sessions do not survive restarts or move between replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeySelector>,
    /// How long an idle session stays valid, e.g. `8h`.
    #[serde(default = "default_session_ttl")]
    #[x_kube(validation = kube::core::Rule::new(crate::duration::CEL_RULE).message("ttl must be a duration such as 30m or 8h"))]
    #[schemars(length(max = 2048))]
    pub ttl: String,
}

fn default_session_ttl() -> String {
    "8h".to_string()
}

/// The Service in front of the gateway.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSettings {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            type_: ServiceType::ClusterIP,
            port: default_service_port(),
        }
    }
}

fn default_service_port() -> i32 {
    80
}

/// Kubernetes Service type.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Exposed on every node's port.
    NodePort,
    /// Exposed through a cloud load balancer.
    LoadBalancer,
}

/// Audit settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("self.sink == 'File' ? has(self.path) : !has(self.path)").message("audit.path is required when sink is File, and only then"))]
pub struct AuditSettings {
    /// `Stdout` (default): one JSON line per MCP message on the gateway's standard output.
    /// `File`: appended to `path`. `None`: no audit records (not recommended).
    #[serde(default)]
    pub sink: AuditSink,
    /// File to append audit records to, when `sink` is `File`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            sink: AuditSink::Stdout,
            path: None,
        }
    }
}

/// Where audit records go.
#[derive(
    schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
pub enum AuditSink {
    /// Standard output.
    #[default]
    Stdout,
    /// A file.
    File,
    /// Nowhere.
    None,
}

/// Overrides for gateway pods.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodOverrides {
    /// Container image of the gateway; defaults to the operator's configured gateway image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node selector of the gateway pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the gateway pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Extra labels on the gateway pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the gateway pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Observed state of an McpGateway.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpGatewayStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of ready gateway pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Content hash of the configuration the operator last published for this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    /// The configuration version each replica has applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas_applied: Vec<ReplicaApplied>,
}

/// The configuration version one replica applied.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaApplied {
    /// Pod name.
    pub pod: String,
    /// Applied configuration version.
    pub version: String,
    /// Why the last pushed version was rejected, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}
