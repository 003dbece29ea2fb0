//! HTTPS on the LAN: the server's own certificate authority and a server certificate for its
//! addresses, kept in the data directory and renewed when the addresses change.
//!
//! Phones install the CA certificate once (from the plain-HTTP landing page); after that every
//! server certificate this FieldMesh makes is trusted, so service workers, Web Serial and
//! geolocation work at `https://<LAN address>`.
//!
//! The CA can vouch for local names only: it carries critical X.509 name constraints that
//! permit private and local addresses and names (and the operator's `--hostname`s), so even
//! with its key nobody can make a certificate a phone would accept for a public website.
//! It lives two years, and its folder is kept apart from the message data (a backup of the
//! messages does not copy its key). A CA made before these rules is replaced on start.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ServerError;

/// A server certificate lives this long (within what browsers accept for any CA).
const SERVER_CERT_DAYS: i64 = 397;
/// ...and is renewed when it has less than this left.
const RENEW_BEFORE_DAYS: u64 = 30;
/// The CA lives two years; it is renewed a month before it ends (phones then install the new
/// one, as the landing page explains).
const CA_DAYS: i64 = 730;
/// Networks a constrained CA may vouch for: private, shared, link-local and loopback.
const LOCAL_NETWORKS: [(&str, u8); 9] = [
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("100.64.0.0", 10),
    ("169.254.0.0", 16),
    ("127.0.0.0", 8),
    ("fc00::", 7),
    ("fe80::", 10),
    ("::1", 128),
];
/// Names a constrained CA may vouch for (and every name below them).
const LOCAL_NAMES: [&str; 4] = ["localhost", "local", "lan", "home.arpa"];

/// What the local CA may vouch for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaScope {
    /// Private and local addresses and names, and these host names of the operator's.
    Local(BTreeSet<String>),
    /// Anything (`--tls-ca-unconstrained`, for camps on public address space).
    Unconstrained,
}

impl CaScope {
    /// The CA's name constraints, or none.
    fn constraints(&self) -> Option<NameConstraints> {
        let CaScope::Local(hostnames) = self else {
            return None;
        };
        let mut permitted: Vec<GeneralSubtree> = LOCAL_NETWORKS
            .iter()
            .filter_map(|(addr, prefix)| {
                let addr: IpAddr = addr.parse().ok()?;
                Some(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                    addr, *prefix,
                )))
            })
            .collect();
        let names = LOCAL_NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(hostnames.iter().cloned());
        for name in names {
            match name.parse::<IpAddr>() {
                Ok(ip) => permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                    ip,
                    if ip.is_ipv4() { 32 } else { 128 },
                ))),
                Err(_) => permitted.push(GeneralSubtree::DnsName(name)),
            }
        }
        Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        })
    }

    /// Whether a certificate of this CA may carry `name` (an address or a host name).
    pub fn permits(&self, name: &str) -> bool {
        let CaScope::Local(hostnames) = self else {
            return true;
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return hostnames.iter().any(|h| h.parse::<IpAddr>() == Ok(ip))
                || LOCAL_NETWORKS.iter().any(|(net, prefix)| {
                    net.parse::<IpAddr>()
                        .is_ok_and(|net| in_network(ip, net, *prefix))
                });
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        LOCAL_NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(hostnames.iter().cloned())
            .any(|allowed| name == allowed || name.ends_with(&format!(".{allowed}")))
    }

    /// A record of the scope, kept beside the CA: another scope means another CA.
    fn record(&self) -> String {
        match self {
            CaScope::Local(hostnames) => {
                let mut record = String::from("local\n");
                record.extend(hostnames.iter().map(|n| format!("{n}\n")));
                record
            }
            CaScope::Unconstrained => "unconstrained\n".into(),
        }
    }
}

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
    names.extend(clean_hostnames(hostnames));
    names.extend(lan_addresses().iter().map(IpAddr::to_string));
    names
}

/// The operator's host names as certificates carry them: trimmed, lower case, none empty.
pub fn clean_hostnames(hostnames: &[String]) -> BTreeSet<String> {
    hostnames
        .iter()
        .map(|name| name.trim().to_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
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

/// Whether `ip` is in the network `net`/`prefix`.
fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Loads the local CA from `dir` (making it on first start, when it nears its end, or when
/// it was made for another scope) and a server certificate for `names`, made anew when
/// missing, expiring, or made for other names. `old_dir` is where FieldMesh kept its CA
/// before: one found there is retired (its key deleted), since it could vouch for anything.
pub fn local_ca(
    dir: &Path,
    old_dir: Option<&Path>,
    names: &BTreeSet<String>,
    scope: &CaScope,
) -> Result<TlsSetup, ServerError> {
    make_private_dir(dir)?;
    let paths = Paths::new(dir);
    if let Some(old) = old_dir.filter(|old| Paths::new(old).ca_key.exists()) {
        retire(old);
    }
    let current = match (
        std::fs::read_to_string(&paths.ca_cert),
        std::fs::read_to_string(&paths.ca_key),
        std::fs::read_to_string(&paths.ca_scope),
    ) {
        (Ok(cert), Ok(key), Ok(record)) if record == scope.record() && !ca_ending(&paths) => {
            Some((cert, KeyPair::from_pem(&key).map_err(tls_error)?))
        }
        _ => None,
    };
    let (ca_pem, ca_key) = match current {
        Some(ca) => ca,
        None => {
            let (cert, key) = make_ca(scope)?;
            write_private(&paths.ca_key, &key.serialize_pem())?;
            write_private(&paths.ca_cert, &cert)?;
            write_private(&paths.ca_scope, &scope.record())?;
            // Every server certificate of the old CA goes with it.
            let _ = std::fs::remove_file(&paths.server_names);
            tracing::warn!(
                path = %paths.ca_cert.display(),
                "made a new local certificate authority: phones install it again from the landing page"
            );
            (cert, key)
        }
    };
    let ca_der = pem_to_der(&ca_pem)?;

    // A certificate naming anything outside the CA's scope would be refused as a whole.
    let names: BTreeSet<String> = names.iter().filter(|n| scope.permits(n)).cloned().collect();
    let names = &names;
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
        write_private(&paths.server_cert, &cert.pem())?;
        write_private(&paths.server_names, &wanted)?;
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
    ca_scope: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    server_names: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("fieldmesh-ca.crt"),
            ca_key: dir.join("fieldmesh-ca.key"),
            ca_scope: dir.join("fieldmesh-ca.scope"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            server_names: dir.join("server.names"),
        }
    }
}

fn names_record(names: &BTreeSet<String>) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// Deletes a CA kept where FieldMesh kept it before these rules (it could vouch for any name),
/// with the server certificate it signed.
fn retire(old: &Path) {
    let paths = Paths::new(old);
    for file in [
        &paths.ca_key,
        &paths.ca_cert,
        &paths.server_key,
        &paths.server_cert,
        &paths.server_names,
    ] {
        let _ = std::fs::remove_file(file);
    }
    tracing::warn!(dir = %old.display(), "retired the old certificate authority, which could vouch for any name");
}

/// Whether the CA certificate was made long enough ago that it ends within a month.
fn ca_ending(paths: &Paths) -> bool {
    std::fs::metadata(&paths.ca_cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|made| SystemTime::now().duration_since(made).ok())
        .is_none_or(|age| age > Duration::from_secs((CA_DAYS as u64 - RENEW_BEFORE_DAYS) * 86_400))
}

/// Makes `dir` (and its parents) with access for the owner only.
fn make_private_dir(dir: &Path) -> Result<(), ServerError> {
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("cannot protect {}", dir.display())))?;
    }
    Ok(())
}

fn make_ca(scope: &CaScope) -> Result<(String, KeyPair), ServerError> {
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
    params.name_constraints = scope.constraints();
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

pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(io(format!("cannot write {}", path.display())))?;
    // A file made before (by an older FieldMesh) keeps its mode on open: narrow it too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("cannot protect {}", path.display())))?;
    }
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
        let scope = CaScope::Local(BTreeSet::new());
        let first = local_ca(dir.path(), None, &names(&["10.0.0.5"]), &scope).unwrap();
        let server_cert = std::fs::read(dir.path().join("server.crt")).unwrap();

        // Same names: same CA, same server certificate.
        let again = local_ca(dir.path(), None, &names(&["10.0.0.5"]), &scope).unwrap();
        assert_eq!(first.ca_der, again.ca_der);
        assert_eq!(
            std::fs::read(dir.path().join("server.crt")).unwrap(),
            server_cert
        );

        // The laptop moved to another network: same CA, new server certificate.
        let moved = local_ca(dir.path(), None, &names(&["192.168.1.20"]), &scope).unwrap();
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

    /// Whether a browser-grade verifier (webpki, which enforces name constraints) accepts a
    /// certificate for `name` signed with the CA in `dir`.
    fn accepted(dir: &Path, name: &str) -> bool {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        let paths = Paths::new(dir);
        let ca_pem = std::fs::read_to_string(&paths.ca_cert).unwrap();
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&paths.ca_key).unwrap()).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
        let leaf = server_params(&BTreeSet::from([name.to_string()]))
            .unwrap()
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pem_to_der(&ca_pem).unwrap()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        verifier
            .verify_server_cert(
                leaf.der(),
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    #[test]
    fn the_ca_vouches_for_local_names_only_even_for_whoever_holds_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let scope = CaScope::Local(BTreeSet::from(["fieldmesh.example.org".to_string()]));
        local_ca(dir.path(), None, &names(&[]), &scope).unwrap();
        for local in [
            "localhost",
            "camp.local",
            "fieldmesh.lan",
            "router.home.arpa",
            "fieldmesh.example.org",
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.9",
            "192.168.1.20",
            "100.64.7.7",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(
                accepted(dir.path(), local),
                "{local} is local and must be accepted"
            );
        }
        for public in [
            "www.example.com",
            "accounts.google.com",
            "example.org",
            "8.8.8.8",
            "172.32.0.1",
            "2001:4860:4860::8888",
        ] {
            assert!(!accepted(dir.path(), public), "{public} must be refused");
        }
    }

    #[test]
    fn an_unconstrained_ca_is_only_made_when_asked_and_a_new_scope_means_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let local = local_ca(
            dir.path(),
            None,
            &names(&[]),
            &CaScope::Local(BTreeSet::new()),
        )
        .unwrap();
        assert!(!accepted(dir.path(), "www.example.com"));
        let open = local_ca(dir.path(), None, &names(&[]), &CaScope::Unconstrained).unwrap();
        assert_ne!(local.ca_der, open.ca_der, "another scope: another CA");
        assert!(accepted(dir.path(), "www.example.com"));
        let (_, ca) = x509_parser::parse_x509_certificate(open.ca_der.as_deref().unwrap()).unwrap();
        let validity = ca.validity();
        let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
        assert!((CA_DAYS..=CA_DAYS + 1).contains(&days), "{days} days");
    }

    #[test]
    fn a_ca_kept_in_the_data_folder_is_retired_and_the_new_one_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("data/tls");
        std::fs::create_dir_all(&old).unwrap();
        let (cert, key) = make_ca(&CaScope::Unconstrained).unwrap();
        std::fs::write(old.join("fieldmesh-ca.key"), key.serialize_pem()).unwrap();
        std::fs::write(old.join("fieldmesh-ca.crt"), cert).unwrap();
        let new = dir.path().join("data-ca");
        let scope = CaScope::Local(BTreeSet::new());
        local_ca(&new, Some(&old), &names(&[]), &scope).unwrap();
        assert!(
            !old.join("fieldmesh-ca.key").exists(),
            "the old key is gone"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&new), 0o700);
            for file in std::fs::read_dir(&new).unwrap() {
                assert_eq!(mode(&file.unwrap().path()), 0o600);
            }
        }
    }

    #[test]
    fn the_server_certificate_names_only_what_the_ca_may_vouch_for() {
        let scope = CaScope::Local(BTreeSet::from(["fieldmesh.test".to_string()]));
        for local in [
            "fieldmesh.test",
            "a.fieldmesh.test",
            "camp.LOCAL.",
            "10.9.9.9",
            "fe80::2",
        ] {
            assert!(scope.permits(local), "{local}");
        }
        for public in [
            "192.0.2.2",
            "example.com",
            "notlocal",
            "fieldmesh.test.evil.com",
            "2001:db8::1",
        ] {
            assert!(!scope.permits(public), "{public}");
        }
        assert!(CaScope::Unconstrained.permits("192.0.2.2"));
        let dir = tempfile::tempdir().unwrap();
        local_ca(
            dir.path(),
            None,
            &names(&["192.0.2.2", "fieldmesh.test"]),
            &scope,
        )
        .unwrap();
        let named = std::fs::read_to_string(dir.path().join("server.names")).unwrap();
        assert!(named.contains("fieldmesh.test") && named.contains("127.0.0.1"));
        assert!(
            !named.contains("192.0.2.2"),
            "a public address would void the certificate"
        );
        assert!(accepted(dir.path(), "fieldmesh.test"));
    }
}
