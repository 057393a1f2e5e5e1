//! Binary level: the config push stream over TLS. The real operator serves its push endpoint
//! with a certificate a test CA issued and renders that CA into a ConfigMap the gateway
//! Deployment mounts and names with `--operator-ca`. A gateway given another CA refuses the
//! operator — no snapshot applied, not ready, a log line that says why — while a gateway given
//! the operator's CA receives its snapshot over HTTPS and serves traffic. A gateway told to
//! trust a CA for a plain `http://` operator refuses to start.

mod gateway_cluster_support;
mod support;

use gatehouse_kube_double::{KubeDouble, Options};
use gatehouse_tests::procs::{self, DemoServer, http_get_status};
use gatehouse_tests::{ALICE_KEY, Scratch, UPSTREAM_TOKEN, mcp};
use gateway_cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_verify_the_operator_against_the_ca_they_are_given() {
    tokio::task::spawn_blocking(|| procs::binary("gatehouse-gateway"))
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(&scratch.path().join("demo.log")).expect("demo server");
    let manifests = Scratch::quickstart(&demo.url).expect("manifests");
    let double = KubeDouble::start(Options::default())
        .await
        .expect("double starts");
    let kubeconfig = double.kubeconfig_path();
    let kubectl = Kubectl::new(kubeconfig);
    let client = client(kubeconfig).await;
    kubectl
        .ok(&["apply", "-f", repo_root().join("crds").to_str().unwrap()])
        .await;
    kubectl
        .ok(&["apply", "-f", manifests.manifests().to_str().unwrap()])
        .await;
    let push = PushEndpoint::new();
    let op = operator_on(kubeconfig, &push).await;

    // --- the operator hands its CA to the gateway Deployment: a ConfigMap, a mount, a flag
    let deployment = eventually(
        "the gateway Deployment",
        Duration::from_secs(30),
        || async {
            get(&client, &ar::<Deployment>(), "default", "local")
                .await
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    let pod = &deployment["spec"]["template"]["spec"];
    let args: Vec<String> = serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
    let flag = args
        .iter()
        .position(|a| a == "--operator")
        .expect("--operator");
    assert_eq!(args[flag + 1], push.url());
    let ca_flag = args
        .iter()
        .position(|a| a == "--operator-ca")
        .expect("--operator-ca");
    assert_eq!(args[ca_flag + 1], "/etc/gatehouse/operator-ca/ca.crt");
    let mounts = pod["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/gatehouse/operator-ca"), "{mounts}");
    assert!(
        pod["volumes"]
            .to_string()
            .contains("local-gatehouse-operator-ca"),
        "{}",
        pod["volumes"]
    );
    let ca_cm = get(
        &client,
        &ar::<ConfigMap>(),
        "default",
        "local-gatehouse-operator-ca",
    )
    .await
    .expect("the operator CA ConfigMap");
    assert_eq!(ca_cm["data"]["ca.crt"], push.ca_pem());

    let token_file = projected_token(&double, scratch.path(), "default", "local-gatehouse");

    // --- a gateway given another CA refuses the operator: nothing applied, not ready
    let stranger = scratch.path().join("stranger-ca.crt");
    std::fs::write(&stranger, issue("stranger CA").ca_pem).unwrap();
    let rogue_log = scratch.path().join("gateway-stranger.log");
    let rogue = ClusterGateway::start(
        kubeconfig,
        &push.trusting(stranger.clone()),
        &token_file,
        &scratch.path().join("no-snapshot.json"),
        "local-7d9c-x",
        &rogue_log,
    );
    let refusal = eventually(
        "the refusal in the gateway's log",
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(&rogue_log).unwrap_or_default();
            log.lines()
                .find(|l| l.contains("snapshot stream down"))
                .map(str::to_string)
                .ok_or("not yet".to_string())
        },
    )
    .await;
    assert!(refusal.contains("invalid peer certificate"), "{refusal}");
    assert!(
        refusal.contains(&format!(
            "not signed by a CA in --operator-ca {}",
            stranger.display()
        )),
        "{refusal}"
    );
    let log = std::fs::read_to_string(&rogue_log).unwrap();
    assert!(!log.contains("snapshot received"), "{log}");
    assert!(!log.contains("snapshot stream open"), "{log}");
    assert_eq!(
        http_get_status(&format!("{}/readyz", rogue.admin)),
        Some(503),
        "a gateway without a configuration is not ready"
    );
    let metrics = http_get(op.metrics, "/metrics").await;
    assert!(
        metrics.contains("gatehouse_operator_connected_gateways 0"),
        "{metrics}"
    );
    drop(rogue);

    // --- a gateway given the operator's CA: snapshot over HTTPS, ACKed, serving
    let gw_log = scratch.path().join("gateway.log");
    let gw = ClusterGateway::start(
        kubeconfig,
        &push,
        &token_file,
        &scratch.path().join("no-snapshot.json"),
        "local-7d9c-a",
        &gw_log,
    );
    gw.ready().await;
    let (alice, _) = mcp::connect(&gw.mcp, Some(ALICE_KEY))
        .await
        .expect("alice connects");
    assert_eq!(
        whoami(&alice).await.unwrap(),
        format!("Bearer {UPSTREAM_TOKEN}")
    );
    eventually(
        "the ACK reaches the operator",
        Duration::from_secs(20),
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

    // --- a CA for a plain-HTTP operator URL is a contradiction: the gateway refuses to start
    let out = tokio::task::spawn_blocking({
        let (kubeconfig, token_file, ca) = (
            kubeconfig.to_path_buf(),
            token_file.clone(),
            push.ca.clone(),
        );
        let operator = format!("http://{}", push.addr);
        move || {
            std::process::Command::new(procs::binary("gatehouse-gateway"))
                .args(["run", "--cluster", "--gateway", "default/local"])
                .args(["--operator", &operator, "--operator-ca"])
                .arg(&ca)
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .arg("--token-file")
                .arg(&token_file)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .env("POD_NAME", "local-7d9c-z")
                .output()
                .expect("gateway runs")
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--operator-ca is set but --operator"),
        "{stderr}"
    );
}
