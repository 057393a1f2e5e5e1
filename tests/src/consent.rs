//! Per-user consent, headless: the "SaaS" authorization server (`tests/node/saas-server.mjs`
//! on `oauth2-mock-server`), a browser that follows a consent link to the end, and the raw
//! JSON-RPC error a request gets before consent.

use crate::mcp::{self, call, text_of};
use crate::oauth::OAuthServer;
use crate::procs::{DemoServer, Gateway, free_port};
use anyhow::{Context, ensure};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The SaaS client registration the harness accepts.
pub const SAAS_CLIENT_ID: &str = "saas-client";
/// Its secret.
pub const SAAS_CLIENT_SECRET: &str = "saas-client-secret";

/// The SaaS authorization server.
pub struct Saas {
    /// The server (issuer URL; `/authorize`, `/token` under it).
    pub server: OAuthServer,
}

/// What the SaaS server issued so far.
#[derive(Debug, Default)]
pub struct Issued {
    /// Authorization codes.
    pub codes: Vec<String>,
    /// Access tokens.
    pub access: Vec<String>,
    /// Refresh tokens.
    pub refresh: Vec<String>,
    /// Successful refresh grants.
    pub refreshes: u64,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Saas {
    /// Start one.
    pub fn start() -> anyhow::Result<Self> {
        Ok(Self {
            server: OAuthServer::start_script("saas-server.mjs")?,
        })
    }

    /// Its issuer URL.
    pub fn url(&self) -> &str {
        &self.server.issuer
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<()> {
        let resp = crate::mcp::http_client(None)
            .post(format!("{}{path}", self.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter())
                    .finish(),
            )
            .send()
            .await?;
        ensure!(resp.status().is_success(), "{path}: {}", resp.status());
        Ok(())
    }

    /// Revoke every grant of `user` (refreshes fail with `invalid_grant` until it consents again).
    pub async fn revoke(&self, user: &str) -> anyhow::Result<()> {
        self.post("/test/revoke", &[("user", user)]).await
    }

    /// `expires_in` of tokens issued from now on.
    pub async fn set_ttl(&self, seconds: u64) -> anyhow::Result<()> {
        self.post("/test/ttl", &[("seconds", &seconds.to_string())])
            .await
    }

    /// Everything issued so far.
    pub async fn issued(&self) -> anyhow::Result<Issued> {
        let v: Value = crate::mcp::http_client(None)
            .get(format!("{}/test/issued", self.url()))
            .send()
            .await?
            .json()
            .await?;
        Ok(Issued {
            codes: strings(&v["codes"]),
            access: strings(&v["access"]),
            refresh: strings(&v["refresh"]),
            refreshes: v["refreshes"].as_u64().unwrap_or_default(),
        })
    }
}

/// One URL-mode elicitation from a `-32042` error.
#[derive(Debug, Clone)]
pub struct Elicitation {
    /// The consent link.
    pub url: String,
    /// Its message.
    pub message: String,
    /// Its id.
    pub id: String,
}

/// The URL-mode elicitation of a `-32042` JSON-RPC error object (`{"code", "message", "data"}`).
pub fn elicitation(error: &Value) -> anyhow::Result<Elicitation> {
    ensure!(
        error["code"] == -32042,
        "not URLElicitationRequired: {error}"
    );
    let e = &error["data"]["elicitations"][0];
    ensure!(e["mode"] == "url", "{error}");
    Ok(Elicitation {
        url: e["url"].as_str().context("url")?.to_string(),
        message: e["message"].as_str().context("message")?.to_string(),
        id: e["elicitationId"]
            .as_str()
            .context("elicitationId")?
            .to_string(),
    })
}

/// POST `initialize` to an MCP endpoint with `Authorization: Bearer <token>` and return the
/// JSON-RPC error it gets (or fail if it succeeds).
pub async fn initialize_error(url: &str, token: &str) -> anyhow::Result<Value> {
    let resp = crate::raw::post(
        &crate::mcp::http_client(None),
        url,
        None,
        None,
        crate::raw::initialize_body("2025-11-25"),
    )
    .header("authorization", format!("Bearer {token}"))
    .send()
    .await?;
    let status = resp.status();
    let body = resp.text().await?;
    let msg = crate::raw::messages(&body)
        .into_iter()
        .next()
        .with_context(|| format!("HTTP {status}: {body}"))?;
    ensure!(msg.get("error").is_some(), "initialize succeeded: {msg}");
    Ok(msg["error"].clone())
}

/// What a browser saw while following a consent link.
#[derive(Debug)]
pub struct ConsentTrip {
    /// The provider's authorization URL the gateway redirected to.
    pub authorize: url_parts::Parts,
    /// The callback URL the provider redirected to (holds `code` and `state`).
    pub callback: String,
    /// The cookie the gateway set.
    pub cookie: String,
    /// The callback's status and page.
    pub result: (u16, String),
}

/// Minimal URL splitting for assertions.
pub mod url_parts {
    /// A URL's base and query pairs.
    #[derive(Debug)]
    pub struct Parts {
        /// Everything before `?`.
        pub base: String,
        /// Decoded query pairs.
        pub query: Vec<(String, String)>,
    }

    impl Parts {
        /// Split a URL.
        pub fn parse(url: &str) -> Self {
            let (base, q) = url.split_once('?').unwrap_or((url, ""));
            Self {
                base: base.to_string(),
                query: form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            }
        }

        /// One query parameter.
        pub fn get(&self, k: &str) -> Option<&str> {
            self.query
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        }
    }
}

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

fn location(resp: &reqwest::Response) -> anyhow::Result<String> {
    ensure!(
        resp.status() == 302,
        "expected a redirect, got {}",
        resp.status()
    );
    Ok(resp.headers()["location"].to_str()?.to_string())
}

/// Follow a consent link as `user`'s browser: the gateway's redirect to the provider, the
/// provider's (headless, approving) `/authorize` with `test_user=<user>` as the sign-in, and
/// the callback on the gateway with the cookie the gateway set.
pub async fn follow_consent(link: &str, user: &str) -> anyhow::Result<ConsentTrip> {
    let http = no_redirects();
    let start = http.get(link).send().await?;
    let authorize = location(&start)?;
    let cookie = start
        .headers()
        .get("set-cookie")
        .context("the consent start sets a cookie")?
        .to_str()?
        .to_string();
    let (cookie_pair, _) = cookie.split_once(';').unwrap_or((&cookie, ""));
    let login = format!("{authorize}&test_user={user}");
    let callback = location(&http.get(&login).send().await?)?;
    let done = http
        .get(&callback)
        .header("cookie", cookie_pair)
        .send()
        .await?;
    let result = (done.status().as_u16(), done.text().await?);
    Ok(ConsentTrip {
        authorize: url_parts::Parts::parse(&authorize),
        callback,
        cookie,
        result,
    })
}

/// GET `url` with an optional cookie; status and body (no redirects followed).
pub async fn get(url: &str, cookie: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut r = no_redirects().get(url);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let resp = r.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

// === the test bed ===

/// The AES-256-GCM key of the token store (base64 of 32 bytes).
pub const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Audience of user tokens.
pub const AUD: &str = "gatehouse-test";

/// The consent test bed's manifests: gateway `gw` at `public`, users from the OIDC issuer `idp`
/// (audience [`AUD`], `trust_extra` appended to its `oidc` block), McpServer `saas` at
/// `upstream` behind the `oauth2AuthorizationCode` provider `saas-oauth` of the SaaS server at
/// `saas`, and a policy letting group `eng` use it through `claude-code` and `cursor`.
pub fn manifests(public: &str, idp: &str, saas: &str, upstream: &str, trust_extra: &str) -> String {
    format!(
        r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  publicUrl: {public}
  trustProviders: [corp]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: corp, namespace: default}}
spec:
  oidc:
    issuer: {idp}
    audiences: [{AUD}]{trust_extra}
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: saas, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: saas-oauth, namespace: default}}
spec:
  oauth2AuthorizationCode:
    authorizationUrl: {saas}/authorize
    tokenUrl: {saas}/token
    clientId: {SAAS_CLIENT_ID}
    clientSecretRef: {{name: saas-client, key: secret}}
    scopes: [files.read]
    encryptionKeySecretRef: {{name: saas-store-key, key: key}}
---
apiVersion: v1
kind: Secret
metadata: {{name: saas-client, namespace: default}}
stringData: {{secret: {secret}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: saas-store-key, namespace: default}}
stringData: {{key: "{STORE_KEY}"}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: eng-agents, namespace: default}}
spec:
  subjects:
    - users: {{groups: [eng]}}
      agents: {{clientIds: [claude-code, cursor]}}
  targets:
    - server: saas
      credentialProvider: saas-oauth
"#,
        secret = SAAS_CLIENT_SECRET,
    )
}

/// Start everything (just the consent pieces).
pub fn setup(env: &[(&str, &str)]) -> anyhow::Result<Setup> {
    setup_with(env, |_| String::new())
}

/// A running setup.
pub struct Setup {
    /// The corporate IdP (user tokens).
    pub idp: OAuthServer,
    /// The SaaS authorization server.
    pub saas: Saas,
    /// The gateway.
    pub gw: Gateway,
    /// Its public URL (= its MCP listener).
    pub public: String,
    /// The token store directory.
    pub store: PathBuf,
    /// The manifests directory.
    pub manifests: PathBuf,
    /// The scratch directory (logs).
    pub dir: tempfile::TempDir,
    _demo: DemoServer,
}

/// A `signedJwt` CredentialProvider signing with `pem`, the McpServer `minted` (the demo
/// upstream again) using it, and a policy allowing it to the same users and agents.
pub fn signed_jwt_manifests(pem: &str, upstream: &str) -> String {
    let pem: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: minted, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: gateway-jwt, namespace: default}}
spec:
  signedJwt:
    signingKeySecretRef: {{name: jwt-key, key: pem}}
    audience: https://upstream.example.com
    ttl: 2m
---
apiVersion: v1
kind: Secret
metadata: {{name: jwt-key, namespace: default}}
stringData:
  pem: |
{pem}---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: eng-minted, namespace: default}}
spec:
  subjects:
    - users: {{groups: [eng]}}
      agents: {{clientIds: [claude-code, cursor]}}
  targets:
    - server: minted
      credentialProvider: gateway-jwt
"#
    )
}

/// Start everything; `env` goes to the gateway process; `extra` builds more manifests from the
/// demo upstream's URL.
pub fn setup_with(
    env: &[(&str, &str)],
    extra: impl FnOnce(&str) -> String,
) -> anyhow::Result<Setup> {
    setup_full(env, "", extra)
}

/// The browser sign-in client of [`setup_with_browser_login`] at the corporate IdP.
pub const LOGIN_CLIENT_ID: &str = "gatehouse-login";

/// Start everything, with browser sign-in (`oidc.browserLogin`, a public client) on the users'
/// TrustProvider, so consent links only work for the user they were made for.
pub fn setup_with_browser_login() -> anyhow::Result<Setup> {
    setup_full(
        &[],
        &format!("\n    browserLogin: {{clientId: {LOGIN_CLIENT_ID}}}"),
        |_| String::new(),
    )
}

fn setup_full(
    env: &[(&str, &str)],
    trust_extra: &str,
    extra: impl FnOnce(&str) -> String,
) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let idp = OAuthServer::start()?;
    let saas = Saas::start()?;
    let demo = DemoServer::start(&dir.path().join("demo.log"))?;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("all.yaml"),
        manifests(&public, &idp.issuer, saas.url(), &demo.url, trust_extra),
    )?;
    std::fs::write(m.join("extra.yaml"), extra(&demo.url))?;
    let store = dir.path().join("tokens");
    let gw = Gateway::start_with_env(
        &m,
        &dir.path().join("gateway.log"),
        &format!("127.0.0.1:{port}"),
        &["--token-store", store.to_str().unwrap()],
        env,
    )?;
    Ok(Setup {
        idp,
        saas,
        gw,
        public,
        store,
        manifests: m,
        dir,
        _demo: demo,
    })
}

impl Setup {
    /// A user token for `user` (group eng) issued to `agent`.
    pub async fn token(&self, user: &str, agent: &str) -> anyhow::Result<String> {
        self.idp
            .user_token(
                user,
                agent,
                AUD,
                "openid",
                json!({"groups": ["eng"], "email": format!("{user}@example.com")}),
            )
            .await
    }

    /// The MCP endpoint of the SaaS server.
    pub fn url(&self) -> String {
        self.gw.route("/mcp/saas")
    }

    /// Files in the token store.
    pub fn stored(&self) -> Vec<Vec<u8>> {
        std::fs::read_dir(&self.store)
            .into_iter()
            .flatten()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect()
    }
}

/// The `Authorization` header the upstream saw on `whoami`.
pub async fn whoami(client: &mcp::Client) -> anyhow::Result<String> {
    let r = client
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await?;
    let v: serde_json::Value = serde_json::from_str(&text_of(&r))?;
    Ok(v["authorization"].as_str().unwrap_or_default().to_string())
}

/// Connect as the holder of `token`.
pub async fn connect(url: &str, token: &str) -> anyhow::Result<mcp::Client> {
    let auth = format!("Bearer {token}");
    Ok(mcp::connect_headers(url, &[("authorization", &auth)])
        .await?
        .0)
}

/// Take `user` (holding `token`) through consent: the `-32042` prompt, then the browser trip.
pub async fn consent(s: &Setup, token: &str, user: &str) -> anyhow::Result<()> {
    let e = elicitation(&initialize_error(&s.url(), token).await?)?;
    let trip = follow_consent(&e.url, user).await?;
    anyhow::ensure!(trip.result.0 == 200, "callback: {:?}", trip.result);
    Ok(())
}
