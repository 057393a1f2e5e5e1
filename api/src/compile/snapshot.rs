//! Assembling one snapshot per gateway and per sidecar.

use super::gateways::GatewayEntry;
use super::providers::{Compiled as ProviderMap, CredentialEntry, TrustEntry};
use super::servers::{ServerEntry, Servers};
use super::status::ObjectStatus;
use crate::config::{GatewayConfig, GatewayId, PolicyConfig};
use crate::refs::{Kind, ObjectKey, ObjectRef, SecretRef};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn assemble(
    gateways: &BTreeMap<ObjectKey, GatewayEntry>,
    servers: &Servers,
    policies: &[PolicyConfig],
    creds: &ProviderMap<CredentialEntry>,
    trust: &ProviderMap<TrustEntry>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> BTreeMap<GatewayId, GatewayConfig> {
    let _ = trust;
    let mut out = BTreeMap::new();
    let usable: Vec<(&ObjectKey, &ServerEntry)> = servers
        .iter()
        .filter_map(|(k, e)| e.as_ref().map(|e| (k, e)))
        .collect();

    for (gw_key, gw) in gateways.iter().filter(|(_, g)| g.usable) {
        let members: Vec<&ServerEntry> = usable
            .iter()
            .filter(|(_, s)| !s.sidecar && s.gateway == *gw_key)
            .map(|(_, s)| *s)
            .collect();
        let id = GatewayId::Gateway {
            key: gw_key.clone(),
        };
        out.insert(
            id.clone(),
            build(id, gw, &members, policies, creds, statuses),
        );
    }
    for (key, s) in usable.iter().filter(|(_, s)| s.sidecar) {
        let Some(gw) = gateways.get(&s.gateway).filter(|g| g.usable) else {
            continue;
        };
        let id = GatewayId::Sidecar {
            server: (*key).clone(),
        };
        out.insert(id.clone(), build(id, gw, &[*s], policies, creds, statuses));
    }
    out
}

fn build(
    id: GatewayId,
    gw: &GatewayEntry,
    members: &[&ServerEntry],
    policies: &[PolicyConfig],
    creds: &ProviderMap<CredentialEntry>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> GatewayConfig {
    let server_keys: BTreeSet<&ObjectKey> = members.iter().map(|s| &s.config.key).collect();
    let mut secrets: BTreeSet<SecretRef> = gw.secrets.iter().cloned().collect();
    let mut servers: Vec<_> = members.iter().map(|s| s.config.clone()).collect();
    servers.sort_by(|a, b| a.path.cmp(&b.path));
    for s in members {
        secrets.extend(s.secrets.iter().cloned());
        note(statuses, Kind::McpServer, &s.config.key, &id);
    }

    let mut used_creds = BTreeSet::new();
    let mut selected = Vec::new();
    for p in policies {
        let targets: Vec<_> = p
            .targets
            .iter()
            .filter(|t| server_keys.contains(&t.server))
            .cloned()
            .collect();
        if targets.is_empty() {
            continue;
        }
        used_creds.extend(targets.iter().filter_map(|t| t.credential_provider.clone()));
        note(statuses, Kind::AccessPolicy, &p.key, &id);
        selected.push(PolicyConfig {
            targets,
            ..p.clone()
        });
    }
    let mut credential_providers = Vec::new();
    for key in &used_creds {
        if let Some(Ok(entry)) = creds.get(key) {
            secrets.extend(entry.secrets.iter().cloned());
            credential_providers.push(entry.config.clone());
            note(statuses, Kind::CredentialProvider, key, &id);
        }
    }
    if let GatewayId::Gateway { key } = &id {
        note(statuses, Kind::McpGateway, key, &id);
    }
    for tp in &gw.trust_providers {
        let ns = match &id {
            GatewayId::Gateway { key } => key.namespace.clone(),
            GatewayId::Sidecar { .. } => members
                .first()
                .map(|m| m.gateway.namespace.clone())
                .unwrap_or_default(),
        };
        note(
            statuses,
            Kind::TrustProvider,
            &ObjectKey::new(ns, &tp.name),
            &id,
        );
    }

    let mut config = GatewayConfig {
        version: String::new(),
        gateway: id,
        public_url: gw.public_url.clone(),
        listener: gw.listener.clone(),
        session: gw.session.clone(),
        allowed_origins: gw.allowed_origins.clone(),
        audit: gw.audit.clone(),
        trust_providers: gw.trust_providers.clone(),
        servers,
        credential_providers,
        policies: selected,
        secrets: secrets.into_iter().collect(),
    };
    if let GatewayId::Sidecar { .. } = &config.gateway {
        // A workload's sidecar advertises the workload's own URL, not the shared gateway's.
        config.public_url = members.first().and_then(|m| m.public_url.clone());
    }
    config.version = config.content_hash();
    config
}

fn note(
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
    kind: Kind,
    key: &ObjectKey,
    id: &GatewayId,
) {
    if let Some(s) = statuses.get_mut(&ObjectRef::new(kind, &key.namespace, &key.name))
        && !s.gateways.contains(id)
    {
        s.gateways.push(id.clone());
    }
}
