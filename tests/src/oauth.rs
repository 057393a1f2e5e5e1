//! A real OAuth 2.0 / OIDC server for tests: `oauth2-mock-server` from npm (pinned in
//! `tests/package-lock.json`), run by `tests/node/oauth-server.mjs` as a child process.

use crate::procs::ChildGuard;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A running authorization server.
pub struct OAuthServer {
    /// Its issuer URL (`http://localhost:PORT`); discovery, JWKS and `/token` live under it.
    pub issuer: String,
    _child: ChildGuard,
}

/// Install the Node test peers if `tests/node_modules` is missing (as `scripts/test` does).
pub fn ensure_node_modules() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if dir.join("node_modules/oauth2-mock-server").exists() {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .context("running npm ci in tests/")?;
    anyhow::ensure!(status.success(), "npm ci in tests/ failed");
    Ok(())
}

impl OAuthServer {
    /// Start one on a free port.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_script("oauth-server.mjs")
    }

    /// Start `tests/node/<script>` (which prints `{"issuer": …}` once serving) on a free port.
    pub fn start_script(script: &str) -> anyhow::Result<Self> {
        ensure_node_modules()?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("node")
            .arg(dir.join("node").join(script))
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting node {script}"))?;
        let stdout = child.stdout.take().expect("piped");
        let guard = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("oauth server said {line:?}"))?;
        Ok(Self {
            issuer: v["issuer"].as_str().context("issuer")?.to_string(),
            _child: guard,
        })
    }

    /// A user token from the server's token endpoint (password grant), issued to `client`, for
    /// `aud`, with `scope` and extra claims.
    pub async fn user_token(
        &self,
        user: &str,
        client: &str,
        aud: &str,
        scope: &str,
        claims: serde_json::Value,
    ) -> anyhow::Result<String> {
        self.token(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", "unused"),
            ("client_id", client),
            ("aud", aud),
            ("scope", scope),
            ("test_claims", &claims.to_string()),
        ])
        .await
    }

    /// A token with arbitrary form fields.
    pub async fn token(&self, form: &[(&str, &str)]) -> anyhow::Result<String> {
        let resp = crate::mcp::http_client(None)
            .post(format!("{}/token", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter())
                    .finish(),
            )
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        anyhow::ensure!(status == 200, "token endpoint: {status} {body}");
        Ok(body["access_token"]
            .as_str()
            .context("access_token")?
            .to_string())
    }
}

impl OAuthServer {
    /// Add a new signing key (key rotation); returns its `kid`.
    pub async fn rotate_key(&self) -> anyhow::Result<String> {
        let v: serde_json::Value = crate::mcp::http_client(None)
            .post(format!("{}/test/rotate", self.issuer))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["kid"].as_str().context("kid")?.to_string())
    }
}

/// The `kid` of a JWT's header.
pub fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["kid"].as_str().unwrap_or_default().to_string()
}

/// The claims of a JWT, unverified (tests inspect what upstreams received).
pub fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}
