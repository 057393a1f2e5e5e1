//! Golden tests of the compiler: manifests in, snapshots and statuses out (insta YAML).
//!
//! Review changed `.snap` files like code: they are the configuration gateways will serve.

use gatehouse_api::compile::Compiled;
use gatehouse_api::config::GatewayConfig;
use gatehouse_api::manifest::{self, Loaded, ManifestFile};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn files_under(dir: &Path) -> Vec<ManifestFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| file(p)).collect()
}

fn file(p: &Path) -> ManifestFile {
    ManifestFile {
        source: p.strip_prefix(repo()).unwrap_or(p).display().to_string(),
        text: std::fs::read_to_string(p).unwrap(),
    }
}

#[derive(Serialize)]
struct ConditionView {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: String,
    message: String,
}

#[derive(Serialize)]
struct StatusView {
    conditions: Vec<ConditionView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gateways: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_type: Option<String>,
}

#[derive(Serialize)]
struct View {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    load_errors: Vec<String>,
    statuses: BTreeMap<String, StatusView>,
    snapshots: BTreeMap<String, GatewayConfig>,
}

fn view(loaded: &Loaded, compiled: &Compiled) -> View {
    View {
        load_errors: loaded.errors.iter().map(|e| e.to_string()).collect(),
        statuses: compiled
            .statuses
            .iter()
            .map(|(r, s)| {
                (
                    r.to_string(),
                    StatusView {
                        conditions: s
                            .conditions
                            .iter()
                            .map(|c| ConditionView {
                                type_: c.type_.clone(),
                                status: c.status.clone(),
                                reason: c.reason.clone(),
                                message: c.message.clone(),
                            })
                            .collect(),
                        gateways: s.gateways.iter().map(|g| g.to_string()).collect(),
                        url: s.url.clone(),
                        provider_type: s.provider_type.clone(),
                    },
                )
            })
            .collect(),
        snapshots: compiled
            .gateways
            .iter()
            .map(|(id, cfg)| (id.to_string(), cfg.clone()))
            .collect(),
    }
}

/// Secret values must never reach a snapshot or a status.
fn assert_no_secret_values(loaded: &Loaded, compiled: &Compiled) {
    let rendered = format!(
        "{}\n{:?}",
        serde_json::to_string(&compiled.gateways.values().collect::<Vec<_>>()).unwrap(),
        compiled.statuses
    );
    for s in &loaded.secrets {
        for (k, v) in &s.data {
            let v = String::from_utf8_lossy(v);
            if v.len() >= 6 {
                assert!(
                    !rendered.contains(v.as_ref()),
                    "value of {}/{} key {k} leaked",
                    s.namespace,
                    s.name
                );
            }
        }
    }
}

fn compile_files(files: &[ManifestFile]) -> (Loaded, Compiled) {
    let loaded = manifest::load(files);
    let compiled = gatehouse_api::compile(&loaded.resources);
    assert_no_secret_values(&loaded, &compiled);
    (loaded, compiled)
}

#[test]
fn examples_compile_cleanly() {
    for name in [
        "quickstart",
        "github-per-user",
        "in-cluster-sidecar",
        "agents-only",
    ] {
        let dir = repo().join("examples").join(name);
        let (loaded, compiled) = compile_files(&files_under(&dir));
        assert!(loaded.errors.is_empty(), "{name}: {:?}", loaded.errors);
        let problems: Vec<String> = compiled
            .problems()
            .map(|(o, c)| format!("{o}: {}", c.message))
            .collect();
        assert!(problems.is_empty(), "{name}: {problems:#?}");
        assert!(!compiled.gateways.is_empty(), "{name} produces a snapshot");
        insta::assert_yaml_snapshot!(format!("example-{name}"), view(&loaded, &compiled));
    }
}

#[test]
fn bad_input_is_reported_and_the_rest_still_compiles() {
    let base = file(&repo().join("api/tests/fixtures/base.yaml"));
    let dir = repo().join("api/tests/fixtures/bad");
    for bad in files_under(&dir) {
        let case = Path::new(&bad.source)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let (loaded, compiled) = compile_files(&[base.clone(), bad]);
        // The bad object shows up as a load error or a failed condition …
        assert!(
            !loaded.errors.is_empty() || !compiled.is_clean(),
            "{case}: nothing reported"
        );
        // … and the valid base still compiles into the gateway's snapshot.
        let gw = compiled
            .gateways
            .iter()
            .find(|(id, _)| id.to_string() == "McpGateway team-a/gw")
            .map(|(_, c)| c)
            .unwrap_or_else(|| panic!("{case}: base gateway lost"));
        assert!(
            gw.policies.iter().any(|p| p.key.name == "good"),
            "{case}: base policy lost"
        );
        assert!(
            gw.servers.iter().any(|s| s.key.name == "github"),
            "{case}: base server lost"
        );
        insta::assert_yaml_snapshot!(format!("bad-{case}"), view(&loaded, &compiled));
    }
}

#[test]
fn compilation_is_deterministic_whatever_the_input_order() {
    let dir = repo().join("examples/github-per-user");
    let mut files = files_under(&dir);
    let (_, a) = compile_files(&files);
    files.reverse();
    let mut loaded = manifest::load(&files);
    loaded.resources.policies.reverse();
    loaded.resources.servers.reverse();
    let b = gatehouse_api::compile(&loaded.resources);
    assert_eq!(a, b);
    let versions: Vec<_> = a.gateways.values().map(|g| g.version.clone()).collect();
    assert!(versions.iter().all(|v| v.len() == 32));
}

#[test]
fn a_changed_policy_changes_only_its_gateways_version() {
    let dir = repo().join("examples");
    let mut files = files_under(&dir.join("quickstart"));
    files.extend(files_under(&dir.join("agents-only")));
    let (_, before) = compile_files(&files);
    let policy = files
        .iter_mut()
        .find(|f| f.source.ends_with("quickstart/policy.yaml"))
        .unwrap();
    policy.text = policy.text.replace("admin_*", "admin_* ");
    policy.text = policy
        .text
        .replace("\"admin_* \"", "\"admin_*\", \"reset_*\"");
    let (_, after) = compile_files(&files);
    let version = |c: &Compiled, name: &str| {
        c.gateways
            .iter()
            .find(|(id, _)| id.to_string().contains(name))
            .map(|(_, g)| g.version.clone())
            .unwrap()
    };
    assert_ne!(
        version(&before, "default/local"),
        version(&after, "default/local")
    );
    assert_eq!(
        version(&before, "agents/agents-gateway"),
        version(&after, "agents/agents-gateway")
    );
}

#[test]
fn a_name_template_lists_exactly_the_matching_per_user_secrets() {
    let fixtures = repo().join("api/tests/fixtures");
    let (loaded, compiled) = compile_files(&[
        file(&fixtures.join("base.yaml")),
        file(&fixtures.join("per-user-secrets.yaml")),
    ]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert!(compiled.is_clean());
    let gw = compiled.gateways.values().next().unwrap();
    let names: Vec<&str> = gw
        .secrets
        .iter()
        .filter(|r| r.name.starts_with("github-pat"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "github-pat-alice",
            "github-pat-ana-lopez-example-com",
            "github-pat-bob"
        ]
    );
    insta::assert_yaml_snapshot!("per-user-secrets", view(&loaded, &compiled));
}

#[test]
fn too_many_per_user_secrets_are_capped_and_reported() {
    let max = gatehouse_api::compile::MAX_PER_USER_SECRETS;
    let fixtures = repo().join("api/tests/fixtures");
    let mut many = String::new();
    for i in 0..=max {
        many.push_str(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: github-pat-u{i:05}, namespace: team-a}}\nstringData: {{token: t}}\n"
        ));
    }
    let (_, compiled) = compile_files(&[
        file(&fixtures.join("base.yaml")),
        file(&fixtures.join("per-user-secrets.yaml")),
        ManifestFile {
            source: "many.yaml".into(),
            text: many,
        },
    ]);
    let gw = compiled.gateways.values().next().unwrap();
    let listed: Vec<&str> = gw
        .secrets
        .iter()
        .filter(|r| r.name.starts_with("github-pat"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(listed.len(), max, "capped");
    assert_eq!(listed[0], "github-pat-alice", "the first names, in order");
    assert!(
        gw.credential_providers
            .iter()
            .any(|p| p.key.name == "github-pat"),
        "the provider keeps serving the users it lists"
    );
    let problems: Vec<String> = compiled
        .problems()
        .map(|(o, c)| format!("{o}: {}: {}", c.reason, c.message))
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("CredentialProvider team-a/github-pat: TooManyPerUserSecrets: spec.perUserSecret.nameTemplate: 1004 Secrets"),
        "{}",
        problems[0]
    );
}
