//! Binary level: per-user consent (`oauth2AuthorizationCode`) in cluster mode. A real
//! `gatehouse-gateway run --cluster` replica answers alice's first request with a consent
//! prompt; the headless browser trip through the "SaaS" authorization server (oauth2-mock-server)
//! ends in a grant stored as a Secret through the API double — sealed, without the token in
//! the clear; the real operator adds exactly that Secret to the gateway's Role; and a second
//! replica, which never saw the consent, serves alice with the stored grant.

mod gateway_cluster_support;
mod support;

use gatehouse_kube_double::{KubeDouble, Options};
use gatehouse_tests::consent::{
    AUD, Saas, connect, elicitation, follow_consent, initialize_error, manifests, whoami,
};
use gatehouse_tests::oauth::OAuthServer;
use gatehouse_tests::procs::{self, DemoServer};
use gateway_cluster_support::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_in_cluster_mode_stores_a_sealed_grant_secret_every_replica_uses() {
    tokio::task::spawn_blocking(|| procs::binary("gatehouse-gateway"))
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let idp = OAuthServer::start().expect("corporate IdP");
    let saas = Saas::start().expect("SaaS authorization server");
    let demo = DemoServer::start(&scratch.path().join("demo.log")).expect("demo server");
    let listen = free_port();
    let public = format!("http://{listen}");

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
        .apply(&manifests(&public, &idp.issuer, saas.url(), &demo.url, ""))
        .await;
    let push = PushEndpoint::new();
    let _op = operator_on(kubeconfig, &push).await;

    let token_file = projected_token(&double, scratch.path(), "default", "gw-gatehouse");
    let replica = |pod: &str, listen: &str| {
        ClusterGateway::start_as(
            "default/gw",
            listen,
            kubeconfig,
            &push,
            &token_file,
            &scratch.path().join("no-snapshot.json"),
            pod,
            &scratch.path().join(format!("{pod}.log")),
            &[],
        )
    };
    let a = replica("gw-7d9c-a", &listen.to_string());
    a.ready().await;

    // --- no grant: a consent prompt; the browser trip stores the grant
    let alice = idp
        .user_token(
            "u-alice",
            "claude-code",
            AUD,
            "openid",
            json!({"groups": ["eng"], "email": "alice@example.com"}),
        )
        .await
        .expect("alice's token");
    let url_a = format!("{}/mcp/saas", a.base);
    let prompt = elicitation(&initialize_error(&url_a, &alice).await.unwrap()).unwrap();
    let trip = follow_consent(&prompt.url, "u-alice").await.unwrap();
    assert_eq!(trip.result.0, 200, "callback: {:?}", trip.result);
    let issued = saas.issued().await.unwrap();
    assert_eq!(issued.access.len(), 1, "{issued:?}");
    let access = issued.access[0].clone();
    let on_a = connect(&url_a, &alice).await.expect("alice connects to a");
    assert_eq!(whoami(&on_a).await.unwrap(), format!("Bearer {access}"));

    // --- the grant is a Secret: sealed, typed, labelled, nothing in the clear
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let grants = secrets
        .list(&ListParams::default().labels("gatehouse.dev/credential-provider=saas-oauth"))
        .await
        .unwrap()
        .items;
    assert_eq!(grants.len(), 1, "one grant Secret for one user");
    let grant = &grants[0];
    let name = grant.metadata.name.clone().unwrap();
    assert!(gatehouse_api::push::grants::is_grant_name(&name), "{name}");
    assert_eq!(grant.type_.as_deref(), Some("gatehouse.dev/sealed-grant"));
    assert_eq!(
        grant.metadata.labels.as_ref().unwrap()["gatehouse.dev/written-by"],
        "gateway.default.gw"
    );
    let data = grant.data.as_ref().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["grant"]);
    let blob = &data["grant"].0;
    let everything = format!(
        "{}{}",
        serde_json::to_string(grant).unwrap(),
        String::from_utf8_lossy(blob)
    );
    for secret in issued.access.iter().chain(&issued.refresh) {
        assert!(
            !everything.contains(secret.as_str()),
            "a token in the clear"
        );
    }
    assert!(
        !everything.contains("u-alice"),
        "no user id in the grant Secret"
    );

    // --- the operator grants the gateway exactly that Secret, by name
    let rules = eventually("the grant in the Role", Duration::from_secs(20), || async {
        let role = get(&client, &ar::<Role>(), "default", "gw-gatehouse")
            .await
            .ok_or("no Role")?;
        let rules = role["rules"].clone();
        if rules.to_string().contains(&name) {
            Ok(rules)
        } else {
            Err(rules.to_string())
        }
    })
    .await;
    assert!(
        rules.as_array().unwrap().contains(&json!({
            "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update", "delete"],
            "resourceNames": [name],
        })),
        "{rules}"
    );
    assert!(
        rules
            .as_array()
            .unwrap()
            .contains(&json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]})),
        "{rules}"
    );

    // --- a second replica, which never saw the consent, serves alice with the stored grant
    let b = replica("gw-7d9c-b", "127.0.0.1:0");
    b.ready().await;
    let on_b = connect(&format!("{}/mcp/saas", b.base), &alice)
        .await
        .expect("alice connects to b without a new consent");
    assert_eq!(whoami(&on_b).await.unwrap(), format!("Bearer {access}"));
    assert_eq!(
        saas.issued().await.unwrap().codes.len(),
        1,
        "one consent served both replicas"
    );
}
