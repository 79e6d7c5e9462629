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
/// A certificate or key file larger than this is refused.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The server's TLS configuration, and what to log about it.
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, colon-separated hex.
    pub fingerprint: String,
    pub generated: bool,
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
    })
}

/// A self-signed certificate for the listen host (and `localhost` when it
/// listens on every address); the key file is mode 0600.
fn generate(cert: &Path, key: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let mut names = vec![listen.ip().to_string()];
    if listen.ip().is_unspecified() {
        names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    }
    let pair = rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    write_private(key, pair.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, pair.cert.pem()).with_context(|| format!("writing {}", cert.display()))
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
