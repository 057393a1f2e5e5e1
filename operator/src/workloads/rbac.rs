//! Least-privilege Secret access for a gateway deployment: in every namespace holding a Secret
//! its snapshot references, a Role granting `get`, `watch`, `list` on exactly those Secrets
//! (`resourceNames`), bound to the deployment's ServiceAccount.
//!
//! A Role with no Secrets has **no rules** (an empty `resourceNames` would grant every Secret).

use super::{DesiredObject, ManagedKind, owner_json};
use crate::names;
use gatehouse_api::config::{GatewayConfig, GatewayId};
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The Roles and RoleBindings for `id`'s snapshot. The one in the deployment's own namespace
/// always exists (owned by the custom resource); the others carry no owner reference (owners
/// cannot cross namespaces) and are pruned by label when no longer needed.
pub fn objects(
    id: &GatewayId,
    owner: Option<&ObjectMeta>,
    owner_kind: &str,
    snapshot: &GatewayConfig,
) -> Vec<DesiredObject> {
    let home = &names::base(id).namespace;
    let mut by_ns: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    by_ns.entry(home.as_str()).or_default();
    for s in &snapshot.secrets {
        by_ns
            .entry(s.namespace.as_str())
            .or_default()
            .insert(s.name.as_str());
    }
    let name = names::service_account(id);
    let labels = names::labels(id);
    let mut out = Vec::new();
    for (ns, secrets) in by_ns {
        let owners = if ns == home.as_str() {
            owner_json(owner, owner_kind)
        } else {
            Value::Null
        };
        let rules: Vec<Value> = if secrets.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get", "watch", "list"],
                "resourceNames": secrets,
            })]
        };
        out.push(DesiredObject::new(
            ManagedKind::Role,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owners},
                "rules": rules,
            }),
        ));
        out.push(DesiredObject::new(
            ManagedKind::RoleBinding,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owners},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": home}],
            }),
        ));
    }
    out
}
