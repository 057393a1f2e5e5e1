//! The optional CEL `when` condition of an AccessPolicy.

use super::Request;
use cel::extractors::This;
use cel::{Context, Program, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Variables a `when` expression may use.
pub const WHEN_VARIABLES: [&str; 5] = ["user", "agent", "server", "request", "now"];

/// Functions a `when` expression may call: CEL's standard functions as this build of the
/// interpreter has them (no `matches`: regular expressions are not compiled in), plus
/// `lowerAscii` and `upperAscii` from CEL's strings extension (as Kubernetes has them). A
/// test holds this list to the evaluator. Operators and macros (`has`, `all`, `exists`, …)
/// are not functions here.
pub const WHEN_FUNCTIONS: [&str; 29] = [
    "contains",
    "size",
    "max",
    "min",
    "startsWith",
    "endsWith",
    "string",
    "bytes",
    "double",
    "int",
    "uint",
    "value",
    "hasValue",
    "or",
    "orValue",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "lowerAscii",
    "upperAscii",
];

/// CEL's `lowerAscii`: ASCII letters lowered, every other character kept.
fn lower_ascii(This(s): This<Arc<String>>) -> Arc<String> {
    Arc::new(s.to_ascii_lowercase())
}

/// CEL's `upperAscii`: ASCII letters raised, every other character kept.
fn upper_ascii(This(s): This<Arc<String>>) -> Arc<String> {
    Arc::new(s.to_ascii_uppercase())
}

/// The evaluation context every condition runs in: the standard functions and ours.
fn base_context() -> Context<'static> {
    let mut ctx = Context::default();
    ctx.add_function("lowerAscii", lower_ascii);
    ctx.add_function("upperAscii", upper_ascii);
    ctx
}

/// Whether `name`, as the parser lists it, is a function a user wrote (not an operator such
/// as `_&&_`, `!_` or `@in`).
fn is_named_function(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// A compiled `when` expression.
pub(super) struct Condition {
    source: String,
    program: Program,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// Check that a `when` expression parses and uses only known variables.
pub fn check_when(expr: &str) -> Result<(), String> {
    Condition::compile(expr).map(|_| ())
}

impl Condition {
    pub fn compile(expr: &str) -> Result<Self, String> {
        let program = Program::compile(expr).map_err(|e| {
            format!(
                "invalid CEL expression {expr:?}: {}",
                one_line(&e.to_string())
            )
        })?;
        let refs = program.references();
        let unknown: Vec<&str> = refs
            .variables()
            .into_iter()
            .filter(|v| !WHEN_VARIABLES.contains(v))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "CEL expression {expr:?} uses unknown variable(s) {}; available: {}",
                unknown.join(", "),
                WHEN_VARIABLES.join(", ")
            ));
        }
        let mut unknown: Vec<&str> = refs
            .functions()
            .into_iter()
            .filter(|f| is_named_function(f) && !WHEN_FUNCTIONS.contains(f))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "CEL expression {expr:?} calls unknown function(s) {}; available: {}",
                unknown.join(", "),
                WHEN_FUNCTIONS.join(", ")
            ));
        }
        Ok(Self {
            source: expr.to_string(),
            program,
        })
    }

    /// Evaluate; only a boolean `true` is true.
    pub fn evaluate(&self, req: &Request<'_>) -> Result<bool, String> {
        let mut ctx = base_context();
        ctx.add_variable_from_value("user", user_value(req));
        ctx.add_variable_from_value("agent", agent_value(req));
        ctx.add_variable_from_value("server", {
            let mut m = HashMap::new();
            m.insert(
                "namespace".to_string(),
                Value::from(req.server.namespace.clone()),
            );
            m.insert("name".to_string(), Value::from(req.server.name.clone()));
            Value::from(m)
        });
        ctx.add_variable_from_value("request", request_value(req));
        ctx.add_variable_from_value("now", Value::Timestamp(req.now.fixed_offset()));
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("`when` must yield a bool, got {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn json(v: &serde_json::Value) -> Value {
    cel::to_value(v).unwrap_or(Value::Null)
}

fn user_value(req: &Request<'_>) -> Value {
    let Some(u) = req.user else {
        return Value::Null;
    };
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("id".into(), Value::from(u.id.clone()));
    m.insert(
        "email".into(),
        u.email.clone().map(Value::from).unwrap_or(Value::Null),
    );
    m.insert(
        "groups".into(),
        Value::List(Arc::new(
            u.groups.iter().cloned().map(Value::from).collect(),
        )),
    );
    m.insert("provider".into(), Value::from(u.provider.clone()));
    let claims: HashMap<String, Value> =
        u.claims.iter().map(|(k, v)| (k.clone(), json(v))).collect();
    m.insert("claims".into(), Value::from(claims));
    Value::from(m)
}

fn agent_value(req: &Request<'_>) -> Value {
    let Some(a) = req.agent else {
        return Value::Null;
    };
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("id".into(), Value::from(a.id.clone()));
    m.insert("kind".into(), Value::from(a.kind.as_str().to_string()));
    m.insert("provider".into(), Value::from(a.provider.clone()));
    Value::from(m)
}

fn request_value(req: &Request<'_>) -> Value {
    use super::Operation;
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert(
        "method".into(),
        Value::from(req.operation.method().to_string()),
    );
    let (tool, resource, prompt) = match req.operation {
        Operation::Server { .. } => (None, None, None),
        Operation::Tool { name } => (Some(name), None, None),
        Operation::Resource { uri, .. } => (None, Some(uri), None),
        Operation::Prompt { name } => (None, None, Some(name)),
    };
    let opt = |s: Option<&str>| s.map(|s| Value::from(s.to_string())).unwrap_or(Value::Null);
    m.insert("tool".into(), opt(tool));
    m.insert("resource".into(), opt(resource));
    m.insert("prompt".into(), opt(prompt));
    m.insert(
        "arguments".into(),
        req.arguments
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
            .map(|v| json(&v))
            .unwrap_or_else(|| Value::from(HashMap::<String, Value>::new())),
    );
    Value::from(m)
}
