//! Least-privilege Secret access for a gateway deployment: in every namespace holding a Secret
//! its snapshot references, a Role granting `get`, `watch`, `list` on exactly those Secrets
//! (`resourceNames`), bound to the deployment's ServiceAccount.
//!
//! Per-user consent grants (`oauth2AuthorizationCode` in cluster mode): in the namespace of
//! each such provider the snapshot uses, `create` on Secrets (RBAC cannot restrict `create` by
//! name; creating reads nothing), and `get`/`update`/`delete` on exactly the grant Secrets of
//! those providers that exist ([`GrantSecret`]: grant type and name, provider label). See
//! `charts/gatehouse/README.md#rbac` for why this is the least that works.
//!
//! A Role with no Secrets has **no rules** (an empty `resourceNames` would grant every Secret).

use super::{DesiredObject, ManagedKind, owner_json};
use crate::grant_secrets::GrantSecret;
use crate::names;
use gatehouse_api::config::{CredentialSource, GatewayConfig, GatewayId};
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// What a gateway may do with the Secrets of one namespace.
#[derive(Default)]
struct Access<'a> {
    /// Referenced Secrets: read and watch.
    read: BTreeSet<&'a str>,
    /// Names of its `oauth2AuthorizationCode` providers here: may create grant Secrets.
    grant_providers: BTreeSet<&'a str>,
    /// Existing grant Secrets of those providers: get, update, delete.
    grants: BTreeSet<&'a str>,
}

/// The Roles and RoleBindings for `id`'s snapshot. The one in the deployment's own namespace
/// always exists (owned by the custom resource); the others carry no owner reference (owners
/// cannot cross namespaces) and are pruned by label when no longer needed.
pub fn objects<'a>(
    id: &GatewayId,
    owner: Option<&ObjectMeta>,
    owner_kind: &str,
    snapshot: &'a GatewayConfig,
    grant_secrets: &'a BTreeSet<GrantSecret>,
) -> Vec<DesiredObject> {
    let home = &names::base(id).namespace;
    let mut by_ns: BTreeMap<&str, Access> = BTreeMap::new();
    by_ns.entry(home.as_str()).or_default();
    for s in &snapshot.secrets {
        by_ns
            .entry(s.namespace.as_str())
            .or_default()
            .read
            .insert(s.name.as_str());
    }
    for p in &snapshot.credential_providers {
        if matches!(p.source, CredentialSource::OAuth2AuthorizationCode { .. }) {
            by_ns
                .entry(p.key.namespace.as_str())
                .or_default()
                .grant_providers
                .insert(p.key.name.as_str());
        }
    }
    for g in grant_secrets {
        if let Some(access) = by_ns.get_mut(g.namespace.as_str())
            && access.grant_providers.contains(g.provider.as_str())
        {
            access.grants.insert(g.name.as_str());
        }
    }
    let name = names::service_account(id);
    let labels = names::labels(id);
    let mut out = Vec::new();
    for (ns, access) in by_ns {
        let owners = if ns == home.as_str() {
            owner_json(owner, owner_kind)
        } else {
            Value::Null
        };
        let mut rules: Vec<Value> = Vec::new();
        if !access.read.is_empty() {
            rules.push(json!({
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get", "watch", "list"],
                "resourceNames": access.read,
            }));
        }
        if !access.grant_providers.is_empty() {
            rules.push(json!({
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["create"],
            }));
        }
        if !access.grants.is_empty() {
            rules.push(json!({
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get", "update", "delete"],
                "resourceNames": access.grants,
            }));
        }
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
