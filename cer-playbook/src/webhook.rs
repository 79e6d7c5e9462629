//! What a webhook is given in a playbook: its URL (http or https), and
//! text that may name secrets without holding them.
//!
//! Secrets stay out of playbook files (which live in git): a header value
//! or an HMAC key says where the secret is — `${env:NAME}` in cerd's
//! environment, `${file:PATH}` in a file — and cerd reads it each time the
//! webhook runs, so a rotated secret needs no reload. This crate only
//! parses the references; it never reads a variable or a secret file, and
//! everything it shows (errors, `Display`) is the text as written.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::check::shown;

/// The header cerd sends the HMAC-SHA256 signature in, unless the
/// playbook names another (`hmac.header`).
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Cer-Signature-256";
/// The header every webhook request carries the run key in, the same on
/// every try, so a receiver can tell a retry from a new event.
pub const RUN_KEY_HEADER: &str = "X-Cer-Run-Key";

/// A validated `http(s)://host[:port][/path][?query]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub scheme: Scheme,
    /// Without brackets for IPv6, ready to connect to (and, for https,
    /// the name the server's certificate must hold).
    pub host: String,
    pub port: u16,
    /// The request target: path and query, at least `/`.
    pub target: String,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    /// TLS, the server's certificate checked against the system's roots
    /// or the webhook's `ca_file`, and its name always verified.
    Https,
}

/// Text that may reference secrets: literal parts, `${env:NAME}` and
/// `${file:PATH}`. `$$` is a literal `$` (so `$${` is a literal `${`); a
/// `$` followed by anything else is literal too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretText {
    parts: Vec<SecretPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretPart {
    Text(String),
    /// `${env:NAME}`: the variable in cerd's environment.
    Env(String),
    /// `${file:PATH}`: the file's content without its trailing line break.
    File {
        /// As written in the playbook, for display.
        written: String,
        /// Absolute: a relative path is resolved against the playbook's
        /// folder.
        path: PathBuf,
    },
}

/// `hmac:` — sign each request's body with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHmac {
    /// The key; always references a secret (see [`SecretText`]).
    pub secret: SecretText,
    /// Where the signature goes, `sha256=<lowercase hex>`.
    pub header: String,
}

impl WebhookUrl {
    /// Parses an `http://` or `https://` URL. Refused: other schemes,
    /// user:password@, a #fragment, whitespace, control or non-ASCII
    /// characters, port 0 and hosts with characters no host name has.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("URL contains {c:?}"));
        }
        if !text.is_ascii() {
            return Err(
                "URL must be ASCII: write the host in punycode (xn--…) and percent-encode the path"
                    .into(),
            );
        }
        let not_http = || format!("'{}' is not an http:// or https:// URL", shown(text, 80));
        let url = url::Url::parse(text).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => not_http(),
            url::ParseError::EmptyHost => "URL has no host".into(),
            url::ParseError::InvalidPort => "the URL's port is not a number from 1 to 65535".into(),
            url::ParseError::InvalidIpv6Address => {
                "the URL's host is not a valid IPv6 address".into()
            }
            url::ParseError::InvalidIpv4Address => {
                "the URL's host is not a valid IPv4 address".into()
            }
            other => format!("not a valid URL: {other}"),
        })?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(not_http()),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URL must not carry user:password@; use a header".into());
        }
        if url.fragment().is_some() {
            return Err("URL must not have a #fragment".into());
        }
        let host = match url.host() {
            None => return Err("URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(url::Host::Domain(name)) => {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                if !valid {
                    return Err(format!("'{}' is not a valid host", shown(name, 80)));
                }
                name.to_owned()
            }
        };
        let port = match url.port_or_known_default() {
            Some(0) | None => return Err("the URL's port must not be 0".into()),
            Some(port) => port,
        };
        let mut target = url.path().to_owned();
        if target.is_empty() {
            target.push('/');
        }
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        Ok(WebhookUrl {
            scheme,
            host,
            port,
            target,
            text: url.as_str().to_owned(),
        })
    }

    /// `host:port` as the Host header wants it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL, normalized (scheme and host in lower case, `/` for an empty
/// path).
impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

impl SecretText {
    /// Parses text with secret references; relative `${file:…}` paths are
    /// resolved against `base`, the playbook's folder.
    pub fn parse(text: &str, base: &Path) -> Result<SecretText, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let at = &rest[i..];
            if let Some(after) = at.strip_prefix("$$") {
                literal.push('$');
                rest = after;
            } else if let Some(inner) = at.strip_prefix("${") {
                let Some(end) = inner.find('}') else {
                    return Err("unclosed '${'; write $${ for a literal ${".into());
                };
                let part = reference(&inner[..end], base)?;
                if !literal.is_empty() {
                    parts.push(SecretPart::Text(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &inner[end + 1..];
            } else {
                literal.push('$');
                rest = &at[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(SecretPart::Text(literal));
        }
        Ok(SecretText { parts })
    }

    pub fn parts(&self) -> &[SecretPart] {
        &self.parts
    }

    /// Whether the text references no secret at all.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, SecretPart::Text(_)))
    }
}

/// The text as written (`Bearer ${env:TICKET_TOKEN}`): what run history,
/// logs and `cerctl playbook test` may show. Never a secret's value.
impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                SecretPart::Text(text) => f.write_str(&text.replace('$', "$$"))?,
                SecretPart::Env(name) => write!(f, "${{env:{name}}}")?,
                SecretPart::File { written, .. } => write!(f, "${{file:{written}}}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for SecretPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretPart::Text(_) => f.write_str("literal text"),
            SecretPart::Env(name) => write!(f, "${{env:{name}}}"),
            SecretPart::File { written, .. } => write!(f, "${{file:{written}}}"),
        }
    }
}

/// What a webhook sends besides its URL and body, as the playbook wrote
/// it (secrets as their references, never their values), for `cerctl
/// playbook test`: `Authorization: Bearer ${env:TICKET_TOKEN};
/// X-Cer-Signature-256: HMAC-SHA256 with ${env:HOOK_SECRET}; CA
/// /etc/cerd/ca.pem`. Empty when there is nothing to say.
pub fn webhook_details(
    headers: &[(String, SecretText)],
    ca_file: Option<&Path>,
    hmac: Option<&WebhookHmac>,
) -> String {
    let mut parts: Vec<String> = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    if let Some(hmac) = hmac {
        parts.push(format!("{}: HMAC-SHA256 with {}", hmac.header, hmac.secret));
    }
    if let Some(ca_file) = ca_file {
        parts.push(format!("CA {}", ca_file.display()));
    }
    parts.join("; ")
}

/// One `${…}` reference, without its braces.
fn reference(inner: &str, base: &Path) -> Result<SecretPart, String> {
    let unknown = || {
        format!(
            "unknown reference ${{{}}}; write ${{env:NAME}} or ${{file:PATH}}, and $${{ for a literal ${{",
            shown(inner, 40)
        )
    };
    let (kind, value) = inner.split_once(':').ok_or_else(unknown)?;
    match kind {
        "env" => {
            let valid = !value.is_empty()
                && !value.starts_with(|c: char| c.is_ascii_digit())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "'{}' in ${{env:…}} is not a variable name (letters, digits and '_', not starting with a digit)",
                    shown(value, 40)
                ));
            }
            Ok(SecretPart::Env(value.to_owned()))
        }
        "file" => {
            if value.trim().is_empty() || value.contains('\0') {
                return Err("${file:…} needs a file path".into());
            }
            if value.ends_with('/') {
                return Err(format!(
                    "'{}' in ${{file:…}} names a folder, not a file",
                    shown(value, 80)
                ));
            }
            let path = Path::new(value);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            };
            Ok(SecretPart::File {
                written: value.to_owned(),
                path,
            })
        }
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests;
