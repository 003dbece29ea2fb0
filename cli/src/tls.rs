//! How the terminal client trusts a camp's HTTPS. A camp server makes its own certificate
//! authority and sends it after its certificate; phones install it from the landing page. The
//! first connection to a server decides, and the decision is kept for every later one:
//!
//! - an authority given with `join --ca FILE` is the only one trusted;
//! - a server the system's roots vouch for (a public certificate) is trusted through them
//!   alone from then on;
//! - otherwise the authority the server sends is trusted (trust on first use, like ssh) once it
//!   vouches for the server's certificate and name; its SHA-256 fingerprint is printed, to
//!   compare with the landing page. After that only that authority is trusted.
//!
//! A kept decision that cannot be used (a damaged pin) is an error, never a new first use.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// What a server's certificates are checked against, as `device.json` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Never connected: the first connection decides.
    FirstUse,
    /// The system's roots.
    System,
    /// This authority (DER).
    Authority(Vec<u8>),
}

/// What the kept record says when the system's roots are trusted.
pub const SYSTEM: &str = "system";

/// The verifier, and what a first use decided.
#[derive(Debug)]
pub struct Pinning {
    provider: Arc<CryptoProvider>,
    pinned: Option<Arc<WebPkiServerVerifier>>,
    system: Option<Arc<WebPkiServerVerifier>>,
    first_use: bool,
    /// What this connection's first use decided.
    pub learned: Mutex<Option<Trust>>,
}

fn verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Option<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .ok()
}

fn system_verifier(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    (!roots.is_empty())
        .then(|| verifier(roots, provider))
        .flatten()
}

impl Pinning {
    /// A verifier for `trust`; `Err` with a sentence when a kept authority is unusable.
    pub fn new(trust: &Trust) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (pinned, system) = match trust {
            Trust::Authority(der) => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|e| format!("the kept certificate authority is unusable: {e}"))?;
                let pinned = verifier(roots, &provider)
                    .ok_or("the kept certificate authority is unusable")?;
                (Some(pinned), None)
            }
            Trust::System => (
                None,
                Some(system_verifier(&provider).ok_or("this system has no root certificates")?),
            ),
            Trust::FirstUse => (None, system_verifier(&provider)),
        };
        Ok(Arc::new(Self {
            provider,
            pinned,
            system,
            first_use: *trust == Trust::FirstUse,
            learned: Mutex::new(None),
        }))
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

    fn learn(&self, trust: Trust) {
        *self.learned.lock().unwrap_or_else(|p| p.into_inner()) = Some(trust);
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
        let unknown = || Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        if let Some(system) = &self.system {
            match system.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(verified) => {
                    if self.first_use {
                        self.learn(Trust::System);
                    }
                    return Ok(verified);
                }
                Err(error) if !self.first_use => return Err(error),
                Err(_) => {}
            }
        }
        if !self.first_use {
            return Err(unknown());
        }
        // First use: the authority the server sends last must vouch for its certificate and
        // name, like any other authority; then it is remembered.
        let authority = intermediates.last().ok_or_else(unknown)?;
        let mut roots = RootCertStore::empty();
        roots.add(authority.clone())?;
        let first_use = verifier(roots, &self.provider).ok_or_else(unknown)?;
        let verified = first_use.verify_server_cert(
            end_entity,
            &intermediates[..intermediates.len() - 1],
            server_name,
            ocsp_response,
            now,
        )?;
        self.learn(Trust::Authority(authority.to_vec()));
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
