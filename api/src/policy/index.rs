//! Per-server policy index: policies are found by the literal user ids, groups, emails, email
//! domains (`*@example.com`) and agent ids their subjects name; only policies with other
//! wildcard subjects are checked for every request. Lookups borrow the request's strings: no
//! allocation but the two candidate lists.

use super::Request;
use super::matching::{CompiledPolicy, CompiledSubject};
use crate::access_policy::Action;
use crate::identity::AgentKind;
// foldhash: seeded per process, and several times faster than SipHash on short keys; these
// maps are looked up on every request.
use foldhash::HashMap;

/// The policies filed under one key, by action.
#[derive(Debug, Default)]
struct Lists {
    deny: Vec<u32>,
    allow: Vec<u32>,
}

impl Lists {
    fn push(&mut self, action: Action, i: u32) {
        let list = match action {
            Action::Allow => &mut self.allow,
            Action::Deny => &mut self.deny,
        };
        if list.last() != Some(&i) {
            list.push(i);
        }
    }
}

type Postings = HashMap<String, Lists>;

/// Policies of one server indexed by subject keys. Deny and allow lists share their keys, so a
/// request looks each of its keys up once for both.
#[derive(Debug, Default)]
struct Index {
    user_ids: Postings,
    groups: Postings,
    emails: Postings,
    email_domains: Postings,
    agents: HashMap<AgentKind, Postings>,
    /// Policies that cannot be indexed (wildcards, `users: {}`, fail-closed): always candidates.
    always: Lists,
}

/// Policies of one server.
#[derive(Debug)]
pub(super) struct ServerPolicies {
    /// In `namespace/name` order; indices below point here.
    policies: Vec<CompiledPolicy>,
    index: Index,
}

/// Candidate policies for one request, each list in `namespace/name` order.
pub(super) struct Candidates {
    pub deny: Vec<u32>,
    pub allow: Vec<u32>,
}

/// Where a subject entry is filed.
enum Key {
    UserId(String),
    Group(String),
    Email(String),
    EmailDomain(String),
    Agent(AgentKind, String),
}

impl ServerPolicies {
    /// Index policies given in `namespace/name` order.
    pub fn new(policies: Vec<CompiledPolicy>) -> Self {
        let mut index = Index::default();
        for (i, p) in policies.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 4 billion policies");
            match policy_keys(p) {
                Some(keys) => keys.into_iter().for_each(|k| index.insert(k, p.action, i)),
                None => index.always.push(p.action, i),
            }
        }
        Self { policies, index }
    }

    pub fn policy(&self, i: u32) -> &CompiledPolicy {
        &self.policies[i as usize]
    }

    pub fn candidates(&self, req: &Request<'_>) -> Candidates {
        self.index.lookup(req)
    }
}

impl Index {
    fn insert(&mut self, key: Key, action: Action, i: u32) {
        let (map, k) = match key {
            Key::UserId(k) => (&mut self.user_ids, k),
            Key::Group(k) => (&mut self.groups, k),
            Key::Email(k) => (&mut self.emails, k),
            Key::EmailDomain(k) => (&mut self.email_domains, k),
            Key::Agent(kind, k) => (self.agents.entry(kind).or_default(), k),
        };
        map.entry(k).or_default().push(action, i);
    }

    fn lookup(&self, req: &Request<'_>) -> Candidates {
        // Room for the usual few matches: one allocation per list, no growth.
        let mut deny = Vec::with_capacity(self.always.deny.len() + 4);
        let mut allow = Vec::with_capacity(self.always.allow.len() + 4);
        deny.extend_from_slice(&self.always.deny);
        allow.extend_from_slice(&self.always.allow);
        let mut add = |map: &Postings, k: &str| {
            if let Some(lists) = map.get(k) {
                deny.extend_from_slice(&lists.deny);
                allow.extend_from_slice(&lists.allow);
            }
        };
        if let Some(u) = req.user {
            add(&self.user_ids, &u.id);
            for g in &u.groups {
                add(&self.groups, g);
            }
            if let Some(e) = &u.email {
                add(&self.emails, e);
                if let Some((_, domain)) = e.rsplit_once('@') {
                    add(&self.email_domains, domain);
                }
            }
        }
        if let Some(a) = req.agent
            && let Some(map) = self.agents.get(&a.kind)
        {
            add(map, &a.id);
        }
        for list in [&mut deny, &mut allow] {
            list.sort_unstable();
            list.dedup();
        }
        Candidates { deny, allow }
    }
}

/// The keys under which a policy is found, or `None` when some subject entry can match requests
/// that carry none of its keys.
fn policy_keys(p: &CompiledPolicy) -> Option<Vec<Key>> {
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
fn subject_keys(s: &CompiledSubject) -> Option<Vec<Key>> {
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
                return Some(ids.into_iter().map(Key::UserId).collect());
            }
            if !u.groups.is_empty() {
                return Some(u.groups.iter().cloned().map(Key::Group).collect());
            }
            if u.emails.is_empty() {
                return None;
            }
            u.emails
                .0
                .iter()
                .map(|p| match (p.literal(), p.email_domain()) {
                    (Some(e), _) => Some(Key::Email(e.to_string())),
                    (None, Some(d)) => Some(Key::EmailDomain(d.to_string())),
                    (None, None) => None,
                })
                .collect()
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
                    keys.push(Key::Agent(*kind, id));
                }
            }
            (!keys.is_empty()).then_some(keys)
        }
    }
}
