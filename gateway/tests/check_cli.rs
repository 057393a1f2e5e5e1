//! `gatehouse-gateway check` as a user runs it: exit codes, decisions, and errors that point at
//! the file and document.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-gateway"))
        .arg("check")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("gatehouse-gateway runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exited"), text)
}

/// A scratch directory with the given files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, files: &[(&str, String)]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-check-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        Self(dir)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_example_validates_cleanly() {
    for ex in [
        "quickstart",
        "github-per-user",
        "in-cluster-sidecar",
        "agents-only",
    ] {
        let (code, out) = check(&["--manifests", &format!("examples/{ex}")]);
        assert_eq!(code, 0, "{ex}:\n{out}");
        assert!(
            out.contains("ok: every object compiles cleanly"),
            "{ex}:\n{out}"
        );
    }
}

#[test]
fn allow_and_deny_name_the_policy_and_set_the_exit_code() {
    let (code, out) = check(&[
        "--manifests",
        "examples/quickstart",
        "--user",
        "alice",
        "--server",
        "demo",
        "--tool",
        "echo",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("decision: ALLOW"), "{out}");
    assert!(
        out.contains("policy: AccessPolicy default/alice-demo"),
        "{out}"
    );
    assert!(
        out.contains("credential: CredentialProvider default/demo-token"),
        "{out}"
    );

    let (code, out) = check(&[
        "--manifests",
        "examples/quickstart",
        "--user",
        "alice",
        "--server",
        "demo",
        "--tool",
        "admin_reset",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("decision: DENY"), "{out}");
    assert!(out.contains("none (default deny)"), "{out}");

    // User and agent together, and a Deny with a CEL condition.
    let base = [
        "--manifests",
        "examples/github-per-user",
        "--user",
        "u-1",
        "--group",
        "engineering",
        "--server",
        "github",
        "--tool",
        "get_me",
    ];
    let with = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        check(&v)
    };
    let (code, out) = with(&["--email", "ana@example.com", "--agent", "claude-code"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = with(&["--email", "ana@example.com", "--agent", "some-other-agent"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = with(&["--email", "ana@elsewhere.test", "--agent", "claude-code"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("AccessPolicy platform/deny-external-accounts"),
        "{out}"
    );

    // An agent acting alone.
    let (code, out) = check(&[
        "--manifests",
        "examples/agents-only",
        "--agent",
        "agents/triage-bot",
        "--agent-kind",
        "service-account",
        "--server",
        "search",
        "--tool",
        "search_web",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acting alone"), "{out}");
}

#[test]
fn invalid_manifests_exit_2_and_point_at_file_and_document() {
    let base = std::fs::read_to_string(repo().join("api/tests/fixtures/base.yaml")).unwrap();
    let bad =
        std::fs::read_to_string(repo().join("api/tests/fixtures/bad/unknown-field.yaml")).unwrap();
    let dangling =
        std::fs::read_to_string(repo().join("api/tests/fixtures/bad/dangling-refs.yaml")).unwrap();
    let dir = Scratch::new(
        "invalid",
        &[
            ("base.yaml", base),
            ("typo.yaml", bad),
            ("refs.yaml", dangling),
        ],
    );
    let (code, out) = check(&["--manifests", dir.path()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "typo.yaml (document 1): AccessPolicy team-a/typo: spec.targets[0].toolz: unknown field"
        ),
        "{out}"
    );
    assert!(
        out.contains("McpServer team-a/orphan: ResolvedRefs=False (GatewayNotFound)"),
        "{out}"
    );
    assert!(out.contains("refs.yaml (document 2)"), "{out}");
    // The valid rest still answers questions, but the exit code still says "invalid".
    let (code, out) = check(&[
        "--manifests",
        dir.path(),
        "--user",
        "ana",
        "--group",
        "eng",
        "--server",
        "github",
        "--tool",
        "x",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("decision: ALLOW"), "{out}");
}

#[test]
fn questions_that_cannot_be_answered_exit_2() {
    let (code, out) = check(&[
        "--manifests",
        "examples/quickstart",
        "--user",
        "alice",
        "--server",
        "nope",
        "--tool",
        "x",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no served McpServer named \"nope\""), "{out}");
    let (code, out) = check(&[
        "--manifests",
        "examples/quickstart",
        "--user",
        "alice",
        "--server",
        "demo",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--tool, --resource, --prompt or --method"),
        "{out}"
    );
    let (code, out) = check(&["--manifests", "does/not/exist"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does/not/exist"), "{out}");
}
