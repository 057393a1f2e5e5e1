//! The Deployment, Service, ServiceAccount, PodDisruptionBudget, snapshot ConfigMap and
//! operator CA ConfigMap of a gateway deployment: a standalone McpGateway, or a workload McpServer with its sidecar.

use super::{DesiredObject, ManagedKind, Settings, owner_json};
use crate::names;
use gatehouse_api::config::{GatewayConfig, GatewayId};
use gatehouse_api::gateway::{McpGatewaySpec, ServiceType};
use gatehouse_api::push::{SNAPSHOT_DIR, SNAPSHOT_FILE, TOKEN_AUDIENCE, TOKEN_PATH};
use gatehouse_api::server::Workload;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

/// Where the gateway's own settings come from.
pub struct GatewayParams<'a> {
    /// The deployment.
    pub id: &'a GatewayId,
    /// The owning custom resource's metadata (uid for owner references).
    pub owner: &'a ObjectMeta,
    /// `McpGateway` or `McpServer`.
    pub owner_kind: &'a str,
    /// The McpGateway spec whose settings apply (defaults when it is missing).
    pub gateway: Option<&'a McpGatewaySpec>,
    /// Its current snapshot, if it compiled.
    pub snapshot: Option<&'a GatewayConfig>,
}

impl GatewayParams<'_> {
    /// Port the gateway (or sidecar) listens on.
    pub fn listener_port(&self) -> i32 {
        self.snapshot
            .map(|s| i32::from(s.listener.port))
            .or(self.gateway.map(|g| g.listener.port))
            .unwrap_or(8080)
    }

    /// Whether the listener serves HTTPS with the certificate of `spec.listener.tls`: the
    /// snapshot says, or (when it did not compile) the McpGateway spec.
    pub fn listener_tls(&self) -> bool {
        self.snapshot
            .map(|s| s.listener.tls.is_some())
            .or(self.gateway.map(|g| g.listener.tls.is_some()))
            .unwrap_or(false)
    }

    /// Name (and `appProtocol`) of the listener's container and Service port.
    pub fn listener_port_name(&self) -> &'static str {
        if self.listener_tls() { "https" } else { "http" }
    }

    /// Port of the Service in front of it.
    pub fn service_port(&self) -> i32 {
        self.gateway.map(|g| g.service.port).unwrap_or(80)
    }

    fn meta(&self, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": names::base(self.id).namespace,
            "labels": names::labels(self.id),
            "ownerReferences": owner_json(Some(self.owner), self.owner_kind),
        })
    }
}

/// The ServiceAccount whose projected token authenticates the deployment to the operator.
pub fn service_account(p: &GatewayParams) -> DesiredObject {
    DesiredObject::new(
        ManagedKind::ServiceAccount,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": p.meta(&names::service_account(p.id))}),
    )
}

/// The last-known-good snapshot, mounted by the pods. Only references, never Secret values:
/// snapshots carry `SecretRef`s only.
pub fn snapshot_config_map(p: &GatewayParams, snapshot: &GatewayConfig) -> DesiredObject {
    let json = serde_json::to_string_pretty(snapshot).expect("snapshots serialize");
    let mut meta = p.meta(&names::snapshot_config_map(p.id));
    meta["annotations"] = json!({"gatehouse.dev/config-version": snapshot.version});
    DesiredObject::new(
        ManagedKind::ConfigMap,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
               "data": {SNAPSHOT_FILE: json}}),
    )
}

/// The CA bundle of the operator's push endpoint, mounted by the pods (`--operator-ca`). Its
/// content can change (a CA rotation) without rolling the pods: the kubelet updates the mounted
/// file and the gateway re-reads it when it reconnects.
pub fn operator_ca_config_map(p: &GatewayParams, ca_pem: &str) -> DesiredObject {
    DesiredObject::new(
        ManagedKind::ConfigMap,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": p.meta(&names::operator_ca_config_map(p.id)),
               "data": {names::OPERATOR_CA_FILE: ca_pem}}),
    )
}

/// The gateway container: the same binary for a standalone gateway and a sidecar.
pub fn gateway_container(p: &GatewayParams, s: &Settings) -> Value {
    let image = p
        .gateway
        .and_then(|g| g.pod.as_ref())
        .and_then(|o| o.image.clone())
        .unwrap_or_else(|| s.gateway_image.clone());
    let key = names::base(p.id);
    let (flag, which) = match p.id {
        GatewayId::Gateway { .. } => ("--gateway", key.to_string()),
        GatewayId::Sidecar { .. } => ("--sidecar", key.to_string()),
    };
    let port = p.listener_port();
    let token_dir = TOKEN_PATH
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or(TOKEN_PATH);
    let resources = match p.id {
        GatewayId::Gateway { .. } => p
            .gateway
            .and_then(|g| g.pod.as_ref())
            .and_then(|o| o.resources.as_ref())
            .map(|r| serde_json::to_value(r).expect("resources serialize")),
        GatewayId::Sidecar { .. } => None,
    };
    // Probes use the admin listener, which is plain HTTP on its own port whether or not the MCP
    // listener serves TLS; with TLS, `/readyz` stays 503 until the certificate is loaded.
    let probe = |path: &str| {
        json!({"httpGet": {"path": path, "port": "admin", "scheme": "HTTP"}, "periodSeconds": 5,
               "timeoutSeconds": 2, "failureThreshold": 3})
    };
    let mut args = vec![
        json!("run"),
        json!("--cluster"),
        json!(flag),
        json!(which),
        json!("--operator"),
        json!(s.push_url),
        json!("--listen"),
        json!(format!("0.0.0.0:{port}")),
        json!("--admin-listen"),
        json!(format!("0.0.0.0:{}", names::ADMIN_PORT)),
    ];
    if s.operator_ca.is_some() {
        args.push(json!("--operator-ca"));
        args.push(json!(format!(
            "{}/{}",
            names::OPERATOR_CA_DIR,
            names::OPERATOR_CA_FILE
        )));
    }
    if p.listener_tls() {
        // Fixed when the listener binds; a change of spec.listener.tls re-renders the args and
        // so rolls the pods.
        args.push(json!("--listener-tls"));
    }
    let mut mounts = vec![
        json!({"name": "gatehouse-token", "mountPath": token_dir, "readOnly": true}),
        json!({"name": "snapshot", "mountPath": SNAPSHOT_DIR, "readOnly": true}),
    ];
    if s.operator_ca.is_some() {
        mounts.push(
            json!({"name": "operator-ca", "mountPath": names::OPERATOR_CA_DIR, "readOnly": true}),
        );
    }
    mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));
    json!({
        "name": "gatehouse",
        "image": image,
        "args": args,
        "ports": [
            {"name": p.listener_port_name(), "containerPort": port, "protocol": "TCP"},
            {"name": "admin", "containerPort": names::ADMIN_PORT, "protocol": "TCP"},
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "readinessProbe": probe("/readyz"),
        "livenessProbe": probe("/healthz"),
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    })
}

fn volumes(p: &GatewayParams, s: &Settings) -> Value {
    let token_file = TOKEN_PATH.rsplit('/').next().unwrap_or("token");
    let mut volumes = vec![
        json!({"name": "gatehouse-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": TOKEN_AUDIENCE, "expirationSeconds": 3600, "path": token_file}}]}}),
        json!({"name": "snapshot", "configMap": {"name": names::snapshot_config_map(p.id), "optional": true}}),
    ];
    if s.operator_ca.is_some() {
        // Optional like the snapshot: a pod whose CA ConfigMap is missing still starts from
        // its last-known-good snapshot, and the gateway says why it cannot reach the operator.
        volumes.push(json!({"name": "operator-ca", "configMap": {
            "name": names::operator_ca_config_map(p.id), "optional": true}}));
    }
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    Value::Array(volumes)
}

fn deployment(
    p: &GatewayParams,
    s: &Settings,
    replicas: i32,
    containers: Vec<Value>,
    pod_sc: Value,
) -> Value {
    let overrides = match p.id {
        GatewayId::Gateway { .. } => p.gateway.and_then(|g| g.pod.as_ref()),
        GatewayId::Sidecar { .. } => None,
    };
    let mut pod_labels = overrides.map(|o| o.labels.clone()).unwrap_or_default();
    pod_labels.extend(names::selector_labels(p.id));
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": p.meta(&names::workload(p.id)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": names::selector_labels(p.id)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": overrides.filter(|o| !o.annotations.is_empty()).map(|o| &o.annotations),
                },
                "spec": {
                    "serviceAccountName": names::service_account(p.id),
                    "securityContext": pod_sc,
                    "nodeSelector": overrides.filter(|o| !o.node_selector.is_empty()).map(|o| &o.node_selector),
                    "tolerations": overrides.filter(|o| !o.tolerations.is_empty()).map(|o| &o.tolerations),
                    "containers": containers,
                    "volumes": volumes(p, s),
                },
            },
        },
    })
}

/// The Deployment of a standalone gateway.
pub fn gateway_deployment(p: &GatewayParams, s: &Settings) -> DesiredObject {
    let replicas = p.gateway.map(|g| g.replicas).unwrap_or(1);
    let pod_sc = json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    DesiredObject::new(
        ManagedKind::Deployment,
        deployment(p, s, replicas, vec![gateway_container(p, s)], pod_sc),
    )
}

/// The Deployment of a workload McpServer: the MCP server, bound to localhost, and the
/// Gatehouse sidecar, the only container with an exposed port.
pub fn sidecar_deployment(p: &GatewayParams, w: &Workload, s: &Settings) -> DesiredObject {
    let mut env = vec![json!({"name": "HOST", "value": "127.0.0.1"})];
    env.extend(
        w.env
            .iter()
            .map(|e| serde_json::to_value(e).expect("env serializes")),
    );
    let server = json!({
        "name": "mcp-server",
        "image": w.image,
        "command": (!w.command.is_empty()).then_some(&w.command),
        "args": (!w.args.is_empty()).then_some(&w.args),
        "env": env,
        "resources": w.resources.as_ref().map(|r| serde_json::to_value(r).expect("resources serialize")),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    // The MCP server's image is the user's: run it non-root only if it says so; the sidecar
    // container enforces non-root itself.
    let pod_sc = json!({"seccompProfile": {"type": "RuntimeDefault"}});
    DesiredObject::new(
        ManagedKind::Deployment,
        deployment(
            p,
            s,
            w.replicas,
            vec![server, gateway_container(p, s)],
            pod_sc,
        ),
    )
}

/// The Service in front of the deployment: `service.port` → the listener port.
pub fn service(p: &GatewayParams) -> DesiredObject {
    let type_ = match p.id {
        GatewayId::Gateway { .. } => match p.gateway.map(|g| g.service.type_) {
            Some(ServiceType::NodePort) => "NodePort",
            Some(ServiceType::LoadBalancer) => "LoadBalancer",
            _ => "ClusterIP",
        },
        GatewayId::Sidecar { .. } => "ClusterIP",
    };
    DesiredObject::new(
        ManagedKind::Service,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": p.meta(&names::workload(p.id)),
            "spec": {
                "type": type_,
                "selector": names::selector_labels(p.id),
                "ports": [{"name": p.listener_port_name(), "port": p.service_port(),
                           "targetPort": p.listener_port_name(), "protocol": "TCP",
                           "appProtocol": p.listener_port_name()}],
            },
        }),
    )
}

/// A PodDisruptionBudget keeping all but one replica up during voluntary disruptions.
pub fn pod_disruption_budget(p: &GatewayParams) -> DesiredObject {
    DesiredObject::new(
        ManagedKind::PodDisruptionBudget,
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": p.meta(&names::workload(p.id)),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": names::selector_labels(p.id)}},
        }),
    )
}
