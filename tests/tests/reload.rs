//! Hot reload: editing a policy changes decisions; a broken file is rejected, the last good
//! configuration keeps serving, and `/metrics` counts the failure.

use gatehouse_tests::procs::{DemoServer, Gateway, wait_until};
use gatehouse_tests::raw::{self, post};
use gatehouse_tests::{BOB_KEY, Scratch, mcp};
use std::time::Duration;

const BOB_WHOAMI: &str = r#"apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: bob-whoami
  namespace: default
spec:
  subjects:
    - users:
        ids: [bob]
  targets:
    - server: demo
      credentialProvider: demo-token
      tools:
        allow: [whoami]
"#;

async fn whoami_allowed(http: &reqwest::Client, url: &str, sid: &str) -> anyhow::Result<bool> {
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;
    let resp = post(http, url, Some(BOB_KEY), Some(sid), body)
        .send()
        .await?;
    let msgs = raw::messages(&resp.text().await?);
    Ok(msgs.iter().any(|m| m.get("result").is_some()))
}

#[tokio::test]
async fn policy_edits_apply_live_and_broken_files_keep_the_last_good_config() -> anyhow::Result<()>
{
    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    let gw = Gateway::start(&scratch.manifests(), &scratch.file("gw.log"), &[])?;
    let http = mcp::http_client(None);
    let url = gw.route("/mcp/demo");
    let sid = raw::open_session(&http, &url, BOB_KEY).await?;
    assert!(!whoami_allowed(&http, &url, &sid).await?);
    let version_before = gw.metrics();

    // Grant bob whoami: the decision changes without a restart, on the same session.
    scratch.write_manifest("bob-whoami.yaml", BOB_WHOAMI)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !whoami_allowed(&http, &url, &sid).await? {
        assert!(
            std::time::Instant::now() < deadline,
            "the new policy never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = gw.metrics();
    assert!(
        metrics.contains("gatehouse_config_info{version="),
        "{metrics}"
    );
    assert_ne!(
        metrics
            .lines()
            .find(|l| l.starts_with("gatehouse_config_info{")),
        version_before
            .lines()
            .find(|l| l.starts_with("gatehouse_config_info{")),
        "config version gauge follows the reload"
    );

    // A broken file: rejected, counted, and the previous config keeps serving.
    scratch.write_manifest(
        "broken.yaml",
        "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: [unclosed\n",
    )?;
    wait_until(
        "a reload failure in /metrics",
        Duration::from_secs(20),
        || {
            gw.metrics().lines().any(|l| {
                l.starts_with("gatehouse_config_reload_failures_total") && !l.ends_with(" 0")
            })
        },
    )?;
    assert!(
        whoami_allowed(&http, &url, &sid).await?,
        "the last good config must keep serving"
    );
    let log = std::fs::read_to_string(scratch.file("gw.log"))?;
    assert!(
        log.contains("configuration rejected") && log.contains("broken.yaml"),
        "{log}"
    );

    // Fixing the directory applies again.
    std::fs::remove_file(scratch.manifests().join("broken.yaml"))?;
    std::fs::remove_file(scratch.manifests().join("bob-whoami.yaml"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while whoami_allowed(&http, &url, &sid).await? {
        assert!(
            std::time::Instant::now() < deadline,
            "removing the policy never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = gw.pid();
    Ok(())
}
