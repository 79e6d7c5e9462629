//! The node's secret key file: where it lives, the passphrase that may
//! protect it and the three places that passphrase is taken from, and the
//! revocation certificate written beside it at `cerd init`.
//!
//! This is the only module that reads a passphrase. It never logs one and
//! never keeps one past loading the key (sequoia holds the unlocked key
//! in memory, as it would an unprotected one).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::Config;
use crate::sign::{Identity, Passphrase, SignError};

/// File name of the node's secret key inside the data dir.
pub const IDENTITY_FILE: &str = "identity.key";
/// The environment variable a passphrase may be given in.
pub const PASSPHRASE_ENV: &str = "CERD_PASSPHRASE";
/// The systemd credential a passphrase may be given as
/// (`LoadCredential=cerd-passphrase:/etc/cerd/passphrase`).
pub const PASSPHRASE_CREDENTIAL: &str = "cerd-passphrase";

/// A passphrase and where it came from (for messages; never the value).
pub struct Given {
    pub passphrase: Passphrase,
    pub source: String,
}

pub fn key_path(config: &Config) -> PathBuf {
    config.data_dir.join(IDENTITY_FILE)
}

/// Where `cerd key rotate` keeps the new key until the rotation is done,
/// beside the key file. While it exists the node refuses to start.
pub fn pending_path(config: &Config) -> PathBuf {
    key_path(config).with_extension("next.key")
}

/// Where `cerd init` writes the revocation certificate.
pub fn revocation_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(format!("{}-revocation.asc", crate::trust::file_safe(name)))
}

/// The passphrase given to this node, if any: `passphrase_file` in the
/// configuration, else the systemd credential `cerd-passphrase`, else the
/// environment variable `CERD_PASSPHRASE`.
pub fn given(config: &Config) -> anyhow::Result<Option<Given>> {
    if let Some(file) = &config.passphrase_file {
        return Ok(Some(Given {
            passphrase: read_passphrase_file(file)?,
            source: format!("passphrase_file {}", file.display()),
        }));
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let credential = Path::new(&dir).join(PASSPHRASE_CREDENTIAL);
        if credential.exists() {
            return Ok(Some(Given {
                passphrase: read_passphrase_file(&credential)?,
                source: format!("the systemd credential {}", credential.display()),
            }));
        }
    }
    if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        use std::os::unix::ffi::OsStrExt;
        let passphrase = check_passphrase(value.as_bytes())
            .with_context(|| format!("the environment variable {PASSPHRASE_ENV}"))?;
        return Ok(Some(Given {
            passphrase,
            source: format!("the environment variable {PASSPHRASE_ENV}"),
        }));
    }
    Ok(None)
}

/// Reads a passphrase file: its bytes without one trailing line break.
pub fn read_passphrase_file(path: &Path) -> anyhow::Result<Passphrase> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the passphrase file {}", path.display()))?;
    check_passphrase(&bytes).with_context(|| format!("the passphrase file {}", path.display()))
}

/// Loads the node's key, unlocking it with the given passphrase if it is
/// protected. A protected key without a passphrase, or with the wrong
/// one, is refused with what to do.
pub fn load(config: &Config) -> anyhow::Result<Identity> {
    let path = key_path(config);
    let given = given(config)?;
    match Identity::load_with(&path, given.as_ref().map(|g| &g.passphrase)) {
        Ok(identity) => Ok(identity),
        Err(SignError::Locked { .. }) => bail!("{}", how_to_unlock(config, &path)),
        Err(SignError::WrongPassphrase { .. }) => bail!(
            "the passphrase from {} does not unlock the node's key {}",
            given.map(|g| g.source).unwrap_or_default(),
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("reading the node's key {}", path.display())),
    }
}

/// The message for a protected key and no passphrase.
fn how_to_unlock(config: &Config, path: &Path) -> String {
    let file = match &config.source {
        Some(source) => format!(
            "passphrase_file = \"/path/to/passphrase\" in {}",
            source.display()
        ),
        None => "passphrase_file = \"/path/to/passphrase\" in cerd.toml (--config)".to_owned(),
    };
    format!(
        "the node's key {} is protected by a passphrase and none was given: set {file}, \
         or the environment variable {PASSPHRASE_ENV}, or give it as the systemd credential \
         {PASSPHRASE_CREDENTIAL} (LoadCredential={PASSPHRASE_CREDENTIAL}:/etc/cerd/passphrase)",
        path.display()
    )
}

fn check_passphrase(bytes: &[u8]) -> anyhow::Result<Passphrase> {
    let bytes = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    if bytes.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(Passphrase::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_file_loses_one_line_break_and_may_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        for (content, ok) in [
            (&b"secret\n"[..], true),
            (b"secret\r\n", true),
            (b"secret", true),
            (b"\n", false),
            (b"", false),
        ] {
            std::fs::write(&file, content).unwrap();
            assert_eq!(read_passphrase_file(&file).is_ok(), ok, "{content:?}");
        }
        let err = read_passphrase_file(&dir.path().join("absent")).unwrap_err();
        assert!(format!("{err:#}").contains("absent"), "{err:#}");
    }

    #[test]
    fn a_protected_key_needs_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults(dir.path());
        config.data_dir = dir.path().to_owned();
        let identity = Identity::generate("KE-CIRT").unwrap();
        identity
            .save_with(&key_path(&config), Some(&Passphrase::new(b"right")))
            .unwrap();
        let text = std::fs::read_to_string(key_path(&config)).unwrap();
        assert!(text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));

        let err = load(&config).unwrap_err().to_string();
        assert!(err.contains("protected by a passphrase"), "{err}");
        assert!(err.contains(PASSPHRASE_ENV), "{err}");
        assert!(err.contains("LoadCredential"), "{err}");

        let file = dir.path().join("pass");
        std::fs::write(&file, "wrong\n").unwrap();
        config.passphrase_file = Some(file.clone());
        let err = load(&config).unwrap_err().to_string();
        assert!(err.contains("does not unlock"), "{err}");

        std::fs::write(&file, "right\n").unwrap();
        let loaded = load(&config).unwrap();
        assert_eq!(loaded.fingerprint(), identity.fingerprint());
        let sig = loaded.sign_detached(b"data");
        let mut trust = crate::sign::TrustStore::new();
        trust.insert(identity.public_cert());
        assert_eq!(
            trust.verify_detached(b"data", &sig).unwrap(),
            *identity.fingerprint()
        );
        let (public, protected) = Identity::peek(&key_path(&config)).unwrap();
        assert!(protected);
        assert_eq!(public.fingerprint(), identity.fingerprint());
    }
}
