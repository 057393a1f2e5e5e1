//! Gateway-minted sessions: any replica with the same key serves a session; another identity,
//! a tampered id, or a replica with another key gets 404.

use gatehouse_tests::procs::{DemoServer, Gateway};
use gatehouse_tests::raw::{self, post};
use gatehouse_tests::{ALICE_KEY, BOB_KEY, Scratch, mcp};
use serde_json::json;

#[tokio::test]
async fn a_session_started_on_one_gateway_continues_on_another_and_is_bound_to_its_user()
-> anyhow::Result<()> {
    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    let key_file = scratch.file("session.key");
    std::fs::write(&key_file, "a shared session key for both replicas")?;
    let key_arg = key_file.to_str().unwrap();
    let a = Gateway::start(
        &scratch.manifests(),
        &scratch.file("a.log"),
        &["--session-key-file", key_arg],
    )?;
    let b = Gateway::start(
        &scratch.manifests(),
        &scratch.file("b.log"),
        &["--session-key-file", key_arg],
    )?;
    let other = Gateway::start(&scratch.manifests(), &scratch.file("c.log"), &[])?;
    let http = mcp::http_client(None);

    let sid = raw::open_session(&http, &a.route("/mcp/demo"), ALICE_KEY).await?;
    assert!(
        sid.starts_with("gh1."),
        "the gateway mints its own ids: {sid}"
    );

    // Replica B continues the session A started.
    let echo = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "via b"}}})
    .to_string();
    let resp = post(
        &http,
        &b.route("/mcp/demo"),
        Some(ALICE_KEY),
        Some(&sid),
        echo.clone(),
    )
    .send()
    .await?;
    assert_eq!(resp.status(), 200);
    let msgs = raw::messages(&resp.text().await?);
    assert_eq!(
        msgs.last().unwrap()["result"]["content"][0]["text"],
        "via b"
    );

    // Bob presenting Alice's session id: 404, audited with bob's identity.
    let resp = post(
        &http,
        &a.route("/mcp/demo"),
        Some(BOB_KEY),
        Some(&sid),
        echo.clone(),
    )
    .send()
    .await?;
    assert_eq!(resp.status(), 404);
    let body = resp.text().await?;
    assert!(body.contains("different identity"), "{body}");
    let rec = a.wait_audit(|r| r["error"] == "session_not_found")?;
    assert_eq!(rec["user"], "bob");
    assert_eq!(rec["status"], 404);

    // A tampered id, and a replica with another key: 404 so the client re-initializes.
    let mut tampered = sid.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered)?;
    let resp = post(
        &http,
        &a.route("/mcp/demo"),
        Some(ALICE_KEY),
        Some(&tampered),
        echo.clone(),
    )
    .send()
    .await?;
    assert_eq!(resp.status(), 404);
    let resp = post(
        &http,
        &other.route("/mcp/demo"),
        Some(ALICE_KEY),
        Some(&sid),
        echo,
    )
    .send()
    .await?;
    assert_eq!(resp.status(), 404);

    // The upstream never saw the gateway's id, only its own.
    let demo_log = std::fs::read_to_string(probe.path().join("demo.log"))?;
    assert!(!demo_log.contains(&sid));
    Ok(())
}

#[tokio::test]
async fn get_stream_delete_and_resumption_with_last_event_id() -> anyhow::Result<()> {
    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    let gw = Gateway::start(&scratch.manifests(), &scratch.file("gw.log"), &[])?;
    let http = mcp::http_client(None);
    let url = gw.route("/mcp/demo");
    let sid = raw::open_session(&http, &url, ALICE_KEY).await?;

    // A long tool call on a POST SSE stream: read the first progress event, then drop the stream.
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "slow_count", "arguments": {"n": 3, "delay_ms": 300},
        "_meta": {"progressToken": "p"}}})
    .to_string();
    let mut resp = post(&http, &url, Some(ALICE_KEY), Some(&sid), call)
        .send()
        .await?;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let last_id = loop {
        let chunk = resp.chunk().await?.expect("stream open");
        seen.push_str(std::str::from_utf8(&chunk)?);
        if let Some(ev) = seen
            .split("\n\n")
            .find(|e| e.contains("notifications/progress"))
        {
            break ev
                .lines()
                .find_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
                .expect("progress events carry ids")
                .trim()
                .to_string();
        }
    };
    // No buffering: the first event arrived while the upstream still holds the stream open.
    assert!(
        !seen.contains("\"result\""),
        "the result arrived with the first event: {seen}"
    );
    drop(resp);

    // Resume with GET + Last-Event-ID. The demo server replays what it has stored after that id
    // and closes (reconnect-and-poll), so poll as a client would, moving the id forward.
    let mut last_id = last_id;
    let mut body = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !body.contains("counted to 3") && std::time::Instant::now() < deadline {
        let resumed = http
            .get(&url)
            .header("accept", "text/event-stream")
            .header("x-api-key", ALICE_KEY)
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-06-18")
            .header("last-event-id", &last_id)
            .send()
            .await?;
        assert_eq!(resumed.status(), 200);
        let text =
            tokio::time::timeout(std::time::Duration::from_secs(10), resumed.text()).await??;
        if let Some(id) = text
            .lines()
            .filter_map(|l| l.strip_prefix("id:"))
            .map(str::trim)
            .rfind(|id| !id.is_empty())
        {
            last_id = id.to_string();
        }
        body.push_str(&text);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(body.contains("counted to 3"), "resumed stream: {body}");
    assert!(
        body.contains("notifications/progress"),
        "later progress events are replayed: {body}"
    );

    // A plain GET stream for server-initiated messages opens.
    let get = http
        .get(&url)
        .header("accept", "text/event-stream")
        .header("x-api-key", ALICE_KEY)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await?;
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-type"], "text/event-stream");
    drop(get);

    // DELETE ends the session upstream; the id is then unknown there.
    let del = http
        .delete(&url)
        .header("x-api-key", ALICE_KEY)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await?;
    assert!(del.status().is_success(), "{}", del.status());
    let after = post(
        &http,
        &url,
        Some(ALICE_KEY),
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
    )
    .send()
    .await?;
    assert_eq!(after.status(), 404);
    let rec = gw.wait_audit(|r| r["method"] == "DELETE")?;
    assert_eq!(rec["decision"], "allow");
    Ok(())
}
