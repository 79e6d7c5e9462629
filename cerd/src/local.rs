//! Several nodes on one machine, for `cerd demo` and the benchmarks: each
//! in its own folder (`ROOT/NAME/`: `cerd.toml`, `data/`, `certs/`,
//! `playbooks/`), listening on loopback, with its own identity and the
//! others' certificates in its trust store.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::daemon;

/// One prepared node: identity created, trust store filled, not running.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Creates the nodes' folders and identities under `root`; every node
/// trusts every other.
pub fn prepare(root: &Path, names: &[&str]) -> anyhow::Result<Vec<LocalNode>> {
    let mut nodes = Vec::new();
    for name in names {
        let node = LocalNode {
            name: (*name).to_owned(),
            dir: root.join(name),
            port: free_port().context("finding a free port")?,
        };
        daemon::init(&node.config(&[], "30s")?, name, false, None)?;
        nodes.push(node);
    }
    for node in &nodes {
        let certs = node.dir.join("certs");
        std::fs::create_dir_all(&certs).with_context(|| format!("creating {}", certs.display()))?;
        for other in &nodes {
            std::fs::copy(
                other.certificate(),
                certs.join(format!("{}.asc", other.name)),
            )
            .with_context(|| format!("copying {}'s certificate", other.name))?;
        }
    }
    Ok(nodes)
}

impl LocalNode {
    /// Writes and loads this node's configuration, dialling `peers`.
    pub fn config(&self, peers: &[u16], anti_entropy: &str) -> anyhow::Result<Config> {
        std::fs::create_dir_all(self.dir.join("playbooks"))
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let mut text = format!(
            "name = \"{}\"\ndata_dir = \"data\"\nlisten = \"127.0.0.1:{}\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\nanti_entropy_interval = \"{anti_entropy}\"\n",
            self.name, self.port
        );
        for port in peers {
            text.push_str(&format!("\n[[peer]]\naddr = \"127.0.0.1:{port}\"\n"));
        }
        let path = self.dir.join("cerd.toml");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Config::load(&path).map_err(|errors| anyhow::anyhow!("{}: {errors:?}", path.display()))
    }

    /// The node's public certificate, as `cerd init` wrote it.
    pub fn certificate(&self) -> PathBuf {
        daemon::public_cert_path(&self.dir.join("data"), &self.name)
    }
}
