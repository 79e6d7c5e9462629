//! Online backups: the store's records (`store::backup`) with the
//! certificates this node trusts, its own, and — only when asked — its
//! secret key. Runs on a blocking thread beside the writer.

use std::io::Write;

use crate::key::IDENTITY_FILE;
use crate::store::backup::{self, Header, Summary};

use super::{Node, NodeError};

/// Names of the files in a backup besides the records.
pub const OWN_CERT: &str = "own.asc";
pub const SECRET_KEY: &str = "identity.key";
/// This node's earlier keys, after a rotation.
pub const RETIRED_KEYS: &str = "identity.retired.key";
pub const CERTS: &str = "certs/";

impl Node {
    /// Writes a backup to `out`. Blocking.
    pub fn backup(
        &self,
        include_secret_key: bool,
        out: &mut dyn Write,
    ) -> Result<Summary, NodeError> {
        let mut files = vec![(OWN_CERT.to_owned(), self.identity.public_armored())];
        self.with_trust(|trust| {
            for cert in trust.iter() {
                if cert.fingerprint() != self.fingerprint() {
                    files.push((format!("{CERTS}{}.asc", cert.fingerprint()), cert.armored()));
                }
            }
        });
        // Key transitions adopted from peers (and this node's own): what
        // their later envelopes verify with.
        let adopted = self.config.certs_dir.join(crate::trust::ADOPTED_DIR);
        if let Ok(entries) = std::fs::read_dir(&adopted) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.is_file()) {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                files.push((
                    format!("{CERTS}{}/{name}", crate::trust::ADOPTED_DIR),
                    read(&path)?,
                ));
            }
        }
        if include_secret_key {
            let path = self.config.data_dir.join(IDENTITY_FILE);
            files.push((SECRET_KEY.to_owned(), read(&path)?));
            let retired = crate::sign::retired_path(&path);
            if retired.exists() {
                files.push((RETIRED_KEYS.to_owned(), read(&retired)?));
            }
        }
        let header = Header {
            node: self.identity.name().to_owned(),
            fingerprint: self.fingerprint().to_string(),
            created: crate::audit::now(),
            store_format: crate::store::FORMAT_VERSION,
            includes_secret_key: include_secret_key,
        };
        let summary = backup::write(self.store(), &header, &files, out)?;
        tracing::info!(
            target: crate::audit::AUDIT,
            event = "backup",
            envelopes = summary.envelopes,
            records = summary.records,
            bytes = summary.bytes,
            secret_key = include_secret_key,
            "backup written"
        );
        Ok(summary)
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|e| NodeError::Sign(format!("reading {}: {e}", path.display())))
}
