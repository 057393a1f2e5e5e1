//! `crds/` must be exactly what the code generates, and every CRD must carry what users rely on.

use std::path::Path;

#[test]
fn committed_crds_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut expected: Vec<String> = Vec::new();
    for crd in gatehouse_api::crds::all() {
        let name = gatehouse_api::crds::file_name(&crd);
        expected.push(name.clone());
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|_| {
            panic!("crds/{name} is missing; run `gatehouse-operator crds -o crds`")
        });
        assert!(
            committed == gatehouse_api::crds::to_yaml(&crd),
            "crds/{name} differs from the code; run `cargo run -p gatehouse-operator -- crds -o crds`"
        );
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(
        present, expected,
        "crds/ holds files the code does not generate"
    );
}

#[test]
fn every_crd_has_schema_cel_rules_printer_columns_and_status() {
    for crd in gatehouse_api::crds::all() {
        let kind = crd.spec.names.kind.clone();
        assert_eq!(crd.spec.group, "gatehouse.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        let cols: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        for want in ["Ready", "Reason", "Age"] {
            assert!(
                cols.contains(&want),
                "{kind} lacks printer column {want}: {cols:?}"
            );
        }
        assert!(cols.len() >= 4, "{kind} shows a key field too: {cols:?}");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} status subresource"
        );
        let schema = serde_json::to_string(v.schema.as_ref().unwrap()).unwrap();
        assert!(
            schema.contains("x-kubernetes-validations"),
            "{kind} has CEL rules"
        );
        assert!(
            schema.contains("observedGeneration"),
            "{kind} status has observedGeneration"
        );
        assert!(
            schema.contains("\"conditions\""),
            "{kind} status has conditions"
        );
        // Every property is documented (kubectl explain).
        let json: serde_json::Value = serde_json::from_str(&schema).unwrap();
        assert_documented(&kind, "", &json["openAPIV3Schema"]["properties"]["spec"]);
    }
}

fn assert_documented(kind: &str, path: &str, schema: &serde_json::Value) {
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            let here = format!("{path}.{name}");
            let has_doc = sub
                .get("description")
                .and_then(|d| d.as_str())
                .is_some_and(|d| !d.is_empty());
            assert!(has_doc, "{kind} spec{here} has no description");
            // Kubernetes built-in types (k8s-openapi) document themselves; recurse into ours.
            assert_documented(kind, &here, sub);
        }
    }
    if let Some(items) = schema.get("items") {
        assert_documented(kind, &format!("{path}[]"), items);
    }
}
