//! The compiler: a set of custom resources in, one [`GatewayConfig`] per gateway (and per
//! sidecar) plus a status for every object out. Synchronous, deterministic, no I/O.
//!
//! A broken object never breaks the others: it gets `Accepted=False` or `ResolvedRefs=False`
//! with a message naming the field, and everything that does not depend on it still compiles.
//! A broken `Deny` policy keeps denying (fail closed) rather than silently opening access.

mod gateways;
mod labels;
mod policies;
mod providers;
mod servers;
mod snapshot;
mod status;

pub use providers::MAX_PER_USER_SECRETS;
pub use status::{ObjectStatus, Problems};

use crate::config::{GatewayConfig, GatewayId};
use crate::refs::{Kind, ObjectKey, ObjectRef, SecretRef};
use crate::{AccessPolicy, CredentialProvider, McpGateway, McpServer, TrustProvider};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// A Secret as the compiler sees it: its name and the keys it holds, never the values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretMeta {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Keys present in `data`/`stringData`.
    pub keys: BTreeSet<String>,
}

/// A Namespace as the compiler sees it (for `allowedNamespaces` selectors).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceMeta {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Everything the compiler reads.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    /// McpGateways.
    pub gateways: Vec<McpGateway>,
    /// McpServers.
    pub servers: Vec<McpServer>,
    /// AccessPolicies.
    pub policies: Vec<AccessPolicy>,
    /// TrustProviders.
    pub trust_providers: Vec<TrustProvider>,
    /// CredentialProviders.
    pub credential_providers: Vec<CredentialProvider>,
    /// Secrets (names and keys only).
    pub secrets: Vec<SecretMeta>,
    /// Namespaces (names and labels).
    pub namespaces: Vec<NamespaceMeta>,
}

/// What the compiler produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    /// One snapshot per gateway and per sidecar that could be compiled.
    pub gateways: BTreeMap<GatewayId, GatewayConfig>,
    /// A status for every input object.
    pub statuses: BTreeMap<ObjectRef, ObjectStatus>,
}

impl Compiled {
    /// Objects whose `Accepted` or `ResolvedRefs` condition is not `True`, with the failing
    /// conditions.
    pub fn problems(
        &self,
    ) -> impl Iterator<Item = (&ObjectRef, &crate::conditions::ConditionStatus)> {
        self.statuses.iter().flat_map(|(r, s)| {
            s.conditions
                .iter()
                .filter(|c| !c.is_true())
                .map(move |c| (r, c))
        })
    }

    /// Whether every object compiled cleanly.
    pub fn is_clean(&self) -> bool {
        self.problems().next().is_none()
    }
}

pub(crate) fn key_of<K: ResourceExt>(obj: &K) -> ObjectKey {
    ObjectKey::new(
        obj.namespace().unwrap_or_else(|| "default".to_string()),
        obj.name_any(),
    )
}

pub(crate) struct Secrets<'a> {
    by_key: BTreeMap<(&'a str, &'a str), &'a SecretMeta>,
}

impl<'a> Secrets<'a> {
    fn new(list: &'a [SecretMeta]) -> Self {
        Self {
            by_key: list
                .iter()
                .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
                .collect(),
        }
    }

    /// The Secrets of `namespace`, by name.
    pub(crate) fn in_namespace<'n>(
        &self,
        namespace: &'n str,
    ) -> impl Iterator<Item = &'a SecretMeta> + use<'a, 'n, '_> {
        self.by_key
            .values()
            .copied()
            .filter(move |s| s.namespace == namespace)
    }

    /// Resolve a reference, recording a problem at `field` when it dangles.
    pub(crate) fn check(&self, r: &SecretRef, field: &str, problems: &mut Problems) {
        match self.by_key.get(&(r.namespace.as_str(), r.name.as_str())) {
            None => problems.unresolved(
                "SecretNotFound",
                format!("{field}: Secret {}/{} not found", r.namespace, r.name),
            ),
            Some(meta) => {
                if let Some(k) = &r.key
                    && !meta.keys.contains(k)
                {
                    problems.unresolved(
                        "SecretKeyNotFound",
                        format!(
                            "{field}: Secret {}/{} has no key {k:?} (it has: {})",
                            r.namespace,
                            r.name,
                            meta.keys.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// Compile a set of resources.
pub fn compile(res: &Resources) -> Compiled {
    let secrets = Secrets::new(&res.secrets);
    let mut statuses = BTreeMap::new();

    let trust = providers::compile_trust_providers(&res.trust_providers, &secrets, &mut statuses);
    let gateways = gateways::compile_gateways(&res.gateways, &trust, &secrets, &mut statuses);
    let servers = servers::compile_servers(
        &res.servers,
        &gateways,
        &res.namespaces,
        &secrets,
        &mut statuses,
    );
    // After the servers: `oauth2AuthorizationCode.discovery` reads its McpServer's upstream URL.
    let creds = providers::compile_credential_providers(
        &res.credential_providers,
        &servers,
        &secrets,
        &mut statuses,
    );
    let policies =
        policies::compile_policies(&res.policies, &servers, &creds, &gateways, &mut statuses);

    let snapshots = snapshot::assemble(
        &gateways,
        &servers,
        &policies,
        &creds,
        &trust,
        &mut statuses,
    );
    let _ = Kind::ALL;
    Compiled {
        gateways: snapshots,
        statuses,
    }
}

#[cfg(test)]
mod tests;
