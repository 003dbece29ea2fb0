//! HTTPS on the LAN: the server's own certificate authority and a server certificate for its
//! addresses, kept in the data directory and renewed when the addresses change.
//!
//! Phones install the CA certificate once (from the plain-HTTP landing page); after that every
//! server certificate this FieldMesh makes is trusted, so service workers, Web Serial and
//! geolocation work at `https://<LAN address>`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ServerError;

/// A server certificate lives this long (within what browsers accept for any CA).
const SERVER_CERT_DAYS: i64 = 397;
/// ...and is renewed when it has less than this left.
const RENEW_BEFORE_DAYS: u64 = 30;
/// The CA lives ten years: phones install it once.
const CA_DAYS: i64 = 3650;

/// What the HTTPS side serves with, and what the landing page offers.
pub struct TlsSetup {
    /// rustls configuration with the certificate chain and key.
    pub config: Arc<rustls::ServerConfig>,
    /// The local CA certificate to offer for download (DER), when FieldMesh made it.
    pub ca_der: Option<Vec<u8>>,
    /// The same in PEM.
    pub ca_pem: Option<String>,
    /// SHA-256 fingerprint of the CA certificate, for people to compare.
    pub ca_fingerprint: Option<String>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

fn tls_error(error: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(error.to_string())
}

/// The names and addresses the server certificate must cover: `localhost`, loopback, every
/// LAN address of this machine, and the operator's host names.
pub fn certificate_names(hostnames: &[String]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend(
        hostnames
            .iter()
            .map(|name| name.trim().to_lowercase())
            .filter(|n| !n.is_empty()),
    );
    names.extend(lan_addresses().iter().map(IpAddr::to_string));
    names
}

/// This machine's non-loopback addresses (where phones can reach it).
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|interface| interface.ip())
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .collect();
    // IPv4 first: what people type and what QR codes should carry.
    addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addresses.dedup();
    addresses
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Loads the operator's own certificate chain and key (PEM files).
pub fn from_files(cert: &Path, key: &Path) -> Result<TlsSetup, ServerError> {
    let cert_pem =
        std::fs::read(cert).map_err(io(format!("cannot read --tls-cert {}", cert.display())))?;
    let key_pem =
        std::fs::read(key).map_err(io(format!("cannot read --tls-key {}", key.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            tls_error(format!(
                "{} is not a PEM certificate chain: {e}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(tls_error(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| tls_error(format!("{} is not a PEM private key: {e}", key.display())))?;
    Ok(TlsSetup {
        config: server_config(chain, key)?,
        ca_der: None,
        ca_pem: None,
        ca_fingerprint: None,
    })
}

/// Loads the local CA from `dir` (making it on first start) and a server certificate for
/// `names`, made anew when missing, expiring, or made for other names.
pub fn local_ca(dir: &Path, names: &BTreeSet<String>) -> Result<TlsSetup, ServerError> {
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let paths = Paths::new(dir);
    let (ca_pem, ca_key) = match (
        std::fs::read_to_string(&paths.ca_cert),
        std::fs::read_to_string(&paths.ca_key),
    ) {
        (Ok(cert), Ok(key)) => (cert, KeyPair::from_pem(&key).map_err(tls_error)?),
        _ => {
            let (cert, key) = make_ca()?;
            write_private(&paths.ca_key, &key.serialize_pem())?;
            std::fs::write(&paths.ca_cert, &cert).map_err(io("cannot save the CA certificate"))?;
            tracing::info!(path = %paths.ca_cert.display(), "made a local certificate authority");
            (cert, key)
        }
    };
    let ca_der = pem_to_der(&ca_pem)?;

    let wanted = names_record(names);
    let current = std::fs::read_to_string(&paths.server_names).unwrap_or_default();
    let fresh = std::fs::metadata(&paths.server_cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|made| SystemTime::now().duration_since(made).ok())
        .is_some_and(|age| {
            age < Duration::from_secs((SERVER_CERT_DAYS as u64 - RENEW_BEFORE_DAYS) * 86_400)
        });
    if current != wanted || !fresh || !paths.server_key.exists() {
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(tls_error)?;
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = server_params(names)?
            .signed_by(&key, &issuer)
            .map_err(tls_error)?;
        write_private(&paths.server_key, &key.serialize_pem())?;
        std::fs::write(&paths.server_cert, cert.pem())
            .map_err(io("cannot save the server certificate"))?;
        std::fs::write(&paths.server_names, &wanted)
            .map_err(io("cannot save the certificate's names"))?;
        tracing::info!(names = %wanted.replace('\n', " "), "made a server certificate");
    }

    let key_pem =
        std::fs::read_to_string(&paths.server_key).map_err(io("cannot read the server key"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| tls_error(format!("the server key is not PEM: {e}")))?;
    let leaf = pem_to_der(
        &std::fs::read_to_string(&paths.server_cert)
            .map_err(io("cannot read the server certificate"))?,
    )?;
    // Send the CA with the leaf so clients that pin or inspect the CA see it.
    let chain = vec![
        CertificateDer::from(leaf),
        CertificateDer::from(ca_der.clone()),
    ];
    let fingerprint = sha256_hex(&ca_der);
    Ok(TlsSetup {
        config: server_config(chain, key)?,
        ca_der: Some(ca_der),
        ca_pem: Some(ca_pem),
        ca_fingerprint: Some(fingerprint),
    })
}

struct Paths {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    server_names: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("fieldmesh-ca.crt"),
            ca_key: dir.join("fieldmesh-ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            server_names: dir.join("server.names"),
        }
    }
}

fn names_record(names: &BTreeSet<String>) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

fn make_ca() -> Result<(String, KeyPair), ServerError> {
    let key = KeyPair::generate().map_err(tls_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    let machine = hostname_or_default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("FieldMesh local CA ({machine})"),
    );
    dn.push(DnType::OrganizationName, "FieldMesh");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    let cert = params.self_signed(&key).map_err(tls_error)?;
    Ok((cert.pem(), key))
}

fn server_params(names: &BTreeSet<String>) -> Result<CertificateParams, ServerError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into().map_err(tls_error)?),
        };
        params.subject_alt_names.push(san);
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "FieldMesh server");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SERVER_CERT_DAYS);
    Ok(params)
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, ServerError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|e| tls_error(format!("certificate is not PEM: {e}")))
}

fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(io(format!("cannot write {}", path.display())))?;
    file.write_all(contents.as_bytes())
        .map_err(io(format!("cannot write {}", path.display())))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn hostname_or_default() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "field laptop".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(extra: &[&str]) -> BTreeSet<String> {
        let mut set: BTreeSet<String> = ["localhost", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        set.extend(extra.iter().map(|s| s.to_string()));
        set
    }

    #[test]
    fn an_operators_own_certificate_is_used_and_bad_files_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["camp.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let setup = from_files(&cert_path, &key_path).unwrap();
        assert!(setup.ca_der.is_none(), "no local CA to hand out");

        std::fs::write(&key_path, "not a key").unwrap();
        let error = from_files(&cert_path, &key_path).err().unwrap().to_string();
        assert!(error.contains("key.pem"), "{error}");
        let error = from_files(&dir.path().join("missing.pem"), &key_path)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("missing.pem"), "{error}");
    }

    #[test]
    fn the_ca_is_kept_and_the_server_certificate_follows_the_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let first = local_ca(dir.path(), &names(&["10.0.0.5"])).unwrap();
        let server_cert = std::fs::read(dir.path().join("server.crt")).unwrap();

        // Same names: same CA, same server certificate.
        let again = local_ca(dir.path(), &names(&["10.0.0.5"])).unwrap();
        assert_eq!(first.ca_der, again.ca_der);
        assert_eq!(
            std::fs::read(dir.path().join("server.crt")).unwrap(),
            server_cert
        );

        // The laptop moved to another network: same CA, new server certificate.
        let moved = local_ca(dir.path(), &names(&["192.168.1.20"])).unwrap();
        assert_eq!(first.ca_der, moved.ca_der);
        assert_ne!(
            std::fs::read(dir.path().join("server.crt")).unwrap(),
            server_cert
        );
        assert!(std::fs::read_to_string(dir.path().join("server.names"))
            .unwrap()
            .contains("192.168.1.20"));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("fieldmesh-ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the CA key is private to its owner");
        }
    }
}
