//! Workloads: for every McpGateway, and for every workload McpServer, the Deployment, Service,
//! ServiceAccount, PodDisruptionBudget (replicas > 1), Secret-scoped Role/RoleBinding, the
//! snapshot ConfigMap and (push over TLS) the operator CA ConfigMap, by server-side apply with
//! one field manager.
//!
//! [`desired`] is pure: published compilation in, objects out. The [`Applier`] applies what
//! changed since it last applied it, and prunes managed objects (by label) nobody wants any more.
//! Cleanup of deleted custom resources is the garbage collector's job (owner references); only
//! cross-namespace Roles need the prune.

pub mod objects;
pub mod rbac;

use crate::grant_secrets::GrantSecret;
use crate::metrics::Metrics;
use crate::names;
use crate::snapshots::Published;
use gatehouse_api::config::GatewayId;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
};
use kube::{Api, Client, ResourceExt};
use objects::GatewayParams;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Operator-wide workload settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Gateway container image.
    pub gateway_image: String,
    /// URL gateways use to reach the push server.
    pub push_url: String,
    /// PEM CA bundle gateways verify the push server with (`--push-ca`): copied into a
    /// ConfigMap per gateway deployment, mounted, and named by `--operator-ca`.
    pub operator_ca: Option<String>,
}

/// The kinds the operator manages, in apply order (identities and RBAC before the pods that
/// use them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ManagedKind {
    /// ServiceAccount.
    ServiceAccount,
    /// ConfigMap.
    ConfigMap,
    /// Role.
    Role,
    /// RoleBinding.
    RoleBinding,
    /// Deployment.
    Deployment,
    /// Service.
    Service,
    /// PodDisruptionBudget.
    PodDisruptionBudget,
}

impl ManagedKind {
    /// Every managed kind.
    pub const ALL: [ManagedKind; 7] = [
        ManagedKind::ServiceAccount,
        ManagedKind::ConfigMap,
        ManagedKind::Role,
        ManagedKind::RoleBinding,
        ManagedKind::Deployment,
        ManagedKind::Service,
        ManagedKind::PodDisruptionBudget,
    ];

    /// The API resource.
    pub fn api_resource(self) -> ApiResource {
        match self {
            ManagedKind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
            ManagedKind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            ManagedKind::Role => ApiResource::erase::<Role>(&()),
            ManagedKind::RoleBinding => ApiResource::erase::<RoleBinding>(&()),
            ManagedKind::Deployment => ApiResource::erase::<Deployment>(&()),
            ManagedKind::Service => ApiResource::erase::<Service>(&()),
            ManagedKind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
        }
    }
}

/// Identifies one managed object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// Kind.
    pub kind: ManagedKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// An object to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    /// Which object.
    pub id: ObjectId,
    /// The apply body (nulls removed).
    pub body: Value,
}

impl DesiredObject {
    /// Wraps an apply body (its `metadata.namespace`/`name` identify it).
    pub fn new(kind: ManagedKind, mut body: Value) -> Self {
        drop_nulls(&mut body);
        let id = ObjectId {
            kind,
            namespace: body["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .into(),
            name: body["metadata"]["name"].as_str().unwrap_or_default().into(),
        };
        Self { id, body }
    }
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `ownerReferences` naming the custom resource as controller, or null without a uid.
pub fn owner_json(owner: Option<&ObjectMeta>, kind: &str) -> Value {
    match owner.and_then(|o| Some((o.name.as_ref()?, o.uid.as_ref()?))) {
        Some((name, uid)) => json!([{
            "apiVersion": gatehouse_api::API_VERSION, "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]),
        None => Value::Null,
    }
}

/// What should exist.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Objects to apply, in apply order.
    pub objects: Vec<DesiredObject>,
    /// Deployments ([`names::deployment_label`]) whose ConfigMap and RBAC must be kept as they
    /// are: their snapshot did not compile, so the last known good one stays.
    pub keep: BTreeSet<String>,
}

/// Everything that should exist for a publication.
pub fn desired(p: &Published, s: &Settings) -> Desired {
    let mut out = Desired::default();
    let res = &p.resources;
    let gateways: BTreeMap<_, _> = res
        .gateways
        .iter()
        .map(|g| {
            let key = gatehouse_api::refs::ObjectKey::new(
                g.namespace().unwrap_or_default(),
                g.name_any(),
            );
            (key, g)
        })
        .collect();
    for (key, gw) in &gateways {
        let id = GatewayId::Gateway { key: key.clone() };
        let params = GatewayParams {
            id: &id,
            owner: &gw.metadata,
            owner_kind: "McpGateway",
            gateway: Some(&gw.spec),
            snapshot: p.snapshot(&id),
        };
        deployment_objects(&params, None, s, &p.grant_secrets, &mut out);
    }
    for srv in &res.servers {
        let Some(w) = &srv.spec.workload else {
            continue;
        };
        let ns = srv.namespace().unwrap_or_default();
        let gw_key = gatehouse_api::refs::ObjectKey::new(
            srv.spec
                .gateway_ref
                .namespace
                .clone()
                .unwrap_or_else(|| ns.clone()),
            &srv.spec.gateway_ref.name,
        );
        let id = GatewayId::Sidecar {
            server: gatehouse_api::refs::ObjectKey::new(ns, srv.name_any()),
        };
        let params = GatewayParams {
            id: &id,
            owner: &srv.metadata,
            owner_kind: "McpServer",
            gateway: gateways.get(&gw_key).map(|g| &g.spec),
            snapshot: p.snapshot(&id),
        };
        deployment_objects(&params, Some(w), s, &p.grant_secrets, &mut out);
    }
    out.objects.sort_by_key(|o| o.id.kind);
    out
}

fn deployment_objects(
    p: &GatewayParams,
    workload: Option<&gatehouse_api::server::Workload>,
    s: &Settings,
    grant_secrets: &BTreeSet<GrantSecret>,
    out: &mut Desired,
) {
    out.objects.push(objects::service_account(p));
    if let Some(ca) = &s.operator_ca {
        out.objects.push(objects::operator_ca_config_map(p, ca));
    }
    match p.snapshot {
        Some(snapshot) => {
            out.objects.push(objects::snapshot_config_map(p, snapshot));
            out.objects.extend(rbac::objects(
                p.id,
                Some(p.owner),
                p.owner_kind,
                snapshot,
                grant_secrets,
            ));
        }
        None => {
            out.keep.insert(names::deployment_label(p.id));
        }
    }
    let replicas = match workload {
        Some(w) => {
            out.objects.push(objects::sidecar_deployment(p, w, s));
            w.replicas
        }
        None => {
            out.objects.push(objects::gateway_deployment(p, s));
            p.gateway.map(|g| g.replicas).unwrap_or(1)
        }
    };
    out.objects.push(objects::service(p));
    if replicas > 1 {
        out.objects.push(objects::pod_disruption_budget(p));
    }
}

/// Applies desired objects, remembering what it applied so unchanged objects cost no API call.
pub struct Applier {
    client: Client,
    applied: HashMap<ObjectId, u64>,
    last_ids: Option<BTreeSet<ObjectId>>,
    metrics: Arc<Metrics>,
}

fn digest(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

impl Applier {
    /// A new applier (nothing applied yet: the first pass applies everything).
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            applied: HashMap::new(),
            last_ids: None,
            metrics,
        }
    }

    /// Forgets what was applied, so the next pass re-applies (and re-prunes) everything.
    pub fn resync(&mut self) {
        self.applied.clear();
        self.last_ids = None;
    }

    /// Applies every changed object, then prunes when the set of objects changed. Returns the
    /// number of failed API calls (failures are retried on the next pass).
    pub async fn reconcile(&mut self, desired: &Desired) -> usize {
        self.metrics.reconciled("workloads");
        let mut failures = 0;
        for obj in &desired.objects {
            let d = digest(&obj.body);
            if self.applied.get(&obj.id) == Some(&d) {
                continue;
            }
            match apply(&self.client, obj).await {
                Ok(()) => {
                    self.applied.insert(obj.id.clone(), d);
                }
                Err(e) => {
                    failures += 1;
                    self.metrics.failed("workloads");
                    self.applied.remove(&obj.id);
                    tracing::warn!(kind = ?obj.id.kind, namespace = %obj.id.namespace,
                        name = %obj.id.name, error = %e, "server-side apply failed");
                }
            }
        }
        let ids: BTreeSet<ObjectId> = desired.objects.iter().map(|o| o.id.clone()).collect();
        if self.last_ids.as_ref() != Some(&ids) {
            match prune(&self.client, &ids, &desired.keep).await {
                Ok(()) => self.last_ids = Some(ids),
                Err(e) => {
                    failures += 1;
                    self.metrics.failed("workloads");
                    tracing::warn!(error = %e, "pruning managed objects failed");
                }
            }
        }
        self.applied
            .retain(|id, _| desired.objects.iter().any(|o| &o.id == id));
        failures
    }
}

/// Server-side applies one object with the operator's field manager (forcing ownership: the
/// operator is the only writer of these fields).
pub async fn apply(client: &Client, obj: &DesiredObject) -> Result<(), kube::Error> {
    let ar = obj.id.kind.api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &obj.id.namespace, &ar);
    api.patch(
        &obj.id.name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(&obj.body),
    )
    .await?;
    tracing::info!(kind = ?obj.id.kind, namespace = %obj.id.namespace, name = %obj.id.name, "applied");
    Ok(())
}

/// Deletes managed objects (by label) that are not in `wanted`, except the ConfigMaps and RBAC
/// of deployments in `keep`.
pub async fn prune(
    client: &Client,
    wanted: &BTreeSet<ObjectId>,
    keep: &BTreeSet<String>,
) -> Result<(), kube::Error> {
    for kind in ManagedKind::ALL {
        let ar = kind.api_resource();
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = all
            .list(&ListParams::default().labels(names::MANAGED_SELECTOR))
            .await?;
        for o in list.items {
            let id = ObjectId {
                kind,
                namespace: o.namespace().unwrap_or_default(),
                name: o.name_any(),
            };
            let kept = matches!(
                kind,
                ManagedKind::ConfigMap | ManagedKind::Role | ManagedKind::RoleBinding
            ) && o
                .labels()
                .get(names::DEPLOYMENT_LABEL)
                .is_some_and(|l| keep.contains(l));
            if wanted.contains(&id) || kept || o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &id.namespace, &ar);
            match api.delete(&id.name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(?kind, namespace = %id.namespace, name = %id.name, "pruned")
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
