//! How the terminal client trusts a camp's HTTPS. A camp server makes its own certificate
//! authority and sends it after its certificate; phones install it from the landing page. The
//! client trusts, in order: the authority given with `--ca` or pinned before; else the
//! system's roots (a camp with a public certificate); else, the first time only, the authority
//! the server sends (trust on first use, like ssh), whose SHA-256 fingerprint it prints to
//! compare with the landing page. After that a server showing another authority is refused.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The verifier, and what it learned on first use.
#[derive(Debug)]
pub struct Pinning {
    provider: Arc<CryptoProvider>,
    pinned: Option<Arc<WebPkiServerVerifier>>,
    system: Option<Arc<WebPkiServerVerifier>>,
    /// The authority trusted on first use during this connection, DER.
    pub learned: Mutex<Option<Vec<u8>>>,
}

fn verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Option<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .ok()
}

impl Pinning {
    /// Trusts `pinned` (DER) alone when given, else system roots, else the server's own
    /// authority on first use.
    pub fn new(pinned: Option<&[u8]>) -> Arc<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pinned = pinned.and_then(|der| {
            let mut roots = RootCertStore::empty();
            roots.add(CertificateDer::from(der.to_vec())).ok()?;
            verifier(roots, &provider)
        });
        let system = if pinned.is_none() {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            (!roots.is_empty())
                .then(|| verifier(roots, &provider))
                .flatten()
        } else {
            None
        };
        Arc::new(Self {
            provider,
            pinned,
            system,
            learned: Mutex::new(None),
        })
    }

    /// A client configuration that verifies with this.
    pub fn config(self: &Arc<Self>) -> Result<ClientConfig, Error> {
        Ok(
            ClientConfig::builder_with_provider(Arc::clone(&self.provider))
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::clone(self) as Arc<dyn ServerCertVerifier>)
                .with_no_client_auth(),
        )
    }
}

/// SHA-256 of a certificate, as the landing page shows it ("AB:CD:…").
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ServerCertVerifier for Pinning {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(pinned) = &self.pinned {
            return pinned.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        if let Some(system) = &self.system {
            if let Ok(verified) = system.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                return Ok(verified);
            }
        }
        // First use: the authority the server sends last must vouch for its certificate and
        // name, like any other authority; then it is remembered.
        let authority = intermediates.last().ok_or(Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))?;
        let mut roots = RootCertStore::empty();
        roots.add(authority.clone())?;
        let first_use = verifier(roots, &self.provider).ok_or(Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))?;
        let verified = first_use.verify_server_cert(
            end_entity,
            &intermediates[..intermediates.len() - 1],
            server_name,
            ocsp_response,
            now,
        )?;
        *self.learned.lock().unwrap_or_else(|p| p.into_inner()) = Some(authority.to_vec());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
