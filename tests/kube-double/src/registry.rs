//! The resource types the double serves: a fixed set of built-ins plus every established CRD.

use serde_json::Value;
use std::collections::BTreeMap;

/// One served resource type (one `group/plural`, possibly in several versions).
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Served versions, storage version first.
    pub versions: Vec<String>,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// `ConfigMapList`.
    pub list_kind: String,
    /// Plural resource name, e.g. `configmaps`.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`cm`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether a `status` subresource exists (spec and status written separately).
    pub has_status: bool,
    /// Create-only virtual resources (TokenReview): not stored, no get/list/watch.
    pub create_only: bool,
    /// Present for resources defined by a CustomResourceDefinition.
    pub crd: Option<CrdInfo>,
}

/// What a CRD contributes for validation and printing, per version.
#[derive(Debug, Clone, Default)]
pub struct CrdInfo {
    /// CRD object name (`plural.group`).
    pub crd_name: String,
    /// `openAPIV3Schema` per version.
    pub schemas: BTreeMap<String, Value>,
    /// `additionalPrinterColumns` per version.
    pub printer_columns: BTreeMap<String, Vec<Value>>,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        has_status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            versions: vec![version.into()],
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            has_status,
            create_only: false,
            crd: None,
        }
    }

    /// `apiVersion` string for a version of this type.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// Verbs advertised in discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

/// All served types, keyed by `(group, plural)`.
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<(String, String), ResourceType>,
    /// Bumped whenever the set of types changes (used as the OpenAPI hash).
    pub generation: u64,
}

impl Registry {
    /// The built-in kinds the Gatehouse operator, kubectl and kube-rs touch.
    pub fn with_builtins() -> Self {
        let mut types = vec![
            ResourceType::builtin("", "v1", "Namespace", "namespaces", false, &["ns"], true),
            ResourceType::builtin("", "v1", "Secret", "secrets", true, &[], false),
            ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
            ResourceType::builtin("", "v1", "Service", "services", true, &["svc"], true),
            ResourceType::builtin(
                "",
                "v1",
                "ServiceAccount",
                "serviceaccounts",
                true,
                &["sa"],
                false,
            ),
            ResourceType::builtin("", "v1", "Event", "events", true, &["ev"], false),
            ResourceType::builtin("", "v1", "Pod", "pods", true, &["po"], true),
            ResourceType::builtin(
                "events.k8s.io",
                "v1",
                "Event",
                "events",
                true,
                &["ev"],
                false,
            ),
            ResourceType::builtin(
                "coordination.k8s.io",
                "v1",
                "Lease",
                "leases",
                true,
                &[],
                false,
            ),
            ResourceType::builtin(
                "apps",
                "v1",
                "Deployment",
                "deployments",
                true,
                &["deploy"],
                true,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "Role",
                "roles",
                true,
                &[],
                false,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                "rolebindings",
                true,
                &[],
                false,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
                &[],
                false,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                &[],
                false,
            ),
            ResourceType::builtin(
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
                true,
                &["pdb"],
                true,
            ),
            ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
                true,
            ),
        ];
        let mut review = ResourceType::builtin(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
            &[],
            false,
        );
        review.create_only = true;
        types.push(review);
        for t in &mut types {
            if matches!(
                t.plural.as_str(),
                "services" | "deployments" | "pods" | "configmaps" | "secrets"
            ) && t.group != "events.k8s.io"
            {
                t.categories = vec!["all".into()];
            }
            if matches!(t.plural.as_str(), "configmaps" | "secrets") {
                t.categories.clear();
            }
        }
        Self {
            types: types
                .into_iter()
                .map(|t| ((t.group.clone(), t.plural.clone()), t))
                .collect(),
            generation: 1,
        }
    }

    /// Looks a type up by group and plural.
    pub fn get(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types.get(&(group.to_string(), plural.to_string()))
    }

    /// All types.
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// Groups with their versions, in a stable order (core excluded).
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values().filter(|t| !t.group.is_empty()) {
            let entry = out.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
        out
    }

    /// Registers (or replaces) the type defined by a CRD object.
    pub fn register_crd(&mut self, crd: &Value) -> Result<ResourceType, String> {
        let t = type_from_crd(crd)?;
        self.types
            .insert((t.group.clone(), t.plural.clone()), t.clone());
        self.generation += 1;
        Ok(t)
    }

    /// Removes a CRD-defined type.
    pub fn unregister(&mut self, group: &str, plural: &str) {
        self.types.remove(&(group.to_string(), plural.to_string()));
        self.generation += 1;
    }
}

/// Builds the served type from a CustomResourceDefinition, checking the fields the double needs.
pub fn type_from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let group = spec["group"].as_str().ok_or("spec.group: Required value")?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or("spec.names.plural: Required value")?;
    let kind = names["kind"]
        .as_str()
        .ok_or("spec.names.kind: Required value")?;
    let scope = spec["scope"].as_str().ok_or("spec.scope: Required value")?;
    if scope != "Namespaced" && scope != "Cluster" {
        return Err(format!(
            "spec.scope: Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
        ));
    }
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let versions = spec["versions"]
        .as_array()
        .filter(|v| !v.is_empty())
        .ok_or("spec.versions: Invalid value: null: must have exactly one version marked as storage version")?;
    let mut served = Vec::new();
    let mut info = CrdInfo {
        crd_name: name.to_string(),
        ..CrdInfo::default()
    };
    let mut has_status = false;
    let mut storage_count = 0;
    for v in versions {
        let vname = v["name"]
            .as_str()
            .ok_or("spec.versions[].name: Required value")?;
        if v["storage"].as_bool() == Some(true) {
            storage_count += 1;
            served.insert(0, vname.to_string());
        } else if v["served"].as_bool() != Some(false) {
            served.push(vname.to_string());
        }
        if v["subresources"].get("status").is_some() {
            has_status = true;
        }
        if let Some(s) = v["schema"].get("openAPIV3Schema") {
            info.schemas.insert(vname.to_string(), s.clone());
        }
        if let Some(cols) = v["additionalPrinterColumns"].as_array() {
            info.printer_columns.insert(vname.to_string(), cols.clone());
        }
    }
    if storage_count != 1 {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        group: group.into(),
        versions: served,
        kind: kind.into(),
        list_kind: names["listKind"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List")),
        plural: plural.into(),
        singular: names["singular"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase()),
        namespaced: scope == "Namespaced",
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        has_status,
        create_only: false,
        crd: Some(info),
    })
}
