//! The checks of a `webhook:` action: its URL, headers (whose values may
//! reference secrets), retries, `ca_file` and `hmac`.

use super::*;

impl Checker {
    pub(super) fn webhook(&mut self, node: &Node, field: &str) -> Option<Webhook> {
        let fields = self.mapping(node, field, WEBHOOK_KEYS)?;
        let mut ok = true;
        let url_field = format!("{field}.url");
        let url = self.required_in(&fields, "url", field).and_then(|node| {
            let text = self.plain_string(node, &url_field)?;
            if text.contains("${") {
                self.error(
                    node,
                    &url_field,
                    "secret references are read in header values and hmac.secret only, not in the URL",
                );
                return None;
            }
            WebhookUrl::parse(text.trim())
                .map_err(|reason| self.error(node, &url_field, reason))
                .ok()
        });
        ok &= url.is_some();
        let timeout = self.timeout(
            fields.get("timeout"),
            &format!("{field}.timeout"),
            DEFAULT_WEBHOOK_TIMEOUT,
            MAX_WEBHOOK_TIMEOUT,
        );
        ok &= timeout.is_some();

        let mut headers: Vec<(String, SecretText)> = Vec::new();
        if let Some(node) = fields.get("headers") {
            match self.string_map(node, &format!("{field}.headers")) {
                Some(entries) => {
                    for (name, value, name_at, value_node) in entries {
                        let entry_field = format!("{field}.headers.{}", shown(&name, 40));
                        if let Err(reason) = header_name(&name) {
                            self.error_at(name_at, &entry_field, reason);
                            ok = false;
                        } else if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                            self.error_at(
                                name_at,
                                &entry_field,
                                "is given twice (header names are case-insensitive)",
                            );
                            ok = false;
                        } else {
                            match self.secret_text(&value, value_node, &entry_field) {
                                Some(text) => headers.push((name, text)),
                                None => ok = false,
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }

        let retries = match fields.get("retries") {
            None => Some(DEFAULT_WEBHOOK_RETRIES),
            Some(node) => match node.value {
                Value::Int(n) if (0..=i128::from(MAX_WEBHOOK_RETRIES)).contains(&n) => {
                    u32::try_from(n).ok()
                }
                _ => {
                    self.error(
                        node,
                        &format!("{field}.retries"),
                        format!("must be a whole number from 0 to {MAX_WEBHOOK_RETRIES}"),
                    );
                    None
                }
            },
        };
        ok &= retries.is_some();

        let mut ca_file = None;
        if let Some(node) = fields.get("ca_file") {
            let ca_field = format!("{field}.ca_file");
            match self.plain_string(node, &ca_field) {
                Some(text) if text.trim().is_empty() || text.contains('\0') => {
                    self.error(node, &ca_field, "must be the path of a PEM file");
                    ok = false;
                }
                Some(text) if text.contains("${") => {
                    self.error(
                        node,
                        &ca_field,
                        "is a path, not a secret reference; a CA certificate is not secret",
                    );
                    ok = false;
                }
                Some(text) if text.ends_with('/') => {
                    self.error(node, &ca_field, "names a folder; give the PEM file");
                    ok = false;
                }
                Some(_) if url.as_ref().is_some_and(|u| u.scheme == Scheme::Http) => {
                    self.error(
                        node,
                        &ca_field,
                        "applies to https:// URLs only; this URL is http://",
                    );
                    ok = false;
                }
                Some(text) => ca_file = Some(self.base.join(text)),
                None => ok = false,
            }
        }

        let mut hmac = None;
        if let Some(node) = fields.get("hmac") {
            hmac = self.hmac(node, &format!("{field}.hmac"), &headers);
            ok &= hmac.is_some();
        }

        if !ok {
            return None;
        }
        Some(Webhook {
            url: url?,
            timeout: timeout?,
            headers,
            retries: retries?,
            ca_file,
            hmac,
        })
    }

    fn hmac(
        &mut self,
        node: &Node,
        field: &str,
        headers: &[(String, SecretText)],
    ) -> Option<WebhookHmac> {
        let fields = self.mapping(node, field, HMAC_KEYS)?;
        let secret_field = format!("{field}.secret");
        let secret = self
            .required_in(&fields, "secret", field)
            .and_then(|node| {
                let text = self.plain_string(node, &secret_field)?;
                let secret = self.secret_text(&text, node, &secret_field)?;
                if secret.is_literal() {
                    self.error(
                        node,
                        &secret_field,
                        "must reference the secret, ${env:NAME} or ${file:PATH}, not hold it: playbooks are kept in git",
                    );
                    return None;
                }
                Some(secret)
            });
        let header = match fields.get("header") {
            None => Some(DEFAULT_SIGNATURE_HEADER.to_owned()),
            Some(node) => {
                let header_field = format!("{field}.header");
                let name = self.plain_string(node, &header_field)?;
                let name = name.trim().to_owned();
                if let Err(reason) = header_name(&name) {
                    self.error(node, &header_field, reason);
                    None
                } else if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                    self.error(
                        node,
                        &header_field,
                        format!("{name} is also set in headers; the signature needs a header of its own"),
                    );
                    None
                } else {
                    Some(name)
                }
            }
        };
        // The default name can collide too.
        if let (Some(name), None) = (&header, fields.get("header")) {
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                self.error(
                    node,
                    &format!("{field}.header"),
                    format!("{name} (the default) is also set in headers; remove it there or name another header here"),
                );
                return None;
            }
        }
        Some(WebhookHmac {
            secret: secret?,
            header: header?,
        })
    }

    /// A header value or HMAC key as written: printable ASCII on one line,
    /// its secret references parsed (never read here).
    fn secret_text(&mut self, text: &str, node: &Node, field: &str) -> Option<SecretText> {
        if !text.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
            let what = if field.ends_with(".secret") {
                "the key"
            } else {
                "a header value"
            };
            self.error(
                node,
                field,
                format!("{what} must be printable ASCII on one line"),
            );
            return None;
        }
        SecretText::parse(text, &self.base)
            .map_err(|reason| self.error(node, field, reason))
            .ok()
    }
}

/// A header name a playbook may set: an HTTP token, not one cerd sets.
fn header_name(name: &str) -> Result<(), &'static str> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        Err("not a valid header name")
    } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        Err("this header is set by cerd")
    } else {
        Ok(())
    }
}
