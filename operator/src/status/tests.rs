//! API-verifier scenarios for status writes: the exact PATCH, no write when nothing changed,
//! and a 409 conflict retried after re-reading the object.

use super::*;
use crate::testing::{GATEWAY, answer, mock_client, published, status_error};
use gatehouse_api::push::StatusReport;

const PATH: &str = "/apis/gatehouse.dev/v1alpha1/namespaces/default/mcpservers/demo/status?";

fn server(p: &Published) -> McpServer {
    p.resources
        .servers
        .iter()
        .find(|s| s.name_any() == "demo")
        .unwrap()
        .clone()
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
}

#[tokio::test]
async fn writes_conditions_through_the_status_subresource() {
    let p = published(GATEWAY);
    let fleet = Fleet::default();
    let id = GatewayId::Gateway {
        key: ObjectKey::new("default", "gw"),
    };
    let version = p.snapshot(&id).unwrap().version.clone();
    let _conn = fleet.connect(&id, "gw-1");
    fleet.report(
        &id,
        &StatusReport {
            pod: "gw-1".into(),
            version: version.clone(),
            accepted: true,
            reason: None,
        },
    );
    let inputs = Inputs {
        published: &p,
        fleet: &fleet,
        index: None,
    };
    let (client, mut handle) = mock_client();
    let obj = server(&p);
    let verifier = tokio::spawn(async move {
        answer(
            &mut handle,
            200,
            Some(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"gatewayRef": {"name": "gw"}, "url": "http://demo.default.svc/mcp"}})),
        )
        .await
    });
    let written = write(&client, &obj, &inputs, &now()).await.unwrap();
    let call = verifier.await.unwrap();
    assert_eq!(call.method, "PATCH");
    assert_eq!(call.uri, PATH);
    assert_eq!(call.content_type, "application/merge-patch+json");
    let t = "2023-11-14T22:13:20Z";
    let c = |type_: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": "True",
        "reason": reason, "message": message, "observedGeneration": 1, "lastTransitionTime": t})
    };
    assert_eq!(
        call.body,
        json!({
            "metadata": {"resourceVersion": "1"},
            "status": {
                "observedGeneration": 1,
                "url": "https://gw.example.com/mcp/demo",
                "conditions": [
                    c("Accepted", "Accepted", "McpServer is valid"),
                    c("ResolvedRefs", "ResolvedRefs", "all references resolved"),
                    c("Programmed", "Programmed", &format!("1/1 replicas applied version {version}")),
                    c("Ready", "Ready", "accepted, references resolved and applied by every connected gateway replica"),
                ],
            },
        })
    );
    let (old, new) = written.expect("written");
    let events = transitions(&old, &new);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        ["Ready"]
    );

    // The object now carries that status: nothing to write (no API call).
    let mut updated = obj.clone();
    updated.status = Some(serde_json::from_value(new).unwrap());
    let (client, _handle) = mock_client();
    let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        write(&client, &updated, &inputs, &later),
    );
    assert!(again.await.expect("no API call").unwrap().is_none());
}

#[tokio::test]
async fn a_conflict_is_retried_after_re_reading_the_object() {
    let p = published(GATEWAY);
    let fleet = Fleet::default();
    let inputs = Inputs {
        published: &p,
        fleet: &fleet,
        index: None,
    };
    let obj = server(&p);
    let mut fresh = serde_json::to_value(&obj).unwrap();
    fresh["metadata"]["resourceVersion"] = json!("7");
    let (client, mut handle) = mock_client();
    let verifier = tokio::spawn(async move {
        let first = answer(&mut handle, 409, Some(status_error(409, "Conflict"))).await;
        let get = answer(&mut handle, 200, Some(fresh.clone())).await;
        let second = answer(&mut handle, 200, Some(fresh)).await;
        (first, get, second)
    });
    write(&client, &obj, &inputs, &now())
        .await
        .unwrap()
        .expect("written");
    let (first, get, second) = verifier.await.unwrap();
    assert_eq!((first.method.as_str(), first.uri.as_str()), ("PATCH", PATH));
    assert_eq!(first.body["metadata"]["resourceVersion"], "1");
    assert_eq!(
        (get.method.as_str(), get.uri.as_str()),
        (
            "GET",
            "/apis/gatehouse.dev/v1alpha1/namespaces/default/mcpservers/demo"
        )
    );
    assert_eq!(
        (second.method.as_str(), second.uri.as_str()),
        ("PATCH", PATH)
    );
    assert_eq!(second.body["metadata"]["resourceVersion"], "7");
    let programmed = &second.body["status"]["conditions"][2];
    assert_eq!(programmed["status"], "Unknown");
    assert_eq!(programmed["reason"], "Pending");
}
