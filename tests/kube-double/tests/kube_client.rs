//! A kube-rs client configured from the double's kubeconfig: CRUD, conflicts, server-side
//! apply, finalizers, owner-reference garbage collection, TokenReview, and a
//! `kube::runtime::watcher` across updates, a dropped connection and a 410.

mod common;

use common::{eventually, start};
use futures::StreamExt;
use gatehouse_kube_double::{KubeDouble, Options, UserInfo};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config, Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

async fn client(double: &KubeDouble) -> Client {
    let kc = Kubeconfig::read_from(double.kubeconfig_path()).expect("kubeconfig parses");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    Client::try_from(cfg).expect("client")
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c
}

fn api_status(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_crud_conflicts_and_selectors() {
    let double = start(Options::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    let pp = PostParams::default();

    let mut a = cm("a", &[("k", "1")]);
    a.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    let created = api.create(&pp, &a).await.expect("create");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    api.create(&pp, &cm("b", &[])).await.expect("create b");
    let (code, reason) = api_status(api.create(&pp, &cm("b", &[])).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let listed = api
        .list(&ListParams::default().labels("app in (web,api)"))
        .await
        .expect("list");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let listed = api
        .list(&ListParams::default().labels("!app"))
        .await
        .expect("list");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>(),
        ["b"]
    );
    let listed = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    let page = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("page 1");
    assert_eq!(page.items.len(), 1);
    let token = page.metadata.continue_.clone().expect("continue token");
    let page2 = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(page2.items[0].name_any(), "b");

    // update with the current resourceVersion succeeds; the stale one conflicts
    let mut fresh = api.get("a").await.expect("get");
    let stale = fresh.clone();
    fresh.data = Some(BTreeMap::from([("k".into(), "2".into())]));
    api.replace("a", &pp, &fresh).await.expect("replace");
    let (code, reason) = api_status(api.replace("a", &pp, &stale).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "x"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        patched.data.unwrap().get("extra").map(String::as_str),
        Some("x")
    );
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([{"op": "remove", "path": "/data/extra"}])).unwrap(),
            ),
        )
        .await
        .expect("json patch");
    assert!(!patched.data.unwrap().contains_key("extra"));

    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let (code, reason) = api_status(api.get("a").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let missing: Api<ConfigMap> = Api::namespaced(client(&double).await, "missing");
    let (code, _) = api_status(missing.create(&pp, &cm("x", &[])).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_with_field_managers() {
    let double = start(Options::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"owner": "x", "shared": "1"}});
    let created = api
        .patch(
            "ssa",
            &PatchParams::apply("x").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("apply creates");
    assert_eq!(created.data.as_ref().unwrap()["owner"], "x");
    assert_eq!(created.managed_fields()[0].manager.as_deref(), Some("x"));

    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"owner": "y"}});
    let (code, reason) = api_status(
        api.patch("ssa", &PatchParams::apply("y"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("y").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.as_ref().unwrap()["owner"], "y");
    assert_eq!(forced.data.as_ref().unwrap()["shared"], "1");

    // x stops applying "shared": it is removed; "owner" now belongs to y and stays
    let x_again =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {}});
    let after = api
        .patch(
            "ssa",
            &PatchParams::apply("x").force(),
            &Patch::Apply(&x_again),
        )
        .await
        .expect("re-apply");
    let data = after.data.unwrap_or_default();
    assert_eq!(data.get("owner").map(String::as_str), Some("y"));
    assert!(!data.contains_key("shared"), "{data:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_and_owner_garbage_collection() {
    let double = start(Options::default()).await;
    let client = client(&double).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // a finalizer holds the delete until removed
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["test.gatehouse.dev/hold".into()]);
    cms.create(&pp, &held).await.expect("create");
    let res = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let pending = res
        .left()
        .expect("object still present while finalizer set");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get("held").await.is_ok());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    assert_eq!(api_status(cms.get("held").await.unwrap_err()).0, 404);

    // background propagation: the dependent goes with its owner
    let owner = cms.create(&pp, &cm("owner", &[])).await.expect("owner");
    let oref = owner.controller_owner_ref(&()).expect("owner ref");
    let mut dep = Secret::default();
    dep.metadata.name = Some("dependent".into());
    dep.metadata.owner_references = Some(vec![oref.clone()]);
    secrets.create(&pp, &dep).await.expect("dependent");
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    assert_eq!(
        api_status(secrets.get("dependent").await.unwrap_err()).0,
        404
    );

    // foreground propagation: the owner waits for a finalizer-held dependent
    let owner = cms.create(&pp, &cm("owner2", &[])).await.expect("owner2");
    let mut dep = Secret::default();
    dep.metadata.name = Some("dependent2".into());
    dep.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    dep.metadata.finalizers = Some(vec!["test.gatehouse.dev/hold".into()]);
    secrets.create(&pp, &dep).await.expect("dependent2");
    cms.delete("owner2", &DeleteParams::foreground())
        .await
        .expect("delete owner2");
    let waiting = cms.get("owner2").await.expect("owner waits for dependents");
    assert!(
        waiting
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    assert!(
        secrets
            .get("dependent2")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    secrets
        .patch(
            "dependent2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": []}})),
        )
        .await
        .expect("release dependent");
    assert_eq!(
        api_status(secrets.get("dependent2").await.unwrap_err()).0,
        404
    );
    assert_eq!(api_status(cms.get("owner2").await.unwrap_err()).0, 404);

    // orphan propagation keeps the dependent and drops the reference
    let owner = cms.create(&pp, &cm("owner3", &[])).await.expect("owner3");
    let mut dep = Secret::default();
    dep.metadata.name = Some("dependent3".into());
    dep.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    secrets.create(&pp, &dep).await.expect("dependent3");
    cms.delete("owner3", &DeleteParams::orphan())
        .await
        .expect("delete owner3");
    let kept = secrets.get("dependent3").await.expect("orphan kept");
    assert!(kept.owner_references().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_answers_registered_tokens() {
    let double = start(Options::default()).await;
    double.register_token(
        "good-token",
        UserInfo {
            username: "system:serviceaccount:gatehouse:gw".into(),
            uid: "u-1".into(),
            groups: vec!["system:serviceaccounts".into()],
            audiences: vec!["gatehouse".into()],
        },
    );
    let api: Api<TokenReview> = Api::all(client(&double).await);
    let review = |token: &str| TokenReview {
        spec: TokenReviewSpec {
            token: token.into(),
            audiences: Some(vec!["gatehouse".into()]),
        },
        ..TokenReview::default()
    };
    let ok = api
        .create(&PostParams::default(), &review("good-token"))
        .await
        .expect("review");
    let status = ok.status.expect("status");
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:gatehouse:gw")
    );
    assert_eq!(
        user.groups,
        Some(vec!["system:serviceaccounts".to_string()])
    );
    assert_eq!(status.audiences, Some(vec!["gatehouse".to_string()]));
    let bad = api
        .create(&PostParams::default(), &review("other"))
        .await
        .expect("review");
    assert_eq!(bad.status.unwrap().authenticated, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_sends_bookmarks_and_410_for_expired_versions() {
    let double = start(Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    let created = api
        .create(&PostParams::default(), &cm("w", &[]))
        .await
        .expect("create");
    let rv = created.resource_version().unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let mut saw_added = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event")
            .expect("open")
        {
            Ok(WatchEvent::Added(o)) if o.name_any() == "w" => saw_added = true,
            Ok(WatchEvent::Bookmark(b)) => {
                assert!(saw_added, "synthetic ADDED comes first");
                assert_eq!(b.metadata.resource_version, rv);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    double.set_watch_history_limit(1);
    api.create(&PostParams::default(), &cm("w2", &[]))
        .await
        .expect("create");
    api.create(&PostParams::default(), &cm("w3", &[]))
        .await
        .expect("create");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    match stream.next().await.expect("an event") {
        Ok(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

/// Short names for watcher events, to compare sequences.
fn describe(ev: &watcher::Event<ConfigMap>) -> String {
    match ev {
        watcher::Event::Init => "init".into(),
        watcher::Event::InitApply(o) => format!("initapply:{}", o.name_any()),
        watcher::Event::InitDone => "initdone".into(),
        watcher::Event::Apply(o) => format!(
            "apply:{}:{}",
            o.name_any(),
            o.data
                .as_ref()
                .and_then(|d| d.get("v"))
                .cloned()
                .unwrap_or_default()
        ),
        watcher::Event::Delete(o) => format!("delete:{}", o.name_any()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_survives_updates_dropped_connections_and_410() {
    // Long bookmark interval: a bookmark would advance the watcher past the forced 410.
    let double = start(Options {
        bookmark_interval: Duration::from_secs(3600),
        ..Options::default()
    })
    .await;
    let client = client(&double).await;
    let ns: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some("watched".into());
    ns.create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "watched");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "watched");
    let pp = PostParams::default();
    api.create(&pp, &cm("pre", &[("v", "0")]))
        .await
        .expect("pre-existing");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(api.clone(), watcher::Config::default());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            // Stop once the test is over: without a backoff the watcher retries a refused
            // connection (the double gone) without ever yielding, which would keep this task
            // from seeing its abort and hang the runtime's shutdown.
            if tx
                .send(ev.map(|e| describe(&e)).map_err(|e| e.to_string()))
                .is_err()
            {
                break;
            }
        }
    });
    let mut next_events = async |n: usize| -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("watcher event")
                .expect("stream")
            {
                Ok(e) => out.push(e),
                Err(e) => println!("watcher error (expected around cuts and 410): {e}"),
            }
        }
        out
    };

    assert_eq!(next_events(3).await, ["init", "initapply:pre", "initdone"]);
    eventually("the watcher's watch", Duration::from_secs(10), || {
        double.open_watches() == 1
    })
    .await;
    api.create(&pp, &cm("a", &[("v", "1")]))
        .await
        .expect("create a");
    api.replace("a", &pp, &{
        let mut a = api.get("a").await.unwrap();
        a.data = Some(BTreeMap::from([("v".into(), "2".into())]));
        a
    })
    .await
    .expect("update a");
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete a");
    assert_eq!(next_events(3).await, ["apply:a:1", "apply:a:2", "delete:a"]);

    // A dropped connection: the watcher resumes from its resourceVersion without re-listing.
    double.cut_watches();
    api.create(&pp, &cm("b", &[("v", "1")]))
        .await
        .expect("create b");
    assert_eq!(next_events(1).await, ["apply:b:1"]);

    // A 410: history too short for the watcher's resourceVersion, so it re-lists.
    eventually("the watcher's watch", Duration::from_secs(10), || {
        double.open_watches() == 1
    })
    .await;
    double.set_watch_history_limit(1);
    for name in ["s1", "s2"] {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        secrets.create(&pp, &s).await.expect("unrelated write");
    }
    double.cut_watches();
    assert_eq!(
        next_events(4).await,
        ["init", "initapply:b", "initapply:pre", "initdone"]
    );
    api.create(&pp, &cm("c", &[("v", "1")]))
        .await
        .expect("create c");
    assert_eq!(next_events(1).await, ["apply:c:1"]);
    task.abort();
    let _ = ConfigMap::kind(&());
}
