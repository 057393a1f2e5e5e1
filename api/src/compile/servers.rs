//! McpServers: upstream, route on the gateway, and attachment to a gateway.

use super::gateways::GatewayEntry;
use super::status::ObjectStatus;
use super::{NamespaceMeta, Problems, Secrets, key_of};
use crate::McpServer;
use crate::config::{ServerConfig, Upstream};
use crate::duration;
use crate::refs::{Kind, ObjectKey, ObjectRef, SecretRef};
use crate::server::{Transport, WorkloadTransport};
use std::collections::BTreeMap;

/// Paths the gateway serves itself.
pub const RESERVED_PATH_PREFIXES: [&str; 5] = [
    "/.well-known/",
    "/oauth/",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// A compiled server.
pub(super) struct ServerEntry {
    /// The gateway it attaches to (for a workload: whose settings its sidecar uses).
    pub gateway: ObjectKey,
    /// Served by its own sidecar rather than the standalone gateway.
    pub sidecar: bool,
    pub config: ServerConfig,
    pub secrets: Vec<SecretRef>,
    /// For a workload: the URL its sidecar advertises as the protected resource.
    pub public_url: Option<String>,
}

/// Every McpServer by key: `Some` when usable, `None` when it exists but is not.
pub(super) type Servers = BTreeMap<ObjectKey, Option<ServerEntry>>;

struct Pending<'a> {
    server: &'a McpServer,
    key: ObjectKey,
    problems: Problems,
    entry: Option<ServerEntry>,
}

pub(super) fn compile_servers(
    list: &[McpServer],
    gateways: &BTreeMap<ObjectKey, GatewayEntry>,
    namespaces: &[NamespaceMeta],
    secrets: &Secrets<'_>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> Servers {
    let ns_labels: BTreeMap<&str, &BTreeMap<String, String>> = namespaces
        .iter()
        .map(|n| (n.name.as_str(), &n.labels))
        .collect();
    let mut pending: Vec<Pending<'_>> = list
        .iter()
        .map(|s| compile_one(s, gateways, &ns_labels, secrets))
        .collect();

    // Two servers on one gateway cannot share a path: the oldest keeps it (then by name), as in
    // Gateway API conflict resolution.
    pending.sort_by(|a, b| {
        let age = |p: &Pending<'_>| p.server.metadata.creation_timestamp.clone();
        (age(a).is_none(), age(a), &a.key).cmp(&(age(b).is_none(), age(b), &b.key))
    });
    let mut taken: BTreeMap<(ObjectKey, String), ObjectKey> = BTreeMap::new();
    for p in &mut pending {
        let Some(entry) = &p.entry else { continue };
        if entry.sidecar {
            continue;
        }
        let slot = (entry.gateway.clone(), entry.config.path.clone());
        if let Some(owner) = taken.get(&slot) {
            p.problems.invalid_with(
                "PathConflict",
                format!(
                    "spec.path: {} on McpGateway {} is already used by McpServer {owner}",
                    entry.config.path, entry.gateway
                ),
            );
            p.entry = None;
        } else {
            taken.insert(slot, p.key.clone());
        }
    }

    let mut out = BTreeMap::new();
    for p in pending {
        let mut status = p
            .problems
            .into_status(p.server.metadata.generation, "McpServer");
        if let Some(e) = &p.entry {
            status.url = gateways
                .get(&e.gateway)
                .and_then(|g| g.public_url.as_ref())
                .filter(|_| !e.sidecar)
                .map(|u| format!("{u}{}", e.config.path));
        }
        statuses.insert(
            ObjectRef::new(Kind::McpServer, &p.key.namespace, &p.key.name),
            status,
        );
        out.insert(p.key, p.entry);
    }
    out
}

fn ms(field: &str, value: &str, problems: &mut Problems) -> u64 {
    match duration::parse(value) {
        Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Err(e) => {
            problems.invalid(format!("{field}: {e}"));
            0
        }
    }
}

fn compile_one<'a>(
    server: &'a McpServer,
    gateways: &BTreeMap<ObjectKey, GatewayEntry>,
    ns_labels: &BTreeMap<&str, &BTreeMap<String, String>>,
    secrets: &Secrets<'_>,
) -> Pending<'a> {
    let key = key_of(server);
    let spec = &server.spec;
    let ns = key.namespace.as_str();
    let mut problems = Problems::default();

    let set = [
        spec.url.is_some(),
        spec.service.is_some(),
        spec.workload.is_some(),
    ];
    let mut upstream = None;
    let mut transport = spec.transport.unwrap_or_default();
    if set.iter().filter(|b| **b).count() != 1 {
        problems.invalid("spec: set exactly one of url, service or workload");
    } else if let Some(url) = &spec.url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            problems.invalid(format!(
                "spec.url: {url:?} must start with https:// or http://"
            ));
        }
        upstream = Some(Upstream::Url { url: url.clone() });
    } else if let Some(svc) = &spec.service {
        if !svc.path.starts_with('/') {
            problems.invalid("spec.service.path: must start with '/'");
        }
        let scheme = if svc.https { "https" } else { "http" };
        upstream = Some(Upstream::Url {
            url: format!("{scheme}://{}.{ns}.svc:{}{}", svc.name, svc.port, svc.path),
        });
    } else if let Some(w) = &spec.workload {
        match w.transport {
            WorkloadTransport::StreamableHttp => match w.port {
                Some(port) => {
                    upstream = Some(Upstream::Url {
                        url: format!("http://127.0.0.1:{port}{}", w.path),
                    })
                }
                None => problems.invalid("spec.workload.port: required unless transport is Stdio"),
            },
            WorkloadTransport::Stdio => {
                transport = Transport::Stdio;
                if w.command.is_empty() {
                    problems.invalid(
                        "spec.workload.command: required for transport Stdio (the sidecar starts this command)",
                    );
                }
                upstream = Some(Upstream::Stdio {
                    command: w.command.iter().chain(&w.args).cloned().collect(),
                });
            }
        }
    }
    if spec.workload.is_none() && transport == Transport::Stdio {
        problems.invalid("spec.transport: Stdio is only possible for a workload");
    }

    let path = spec
        .path
        .clone()
        .unwrap_or_else(|| format!("/mcp/{}", key.name));
    if !path.starts_with('/')
        || path.len() < 2
        || path.ends_with('/')
        || path.contains(['?', '#', ' '])
    {
        problems.invalid(format!(
            "spec.path: {path:?} must start with '/', not end with '/', and contain no '?', '#' or spaces"
        ));
    } else if let Some(p) = RESERVED_PATH_PREFIXES.iter().find(|p| path.starts_with(*p)) {
        problems.invalid(format!(
            "spec.path: {path:?} is reserved by the gateway ({p})"
        ));
    }
    if let Some(prefix) = &spec.tool_prefix
        && (prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    {
        problems.invalid(format!(
            "spec.toolPrefix: {prefix:?} may contain only letters, digits, '_', '.' and '-'"
        ));
    }
    let connect = ms(
        "spec.timeouts.connect",
        &spec.timeouts.connect,
        &mut problems,
    );
    let request = ms(
        "spec.timeouts.request",
        &spec.timeouts.request,
        &mut problems,
    );
    let idle = ms(
        "spec.timeouts.streamIdle",
        &spec.timeouts.stream_idle,
        &mut problems,
    );

    let mut refs = Vec::new();
    let ca_bundle = spec
        .tls
        .as_ref()
        .and_then(|t| t.ca_bundle_secret_ref.as_ref())
        .map(|s| {
            let r = SecretRef::key(ns, &s.name, &s.key);
            secrets.check(&r, "spec.tls.caBundleSecretRef", &mut problems);
            refs.push(r.clone());
            r
        });

    let gw_ns = spec
        .gateway_ref
        .namespace
        .clone()
        .unwrap_or_else(|| ns.to_string());
    let gw_key = ObjectKey::new(&gw_ns, &spec.gateway_ref.name);
    match gateways.get(&gw_key) {
        None => problems.unresolved(
            "GatewayNotFound",
            format!("spec.gatewayRef: McpGateway {gw_key} not found"),
        ),
        Some(gw) if !gw.admits(&gw_ns, ns, ns_labels) => problems.unresolved(
            "RefNotPermitted",
            format!(
                "spec.gatewayRef: McpGateway {gw_key} does not admit McpServers from namespace {ns} (see its spec.allowedNamespaces)"
            ),
        ),
        Some(gw) if !gw.usable => problems.unresolved(
            "GatewayNotReady",
            format!("spec.gatewayRef: McpGateway {gw_key} is not ready (see its status)"),
        ),
        Some(_) => {}
    }

    let entry = match upstream {
        Some(upstream) if problems.is_clean() => Some(ServerEntry {
            gateway: gw_key,
            sidecar: spec.workload.is_some(),
            config: ServerConfig {
                key: key.clone(),
                path,
                upstream,
                transport: match transport {
                    Transport::StreamableHttp => "streamableHttp",
                    Transport::Sse => "sse",
                    Transport::Stdio => "stdio",
                }
                .to_string(),
                ca_bundle,
                server_name: spec.tls.as_ref().and_then(|t| t.server_name.clone()),
                connect_timeout_ms: connect,
                request_timeout_ms: request,
                stream_idle_timeout_ms: idle,
                tool_prefix: spec.tool_prefix.clone(),
            },
            secrets: refs,
            public_url: spec.workload.as_ref().and_then(|w| w.public_url.clone()),
        }),
        _ => None,
    };
    Pending {
        server,
        key,
        problems,
        entry,
    }
}
