//! API-verifier scenarios: every call the workloads controller makes, with method, path and body.

use super::*;
use crate::testing::{GATEWAY, answer, empty_list, mock_client, published};

fn settings() -> Settings {
    Settings {
        gateway_image: "gatehouse-gateway:test".into(),
        push_url: "http://operator:8443".into(),
    }
}

const APPLY: &str = "?&force=true&fieldManager=gatehouse-operator";

/// The path of `kind`'s collection in `ns` (or across namespaces).
fn collection(kind: ManagedKind, ns: Option<&str>) -> String {
    let ar = kind.api_resource();
    let prefix = if ar.group.is_empty() {
        format!("/api/{}", ar.version)
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    };
    match ns {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{}", ar.plural),
        None => format!("{prefix}/{}", ar.plural),
    }
}

/// Answers the prune's seven LIST calls; `extra` is returned for the Role list.
async fn answer_prune(handle: &mut crate::testing::Handle, roles: Value) {
    for kind in ManagedKind::ALL {
        let reply = if kind == ManagedKind::Role {
            roles.clone()
        } else {
            empty_list(&format!("{kind:?}"))
        };
        let call = answer(handle, 200, Some(reply)).await;
        assert_eq!(call.method, "GET");
        assert_eq!(
            call.uri,
            format!(
                "{}?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dgatehouse-operator",
                collection(kind, None)
            )
        );
    }
}

#[tokio::test]
async fn creates_the_gateway_workloads_with_server_side_apply() {
    let p = published(GATEWAY);
    let desired = desired(&p, &settings());
    let (client, mut handle) = mock_client();
    let mut applier = Applier::new(client, Arc::new(Metrics::new()));
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        for _ in 0..7 {
            calls.push(answer(&mut handle, 200, None).await);
        }
        answer_prune(&mut handle, empty_list("Role")).await;
        (calls, handle)
    });
    assert_eq!(applier.reconcile(&desired).await, 0);
    let (calls, _handle) = server.await.unwrap();
    let expected = [
        (ManagedKind::ServiceAccount, "gw-gatehouse"),
        (ManagedKind::ConfigMap, "gw-gatehouse-snapshot"),
        (ManagedKind::Role, "gw-gatehouse"),
        (ManagedKind::RoleBinding, "gw-gatehouse"),
        (ManagedKind::Deployment, "gw"),
        (ManagedKind::Service, "gw"),
        (ManagedKind::PodDisruptionBudget, "gw"),
    ];
    for (call, (kind, name)) in calls.iter().zip(expected) {
        assert_eq!(call.method, "PATCH");
        assert_eq!(
            call.uri,
            format!("{}/{name}{APPLY}", collection(kind, Some("default")))
        );
        assert_eq!(call.content_type, "application/apply-patch+yaml");
        assert_eq!(call.body["metadata"]["ownerReferences"][0]["uid"], "uid-gw");
        assert_eq!(
            call.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "gatehouse-operator"
        );
    }
    assert_eq!(
        calls[2].body["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"],
                "resourceNames": ["api-keys", "cred"]}])
    );
    assert_eq!(
        calls[3].body["subjects"],
        json!([{"kind": "ServiceAccount", "name": "gw-gatehouse", "namespace": "default"}])
    );
    let snapshot: gatehouse_api::GatewayConfig =
        serde_json::from_str(calls[1].body["data"]["snapshot.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        Some(&snapshot),
        p.snapshot(&GatewayId::Gateway {
            key: gatehouse_api::refs::ObjectKey::new("default", "gw")
        })
    );
    let dep = &calls[4].body;
    assert_eq!(dep["spec"]["replicas"], 2);
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        json!([
            "run",
            "--cluster",
            "--gateway",
            "default/gw",
            "--operator",
            "http://operator:8443",
            "--listen",
            "0.0.0.0:8080",
            "--admin-listen",
            "0.0.0.0:9090"
        ])
    );
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(calls[5].body["spec"]["ports"][0]["port"], 80);
    assert_eq!(calls[6].body["spec"]["maxUnavailable"], 1);

    // Nothing changed: a second pass makes no call at all (the mock would hang on one).
    let (client, _h) = mock_client();
    let mut idle = Applier::new(client, Arc::new(Metrics::new()));
    idle.applied = applier.applied.clone();
    idle.last_ids = applier.last_ids.clone();
    let pass = tokio::time::timeout(std::time::Duration::from_secs(2), idle.reconcile(&desired));
    assert_eq!(pass.await.expect("no API call when nothing changed"), 0);
}

#[tokio::test]
async fn role_resource_names_follow_a_policy_change() {
    let before = desired(&published(GATEWAY), &settings());
    let changed = GATEWAY.replace(
        "targets: [{server: demo, credentialProvider: cred}]",
        "targets: [{server: demo, credentialProvider: other}]",
    ) + r#"
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {name: other, namespace: default}
spec:
  secret: {secretRef: {name: other-token, key: token}}
---
apiVersion: v1
kind: Secret
metadata: {name: other-token, namespace: default}
stringData: {token: t}
"#;
    let after = desired(&published(&changed), &settings());
    let (client, mut handle) = mock_client();
    let mut applier = Applier::new(client, Arc::new(Metrics::new()));
    for o in &before.objects {
        applier.applied.insert(o.id.clone(), digest(&o.body));
    }
    applier.last_ids = Some(before.objects.iter().map(|o| o.id.clone()).collect());
    let server = tokio::spawn(async move {
        let cm = answer(&mut handle, 200, None).await;
        let role = answer(&mut handle, 200, None).await;
        (cm, role)
    });
    assert_eq!(applier.reconcile(&after).await, 0);
    let (cm, role) = server.await.unwrap();
    assert_eq!(
        cm.uri,
        format!(
            "{}/gw-gatehouse-snapshot{APPLY}",
            collection(ManagedKind::ConfigMap, Some("default"))
        )
    );
    assert_eq!(role.method, "PATCH");
    assert_eq!(
        role.uri,
        format!(
            "{}/gw-gatehouse{APPLY}",
            collection(ManagedKind::Role, Some("default"))
        )
    );
    assert_eq!(
        role.body["rules"][0]["resourceNames"],
        json!(["api-keys", "other-token"])
    );
}

#[tokio::test]
async fn a_gateway_without_secrets_gets_a_role_without_rules() {
    let p = published(GATEWAY);
    let mut snapshot = p
        .snapshot(&GatewayId::Gateway {
            key: gatehouse_api::refs::ObjectKey::new("default", "gw"),
        })
        .unwrap()
        .clone();
    snapshot.secrets.clear();
    let objs = rbac::objects(&snapshot.gateway, None, "McpGateway", &snapshot);
    // an empty resourceNames would grant every Secret: no rule at all instead
    assert_eq!(objs[0].body["rules"], json!([]));
}

#[tokio::test]
async fn cleanup_prunes_roles_nobody_wants() {
    let (client, mut handle) = mock_client();
    let wanted: BTreeSet<ObjectId> = [ObjectId {
        kind: ManagedKind::Role,
        namespace: "default".into(),
        name: "gw-gatehouse".into(),
    }]
    .into();
    let role = |ns: &str, name: &str, deployment: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": ns,
                            "labels": {names::DEPLOYMENT_LABEL: deployment}}})
    };
    let roles = json!({"kind": "RoleList", "apiVersion": "rbac.authorization.k8s.io/v1",
    "metadata": {"resourceVersion": "9"}, "items": [
        role("default", "gw-gatehouse", "gateway.default.gw"),
        role("team-a", "gw-gatehouse", "gateway.default.gw"),
        role("team-b", "broken-gatehouse", "gateway.default.broken"),
    ]});
    let keep: BTreeSet<String> = ["gateway.default.broken".to_string()].into();
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        for kind in ManagedKind::ALL {
            let reply = if kind == ManagedKind::Role {
                roles.clone()
            } else {
                empty_list("X")
            };
            calls.push(answer(&mut handle, 200, Some(reply)).await);
            if kind == ManagedKind::Role {
                calls.push(
                    answer(
                        &mut handle,
                        200,
                        Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
                    )
                    .await,
                );
            }
        }
        calls
    });
    prune(&client, &wanted, &keep).await.unwrap();
    let calls = server.await.unwrap();
    let delete: Vec<&crate::testing::Call> =
        calls.iter().filter(|c| c.method == "DELETE").collect();
    assert_eq!(delete.len(), 1, "{calls:?}");
    assert_eq!(
        delete[0].uri,
        format!(
            "{}/gw-gatehouse?",
            collection(ManagedKind::Role, Some("team-a"))
        )
    );
    assert_eq!(delete[0].body["propagationPolicy"], "Background");
}
