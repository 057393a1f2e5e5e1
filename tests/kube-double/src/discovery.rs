//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`), aggregated
//! discovery (`apidiscovery.k8s.io/v2`), and a minimal OpenAPI v3 (`/openapi/v3`) that only
//! tells kubectl every kind supports server-side `fieldValidation` (no schemas).

use crate::registry::{Registry, ResourceType};
use serde_json::{Value, json};

/// The content type of aggregated discovery responses.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-double",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "none (gatehouse kube-double)",
        "compiler": "rustc", "platform": "linux/amd64"})
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

/// `/apis`.
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(reg: &Registry, group: &str) -> Option<Value> {
    let groups = reg.groups();
    let vs = groups.get(group)?;
    let mut g = group_entry(group, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn types_in<'a>(reg: &'a Registry, group: &'a str, version: &'a str) -> Vec<&'a ResourceType> {
    reg.all()
        .filter(|t| t.group == group && t.serves(version))
        .collect()
}

/// `/api/v1` and `/apis/<group>/<version>`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = types_in(reg, group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": t.verbs()});
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.has_status {
            resources.push(
                json!({"name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Aggregated discovery for `/api` (`core == true`) or `/apis`.
pub fn aggregated(reg: &Registry, core: bool) -> Value {
    let mut items = Vec::new();
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        reg.groups().into_iter().collect()
    };
    for (g, versions) in groups {
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = types_in(reg, &g, v)
                    .into_iter()
                    .map(|t| {
                        let kind = json!({"group": t.group, "version": v, "kind": t.kind});
                        let mut r = json!({"resource": t.plural, "responseKind": kind,
                            "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": t.singular, "verbs": t.verbs()});
                        if !t.short_names.is_empty() {
                            r["shortNames"] = json!(t.short_names);
                        }
                        if !t.categories.is_empty() {
                            r["categories"] = json!(t.categories);
                        }
                        if t.has_status {
                            r["subresources"] = json!([{"subresource": "status", "responseKind": kind,
                                "verbs": ["get", "patch", "update"]}]);
                        }
                        r
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}

/// Whether the Accept header asks for aggregated discovery v2 (kubectl 1.32 does, listing it
/// first; `v2beta1` alone is answered with legacy discovery, which clients fall back to).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|a| {
        let params: Vec<&str> = a.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// `/openapi/v3`: one path per group-version.
pub fn openapi_paths(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={:016X}", reg.generation)}),
    );
    for (g, vs) in reg.groups() {
        for v in vs {
            paths.insert(
                format!("apis/{g}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash={:016X}", reg.generation)}),
            );
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/apis/<g>/<v>`: PATCH operations carrying `x-kubernetes-group-version-kind`
/// and the `fieldValidation` parameter, which is what kubectl's field-validation check reads.
pub fn openapi_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = types_in(reg, group, version);
    if types.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    for t in types {
        let p = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", t.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": t.group, "version": version, "kind": t.kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
            ],
            "responses": {"200": {"description": "OK"}}
        });
        paths.insert(p, json!({"patch": op}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (kube-double)", "version": "v1.32.0"},
        "paths": paths, "components": {"schemas": {}}}),
    )
}
