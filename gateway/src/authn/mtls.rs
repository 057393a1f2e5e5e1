//! The `mtls` TrustProvider: client certificates.
//!
//! The TLS listener asks every client for a certificate but does not require one, and checks
//! only that the client holds the certificate's private key ([`OptionalClientCert`]). Chain
//! validation happens here, per request, against the CA bundle of each `mtls` TrustProvider in
//! the current snapshot — so CA bundles rotate with the configuration, without restarting the
//! listener. The identity comes from the SPIFFE URI SAN, the first DNS SAN, or the subject CN.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// The client certificate chain presented on a TLS connection (end entity first), attached to
/// every request of that connection.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Where the identity is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityFrom {
    /// `spiffe://…` URI SAN.
    SpiffeUri,
    /// First DNS SAN.
    DnsSan,
    /// Subject common name.
    CommonName,
}

/// One `mtls` TrustProvider.
pub struct MtlsProvider {
    /// TrustProvider name.
    pub name: String,
    verifier: Arc<dyn ClientCertVerifier>,
    identity_from: IdentityFrom,
}

impl MtlsProvider {
    /// Build from the provider's PEM CA bundle.
    pub fn new(name: &str, ca_pem: &[u8], identity_from: &str) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert =
                cert.map_err(|e| format!("TrustProvider {name}: CA bundle is not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("TrustProvider {name}: CA bundle: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "TrustProvider {name}: the CA bundle holds no certificate"
            ));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| format!("TrustProvider {name}: {e}"))?;
        let identity_from = match identity_from {
            "spiffeUri" => IdentityFrom::SpiffeUri,
            "dnsSan" => IdentityFrom::DnsSan,
            "commonName" => IdentityFrom::CommonName,
            other => {
                return Err(format!(
                    "TrustProvider {name}: unknown identityFrom {other:?}"
                ));
            }
        };
        Ok(Self {
            name: name.to_string(),
            verifier,
            identity_from,
        })
    }

    /// The identity in a chain this provider's CA issued, or why not.
    pub fn identify(&self, peer: &PeerCertificates) -> Result<(IdentityFrom, String), String> {
        let (ee, intermediates) = peer
            .0
            .split_first()
            .ok_or_else(|| "no client certificate".to_string())?;
        self.verifier
            .verify_client_cert(ee, intermediates, UnixTime::now())
            .map_err(|e| {
                format!(
                    "TrustProvider {}: client certificate rejected: {e}",
                    self.name
                )
            })?;
        let id = identity(ee, self.identity_from).ok_or_else(|| {
            format!(
                "TrustProvider {}: the client certificate has no {}",
                self.name,
                match self.identity_from {
                    IdentityFrom::SpiffeUri => "spiffe:// URI SAN",
                    IdentityFrom::DnsSan => "DNS SAN",
                    IdentityFrom::CommonName => "subject common name",
                }
            )
        })?;
        Ok((self.identity_from, id))
    }
}

fn identity(der: &CertificateDer<'_>, from: IdentityFrom) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    match from {
        IdentityFrom::CommonName => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        IdentityFrom::SpiffeUri | IdentityFrom::DnsSan => {
            let san = cert.subject_alternative_name().ok()??;
            san.value
                .general_names
                .iter()
                .find_map(|n| match (n, from) {
                    (GeneralName::URI(u), IdentityFrom::SpiffeUri)
                        if u.starts_with("spiffe://") =>
                    {
                        Some(u.to_string())
                    }
                    (GeneralName::DNSName(d), IdentityFrom::DnsSan) => Some(d.to_string()),
                    _ => None,
                })
        }
    }
}

/// A client-certificate verifier for the listener: offers client authentication without
/// requiring it, and checks the handshake signatures (proof of the private key). Chains are
/// validated per request by [`MtlsProvider::identify`].
#[derive(Debug)]
pub struct OptionalClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl OptionalClientCert {
    /// With the given crypto provider's signature algorithms.
    pub fn new(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Deferred to the TrustProviders of the snapshot serving the request.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
