//! McpGateways.

use super::providers::{Compiled as ProviderMap, TrustEntry};
use super::status::ObjectStatus;
use super::{Problems, Secrets, key_of, labels};
use crate::McpGateway;
use crate::config::{AuditConfig, ListenerConfig, SessionConfig, TrustProviderConfig};
use crate::duration;
use crate::gateway::{AllowedNamespaces, AuditSink, NamespacesFrom};
use crate::refs::{Kind, ObjectKey, ObjectRef, SecretRef};
use std::collections::BTreeMap;

/// A compiled gateway. `usable` gateways get snapshots.
pub(super) struct GatewayEntry {
    pub usable: bool,
    pub public_url: Option<String>,
    pub listener: ListenerConfig,
    pub session: SessionConfig,
    pub audit: AuditConfig,
    pub allowed_origins: Vec<String>,
    pub allowed_namespaces: AllowedNamespaces,
    pub trust_providers: Vec<TrustProviderConfig>,
    pub secrets: Vec<SecretRef>,
}

impl GatewayEntry {
    /// Whether an object in `namespace` may attach to this gateway in `gateway_ns`.
    pub fn admits(
        &self,
        gateway_ns: &str,
        namespace: &str,
        namespaces: &BTreeMap<&str, &BTreeMap<String, String>>,
    ) -> bool {
        match self.allowed_namespaces.from {
            NamespacesFrom::Same => gateway_ns == namespace,
            NamespacesFrom::All => true,
            NamespacesFrom::Selector => {
                let empty = BTreeMap::new();
                let labels = namespaces.get(namespace).copied().unwrap_or(&empty);
                self.allowed_namespaces
                    .selector
                    .as_ref()
                    .is_some_and(|s| labels::matches(s, labels))
            }
        }
    }
}

pub(super) fn compile_gateways(
    list: &[McpGateway],
    trust: &ProviderMap<TrustEntry>,
    secrets: &Secrets<'_>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> BTreeMap<ObjectKey, GatewayEntry> {
    let mut out = BTreeMap::new();
    for gw in list {
        let key = key_of(gw);
        let spec = &gw.spec;
        let mut problems = Problems::default();
        let ns = &key.namespace;

        if let Some(url) = &spec.public_url {
            let ok = url.starts_with("https://")
                || url.starts_with("http://localhost")
                || url.starts_with("http://127.0.0.1");
            if !ok {
                problems.invalid(format!(
                    "spec.publicUrl: {url:?} must be an https:// URL (plain http is allowed only for localhost)"
                ));
            }
        }
        let port = u16::try_from(spec.listener.port).ok().filter(|p| *p > 0);
        if port.is_none() {
            problems.invalid(format!(
                "spec.listener.port: {} is not a port (1-65535)",
                spec.listener.port
            ));
        }
        let mut refs = Vec::new();
        let tls = spec.listener.tls.as_ref().map(|t| {
            let r = SecretRef::whole(ns, &t.secret_ref.name);
            refs.push(("spec.listener.tls.secretRef".to_string(), r.clone()));
            r
        });
        let mut ttl_seconds = 8 * 3600;
        let mut session_key = None;
        if let Some(s) = &spec.session {
            match duration::parse(&s.ttl) {
                Ok(d) => ttl_seconds = d.as_secs(),
                Err(e) => problems.invalid(format!("spec.session.ttl: {e}")),
            }
            if let Some(k) = &s.key_secret_ref {
                let r = SecretRef::key(ns, &k.name, &k.key);
                refs.push(("spec.session.keySecretRef".to_string(), r.clone()));
                session_key = Some(r);
            }
        }
        let audit = match (spec.audit.sink, &spec.audit.path) {
            (AuditSink::Stdout, None) => AuditConfig::Stdout,
            (AuditSink::None, None) => AuditConfig::None,
            (AuditSink::File, Some(path)) if !path.is_empty() => {
                AuditConfig::File { path: path.clone() }
            }
            (AuditSink::File, _) => {
                problems.invalid("spec.audit.path: required when sink is File");
                AuditConfig::Stdout
            }
            (_, Some(_)) => {
                problems.invalid("spec.audit.path: only allowed when sink is File");
                AuditConfig::Stdout
            }
        };
        match (
            spec.allowed_namespaces.from,
            &spec.allowed_namespaces.selector,
        ) {
            (NamespacesFrom::Selector, Some(sel)) => {
                if let Err(e) = labels::validate(sel) {
                    problems.invalid(format!("spec.allowedNamespaces.selector.{e}"));
                }
            }
            (NamespacesFrom::Selector, None) => {
                problems.invalid("spec.allowedNamespaces.selector: required when from is Selector")
            }
            (_, Some(_)) => problems
                .invalid("spec.allowedNamespaces.selector: only allowed when from is Selector"),
            _ => {}
        }
        for (i, o) in spec.allowed_origins.iter().enumerate() {
            if !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/') {
                problems.invalid(format!(
                    "spec.allowedOrigins[{i}]: {o:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        if spec.trust_providers.is_empty() {
            problems.invalid("spec.trustProviders: list at least one TrustProvider");
        }
        let mut trust_providers = Vec::new();
        for (i, name) in spec.trust_providers.iter().enumerate() {
            let tp_key = ObjectKey::new(ns, name);
            match trust.get(&tp_key) {
                None => problems.unresolved(
                    "TrustProviderNotFound",
                    format!("spec.trustProviders[{i}]: TrustProvider {tp_key} not found"),
                ),
                Some(Err(_)) => problems.unresolved(
                    "TrustProviderNotReady",
                    format!(
                        "spec.trustProviders[{i}]: TrustProvider {tp_key} is not ready (see its status); the gateway serves without it"
                    ),
                ),
                Some(Ok(entry)) => {
                    trust_providers.push(entry.config.clone());
                    refs.extend(entry.secrets.iter().map(|r| (String::new(), r.clone())));
                }
            }
        }
        let mut own_refs_ok = Problems::default();
        for (field, r) in refs.iter().filter(|(f, _)| !f.is_empty()) {
            secrets.check(r, field, &mut problems);
            secrets.check(r, field, &mut own_refs_ok);
        }
        // A gateway with no usable trust provider would reject everyone: still serve (fail
        // closed), but a missing TLS or session Secret stops the snapshot, so replicas keep their
        // last good configuration instead of silently dropping TLS or sessions.
        let usable = problems.is_valid() && own_refs_ok.is_resolved();
        let mut secret_refs: Vec<SecretRef> = refs.into_iter().map(|(_, r)| r).collect();
        secret_refs.sort();
        secret_refs.dedup();
        out.insert(
            key.clone(),
            GatewayEntry {
                usable,
                public_url: spec
                    .public_url
                    .as_ref()
                    .map(|u| u.trim_end_matches('/').to_string()),
                listener: ListenerConfig {
                    port: port.unwrap_or(8080),
                    tls,
                },
                session: SessionConfig {
                    key: session_key,
                    ttl_seconds,
                },
                audit,
                allowed_origins: spec.allowed_origins.clone(),
                allowed_namespaces: spec.allowed_namespaces.clone(),
                trust_providers,
                secrets: secret_refs,
            },
        );
        statuses.insert(
            ObjectRef::new(Kind::McpGateway, &key.namespace, &key.name),
            problems.into_status(gw.metadata.generation, "McpGateway"),
        );
    }
    out
}
