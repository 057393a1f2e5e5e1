//! Interoperability with the official TypeScript SDK and `@modelcontextprotocol/server-everything`
//! (npm, pinned in tests/package-lock.json): the same scripted session (tools, resources,
//! prompts, progress, sampling, elicitation) run directly against the server and through the
//! gateway must look the same to the client — except for the tool the policy hides.

use gatehouse_tests::oauth::ensure_node_modules;
use gatehouse_tests::procs::{ChildGuard, Gateway, wait_until};
use gatehouse_tests::{ALICE_KEY, Scratch};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A policy file replacing the quickstart's: alice may use everything but `get-env` (which would
/// show the upstream's environment).
const POLICY: &str = r#"apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: alice-demo, namespace: default}
spec:
  subjects:
    - users: {ids: [alice]}
  targets:
    - server: demo
      credentialProvider: demo-token
      tools:
        deny: [get-env]
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn session(url: &str, headers: &[&str]) -> anyhow::Result<serde_json::Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("node/everything-session.mjs"))
        .arg(url)
        .current_dir(dir);
    for h in headers {
        cmd.args(["--header", h]);
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "session against {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn typescript_sdk_sees_server_everything_the_same_through_the_gateway() -> anyhow::Result<()> {
    ensure_node_modules()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = free_port();
    let log = tempfile::NamedTempFile::new()?;
    let _everything = ChildGuard(
        Command::new("node")
            .arg(dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(log.reopen()?)
            .spawn()?,
    );
    wait_until("server-everything", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    let upstream = format!("http://127.0.0.1:{port}/mcp");

    let scratch = Scratch::quickstart(&upstream)?;
    scratch.write_manifest("policy.yaml", POLICY)?;
    let gw = Gateway::start(&scratch.manifests(), &scratch.file("gateway.log"), &[])?;

    let direct = session(&upstream, &[])?;
    let through = session(
        &gw.route("/mcp/demo"),
        &[&format!("X-API-Key: {ALICE_KEY}")],
    )?;

    // What the policy hides is exactly what is missing.
    let tools = |v: &serde_json::Value| -> Vec<String> {
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let mut expected = tools(&direct);
    expected.retain(|t| t != "get-env");
    assert!(tools(&direct).contains(&"get-env".to_string()));
    assert_eq!(tools(&through), expected);

    // Everything else a client notices is identical.
    let mut d = direct.clone();
    let mut t = through.clone();
    d.as_object_mut().unwrap().remove("tools");
    t.as_object_mut().unwrap().remove("tools");
    assert_eq!(
        t, d,
        "direct:\n{direct:#}\nthrough the gateway:\n{through:#}"
    );
    assert_eq!(through["progressNotifications"], 3);
    assert_eq!(through["sampling"], true);
    assert_eq!(through["elicitation"], true);
    assert_eq!(through["hasSession"], true);

    // Every client message was audited with its decision.
    let audit = gw.audit();
    for method in [
        "initialize",
        "tools/list",
        "tools/call",
        "resources/read",
        "prompts/get",
    ] {
        assert!(
            audit
                .iter()
                .any(|r| r["method"] == method && r["decision"] == "allow" && r["user"] == "alice"),
            "no audit line for {method}: {audit:#?}"
        );
    }
    Ok(())
}
