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

/// A CA and a certificate it signed for the loopback names.
fn issue() -> anyhow::Result<(String, String, String)> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?
        .signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// The quickstart's `gateway.yaml` with `spec.listener.tls` naming a Secret holding `crt`/`key`.
fn gateway_with_tls(original: &str, crt: &str, key: &str) -> String {
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
    format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: local-tls, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
        original.replace(
            "    port: 8080\n",
            "    port: 8080\n    tls:\n      secretRef: {name: local-tls}\n"
        ),
        indent(crt),
        indent(key),
    )
}

/// Whether an MCP client trusting only `ca` can list tools through the gateway.
async fn lists_tools_trusting(url: &str, ca: &str) -> bool {
    match mcp::connect_with(url, Some(ALICE_KEY), mcp::http_client(Some(ca.as_bytes()))).await {
        Ok((client, _)) => {
            let ok = client.list_all_tools().await.is_ok();
            let _ = client.cancel().await;
            ok
        }
        Err(_) => false,
    }
}

/// Local mode serves `spec.listener.tls` from the manifests' own Secret: HTTPS only, the
/// certificate follows the Secret manifest on reload, and a broken one keeps the last good.
#[tokio::test]
async fn local_mode_serves_the_certificate_of_the_manifests_secret() -> anyhow::Result<()> {
    let probe = tempfile::tempdir()?;
    let demo = DemoServer::start(&probe.path().join("demo.log"))?;
    let scratch = Scratch::quickstart(&demo.url)?;
    let original = std::fs::read_to_string(scratch.manifests().join("gateway.yaml"))?;
    assert!(original.contains("    port: 8080\n"));
    let (ca1, crt1, key1) = issue()?;
    scratch.write_manifest("gateway.yaml", &gateway_with_tls(&original, &crt1, &key1))?;

    let gw = Gateway::start(&scratch.manifests(), &scratch.file("gw.log"), &[])?;
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    let url = gw.route("/mcp/demo");
    assert!(lists_tools_trusting(&url, &ca1).await);
    // Plain HTTP on the same port gets nothing.
    let plain = url.replacen("https://", "http://", 1);
    let r = reqwest::Client::new()
        .post(&plain)
        .header("x-api-key", ALICE_KEY)
        .body(raw::initialize_body("2025-06-18"))
        .send()
        .await;
    assert!(r.map(|r| !r.status().is_success()).unwrap_or(true));

    // Rotation: a new certificate in the Secret manifest is served without a restart.
    let (ca2, crt2, key2) = issue()?;
    scratch.write_manifest("gateway.yaml", &gateway_with_tls(&original, &crt2, &key2))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !lists_tools_trusting(&url, &ca2).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated certificate is not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !lists_tools_trusting(&url, &ca1).await,
        "the old certificate is still served"
    );

    // A broken certificate is refused; the last good one keeps serving.
    let failures = || {
        gw.metrics()
            .lines()
            .find(|l| l.starts_with("gatehouse_config_reload_failures_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = failures();
    scratch.write_manifest(
        "gateway.yaml",
        &gateway_with_tls(&original, &crt1, &key2), // a key that does not match
    )?;
    gatehouse_tests::procs::wait_until(
        "the broken certificate to be refused",
        std::time::Duration::from_secs(30),
        || failures() > before,
    )?;
    assert!(lists_tools_trusting(&url, &ca2).await);
    let log = std::fs::read_to_string(scratch.file("gw.log"))?;
    assert!(!log.contains("PRIVATE KEY"), "key material in the log");
    Ok(())
}

/// Without a valid certificate in the Secret, local mode does not start — it never serves the
/// configuration as plain HTTP.
#[test]
fn a_gateway_asking_for_tls_is_never_served_as_plain_http() -> anyhow::Result<()> {
    let (_, crt, _) = issue()?;
    let (_, _, other_key) = issue()?;
    let scratch = Scratch::quickstart("http://127.0.0.1:9/mcp")?;
    let gateway = std::fs::read_to_string(scratch.manifests().join("gateway.yaml"))?;
    scratch.write_manifest(
        "gateway.yaml",
        &gateway_with_tls(&gateway, &crt, &other_key),
    )?;
    let out = std::process::Command::new(gatehouse_tests::procs::binary("gatehouse-gateway"))
        .args(["run", "--manifests"])
        .arg(scratch.manifests())
        .args(["--listen", "127.0.0.1:0"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("sets spec.listener.tls") && stderr.contains("do not belong together"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "nothing was served"
    );
    Ok(())
}
