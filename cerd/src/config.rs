//! Node configuration (`cerd.toml`): parsing, defaults and validation.
//!
//! Every key has a default, so a node starts with no file at all. Unknown
//! keys are errors. Relative paths are relative to the configuration
//! file's folder (or to the working directory when there is no file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cer_proto::model::IndicatorType;
use cer_proto::Fingerprint;
use serde::Deserialize;

/// Default QUIC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

/// The configuration as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    listen: Option<String>,
    api_socket: Option<PathBuf>,
    certs_dir: Option<PathBuf>,
    playbooks_dir: Option<PathBuf>,
    warninglists_dir: Option<PathBuf>,
    anti_entropy_interval: Option<String>,
    store_cache_mib: Option<u64>,
    /// Per indicator type: a lifetime such as "30d", or "never".
    #[serde(default)]
    expiry: std::collections::BTreeMap<String, String>,
    expiry_check_interval: Option<String>,
    #[serde(default, rename = "peer")]
    peers: Vec<PeerFile>,
    taxii: Option<TaxiiFile>,
    metrics: Option<MetricsFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    listen: Option<String>,
}

/// Default Prometheus listen address (`[metrics]` turns it on).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxiiFile {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    rate_limit: Option<u32>,
}

/// The HTTPS listener for TAXII 2.1 and feeds (`[taxii]`); off without it.
#[derive(Debug, Clone, PartialEq)]
pub struct Taxii {
    pub listen: SocketAddr,
    /// The certificate chain and key (PEM); None: a self-signed pair in
    /// the data dir, generated on the first start.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Requests per second each client may make (twice as many at once).
    pub rate_limit: u32,
}

/// Folder of the sled store inside the data dir.
pub const STORE_DIR: &str = "store";

/// Default requests per second per TAXII client.
pub const DEFAULT_TAXII_RATE: u32 = 50;

/// Default TAXII listen address.
pub const DEFAULT_TAXII_LISTEN: &str = "127.0.0.1:8443";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    addr: String,
    fingerprint: Option<String>,
}

/// The resolved configuration a node runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the configuration came from (None: embedded defaults).
    pub source: Option<PathBuf>,
    /// The node's name; None means "the name in the existing identity, or
    /// the host name for a new one".
    pub name: Option<String>,
    pub data_dir: PathBuf,
    /// A file holding the passphrase of the node's secret key, when the
    /// key is protected by one (see [`crate::key`]).
    pub passphrase_file: Option<PathBuf>,
    pub listen: SocketAddr,
    pub api_socket: PathBuf,
    pub certs_dir: PathBuf,
    pub playbooks_dir: PathBuf,
    /// MISP-format warninglists (see [`crate::warninglist`]).
    pub warninglists_dir: PathBuf,
    pub anti_entropy_interval: Duration,
    /// sled's page cache, in MiB: what the store keeps in memory.
    pub store_cache_mib: u64,
    /// How long an indicator of each type stays active when its author
    /// gave no `valid_until`, counted from when it was last seen. A type
    /// not here never expires by default.
    pub expiry: BTreeMap<IndicatorType, Duration>,
    /// How often playbooks that listen to `indicator.expired` are checked
    /// for indicators they acted on that have expired since.
    pub expiry_check_interval: Duration,
    pub peers: Vec<Peer>,
    pub taxii: Option<Taxii>,
    /// The plain-HTTP listener for Prometheus (`[metrics] listen`); off
    /// without the section.
    pub metrics_listen: Option<SocketAddr>,
}

/// The default lifetimes (`[expiry]` in cerd.toml overrides each): network
/// addresses churn within weeks, names and URLs within months; hashes,
/// CVEs, ASNs and file names stay true.
pub const DEFAULT_EXPIRY: &[(IndicatorType, u64)] = &[
    (IndicatorType::Ipv4, 30),
    (IndicatorType::Ipv6, 30),
    (IndicatorType::Cidr, 90),
    (IndicatorType::Domain, 90),
    (IndicatorType::Url, 90),
    (IndicatorType::Email, 180),
];

/// Default sled page cache, in MiB.
pub const DEFAULT_STORE_CACHE_MIB: u64 = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub addr: String,
    pub fingerprint: Option<Fingerprint>,
}

impl Config {
    /// The embedded defaults, relative to `base` (usually the working directory).
    pub fn defaults(base: &Path) -> Config {
        Config::resolve(File::default(), base, None).expect("embedded defaults are valid")
    }

    /// Reads and validates a configuration file, reporting every problem.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            vec![ConfigError::Read {
                path: path.to_owned(),
                source,
            }]
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        let file: File = toml::from_str(text).map_err(|e| {
            vec![ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string().trim_end().replace('\n', "\n  "),
            }]
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::resolve(file, base, Some(path))
    }

    fn resolve(file: File, base: &Path, source: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
        let shown = source
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("(defaults)"));
        let mut errors = Vec::new();
        let mut invalid = |field: &str, reason: String| {
            errors.push(ConfigError::Invalid {
                path: shown.clone(),
                field: field.to_owned(),
                reason,
            })
        };
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        if let Some(name) = &file.name {
            if let Err(reason) = check_name(name) {
                invalid("name", reason);
            }
        }
        let data_dir = at(file.data_dir.clone().unwrap_or_else(|| "cerd-data".into()));
        let passphrase_file = file.passphrase_file.clone().map(at);
        let listen_text = file.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                invalid(
                    "listen",
                    format!("'{listen_text}' is not an address:port such as {DEFAULT_LISTEN}"),
                );
                DEFAULT_LISTEN.parse().expect("default address parses")
            }
        };
        let api_socket = file
            .api_socket
            .clone()
            .map(at)
            .unwrap_or_else(|| data_dir.join("cerd.sock"));
        if api_socket.as_os_str().len() > 100 {
            invalid(
                "api_socket",
                format!(
                    "{} is longer than the ~100 bytes a Unix socket path may have",
                    api_socket.display()
                ),
            );
        }
        let certs_dir = at(file.certs_dir.clone().unwrap_or_else(|| "certs".into()));
        let playbooks_dir = at(file
            .playbooks_dir
            .clone()
            .unwrap_or_else(|| "playbooks".into()));
        let warninglists_dir = at(file
            .warninglists_dir
            .clone()
            .unwrap_or_else(|| "warninglists".into()));
        let interval_text = file
            .anti_entropy_interval
            .clone()
            .unwrap_or_else(|| "30s".into());
        let anti_entropy_interval = match humantime::parse_duration(&interval_text) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                invalid("anti_entropy_interval", "must be at least 1s".into());
                Duration::from_secs(30)
            }
            Err(e) => {
                invalid(
                    "anti_entropy_interval",
                    format!("'{interval_text}' is not a duration such as 30s or 5m: {e}"),
                );
                Duration::from_secs(30)
            }
        };
        let store_cache_mib = file.store_cache_mib.unwrap_or(DEFAULT_STORE_CACHE_MIB);
        if !(8..=65536).contains(&store_cache_mib) {
            invalid(
                "store_cache_mib",
                format!("{store_cache_mib} is outside 8 to 65536 (MiB)"),
            );
        }
        let mut expiry: BTreeMap<IndicatorType, Duration> = DEFAULT_EXPIRY
            .iter()
            .map(|(kind, days)| (*kind, Duration::from_secs(days * 86_400)))
            .collect();
        for (name, lifetime) in &file.expiry {
            let field = format!("expiry.{name}");
            let kind = match name.parse::<IndicatorType>() {
                Ok(kind) => kind,
                Err(e) => {
                    invalid(&field, e.reason);
                    continue;
                }
            };
            if lifetime.trim() == "never" {
                expiry.remove(&kind);
                continue;
            }
            match humantime::parse_duration(lifetime.trim()) {
                Ok(d) if d >= Duration::from_secs(60) => {
                    expiry.insert(kind, d);
                }
                Ok(_) => invalid(&field, "must be at least 1m, or \"never\"".into()),
                Err(e) => invalid(
                    &field,
                    format!("'{lifetime}' is not a duration such as 30d or 12h, or \"never\": {e}"),
                ),
            }
        }
        let check_text = file
            .expiry_check_interval
            .clone()
            .unwrap_or_else(|| "1m".into());
        let expiry_check_interval = match humantime::parse_duration(&check_text) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                invalid("expiry_check_interval", "must be at least 1s".into());
                Duration::from_secs(60)
            }
            Err(e) => {
                invalid(
                    "expiry_check_interval",
                    format!("'{check_text}' is not a duration such as 1m: {e}"),
                );
                Duration::from_secs(60)
            }
        };
        let mut peers = Vec::new();
        for (i, peer) in file.peers.iter().enumerate() {
            if peer.addr.trim().is_empty() || !peer.addr.contains(':') {
                invalid(
                    &format!("peer[{i}].addr"),
                    format!("'{}' is not a host:port", peer.addr),
                );
            }
            let fingerprint = match &peer.fingerprint {
                None => None,
                Some(f) => match Fingerprint::parse(f) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        invalid(&format!("peer[{i}].fingerprint"), e.reason);
                        None
                    }
                },
            };
            peers.push(Peer {
                addr: peer.addr.trim().to_owned(),
                fingerprint,
            });
        }
        let taxii = file.taxii.as_ref().map(|t| {
            let text = t.listen.as_deref().unwrap_or(DEFAULT_TAXII_LISTEN);
            let listen = text.parse::<SocketAddr>().unwrap_or_else(|_| {
                invalid(
                    "taxii.listen",
                    format!("'{text}' is not an address:port such as {DEFAULT_TAXII_LISTEN}"),
                );
                DEFAULT_TAXII_LISTEN
                    .parse()
                    .expect("default address parses")
            });
            let tls = match (&t.tls_cert, &t.tls_key) {
                (Some(cert), Some(key)) => Some((at(cert.clone()), at(key.clone()))),
                (None, None) => None,
                (Some(_), None) => {
                    invalid("taxii.tls_key", "required with tls_cert".into());
                    None
                }
                (None, Some(_)) => {
                    invalid("taxii.tls_cert", "required with tls_key".into());
                    None
                }
            };
            let rate_limit = match t.rate_limit {
                Some(0) => {
                    invalid(
                        "taxii.rate_limit",
                        "must be at least 1 request per second".into(),
                    );
                    DEFAULT_TAXII_RATE
                }
                Some(n) => n,
                None => DEFAULT_TAXII_RATE,
            };
            Taxii {
                listen,
                tls,
                rate_limit,
            }
        });
        let metrics_listen = file.metrics.as_ref().map(|m| {
            let text = m.listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN);
            text.parse::<SocketAddr>().unwrap_or_else(|_| {
                invalid(
                    "metrics.listen",
                    format!("'{text}' is not an address:port such as {DEFAULT_METRICS_LISTEN}"),
                );
                DEFAULT_METRICS_LISTEN
                    .parse()
                    .expect("default address parses")
            })
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            source: source.map(Path::to_owned),
            name: file.name,
            data_dir,
            passphrase_file,
            listen,
            api_socket,
            certs_dir,
            playbooks_dir,
            warninglists_dir,
            anti_entropy_interval,
            store_cache_mib,
            expiry,
            expiry_check_interval,
            peers,
            taxii,
            metrics_listen,
        })
    }
}

impl Config {
    /// The keys whose values differ between this configuration and
    /// `other`, in file order: what a reload reports as needing a restart.
    pub fn changed_keys(&self, other: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |key: &'static str, same: bool| {
            if !same {
                changed.push(key);
            }
        };
        check("name", self.name == other.name);
        check("data_dir", self.data_dir == other.data_dir);
        check("listen", self.listen == other.listen);
        check("api_socket", self.api_socket == other.api_socket);
        check("certs_dir", self.certs_dir == other.certs_dir);
        check("playbooks_dir", self.playbooks_dir == other.playbooks_dir);
        check(
            "warninglists_dir",
            self.warninglists_dir == other.warninglists_dir,
        );
        check(
            "anti_entropy_interval",
            self.anti_entropy_interval == other.anti_entropy_interval,
        );
        check(
            "store_cache_mib",
            self.store_cache_mib == other.store_cache_mib,
        );
        check("expiry", self.expiry == other.expiry);
        check(
            "expiry_check_interval",
            self.expiry_check_interval == other.expiry_check_interval,
        );
        check("peer", self.peers == other.peers);
        // `rate_limit` is applied on reload; the listener needs a restart.
        let listener = |t: &Option<Taxii>| t.as_ref().map(|t| (t.listen, t.tls.clone()));
        check("taxii", listener(&self.taxii) == listener(&other.taxii));
        check("metrics", self.metrics_listen == other.metrics_listen);
        changed
    }
}

/// Checks a CERT name: what peers and listings show, and the key's User ID.
pub fn check_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.len() > 64 {
        return Err(format!("at most 64 bytes, got {}", trimmed.len()));
    }
    if !trimmed
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' '))
    {
        return Err(format!(
            "'{trimmed}' may contain only letters, digits, spaces and - _ . /"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let config = Config::defaults(Path::new("/srv/cert"));
        assert_eq!(config.data_dir, Path::new("/srv/cert/cerd-data"));
        assert_eq!(
            config.api_socket,
            Path::new("/srv/cert/cerd-data/cerd.sock")
        );
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.anti_entropy_interval, Duration::from_secs(30));
        assert_eq!(config.taxii, None);
    }

    #[test]
    fn taxii_is_on_with_its_section() {
        let config = Config::parse("[taxii]\n", Path::new("/etc/cerd/cerd.toml")).unwrap();
        let taxii = config.taxii.unwrap();
        assert_eq!(taxii.listen.to_string(), DEFAULT_TAXII_LISTEN);
        assert_eq!(taxii.tls, None);
        let text = "[taxii]\nlisten = \"x\"\ntls_cert = \"c.pem\"\nport = 1\n";
        let errors = Config::parse(text, Path::new("c.toml")).unwrap_err();
        assert!(errors[0].to_string().contains("unknown field `port`"));
        let text = "[taxii]\nlisten = \"x\"\ntls_cert = \"c.pem\"\n";
        let errors = Config::parse(text, Path::new("c.toml")).unwrap_err();
        let fields: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(fields[0].contains("taxii.listen"), "{fields:?}");
        assert!(fields[1].contains("taxii.tls_key: required"), "{fields:?}");
    }

    #[test]
    fn metrics_are_opt_in() {
        assert_eq!(Config::defaults(Path::new(".")).metrics_listen, None);
        let config = Config::parse("[metrics]\n", Path::new("/etc/cerd/cerd.toml")).unwrap();
        assert_eq!(
            config.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some(DEFAULT_METRICS_LISTEN)
        );
        let errors =
            Config::parse("[metrics]\nlisten = \"9464\"\n", Path::new("c.toml")).unwrap_err();
        assert!(
            errors[0].to_string().contains("metrics.listen"),
            "{errors:?}"
        );
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let text =
            "name = \"KE-CIRT\"\ndata_dir = \"state\"\n[[peer]]\naddr = \"127.0.0.1:7444\"\n";
        let config = Config::parse(text, Path::new("/etc/cerd/cerd.toml")).unwrap();
        assert_eq!(config.name.as_deref(), Some("KE-CIRT"));
        assert_eq!(config.data_dir, Path::new("/etc/cerd/state"));
        assert_eq!(config.certs_dir, Path::new("/etc/cerd/certs"));
        assert_eq!(config.peers.len(), 1);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let errors = Config::parse("nmae = \"x\"\n", Path::new("c.toml")).unwrap_err();
        let text = errors[0].to_string();
        assert!(text.contains("unknown field `nmae`"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn every_invalid_value_is_reported() {
        let text = "name = \"\"\nlisten = \"nowhere\"\nanti_entropy_interval = \"soon\"\n[[peer]]\naddr = \"x\"\nfingerprint = \"12\"\n";
        let errors = Config::parse(text, Path::new("c.toml")).unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                ConfigError::Invalid { field, .. } => field.clone(),
                other => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "listen",
                "anti_entropy_interval",
                "peer[0].addr",
                "peer[0].fingerprint"
            ]
        );
    }
}
