//! Per-server policy index: policies are found by the literal user ids, groups, emails and agent
//! ids their subjects name; only policies with wildcard subjects are checked for every request.

use super::Request;
use super::matching::{CompiledPolicy, CompiledSubject};
use crate::access_policy::Action;
use crate::identity::AgentKind;
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum IndexKey {
    UserId(String),
    Group(String),
    Email(String),
    Agent(AgentKind, String),
}

/// Policies of one server, for one action, indexed by subject keys.
#[derive(Debug, Default)]
struct Bucket {
    by_key: HashMap<IndexKey, Vec<u32>>,
    /// Policies that cannot be indexed (wildcards, `users: {}`, fail-closed): always candidates.
    always: Vec<u32>,
}

/// Policies of one server.
#[derive(Debug)]
pub(super) struct ServerPolicies {
    /// In `namespace/name` order; indices below point here.
    policies: Vec<CompiledPolicy>,
    deny: Bucket,
    allow: Bucket,
}

/// Candidate policies for one request, each list in `namespace/name` order.
pub(super) struct Candidates {
    pub deny: Vec<u32>,
    pub allow: Vec<u32>,
}

impl ServerPolicies {
    /// Index policies given in `namespace/name` order.
    pub fn new(policies: Vec<CompiledPolicy>) -> Self {
        let mut deny = Bucket::default();
        let mut allow = Bucket::default();
        for (i, p) in policies.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 4 billion policies");
            let bucket = match p.action {
                Action::Allow => &mut allow,
                Action::Deny => &mut deny,
            };
            match policy_keys(p) {
                Some(keys) => {
                    for k in keys {
                        let list = bucket.by_key.entry(k).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                None => bucket.always.push(i),
            }
        }
        Self {
            policies,
            deny,
            allow,
        }
    }

    pub fn policy(&self, i: u32) -> &CompiledPolicy {
        &self.policies[i as usize]
    }

    pub fn candidates(&self, req: &Request<'_>) -> Candidates {
        let keys = request_keys(req);
        Candidates {
            deny: self.deny.lookup(&keys),
            allow: self.allow.lookup(&keys),
        }
    }
}

impl Bucket {
    fn lookup(&self, keys: &[IndexKey]) -> Vec<u32> {
        let mut out = self.always.clone();
        for k in keys {
            if let Some(list) = self.by_key.get(k) {
                out.extend_from_slice(list);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn request_keys(req: &Request<'_>) -> Vec<IndexKey> {
    let mut keys = Vec::new();
    if let Some(u) = req.user {
        keys.push(IndexKey::UserId(u.id.clone()));
        keys.extend(u.groups.iter().cloned().map(IndexKey::Group));
        if let Some(e) = &u.email {
            keys.push(IndexKey::Email(e.clone()));
        }
    }
    if let Some(a) = req.agent {
        keys.push(IndexKey::Agent(a.kind, a.id.clone()));
    }
    keys
}

/// The keys under which a policy is found, or `None` when some subject entry can match requests
/// that carry none of its literal keys.
fn policy_keys(p: &CompiledPolicy) -> Option<Vec<IndexKey>> {
    if p.subjects.is_empty() {
        return None;
    }
    let mut keys = Vec::new();
    for s in &p.subjects {
        keys.extend(subject_keys(s)?);
    }
    Some(keys)
}

/// Every request a subject matches carries one of the returned keys.
fn subject_keys(s: &CompiledSubject) -> Option<Vec<IndexKey>> {
    fn literals(list: &crate::glob::PatternList) -> Option<Vec<String>> {
        if list.is_empty() {
            return None;
        }
        list.0
            .iter()
            .map(|p| p.literal().map(str::to_string))
            .collect()
    }
    match &s.users {
        Some(u) => {
            if let Some(ids) = literals(&u.ids) {
                return Some(ids.into_iter().map(IndexKey::UserId).collect());
            }
            if !u.groups.is_empty() {
                return Some(u.groups.iter().cloned().map(IndexKey::Group).collect());
            }
            if let Some(emails) = literals(&u.emails) {
                return Some(emails.into_iter().map(IndexKey::Email).collect());
            }
            None
        }
        None => {
            // Agents acting alone: indexable when every listed agent id is literal.
            let agents = s.agents.as_ref()?;
            let mut keys = Vec::new();
            for (kind, list) in &agents.ids {
                if list.is_empty() {
                    continue;
                }
                for id in literals(list)? {
                    keys.push(IndexKey::Agent(*kind, id));
                }
            }
            (!keys.is_empty()).then_some(keys)
        }
    }
}
