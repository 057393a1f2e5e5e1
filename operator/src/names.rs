//! Names and labels of the objects the operator creates, in one place so the workloads, the
//! push server (which ServiceAccount may fetch which snapshot) and status agree.
//!
//! For an McpGateway `gw` (and likewise for the sidecar of a workload McpServer `srv`):
//!
//! | object | name |
//! |---|---|
//! | Deployment, Service, PodDisruptionBudget | `gw` |
//! | ServiceAccount, Role, RoleBinding | `gw-gatehouse` |
//! | ConfigMap (last-known-good snapshot) | `gw-gatehouse-snapshot` |
//! | ConfigMap (CA of the operator's push endpoint) | `gw-gatehouse-operator-ca` |

use gatehouse_api::config::GatewayId;
use gatehouse_api::refs::ObjectKey;
use std::collections::BTreeMap;

/// The single server-side-apply field manager of the operator.
pub const FIELD_MANAGER: &str = "gatehouse-operator";
/// `app.kubernetes.io/managed-by` value on everything the operator creates.
pub const MANAGED_BY: &str = "gatehouse-operator";
/// Label naming the gateway deployment (`gateway.NS.NAME` / `sidecar.NS.NAME`) an object serves.
pub const DEPLOYMENT_LABEL: &str = "gatehouse.dev/deployment";
/// Selector matching everything the operator manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=gatehouse-operator";
/// Admin (health, readiness, metrics) port of gateway containers.
pub const ADMIN_PORT: i32 = 9090;
/// Where gateway containers mount their operator CA ConfigMap.
pub const OPERATOR_CA_DIR: &str = "/etc/gatehouse/operator-ca";
/// The CA bundle's key in that ConfigMap (and file name in the mount).
pub const OPERATOR_CA_FILE: &str = "ca.crt";

/// The namespace/name every per-deployment object is named after.
pub fn base(id: &GatewayId) -> &ObjectKey {
    match id {
        GatewayId::Gateway { key } => key,
        GatewayId::Sidecar { server } => server,
    }
}

/// Deployment, Service and PodDisruptionBudget name.
pub fn workload(id: &GatewayId) -> String {
    base(id).name.clone()
}

/// ServiceAccount, Role and RoleBinding name.
pub fn service_account(id: &GatewayId) -> String {
    gatehouse_api::push::service_account_name(id)
}

/// ConfigMap holding the last-known-good snapshot.
pub fn snapshot_config_map(id: &GatewayId) -> String {
    format!("{}-gatehouse-snapshot", base(id).name)
}

/// ConfigMap holding the CA bundle the deployment verifies the operator's push endpoint with.
pub fn operator_ca_config_map(id: &GatewayId) -> String {
    format!("{}-gatehouse-operator-ca", base(id).name)
}

/// Value of [`DEPLOYMENT_LABEL`] (label values cannot contain `/`).
pub fn deployment_label(id: &GatewayId) -> String {
    let (kind, key) = match id {
        GatewayId::Gateway { key } => ("gateway", key),
        GatewayId::Sidecar { server } => ("sidecar", server),
    };
    format!("{kind}.{}.{}", key.namespace, key.name)
}

/// Pod selector labels of a gateway deployment.
pub fn selector_labels(id: &GatewayId) -> BTreeMap<String, String> {
    let component = match id {
        GatewayId::Gateway { .. } => "gateway",
        GatewayId::Sidecar { .. } => "mcp-server",
    };
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "gatehouse".into()),
        ("app.kubernetes.io/instance".into(), base(id).name.clone()),
        ("app.kubernetes.io/component".into(), component.into()),
    ])
}

/// Labels on every object of a gateway deployment.
pub fn labels(id: &GatewayId) -> BTreeMap<String, String> {
    let mut l = selector_labels(id);
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert(DEPLOYMENT_LABEL.into(), deployment_label(id));
    l
}

/// The Kubernetes username of the ServiceAccount allowed to fetch `id`'s snapshots.
pub fn service_account_user(id: &GatewayId) -> String {
    format!(
        "system:serviceaccount:{}:{}",
        base(id).namespace,
        service_account(id)
    )
}

/// The in-cluster URL of a gateway deployment's Service (`http[s]://NAME.NS.svc[:PORT]`).
pub fn service_url(id: &GatewayId, port: i32, tls: bool) -> String {
    let key = base(id);
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    if port == default_port {
        format!("{scheme}://{}.{}.svc", key.name, key.namespace)
    } else {
        format!("{scheme}://{}.{}.svc:{port}", key.name, key.namespace)
    }
}
