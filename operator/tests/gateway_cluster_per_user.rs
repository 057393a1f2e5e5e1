//! Binary level: `perUserSecret` with a `nameTemplate` (one Secret per user) in cluster mode.
//! The real operator lists the personal Secrets the template matches in the snapshot and names
//! each in the gateway's Role; a real `gatehouse-gateway run --cluster` process reads exactly
//! those and sends alice's token upstream for alice and bob's for bob (the demo server's
//! `whoami` reports what arrived). A user without a Secret gets an error naming the Secret to
//! ask for; once an administrator creates it, it works without a restart.

mod gateway_cluster_support;
mod support;

use gatehouse_kube_double::{KubeDouble, Options};
use gatehouse_tests::mcp;
use gatehouse_tests::procs::{self, DemoServer};
use gatehouse_tests::{ALICE_KEY, BOB_KEY, Scratch};
use gateway_cluster_support::*;
use k8s_openapi::api::rbac::v1::Role;
use serde_json::json;
use std::time::Duration;
use support::*;

/// Replaces the quickstart's policies: alice, bob and carol may call `whoami` with their own
/// token, from the Secret `pat-<user>` (key `token`).
const PERSONAL: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {name: personal-pat, namespace: default}
spec:
  perUserSecret: {nameTemplate: "pat-{user}"}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: personal, namespace: default}
spec:
  subjects:
    - users: {ids: [alice, bob, carol]}
  targets:
    - server: demo
      credentialProvider: personal-pat
      tools: {allow: [whoami]}
---
apiVersion: v1
kind: Secret
metadata: {name: pat-alice, namespace: default}
stringData: {token: alice-personal-token}
---
apiVersion: v1
kind: Secret
metadata: {name: pat-bob, namespace: default}
stringData: {token: bob-personal-token}
---
apiVersion: v1
kind: Secret
metadata: {name: pat-mallory, namespace: default}
stringData: {password: not-under-the-configured-key}
"#;

const CAROL_PAT: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: pat-carol, namespace: default}\nstringData: {token: carol-personal-token}\n";

/// The names the gateway's Role lets it read.
async fn readable(client: &kube::Client) -> Result<serde_json::Value, String> {
    let role = get(client, &ar::<Role>(), "default", "local-gatehouse")
        .await
        .ok_or("no Role")?;
    Ok(role["rules"][0]["resourceNames"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_reaches_the_upstream_with_their_own_secret_in_cluster_mode() {
    tokio::task::spawn_blocking(|| procs::binary("gatehouse-gateway"))
        .await
        .unwrap();
    let scratch_dir = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(&scratch_dir.path().join("demo.log")).expect("demo server");
    let manifests = Scratch::quickstart(&demo.url).expect("manifests");
    manifests
        .write_manifest("policy.yaml", PERSONAL)
        .expect("policy");

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
    let _op = operator_on(kubeconfig, &push).await;
    let token_file = projected_token(&double, scratch_dir.path(), "default", "local-gatehouse");
    let mut gw = ClusterGateway::start(
        kubeconfig,
        &push,
        &token_file,
        &scratch_dir.path().join("no-snapshot.json"),
        "local-7d9c-a",
        &scratch_dir.path().join("gateway.log"),
    );
    gw.ready().await;

    // --- the Role names exactly the matching personal Secrets (not pat-mallory: no `token`)
    let names = eventually(
        "the personal Secrets in the Role",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                let names = readable(&client).await?;
                if names.to_string().contains("pat-bob") {
                    Ok(names)
                } else {
                    Err(names.to_string())
                }
            }
        },
    )
    .await;
    assert_eq!(
        names,
        json!(["pat-alice", "pat-bob", "quickstart-api-keys"])
    );

    // --- alice's token reaches the upstream for alice, bob's for bob
    let (alice, _) = mcp::connect(&gw.mcp, Some(ALICE_KEY))
        .await
        .expect("alice connects");
    assert_eq!(whoami(&alice).await.unwrap(), "Bearer alice-personal-token");
    let (bob, _) = mcp::connect(&gw.mcp, Some(BOB_KEY))
        .await
        .expect("bob connects");
    assert_eq!(whoami(&bob).await.unwrap(), "Bearer bob-personal-token");

    // --- carol (a new API key) has no Secret yet: signed in, and told which one to ask for
    // (the gateway needs her credential already for `initialize` upstream)
    kubectl.apply(&api_keys(Some(CAROL_HASH))).await;
    let missing = eventually(
        "carol is told what to ask for",
        Duration::from_secs(20),
        || async {
            match mcp::connect(&gw.mcp, Some(CAROL_KEY)).await {
                Ok(_) => Err("carol connected without a token".to_string()),
                Err(e) if e.to_string().contains("no personal credential") => Ok(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    assert!(
        missing.contains("no personal credential for user \"carol\"")
            && missing.contains("Secret default/pat-carol key \"token\""),
        "{missing}"
    );

    // --- the administrator creates carol's Secret: it works, without a restart
    kubectl.apply(CAROL_PAT).await;
    eventually(
        "carol's own token upstream",
        Duration::from_secs(20),
        || async {
            let (carol, _) = mcp::connect(&gw.mcp, Some(CAROL_KEY))
                .await
                .map_err(|e| e.to_string())?;
            match whoami(&carol).await {
                Ok(a) if a == "Bearer carol-personal-token" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        readable(&client).await.unwrap(),
        json!(["pat-alice", "pat-bob", "pat-carol", "quickstart-api-keys"])
    );
    assert_eq!(whoami(&alice).await.unwrap(), "Bearer alice-personal-token");
    assert!(gw.still_running(), "the gateway restarted");
}
