//! The users' IdP and RFC 8693 security token service of the token-exchange tests: a real
//! `oidc-provider` (npm, pinned in `tests/package-lock.json`) with a token-exchange grant handler,
//! run by `tests/node/token-exchange-server.mjs` as a child process.

use crate::oauth::ensure_node_modules;
use crate::procs::ChildGuard;
use anyhow::Context;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// The gateway's confidential client at the token service.
pub const GATEWAY_CLIENT_ID: &str = "gatehouse-gateway";
/// Its secret.
pub const GATEWAY_CLIENT_SECRET: &str = "gateway-exchange-secret";
/// The agent's public client, through which users sign in.
pub const AGENT_CLIENT_ID: &str = "claude-code";
/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A running token service.
pub struct TokenService {
    /// Its issuer URL (`http://127.0.0.1:PORT`); discovery, JWKS and `/token` live under it.
    pub issuer: String,
    child: Option<ChildGuard>,
}

/// One exchange the service granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The subject's user.
    pub sub: String,
    /// The `act` claim issued (`Value::Null` without an actor).
    pub act: Value,
    /// Audiences of the issued token.
    pub aud: Vec<String>,
}

impl TokenService {
    /// Start one on a free port; actor tokens are accepted from itself and from `actor_issuer`.
    pub fn start(actor_issuer: Option<&str>) -> anyhow::Result<Self> {
        ensure_node_modules()?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("node/token-exchange-server.mjs"));
        if let Some(iss) = actor_issuer {
            cmd.args(["--actor-issuer", iss]);
        }
        let mut child = cmd
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node token-exchange-server.mjs")?;
        let stdout = child.stdout.take().expect("piped");
        let guard = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: Value = serde_json::from_str(line.trim())
            .with_context(|| format!("token service said {line:?}"))?;
        Ok(Self {
            issuer: v["issuer"].as_str().context("issuer")?.to_string(),
            child: Some(guard),
        })
    }

    /// Its token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Stop it (an outage); kills and reaps the process.
    pub fn stop(&mut self) {
        self.child.take();
    }

    /// `user` signs in through the agent's client (password grant) and gets an access token for
    /// `resource` (the gateway).
    pub async fn user_token(&self, user: &str, resource: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .post(
                None,
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", &format!("{user}-password")),
                    ("client_id", AGENT_CLIENT_ID),
                    ("resource", resource),
                ],
            )
            .await?;
        anyhow::ensure!(status == 200, "sign-in of {user}: {status} {body}");
        Ok(body["access_token"]
            .as_str()
            .context("access_token")?
            .to_string())
    }

    /// POST a form to the token endpoint, with HTTP basic `client` credentials when given;
    /// the status and JSON body.
    pub async fn post(
        &self,
        client: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = crate::mcp::http_client(None)
            .post(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter())
                    .finish(),
            );
        if let Some((id, secret)) = client {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), resp.json().await?))
    }

    /// Every exchange granted so far, in order.
    pub async fn exchanges(&self) -> anyhow::Result<Vec<Exchange>> {
        let v: Value = crate::mcp::http_client(None)
            .get(format!("{}/test/exchanges", self.issuer))
            .send()
            .await?
            .json()
            .await?;
        Ok(v.as_array()
            .context("a list")?
            .iter()
            .map(|e| Exchange {
                sub: e["sub"].as_str().unwrap_or_default().to_string(),
                act: e["act"].clone(),
                aud: e["aud"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
            })
            .collect())
    }
}
