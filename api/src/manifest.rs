//! Loading YAML manifests (multi-document files) into [`Resources`], for local mode and
//! `gatehouse-gateway check`. The text comes in; nothing here reads files.
//!
//! Each Gatehouse object is checked the way the API server would check it: the CRD's CEL rules
//! (`x-kubernetes-validations`, evaluated with kube's client-side CEL validator against the very
//! schema in `crds/`), then strict decoding that rejects unknown fields and wrong types with the
//! path of the offending field. `Secret` and `Namespace` manifests are read too; anything else
//! is skipped and reported.

use crate::compile::{NamespaceMeta, Resources, SecretMeta};
use crate::refs::{Kind, ObjectRef};
use crate::{API_VERSION, AccessPolicy, CredentialProvider, McpGateway, McpServer, TrustProvider};
use base64::Engine;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;

/// One manifest file's contents.
#[derive(Clone, Debug)]
pub struct ManifestFile {
    /// Where it came from (shown in errors).
    pub source: String,
    /// The YAML text.
    pub text: String,
}

/// Where an object was defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// File.
    pub source: String,
    /// 1-based document index within the file.
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.source, self.document)
    }
}

/// A problem with one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// Where.
    pub origin: Origin,
    /// The object, when its kind and name could be read.
    pub object: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(o) => write!(f, "{}: {o}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// A Secret from a manifest, with its values (local mode reads secrets from here).
#[derive(Clone, PartialEq, Eq)]
pub struct LocalSecret {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Values by key.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for LocalSecret {
    // Never print values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The result of loading a set of manifest files.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The objects that passed validation.
    pub resources: Resources,
    /// Secrets with their values.
    pub secrets: Vec<LocalSecret>,
    /// Where each Gatehouse object came from.
    pub origins: BTreeMap<ObjectRef, Origin>,
    /// Documents that could not be loaded.
    pub errors: Vec<ManifestError>,
    /// Documents of other kinds, ignored (`Deployment`, …), described.
    pub skipped: Vec<String>,
}

struct Schemas {
    validator: Validator,
    by_kind: BTreeMap<&'static str, CompiledSchema>,
}

impl Schemas {
    fn new() -> Self {
        let by_kind = Kind::ALL
            .into_iter()
            .filter_map(|k| {
                Some((
                    k.as_str(),
                    compile_schema(&crate::crds::schema_of(k.as_str())?),
                ))
            })
            .collect();
        Self {
            validator: Validator::new(),
            by_kind,
        }
    }
}

/// Load manifests. Files are processed in the order given; errors never stop the other
/// documents from loading.
pub fn load(files: &[ManifestFile]) -> Loaded {
    let schemas = Schemas::new();
    let mut out = Loaded::default();
    for file in files {
        for (i, doc) in serde_yaml::Deserializer::from_str(&file.text).enumerate() {
            let origin = Origin {
                source: file.source.clone(),
                document: i + 1,
            };
            let value = match serde_yaml::Value::deserialize_from(doc) {
                Ok(v) => v,
                Err(e) => {
                    out.errors.push(ManifestError {
                        origin,
                        object: None,
                        message: format!("not valid YAML: {e}"),
                    });
                    // The YAML stream cannot be resumed after a syntax error.
                    break;
                }
            };
            if value.is_null() {
                continue;
            }
            match serde_json::to_value(&value) {
                Ok(json) => load_document(&schemas, json, origin, &mut out),
                Err(e) => out.errors.push(ManifestError {
                    origin,
                    object: None,
                    message: format!("cannot be represented as JSON: {e}"),
                }),
            }
        }
    }
    out
}

trait DeserializeFrom: Sized {
    fn deserialize_from(d: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error>;
}

impl DeserializeFrom for serde_yaml::Value {
    fn deserialize_from(d: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(d)
    }
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn load_document(schemas: &Schemas, mut json: serde_json::Value, origin: Origin, out: &mut Loaded) {
    let error = |object: Option<String>, message: String| ManifestError {
        origin: origin.clone(),
        object,
        message,
    };
    if !json.is_object() {
        out.errors.push(error(
            None,
            "a manifest must be a mapping with apiVersion and kind".into(),
        ));
        return;
    }
    let api_version = str_at(&json, &["apiVersion"])
        .unwrap_or_default()
        .to_string();
    let kind = str_at(&json, &["kind"]).unwrap_or_default().to_string();
    let name = str_at(&json, &["metadata", "name"])
        .unwrap_or_default()
        .to_string();
    if api_version.is_empty() || kind.is_empty() {
        out.errors
            .push(error(None, "apiVersion and kind are required".into()));
        return;
    }
    let gatehouse_group = api_version.starts_with("gatehouse.dev/");
    let gh_kind = Kind::parse(&kind);
    if gatehouse_group && gh_kind.is_none() {
        out.errors.push(error(
            None,
            format!(
                "kind {kind:?} is not a Gatehouse kind (McpGateway, McpServer, AccessPolicy, TrustProvider, CredentialProvider)"
            ),
        ));
        return;
    }
    // Namespaced objects without a namespace land in `default`, as with `kubectl apply`.
    if gh_kind.is_some() || (api_version == "v1" && kind == "Secret") {
        let meta = json
            .as_object_mut()
            .and_then(|o| o.get_mut("metadata"))
            .and_then(|m| m.as_object_mut());
        if let Some(meta) = meta {
            meta.entry("namespace")
                .or_insert_with(|| serde_json::Value::String("default".into()));
        }
    }
    let namespace = str_at(&json, &["metadata", "namespace"])
        .unwrap_or("default")
        .to_string();
    let label = format!("{kind} {namespace}/{name}");
    if !is_dns_subdomain(&name) {
        out.errors.push(error(
            Some(label),
            format!(
                "metadata.name {name:?} must be a lowercase DNS name (letters, digits, '-', '.')"
            ),
        ));
        return;
    }
    let Some(gh_kind) = gh_kind else {
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Secret") => match secret(&json) {
                Ok(data) => {
                    out.resources.secrets.push(SecretMeta {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        keys: data.keys().cloned().collect(),
                    });
                    out.secrets.push(LocalSecret {
                        namespace,
                        name,
                        data,
                    });
                }
                Err(e) => out
                    .errors
                    .push(error(Some(format!("Secret {namespace}/{name}")), e)),
            },
            ("v1", "Namespace") => {
                let labels = json
                    .pointer("/metadata/labels")
                    .and_then(|l| serde_json::from_value(l.clone()).ok())
                    .unwrap_or_default();
                out.resources
                    .namespaces
                    .push(NamespaceMeta { name, labels });
            }
            _ => out.skipped.push(format!(
                "{origin}: {kind} {name} ({api_version}) is not used by Gatehouse"
            )),
        }
        return;
    };
    if api_version != API_VERSION {
        out.errors.push(error(
            Some(label),
            format!("apiVersion {api_version:?} is not served; use {API_VERSION}"),
        ));
        return;
    }
    let object_ref = ObjectRef::new(gh_kind, &namespace, &name);
    if let Some(first) = out.origins.get(&object_ref) {
        out.errors.push(error(
            Some(label),
            format!("defined twice: first at {first}"),
        ));
        return;
    }
    // Strict decoding first (types, unknown fields), then the API server's CEL rules from the
    // same schema as crds/; an object is added only when both pass.
    let typed_object = match gh_kind {
        Kind::McpGateway => typed::<McpGateway>(&json).map(|o| Object::Gateway(Box::new(o))),
        Kind::McpServer => typed::<McpServer>(&json).map(|o| Object::Server(Box::new(o))),
        Kind::AccessPolicy => typed::<AccessPolicy>(&json).map(|o| Object::Policy(Box::new(o))),
        Kind::TrustProvider => typed::<TrustProvider>(&json).map(|o| Object::Trust(Box::new(o))),
        Kind::CredentialProvider => {
            typed::<CredentialProvider>(&json).map(|o| Object::Credential(Box::new(o)))
        }
    };
    let object = match typed_object {
        Ok(o) => o,
        Err(e) => {
            out.errors.push(error(Some(label), e));
            return;
        }
    };
    if let Some(schema) = schemas.by_kind.get(gh_kind.as_str())
        && let Err(errors) = schemas.validator.validate_compiled(schema, &json, None)
    {
        for e in errors.into_vec() {
            let field = if e.field_path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.field_path)
            };
            out.errors
                .push(error(Some(label.clone()), format!("{field}{}", e.message)));
        }
        return;
    }
    match object {
        Object::Gateway(o) => out.resources.gateways.push(*o),
        Object::Server(o) => out.resources.servers.push(*o),
        Object::Policy(o) => out.resources.policies.push(*o),
        Object::Trust(o) => out.resources.trust_providers.push(*o),
        Object::Credential(o) => out.resources.credential_providers.push(*o),
    }
    out.origins.insert(object_ref, origin);
}

enum Object {
    Gateway(Box<McpGateway>),
    Server(Box<McpServer>),
    Policy(Box<AccessPolicy>),
    Trust(Box<TrustProvider>),
    Credential(Box<CredentialProvider>),
}

fn typed<T: DeserializeOwned>(json: &serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

fn secret(json: &serde_json::Value) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut data = BTreeMap::new();
    if let Some(d) = json.get("data") {
        let map = d
            .as_object()
            .ok_or("data must be a mapping of key: base64 value")?;
        for (k, v) in map {
            let s = v
                .as_str()
                .ok_or_else(|| format!("data.{k} must be a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| {
                    format!("data.{k} is not valid base64 (use stringData for plain text)")
                })?;
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(d) = json.get("stringData") {
        let map = d
            .as_object()
            .ok_or("stringData must be a mapping of key: text")?;
        for (k, v) in map {
            let s = v
                .as_str()
                .ok_or_else(|| format!("stringData.{k} must be a string"))?;
            data.insert(k.clone(), s.as_bytes().to_vec());
        }
    }
    Ok(data)
}
