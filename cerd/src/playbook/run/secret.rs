//! Reading the secrets a webhook names (`${env:NAME}`, `${file:PATH}`)
//! when it runs, so a rotated secret needs no reload.
//!
//! A value read here goes into one request and nowhere else: every error
//! names the variable or the file, never what it holds, and
//! [`Secrets::redact`] takes the values out of anything recorded (an
//! answer that echoes a header, say).

use std::path::Path;

use tokio::io::AsyncReadExt as _;

use crate::playbook::spec::{SecretPart, SecretText};

/// A secret file larger than this is not a secret.
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// Values shorter than this are not looked for in recorded text: they
/// would match ordinary words and hide them.
const MIN_REDACTED: usize = 4;

/// The values read for one run, to keep them out of its record.
#[derive(Default)]
pub(super) struct Secrets {
    values: Vec<String>,
}

impl Secrets {
    /// Expands `text`, reading each secret it references. `what` names
    /// the field in errors (`hmac.secret`).
    pub(super) async fn expand(
        &mut self,
        text: &SecretText,
        what: &str,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for part in text.parts() {
            match part {
                SecretPart::Text(text) => out.extend_from_slice(text.as_bytes()),
                reference => out.extend(self.read(reference, what).await?),
            }
        }
        Ok(out)
    }

    /// Expands a header value: each secret must be printable ASCII on one
    /// line (a line break would start a header of its own). The literal
    /// parts were checked when the playbook loaded.
    pub(super) async fn header(&mut self, name: &str, text: &SecretText) -> Result<String, String> {
        let what = format!("header {name}");
        let mut out = String::new();
        for part in text.parts() {
            let reference = match part {
                SecretPart::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                reference => reference,
            };
            let value = self.read(reference, &what).await?;
            let bad = value
                .iter()
                .find(|b| !(**b == b'\t' || (b' '..=b'~').contains(*b)));
            match (bad, std::str::from_utf8(&value)) {
                (None, Ok(value)) => out.push_str(value),
                (Some(b'\r' | b'\n'), _) => {
                    return Err(format!(
                        "{what}: {reference} holds a line break, which a header cannot carry"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{what}: {reference} holds a character that is not printable ASCII, which a header cannot carry"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// One reference's value (never empty).
    async fn read(&mut self, reference: &SecretPart, what: &str) -> Result<Vec<u8>, String> {
        let value = match reference {
            SecretPart::Text(text) => return Ok(text.as_bytes().to_vec()),
            SecretPart::Env(name) => std::env::var_os(name)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .ok_or_else(|| format!("{what}: environment variable {name} is not set"))?,
            SecretPart::File { path, .. } => read_secret_file(path)
                .await
                .map_err(|reason| format!("{what}: {reason}"))?,
        };
        if value.is_empty() {
            return Err(format!("{what}: {reference} is empty"));
        }
        if value.len() >= MIN_REDACTED {
            self.values
                .push(String::from_utf8_lossy(&value).into_owned());
        }
        Ok(value)
    }

    /// `text` with every secret value read for this run replaced by
    /// `[secret]`.
    pub(super) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), "[secret]");
            }
        }
        out
    }
}

/// A secret file's content without its trailing line break, read without
/// blocking the runtime. The reason names the file, never its content.
async fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "secret file {shown} is larger than {} KiB",
            MAX_SECRET_FILE / 1024
        ));
    }
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}
