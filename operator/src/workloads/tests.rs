//! API-verifier scenarios: every call the workloads controller makes, with method, path and body.

use super::*;
use crate::testing::{GATEWAY, answer, empty_list, mock_client, published};

/// A CA bundle as `--push-ca` delivers it (only copied, never parsed, by the workloads).
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/// The chart's default: the push endpoint serves TLS and gateways get its CA.
fn settings() -> Settings {
    Settings {
        gateway_image: "gatehouse-gateway:test".into(),
        push_url: "https://operator:8443".into(),
        operator_ca: Some(CA_PEM.into()),
    }
}

/// A plain-HTTP push endpoint (`operator.pushTls.enabled: false`).
fn plain_settings() -> Settings {
    Settings {
        gateway_image: "gatehouse-gateway:test".into(),
        push_url: "http://operator:8443".into(),
        operator_ca: None,
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
        for _ in 0..8 {
            calls.push(answer(&mut handle, 200, None).await);
        }
        answer_prune(&mut handle, empty_list("Role")).await;
        (calls, handle)
    });
    assert_eq!(applier.reconcile(&desired).await, 0);
    let (mut calls, _handle) = server.await.unwrap();
    // The operator CA ConfigMap: the bundle the pods verify the push endpoint with.
    let ca = calls.remove(1);
    assert_eq!(
        ca.uri,
        format!(
            "{}/gw-gatehouse-operator-ca{APPLY}",
            collection(ManagedKind::ConfigMap, Some("default"))
        )
    );
    assert_eq!(ca.body["data"], json!({"ca.crt": CA_PEM}));
    assert_eq!(ca.body["metadata"]["ownerReferences"][0]["uid"], "uid-gw");
    assert_eq!(
        ca.body["metadata"]["labels"]["gatehouse.dev/deployment"],
        "gateway.default.gw"
    );
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
            "https://operator:8443",
            "--listen",
            "0.0.0.0:8080",
            "--admin-listen",
            "0.0.0.0:9090",
            "--operator-ca",
            "/etc/gatehouse/operator-ca/ca.crt"
        ])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([
            {"name": "gatehouse-token", "mountPath": "/var/run/secrets/gatehouse", "readOnly": true},
            {"name": "snapshot", "mountPath": "/etc/gatehouse/snapshot", "readOnly": true},
            {"name": "operator-ca", "mountPath": "/etc/gatehouse/operator-ca", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"},
        ])
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["volumes"][2],
        json!({"name": "operator-ca",
               "configMap": {"name": "gw-gatehouse-operator-ca", "optional": true}})
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

#[test]
fn a_plain_push_endpoint_renders_no_ca_configmap_flag_or_mount() {
    let desired = desired(&published(GATEWAY), &plain_settings());
    let names: Vec<&str> = desired.objects.iter().map(|o| o.id.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gw-gatehouse",
            "gw-gatehouse-snapshot",
            "gw-gatehouse",
            "gw-gatehouse",
            "gw",
            "gw",
            "gw"
        ]
    );
    let dep = &desired.objects[4].body;
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[4..6], ["--operator", "http://operator:8443"]);
    assert!(!args.contains(&"--operator-ca"), "{args:?}");
    let text = dep.to_string();
    assert!(!text.contains("operator-ca"), "{text}");
}

#[tokio::test]
async fn a_changed_ca_bundle_updates_only_the_ca_configmap() {
    let before = desired(&published(GATEWAY), &settings());
    let mut rotated = settings();
    rotated.operator_ca = Some(format!("{CA_PEM}{CA_PEM}"));
    let after = desired(&published(GATEWAY), &rotated);
    let (client, mut handle) = mock_client();
    let mut applier = Applier::new(client, Arc::new(Metrics::new()));
    for o in &before.objects {
        applier.applied.insert(o.id.clone(), digest(&o.body));
    }
    applier.last_ids = Some(before.objects.iter().map(|o| o.id.clone()).collect());
    let server = tokio::spawn(async move { answer(&mut handle, 200, None).await });
    // One call, and not the Deployment's: the pods do not roll, the kubelet updates the file.
    assert_eq!(applier.reconcile(&after).await, 0);
    let call = server.await.unwrap();
    assert_eq!(
        call.uri,
        format!(
            "{}/gw-gatehouse-operator-ca{APPLY}",
            collection(ManagedKind::ConfigMap, Some("default"))
        )
    );
    assert_eq!(call.body["data"]["ca.crt"], format!("{CA_PEM}{CA_PEM}"));
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

/// `GATEWAY` with a `nameTemplate` provider, alice's and bob's personal Secrets, and Secrets
/// the template does not match (wrong key, a name no user id makes, another template).
fn with_per_user_secrets() -> String {
    let mut yaml = GATEWAY.replace(
        "targets: [{server: demo, credentialProvider: cred}]",
        "targets: [{server: demo, credentialProvider: pat}]",
    ) + r#"
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {name: pat, namespace: default}
spec:
  perUserSecret: {nameTemplate: "pat-{user}"}
"#;
    for (name, key) in [
        ("pat-alice", "token"),
        ("pat-bob", "token"),
        ("pat-carol", "password"),
        ("pat--dave", "token"),
        ("other-pat-erin", "token"),
    ] {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\nstringData: {{{key}: t}}\n"
        ));
    }
    yaml
}

#[tokio::test]
async fn the_role_names_exactly_the_per_user_secrets_a_name_template_matches() {
    let before = desired(&published(&with_per_user_secrets()), &settings());
    let role = before
        .objects
        .iter()
        .find(|o| o.body["kind"] == "Role")
        .unwrap();
    assert_eq!(
        role.body["rules"][0]["resourceNames"],
        json!(["api-keys", "pat-alice", "pat-bob"])
    );

    // carol's Secret arrives: the next reconcile patches the Role (and the snapshot) to name it.
    let added = with_per_user_secrets()
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: pat-carol-2, namespace: default}\nstringData: {token: t}\n";
    let after = desired(&published(&added), &settings());
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
        json!(["api-keys", "pat-alice", "pat-bob", "pat-carol-2"])
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
    let objs = rbac::objects(
        &snapshot.gateway,
        None,
        "McpGateway",
        &snapshot,
        &Default::default(),
    );
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

/// [`GATEWAY`] whose policy's credential is the `oauth2AuthorizationCode` provider `saas`.
fn with_consent() -> String {
    GATEWAY.replace(
        "targets: [{server: demo, credentialProvider: cred}]",
        "targets: [{server: demo, credentialProvider: saas}]",
    ) + r#"
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {name: saas, namespace: default}
spec:
  oauth2AuthorizationCode:
    authorizationUrl: https://saas.example/authorize
    tokenUrl: https://saas.example/token
    clientId: gatehouse
    clientSecretRef: {name: saas-app, key: client-secret}
    encryptionKeySecretRef: {name: saas-app, key: token-encryption-key}
---
apiVersion: v1
kind: Secret
metadata: {name: saas-app, namespace: default}
stringData: {client-secret: s, token-encryption-key: k}
"#
}

/// A Secret as the operator's watch delivers it (key names only).
fn mk_watched_secret(ns: &str, name: &str, type_: &str, provider: &str) -> GrantSecret {
    let keys: crate::secret_keys::SecretKeys = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"gatehouse.dev/credential-provider": provider}},
        "type": type_, "data": {"grant": "AQID"},
    }))
    .unwrap();
    GrantSecret::of(&keys).unwrap_or(GrantSecret {
        namespace: "not-a-grant".into(),
        provider: provider.into(),
        name: name.into(),
    })
}

#[tokio::test]
async fn the_role_follows_the_grant_secrets_of_the_gateways_consent_providers() {
    let before = desired(&published(&with_consent()), &settings());
    let grant = |n: char| format!("gatehouse-grant-{}", n.to_string().repeat(64));
    let mut p = published(&with_consent());
    p.grant_secrets = Arc::new(
        [
            // alice's and bob's grants for `saas`: listed
            mk_watched_secret("default", &grant('a'), "gatehouse.dev/sealed-grant", "saas"),
            mk_watched_secret("default", &grant('b'), "gatehouse.dev/sealed-grant", "saas"),
            // another provider's grant in the same namespace: not this gateway's
            mk_watched_secret(
                "default",
                &grant('c'),
                "gatehouse.dev/sealed-grant",
                "other",
            ),
            // a namespace this gateway's providers do not live in
            mk_watched_secret("team-b", &grant('d'), "gatehouse.dev/sealed-grant", "saas"),
            // a ServiceAccount token labelled and named like a grant: its type gives it away
            mk_watched_secret(
                "default",
                &grant('e'),
                "kubernetes.io/service-account-token",
                "saas",
            ),
        ]
        .into(),
    );
    let after = desired(&p, &settings());
    let (client, mut handle) = mock_client();
    let mut applier = Applier::new(client, Arc::new(Metrics::new()));
    for o in &before.objects {
        applier.applied.insert(o.id.clone(), digest(&o.body));
    }
    applier.last_ids = Some(before.objects.iter().map(|o| o.id.clone()).collect());
    let server = tokio::spawn(async move { answer(&mut handle, 200, None).await });
    assert_eq!(applier.reconcile(&after).await, 0);
    // Exactly one call: the Role; nothing else changed.
    let role = server.await.unwrap();
    assert_eq!(role.method, "PATCH");
    assert_eq!(
        role.uri,
        format!(
            "{}/gw-gatehouse{APPLY}",
            collection(ManagedKind::Role, Some("default"))
        )
    );
    assert_eq!(role.content_type, "application/apply-patch+yaml");
    assert_eq!(
        role.body["rules"],
        json!([
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"],
             "resourceNames": ["api-keys", "saas-app"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update", "delete"],
             "resourceNames": [grant('a'), grant('b')]},
        ])
    );
    // Before any grant exists: `create` only.
    let role_before = before
        .objects
        .iter()
        .find(|o| o.id.kind == ManagedKind::Role)
        .unwrap();
    assert_eq!(
        role_before.body["rules"][1],
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]})
    );
    assert_eq!(role_before.body["rules"].as_array().unwrap().len(), 2);
}

#[test]
fn a_tls_listener_is_rendered_as_https_with_the_listener_tls_flag() {
    let yaml = GATEWAY.replace(
        "  trustProviders: [keys]\n",
        "  trustProviders: [keys]\n  listener: {port: 8443, tls: {secretRef: {name: gw-tls}}}\n",
    ) + r#"
---
apiVersion: v1
kind: Secret
metadata: {name: gw-tls, namespace: default}
type: kubernetes.io/tls
stringData: {tls.crt: c, tls.key: k}
"#;
    let d = desired(&published(&yaml), &settings());
    let body = |kind: ManagedKind| {
        &d.objects
            .iter()
            .find(|o| o.id.kind == kind)
            .expect("rendered")
            .body
    };
    let c = &body(ManagedKind::Deployment)["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.last(), Some(&"--listener-tls"), "{args:?}");
    assert!(args.contains(&"0.0.0.0:8443"), "{args:?}");
    assert_eq!(
        c["ports"][0],
        json!({"name": "https", "containerPort": 8443, "protocol": "TCP"})
    );
    // Probes stay on the plain-HTTP admin port.
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin", "scheme": "HTTP"})
    );
    assert_eq!(
        body(ManagedKind::Service)["spec"]["ports"],
        json!([{"name": "https", "port": 80, "targetPort": "https", "protocol": "TCP",
                "appProtocol": "https"}])
    );
    // The gateway may read its certificate Secret.
    assert_eq!(
        body(ManagedKind::Role)["rules"][0]["resourceNames"],
        json!(["api-keys", "cred", "gw-tls"])
    );
    // Without TLS: no flag, http everywhere.
    let plain = desired(&published(GATEWAY), &settings());
    let dep = plain
        .objects
        .iter()
        .find(|o| o.id.kind == ManagedKind::Deployment)
        .unwrap();
    let c = &dep.body["spec"]["template"]["spec"]["containers"][0];
    assert!(!c["args"].to_string().contains("--listener-tls"));
    assert_eq!(c["ports"][0]["name"], "http");
}
