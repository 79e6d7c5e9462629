//! TLS for https webhooks: rustls with the ring provider (as the mesh
//! uses; no OpenSSL, no aws-lc), the server's certificate checked against
//! the system's roots or the one CA a webhook's `ca_file` names, and its
//! name always verified.
//!
//! The system's roots are loaded once, on a blocking thread, and kept. A
//! `ca_file` is read each time its webhook runs (without blocking the
//! runtime), so a renewed CA needs no reload.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A CA file larger than this is not a CA file.
const MAX_CA_FILE: u64 = 1 << 20;

/// Where the server's certificate must lead.
pub(super) struct Trust {
    config: Arc<ClientConfig>,
    /// The webhook's `ca_file`, for errors; None: the system's roots.
    ca_file: Option<String>,
}

/// Why a TLS connection failed, and whether asking again could help.
pub(super) struct TlsFailure {
    pub(super) reason: String,
    /// A refused certificate stays refused: not worth another try.
    pub(super) retry: bool,
}

/// Loaded once: reading the system's roots touches hundreds of files.
static SYSTEM: tokio::sync::OnceCell<Arc<ClientConfig>> = tokio::sync::OnceCell::const_new();

impl Trust {
    /// The roots to check a server against: only the CA in `ca_file`
    /// when given, else the system's. The reason names the file.
    pub(super) async fn new(ca_file: Option<&Path>) -> Result<Trust, String> {
        match ca_file {
            Some(path) => {
                let roots = read_ca_file(path).await?;
                Ok(Trust {
                    config: client_config(roots)?,
                    ca_file: Some(path.display().to_string()),
                })
            }
            None => {
                let config =
                    SYSTEM
                        .get_or_try_init(|| async {
                            let roots = tokio::task::spawn_blocking(system_roots).await.map_err(
                                |e| format!("loading the system's CA certificates failed: {e}"),
                            )??;
                            client_config(roots)
                        })
                        .await?;
                Ok(Trust {
                    config: config.clone(),
                    ca_file: None,
                })
            }
        }
    }

    /// The TLS handshake on `tcp`, checking the certificate is valid for
    /// `host` (a name or an IP address) and leads to these roots.
    pub(super) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, TlsFailure> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| TlsFailure {
            reason: format!("'{host}' cannot be checked against a certificate: {e}"),
            retry: false,
        })?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| self.failure(host, &e))
    }

    fn failure(&self, host: &str, error: &std::io::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let Some(rustls::Error::InvalidCertificate(problem)) = tls else {
            return TlsFailure {
                reason: format!("TLS handshake with {host} failed: {error}"),
                retry: true,
            };
        };
        let why = match (problem, &self.ca_file) {
            (C::UnknownIssuer, Some(file)) => {
                format!("its certificate is not signed by the CA in ca_file {file}")
            }
            (C::UnknownIssuer, None) => "its certificate is not signed by a CA this system trusts; set the webhook's ca_file to the CA that signed it".to_owned(),
            (C::NotValidForName | C::NotValidForNameContext { .. }, _) => {
                format!("its certificate is not valid for the name {host}")
            }
            (C::Expired | C::ExpiredContext { .. }, _) => "its certificate has expired".to_owned(),
            (other, _) => format!("its certificate was refused: {other:?}"),
        };
        TlsFailure {
            reason: format!("TLS: {host} is not trusted: {why}"),
            retry: false,
        }
    }
}

/// A client configuration with these roots, TLS 1.2 and 1.3 through
/// ring, and HTTP/1.1 offered by ALPN.
fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        return Err(format!(
            "no CA certificates found on this system{}; install them (ca-certificates) or set the webhook's ca_file",
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join("; "))
            }
        ));
    }
    Ok(roots)
}

/// The certificates in a PEM file, as the only roots.
async fn read_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read ca_file {shown}: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut pem)
        .await
        .map_err(|e| format!("cannot read ca_file {shown}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!(
            "ca_file {shown} is larger than {} KiB; not a CA file",
            MAX_CA_FILE / 1024
        ));
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| format!("ca_file {shown}: certificate {}: {e}", i + 1))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {shown}: certificate {} cannot be a CA: {e}", i + 1))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(roots)
}
