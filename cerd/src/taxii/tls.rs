//! The TAXII listener's TLS: the operator's certificate and key, or a
//! self-signed pair generated in the data dir on the first start. rustls
//! with the ring provider, TLS 1.2 and 1.3 only. Blocking (file I/O).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The generated certificate and key in the data dir.
pub const GENERATED_CERT: &str = "taxii-cert.pem";
pub const GENERATED_KEY: &str = "taxii-key.pem";
/// The certificate clients trust for a generated pair: a CA made for this
/// one server certificate, whose key is thrown away once it has signed it.
pub const GENERATED_CA: &str = "taxii-ca.pem";
/// A certificate or key file larger than this is refused.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The server's TLS configuration, and what to log about it.
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, colon-separated hex.
    pub fingerprint: String,
    pub generated: bool,
    /// The leaf certificate's notAfter (None if it cannot be read).
    pub expires: Option<std::time::SystemTime>,
}

/// Loads `tls` (cert, key), or the generated pair, generating it first if
/// there is none.
pub fn load(
    tls: Option<&(PathBuf, PathBuf)>,
    data_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<Loaded> {
    let (cert_path, key_path, generated) = match tls {
        Some((cert, key)) => (cert.clone(), key.clone(), false),
        None => {
            let cert = data_dir.join(GENERATED_CERT);
            let key = data_dir.join(GENERATED_KEY);
            let generated = !cert.exists() || !key.exists();
            if generated {
                generate(&cert, &key, listen)?;
            }
            (cert, key, generated)
        }
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read_pem(&cert_path)?)
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading certificates from {}", cert_path.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("{} holds no certificate", cert_path.display());
    };
    let fingerprint = colon_hex(&Sha256::digest(leaf));
    let expires = not_after(leaf);
    let key = PrivateKeyDer::from_pem_slice(&read_pem(&key_path)?)
        .with_context(|| format!("reading the private key in {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a certificate and its key",
                cert_path.display(),
                key_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        cert_path,
        fingerprint,
        generated,
        expires,
    })
}

/// When a DER certificate stops being valid.
fn not_after(der: &[u8]) -> Option<std::time::SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let seconds = cert.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// A server certificate for the listen host (and `localhost` when it
/// listens on every address), signed by a CA made only for it: clients
/// trust `taxii-ca.pem` (OpenSSL-based clients do not take a self-signed
/// server certificate as a trust anchor). The CA's key is never written,
/// so it can sign nothing else. The server key file is mode 0600.
fn generate(cert: &Path, key: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut names = vec![listen.ip().to_string()];
    if listen.ip().is_unspecified() {
        names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("cerd TAXII CA for {listen}"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let ca = ca_params
        .self_signed(&ca_key)
        .context("generating the CA certificate")?;
    let mut params = CertificateParams::new(names).context("certificate parameters")?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("cerd TAXII {listen}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server_key = KeyPair::generate().context("generating the server key")?;
    let server = params
        .signed_by(&server_key, &ca, &ca_key)
        .context("signing the server certificate")?;
    write_private(key, server_key.serialize_pem().as_bytes())?;
    let ca_path = cert.with_file_name(GENERATED_CA);
    std::fs::write(&ca_path, ca.pem()).with_context(|| format!("writing {}", ca_path.display()))?;
    std::fs::write(cert, format!("{}{}", server.pem(), ca.pem()))
        .with_context(|| format!("writing {}", cert.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_PEM_BYTES {
        bail!("{} is larger than {MAX_PEM_BYTES} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
