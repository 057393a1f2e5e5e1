//! The end-to-end scenario, run against the API double on every CI run and against a real
//! cluster when `KUBECONFIG` is set: apply the CRDs and the examples, run the real operator,
//! and check status, workloads, RBAC, the push protocol, a policy change, a broken manifest and
//! an operator restart. Timings are printed, never asserted.

use super::*;
use gatehouse_api::push::{StatusReport, status_path, stream_path};
use gatehouse_api::refs::ObjectKey;
use gatehouse_api::{AccessPolicy, McpGateway, McpServer};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::PostParams;

/// Where gateway tokens come from.
pub enum Tokens<'a> {
    /// Registered with the double's TokenReview.
    Double(&'a gatehouse_kube_double::KubeDouble),
    /// TokenRequest on a real cluster.
    Cluster,
}

impl Tokens<'_> {
    async fn token(&self, client: &Client, ns: &str, sa: &str) -> String {
        match self {
            Tokens::Double(d) => {
                let token = format!("token-{ns}-{sa}");
                d.register_token(
                    &token,
                    gatehouse_kube_double::UserInfo {
                        username: format!("system:serviceaccount:{ns}:{sa}"),
                        ..Default::default()
                    },
                );
                token
            }
            Tokens::Cluster => {
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
                let req = TokenRequest {
                    spec: Some(TokenRequestSpec {
                        audiences: Some(vec!["gatehouse".into()]),
                        expiration_seconds: Some(3600),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                api.create_token_request(sa, &PostParams::default(), &req)
                    .await
                    .expect("TokenRequest")
                    .status
                    .expect("token status")
                    .token
                    .expect("a token")
            }
        }
    }
}

fn ar<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

async fn role_names(client: &Client, ns: &str, name: &str) -> Result<Vec<String>, String> {
    let role = get(client, &ar::<Role>(), ns, name)
        .await
        .ok_or("no Role")?;
    Ok(role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["resourceNames"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect())
}

const EXTRA: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: extra-upstream-token, namespace: default}
stringData: {token: extra-secret-value}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {name: extra-token, namespace: default}
spec:
  secret:
    secretRef: {name: extra-upstream-token, key: token}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: carol-demo, namespace: default}
spec:
  subjects:
    - users: {ids: [carol]}
  targets:
    - server: demo
      credentialProvider: extra-token
"#;

const BROKEN: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: broken, namespace: default}
spec:
  subjects:
    - users: {ids: [mallory]}
  targets:
    - server: does-not-exist
"#;

/// The whole flow.
pub async fn full_flow(kubeconfig: &Path, tokens: Tokens<'_>) {
    let root = repo_root();
    let kubectl = Kubectl::new(kubeconfig);
    let client = client(kubeconfig).await;

    kubectl
        .ok(&["apply", "-f", root.join("crds").to_str().unwrap()])
        .await;
    let examples = gatehouse_examples(&root.join("examples"));
    println!("examples: {examples:?}");
    for ns in namespaces_in(&examples) {
        kubectl
            .apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
            ))
            .await;
    }
    for f in &examples {
        kubectl.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    }

    let started = Instant::now();
    let op = Operator::start(kubeconfig, "default").await;

    // --- status from the compiler; Programmed pending without gateways
    let demo = wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "ResolvedRefs",
        "True",
    )
    .await;
    println!(
        "TIMING operator start to first status: {:?}",
        started.elapsed()
    );
    assert_eq!(condition(&demo, "Accepted").unwrap().0, "True");
    let demo = wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "Programmed",
        "Unknown",
    )
    .await;
    assert_eq!(condition(&demo, "Programmed").unwrap().1, "Pending");
    assert_eq!(condition(&demo, "Ready").unwrap().0, "False");
    for c in demo["status"]["conditions"].as_array().unwrap() {
        assert_eq!(
            c["observedGeneration"], demo["metadata"]["generation"],
            "{c}"
        );
        assert!(c["lastTransitionTime"].is_string(), "{c}");
    }
    assert_eq!(demo["status"]["url"], "http://localhost:8080/mcp/demo");
    for (ns, name) in [("default", "alice-demo"), ("default", "bob-read-only")] {
        wait_condition(
            &client,
            &ar::<AccessPolicy>(),
            ns,
            name,
            "ResolvedRefs",
            "True",
        )
        .await;
    }

    // --- workloads of the quickstart gateway
    let dep = eventually(
        "Deployment default/local",
        Duration::from_secs(20),
        || async {
            get(&client, &ar::<Deployment>(), "default", "local")
                .await
                .ok_or("absent".to_string())
        },
    )
    .await;
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "ghcr.io/gatehouse-dev/gatehouse-gateway:test");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "run",
            "--cluster",
            "--gateway",
            "default/local",
            "--operator",
            "http://gatehouse-operator.gatehouse-system.svc:8443",
            "--listen",
            "0.0.0.0:8080",
            "--admin-listen",
            "0.0.0.0:9090"
        ]
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "local-gatehouse");
    let vols = pod["volumes"].to_string();
    assert!(vols.contains(r#""audience":"gatehouse""#), "{vols}");
    assert!(vols.contains("local-gatehouse-snapshot"), "{vols}");
    assert_eq!(dep["metadata"]["ownerReferences"][0]["kind"], "McpGateway");

    let svc = get(&client, &ar::<Service>(), "default", "local")
        .await
        .expect("Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert!(
        get(
            &client,
            &ar::<ServiceAccount>(),
            "default",
            "local-gatehouse"
        )
        .await
        .is_some()
    );
    let names = eventually("Role resourceNames", Duration::from_secs(20), || {
        role_names(&client, "default", "local-gatehouse")
    })
    .await;
    assert_eq!(names, ["demo-upstream-token", "quickstart-api-keys"]);
    let cm = get(
        &client,
        &ar::<ConfigMap>(),
        "default",
        "local-gatehouse-snapshot",
    )
    .await
    .expect("snapshot ConfigMap");
    let snapshot_json = cm["data"]["snapshot.json"].as_str().unwrap();
    let lkg: gatehouse_api::GatewayConfig = serde_json::from_str(snapshot_json).unwrap();
    for secret_value in [
        "quickstart-upstream-token",
        "b15978c79831317b764bd52a9bef55df",
    ] {
        assert!(
            !snapshot_json.contains(secret_value),
            "a Secret value leaked into the ConfigMap"
        );
    }

    // the workload McpServer runs with its sidecar
    let side = eventually(
        "Deployment tools/postgres-mcp",
        Duration::from_secs(20),
        || async {
            get(&client, &ar::<Deployment>(), "tools", "postgres-mcp")
                .await
                .ok_or("absent".to_string())
        },
    )
    .await;
    let containers = side["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(
        containers[0]["env"][0],
        serde_json::json!({"name": "HOST", "value": "127.0.0.1"})
    );
    assert!(containers[0]["env"].to_string().contains("DATABASE_URL"));
    assert!(
        containers[1]["args"]
            .to_string()
            .contains(r#""--sidecar","tools/postgres-mcp""#)
    );
    assert!(
        get(&client, &ar::<Service>(), "tools", "postgres-mcp")
            .await
            .is_some()
    );

    let table = kubectl
        .ok(&["get", "mcpservers,accesspolicies", "-A"])
        .await;
    for column in [
        "READY",
        "REASON",
        "GATEWAY",
        "URL",
        "ACTION",
        "http://localhost:8080/mcp/demo",
    ] {
        assert!(table.contains(column), "missing {column} in:\n{table}");
    }

    // --- push: authentication
    let id = gatehouse_api::config::GatewayId::Gateway {
        key: ObjectKey::new("default", "local"),
    };
    let (stream_p, status_p) = (stream_path(&id), status_path(&id));
    assert_eq!(
        GatewayStream::open(op.push, &stream_p, "not-a-token", "local-a")
            .await
            .err(),
        Some(401)
    );
    let other = tokens
        .token(&client, "tools", "tools-gateway-gatehouse")
        .await;
    assert_eq!(
        GatewayStream::open(op.push, &stream_p, &other, "local-a")
            .await
            .err(),
        Some(403)
    );

    // --- push: snapshot, ACK, Programmed
    let token = tokens.token(&client, "default", "local-gatehouse").await;
    let t = Instant::now();
    let mut stream = GatewayStream::open(op.push, &stream_p, &token, "local-a")
        .await
        .expect("stream");
    let first = stream.next_snapshot().await;
    println!("TIMING connect to first snapshot: {:?}", t.elapsed());
    assert_eq!(
        first.version, lkg.version,
        "stream and ConfigMap carry the same snapshot"
    );
    let ack = |version: &str| StatusReport {
        pod: "local-a".into(),
        version: version.into(),
        accepted: true,
        reason: None,
    };
    let t = Instant::now();
    assert_eq!(
        report(op.push, &status_p, &token, &ack(&first.version)).await,
        204
    );
    let demo = wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "Ready",
        "True",
    )
    .await;
    println!("TIMING ACK to Ready: {:?}", t.elapsed());
    assert_eq!(
        condition(&demo, "Programmed").unwrap().2,
        format!("1/1 replicas applied version {}", first.version)
    );
    wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "alice-demo",
        "Ready",
        "True",
    )
    .await;
    let gw = wait_condition(
        &client,
        &ar::<McpGateway>(),
        "default",
        "local",
        "Ready",
        "True",
    )
    .await;
    assert_eq!(gw["status"]["configVersion"], first.version.as_str());
    assert_eq!(gw["status"]["replicasApplied"][0]["pod"], "local-a");
    assert_eq!(gw["status"]["readyReplicas"], 0);
    let ready_at = condition(&demo, "Ready").unwrap();
    let table = kubectl.ok(&["get", "mcpservers", "-n", "default"]).await;
    assert!(table.contains("True"), "{table}");

    // --- a policy change: new snapshot on the open stream, Role follows, NACK then ACK
    let t = Instant::now();
    kubectl.apply(EXTRA).await;
    let second = stream.next_snapshot().await;
    println!("TIMING kubectl apply to snapshot pushed: {:?}", t.elapsed());
    assert_ne!(second.version, first.version);
    assert!(second.policies.iter().any(|p| p.key.name == "carol-demo"));
    let names = eventually(
        "Role follows the policy",
        Duration::from_secs(20),
        || async {
            let n = role_names(&client, "default", "local-gatehouse").await?;
            if n.contains(&"extra-upstream-token".to_string()) {
                Ok(n)
            } else {
                Err(format!("{n:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        names,
        [
            "demo-upstream-token",
            "extra-upstream-token",
            "quickstart-api-keys"
        ]
    );
    let nack = StatusReport {
        accepted: false,
        reason: Some("policy carol-demo: unsupported".into()),
        ..ack(&second.version)
    };
    assert_eq!(report(op.push, &status_p, &token, &nack).await, 204);
    let carol = wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "carol-demo",
        "Programmed",
        "False",
    )
    .await;
    assert_eq!(condition(&carol, "Programmed").unwrap().1, "Rejected");
    assert!(
        condition(&carol, "Programmed")
            .unwrap()
            .2
            .contains("unsupported")
    );
    assert_eq!(
        report(op.push, &status_p, &token, &ack(&second.version)).await,
        204
    );
    wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "carol-demo",
        "Ready",
        "True",
    )
    .await;

    // --- a broken manifest shows in status; the rest stays Ready
    kubectl.apply(BROKEN).await;
    let broken = wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "broken",
        "ResolvedRefs",
        "False",
    )
    .await;
    assert_eq!(condition(&broken, "Ready").unwrap().0, "False");
    let demo = wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "Ready",
        "True",
    )
    .await;
    assert_eq!(condition(&demo, "Ready").unwrap().0, ready_at.0);
    let table = kubectl
        .ok(&["get", "accesspolicies", "-n", "default"])
        .await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("broken") && l.contains("False")),
        "{table}"
    );

    // --- Events for notable transitions, and metrics
    let events = eventually(
        "Ready and ConfigRejected events",
        Duration::from_secs(20),
        || async {
            let api: Api<k8s_openapi::api::events::v1::Event> =
                Api::namespaced(client.clone(), "default");
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
            if reasons.iter().any(|r| r == "Ready") && reasons.iter().any(|r| r == "ConfigRejected")
            {
                Ok(reasons)
            } else {
                Err(format!("{reasons:?}"))
            }
        },
    )
    .await;
    assert!(events.iter().any(|r| r == "RefsNotResolved"), "{events:?}");
    let metrics = http_get(op.metrics, "/metrics").await;
    for m in [
        "gatehouse_operator_reconciles_total",
        "gatehouse_operator_compile_duration_seconds",
        "gatehouse_operator_push_latency_seconds",
        "gatehouse_operator_connected_gateways 1",
        "gatehouse_operator_nacks_total 1",
    ] {
        assert!(metrics.contains(m), "missing {m} in\n{metrics}");
    }
    assert_eq!(http_get(op.metrics, "/readyz").await, "ok\n");
    let lease = |c: Client| async move {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(c, "default");
        api.get("gatehouse-operator")
            .await
            .ok()
            .and_then(|l| l.spec?.holder_identity)
    };
    let first_leader = lease(client.clone())
        .await
        .expect("a leader holds the Lease");

    // --- operator restart: same objects, same versions; gateways reconnect and re-ACK
    let before_cm = get(
        &client,
        &ar::<ConfigMap>(),
        "default",
        "local-gatehouse-snapshot",
    )
    .await;
    op.kill().await;
    drop(stream);
    let t = Instant::now();
    let op = Operator::start(kubeconfig, "default").await;
    let mut stream = eventually(
        "reconnect after restart",
        Duration::from_secs(20),
        || async {
            GatewayStream::open(op.push, &stream_p, &token, "local-a")
                .await
                .map_err(|c| c.to_string())
        },
    )
    .await;
    let again = stream.next_snapshot().await;
    assert_eq!(
        again.version, second.version,
        "a restart does not change the snapshot"
    );
    assert_eq!(
        report(op.push, &status_p, &token, &ack(&again.version)).await,
        204
    );
    let gw = wait_condition(
        &client,
        &ar::<McpGateway>(),
        "default",
        "local",
        "Ready",
        "True",
    )
    .await;
    println!("TIMING restart to snapshot re-ACKed: {:?}", t.elapsed());
    assert_eq!(gw["status"]["configVersion"], second.version.as_str());
    let names = role_names(&client, "default", "local-gatehouse")
        .await
        .unwrap();
    assert_eq!(
        names,
        [
            "demo-upstream-token",
            "extra-upstream-token",
            "quickstart-api-keys"
        ]
    );
    let after_cm = get(
        &client,
        &ar::<ConfigMap>(),
        "default",
        "local-gatehouse-snapshot",
    )
    .await;
    assert_eq!(
        before_cm.map(|c| c["data"].clone()),
        after_cm.map(|c| c["data"].clone())
    );
    // the new process takes the Lease over once it expires, and writes status from then on
    eventually(
        "the restarted operator leads",
        Duration::from_secs(20),
        || async {
            match lease(client.clone()).await {
                Some(h) if h != first_leader => Ok(h),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    println!("TIMING restart to new leader: {:?}", t.elapsed());
    kubectl
        .apply(&BROKEN.replace("does-not-exist", "demo"))
        .await;
    let fixed = stream.next_snapshot().await;
    assert_eq!(
        report(op.push, &status_p, &token, &ack(&fixed.version)).await,
        204
    );
    wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "broken",
        "Ready",
        "True",
    )
    .await;
    wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "Ready",
        "True",
    )
    .await;
    op.kill().await;
}
