//! The TLS listener (rustls) with a test CA made by `rcgen`: an `rmcp` client over HTTPS, and
//! HTTP/2 negotiated by ALPN.

use gatehouse_tests::procs::{DemoServer, Gateway};
use gatehouse_tests::{ALICE_KEY, Scratch, mcp, raw};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

#[tokio::test]
async fn mcp_over_tls_with_http2() -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?
        .signed_by(&key, &issuer)?;

    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    std::fs::write(scratch.file("tls.crt"), cert.pem())?;
    std::fs::write(scratch.file("tls.key"), key.serialize_pem())?;
    let gw = Gateway::start(
        &scratch.manifests(),
        &scratch.file("gw.log"),
        &[
            "--tls-cert",
            scratch.file("tls.crt").to_str().unwrap(),
            "--tls-key",
            scratch.file("tls.key").to_str().unwrap(),
        ],
    )?;
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    let ca_pem = ca_cert.pem();

    let (client, _) = mcp::connect_with(
        &gw.route("/mcp/demo"),
        Some(ALICE_KEY),
        mcp::http_client(Some(ca_pem.as_bytes())),
    )
    .await?;
    let tools = client.list_all_tools().await?;
    assert!(tools.iter().any(|t| t.name == "echo"));
    client.cancel().await?;

    let http = mcp::http_client(Some(ca_pem.as_bytes()));
    let resp = raw::post(
        &http,
        &gw.route("/mcp/demo"),
        Some(ALICE_KEY),
        None,
        raw::initialize_body("2025-06-18"),
    )
    .send()
    .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.version(),
        reqwest::Version::HTTP_2,
        "ALPN should select h2"
    );

    // A client that does not trust the CA cannot connect.
    let untrusting = mcp::http_client(None);
    assert!(untrusting.get(gw.route("/mcp/demo")).send().await.is_err());
    Ok(())
}

/// A manifest directory whose McpGateway asks for TLS (`spec.listener.tls`) is refused at start
/// in local mode without `--tls-cert`/`--tls-key` — never served as plain HTTP.
#[test]
fn a_gateway_asking_for_tls_is_never_served_as_plain_http() -> anyhow::Result<()> {
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    let scratch = Scratch::quickstart("http://127.0.0.1:9/mcp")?;
    let gateway = std::fs::read_to_string(scratch.manifests().join("gateway.yaml"))?;
    assert!(gateway.contains("    port: 8080\n"));
    let indent = |pem: String| pem.replace('\n', "\n    ");
    scratch.write_manifest(
        "gateway.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: local-tls, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
            gateway.replace(
                "    port: 8080\n",
                "    port: 8080\n    tls:\n      secretRef: {name: local-tls}\n"
            ),
            indent(cert.pem()).trim_end(),
            indent(key.serialize_pem()).trim_end(),
        ),
    )?;
    let out = std::process::Command::new(gatehouse_tests::procs::binary("gatehouse-gateway"))
        .args(["run", "--manifests"])
        .arg(scratch.manifests())
        .args(["--listen", "127.0.0.1:0"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("sets spec.listener.tls") && stderr.contains("--tls-cert"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "nothing was served"
    );
    Ok(())
}
