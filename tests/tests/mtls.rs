//! The `mtls` TrustProvider: agents identified by client certificates (SPIFFE URI SAN), chains
//! validated against the CA bundle in the TrustProvider's Secret; certificates from another CA,
//! or none, get 401.

use gatehouse_tests::mcp;
use gatehouse_tests::procs::{DemoServer, Gateway};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> anyhow::Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A client certificate with a SPIFFE id, as PEM cert + key (reqwest identity).
fn client_identity(ca: &Ca, spiffe: &str) -> anyhow::Result<String> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "agent");
    params
        .subject_alt_names
        .push(SanType::URI(spiffe.try_into()?));
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
}

fn http(server_ca: &str, identity: Option<&str>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server_ca.as_bytes()).unwrap()]);
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn client_certificates_identify_agents() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server_ca = ca("server CA")?;
    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?
        .signed_by(&server_key, &server_ca.issuer)?;
    std::fs::write(dir.path().join("tls.crt"), server_cert.pem())?;
    std::fs::write(dir.path().join("tls.key"), server_key.serialize_pem())?;
    let agents_ca = ca("agents CA")?;
    let rogue_ca = ca("rogue CA")?;

    let demo = DemoServer::start(&dir.path().join("demo.log"))?;
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m)?;
    let indented_ca: String = agents_ca
        .pem
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    std::fs::write(
        m.join("all.yaml"),
        format!(
            r#"apiVersion: gatehouse.dev/v1alpha1
kind: McpGateway
metadata: {{name: gw, namespace: default}}
spec:
  trustProviders: [agents]
---
apiVersion: gatehouse.dev/v1alpha1
kind: TrustProvider
metadata: {{name: agents, namespace: default}}
spec:
  mtls:
    caBundleSecretRef: {{name: agents-ca, key: ca.crt}}
    identityFrom: SpiffeUri
---
apiVersion: v1
kind: Secret
metadata: {{name: agents-ca, namespace: default}}
stringData:
  ca.crt: |
{indented_ca}---
apiVersion: gatehouse.dev/v1alpha1
kind: McpServer
metadata: {{name: demo, namespace: default}}
spec:
  gatewayRef: {{name: gw}}
  url: {upstream}
---
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: agents-read, namespace: default}}
spec:
  subjects:
    - agents: {{spiffeIds: ["spiffe://example.org/ns/agents/*"]}}
  targets:
    - server: demo
      tools: {{allow: [echo, whoami]}}
"#,
            upstream = demo.url
        ),
    )?;
    let gw = Gateway::start(
        &m,
        &dir.path().join("gw.log"),
        &[
            "--tls-cert",
            dir.path().join("tls.crt").to_str().unwrap(),
            "--tls-key",
            dir.path().join("tls.key").to_str().unwrap(),
        ],
    )?;
    let url = gw.route("/mcp/demo");

    // A certificate from the agents' CA: the SPIFFE id is the agent.
    let good = client_identity(&agents_ca, "spiffe://example.org/ns/agents/sa/triage")?;
    let (client, _) = mcp::connect_with(&url, None, http(&server_ca.pem, Some(&good))).await?;
    let mut tools: Vec<String> = client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(tools, vec!["echo", "whoami"]);
    client.cancel().await?;
    let record = gw.wait_audit(|r| r["method"] == "tools/list")?;
    assert_eq!(
        record["agent"], "spiffe://example.org/ns/agents/sa/triage",
        "{record}"
    );
    assert_eq!(record["agent_kind"], "spiffe", "{record}");
    assert_eq!(record["agent_provider"], "agents", "{record}");

    let init = gatehouse_tests::raw::initialize_body("2025-06-18");
    // Same SPIFFE id, but issued by a CA the TrustProvider does not trust.
    let rogue = client_identity(&rogue_ca, "spiffe://example.org/ns/agents/sa/triage")?;
    let resp = gatehouse_tests::raw::post(
        &http(&server_ca.pem, Some(&rogue)),
        &url,
        None,
        None,
        init.clone(),
    )
    .send()
    .await?;
    assert_eq!(resp.status(), 401);
    let body = resp.text().await?;
    assert!(body.contains("client certificate rejected"), "{body}");

    // No certificate at all.
    let resp = gatehouse_tests::raw::post(&http(&server_ca.pem, None), &url, None, None, init)
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    Ok(())
}
