//! Two operator replicas (leader election on, as the chart installs them): a gateway whose push
//! stream lands on the replica that is NOT the leader still gets its ACK into status, because
//! every replica shares what its streams reported with the leader.

mod support;

use gatehouse_api::McpGateway;
use gatehouse_api::config::GatewayId;
use gatehouse_api::push::{StatusReport, status_path, stream_path};
use gatehouse_api::refs::ObjectKey;
use gatehouse_kube_double::{KubeDouble, Options, UserInfo};
use kube::core::ApiResource;
use std::time::Instant;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_received_by_a_non_leader_reaches_status() {
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
        .ok(&[
            "apply",
            "-f",
            root.join("examples/quickstart").to_str().unwrap(),
        ])
        .await;
    let ar = ApiResource::erase::<McpGateway>(&());

    // The first replica takes the lease and writes status: Programmed is pending (no gateway).
    let leader = Operator::start(kubeconfig, "default").await;
    wait_condition(&client, &ar, "default", "local", "Programmed", "Unknown").await;
    // The second replica serves pushes but does not lead.
    let follower = Operator::start(kubeconfig, "default").await;

    let id = GatewayId::Gateway {
        key: ObjectKey::new("default", "local"),
    };
    let token = "token-default-local-gw";
    double.register_token(
        token,
        UserInfo {
            username: format!(
                "system:serviceaccount:default:{}",
                gatehouse_operator::names::service_account(&id)
            ),
            ..Default::default()
        },
    );
    let pod = "local-gateway-0";
    let mut stream = GatewayStream::open(follower.push, &stream_path(&id), token, pod)
        .await
        .expect("the follower serves the push stream");
    let snapshot = stream.next_snapshot().await;
    let acked = Instant::now();
    let status = report(
        follower.push,
        &status_path(&id),
        token,
        &StatusReport {
            pod: pod.into(),
            version: snapshot.version.clone(),
            accepted: true,
            reason: None,
        },
    )
    .await;
    assert_eq!(status, 204, "the follower records the ACK");
    let gw = wait_condition(&client, &ar, "default", "local", "Programmed", "True").await;
    println!(
        "TIMING ack on the follower → Programmed=True (written by the leader): {:?}",
        acked.elapsed()
    );
    let (_, _, message) = condition(&gw, "Programmed").unwrap();
    assert!(message.contains(&snapshot.version), "{message}");
    assert_eq!(gw["status"]["replicasApplied"][0]["pod"], pod, "{gw}");
    wait_condition(&client, &ar, "default", "local", "Ready", "True").await;
    drop(stream);
    follower.kill().await;
    leader.kill().await;
}
