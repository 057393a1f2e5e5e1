//! Sharing gateway ACKs between operator replicas.
//!
//! Gateways stream from whichever operator replica the push Service picked, but only the leader
//! writes status. Each replica therefore server-side-applies its own view of connected gateway
//! replicas into a ConfigMap of its own (`gatehouse-fleet-<identity>`, in the leader-election
//! namespace) whenever it changes and every [`HEARTBEAT`], and every replica reads the others'
//! ConfigMaps every [`READ_EVERY`], ignoring views older than [`STALE_AFTER`] (a replica that
//! died stops counting). The ConfigMaps hold pod names and versions — never secrets.

use crate::replicas::{Fleet, Replica, View};
use gatehouse_api::config::GatewayId;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::collections::BTreeMap;
use std::time::Duration;

/// Republish at least this often, so readers know the view is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often the other replicas' views are read.
pub const READ_EVERY: Duration = Duration::from_secs(2);
/// A view not refreshed for this long is ignored.
pub const STALE_AFTER: Duration = Duration::from_secs(35);

const LABEL: &str = "gatehouse.dev/fleet";
const HEARTBEAT_ANNOTATION: &str = "gatehouse.dev/heartbeat";
const FIELD_MANAGER: &str = "gatehouse-operator-fleet";

/// The ConfigMap name for an operator identity (a DNS label).
pub fn config_map_name(identity: &str) -> String {
    let safe: String = identity
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("gatehouse-fleet-{}", safe.trim_matches('-'));
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The ConfigMap carrying `view`.
pub fn to_config_map(identity: &str, namespace: &str, view: &View, now: u64) -> serde_json::Value {
    let entries: Vec<(&GatewayId, &BTreeMap<String, Replica>)> = view.iter().collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(identity),
            "namespace": namespace,
            "labels": {LABEL: "operator-replica", "app.kubernetes.io/managed-by": "gatehouse-operator"},
            "annotations": {HEARTBEAT_ANNOTATION: now.to_string()},
        },
        "data": {
            "operator": identity,
            "view.json": serde_json::to_string(&entries).expect("views serialize"),
        }
    })
}

/// The operator identity and view in a ConfigMap, when it is fresh at `now`.
pub fn from_config_map(cm: &ConfigMap, now: u64) -> Option<(String, View)> {
    let heartbeat: u64 = cm
        .metadata
        .annotations
        .as_ref()?
        .get(HEARTBEAT_ANNOTATION)?
        .parse()
        .ok()?;
    if now.saturating_sub(heartbeat) > STALE_AFTER.as_secs() {
        return None;
    }
    let data = cm.data.as_ref()?;
    let entries: Vec<(GatewayId, BTreeMap<String, Replica>)> =
        serde_json::from_str(data.get("view.json")?).ok()?;
    Some((data.get("operator")?.clone(), entries.into_iter().collect()))
}

/// Publish this replica's view and read the others', until the process ends.
pub async fn run(client: Client, namespace: String, identity: String, fleet: Fleet) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let publisher = {
        let (api, fleet, identity, namespace) = (
            api.clone(),
            fleet.clone(),
            identity.clone(),
            namespace.clone(),
        );
        async move {
            let mut changes = fleet.subscribe_local();
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = heartbeat.tick() => {}
                }
                // Coalesce bursts (a reconnect storm) into one write.
                tokio::time::sleep(Duration::from_millis(100)).await;
                changes.mark_unchanged();
                let cm = to_config_map(&identity, &namespace, &fleet.local_view(), now_secs());
                let params = PatchParams::apply(FIELD_MANAGER).force();
                if let Err(e) = api
                    .patch(&config_map_name(&identity), &params, &Patch::Apply(&cm))
                    .await
                {
                    tracing::warn!(error = %e, "publishing this replica's gateway ACKs failed");
                }
            }
        }
    };
    let reader = async move {
        let own = config_map_name(&identity);
        let mut tick = tokio::time::interval(READ_EVERY);
        loop {
            tick.tick().await;
            let list = match api
                .list(&ListParams::default().labels(&format!("{LABEL}=operator-replica")))
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "reading other replicas' gateway ACKs failed");
                    continue;
                }
            };
            let now = now_secs();
            let views = list
                .items
                .iter()
                .filter(|cm| cm.metadata.name.as_deref() != Some(own.as_str()))
                .filter_map(|cm| from_config_map(cm, now))
                .collect();
            fleet.set_remote(views);
        }
    };
    tokio::join!(publisher, reader);
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_api::refs::ObjectKey;

    #[test]
    fn views_round_trip_and_go_stale() {
        let id = GatewayId::Gateway {
            key: ObjectKey::new("ns", "gw"),
        };
        let mut view = View::new();
        view.entry(id.clone()).or_default().insert(
            "gw-abc".into(),
            Replica {
                streams: 1,
                applied: Some("v1".into()),
                rejected: Some(("v2".into(), "bad".into())),
            },
        );
        let json = to_config_map("Operator_7.host-42", "gatehouse-system", &view, 1_000);
        assert_eq!(
            json["metadata"]["name"],
            "gatehouse-fleet-operator-7-host-42"
        );
        let cm: ConfigMap = serde_json::from_value(json).unwrap();
        let (who, back) = from_config_map(&cm, 1_010).expect("fresh");
        assert_eq!(who, "Operator_7.host-42");
        assert_eq!(back, view);
        assert!(from_config_map(&cm, 1_000 + STALE_AFTER.as_secs() + 1).is_none());
    }

    #[test]
    fn names_are_dns_labels() {
        let n = config_map_name(&"x".repeat(100));
        assert!(n.len() <= 63 && n.starts_with("gatehouse-fleet-"));
    }
}
