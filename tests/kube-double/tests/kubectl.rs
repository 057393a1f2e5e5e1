//! The real `kubectl` 1.32 against the double: CRDs, apply (client- and server-side),
//! printer columns, patch, status + wait, validation errors, delete; and the repository's
//! generated CRDs and examples when they exist.

mod common;

use common::{Kubectl, eventually, repo_root, start};
use gatehouse_kube_double::Options;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.gatehouse.dev
spec:
  group: test.gatehouse.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "has(self.url) != has(self.service)"
              message: "exactly one of url or service must be set"
            properties:
              size: {type: integer}
              url: {type: string}
              service: {type: string}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: test.gatehouse.dev/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec: {spec}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_a_crd_lifecycle() {
    let double = start(Options::default()).await;
    let k = Kubectl::new(&double);

    let r = k.apply_stdin(WIDGET_CRD, &[]).await;
    assert!(r.ok, "{}", r.stderr);
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.test.gatehouse.dev",
        "--timeout=20s",
    ])
    .await;

    // client-side apply, then server-side apply of the same object
    let r = k
        .apply_stdin(&widget("w1", "{size: 3, url: 'https://example.test'}"), &[])
        .await;
    assert!(
        r.ok && r.stdout.contains("widget.test.gatehouse.dev/w1 created"),
        "{r:?}"
    );
    let r = k
        .apply_stdin(&widget("w2", "{size: 7, service: svc}"), &["--server-side"])
        .await;
    assert!(r.ok && r.stdout.contains("serverside-applied"), "{r:?}");
    let ssa = double
        .requests()
        .into_iter()
        .find(|q| q.method == "PATCH" && q.path.ends_with("/widgets/w2"))
        .expect("server-side apply request recorded");
    assert_eq!(ssa.content_type, "application/apply-patch+yaml");
    assert!(ssa.query.contains("fieldManager=kubectl"), "{}", ssa.query);

    // printer columns
    let table = k.ok(&["get", "widgets"]).await;
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "SIZE", "READY", "AGE"] {
        assert!(header.contains(col), "missing column {col} in {table}");
    }
    let w1 = table.lines().find(|l| l.starts_with("w1")).expect("w1 row");
    assert!(
        w1.split_whitespace().nth(1) == Some("3"),
        "size column of w1: {w1}"
    );
    let w2 = k.ok(&["get", "wdg", "w2"]).await;
    assert!(
        w2.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("7")),
        "{w2}"
    );

    // -o yaml round trip and merge patch bumping generation
    let yaml = k.ok(&["get", "widget", "w1", "-o", "yaml"]).await;
    assert!(
        yaml.contains("url: https://example.test") && yaml.contains("generation: 1"),
        "{yaml}"
    );
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ])
    .await;
    let generation = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.spec.size}/{.metadata.generation}",
        ])
        .await;
    assert_eq!(generation, "5/2");

    // wait for Ready while the test sets status through the status subresource
    let wait = k
        .command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl wait spawns");
    eventually(
        "kubectl wait to open its watch",
        Duration::from_secs(20),
        || double.open_watches() > 0,
    )
    .await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Test"}]}}"#,
    ])
    .await;
    let out = tokio::time::timeout(Duration::from_secs(30), wait.wait_with_output())
        .await
        .expect("kubectl wait finishes")
        .expect("kubectl wait output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("condition met"),
        "{stdout}"
    );
    let table = k.ok(&["get", "widgets"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("w1") && l.contains("True")),
        "{table}"
    );
    let generation = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .await;
    assert_eq!(generation, "2", "a status write must not bump generation");

    // rejected manifests show the server's message
    let r = k
        .apply_stdin(&widget("bad-type", "{size: three, url: u}"), &[])
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains(
            "spec.size: Invalid value: \"string\": spec.size in body must be of type integer"
        ),
        "{}",
        r.stderr
    );
    let r = k
        .apply_stdin(&widget("bad-field", "{size: 1, url: u, colour: red}"), &[])
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains("unknown field \"spec.colour\""),
        "{}",
        r.stderr
    );
    let r = k
        .apply_stdin(&widget("bad-cel", "{size: 1, url: u, service: s}"), &[])
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("exactly one of url or service must be set"),
        "{}",
        r.stderr
    );
    let r = k
        .apply_stdin(&widget("bad-cel", "{size: 1}"), &["--server-side"])
        .await;
    assert!(
        !r.ok
            && r.stderr
                .contains("exactly one of url or service must be set"),
        "{}",
        r.stderr
    );
    assert!(
        double.skipped_rules().is_empty(),
        "{:?}",
        double.skipped_rules()
    );

    // creating into a missing namespace is a 404 like the real server
    let r = k
        .apply_stdin(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nope\n",
            &[],
        )
        .await;
    assert!(
        !r.ok && r.stderr.contains("namespaces \"nope\" not found"),
        "{}",
        r.stderr
    );

    // delete (kubectl waits for the object to disappear)
    k.ok(&["delete", "widget", "w1"]).await;
    let stderr = k.fails(&["get", "widget", "w1"]).await;
    assert!(
        stderr.contains("NotFound") || stderr.contains("not found"),
        "{stderr}"
    );
    k.ok(&["delete", "crd", "widgets.test.gatehouse.dev"]).await;
    let stderr = k.fails(&["get", "widgets.test.gatehouse.dev"]).await;
    assert!(
        stderr.contains("the server doesn't have a resource type"),
        "{stderr}"
    );
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// Namespaces named by `metadata.namespace` in every document of the files.
fn namespaces_used(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(v) = <serde_json::Value as serde::Deserialize>::deserialize(doc) else {
                continue;
            };
            if let Some(ns) = v["metadata"]["namespace"].as_str()
                && !out.iter().any(|n| n == ns)
            {
                out.push(ns.to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_repository_crds_and_examples() {
    let root = repo_root();
    let mut crds = Vec::new();
    yaml_files(&root.join("crds"), &mut crds);
    if crds.is_empty() {
        println!(
            "SKIPPED kubectl_applies_the_repository_crds_and_examples: no YAML files in {} (the generated Gatehouse CRDs are not there yet)",
            root.join("crds").display()
        );
        return;
    }
    let double = start(Options::default()).await;
    let k = Kubectl::new(&double);
    for f in &crds {
        k.ok(&["apply", "-f", &f.to_string_lossy()]).await;
    }
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd",
        "--all",
        "--timeout=20s",
    ])
    .await;
    let mut examples = Vec::new();
    yaml_files(&root.join("examples"), &mut examples);
    // Argo CD's own kinds (Application, AppProject, ...) need Argo CD's CRDs, which a plain API
    // server (and this double) does not have; the GitOps policy manifests are still applied.
    let argocd = root.join("examples/gitops/argocd");
    examples.retain(|p| !p.starts_with(&argocd));
    if examples.is_empty() {
        println!(
            "SKIPPED (examples part): no YAML files under {}",
            root.join("examples").display()
        );
        return;
    }
    for ns in namespaces_used(&examples) {
        // `kubectl create namespace` would send protobuf, which the double does not decode.
        let r = k
            .apply_stdin(
                &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
                &[],
            )
            .await;
        assert!(r.ok, "{}", r.stderr);
    }
    for f in &examples {
        k.ok(&["apply", "-f", &f.to_string_lossy()]).await;
    }
    let skipped = double.skipped_rules();
    if !skipped.is_empty() {
        println!("CEL rules the double could not evaluate (NOT covered by this test):");
        for s in skipped {
            println!("  {} at {:?}: {} ({})", s.crd, s.path, s.rule, s.reason);
        }
    }
}
