//! `gatehouse-gateway check`: validate a directory of manifests and answer "what if" questions
//! with the same compiler and policy engine the gateway enforces.

use crate::local;
use chrono::Utc;
use gatehouse_api::config::{GatewayConfig, PrincipalKind};
use gatehouse_api::identity::{AgentIdentity, AgentKind, UserIdentity};
use gatehouse_api::policy::{Operation, PolicySet, Request};
use gatehouse_api::refs::ObjectKey;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Exit code: the request would be allowed (or, with no question, the manifests are clean).
pub const EXIT_ALLOW: i32 = 0;
/// Exit code: the request would be denied.
pub const EXIT_DENY: i32 = 1;
/// Exit code: the manifests have problems (or the question cannot be asked of them).
pub const EXIT_INVALID: i32 = 2;

/// Arguments of `check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Directory of YAML manifests (searched recursively), or a single file.
    #[arg(long)]
    pub manifests: PathBuf,
    /// The user's id (e.g. the `sub` claim, or an API-key principal). Omit for an agent acting
    /// alone.
    #[arg(long)]
    pub user: Option<String>,
    /// The user's email.
    #[arg(long)]
    pub email: Option<String>,
    /// A group of the user (repeatable).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// A claim of the user, `name=value` (repeatable).
    #[arg(long = "claim", value_parser = parse_claim)]
    pub claims: Vec<(String, String)>,
    /// TrustProvider that verified the user; default: the first user provider of the gateway.
    #[arg(long)]
    pub user_provider: Option<String>,
    /// The agent's id (OAuth client id by default; see --agent-kind).
    #[arg(long)]
    pub agent: Option<String>,
    /// What kind of id --agent is.
    #[arg(long, value_enum, default_value = "client-id")]
    pub agent_kind: AgentKindArg,
    /// TrustProvider that verified the agent; default: the user's provider for client ids, the
    /// first agent provider of the gateway otherwise.
    #[arg(long)]
    pub agent_provider: Option<String>,
    /// The McpServer asked about: its name, or `namespace/name`.
    #[arg(long)]
    pub server: Option<String>,
    /// Namespace of the McpServer, when the name alone is ambiguous.
    #[arg(long)]
    pub namespace: Option<String>,
    /// A tool name (the server's own name, without any toolPrefix).
    #[arg(long, group = "operation")]
    pub tool: Option<String>,
    /// A resource URI (asks about `resources/read`).
    #[arg(long, group = "operation")]
    pub resource: Option<String>,
    /// A prompt name.
    #[arg(long, group = "operation")]
    pub prompt: Option<String>,
    /// A server-level JSON-RPC method, e.g. `initialize`.
    #[arg(long, group = "operation")]
    pub method: Option<String>,
    /// Tool or prompt arguments as JSON, for `when` conditions.
    #[arg(long)]
    pub arguments: Option<String>,
}

/// Agent id kinds on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AgentKindArg {
    /// OAuth client id.
    ClientId,
    /// Kubernetes ServiceAccount, `namespace/name`.
    ServiceAccount,
    /// SPIFFE id.
    Spiffe,
    /// Any other id.
    Other,
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not name=value"))
}

/// Run `check`, writing the report to `out`; returns the exit code.
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let (loaded, files) = local::load_dir(&args.manifests)?;
    let compiled = gatehouse_api::compile(&loaded.resources);
    let objects = loaded.origins.len();
    writeln!(
        out,
        "{}: {files} file(s), {objects} Gatehouse object(s), {} Secret(s)",
        args.manifests.display(),
        loaded.secrets.len()
    )?;
    for s in &loaded.skipped {
        writeln!(out, "  skipped {s}")?;
    }
    let mut invalid = false;
    for e in &loaded.errors {
        invalid = true;
        writeln!(out, "  error: {e}")?;
    }
    for (obj, cond) in compiled.problems() {
        invalid = true;
        let at = loaded
            .origins
            .get(obj)
            .map(|o| format!(" [{o}]"))
            .unwrap_or_default();
        writeln!(
            out,
            "  error: {obj}: {}={} ({}): {}{at}",
            cond.type_, cond.status, cond.reason, cond.message
        )?;
    }
    if !invalid {
        writeln!(out, "  ok: every object compiles cleanly")?;
    }
    for (id, cfg) in &compiled.gateways {
        writeln!(
            out,
            "  {id}: {} server(s), {} policy(ies), config version {}",
            cfg.servers.len(),
            cfg.policies.len(),
            cfg.version
        )?;
    }

    let Some(server_name) = &args.server else {
        if args.tool.is_some()
            || args.resource.is_some()
            || args.prompt.is_some()
            || args.method.is_some()
        {
            writeln!(out, "error: --server is required to ask a question")?;
            return Ok(EXIT_INVALID);
        }
        return Ok(if invalid { EXIT_INVALID } else { EXIT_ALLOW });
    };

    let candidates: Vec<(&GatewayConfig, &ObjectKey)> = compiled
        .gateways
        .values()
        .flat_map(|g| g.servers.iter().map(move |s| (g, &s.key)))
        .filter(|(_, k)| match server_name.split_once('/') {
            Some((ns, name)) => {
                k.name == name
                    && k.namespace == ns
                    && args.namespace.as_ref().is_none_or(|n| n == ns)
            }
            None => {
                k.name == *server_name
                    && args.namespace.as_ref().is_none_or(|ns| *ns == k.namespace)
            }
        })
        .collect();
    let (gateway, server) = match candidates.as_slice() {
        [] => {
            writeln!(
                out,
                "error: no served McpServer named {server_name:?}{} (is it defined, and ready?)",
                args.namespace
                    .as_ref()
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default()
            )?;
            return Ok(EXIT_INVALID);
        }
        [one] => *one,
        many => {
            let names: Vec<String> = many.iter().map(|(_, k)| k.to_string()).collect();
            writeln!(
                out,
                "error: {server_name:?} is ambiguous ({}); pass --namespace",
                names.join(", ")
            )?;
            return Ok(EXIT_INVALID);
        }
    };

    let first_provider = |kind: PrincipalKind| {
        gateway
            .trust_providers
            .iter()
            .find(|t| t.authenticates == kind)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let user = args.user.as_ref().map(|id| UserIdentity {
        id: id.clone(),
        email: args.email.clone(),
        groups: args.groups.clone(),
        provider: args
            .user_provider
            .clone()
            .unwrap_or_else(|| first_provider(PrincipalKind::User)),
        claims: args
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<BTreeMap<_, _>>(),
    });
    let agent_kind = match args.agent_kind {
        AgentKindArg::ClientId => AgentKind::ClientId,
        AgentKindArg::ServiceAccount => AgentKind::ServiceAccount,
        AgentKindArg::Spiffe => AgentKind::Spiffe,
        AgentKindArg::Other => AgentKind::Other,
    };
    let agent = args.agent.as_ref().map(|id| AgentIdentity {
        kind: agent_kind,
        id: id.clone(),
        provider: args
            .agent_provider
            .clone()
            .unwrap_or_else(|| match (agent_kind, &user) {
                (AgentKind::ClientId, Some(u)) => u.provider.clone(),
                _ => first_provider(PrincipalKind::Agent),
            }),
    });
    let operation = if let Some(t) = &args.tool {
        Operation::Tool { name: t }
    } else if let Some(r) = &args.resource {
        Operation::Resource {
            method: "resources/read",
            uri: r,
        }
    } else if let Some(p) = &args.prompt {
        Operation::Prompt { name: p }
    } else if let Some(m) = &args.method {
        Operation::Server { method: m }
    } else {
        writeln!(
            out,
            "error: say what is attempted: --tool, --resource, --prompt or --method"
        )?;
        return Ok(EXIT_INVALID);
    };
    let arguments = match &args.arguments {
        Some(a) => match serde_json::from_str::<Box<serde_json::value::RawValue>>(a) {
            Ok(v) => Some(v),
            Err(e) => {
                writeln!(out, "error: --arguments is not JSON: {e}")?;
                return Ok(EXIT_INVALID);
            }
        },
        None => None,
    };
    let policies = match PolicySet::new(&gateway.policies) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                writeln!(out, "error: {e}")?;
            }
            return Ok(EXIT_INVALID);
        }
    };
    let decision = policies.decide(&Request {
        user: user.as_ref(),
        agent: agent.as_ref(),
        server,
        operation,
        arguments: arguments.as_deref(),
        now: Utc::now(),
    });
    writeln!(
        out,
        "decision: {}",
        decision.effect.to_string().to_uppercase()
    )?;
    writeln!(
        out,
        "  policy: {}",
        decision
            .policy
            .map(|p| format!("AccessPolicy {p}"))
            .unwrap_or_else(|| "none (default deny)".to_string())
    )?;
    writeln!(out, "  reason: {}", decision.reason)?;
    if let Some(cp) = decision.credential_provider {
        writeln!(out, "  credential: CredentialProvider {cp}")?;
    }
    Ok(if invalid {
        EXIT_INVALID
    } else if decision.is_allowed() {
        EXIT_ALLOW
    } else {
        EXIT_DENY
    })
}
