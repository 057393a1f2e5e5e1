//! A Secret as the operator is allowed to see it: metadata and the *names* of its keys.
//!
//! The operator must know which keys a Secret holds (the compiler reports `SecretKeyNotFound`)
//! but must never hold a value. Watching `v1/Secret` into this type makes serde skip every value
//! while parsing ([`serde::de::IgnoredAny`]): values are never allocated, stored, logged or
//! cloned. (A metadata-only watch would not carry the key names.)

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// `v1/Secret` with its values dropped at parse time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretKeys {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Names of the keys in `data` (values are skipped while parsing, never stored).
    #[serde(
        default,
        rename = "data",
        deserialize_with = "key_names",
        skip_serializing
    )]
    pub keys: BTreeSet<String>,
    /// The Secret's `type` (immutable): tells per-user grant Secrets from all others.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

fn key_names<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = BTreeSet<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of Secret keys")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeSet::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = BTreeSet::new();
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.insert(k);
            }
            Ok(keys)
        }
    }
    d.deserialize_option(OptionKeys(Keys))
}

/// `data: null` and a missing `data` both mean "no keys".
struct OptionKeys<V>(V);

impl<'de, V: Visitor<'de, Value = BTreeSet<String>>> Visitor<'de> for OptionKeys<V> {
    type Value = BTreeSet<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeSet::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeSet::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self.0)
    }
}

impl k8s_openapi::Resource for SecretKeys {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Secret";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "secrets";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for SecretKeys {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl SecretKeys {
    /// The compiler's view of this Secret.
    pub fn to_meta(&self) -> gatehouse_api::compile::SecretMeta {
        gatehouse_api::compile::SecretMeta {
            namespace: self.metadata.namespace.clone().unwrap_or_default(),
            name: self.metadata.name.clone().unwrap_or_default(),
            keys: self.keys.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_dropped_while_parsing() {
        let s: SecretKeys = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n"},
                "data":{"token":"c3VwZXItc2VjcmV0","b":"eA=="},"type":"Opaque"}"#,
        )
        .unwrap();
        assert_eq!(
            s.keys.iter().map(String::as_str).collect::<Vec<_>>(),
            ["b", "token"]
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("c3VwZXItc2VjcmV0"), "{debug}");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let none: SecretKeys = serde_json::from_str(r#"{"metadata":{"name":"s"}}"#).unwrap();
        assert!(none.keys.is_empty());
        let null: SecretKeys =
            serde_json::from_str(r#"{"metadata":{"name":"s"},"data":null}"#).unwrap();
        assert!(null.keys.is_empty());
    }
}
