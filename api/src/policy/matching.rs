//! A policy compiled for one server: subject matching, target filters and the `when` condition.

use super::condition::Condition;
use super::{Operation, Request};
use crate::access_policy::Action;
use crate::config::{FilterConfig, PolicyConfig, SubjectConfig, TargetConfig};
use crate::glob::PatternList;
use crate::identity::{AgentIdentity, AgentKind, UserIdentity};
use crate::refs::ObjectKey;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A policy, restricted to the targets of one server.
#[derive(Debug)]
pub(super) struct CompiledPolicy {
    pub key: ObjectKey,
    /// `key` rendered `namespace/name` once, for every decision's audit record.
    pub name: String,
    pub action: Action,
    /// Empty only for fail-closed policies whose subjects could not be compiled: everyone.
    pub subjects: Vec<CompiledSubject>,
    pub targets: Vec<CompiledTarget>,
    pub when: Option<Arc<Condition>>,
    pub fail_closed: Option<String>,
}

/// How a request matched a policy: what the policy's reason names.
#[derive(Debug)]
pub(super) enum Match {
    /// `subjects[subject]` (`None`: the policy has no subjects) and `targets[target]` matched;
    /// `when_holds`: the policy has a `when` condition, and it held.
    Rule {
        subject: Option<usize>,
        target: usize,
        when_holds: bool,
    },
    /// The policy is invalid and denies whatever it covers until fixed.
    FailClosed,
    /// A deny policy's `when` condition failed to evaluate (the error): it denies.
    WhenFailed(String),
}

#[derive(Clone, Debug)]
pub(super) struct CompiledSubject {
    pub users: Option<CompiledUsers>,
    pub agents: Option<CompiledAgents>,
}

#[derive(Clone, Debug)]
pub(super) struct CompiledUsers {
    pub trust_provider: Option<String>,
    pub ids: PatternList,
    pub emails: PatternList,
    pub groups: Vec<String>,
    pub claims: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub(super) struct CompiledAgents {
    pub trust_provider: Option<String>,
    pub ids: BTreeMap<AgentKind, PatternList>,
}

#[derive(Debug)]
pub(super) struct CompiledTarget {
    /// The credential provider, and its key rendered `namespace/name`.
    pub credential_provider: Option<(ObjectKey, String)>,
    pub tools: Option<CompiledFilter>,
    pub resources: Option<CompiledFilter>,
    pub prompts: Option<CompiledFilter>,
}

#[derive(Debug)]
pub(super) struct CompiledFilter {
    pub allow: Option<PatternList>,
    pub deny: PatternList,
}

fn patterns(list: &[String], what: &str) -> Result<PatternList, String> {
    PatternList::new(list).map_err(|e| format!("{what}: {}", e.join("; ")))
}

impl CompiledFilter {
    fn compile(f: &FilterConfig, what: &str) -> Result<Self, String> {
        let allow = match &f.allow {
            Some(list) if list.is_empty() => {
                return Err(format!(
                    "{what}.allow is empty, which allows nothing: omit it to allow every name not denied"
                ));
            }
            Some(list) => Some(patterns(list, &format!("{what}.allow"))?),
            None => None,
        };
        Ok(Self {
            allow,
            deny: patterns(&f.deny, &format!("{what}.deny"))?,
        })
    }

    /// Whether a name passes: allowed (or no allow list) and not denied.
    fn passes(&self, name: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.matches(name)) && !self.deny.matches(name)
    }
}

impl CompiledPolicy {
    /// Compile a policy into one entry per server it targets.
    pub fn compile(p: &PolicyConfig) -> Result<Vec<(ObjectKey, CompiledPolicy)>, String> {
        let subjects = p
            .subjects
            .iter()
            .enumerate()
            .map(|(i, s)| compile_subject(s).map_err(|e| format!("subjects[{i}].{e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if subjects.is_empty() && p.fail_closed.is_none() {
            return Err("subjects is empty".to_string());
        }
        let when = match &p.when {
            Some(expr) if p.fail_closed.is_none() => Some(Arc::new(
                Condition::compile(expr).map_err(|e| format!("when: {e}"))?,
            )),
            _ => None,
        };
        let mut per_server: BTreeMap<ObjectKey, Vec<CompiledTarget>> = BTreeMap::new();
        for (i, t) in p.targets.iter().enumerate() {
            let target = compile_target(t).map_err(|e| format!("targets[{i}].{e}"))?;
            per_server.entry(t.server.clone()).or_default().push(target);
        }
        Ok(per_server
            .into_iter()
            .map(|(server, targets)| {
                (
                    server,
                    CompiledPolicy {
                        key: p.key.clone(),
                        name: p.key.render(),
                        action: p.action,
                        subjects: subjects.clone(),
                        targets,
                        when: when.clone(),
                        fail_closed: p.fail_closed.clone(),
                    },
                )
            })
            .collect())
    }

    /// Whether `req` matches: how, or `None`. Cheap: the reason is rendered only when wanted
    /// ([`Self::reason`]), so filtering a list decides each item without building one.
    pub fn matches(&self, req: &Request<'_>) -> Option<Match> {
        let subject = if self.subjects.is_empty() {
            None
        } else {
            Some(
                self.subjects
                    .iter()
                    .position(|s| s.matches(req.user, req.agent))?,
            )
        };
        let target = self
            .targets
            .iter()
            .position(|t| t.covers(self.action, &req.operation))?;
        if self.fail_closed.is_some() {
            return Some(Match::FailClosed);
        }
        let when_holds = match &self.when {
            None => false,
            Some(cond) => match (cond.evaluate(req), self.action) {
                (Ok(true), _) => true,
                (Ok(false), _) | (Err(_), Action::Allow) => return None,
                (Err(e), Action::Deny) => return Some(Match::WhenFailed(e)),
            },
        };
        Some(Match::Rule {
            subject,
            target,
            when_holds,
        })
    }

    /// Why this policy decided `req`, which it matched as `m`.
    pub fn reason(&self, req: &Request<'_>, m: &Match) -> String {
        let verb = match self.action {
            Action::Allow => "allowed",
            Action::Deny => "denied",
        };
        let (subject, target, when_holds) = match m {
            Match::FailClosed => {
                return format!(
                    "{verb} by AccessPolicy {}, which is invalid and denies fail-closed until fixed: {}",
                    self.key,
                    self.fail_closed.as_deref().unwrap_or_default()
                );
            }
            Match::WhenFailed(e) => {
                return format!(
                    "denied by AccessPolicy {}: its `when` condition failed to evaluate ({e}), which denies fail-closed",
                    self.key
                );
            }
            Match::Rule {
                subject,
                target,
                when_holds,
            } => (*subject, *target, *when_holds),
        };
        // Built piece by piece: this runs on every request (format! costs several times more).
        let mut reason = String::with_capacity(160);
        reason.push_str(verb);
        reason.push_str(" by AccessPolicy ");
        reason.push_str(&self.key.namespace);
        reason.push('/');
        reason.push_str(&self.key.name);
        reason.push_str(": ");
        super::push_principal(&mut reason, req.user, req.agent);
        reason.push_str(" matched subjects[");
        push_index(&mut reason, subject.unwrap_or(0));
        reason.push_str("], ");
        push_operation(&mut reason, &req.operation);
        reason.push_str(" matched targets[");
        push_index(&mut reason, target);
        reason.push(']');
        if when_holds {
            reason.push_str(", and its `when` condition holds");
        }
        reason
    }

    /// The credential provider of the first target covering the operation, and its name.
    pub fn credential_for(&self, req: &Request<'_>) -> Option<(&ObjectKey, &str)> {
        self.targets
            .iter()
            .find(|t| t.covers(self.action, &req.operation))
            .and_then(|t| t.credential_provider.as_ref())
            .map(|(key, name)| (key, name.as_str()))
    }
}

fn compile_subject(s: &SubjectConfig) -> Result<CompiledSubject, String> {
    if s.users.is_none() && s.agents.is_none() {
        return Err("users/agents: a subject needs users, agents, or both".to_string());
    }
    let users = match &s.users {
        Some(u) => Some(CompiledUsers {
            trust_provider: u.trust_provider.clone(),
            ids: patterns(&u.ids, "users.ids")?,
            emails: patterns(&u.emails, "users.emails")?,
            groups: u.groups.clone(),
            claims: u.claims.clone(),
        }),
        None => None,
    };
    let agents = match &s.agents {
        Some(a) => {
            let mut ids = BTreeMap::new();
            for (kind, list) in &a.ids {
                ids.insert(*kind, patterns(list, &format!("agents.{}", kind.as_str()))?);
            }
            Some(CompiledAgents {
                trust_provider: a.trust_provider.clone(),
                ids,
            })
        }
        None => None,
    };
    Ok(CompiledSubject { users, agents })
}

fn compile_target(t: &TargetConfig) -> Result<CompiledTarget, String> {
    let filter = |f: &Option<FilterConfig>, what: &str| {
        f.as_ref()
            .map(|f| CompiledFilter::compile(f, what))
            .transpose()
    };
    Ok(CompiledTarget {
        credential_provider: t
            .credential_provider
            .as_ref()
            .map(|k| (k.clone(), k.render())),
        tools: filter(&t.tools, "tools")?,
        resources: filter(&t.resources, "resources")?,
        prompts: filter(&t.prompts, "prompts")?,
    })
}

impl CompiledSubject {
    fn matches(&self, user: Option<&UserIdentity>, agent: Option<&AgentIdentity>) -> bool {
        let user_ok = match (&self.users, user) {
            (Some(sel), Some(u)) => sel.matches(u),
            (Some(_), None) => false,
            // No user selector: this entry is for agents acting alone.
            (None, Some(_)) => false,
            (None, None) => true,
        };
        let agent_ok = match (&self.agents, agent) {
            (Some(sel), Some(a)) => sel.matches(a),
            (Some(_), None) => false,
            (None, _) => true,
        };
        user_ok && agent_ok
    }
}

impl CompiledUsers {
    fn matches(&self, u: &UserIdentity) -> bool {
        if self
            .trust_provider
            .as_ref()
            .is_some_and(|tp| *tp != u.provider)
        {
            return false;
        }
        if !self.ids.is_empty() && !self.ids.matches(&u.id) {
            return false;
        }
        if !self.emails.is_empty() && !u.email.as_deref().is_some_and(|e| self.emails.matches(e)) {
            return false;
        }
        if !self.groups.is_empty() && !self.groups.iter().any(|g| u.groups.contains(g)) {
            return false;
        }
        self.claims.iter().all(|(k, want)| match u.claims.get(k) {
            Some(serde_json::Value::String(s)) => s == want,
            Some(serde_json::Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(want)),
            Some(serde_json::Value::Bool(b)) => b.to_string() == *want,
            Some(serde_json::Value::Number(n)) => n.to_string() == *want,
            _ => false,
        })
    }
}

impl CompiledAgents {
    fn matches(&self, a: &AgentIdentity) -> bool {
        if self
            .trust_provider
            .as_ref()
            .is_some_and(|tp| *tp != a.provider)
        {
            return false;
        }
        if self.ids.values().all(|l| l.is_empty()) {
            // `agents: {trustProvider: x}` alone: any agent from that provider.
            return true;
        }
        self.ids.get(&a.kind).is_some_and(|l| l.matches(&a.id))
    }
}

impl CompiledTarget {
    fn unfiltered(&self) -> bool {
        self.tools.is_none() && self.resources.is_none() && self.prompts.is_none()
    }

    /// Whether this target covers the operation. For Allow, an omitted filter covers every name;
    /// for Deny, a target covers only what its filters select, or everything when it has none.
    fn covers(&self, action: Action, op: &Operation<'_>) -> bool {
        let by = |filter: &Option<CompiledFilter>, name: &str| match (filter, action) {
            (Some(f), _) => f.passes(name),
            (None, Action::Allow) => true,
            (None, Action::Deny) => self.unfiltered(),
        };
        match op {
            Operation::Server { .. } => action == Action::Allow || self.unfiltered(),
            Operation::Tool { name } => by(&self.tools, name),
            Operation::Resource { uri, .. } => by(&self.resources, uri),
            Operation::Prompt { name } => by(&self.prompts, name),
        }
    }
}

fn push_index(out: &mut String, i: usize) {
    if i < 10 {
        out.push(char::from(b'0' + i as u8));
    } else {
        out.push_str(&i.to_string());
    }
}

/// `op` as its `Display` writes it.
fn push_operation(out: &mut String, op: &super::Operation<'_>) {
    use super::Operation;
    match op {
        Operation::Server { method } => out.push_str(method),
        Operation::Tool { name } => {
            out.push_str("tool ");
            super::push_quoted(out, name);
        }
        Operation::Resource { uri, .. } => {
            out.push_str("resource ");
            super::push_quoted(out, uri);
        }
        Operation::Prompt { name } => {
            out.push_str("prompt ");
            super::push_quoted(out, name);
        }
    }
}
