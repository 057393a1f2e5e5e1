//! AccessPolicies. Validation goes through the policy engine's own compiler, so what the
//! compiler accepts is exactly what gateways can enforce.

use super::gateways::GatewayEntry;
use super::providers::{Compiled as ProviderMap, CredentialEntry};
use super::servers::Servers;
use super::status::ObjectStatus;
use super::{Problems, key_of};
use crate::AccessPolicy;
use crate::access_policy::{Action, NameFilter, Subject};
use crate::config::{
    AgentMatch, FilterConfig, PolicyConfig, SubjectConfig, TargetConfig, UserMatch,
};
use crate::identity::AgentKind;
use crate::policy::PolicySet;
use crate::refs::{Kind, ObjectKey, ObjectRef};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn compile_policies(
    list: &[AccessPolicy],
    servers: &Servers,
    creds: &ProviderMap<CredentialEntry>,
    gateways: &BTreeMap<ObjectKey, GatewayEntry>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> Vec<PolicyConfig> {
    let mut out = Vec::new();
    for ap in list {
        let key = key_of(ap);
        let (config, problems) = compile_one(&key, ap, servers, creds, gateways);
        statuses.insert(
            ObjectRef::new(Kind::AccessPolicy, &key.namespace, &key.name),
            problems.into_status(ap.metadata.generation, "AccessPolicy"),
        );
        out.extend(config);
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

fn filter(f: &Option<NameFilter>) -> Option<FilterConfig> {
    f.as_ref().map(|f| FilterConfig {
        allow: f.allow.clone(),
        deny: f.deny.clone(),
    })
}

/// `namespace/name` or `system:serviceaccount:namespace:name` → `namespace/name`.
fn service_account(s: &str) -> Result<String, String> {
    let normal = match s.strip_prefix("system:serviceaccount:") {
        Some(rest) => rest.replacen(':', "/", 1),
        None => s.to_string(),
    };
    match normal.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(normal),
        _ => Err(format!(
            "{s:?} is not a ServiceAccount; write namespace/name (globs allowed, e.g. agents/*)"
        )),
    }
}

fn subject(i: usize, s: &Subject, problems: &mut Problems) -> SubjectConfig {
    if s.users.is_none() && s.agents.is_none() {
        problems.invalid(format!(
            "spec.subjects[{i}]: needs users, agents, or both (users: {{}} matches every user)"
        ));
    }
    SubjectConfig {
        users: s.users.as_ref().map(|u| UserMatch {
            trust_provider: u.trust_provider.clone(),
            ids: u.ids.clone(),
            emails: u.emails.clone(),
            groups: u.groups.clone(),
            claims: u.claims.clone(),
        }),
        agents: s.agents.as_ref().map(|a| {
            let mut ids = BTreeMap::new();
            let mut put = |kind, list: Vec<String>| {
                if !list.is_empty() {
                    ids.insert(kind, list);
                }
            };
            put(AgentKind::ClientId, a.client_ids.clone());
            let sas = a
                .service_accounts
                .iter()
                .enumerate()
                .filter_map(|(j, sa)| match service_account(sa) {
                    Ok(sa) => Some(sa),
                    Err(e) => {
                        problems.invalid(format!(
                            "spec.subjects[{i}].agents.serviceAccounts[{j}]: {e}"
                        ));
                        None
                    }
                })
                .collect();
            put(AgentKind::ServiceAccount, sas);
            put(AgentKind::Spiffe, a.spiffe_ids.clone());
            put(AgentKind::Other, a.ids.clone());
            AgentMatch {
                trust_provider: a.trust_provider.clone(),
                ids,
            }
        }),
    }
}

fn compile_one(
    key: &ObjectKey,
    ap: &AccessPolicy,
    servers: &Servers,
    creds: &ProviderMap<CredentialEntry>,
    gateways: &BTreeMap<ObjectKey, GatewayEntry>,
) -> (Option<PolicyConfig>, Problems) {
    let spec = &ap.spec;
    let ns = &key.namespace;
    let mut problems = Problems::default();
    if spec.subjects.is_empty() {
        problems.invalid("spec.subjects: list at least one subject");
    }
    if spec.targets.is_empty() {
        problems.invalid("spec.targets: list at least one target");
    }
    let subjects: Vec<SubjectConfig> = spec
        .subjects
        .iter()
        .enumerate()
        .map(|(i, s)| subject(i, s, &mut problems))
        .collect();

    let mut all_targets = Vec::new();
    let mut resolved = Vec::new();
    for (i, t) in spec.targets.iter().enumerate() {
        if spec.action == Action::Deny && t.credential_provider.is_some() {
            problems.invalid(format!(
                "spec.targets[{i}].credentialProvider: a Deny policy grants nothing, so it cannot name a credential provider"
            ));
        }
        let server = ObjectKey::new(t.namespace.as_deref().unwrap_or(ns), &t.server);
        let target = TargetConfig {
            server: server.clone(),
            credential_provider: t
                .credential_provider
                .as_ref()
                .map(|c| ObjectKey::new(ns, c)),
            tools: filter(&t.tools),
            resources: filter(&t.resources),
            prompts: filter(&t.prompts),
        };
        all_targets.push(target.clone());
        let mut ok = true;
        if server.namespace != *ns {
            problems.unresolved(
                "RefNotPermitted",
                format!(
                    "spec.targets[{i}].namespace: an AccessPolicy in {ns} cannot grant access to McpServer {server}; policies only target servers in their own namespace"
                ),
            );
            ok = false;
        } else {
            match servers.get(&server) {
                None => {
                    problems.unresolved(
                        "ServerNotFound",
                        format!("spec.targets[{i}].server: McpServer {server} not found"),
                    );
                    ok = false;
                }
                Some(None) => {
                    problems.unresolved(
                        "ServerNotReady",
                        format!("spec.targets[{i}].server: McpServer {server} is not ready (see its status)"),
                    );
                    ok = false;
                }
                Some(Some(_)) => {}
            }
        }
        if let Some(cp) = &target.credential_provider {
            match creds.get(cp) {
                None => {
                    problems.unresolved(
                        "CredentialProviderNotFound",
                        format!("spec.targets[{i}].credentialProvider: CredentialProvider {cp} not found"),
                    );
                    ok = false;
                }
                Some(Err(_)) => {
                    problems.unresolved(
                        "CredentialProviderNotReady",
                        format!(
                            "spec.targets[{i}].credentialProvider: CredentialProvider {cp} is not ready (see its status)"
                        ),
                    );
                    ok = false;
                }
                Some(Ok(_)) => {}
            }
        }
        if ok {
            resolved.push(target);
        }
    }

    let raw = PolicyConfig {
        key: key.clone(),
        action: spec.action,
        subjects: subjects.clone(),
        targets: all_targets,
        when: spec.when.clone(),
        fail_closed: None,
    };
    if let Err(errors) = PolicySet::new(std::slice::from_ref(&raw)) {
        for e in errors {
            problems.invalid(format!("spec.{}", e.message));
        }
    }

    check_subject_trust_providers(spec, &resolved, servers, gateways, &mut problems);

    if resolved.is_empty() {
        return (None, problems);
    }
    if problems.is_valid() {
        let config = PolicyConfig {
            targets: resolved,
            ..raw
        };
        return (Some(config), problems);
    }
    if spec.action == Action::Allow {
        return (None, problems);
    }
    // An invalid Deny keeps denying everything on the servers it names, for the subjects it
    // names if those are valid, otherwise for everyone: a typo must never open access.
    let subjects_ok = PolicySet::new(&[PolicyConfig {
        key: key.clone(),
        action: Action::Deny,
        subjects: subjects.clone(),
        targets: vec![TargetConfig {
            server: resolved[0].server.clone(),
            credential_provider: None,
            tools: None,
            resources: None,
            prompts: None,
        }],
        when: None,
        fail_closed: None,
    }])
    .is_ok()
        && !subjects.is_empty();
    let servers_named: BTreeSet<ObjectKey> = resolved.iter().map(|t| t.server.clone()).collect();
    let config = PolicyConfig {
        key: key.clone(),
        action: Action::Deny,
        subjects: if subjects_ok { subjects } else { vec![] },
        targets: servers_named
            .into_iter()
            .map(|server| TargetConfig {
                server,
                credential_provider: None,
                tools: None,
                resources: None,
                prompts: None,
            })
            .collect(),
        when: None,
        fail_closed: Some(problems.invalid_message()),
    };
    (Some(config), problems)
}

/// A subject naming a trust provider that no gateway of its servers uses can never match: say so.
fn check_subject_trust_providers(
    spec: &crate::access_policy::AccessPolicySpec,
    resolved: &[TargetConfig],
    servers: &Servers,
    gateways: &BTreeMap<ObjectKey, GatewayEntry>,
    problems: &mut Problems,
) {
    let available: BTreeSet<&str> = resolved
        .iter()
        .filter_map(|t| servers.get(&t.server).and_then(|s| s.as_ref()))
        .filter_map(|s| gateways.get(&s.gateway))
        .flat_map(|g| g.trust_providers.iter().map(|tp| tp.name.as_str()))
        .collect();
    if resolved.is_empty() {
        return;
    }
    for (i, s) in spec.subjects.iter().enumerate() {
        let named = [
            (
                "users",
                s.users.as_ref().and_then(|u| u.trust_provider.as_deref()),
            ),
            (
                "agents",
                s.agents.as_ref().and_then(|a| a.trust_provider.as_deref()),
            ),
        ];
        for (field, name) in named {
            if let Some(name) = name
                && !available.contains(name)
            {
                problems.unresolved(
                        "TrustProviderNotFound",
                        format!(
                            "spec.subjects[{i}].{field}.trustProvider: no gateway serving this policy's servers uses a TrustProvider named {name:?}, so this subject can never match"
                        ),
                    );
            }
        }
    }
}
