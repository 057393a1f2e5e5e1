//! Bad input from clients and upstreams: each gets a spec-conformant error, an audit line and
//! a metric; nothing crashes, nothing hangs past its timeout.

use gatehouse_tests::procs::{DemoServer, Gateway};
use gatehouse_tests::raw::{self, post};
use gatehouse_tests::{ALICE_KEY, Scratch, mcp};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fake upstream that reads a request and answers with `response` (then holds the connection
/// open); `None` accepts and never answers.
async fn fake_upstream(response: Option<&'static str>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            if let Some(r) = response {
                let _ = s.write_all(r.as_bytes()).await;
            }
            held.push(s);
        }
    });
    Ok(format!("http://{addr}/mcp"))
}

fn extra_servers(down: &str, hang: &str, bad_sse: &str) -> String {
    let server = |name: &str, url: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  gatewayRef: {{name: local}}\n  url: {url}\n  timeouts: {{request: 1s, streamIdle: 2s}}\n---\n"
        )
    };
    let mut out = server("down", down) + &server("hang", hang) + &server("badsse", bad_sse);
    out.push_str(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: alice-extra, namespace: default}\nspec:\n  subjects: [{users: {ids: [alice]}}]\n  targets: [{server: down}, {server: hang}, {server: badsse}]\n",
    );
    out
}

async fn error_of(resp: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await?)?;
    Ok((status, body))
}

#[tokio::test]
async fn bad_requests_and_bad_upstreams_get_spec_conformant_errors() -> anyhow::Result<()> {
    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}/mcp", l.local_addr()?)
    };
    let hang = fake_upstream(None).await?;
    let bad_sse = fake_upstream(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: this is not json\n\n",
    ))
    .await?;
    scratch.write_manifest("extra.yaml", &extra_servers(&closed, &hang, &bad_sse))?;
    let gw = Gateway::start(&scratch.manifests(), &scratch.file("gw.log"), &[])?;
    let http = mcp::http_client(None);
    let url = gw.route("/mcp/demo");
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

    // Malformed JSON → 400 + parse error.
    let (status, body) = error_of(
        post(&http, &url, Some(ALICE_KEY), None, "{not json")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32700))
    );

    // A batch on a revision that forbids them → 400 + invalid request naming the revision.
    let batch = format!("[{ping}]");
    let (status, body) = error_of(
        post(&http, &url, Some(ALICE_KEY), None, batch.clone())
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2025-06-18"),
        "{body}"
    );
    // … and on 2025-03-26 it is refused explicitly.
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-api-key", ALICE_KEY)
        .body(batch)
        .send()
        .await?;
    let (status, body) = error_of(resp).await?;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not supported by this gateway"),
        "{body}"
    );

    // Oversized body → 413.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let resp = post(&http, &url, Some(ALICE_KEY), None, huge)
        .send()
        .await?;
    assert_eq!(resp.status(), 413);

    // Wrong content type → 415.
    let resp = http
        .post(&url)
        .header("content-type", "text/plain")
        .header("x-api-key", ALICE_KEY)
        .body(ping)
        .send()
        .await?;
    assert_eq!(resp.status(), 415);

    // Unknown route → 404; a foreign Origin → 403; a PUT → 405.
    let resp = post(&http, &gw.route("/mcp/nope"), Some(ALICE_KEY), None, ping)
        .send()
        .await?;
    assert_eq!(resp.status(), 404);
    let resp = post(&http, &url, Some(ALICE_KEY), None, ping)
        .header("origin", "https://evil.example")
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    let resp = http.put(&url).header("x-api-key", ALICE_KEY).send().await?;
    assert_eq!(resp.status(), 405);
    let ok = post(
        &http,
        &url,
        Some(ALICE_KEY),
        None,
        raw::initialize_body("2025-06-18"),
    )
    .header("origin", "http://localhost:6274")
    .send()
    .await?;
    assert_eq!(ok.status(), 200, "localhost origins are allowed");

    // Upstream refusing connections → 502; hanging → 504 after its 1s request timeout.
    let init = raw::initialize_body("2025-06-18");
    let (status, body) = error_of(
        post(
            &http,
            &gw.route("/mcp/down"),
            Some(ALICE_KEY),
            None,
            init.clone(),
        )
        .send()
        .await?,
    )
    .await?;
    assert_eq!(status, 502);
    assert_eq!(body["id"], 1);
    let started = std::time::Instant::now();
    let (status, body) = error_of(
        post(
            &http,
            &gw.route("/mcp/hang"),
            Some(ALICE_KEY),
            None,
            init.clone(),
        )
        .send()
        .await?,
    )
    .await?;
    assert_eq!(status, 504);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 ms"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Upstream sending malformed SSE → the client gets a JSON-RPC error event for its request.
    let resp = post(&http, &gw.route("/mcp/badsse"), Some(ALICE_KEY), None, init)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), resp.text()).await??;
    let msgs = raw::messages(&text);
    assert_eq!(msgs.len(), 1, "{text}");
    assert_eq!(msgs[0]["id"], 1);
    assert!(
        msgs[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON-RPC"),
        "{text}"
    );

    // Each got an audit line …
    for kind in [
        "parse_error",
        "invalid_request",
        "payload_too_large",
        "unsupported_media_type",
        "no_route",
        "forbidden_origin",
        "method_not_allowed",
        "upstream_error",
        "upstream_timeout",
        "malformed_sse",
    ] {
        gw.wait_audit(|r| r["error"] == kind)?;
    }
    // … and a metric.
    let metrics = gw.metrics();
    for needle in [
        r#"gatehouse_requests_total{server="-",method="-",decision="-",status="404"}"#,
        r#"status="413""#,
        r#"gatehouse_upstream_errors_total{server="default/hang",kind="timeout"}"#,
        r#"gatehouse_upstream_errors_total{server="default/down",kind="connect"}"#,
        r#"gatehouse_upstream_errors_total{server="default/badsse",kind="malformed_sse"}"#,
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    Ok(())
}
