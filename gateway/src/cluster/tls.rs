//! Listener TLS in cluster mode: the certificate of `McpGateway.spec.listener.tls.secretRef`
//! (`tls.crt`, `tls.key`), read through the gateway's Secret watch and swapped in place on
//! rotation — new handshakes get the new certificate, open connections keep theirs, no restart.
//!
//! Whether the listener speaks TLS is fixed when it is bound, before any snapshot arrives, so
//! the operator tells the process (`--listener-tls`, rendered when the spec asks for TLS).
//! From then on the two must agree: a snapshot with TLS for a plain listener, or without TLS
//! for a TLS listener, is rejected (NACK) rather than served differently from what it says.
//! A TLS listener never falls back to plain HTTP: until a valid certificate is loaded it
//! completes no handshake, and the gateway is not ready (no configuration is applied without
//! its certificate).

use crate::state::SecretValues;
use arc_swap::ArcSwapOption;
use gatehouse_api::refs::SecretRef;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// How this process's MCP listener was started.
#[derive(Clone, Debug)]
pub enum ListenerMode {
    /// Plain HTTP.
    Plain,
    /// TLS with a certificate from files (`--tls-cert`/`--tls-key`): the snapshot's TLS Secret,
    /// if any, is not used.
    TlsFromFiles,
    /// TLS with the certificate of the snapshot's listener Secret (`--listener-tls`).
    TlsFromSnapshot(Arc<ListenerCert>),
}

/// The served listener certificate: what the TLS acceptor hands out on each handshake.
#[derive(Default)]
pub struct ListenerCert {
    current: ArcSwapOption<CertifiedKey>,
}

impl std::fmt::Debug for ListenerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerCert")
            .field("loaded", &self.current.load().is_some())
            .finish()
    }
}

impl ListenerCert {
    /// Serve `key` on every new handshake.
    pub fn install(&self, key: Arc<CertifiedKey>) {
        self.current.store(Some(key));
    }
}

impl ResolvesServerCert for ListenerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // `None` aborts the handshake: without a certificate nothing is served, not even
        // plain text.
        self.current.load_full()
    }
}

/// The certificate and key in the listener Secret `r`, checked to form a pair. Errors are
/// sentences naming the Secret, never its contents.
pub fn certified_key(r: &SecretRef, values: &SecretValues) -> Result<Arc<CertifiedKey>, String> {
    let name = format!("listener TLS Secret {}/{}", r.namespace, r.name);
    let Some(data) = values.whole(r) else {
        return Err(format!(
            "{name} does not exist (spec.listener.tls.secretRef); refusing to serve plain HTTP"
        ));
    };
    let (mut crt, mut key) = (None, None);
    for (k, v) in data {
        match k.as_str() {
            "tls.crt" => crt = Some(v),
            "tls.key" => key = Some(v),
            _ => {}
        }
    }
    let crt = crt.ok_or_else(|| format!("{name} has no tls.crt"))?;
    let key = key.ok_or_else(|| format!("{name} has no tls.key"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{name}: tls.crt is not PEM"))?;
    if chain.is_empty() {
        return Err(format!("{name}: tls.crt holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|_| format!("{name}: tls.key holds no PEM private key"))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{name}: tls.crt and tls.key do not belong together")
        }
        _ => format!("{name}: tls.key is not a usable private key (RSA, ECDSA or Ed25519)"),
    })?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use zeroize::Zeroizing;

    fn mk_pair(host: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn mk_values(entries: &[(&str, &str)]) -> SecretValues {
        let data = entries
            .iter()
            .map(|(k, v)| (k.to_string(), Zeroizing::new(v.as_bytes().to_vec())))
            .collect();
        SecretValues::from_secrets(BTreeMap::from([(("ns".into(), "gw-tls".into()), data)]))
    }

    #[test]
    fn a_valid_pair_loads_and_every_defect_is_named() {
        let r = SecretRef::whole("ns", "gw-tls");
        let (crt, key) = mk_pair("gw.example");
        let (_, other_key) = mk_pair("other.example");
        assert!(certified_key(&r, &mk_values(&[("tls.crt", &crt), ("tls.key", &key)])).is_ok());

        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("tls.key", &key)], "has no tls.crt"),
            (&[("tls.crt", &crt)], "has no tls.key"),
            (
                &[("tls.crt", "junk"), ("tls.key", &key)],
                "holds no PEM certificate",
            ),
            (
                &[("tls.crt", &crt), ("tls.key", "junk")],
                "holds no PEM private key",
            ),
            (
                &[("tls.crt", &crt), ("tls.key", &other_key)],
                "do not belong together",
            ),
            (
                &[("tls.crt", &key), ("tls.key", &key)],
                "holds no PEM certificate",
            ),
        ];
        for (entries, want) in cases {
            let e = certified_key(&r, &mk_values(entries)).expect_err(want);
            assert!(e.contains(want) && e.contains("ns/gw-tls"), "{e}");
            assert!(!e.contains("BEGIN"), "no PEM in errors: {e}");
        }
        let e = certified_key(&r, &SecretValues::default()).unwrap_err();
        assert!(
            e.contains("does not exist") && e.contains("plain HTTP"),
            "{e}"
        );
    }
}
