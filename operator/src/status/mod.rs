//! Status: `Accepted`, `ResolvedRefs`, `Programmed` and `Ready` on every custom resource, plus
//! `McpServer.status.url` and the McpGateway's replicas and versions. Written only by the
//! leader, through the status subresource, only when something changed, with the observed
//! `resourceVersion` as precondition (a 409 re-reads the object and tries again). Events mark
//! notable transitions.

pub mod conditions;

use crate::index::Index;
use crate::metrics::Metrics;
use crate::names;
use crate::replicas::Fleet;
use crate::snapshots::Published;
use gatehouse_api::conditions::{ACCEPTED, ConditionStatus, READY, RESOLVED_REFS};
use gatehouse_api::config::GatewayId;
use gatehouse_api::refs::{Kind, ObjectKey, ObjectRef};
use gatehouse_api::{AccessPolicy, CredentialProvider, McpGateway, McpServer, TrustProvider};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a status pass reads.
pub struct Inputs<'a> {
    /// The compilation.
    pub published: &'a Published,
    /// ACK/NACKs.
    pub fleet: &'a Fleet,
    /// Managed Deployments (ready replicas).
    pub index: Option<&'a Index>,
}

/// A Gatehouse kind whose status this controller writes.
pub trait StatusKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + HasStatus
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
where
    Self::Status: Serialize + DeserializeOwned + PartialEq,
{
    /// The compiler's name for the kind.
    const KIND: Kind;
    /// Kind-specific status fields besides conditions.
    fn extras(
        &self,
        _key: &ObjectKey,
        _s: &gatehouse_api::compile::ObjectStatus,
        _i: &Inputs,
    ) -> Map<String, Value> {
        Map::new()
    }
}

impl StatusKind for AccessPolicy {
    const KIND: Kind = Kind::AccessPolicy;
}

impl StatusKind for TrustProvider {
    const KIND: Kind = Kind::TrustProvider;
    fn extras(
        &self,
        _: &ObjectKey,
        s: &gatehouse_api::compile::ObjectStatus,
        _: &Inputs,
    ) -> Map<String, Value> {
        provider_type(s)
    }
}

impl StatusKind for CredentialProvider {
    const KIND: Kind = Kind::CredentialProvider;
    fn extras(
        &self,
        _: &ObjectKey,
        s: &gatehouse_api::compile::ObjectStatus,
        _: &Inputs,
    ) -> Map<String, Value> {
        provider_type(s)
    }
}

fn provider_type(s: &gatehouse_api::compile::ObjectStatus) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(t) = &s.provider_type {
        m.insert("type".into(), json!(t));
    }
    m
}

impl StatusKind for McpServer {
    const KIND: Kind = Kind::McpServer;
    fn extras(
        &self,
        key: &ObjectKey,
        s: &gatehouse_api::compile::ObjectStatus,
        i: &Inputs,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        let url = s.url.clone().or_else(|| {
            // A workload is reached through its own Service (or its advertised public URL).
            let w = self.spec.workload.as_ref()?;
            let id = GatewayId::Sidecar {
                server: key.clone(),
            };
            let snap = i.published.snapshot(&id)?;
            let path = &snap.servers.first()?.path;
            let (port, tls) = i
                .published
                .resources
                .gateways
                .iter()
                .find(|g| {
                    g.name_any() == self.spec.gateway_ref.name
                        && g.namespace().as_deref()
                            == Some(
                                self.spec
                                    .gateway_ref
                                    .namespace
                                    .as_deref()
                                    .unwrap_or(&key.namespace),
                            )
                })
                .map(|g| (g.spec.service.port, g.spec.listener.tls.is_some()))
                .unwrap_or((80, false));
            let base = w
                .public_url
                .clone()
                .unwrap_or_else(|| names::service_url(&id, port, tls));
            Some(format!("{}{path}", base.trim_end_matches('/')))
        });
        if let Some(url) = url {
            m.insert("url".into(), json!(url));
        }
        m
    }
}

impl StatusKind for McpGateway {
    const KIND: Kind = Kind::McpGateway;
    fn extras(
        &self,
        key: &ObjectKey,
        _: &gatehouse_api::compile::ObjectStatus,
        i: &Inputs,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        let id = GatewayId::Gateway { key: key.clone() };
        let ready = i
            .index
            .and_then(|ix| ix.deployment(&key.namespace, &key.name))
            .and_then(|d| d.status.as_ref().and_then(|s| s.ready_replicas))
            .unwrap_or(0);
        m.insert("readyReplicas".into(), json!(ready));
        if let Some(snap) = i.published.snapshot(&id) {
            m.insert("configVersion".into(), json!(snap.version));
        }
        let applied: Vec<Value> = i
            .fleet
            .replicas(&id)
            .into_iter()
            .filter(|(_, r)| r.applied.is_some() || r.rejected.is_some())
            .map(|(pod, r)| {
                let mut v = json!({"pod": pod, "version": r.applied.unwrap_or_default()});
                if let Some((version, reason)) = r.rejected {
                    v["rejected"] = json!(format!("version {version}: {reason}"));
                }
                v
            })
            .collect();
        if !applied.is_empty() {
            m.insert("replicasApplied".into(), json!(applied));
        }
        m
    }
}

/// The status `obj` should have, or `None` when the compilation has not seen its current
/// generation yet (a newer compilation is on its way).
pub fn desired<K: StatusKind>(obj: &K, i: &Inputs, now: &Time) -> Option<Value>
where
    K::Status: Serialize + DeserializeOwned + PartialEq,
{
    let key = ObjectKey::new(obj.namespace().unwrap_or_default(), obj.name_any());
    let compiled = &i.published.compiled;
    let s = compiled
        .statuses
        .get(&ObjectRef::new(K::KIND, &key.namespace, &key.name))?;
    if s.observed_generation != obj.meta().generation {
        return None;
    }
    let mut conds: Vec<ConditionStatus> = s.conditions.clone();
    let kind = format!("{:?}", K::KIND);
    conds.push(conditions::programmed(&kind, s, compiled, |id, v| {
        i.fleet.rollout(id, v)
    }));
    conds.push(conditions::ready(&conds));
    let current = current_conditions(obj);
    let stamped = conditions::stamp(&current, &conds, obj.meta().generation, now);
    let mut status = obj.extras(&key, s, i);
    status.insert("observedGeneration".into(), json!(obj.meta().generation));
    status.insert("conditions".into(), json!(stamped));
    // Normalise through the typed status so the comparison with the stored one is exact.
    let typed: K::Status = serde_json::from_value(Value::Object(status)).ok()?;
    Some(serde_json::to_value(typed).expect("status serializes"))
}

fn current_status<K: StatusKind>(obj: &K) -> Value
where
    K::Status: Serialize + DeserializeOwned + PartialEq,
{
    obj.status()
        .map(|s| serde_json::to_value(s).expect("status serializes"))
        .unwrap_or(Value::Null)
}

fn current_conditions<K: StatusKind>(obj: &K) -> Vec<Condition>
where
    K::Status: Serialize + DeserializeOwned + PartialEq,
{
    serde_json::from_value(current_status(obj)["conditions"].clone()).unwrap_or_default()
}

/// The merge patch turning `current` into `desired`: `desired`, plus `null` for every
/// top-level field `current` has and `desired` does not.
pub fn merge_patch(current: &Value, desired: &Value, resource_version: Option<&str>) -> Value {
    let mut status = desired.clone();
    if let (Some(cur), Some(des)) = (current.as_object(), status.as_object_mut()) {
        for k in cur.keys() {
            des.entry(k.clone()).or_insert(Value::Null);
        }
    }
    json!({"metadata": {"resourceVersion": resource_version}, "status": status})
}

/// Writes `obj`'s status when it differs from the desired one. On a 409 (someone changed the
/// object since it was read) it re-reads the object and retries. Returns the written status.
pub async fn write<K: StatusKind>(
    client: &Client,
    obj: &K,
    i: &Inputs<'_>,
    now: &Time,
) -> Result<Option<(Value, Value)>, kube::Error>
where
    K::Status: Serialize + DeserializeOwned + PartialEq,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let mut obj = obj.clone();
    for attempt in 0..4 {
        let Some(want) = desired(&obj, i, now) else {
            return Ok(None);
        };
        let have = current_status(&obj);
        if want == have {
            return Ok(None);
        }
        let body = merge_patch(&have, &want, obj.meta().resource_version.as_deref());
        match api
            .patch_status(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(_) => return Ok(Some((have, want))),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 3 => {
                tracing::debug!(name = %obj.name_any(), "status conflict; re-reading");
                obj = api.get(&obj.name_any()).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Events worth telling a user about, for a status transition `old` → `new`.
pub fn transitions(old: &Value, new: &Value) -> Vec<Event> {
    let cond = |v: &Value, t: &str| -> Option<(String, String, String)> {
        v["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| {
                let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
                (s("status"), s("reason"), s("message"))
            })
    };
    let mut out = Vec::new();
    let mut push = |type_, reason: &str, note: String| {
        out.push(Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        })
    };
    let was = |t| cond(old, t).map(|c| c.0);
    for (t, reason) in [(ACCEPTED, "Invalid"), (RESOLVED_REFS, "RefsNotResolved")] {
        if let Some((s, _, msg)) = cond(new, t)
            && s == "False"
            && was(t).as_deref() != Some("False")
        {
            push(EventType::Warning, reason, msg);
        }
    }
    if let Some((s, r, msg)) = cond(new, gatehouse_api::conditions::PROGRAMMED)
        && s == "False"
        && r == "Rejected"
        && was(gatehouse_api::conditions::PROGRAMMED).as_deref() != Some("False")
    {
        push(EventType::Warning, "ConfigRejected", msg);
    }
    if let Some((s, _, msg)) = cond(new, READY)
        && s == "True"
        && was(READY).as_deref() != Some("True")
    {
        push(EventType::Normal, "Ready", msg);
    }
    out
}

/// The status controller.
pub struct StatusController {
    /// API client.
    pub client: Client,
    /// Stores (current objects and Deployments).
    pub index: Index,
    /// ACK/NACKs.
    pub fleet: Fleet,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
}

impl StatusController {
    async fn pass_kind<K: StatusKind>(&self, objects: Vec<Arc<K>>, i: &Inputs<'_>, now: &Time)
    where
        K::Status: Serialize + DeserializeOwned + PartialEq,
    {
        for obj in objects {
            match write(&self.client, obj.as_ref(), i, now).await {
                Ok(None) => {}
                Ok(Some((old, new))) => {
                    self.metrics.status_patches.inc();
                    tracing::info!(kind = ?K::KIND, namespace = %obj.namespace().unwrap_or_default(),
                        name = %obj.name_any(), "status updated");
                    let reference = obj.object_ref(&());
                    for ev in transitions(&old, &new) {
                        if let Err(e) = self.recorder.publish(&ev, &reference).await {
                            tracing::debug!(error = %e, "publishing an event failed");
                        }
                    }
                }
                Err(e) => {
                    self.metrics.failed("status");
                    tracing::warn!(kind = ?K::KIND, name = %obj.name_any(), error = %e, "status write failed");
                }
            }
        }
    }

    /// One pass over every object.
    pub async fn pass(&self, published: &Published) {
        self.metrics.reconciled("status");
        let i = Inputs {
            published,
            fleet: &self.fleet,
            index: Some(&self.index),
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        self.pass_kind(self.index.trust_providers.state(), &i, &now)
            .await;
        self.pass_kind(self.index.credential_providers.state(), &i, &now)
            .await;
        self.pass_kind(self.index.gateways.state(), &i, &now).await;
        self.pass_kind(self.index.servers.state(), &i, &now).await;
        self.pass_kind(self.index.policies.state(), &i, &now).await;
    }

    /// Runs passes while leading: on every publication, replica report, Deployment change,
    /// and every 30 s.
    pub async fn run(
        self,
        mut published: watch::Receiver<Arc<Published>>,
        mut leader: watch::Receiver<bool>,
        debounce: Duration,
    ) {
        let mut fleet = self.fleet.subscribe();
        let mut workloads = self.index.workload_changes();
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                r = published.changed() => if r.is_err() { return },
                r = leader.changed() => if r.is_err() { return },
                r = fleet.changed() => if r.is_err() { return },
                r = workloads.changed() => if r.is_err() { return },
                _ = tick.tick() => {}
            }
            tokio::time::sleep(debounce).await;
            let current = published.borrow_and_update().clone();
            fleet.mark_unchanged();
            workloads.mark_unchanged();
            if !*leader.borrow_and_update() || current.seq == 0 {
                continue;
            }
            self.pass(&current).await;
        }
    }
}

#[cfg(test)]
mod tests;
