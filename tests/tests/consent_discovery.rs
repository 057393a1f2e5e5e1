//! Per-user consent with the authorization server *discovered* from the upstream
//! (`oauth2AuthorizationCode.discovery`), against real peers: the upstream is an OAuth-protected
//! MCP server on the official TypeScript SDK (`tests/node/protected-mcp-server.mjs`) whose
//! RFC 9728 metadata names the "SaaS" authorization server (`oauth2-mock-server`,
//! `tests/node/saas-server.mjs`), which publishes only OpenID Connect discovery metadata.
//!
//! Everything runs on loopback, so discovery works only with `allowPrivateNetworks: true`;
//! without it the gateway refuses before sending a single request anywhere.

use anyhow::{Context, ensure};
use gatehouse_tests::consent::{
    SAAS_CLIENT_ID, SAAS_CLIENT_SECRET, STORE_KEY, Saas, connect, elicitation, follow_consent,
    initialize_error,
};
use gatehouse_tests::mcp::{call, text_of};
use gatehouse_tests::oauth::{OAuthServer, ensure_node_modules};
use gatehouse_tests::procs::{ChildGuard, DemoServer, Gateway, free_port};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Audience of user tokens.
const AUD: &str = "gatehouse-test";
/// What the `secret` CredentialProvider of the second upstream injects.
const DEMO_TOKEN: &str = "demo-upstream-static-token";

/// The OAuth-protected upstream MCP server.
struct ProtectedUpstream {
    url: String,
    _child: ChildGuard,
}

impl ProtectedUpstream {
    fn start(authorization_server: &str) -> anyhow::Result<Self> {
        ensure_node_modules()?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("node")
            .arg(dir.join("node/protected-mcp-server.mjs"))
            .arg(authorization_server)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node protected-mcp-server.mjs")?;
        let stdout = child.stdout.take().expect("piped");
        let guard = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: Value = serde_json::from_str(line.trim())
            .with_context(|| format!("protected-mcp-server said {line:?}"))?;
        Ok(Self {
            url: v["url"].as_str().context("url")?.to_string(),
            _child: guard,
        })
    }

    /// Requests that reached its metadata and its MCP endpoint.
    async fn hits(&self) -> anyhow::Result<(u64, u64)> {
        let base = self.url.trim_end_matches("/mcp");
        let v: Value = reqwest::get(format!("{base}/test/hits"))
            .await?
            .json()
            .await?;
        Ok((
            v["metadata"].as_u64().unwrap_or(u64::MAX),
            v["mcp"].as_u64().unwrap_or(u64::MAX),
        ))
    }
}

/// Requests for RFC 8414 metadata the SaaS authorization server received.
async fn metadata_requests(saas: &Saas) -> anyhow::Result<u64> {
    let v: Value = reqwest::get(format!("{}/test/issued", saas.url()))
        .await?
        .json()
        .await?;
    v["metadataRequests"]
        .as_u64()
        .context("metadataRequests in /test/issued")
}

struct Bed {
    idp: OAuthServer,
    saas: Saas,
    upstream: ProtectedUpstream,
    gw: Gateway,
    _demo: DemoServer,
    _dir: tempfile::TempDir,
}

fn manifests(public: &str, idp: &str, upstream: &str, demo: &str, discovery: &str) -> String {
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
    audiences: [{AUD}]
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
    discovery: {discovery}
    clientId: {SAAS_CLIENT_ID}
    clientSecretRef: {{name: saas-client, key: secret}}
    scopes: [files.read]
    encryptionKeySecretRef: {{name: saas-store-key, key: key}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: demo, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {demo}
---
apiVersion: gatehouse.dev/v1alpha1
kind: CredentialProvider
metadata: {{name: demo-static, namespace: default}}
spec:
  secret:
    secretRef: {{name: demo-token, key: token}}
---
apiVersion: v1
kind: Secret
metadata: {{name: demo-token, namespace: default}}
stringData: {{token: {DEMO_TOKEN}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: saas-client, namespace: default}}
stringData: {{secret: {SAAS_CLIENT_SECRET}}}
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
      agents: {{clientIds: [claude-code]}}
  targets:
    - server: saas
      credentialProvider: saas-oauth
    - server: demo
      credentialProvider: demo-static
"#
    )
}

impl Bed {
    /// Everything, with `discovery` as the provider's `discovery` (YAML flow mapping).
    fn start(discovery: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let idp = OAuthServer::start()?;
        let saas = Saas::start()?;
        let upstream = ProtectedUpstream::start(saas.url())?;
        let demo = DemoServer::start(&dir.path().join("demo.log"))?;
        let port = free_port();
        let public = format!("http://127.0.0.1:{port}");
        let m = dir.path().join("manifests");
        std::fs::create_dir(&m)?;
        std::fs::write(
            m.join("all.yaml"),
            manifests(&public, &idp.issuer, &upstream.url, &demo.url, discovery),
        )?;
        let store = dir.path().join("tokens");
        let gw = Gateway::start_with_env(
            &m,
            &dir.path().join("gateway.log"),
            &format!("127.0.0.1:{port}"),
            &["--token-store", store.to_str().unwrap()],
            &[],
        )?;
        Ok(Self {
            idp,
            saas,
            upstream,
            gw,
            _demo: demo,
            _dir: dir,
        })
    }

    async fn token(&self, user: &str) -> anyhow::Result<String> {
        self.idp
            .user_token(
                user,
                "claude-code",
                AUD,
                "openid",
                json!({"groups": ["eng"], "email": format!("{user}@example.com")}),
            )
            .await
    }
}

/// `whoami` through the gateway: the header and the token subject the upstream saw.
async fn whoami(url: &str, token: &str) -> anyhow::Result<Value> {
    let client = connect(url, token).await?;
    let r = client
        .call_tool(call(json!({"name": "whoami", "arguments": {}})))
        .await?;
    Ok(serde_json::from_str(&text_of(&r))?)
}

#[tokio::test]
async fn consent_works_with_the_authorization_server_the_upstream_names() -> anyhow::Result<()> {
    let bed = Bed::start("{server: saas, allowPrivateNetworks: true}")?;
    let url = bed.gw.route("/mcp/saas");
    let alice = bed.token("alice").await?;

    // No grant yet: a consent prompt, as with named endpoints.
    let e = elicitation(&initialize_error(&url, &alice).await?)?;
    ensure!(e.url.starts_with(&bed.gw.route("/oauth/consent/")), "{e:?}");
    let (metadata_hits, _) = bed.upstream.hits().await?;
    ensure!(
        metadata_hits >= 1,
        "the gateway read the upstream's protected-resource metadata"
    );
    ensure!(
        metadata_requests(&bed.saas).await? >= 1,
        "the gateway asked the authorization server for its metadata"
    );

    // The browser is sent to the endpoint found in the authorization server's metadata, with
    // PKCE S256 and the upstream as the RFC 8707 resource.
    let trip = follow_consent(&e.url, "alice").await?;
    ensure!(
        trip.authorize.base == format!("{}/authorize", bed.saas.url()),
        "{:?}",
        trip.authorize
    );
    ensure!(trip.authorize.get("code_challenge_method") == Some("S256"));
    ensure!(trip.authorize.get("resource") == Some(bed.upstream.url.as_str()));
    ensure!(trip.result.0 == 200, "callback: {:?}", trip.result);

    // The code was redeemed at the discovered token endpoint; the upstream verified alice's
    // own token (signature and issuer) and saw her as the subject.
    let seen = whoami(&url, &alice).await?;
    let issued = bed.saas.issued().await?;
    let header = seen["authorization"].as_str().unwrap_or_default();
    ensure!(
        issued
            .access
            .iter()
            .any(|t| header == format!("Bearer {t}")),
        "the upstream saw {seen}, not a token the SaaS issued"
    );
    ensure!(seen["sub"] == "alice", "{seen}");
    ensure!(
        !header.contains(&alice),
        "the user's own token never travels upstream"
    );
    Ok(())
}

#[tokio::test]
async fn without_allow_private_networks_discovery_refuses_loopback_and_sends_nothing()
-> anyhow::Result<()> {
    let bed = Bed::start("{server: saas}")?;
    let alice = bed.token("alice").await?;

    // A clear error naming the refused address and the knob, not a consent link.
    let error = initialize_error(&bed.gw.route("/mcp/saas"), &alice).await?;
    ensure!(
        error["code"] != -32042,
        "no consent link is handed out: {error}"
    );
    let message = error["message"].as_str().unwrap_or_default();
    for want in [
        "CredentialProvider default/saas-oauth",
        "McpServer default/saas",
        "127.0.0.1 is a loopback address",
        "allowPrivateNetworks",
    ] {
        ensure!(message.contains(want), "{want:?} missing from {message:?}");
    }

    // Nothing reached the upstream (not even its metadata) or the authorization server.
    ensure!(
        bed.upstream.hits().await? == (0, 0),
        "the upstream was contacted"
    );
    ensure!(
        metadata_requests(&bed.saas).await? == 0,
        "the authorization server was contacted"
    );
    ensure!(bed.saas.issued().await?.codes.is_empty());

    // The broken provider fails alone: the other upstream keeps working for the same user.
    let seen = whoami(&bed.gw.route("/mcp/demo"), &alice).await?;
    ensure!(
        seen["authorization"] == format!("Bearer {DEMO_TOKEN}"),
        "{seen}"
    );
    Ok(())
}
