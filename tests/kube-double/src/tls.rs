//! A throwaway CA and server certificate generated at start (rcgen), the rustls server
//! configuration, and the kubeconfig pointing at the double.

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The generated CA and the server configuration using a leaf certificate it signed.
pub struct Tls {
    /// CA certificate (PEM), trusted by kubeconfig clients.
    pub ca_pem: String,
    /// rustls configuration (HTTP/1.1 only over ALPN).
    pub config: Arc<rustls::ServerConfig>,
}

/// Generates the CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and `ip`.
pub fn generate(ip: IpAddr) -> Result<Tls, Box<dyn std::error::Error + Send + Sync>> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gatehouse kube-double CA (test only)");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "kubernetes".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "kube-double");
    for addr in [
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ip,
    ] {
        if !leaf.subject_alt_names.contains(&SanType::IpAddress(addr)) {
            leaf.subject_alt_names.push(SanType::IpAddress(addr));
        }
    }
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    })
}

/// A kubeconfig (YAML) for `https://addr` trusting `ca_pem` and authenticating with `token`.
pub fn kubeconfig(addr: SocketAddr, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-double", "cluster": {"server": format!("https://{addr}"),
            "certificate-authority-data": ca}}],
        "users": [{"name": "kube-double", "user": {"token": token}}],
        "contexts": [{"name": "kube-double", "context": {"cluster": "kube-double",
            "user": "kube-double", "namespace": "default"}}],
        "current-context": "kube-double",
        "preferences": {}
    });
    serde_yaml::to_string(&doc).expect("kubeconfig serializes")
}
