//! References between objects, and the keys that name objects across the system.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A key of a Secret in the same namespace as the referring object.
///
/// Gatehouse only ever carries references to Secrets: the values are read by the gateway that
/// needs them, never copied into configuration snapshots, ConfigMaps or status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    /// Name of the Secret, in the referring object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's `data` (or `stringData`).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A whole Secret in the same namespace as the referring object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSelector {
    /// Name of the Secret, in the referring object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The namespaced name of an object of a known kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

impl ObjectKey {
    /// Build a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parse `namespace/name`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Self::new(ns, name))
    }
}

impl ObjectKey {
    /// `namespace/name`, as `to_string` gives it, without the formatting machinery (the
    /// request path renders keys for every audit record).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(self.namespace.len() + 1 + self.name.len());
        s.push_str(&self.namespace);
        s.push('/');
        s.push_str(&self.name);
        s
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A reference to a Secret key, fully resolved to its namespace. This is what travels in
/// snapshots: where to read a value, never the value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret; absent when the whole Secret is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretRef {
    /// A reference to one key.
    pub fn key(namespace: &str, name: &str, key: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            key: Some(key.to_string()),
        }
    }

    /// A reference to a whole Secret.
    pub fn whole(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            key: None,
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "Secret {}/{} key {k:?}", self.namespace, self.name),
            None => write!(f, "Secret {}/{}", self.namespace, self.name),
        }
    }
}

/// The kinds Gatehouse compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `McpGateway`
    McpGateway,
    /// `McpServer`
    McpServer,
    /// `AccessPolicy`
    AccessPolicy,
    /// `TrustProvider`
    TrustProvider,
    /// `CredentialProvider`
    CredentialProvider,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 5] = [
        Kind::McpGateway,
        Kind::McpServer,
        Kind::AccessPolicy,
        Kind::TrustProvider,
        Kind::CredentialProvider,
    ];

    /// The kind as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::McpGateway => "McpGateway",
            Kind::McpServer => "McpServer",
            Kind::AccessPolicy => "AccessPolicy",
            Kind::TrustProvider => "TrustProvider",
            Kind::CredentialProvider => "CredentialProvider",
        }
    }

    /// Parse a manifest `kind`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object of a Gatehouse kind, by kind and namespaced name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Kind of the object.
    pub kind: Kind,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

impl ObjectRef {
    /// Build a reference.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The namespaced name.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.namespace, &self.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}
