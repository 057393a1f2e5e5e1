//! Binary level: listener TLS in cluster mode. The McpGateway names a `kubernetes.io/tls`
//! Secret; the real operator renders the Deployment with `--listener-tls`, an HTTPS Service
//! port and a Role that lists the Secret; a real `gatehouse-gateway run --cluster` started with
//! those arguments reads the certificate through its Secret watch and serves HTTPS to a client
//! trusting a test CA (made with rcgen). A broken certificate is refused (NACK, not ready, no
//! plain HTTP); a rotation reaches new connections without a restart.

mod gateway_cluster_support;
mod support;

use gatehouse_api::McpGateway;
use gatehouse_kube_double::{KubeDouble, Options};
use gatehouse_tests::procs::{self, DemoServer, http_get_status};
use gatehouse_tests::{ALICE_KEY, Scratch, UPSTREAM_TOKEN, mcp};
use gateway_cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::Role;
use std::time::Duration;
use support::*;

fn tls_secret(crt: &str, key: &str) -> String {
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: local-tls, namespace: default}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
        indent(crt),
        indent(key)
    )
}

/// Whether an HTTPS request to `url` from a fresh client trusting only `ca_pem` gets any HTTP
/// answer (a fresh client: no pooled connection from before a rotation).
async fn https_answers(url: &str, ca_pem: &str) -> bool {
    mcp::http_client(Some(ca_pem.as_bytes()))
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_gateway_serves_https_from_the_listener_secret_and_follows_rotation() {
    tokio::task::spawn_blocking(|| procs::binary("gatehouse-gateway"))
        .await
        .unwrap();
    let scratch_dir = tempfile::tempdir().unwrap();
    let demo = DemoServer::start(&scratch_dir.path().join("demo.log")).expect("demo server");
    let manifests = Scratch::quickstart(&demo.url).expect("manifests");
    let gateway_yaml = manifests.manifests().join("gateway.yaml");
    let text = std::fs::read_to_string(&gateway_yaml).unwrap();
    let with_tls = text.replace(
        "  listener:\n    port: 8080\n",
        "  listener:\n    port: 8080\n    tls:\n      secretRef: {name: local-tls}\n",
    );
    assert_ne!(
        text, with_tls,
        "the quickstart gateway has a listener block"
    );
    std::fs::write(&gateway_yaml, with_tls).unwrap();

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
    // A certificate with somebody else's key: the Secret exists, but is unusable.
    let (first, second, stranger) = (issue("first CA"), issue("second CA"), issue("stranger"));
    kubectl
        .apply(&tls_secret(&first.cert_pem, &stranger.key_pem))
        .await;

    let push = PushEndpoint::new();
    let _op = operator_on(kubeconfig, &push).await;

    // --- the operator renders HTTPS: the flag, the port names, the Role
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
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    assert!(args.iter().any(|a| a == "--listener-tls"), "{args:?}");
    assert_eq!(container["ports"][0]["name"], "https");
    // Applied after the Deployment: wait for it too.
    let service = eventually("the gateway Service", Duration::from_secs(30), || async {
        get(&client, &ar::<Service>(), "default", "local")
            .await
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "https");
    assert_eq!(service["spec"]["ports"][0]["appProtocol"], "https");
    let role = get(&client, &ar::<Role>(), "default", "local-gatehouse")
        .await
        .expect("Role");
    let names = role["rules"][0]["resourceNames"].to_string();
    assert!(names.contains("\"local-tls\""), "{names}");

    // --- the gateway, started as the Deployment starts it, refuses the broken certificate
    let token_file = projected_token(&double, scratch_dir.path(), "default", "local-gatehouse");
    let gw_log = scratch_dir.path().join("gateway.log");
    let mut gw = ClusterGateway::start_with(
        kubeconfig,
        &push,
        &token_file,
        &scratch_dir.path().join("no-snapshot.json"),
        "local-7d9c-a",
        &gw_log,
        &["--listener-tls"],
    );
    assert!(gw.mcp.starts_with("https://"), "{}", gw.mcp);
    let gw_cr = eventually("the NACK in status", Duration::from_secs(30), || async {
        let o = get(&client, &ar::<McpGateway>(), "default", "local")
            .await
            .ok_or("no McpGateway")?;
        match condition(&o, "Programmed") {
            Some((s, _, m)) if s == "False" && m.contains("local-tls") => Ok(m),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        gw_cr.contains("tls.crt and tls.key do not belong together"),
        "{gw_cr}"
    );
    assert!(
        !gw_cr.contains("BEGIN"),
        "no key material in status: {gw_cr}"
    );
    assert_eq!(http_get_status(&format!("{}/readyz", gw.admin)), Some(503));
    assert!(!https_answers(&gw.mcp, &first.ca_pem).await);
    let plain = gw.mcp.replacen("https://", "http://", 1);
    assert_eq!(
        http_get_status(&plain),
        None,
        "a TLS listener never answers plain HTTP"
    );

    // --- a valid certificate: ACKed, ready, MCP over HTTPS to the real upstream
    kubectl
        .apply(&tls_secret(&first.cert_pem, &first.key_pem))
        .await;
    gw.ready().await;
    let (alice, _) = mcp::connect_with(
        &gw.mcp,
        Some(ALICE_KEY),
        mcp::http_client(Some(first.ca_pem.as_bytes())),
    )
    .await
    .expect("alice connects over HTTPS");
    assert_eq!(
        whoami(&alice).await.unwrap(),
        format!("Bearer {UPSTREAM_TOKEN}")
    );
    assert!(!https_answers(&gw.mcp, &second.ca_pem).await);

    // --- rotation: new connections get the new certificate; same process
    kubectl
        .apply(&tls_secret(&second.cert_pem, &second.key_pem))
        .await;
    eventually(
        "the rotated certificate served",
        Duration::from_secs(20),
        || async {
            if https_answers(&gw.mcp, &second.ca_pem).await {
                Ok(())
            } else {
                Err("old certificate still served".to_string())
            }
        },
    )
    .await;
    assert!(!https_answers(&gw.mcp, &first.ca_pem).await);
    let (alice2, _) = mcp::connect_with(
        &gw.mcp,
        Some(ALICE_KEY),
        mcp::http_client(Some(second.ca_pem.as_bytes())),
    )
    .await
    .expect("alice connects with the rotated certificate");
    assert_eq!(
        whoami(&alice2).await.unwrap(),
        format!("Bearer {UPSTREAM_TOKEN}")
    );

    // --- a rotation to a broken certificate keeps the last good one
    kubectl
        .apply(&tls_secret(&first.cert_pem, &stranger.key_pem))
        .await;
    let log = || std::fs::read_to_string(&gw_log).unwrap_or_default();
    eventually(
        "the broken rotation noticed",
        Duration::from_secs(20),
        || async {
            if log().contains("no longer builds") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    assert!(https_answers(&gw.mcp, &second.ca_pem).await);
    assert_eq!(http_get_status(&format!("{}/readyz", gw.admin)), Some(200));
    assert!(gw.still_running(), "no restart at any point");
    for pem in [&first.key_pem, &second.key_pem, &stranger.key_pem] {
        let body = pem.lines().nth(1).unwrap();
        assert!(!log().contains(body), "no key material in the gateway log");
    }
}
