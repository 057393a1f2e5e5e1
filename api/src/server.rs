//! `McpServer`: an upstream MCP server served through a gateway.

use crate::conditions::CommonStatus;
use crate::refs::SecretKeySelector;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An upstream MCP server, reached by agents through a gateway at `path`.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "McpServer",
    namespaced,
    status = "McpServerStatus",
    shortname = "mcpsrv",
    category = "gatehouse",
    doc = "An upstream MCP server (remote URL, in-cluster Service, or a workload run with a Gatehouse sidecar) served to agents through a gateway.",
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
    printcolumn(
        name = "Gateway",
        type_ = "string",
        json_path = ".spec.gatewayRef.name"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("[has(self.url), has(self.service), has(self.workload)].filter(x, x).size() == 1").message("set exactly one of url, service or workload"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.transport) || self.transport != 'Stdio' || has(self.workload)").message("transport Stdio is only possible for a workload (the sidecar starts the process)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.path) || self.path.startsWith('/')").message("path must start with '/'"))]
pub struct McpServerSpec {
    /// The McpGateway that serves this server. For a `workload` server, the gateway whose
    /// settings (trust providers, session, audit) the sidecar gateway uses.
    pub gateway_ref: GatewayRef,

    /// URL of a remote MCP endpoint (e.g. a SaaS MCP server), `https://…` or `http://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("url must start with https:// or http://"))]
    #[schemars(length(max = 2048))]
    pub url: Option<String>,

    /// An in-cluster Service in this namespace running the MCP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceUpstream>,

    /// A container the operator runs with a Gatehouse sidecar gateway in the same pod; the MCP
    /// server is reachable only through the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,

    /// How the gateway talks to the upstream. Default `StreamableHttp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,

    /// Path on the gateway where agents reach this server. Default `/mcp/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// TLS settings for https upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,

    /// Timeouts for upstream calls.
    #[serde(default)]
    pub timeouts: Timeouts,

    /// When set, tool names are exposed to agents as `<toolPrefix><name>` (and the prefix is
    /// removed before relaying), so several servers can be aggregated without clashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9_.-]+$')").message("toolPrefix may contain only letters, digits, '_', '.' and '-'"))]
    #[schemars(length(max = 2048))]
    pub tool_prefix: Option<String>,
}

/// A reference to an McpGateway.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRef {
    /// Name of the McpGateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the McpGateway; defaults to this McpServer's namespace. A gateway in another
    /// namespace must admit this namespace in `spec.allowedNamespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// An in-cluster Service upstream.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceUpstream {
    /// Service name, in this namespace.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Service port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// HTTP path of the MCP endpoint on the Service. Default `/mcp`.
    #[serde(default = "default_upstream_path")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('/')").message("service.path must start with '/'"))]
    #[schemars(length(max = 2048))]
    pub path: String,
    /// Use https to reach the Service.
    #[serde(default)]
    pub https: bool,
}

fn default_upstream_path() -> String {
    "/mcp".to_string()
}

/// An MCP server container run by the operator next to a Gatehouse sidecar.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("self.transport == 'Stdio' || has(self.port)").message("workload.port is required unless workload.transport is Stdio"))]
pub struct Workload {
    /// Container image of the MCP server.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables of the MCP server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Port the MCP server listens on inside the pod (bound to localhost; only the sidecar is
    /// exposed). Required unless `transport` is `Stdio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// HTTP path of the MCP endpoint in the container. Default `/mcp`.
    #[serde(default = "default_upstream_path")]
    pub path: String,
    /// How the sidecar talks to the server: `StreamableHttp` (default) or `Stdio` (the sidecar
    /// starts the server's command and speaks MCP over its stdin/stdout).
    #[serde(default)]
    pub transport: WorkloadTransport,
    /// Number of pods.
    #[serde(default = "default_workload_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Compute resources of the MCP server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The canonical URL agents use to reach this server's Service, advertised as the OAuth
    /// protected resource. Defaults to the in-cluster Service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

fn default_workload_replicas() -> i32 {
    1
}

/// Upstream transport.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// MCP Streamable HTTP (2025-03-26 and later).
    #[default]
    StreamableHttp,
    /// Legacy HTTP+SSE transport (2024-11-05).
    Sse,
    /// stdio, only for `workload` servers.
    Stdio,
}

/// Workload transport.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadTransport {
    /// MCP Streamable HTTP on `port`.
    #[default]
    StreamableHttp,
    /// stdin/stdout of the container's process, bridged by the sidecar.
    Stdio,
}

/// TLS for https upstreams.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM CA bundle to verify the upstream with, instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeySelector>,
    /// Server name to verify, when it differs from the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Upstream timeouts.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Time to establish a connection. Default `5s`.
    #[serde(default = "default_connect")]
    #[x_kube(validation = kube::core::Rule::new(crate::duration::CEL_RULE).message("timeouts.connect must be a duration such as 5s"))]
    #[schemars(length(max = 2048))]
    pub connect: String,
    /// Time until the upstream's response starts (headers), for each request. Default `60s`.
    #[serde(default = "default_request")]
    #[x_kube(validation = kube::core::Rule::new(crate::duration::CEL_RULE).message("timeouts.request must be a duration such as 60s"))]
    #[schemars(length(max = 2048))]
    pub request: String,
    /// An SSE stream with no event for this long is closed. Default `1h`.
    #[serde(default = "default_idle")]
    #[x_kube(validation = kube::core::Rule::new(crate::duration::CEL_RULE).message("timeouts.streamIdle must be a duration such as 1h"))]
    #[schemars(length(max = 2048))]
    pub stream_idle: String,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            request: default_request(),
            stream_idle: default_idle(),
        }
    }
}

fn default_connect() -> String {
    "5s".to_string()
}
fn default_request() -> String {
    "60s".to_string()
}
fn default_idle() -> String {
    "1h".to_string()
}

/// Observed state of an McpServer.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The URL agents should use to reach this server through its gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
