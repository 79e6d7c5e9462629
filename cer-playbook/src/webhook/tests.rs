use std::path::Path;

use super::*;
use crate::{parse, Action, PlaybookError, Webhook};

/// A playbook whose only action is a webhook with these lines (indented
/// under `webhook:`, starting at line 5), in /etc/cerd/playbooks.
fn with_webhook(lines: &str) -> String {
    let body: String = lines.lines().map(|l| format!("      {l}\n")).collect();
    format!("name: t\non: [incident.filed]\nactions:\n  - webhook:\n{body}")
}

const FILE: &str = "/etc/cerd/playbooks/t.yaml";

fn webhook_of(text: &str) -> Webhook {
    let playbook = parse(text, FILE).unwrap_or_else(|e| panic!("{e}\n{text}"));
    match playbook.actions.into_iter().next() {
        Some(Action::Webhook(hook)) => hook,
        other => panic!("not a webhook: {other:?}"),
    }
}

fn secret(text: &str) -> Result<SecretText, String> {
    SecretText::parse(text, Path::new("/etc/cerd/playbooks"))
}

#[test]
fn https_urls_with_ports_paths_and_ipv6() {
    let url = WebhookUrl::parse("https://tickets.example/api/v2?queue=cert").unwrap();
    assert_eq!(url.scheme, Scheme::Https);
    assert_eq!(
        (url.host.as_str(), url.port, url.target.as_str()),
        ("tickets.example", 443, "/api/v2?queue=cert")
    );
    assert_eq!(url.to_string(), "https://tickets.example/api/v2?queue=cert");
    let url = WebhookUrl::parse("HTTPS://[::1]:8443").unwrap();
    assert_eq!(
        (url.scheme, url.host.as_str(), url.port, url.target.as_str()),
        (Scheme::Https, "::1", 8443, "/")
    );
    assert_eq!(url.authority(), "[::1]:8443");
    assert_eq!(url.to_string(), "https://[::1]:8443/");
    let url = WebhookUrl::parse("http://127.0.0.1:8080/hook").unwrap();
    assert_eq!((url.scheme, url.port), (Scheme::Http, 8080));
    let url = WebhookUrl::parse("http://Tickets.Example/a%20b").unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.target.as_str()),
        ("tickets.example", 80, "/a%20b")
    );
}

#[test]
fn url_refusals_say_why() {
    let cases = [
        (
            "ftp://x.example/",
            "'ftp://x.example/' is not an http:// or https:// URL",
        ),
        ("mailto:cert@x.example", "is not an http:// or https:// URL"),
        ("tickets.example/hook", "is not an http:// or https:// URL"),
        (
            "https://user:pw@x.example/",
            "URL must not carry user:password@; use a header",
        ),
        (
            "https://token@x.example/",
            "URL must not carry user:password@",
        ),
        ("https://x.example/#top", "URL must not have a #fragment"),
        ("https://x.example/#", "URL must not have a #fragment"),
        ("https://x.example/a\nb", "URL contains '\\n'"),
        ("https://x.example/\u{1b}[2J", "URL contains '\\u{1b}'"),
        ("https://x .example/", "URL contains ' '"),
        ("https://münchen.example/", "URL must be ASCII"),
        ("https://x.example/ü", "URL must be ASCII"),
        ("https://", "URL has no host"),
        ("https://x.example:0/", "the URL's port must not be 0"),
        (
            "https://x.example:70000/",
            "the URL's port is not a number from 1 to 65535",
        ),
        (
            "https://[::1/",
            "the URL's host is not a valid IPv6 address",
        ),
        ("https://a;b/", "'a;b' is not a valid host"),
    ];
    for (text, want) in cases {
        let got = WebhookUrl::parse(text).expect_err(text);
        assert!(got.contains(want), "{text}: got {got:?}, want {want:?}");
    }
}

#[test]
fn secret_references_parse_and_show_as_written() {
    let text = secret("Bearer ${env:TICKET_TOKEN}").unwrap();
    assert_eq!(
        text.parts(),
        [
            SecretPart::Text("Bearer ".into()),
            SecretPart::Env("TICKET_TOKEN".into())
        ]
    );
    assert_eq!(text.to_string(), "Bearer ${env:TICKET_TOKEN}");
    assert!(!text.is_literal());

    let text = secret("${file:secrets/hook.key}").unwrap();
    assert_eq!(
        text.parts(),
        [SecretPart::File {
            written: "secrets/hook.key".into(),
            path: "/etc/cerd/playbooks/secrets/hook.key".into()
        }]
    );
    assert_eq!(text.to_string(), "${file:secrets/hook.key}");
    let text = secret("${file:/run/secrets/token}").unwrap();
    assert!(
        matches!(&text.parts()[0], SecretPart::File { path, .. } if path == Path::new("/run/secrets/token"))
    );

    // `$$` is a literal `$`, so `$${` is a literal `${`; a lone `$` is
    // literal too.
    let text = secret("cost $5, $${env:X} and $$${env:A}").unwrap();
    assert_eq!(
        text.parts(),
        [
            SecretPart::Text("cost $5, ${env:X} and $".into()),
            SecretPart::Env("A".into())
        ]
    );
    // Display writes every `$` of literal text doubled, so it parses back
    // to the same parts.
    assert_eq!(secret(&text.to_string()).unwrap(), text);
    let plain = secret("Bearer abc").unwrap();
    assert!(plain.is_literal());
    assert_eq!(plain.to_string(), "Bearer abc");
    assert!(secret("").unwrap().parts().is_empty());
}

#[test]
fn bad_secret_references_are_refused() {
    let cases = [
        (
            "Bearer ${env:TOKEN",
            "unclosed '${'; write $${ for a literal ${",
        ),
        (
            "${TOKEN}",
            "unknown reference ${TOKEN}; write ${env:NAME} or ${file:PATH}",
        ),
        ("${vault:kv/token}", "unknown reference ${vault:kv/token}"),
        ("${ENV:TOKEN}", "unknown reference ${ENV:TOKEN}"),
        ("${env:}", "'' in ${env:…} is not a variable name"),
        (
            "${env:1TOKEN}",
            "'1TOKEN' in ${env:…} is not a variable name",
        ),
        (
            "${env:TICKET-TOKEN}",
            "'TICKET-TOKEN' in ${env:…} is not a variable name",
        ),
        (
            "${env: TOKEN}",
            "' TOKEN' in ${env:…} is not a variable name",
        ),
        ("${file:}", "${file:…} needs a file path"),
        ("${file:secrets/}", "'secrets/' in ${file:…} names a folder"),
    ];
    for (text, want) in cases {
        let got = secret(text).expect_err(text);
        assert!(got.starts_with(want), "{text}: got {got:?}, want {want:?}");
    }
}

#[test]
fn a_full_https_webhook_loads() {
    let hook = webhook_of(&with_webhook(
        r#"url: "https://tickets.example/api/cert/tickets"
ca_file: certs/ticketing-ca.pem
headers:
  Authorization: "Bearer ${env:TICKET_TOKEN}"
  X-Api-Key: "${file:/run/secrets/ticket-key}"
  X-Cert-Source: cerd
hmac:
  secret: "${env:HOOK_SECRET}"
retries: 3"#,
    ));
    assert_eq!(hook.url.scheme, Scheme::Https);
    assert_eq!(
        hook.ca_file.as_deref(),
        Some(Path::new("/etc/cerd/playbooks/certs/ticketing-ca.pem"))
    );
    let shown: Vec<String> = hook
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    assert_eq!(
        shown,
        [
            "Authorization: Bearer ${env:TICKET_TOKEN}",
            "X-Api-Key: ${file:/run/secrets/ticket-key}",
            "X-Cert-Source: cerd",
        ]
    );
    let hmac = hook.hmac.expect("hmac");
    assert_eq!(hmac.header, DEFAULT_SIGNATURE_HEADER);
    assert_eq!(hmac.secret.parts(), [SecretPart::Env("HOOK_SECRET".into())]);

    // Without ca_file and hmac: the system's roots, no signature; another
    // signature header may be named.
    let hook = webhook_of(&with_webhook(
        "url: \"https://tickets.example/\"\nhmac: {secret: \"${file:hook.key}\", header: X-Hub-Signature-256}",
    ));
    assert_eq!(hook.ca_file, None);
    let hmac = hook.hmac.expect("hmac");
    assert_eq!(hmac.header, "X-Hub-Signature-256");
    assert!(
        matches!(&hmac.secret.parts()[0], SecretPart::File { path, .. } if path == Path::new("/etc/cerd/playbooks/hook.key"))
    );
    let plain = webhook_of(&with_webhook("url: \"http://127.0.0.1:8080/\""));
    assert_eq!((plain.ca_file, plain.hmac), (None, None));
}

#[test]
fn webhook_refusals_name_line_column_field_and_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "url: \"http://127.0.0.1:8080/\"\nca_file: ca.pem",
            "t.yaml:6:16: actions[0].webhook.ca_file: applies to https:// URLs only; this URL is http://",
        ),
        (
            "url: \"https://x.example/\"\nca_file: \"\"",
            "t.yaml:6:16: actions[0].webhook.ca_file: must be the path of a PEM file",
        ),
        (
            "url: \"https://x.example/\"\nca_file: certs/",
            "t.yaml:6:16: actions[0].webhook.ca_file: names a folder; give the PEM file",
        ),
        (
            "url: \"https://x.example/\"\nca_file: \"${env:CA}\"",
            "t.yaml:6:16: actions[0].webhook.ca_file: is a path, not a secret reference",
        ),
        (
            "url: \"https://x.example/${env:HOST}\"",
            "t.yaml:5:12: actions[0].webhook.url: secret references are read in header values and hmac.secret only",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {Authorization: \"Bearer ${env:TICKET-TOKEN}\"}",
            "t.yaml:6:32: actions[0].webhook.headers.Authorization: 'TICKET-TOKEN' in ${env:…} is not a variable name",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {Authorization: \"Bearer ${secret:TOKEN}\"}",
            "t.yaml:6:32: actions[0].webhook.headers.Authorization: unknown reference ${secret:TOKEN}",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {Authorization: \"Bearer ${env:TOKEN\"}",
            "t.yaml:6:32: actions[0].webhook.headers.Authorization: unclosed '${'",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {X-Cer-Run-Key: abc}",
            "t.yaml:6:17: actions[0].webhook.headers.X-Cer-Run-Key: this header is set by cerd",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {X-A: a, x-a: b}",
            "t.yaml:6:25: actions[0].webhook.headers.x-a: is given twice (header names are case-insensitive)",
        ),
        (
            "url: \"https://x.example/\"\nhmac: {secret: hunter2}",
            "t.yaml:6:22: actions[0].webhook.hmac.secret: must reference the secret, ${env:NAME} or ${file:PATH}, not hold it",
        ),
        (
            "url: \"https://x.example/\"\nhmac: {header: X-Sig}",
            "t.yaml:6:13: actions[0].webhook.hmac.secret: is required",
        ),
        (
            "url: \"https://x.example/\"\nhmac: {secret: \"${env:K}\", algorithm: sha1}",
            "t.yaml:6:34: actions[0].webhook.hmac.algorithm: unknown key; valid keys here: secret, header",
        ),
        (
            "url: \"https://x.example/\"\nhmac: {secret: \"${env:K}\", header: \"X Sig\"}",
            "t.yaml:6:42: actions[0].webhook.hmac.header: not a valid header name",
        ),
        (
            "url: \"https://x.example/\"\nhmac: {secret: \"${env:K}\", header: Content-Type}",
            "t.yaml:6:42: actions[0].webhook.hmac.header: this header is set by cerd",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {X-Sig: a}\nhmac: {secret: \"${env:K}\", header: x-sig}",
            "t.yaml:7:42: actions[0].webhook.hmac.header: x-sig is also set in headers",
        ),
        (
            "url: \"https://x.example/\"\nheaders: {X-Cer-Signature-256: a}\nhmac: {secret: \"${env:K}\"}",
            "t.yaml:7:13: actions[0].webhook.hmac.header: X-Cer-Signature-256 (the default) is also set in headers",
        ),
        (
            "url: \"https://x.example/\"\nhmac: \"${env:K}\"",
            "t.yaml:6:13: actions[0].webhook.hmac: expected a mapping, got a string",
        ),
        (
            "url: \"https://x.example/\"\nbogus: 1",
            "t.yaml:6:7: actions[0].webhook.bogus: unknown key; valid keys here: url, timeout, headers, retries, ca_file, hmac",
        ),
    ];
    let mut failures = Vec::new();
    for (lines, want) in cases {
        let text = with_webhook(lines);
        let got = match parse(&text, "t.yaml") {
            Ok(p) => format!("accepted: {p:?}"),
            Err(e) => e.to_string(),
        };
        if !got.starts_with(want) {
            failures.push(format!("want: {want}\n got: {got}\n---\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn errors_never_echo_a_control_character() {
    // A reference name with an escape sequence in it is quoted escaped.
    let text = with_webhook("url: \"https://x.example/\"\nheaders: {X-A: \"${env:A\\e[2J}\"}");
    let errors = crate::parse_all(&text, "t.yaml").unwrap_err();
    let [PlaybookError::Invalid { reason, .. }] = &errors[..] else {
        panic!("{errors:?}");
    };
    assert!(!reason.contains('\u{1b}'), "{reason}");
    assert_eq!(reason, "a header value must be printable ASCII on one line");
}

#[test]
fn details_show_templates_never_values() {
    let hook = webhook_of(&with_webhook(
        "url: \"https://x.example/\"\nca_file: ca.pem\nheaders: {Authorization: \"Bearer ${env:TICKET_TOKEN}\"}\nhmac: {secret: \"${file:hook.key}\"}",
    ));
    assert_eq!(
        webhook_details(&hook.headers, hook.ca_file.as_deref(), hook.hmac.as_ref()),
        "Authorization: Bearer ${env:TICKET_TOKEN}; X-Cer-Signature-256: HMAC-SHA256 with ${file:hook.key}; CA /etc/cerd/playbooks/ca.pem"
    );
    assert_eq!(webhook_details(&[], None, None), "");
}
