//! The data plane end to end: an `rmcp` client → `gatehouse-gateway run` (examples/quickstart)
//! → the `rmcp` demo server, as real processes.

use gatehouse_tests::mcp::{self, call, text_of};
use gatehouse_tests::procs::{DemoServer, Gateway};
use gatehouse_tests::{ALICE_KEY, BOB_KEY, DENY_ADMIN, Scratch, UPSTREAM_TOKEN};
use serde_json::json;

/// Denies `echo` when its text mentions a secret: a condition on the tool's arguments (`has`
/// keeps it from matching where there are none, as when `tools/list` is filtered).
const DENY_SECRET_ECHO: &str = r#"apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: no-secret-echo
  namespace: default
spec:
  action: Deny
  subjects:
    - users:
        ids: ["*"]
  targets:
    - server: demo
      tools:
        allow: ["echo"]
  when: "has(request.arguments.text) && request.arguments.text.contains('secret')"
"#;

struct Setup {
    _demo: DemoServer,
    gw: Gateway,
    scratch: Scratch,
}

fn setup(extra_manifests: &[(&str, &str)]) -> anyhow::Result<Setup> {
    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    std::fs::rename(probe.path().join("demo.log"), scratch.file("demo.log")).ok();
    for (name, text) in extra_manifests {
        scratch.write_manifest(name, text)?;
    }
    let gw = Gateway::start(&scratch.manifests(), &scratch.file("gateway.log"), &[])?;
    Ok(Setup {
        _demo: demo,
        gw,
        scratch,
    })
}

#[tokio::test]
async fn rmcp_client_through_the_gateway_sees_filtered_tools_and_gets_credentials_injected()
-> anyhow::Result<()> {
    let s = setup(&[
        ("deny-admin.yaml", DENY_ADMIN),
        ("deny-secret-echo.yaml", DENY_SECRET_ECHO),
    ])?;
    let url = s.gw.route("/mcp/demo");

    // Alice: initialize, list, call.
    let (alice, _) = mcp::connect(&url, Some(ALICE_KEY)).await?;
    let info = alice.peer_info().expect("initialized");
    assert_eq!(info.protocol_version.to_string(), "2025-11-25");
    let tools: Vec<String> = alice
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.contains(&"whoami".to_string()), "{tools:?}");
    assert!(
        !tools.contains(&"admin_reset".to_string()),
        "alice must not see admin tools: {tools:?}"
    );

    let echo = alice
        .call_tool(call(
            json!({"name": "echo", "arguments": {"text": "hello"}}),
        ))
        .await?;
    assert_eq!(text_of(&echo), "hello");
    // A `when` condition reads the tool's arguments as the client sent them.
    let denied = alice
        .call_tool(call(
            json!({"name": "echo", "arguments": {"text": "the secret"}}),
        ))
        .await
        .expect_err("a denied argument");
    assert!(
        denied.to_string().contains("default/no-secret-echo"),
        "{denied}"
    );

    // The upstream saw the injected credential, never the agent's key or anything else.
    let who = alice
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await?;
    let seen: serde_json::Value = serde_json::from_str(&text_of(&who))?;
    assert_eq!(seen["authorization"], format!("Bearer {UPSTREAM_TOKEN}"));
    assert_eq!(seen["x-api-key"], "<none>");
    let demo_log = std::fs::read_to_string(s.scratch.file("demo.log"))?;
    assert!(
        !demo_log.contains(ALICE_KEY),
        "the agent's API key reached the upstream"
    );

    // Denied by an explicit policy: a JSON-RPC error naming it.
    let denied = alice
        .call_tool(call(json!({"name": "admin_reset", "arguments": {}})))
        .await
        .expect_err("admin_reset must be denied");
    let msg = denied.to_string();
    assert!(msg.contains("default/no-admin-tools"), "{msg}");
    assert!(
        !msg.contains(UPSTREAM_TOKEN) && !msg.contains(ALICE_KEY),
        "{msg}"
    );

    // Resources, templates and prompts relay (and are filtered by the same decision).
    let resources = alice.list_all_resources().await?;
    assert_eq!(resources.len(), 2);
    let readme = alice
        .read_resource(serde_json::from_value(json!({"uri": "demo://readme"}))?)
        .await?;
    assert!(serde_json::to_string(&readme)?.contains("Gatehouse demo server"));
    let prompts = alice.list_all_prompts().await?;
    assert_eq!(prompts[0].name, "greeting");
    let prompt = alice
        .get_prompt(serde_json::from_value(
            json!({"name": "greeting", "arguments": {"name": "Ada"}}),
        )?)
        .await?;
    assert!(serde_json::to_string(&prompt)?.contains("Say hello to Ada"));

    // Bob (read-only): sees only echo; whoami is denied by default.
    let (bob, _) = mcp::connect(&url, Some(BOB_KEY)).await?;
    let bob_tools: Vec<String> = bob
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(bob_tools, vec!["echo".to_string()]);
    let err = bob
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await
        .expect_err("bob may not call whoami");
    assert!(
        err.to_string()
            .contains("no AccessPolicy allows user \"bob\""),
        "{err}"
    );

    // Every message is audited with identity, tool, decision and policy.
    let rec = s.gw.wait_audit(|r| r["tool"] == "admin_reset")?;
    assert_eq!(rec["user"], "alice");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["policy"], "default/no-admin-tools");
    let rec =
        s.gw.wait_audit(|r| r["tool"] == "whoami" && r["user"] == "alice")?;
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["upstream_status"], 200);
    assert!(
        rec["session"].is_string() && rec["latency_ms"].is_number(),
        "{rec}"
    );
    let all = serde_json::to_string(&s.gw.audit())?;
    assert!(!all.contains(UPSTREAM_TOKEN) && !all.contains(ALICE_KEY) && !all.contains(BOB_KEY));

    alice.cancel().await?;
    bob.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn progress_sampling_and_elicitation_round_trip_through_the_gateway() -> anyhow::Result<()> {
    let s = setup(&[])?;
    let (alice, handler) = mcp::connect(&s.gw.route("/mcp/demo"), Some(ALICE_KEY)).await?;

    let counted = alice
        .call_tool(call(json!({
            "name": "slow_count", "arguments": {"n": 3, "delay_ms": 50},
            "_meta": {"progressToken": "count-1"}
        })))
        .await?;
    assert_eq!(text_of(&counted), "counted to 3");
    let progress = handler.progress.lock().unwrap().clone();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert_eq!(progress[2].progress, 3.0);

    let summary = alice
        .call_tool(call(
            json!({"name": "summarize", "arguments": {"text": "long text"}}),
        ))
        .await?;
    assert_eq!(text_of(&summary), "model said: a short summary");
    assert_eq!(*handler.sampled.lock().unwrap(), 1);

    let answer = alice
        .call_tool(call(
            json!({"name": "ask_user", "arguments": {"question": "colour?"}}),
        ))
        .await?;
    assert!(text_of(&answer).contains("blue"), "{}", text_of(&answer));
    assert_eq!(*handler.elicited.lock().unwrap(), 1);

    // The client's replies to server requests are audited as responses.
    let rec = s.gw.wait_audit(|r| r["method"] == "response")?;
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["status"], 202);
    alice.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn unauthenticated_clients_get_401_with_resource_metadata() -> anyhow::Result<()> {
    let s = setup(&[])?;
    let http = mcp::http_client(None);
    let url = s.gw.route("/mcp/demo");
    for key in [None, Some("wrong-key")] {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await?;
        assert_eq!(resp.status(), 401);
        let challenge = resp.headers()["www-authenticate"].to_str()?.to_string();
        assert_eq!(
            challenge,
            "Bearer resource_metadata=\"http://localhost:8080/.well-known/oauth-protected-resource/mcp/demo\""
        );
        let body = resp.text().await?;
        assert!(!body.contains("wrong-key"), "{body}");
    }
    let meta: serde_json::Value = http
        .get(s.gw.route("/.well-known/oauth-protected-resource/mcp/demo"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(meta["resource"], "http://localhost:8080/mcp/demo");
    let rec = s.gw.wait_audit(|r| r["error"] == "unauthenticated")?;
    assert_eq!(rec["status"], 401);
    // Connecting with the SDK without a key fails too.
    assert!(mcp::connect(&url, None).await.is_err());
    Ok(())
}
