//! Binary level, on every CI run: the API double serves, kubectl applies the CRDs and a
//! quickstart manifest set whose McpServer points at a real `gatehouse-demo-server`, the real
//! `gatehouse-operator` reconciles, and a real `gatehouse-gateway run --cluster` process —
//! started as the operator's Deployment starts it — receives its snapshot, ACKs, reads its
//! Secrets from the API and serves MCP traffic. Then: a policy change is enforced (the
//! apply-to-enforced time is printed, not asserted), a Secret rotation reaches the upstream
//! without a restart, a broken manifest shows in status while traffic flows, the operator is
//! killed and restarted while the gateway keeps serving, and a second gateway started with the
//! operator down serves from the snapshot ConfigMap (last known good).

mod gateway_cluster_support;
mod support;

use gatehouse_api::{AccessPolicy, McpGateway, McpServer};
use gatehouse_kube_double::{KubeDouble, Options};
use gatehouse_tests::mcp;
use gatehouse_tests::procs::{self, DemoServer};
use gatehouse_tests::{ALICE_KEY, BOB_KEY, Scratch, UPSTREAM_TOKEN};
use gateway_cluster_support::*;
use k8s_openapi::api::core::v1::ConfigMap;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_gateway_follows_the_operator_against_the_api_double() {
    tokio::task::spawn_blocking(|| procs::binary("gatehouse-gateway"))
        .await
        .unwrap();
    let scratch_dir = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(&scratch_dir.path().join("demo.log")).expect("demo server");
    let manifests = Scratch::quickstart(&demo.url).expect("manifests");

    let double = KubeDouble::start(Options::default())
        .await
        .expect("double starts");
    let kubeconfig = double.kubeconfig_path();
    let kubectl = Kubectl::new(kubeconfig);
    let client = client(kubeconfig).await;
    let root = repo_root();
    kubectl
        .ok(&["apply", "-f", root.join("crds").to_str().unwrap()])
        .await;
    kubectl
        .ok(&["apply", "-f", manifests.manifests().to_str().unwrap()])
        .await;

    let push = PushEndpoint::new();
    let op = operator_on(kubeconfig, &push).await;
    // The ServiceAccount token the kubelet would project into the pod.
    let token_file = projected_token(&double, scratch_dir.path(), "default", "local-gatehouse");
    let gw_log = scratch_dir.path().join("gateway.log");
    let t = Instant::now();
    let mut gw = ClusterGateway::start(
        kubeconfig,
        &push,
        &token_file,
        &scratch_dir.path().join("no-snapshot.json"),
        "local-7d9c-a",
        &gw_log,
    );

    // --- over HTTPS: the snapshot received, Secrets read, applied, ACKed: Ready everywhere
    let ready = gw.ready().await;
    let log = std::fs::read_to_string(&gw_log).unwrap();
    assert!(
        log.contains("verifying the operator's certificate against the --operator-ca bundle only"),
        "{log}"
    );
    assert!(log.contains("snapshot stream open"), "{log}");
    assert!(
        log.contains(&format!("{}/v1/snapshots/", push.url())),
        "{log}"
    );
    println!(
        "TIMING gateway start to ready: {:?} ({})",
        t.elapsed(),
        ready.trim()
    );
    let demo_cr = wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "Ready",
        "True",
    )
    .await;
    println!("TIMING gateway start to McpServer Ready: {:?}", t.elapsed());
    let programmed = condition(&demo_cr, "Programmed").unwrap().2;
    assert!(
        programmed.starts_with("1/1 replicas applied version"),
        "{programmed}"
    );
    assert!(
        ready.contains(programmed.rsplit(' ').next().unwrap()),
        "{ready} vs {programmed}"
    );
    let gw_cr = wait_condition(
        &client,
        &ar::<McpGateway>(),
        "default",
        "local",
        "Ready",
        "True",
    )
    .await;
    assert_eq!(gw_cr["status"]["replicasApplied"][0]["pod"], "local-7d9c-a");
    wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "alice-demo",
        "Ready",
        "True",
    )
    .await;

    // --- MCP traffic to the real upstream, with the credential read from the Secret
    let (alice, _) = mcp::connect(&gw.mcp, Some(ALICE_KEY))
        .await
        .expect("alice connects");
    assert_eq!(
        whoami(&alice).await.unwrap(),
        format!("Bearer {UPSTREAM_TOKEN}")
    );
    let (bob, _) = mcp::connect(&gw.mcp, Some(BOB_KEY))
        .await
        .expect("bob connects");
    let refused = whoami(&bob).await.expect_err("bob may not call whoami yet");
    assert!(
        refused.contains("no AccessPolicy allows user \"bob\""),
        "{refused}"
    );

    // --- (a) a policy change via kubectl apply is enforced by the running gateway
    let t = Instant::now();
    kubectl.apply(BOB_WHOAMI).await;
    let applied = t.elapsed();
    eventually("bob's whoami allowed", Duration::from_secs(20), || async {
        whoami(&bob).await
    })
    .await;
    println!(
        "TIMING kubectl apply to enforced by the gateway: {:?} (kubectl itself: {applied:?})",
        t.elapsed()
    );
    wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "bob-whoami",
        "Ready",
        "True",
    )
    .await;

    // --- (d) a Secret rotation reaches the upstream without a restart
    let t = Instant::now();
    kubectl
        .apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: demo-upstream-token, namespace: default}}\nstringData: {{token: {ROTATED_TOKEN}}}\n"
        ))
        .await;
    eventually(
        "the rotated credential upstream",
        Duration::from_secs(20),
        || async {
            match whoami(&alice).await {
                Ok(a) if a == format!("Bearer {ROTATED_TOKEN}") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    println!(
        "TIMING Secret apply to rotated credential upstream: {:?}",
        t.elapsed()
    );
    assert!(gw.still_running(), "the gateway restarted");

    // --- (b) a broken manifest shows in status while traffic keeps flowing
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
    assert_eq!(
        whoami(&alice).await.unwrap(),
        format!("Bearer {ROTATED_TOKEN}")
    );
    assert!(whoami(&bob).await.is_ok());
    wait_condition(
        &client,
        &ar::<McpServer>(),
        "default",
        "demo",
        "Ready",
        "True",
    )
    .await;

    // --- a snapshot the gateway cannot build is NACKed and shows in status; the previous
    // configuration keeps serving; fixing the Secret applies it and ACKs it
    kubectl.apply(&api_keys(None)).await;
    let problem = eventually(
        "the malformed key is noticed",
        Duration::from_secs(20),
        || async {
            let log = std::fs::read_to_string(&gw_log).unwrap_or_default();
            log.lines()
                .find(|l| l.contains("no longer builds"))
                .map(str::to_string)
                .ok_or("not yet".to_string())
        },
    )
    .await;
    assert!(problem.contains("sha256:<64 hex digits>"), "{problem}");
    assert!(
        !problem.contains("not-a-hash"),
        "a Secret value was logged: {problem}"
    );
    assert_eq!(
        whoami(&alice).await.unwrap(),
        format!("Bearer {ROTATED_TOKEN}")
    );
    kubectl.apply(CAROL_DEMO).await;
    let carol = wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "carol-demo",
        "Programmed",
        "False",
    )
    .await;
    let (_, reason, message) = condition(&carol, "Programmed").unwrap();
    assert_eq!(reason, "Rejected", "{message}");
    assert!(
        message.contains("must be sha256:<64 hex digits>"),
        "{message}"
    );
    assert!(
        !message.contains("not-a-hash"),
        "a Secret value reached status: {message}"
    );
    assert_eq!(
        whoami(&alice).await.unwrap(),
        format!("Bearer {ROTATED_TOKEN}")
    );
    let t = Instant::now();
    kubectl.apply(&api_keys(Some(CAROL_HASH))).await;
    wait_condition(
        &client,
        &ar::<AccessPolicy>(),
        "default",
        "carol-demo",
        "Ready",
        "True",
    )
    .await;
    println!(
        "TIMING Secret fix to rejected snapshot ACKed: {:?}",
        t.elapsed()
    );
    let (carol, _) = mcp::connect(&gw.mcp, Some(CAROL_KEY))
        .await
        .expect("carol connects");
    assert_eq!(
        whoami(&carol).await.unwrap(),
        format!("Bearer {ROTATED_TOKEN}")
    );

    // --- (c) the operator is killed: the gateway keeps serving; restarted: it reconnects
    op.kill().await;
    for _ in 0..3 {
        assert_eq!(
            whoami(&alice).await.unwrap(),
            format!("Bearer {ROTATED_TOKEN}")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(gw.ready().await.starts_with("ready"));
    let t = Instant::now();
    let op = operator_on(kubeconfig, &push).await;
    eventually(
        "the gateway reconnects",
        Duration::from_secs(30),
        || async {
            let m = http_get(op.metrics, "/metrics").await;
            if m.contains("gatehouse_operator_connected_gateways 1") {
                Ok(())
            } else {
                Err("not connected".to_string())
            }
        },
    )
    .await;
    println!(
        "TIMING operator restart to gateway reconnected: {:?}",
        t.elapsed()
    );
    // The stream is live again: revoking bob's grant is enforced.
    kubectl
        .ok(&["delete", "accesspolicy", "bob-whoami", "-n", "default"])
        .await;
    eventually(
        "bob's whoami refused again",
        Duration::from_secs(20),
        || async {
            match whoami(&bob).await {
                Err(e) if e.contains("no AccessPolicy allows user \"bob\"") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let gw_cr = wait_condition(
        &client,
        &ar::<McpGateway>(),
        "default",
        "local",
        "Ready",
        "True",
    )
    .await;
    let version = gw_cr["status"]["configVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // --- (e) operator down: a new replica starts from the snapshot ConfigMap
    op.kill().await;
    let cm = eventually(
        "the snapshot ConfigMap follows",
        Duration::from_secs(20),
        || async {
            let cm = get(
                &client,
                &ar::<ConfigMap>(),
                "default",
                "local-gatehouse-snapshot",
            )
            .await
            .ok_or("absent".to_string())?;
            let text = cm["data"]["snapshot.json"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if text.contains(&version) {
                Ok(text)
            } else {
                Err("older version".to_string())
            }
        },
    )
    .await;
    let lkg_file = scratch_dir.path().join("snapshot.json");
    std::fs::write(&lkg_file, cm).unwrap();
    let gw2 = ClusterGateway::start(
        kubeconfig,
        &push,
        &token_file,
        &lkg_file,
        "local-7d9c-b",
        &scratch_dir.path().join("gateway-2.log"),
    );
    let ready2 = gw2.ready().await;
    assert!(ready2.contains(&version), "{ready2} vs {version}");
    let (alice2, _) = mcp::connect(&gw2.mcp, Some(ALICE_KEY))
        .await
        .expect("alice connects");
    assert_eq!(
        whoami(&alice2).await.unwrap(),
        format!("Bearer {ROTATED_TOKEN}")
    );

    // Secret values never reach the gateway's logs.
    let logs = std::fs::read_to_string(&gw_log).unwrap()
        + &std::fs::read_to_string(scratch_dir.path().join("gateway-2.log")).unwrap();
    let token = std::fs::read_to_string(&token_file).unwrap();
    for secret in [
        UPSTREAM_TOKEN,
        ROTATED_TOKEN,
        ALICE_KEY,
        BOB_KEY,
        CAROL_KEY,
        token.trim(),
    ] {
        assert!(!logs.contains(secret), "a secret value was logged");
    }
    assert!(gw.still_running());
}
