//! TLS on the push endpoint.
//!
//! The serving certificate comes from files (`--push-tls-cert`, `--push-tls-key`: a mounted
//! `kubernetes.io/tls` Secret) and the CA bundle gateways are told to trust from `--push-ca`.
//! [`watch`] re-reads all three every [`RELOAD_INTERVAL`]: when the kubelet updates the mounted
//! Secret (a renewal by cert-manager, a re-generated chart Secret) new handshakes get the new
//! certificate and the new CA reaches the gateways' ConfigMaps, without a restart. Open streams
//! keep the connection they have. A file that does not parse keeps the previous certificate
//! serving and is logged.

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use zeroize::Zeroizing;

/// How often the certificate, key and CA files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No PEM `CERTIFICATE` block in the file.
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// No usable PEM private key in the file.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC): {reason}")]
    NoKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key does not belong to the certificate, or is of an unsupported kind.
    #[error("the certificate {cert} and the key {key} cannot be served together: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Where the serving certificate and key are.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificates of a PEM bundle (at least one).
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// Parses a certificate chain and its key into what a handshake presents.
pub fn certified_key(
    files: &CertFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let certs = certificates(&files.cert, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::NoKey {
        path: files.key.display().to_string(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, &rustls::crypto::ring::default_provider()).map_err(|e| {
        TlsError::Mismatch {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
            reason: e.to_string(),
        }
    })
}

/// Reads a CA bundle and checks it holds at least one certificate; returns its PEM text.
pub fn read_ca(path: &Path) -> Result<String, TlsError> {
    let pem = read(path)?;
    certificates(path, &pem)?;
    Ok(String::from_utf8_lossy(&pem).into_owned())
}

/// The certificate the push server presents, swapped in place on renewal.
pub struct ServingCert {
    files: CertFiles,
    current: RwLock<(Vec<u8>, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("files", &self.files)
            .finish()
    }
}

impl ServingCert {
    /// Loads the certificate and key; an error here stops the operator (a pod whose mounted
    /// Secret is unusable should not become ready).
    pub fn load(files: CertFiles) -> Result<Self, TlsError> {
        let (fingerprint, key) = Self::read(&files)?;
        Ok(Self {
            files,
            current: RwLock::new((fingerprint, Arc::new(key))),
        })
    }

    fn read(files: &CertFiles) -> Result<(Vec<u8>, CertifiedKey), TlsError> {
        let cert = read(&files.cert)?;
        let key = Zeroizing::new(read(&files.key)?);
        let parsed = certified_key(files, &cert, &key)?;
        // What changed is judged by the certificate: a renewal always brings a new one.
        Ok((cert, parsed))
    }

    /// Re-reads the files; swaps in a changed, valid certificate. Returns whether it changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let cert = read(&self.files.cert)?;
        if self.current.read().expect("not poisoned").0 == cert {
            return Ok(false);
        }
        let (cert, key) = Self::read(&self.files)?;
        *self.current.write().expect("not poisoned") = (cert, Arc::new(key));
        Ok(true)
    }

    /// A server configuration presenting this certificate (HTTP/1.1: one stream per
    /// connection), TLS 1.2 and 1.3 with the ring provider.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("not poisoned").1.clone())
    }
}

/// Re-reads the serving certificate (when TLS is on) and the CA bundle (when given) every
/// [`RELOAD_INTERVAL`], forever; a changed CA is sent on `ca_tx` (the workloads controller
/// copies it into every gateway's CA ConfigMap).
pub async fn watch(
    cert: Option<Arc<ServingCert>>,
    ca: Option<(PathBuf, watch::Sender<Option<String>>)>,
) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Some(cert) = &cert {
            match cert.reload() {
                Ok(true) => tracing::info!(cert = %cert.files.cert.display(),
                    "push endpoint: serving the renewed TLS certificate to new connections"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e,
                    "push endpoint: keeping the previous TLS certificate"),
            }
        }
        if let Some((path, tx)) = &ca {
            match read_ca(path) {
                Ok(pem) => {
                    let changed = tx.send_if_modified(|cur| {
                        if cur.as_deref() == Some(pem.as_str()) {
                            false
                        } else {
                            *cur = Some(pem);
                            true
                        }
                    });
                    if changed {
                        tracing::info!(ca = %path.display(),
                            "push endpoint: the CA bundle changed; updating the gateways' copies");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "push endpoint: keeping the previous CA bundle")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    fn issue() -> (String, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, cert: &str, key: &str) -> CertFiles {
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    #[test]
    fn a_renewed_certificate_is_swapped_in_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert1, key1) = issue();
        let files = write(dir.path(), &cert1, &key1);
        let serving = ServingCert::load(files.clone()).unwrap();
        let first = serving.current.read().unwrap().1.cert[0].clone();
        assert!(
            !serving.reload().unwrap(),
            "unchanged files are not a renewal"
        );

        let (_, cert2, key2) = issue();
        write(dir.path(), &cert2, &key1);
        let e = serving.reload().unwrap_err().to_string();
        assert!(e.contains("cannot be served together"), "{e}");
        assert_eq!(serving.current.read().unwrap().1.cert[0], first);

        write(dir.path(), &cert2, &key2);
        assert!(serving.reload().unwrap());
        assert_ne!(serving.current.read().unwrap().1.cert[0], first);
    }

    #[test]
    fn unusable_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = issue();
        let files = write(dir.path(), "not a certificate", &key);
        let e = ServingCert::load(files).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let files = write(dir.path(), &cert, "not a key");
        let e = ServingCert::load(files).unwrap_err().to_string();
        assert!(e.contains("holds no PEM private key"), "{e}");
        let missing = ServingCert::load(CertFiles {
            cert: dir.path().join("absent.crt"),
            key: dir.path().join("absent.key"),
        })
        .unwrap_err()
        .to_string();
        assert!(missing.contains("absent.crt"), "{missing}");

        std::fs::write(dir.path().join("ca.crt"), &ca).unwrap();
        assert_eq!(read_ca(&dir.path().join("ca.crt")).unwrap(), ca);
        std::fs::write(dir.path().join("ca.crt"), "junk").unwrap();
        assert!(read_ca(&dir.path().join("ca.crt")).is_err());
    }
}
