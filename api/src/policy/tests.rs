//! Table tests for every rule of the policy engine.

use super::*;
use crate::config::{AgentMatch, FilterConfig, SubjectConfig, TargetConfig, UserMatch};
use crate::identity::AgentKind;
use chrono::TimeZone;
use std::collections::BTreeMap;

fn server(name: &str) -> ObjectKey {
    ObjectKey::new("team-a", name)
}

fn user(id: &str, groups: &[&str]) -> UserIdentity {
    UserIdentity {
        id: id.to_string(),
        email: Some(format!("{id}@example.com")),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        provider: "corp-oidc".to_string(),
        claims: BTreeMap::new(),
    }
}

fn agent(kind: AgentKind, id: &str) -> AgentIdentity {
    AgentIdentity {
        kind,
        id: id.to_string(),
        provider: "corp-oidc".to_string(),
    }
}

fn users(groups: &[&str]) -> SubjectConfig {
    SubjectConfig {
        users: Some(UserMatch {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }),
        agents: None,
    }
}

fn with_agents(mut s: SubjectConfig, kind: AgentKind, ids: &[&str]) -> SubjectConfig {
    let mut map = BTreeMap::new();
    map.insert(kind, ids.iter().map(|s| s.to_string()).collect());
    s.agents = Some(AgentMatch {
        trust_provider: None,
        ids: map,
    });
    s
}

fn agents_alone(kind: AgentKind, ids: &[&str]) -> SubjectConfig {
    with_agents(
        SubjectConfig {
            users: None,
            agents: None,
        },
        kind,
        ids,
    )
}

fn target(srv: &str) -> TargetConfig {
    TargetConfig {
        server: server(srv),
        credential_provider: None,
        tools: None,
        resources: None,
        prompts: None,
    }
}

fn tools(mut t: TargetConfig, allow: Option<&[&str]>, deny: &[&str]) -> TargetConfig {
    t.tools = Some(FilterConfig {
        allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    });
    t
}

fn mk_policy(
    name: &str,
    action: Action,
    subjects: Vec<SubjectConfig>,
    targets: Vec<TargetConfig>,
) -> PolicyConfig {
    PolicyConfig {
        key: ObjectKey::new("team-a", name),
        action,
        subjects,
        targets,
        when: None,
        fail_closed: None,
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap()
}

struct Ask<'a> {
    user: Option<&'a UserIdentity>,
    agent: Option<&'a AgentIdentity>,
    server: &'a str,
    op: Operation<'a>,
    args: Option<&'a serde_json::value::RawValue>,
}

/// Arguments as a client sends them: JSON text.
fn raw(v: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&v).unwrap()
}

/// `set.decide` — and, for every decision a test makes, a check that `set.allows` (what list
/// filtering asks, without the reason) agrees with it.
fn decide<'s>(set: &'s PolicySet, ask: Ask<'_>) -> Decision<'s> {
    let srv = server(ask.server);
    let req = Request {
        user: ask.user,
        agent: ask.agent,
        server: &srv,
        operation: ask.op,
        arguments: ask.args,
        now: now(),
    };
    let decision = set.decide(&req);
    assert_eq!(
        set.allows(&req),
        decision.is_allowed(),
        "allows() disagrees with decide(): {}",
        decision.reason
    );
    decision
}

fn tool<'a>(
    user: Option<&'a UserIdentity>,
    agent: Option<&'a AgentIdentity>,
    name: &'a str,
) -> Ask<'a> {
    Ask {
        user,
        agent,
        server: "github",
        op: Operation::Tool { name },
        args: None,
    }
}

#[test]
fn default_deny_names_no_policy_and_says_why() {
    let set = PolicySet::new(&[]).unwrap();
    let alice = user("alice", &["eng"]);
    let d = decide(&set, tool(Some(&alice), None, "create_issue"));
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.policy, None);
    assert!(
        d.reason
            .contains("no AccessPolicy allows user \"alice\" (agent not identified)"),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("create_issue"), "{}", d.reason);
}

#[test]
fn allow_by_group_names_the_policy_and_its_credential() {
    let mut t = target("github");
    t.credential_provider = Some(ObjectKey::new("team-a", "github-oauth"));
    let set = PolicySet::new(&[mk_policy(
        "eng",
        Action::Allow,
        vec![users(&["eng"])],
        vec![t],
    )])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let bob = user("bob", &["sales"]);
    let d = decide(&set, tool(Some(&alice), None, "create_issue"));
    assert!(d.is_allowed(), "{}", d.reason);
    assert_eq!(d.policy, Some(&ObjectKey::new("team-a", "eng")));
    assert_eq!(
        d.credential_provider,
        Some(&ObjectKey::new("team-a", "github-oauth"))
    );
    // The names the audit record shows, rendered when the policies were compiled.
    assert_eq!(d.policy_name, Some("team-a/eng"));
    assert_eq!(d.credential_provider_name, Some("team-a/github-oauth"));
    assert!(d.reason.contains("team-a/eng"), "{}", d.reason);
    assert!(!decide(&set, tool(Some(&bob), None, "create_issue")).is_allowed());
    // Another server is untouched by this policy.
    let other = Ask {
        server: "jira",
        ..tool(Some(&alice), None, "create_issue")
    };
    assert!(!decide(&set, other).is_allowed());
}

#[test]
fn deny_overrides_allow_whatever_the_name_order() {
    // The Deny sorts after the Allow and still wins.
    let set = PolicySet::new(&[
        mk_policy(
            "a-allow-eng",
            Action::Allow,
            vec![users(&["eng"])],
            vec![target("github")],
        ),
        mk_policy(
            "z-deny-admin",
            Action::Deny,
            vec![users(&["eng"])],
            vec![tools(target("github"), Some(&["delete_*"]), &[])],
        ),
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let d = decide(&set, tool(Some(&alice), None, "delete_repo"));
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.policy, Some(&ObjectKey::new("team-a", "z-deny-admin")));
    let d = decide(&set, tool(Some(&alice), None, "create_issue"));
    assert!(d.is_allowed());
    assert_eq!(d.policy, Some(&ObjectKey::new("team-a", "a-allow-eng")));
    // A Deny scoped to tools does not deny connecting to the server.
    let init = Ask {
        op: Operation::Server {
            method: "initialize",
        },
        ..tool(Some(&alice), None, "")
    };
    assert!(decide(&set, init).is_allowed());
}

#[test]
fn unfiltered_deny_blocks_the_whole_server_including_initialize() {
    let set = PolicySet::new(&[
        mk_policy(
            "allow",
            Action::Allow,
            vec![users(&["eng"])],
            vec![target("github")],
        ),
        mk_policy(
            "block-contractors",
            Action::Deny,
            vec![users(&["contractors"])],
            vec![target("github")],
        ),
    ])
    .unwrap();
    let carol = user("carol", &["eng", "contractors"]);
    for op in [
        Operation::Server {
            method: "initialize",
        },
        Operation::Tool { name: "x" },
        Operation::Resource {
            method: "resources/read",
            uri: "repo://a",
        },
        Operation::Prompt { name: "p" },
    ] {
        let d = decide(
            &set,
            Ask {
                user: Some(&carol),
                agent: None,
                server: "github",
                op,
                args: None,
            },
        );
        assert_eq!(d.effect, Effect::Deny, "{op}");
        assert_eq!(
            d.policy,
            Some(&ObjectKey::new("team-a", "block-contractors"))
        );
    }
}

#[test]
fn first_allow_by_name_order_decides_and_supplies_the_credential() {
    let mut b = target("github");
    b.credential_provider = Some(ObjectKey::new("team-a", "b-cred"));
    let mut a = target("github");
    a.credential_provider = Some(ObjectKey::new("team-a", "a-cred"));
    // Given out of order on purpose.
    let set = PolicySet::new(&[
        mk_policy("b", Action::Allow, vec![users(&["eng"])], vec![b]),
        mk_policy("a", Action::Allow, vec![users(&["eng"])], vec![a]),
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let d = decide(&set, tool(Some(&alice), None, "x"));
    assert_eq!(d.policy, Some(&ObjectKey::new("team-a", "a")));
    assert_eq!(
        d.credential_provider,
        Some(&ObjectKey::new("team-a", "a-cred"))
    );
    assert_eq!(d.credential_provider_name, Some("team-a/a-cred"));
}

#[test]
fn tool_globs_allow_and_deny_lists() {
    let set = PolicySet::new(&[mk_policy(
        "readers",
        Action::Allow,
        vec![users(&["eng"])],
        vec![tools(
            target("github"),
            Some(&["get_*", "list_*", "search_code"]),
            &["get_secret*"],
        )],
    )])
    .unwrap();
    let alice = user("alice", &["eng"]);
    for (name, allowed) in [
        ("get_issue", true),
        ("list_repos", true),
        ("search_code", true),
        ("search_code2", false),
        ("get_secret_scanning_alert", false),
        ("create_issue", false),
    ] {
        assert_eq!(
            decide(&set, tool(Some(&alice), None, name)).is_allowed(),
            allowed,
            "{name}"
        );
    }
    // Omitted resource and prompt filters mean "all" for an Allow.
    let res = Ask {
        op: Operation::Resource {
            method: "resources/read",
            uri: "repo://x/README.md",
        },
        ..tool(Some(&alice), None, "")
    };
    assert!(decide(&set, res).is_allowed());
}

#[test]
fn user_and_agent_in_one_decision() {
    // "Engineers, but only through Claude Code."
    let set = PolicySet::new(&[mk_policy(
        "eng-via-claude-code",
        Action::Allow,
        vec![with_agents(
            users(&["eng"]),
            AgentKind::ClientId,
            &["claude-code"],
        )],
        vec![target("github")],
    )])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let cc = agent(AgentKind::ClientId, "claude-code");
    let other = agent(AgentKind::ClientId, "random-agent");
    assert!(decide(&set, tool(Some(&alice), Some(&cc), "x")).is_allowed());
    assert!(!decide(&set, tool(Some(&alice), Some(&other), "x")).is_allowed());
    assert!(!decide(&set, tool(Some(&alice), None, "x")).is_allowed());
    // The agent alone, without the user, gets nothing.
    assert!(!decide(&set, tool(None, Some(&cc), "x")).is_allowed());
}

#[test]
fn agent_only_subjects_match_only_agents_acting_alone() {
    let set = PolicySet::new(&[mk_policy(
        "triage-bot",
        Action::Allow,
        vec![agents_alone(AgentKind::ServiceAccount, &["agents/triage"])],
        vec![tools(target("github"), Some(&["get_*"]), &[])],
    )])
    .unwrap();
    let bot = agent(AgentKind::ServiceAccount, "agents/triage");
    let alice = user("alice", &["eng"]);
    assert!(decide(&set, tool(None, Some(&bot), "get_issue")).is_allowed());
    assert!(!decide(&set, tool(None, Some(&bot), "create_issue")).is_allowed());
    // A user going through the same agent is not covered by an agents-alone subject.
    assert!(!decide(&set, tool(Some(&alice), Some(&bot), "get_issue")).is_allowed());
    // A different ServiceAccount is not covered.
    let other = agent(AgentKind::ServiceAccount, "agents/other");
    assert!(!decide(&set, tool(None, Some(&other), "get_issue")).is_allowed());
    // Same id, different kind: not covered.
    let spoof = agent(AgentKind::ClientId, "agents/triage");
    assert!(!decide(&set, tool(None, Some(&spoof), "get_issue")).is_allowed());
}

#[test]
fn any_user_selector_and_user_fields_are_anded() {
    let any = SubjectConfig {
        users: Some(UserMatch::default()),
        agents: None,
    };
    let strict = SubjectConfig {
        users: Some(UserMatch {
            emails: vec!["*@example.com".into()],
            groups: vec!["eng".into()],
            ..Default::default()
        }),
        agents: None,
    };
    let set = PolicySet::new(&[
        mk_policy("any-user", Action::Allow, vec![any], vec![target("docs")]),
        mk_policy(
            "strict",
            Action::Allow,
            vec![strict],
            vec![target("github")],
        ),
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let mut mallory = user("mallory", &["eng"]);
    mallory.email = Some("mallory@evil.test".into());
    let docs = |u| Ask {
        server: "docs",
        ..tool(Some(u), None, "x")
    };
    assert!(decide(&set, docs(&alice)).is_allowed());
    assert!(decide(&set, docs(&mallory)).is_allowed());
    assert!(
        !decide(
            &set,
            Ask {
                server: "docs",
                ..tool(None, None, "x")
            }
        )
        .is_allowed()
    );
    assert!(decide(&set, tool(Some(&alice), None, "x")).is_allowed());
    assert!(
        !decide(&set, tool(Some(&mallory), None, "x")).is_allowed(),
        "email must match too"
    );
}

#[test]
fn claims_and_trust_provider_constraints() {
    let sub = SubjectConfig {
        users: Some(UserMatch {
            trust_provider: Some("corp-oidc".into()),
            claims: [("department".to_string(), "platform".to_string())].into(),
            ..Default::default()
        }),
        agents: None,
    };
    let set = PolicySet::new(&[mk_policy(
        "platform",
        Action::Allow,
        vec![sub],
        vec![target("github")],
    )])
    .unwrap();
    let mut alice = user("alice", &[]);
    alice
        .claims
        .insert("department".into(), serde_json::json!(["platform", "sre"]));
    assert!(decide(&set, tool(Some(&alice), None, "x")).is_allowed());
    let mut other_idp = alice.clone();
    other_idp.provider = "partner-oidc".into();
    assert!(!decide(&set, tool(Some(&other_idp), None, "x")).is_allowed());
    let mut bob = user("bob", &[]);
    bob.claims
        .insert("department".into(), serde_json::json!("sales"));
    assert!(!decide(&set, tool(Some(&bob), None, "x")).is_allowed());
}

#[test]
fn cel_when_sees_user_agent_request_and_time() {
    let mut p = mk_policy(
        "small-repos-in-hours",
        Action::Allow,
        vec![users(&["eng"])],
        vec![target("github")],
    );
    p.when = Some(
        "request.tool == 'create_issue' && request.arguments.repo.startsWith('acme/') && now.getHours() >= 8 && 'eng' in user.groups && agent == null".into(),
    );
    let set = PolicySet::new(&[p]).unwrap();
    let alice = user("alice", &["eng"]);
    let ok = raw(serde_json::json!({"repo": "acme/web"}));
    let bad = raw(serde_json::json!({"repo": "other/web"}));
    let ask = |args| Ask {
        args: Some(args),
        ..tool(Some(&alice), None, "create_issue")
    };
    assert!(decide(&set, ask(&ok)).is_allowed());
    assert!(!decide(&set, ask(&bad)).is_allowed());
    // Missing argument → evaluation error → an Allow does not match.
    let none = raw(serde_json::json!({}));
    assert!(!decide(&set, ask(&none)).is_allowed());
}

#[test]
fn cel_errors_fail_closed_for_deny() {
    let mut deny = mk_policy(
        "deny-prod",
        Action::Deny,
        vec![users(&["eng"])],
        vec![target("github")],
    );
    deny.when = Some("request.arguments.env == 'prod'".into());
    let set = PolicySet::new(&[
        mk_policy(
            "allow",
            Action::Allow,
            vec![users(&["eng"])],
            vec![target("github")],
        ),
        deny,
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let dev = raw(serde_json::json!({"env": "dev"}));
    let prod = raw(serde_json::json!({"env": "prod"}));
    let missing = raw(serde_json::json!({}));
    let ask = |args| Ask {
        args: Some(args),
        ..tool(Some(&alice), None, "deploy")
    };
    assert!(decide(&set, ask(&dev)).is_allowed());
    assert_eq!(decide(&set, ask(&prod)).effect, Effect::Deny);
    let d = decide(&set, ask(&missing));
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.reason.contains("fail-closed"), "{}", d.reason);
}

#[test]
fn invalid_cel_and_globs_are_refused_with_the_field() {
    let mut p = mk_policy(
        "bad",
        Action::Allow,
        vec![users(&["eng"])],
        vec![target("github")],
    );
    p.when = Some("user.id ==".into());
    let err = PolicySet::new(&[p]).unwrap_err();
    assert!(err[0].message.starts_with("when:"), "{}", err[0].message);

    let mut p = mk_policy(
        "bad2",
        Action::Allow,
        vec![users(&["eng"])],
        vec![target("github")],
    );
    p.when = Some("tool == 'x'".into());
    let err = PolicySet::new(&[p]).unwrap_err();
    assert!(
        err[0].message.contains("unknown variable(s) tool"),
        "{}",
        err[0].message
    );

    // A function the evaluator does not have would fail every evaluation: refused up front.
    for (when, unknown) in [
        ("request.arguments.sql.matches('(?i)drop')", "matches"),
        (
            "request.tool.toLower() == 'x' && trim(request.tool) == 'x'",
            "toLower, trim",
        ),
    ] {
        let mut p = mk_policy(
            "bad-fn",
            Action::Allow,
            vec![users(&["eng"])],
            vec![target("github")],
        );
        p.when = Some(when.into());
        let err = PolicySet::new(&[p]).unwrap_err();
        assert!(
            err[0]
                .message
                .contains(&format!("calls unknown function(s) {unknown};")),
            "{}",
            err[0].message
        );
    }

    let p = mk_policy(
        "bad3",
        Action::Allow,
        vec![users(&["eng"])],
        vec![tools(target("github"), Some(&["get_["]), &[])],
    );
    let err = PolicySet::new(&[p]).unwrap_err();
    assert!(
        err[0].message.contains("targets[0].tools.allow"),
        "{}",
        err[0].message
    );

    let p = mk_policy(
        "bad4",
        Action::Allow,
        vec![users(&["eng"])],
        vec![tools(target("github"), Some(&[]), &[])],
    );
    let err = PolicySet::new(&[p]).unwrap_err();
    assert!(
        err[0].message.contains("allow is empty"),
        "{}",
        err[0].message
    );
}

#[test]
fn fail_closed_policies_deny_everyone_on_their_servers() {
    let mut broken = mk_policy("broken-deny", Action::Deny, vec![], vec![target("github")]);
    broken.fail_closed = Some("spec.when: invalid CEL".into());
    let set = PolicySet::new(&[
        mk_policy(
            "allow",
            Action::Allow,
            vec![users(&["eng"])],
            vec![target("github"), target("docs")],
        ),
        broken,
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let d = decide(&set, tool(Some(&alice), None, "x"));
    assert_eq!(d.effect, Effect::Deny);
    assert!(
        d.reason.contains("invalid and denies fail-closed"),
        "{}",
        d.reason
    );
    let docs = Ask {
        server: "docs",
        ..tool(Some(&alice), None, "x")
    };
    assert!(decide(&set, docs).is_allowed());
}

#[test]
fn list_filtering_uses_the_call_decision() {
    // What an agent sees in tools/list is decided tool by tool with the call's own question.
    let set = PolicySet::new(&[
        mk_policy(
            "eng",
            Action::Allow,
            vec![users(&["eng"])],
            vec![tools(target("github"), Some(&["get_*", "create_*"]), &[])],
        ),
        mk_policy(
            "no-create-for-bots",
            Action::Deny,
            vec![with_agents(users(&["eng"]), AgentKind::ClientId, &["bot"])],
            vec![tools(target("github"), Some(&["create_*"]), &[])],
        ),
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let bot = agent(AgentKind::ClientId, "bot");
    let listed = ["get_issue", "create_issue", "delete_repo"];
    let visible = |agent: Option<&AgentIdentity>| -> Vec<&str> {
        listed
            .iter()
            .copied()
            .filter(|name| decide(&set, tool(Some(&alice), agent, name)).is_allowed())
            .collect()
    };
    assert_eq!(visible(None), vec!["get_issue", "create_issue"]);
    assert_eq!(visible(Some(&bot)), vec!["get_issue"]);
    for name in listed {
        let shown = visible(Some(&bot)).contains(&name);
        assert_eq!(
            shown,
            decide(&set, tool(Some(&alice), Some(&bot), name)).is_allowed()
        );
    }
}

#[test]
fn index_finds_policies_by_id_group_email_and_agent_among_many() {
    let mut policies = Vec::new();
    for i in 0..2000 {
        policies.push(mk_policy(
            &format!("p{i:05}"),
            Action::Allow,
            vec![SubjectConfig {
                users: Some(UserMatch {
                    ids: vec![format!("user{i}")],
                    ..Default::default()
                }),
                agents: None,
            }],
            vec![tools(target("github"), Some(&[&format!("tool{i}")]), &[])],
        ));
    }
    policies.push(mk_policy(
        "glob-users",
        Action::Allow,
        vec![SubjectConfig {
            users: Some(UserMatch {
                ids: vec!["svc-*".into()],
                ..Default::default()
            }),
            agents: None,
        }],
        vec![tools(target("github"), Some(&["shared"]), &[])],
    ));
    policies.push(mk_policy(
        "bot",
        Action::Allow,
        vec![agents_alone(AgentKind::ClientId, &["ci-bot"])],
        vec![target("github")],
    ));
    let set = PolicySet::new(&policies).unwrap();
    let u1234 = user("user1234", &[]);
    let d = decide(&set, tool(Some(&u1234), None, "tool1234"));
    assert_eq!(d.policy, Some(&ObjectKey::new("team-a", "p01234")));
    assert!(!decide(&set, tool(Some(&u1234), None, "tool1235")).is_allowed());
    let svc = user("svc-backup", &[]);
    assert!(decide(&set, tool(Some(&svc), None, "shared")).is_allowed());
    let ci = agent(AgentKind::ClientId, "ci-bot");
    assert!(decide(&set, tool(None, Some(&ci), "anything")).is_allowed());

    // The index narrows candidates to the handful that can match.
    let srv = server("github");
    let sp = &set.servers[&srv];
    let req = Request {
        user: Some(&u1234),
        agent: None,
        server: &srv,
        operation: Operation::Tool { name: "tool1234" },
        arguments: None,
        now: now(),
    };
    let c = sp.candidates(&req);
    assert_eq!(
        c.allow.len(),
        2,
        "its own policy plus the unindexable glob policy"
    );
}

#[test]
fn policy_set_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
}

#[test]
fn reasons_quote_like_debug_formatting() {
    for s in [
        "alice",
        "alice@example.com",
        "with space",
        "quote\"inside",
        "back\\slash",
        "tab\there",
        "newline\n",
        "ünïcödé",
        "nul\0",
        "",
        "it's",
    ] {
        let mut out = String::new();
        super::push_quoted(&mut out, s);
        assert_eq!(out, format!("{s:?}"), "{s:?}");
    }
}

/// Every function `when` may call is one the evaluator has: calling it wrongly is an argument
/// error, never an undeclared reference (which would fail every evaluation of the policy).
#[test]
fn every_listed_function_is_one_the_evaluator_has() {
    use super::condition::{Condition, WHEN_FUNCTIONS};
    let alice = user("alice", &["eng"]);
    let srv = server("github");
    let req = Request {
        user: Some(&alice),
        agent: None,
        server: &srv,
        operation: Operation::Tool { name: "t" },
        arguments: None,
        now: now(),
    };
    for f in WHEN_FUNCTIONS {
        for expr in [format!("{f}()"), format!("user.id.{f}()")] {
            let c = Condition::compile(&expr).unwrap();
            if let Err(e) = c.evaluate(&req) {
                assert!(!e.contains("Undeclared reference"), "{expr}: {e}");
            }
        }
    }
    let c = Condition::compile("nope()").unwrap_err();
    assert!(c.contains("unknown function(s) nope"), "{c}");
}

#[test]
fn conditions_can_compare_case_insensitively() {
    let mut deny = mk_policy(
        "no-drop",
        Action::Deny,
        vec![users(&["eng"])],
        vec![target("github")],
    );
    deny.when = Some(
        "has(request.arguments.sql) && request.arguments.sql.lowerAscii().contains('drop ') && request.tool.upperAscii() == 'QUERY'".into(),
    );
    let set = PolicySet::new(&[
        mk_policy(
            "allow",
            Action::Allow,
            vec![users(&["eng"])],
            vec![target("github")],
        ),
        deny,
    ])
    .unwrap();
    let alice = user("alice", &["eng"]);
    let ask = |args| Ask {
        args: Some(args),
        ..tool(Some(&alice), None, "query")
    };
    let drop = raw(serde_json::json!({"sql": "DrOp TABLE orders"}));
    let select = raw(serde_json::json!({"sql": "select 1"}));
    let none = raw(serde_json::json!({}));
    assert_eq!(decide(&set, ask(&drop)).effect, Effect::Deny);
    assert!(decide(&set, ask(&select)).is_allowed());
    assert!(decide(&set, ask(&none)).is_allowed());
}
