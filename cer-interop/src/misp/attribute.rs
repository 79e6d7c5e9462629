//! MISP attribute types against the model's indicator types, both ways:
//! which indicators an attribute's type and value give (composite types
//! give two), and which type, category and `to_ids` an indicator is
//! written with. The CSV importer reads MISP type names through here too.

use cer_proto::model::{Indicator, IndicatorType};

/// What one MISP attribute gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// One or two indicators, and a note for their comment (a port).
    Indicators(Vec<Indicator>, Option<String>),
    /// A reference (`link`): a report about the event, not something to
    /// detect; it goes into the incident's description.
    Reference(String),
    /// A type the model has no indicator type for.
    Unsupported,
}

/// How an indicator is written as a MISP attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MispType {
    pub name: &'static str,
    pub category: &'static str,
    /// MISP's default: whether the type is detection material at all.
    pub to_ids: bool,
}

/// The MISP attribute types the importer reads, for the documentation
/// and tests.
pub(crate) const READ_TYPES: &[&str] = &[
    "ip-src",
    "ip-dst",
    "ip-src|port",
    "ip-dst|port",
    "hostname",
    "domain",
    "hostname|port",
    "domain|ip",
    "url",
    "link",
    "email",
    "email-src",
    "email-dst",
    "email-reply-to",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "filename",
    "filename|md5",
    "filename|sha1",
    "filename|sha256",
    "filename|sha512",
    "malware-sample",
    "AS",
    "vulnerability",
];

/// The indicators a MISP attribute of type `kind` with `value` gives, or
/// why the value is not what its type says. Either every part of a
/// composite value is valid or the attribute gives nothing.
pub(crate) fn read(kind: &str, value: &str) -> Result<Mapped, String> {
    use IndicatorType as T;
    let one = |t: T, v: &str| -> Result<Mapped, String> {
        Ok(Mapped::Indicators(vec![indicator(t, v)?], None))
    };
    match kind {
        "ip-src" | "ip-dst" => one(ip_type(value), value),
        "ip-src|port" | "ip-dst|port" => {
            let (ip, port) = split_port(value)?;
            Ok(Mapped::Indicators(
                vec![indicator(ip_type(ip), ip)?],
                Some(format!("port {port}")),
            ))
        }
        "hostname|port" => {
            let (host, port) = split_port(value)?;
            Ok(Mapped::Indicators(
                vec![indicator(T::Domain, host)?],
                Some(format!("port {port}")),
            ))
        }
        "domain" | "hostname" => one(T::Domain, value),
        "domain|ip" => {
            let (domain, ip) = split_pair(value, "domain|ip")?;
            Ok(Mapped::Indicators(
                vec![indicator(T::Domain, domain)?, indicator(ip_type(ip), ip)?],
                None,
            ))
        }
        "url" => one(T::Url, value),
        "link" => Ok(Mapped::Reference(value.trim().to_owned())),
        "email" | "email-src" | "email-dst" | "email-reply-to" => one(T::Email, value),
        "md5" => one(T::Md5, value),
        "sha1" => one(T::Sha1, value),
        "sha256" => one(T::Sha256, value),
        "sha512" => one(T::Sha512, value),
        "filename" => one(T::Filename, value),
        "filename|md5" | "malware-sample" => file_and_hash(value, T::Md5, kind),
        "filename|sha1" => file_and_hash(value, T::Sha1, kind),
        "filename|sha256" => file_and_hash(value, T::Sha256, kind),
        "filename|sha512" => file_and_hash(value, T::Sha512, kind),
        "AS" => one(T::Asn, value),
        "vulnerability" => one(T::Cve, value),
        _ => Ok(Mapped::Unsupported),
    }
}

/// The MISP type an indicator is written as. Addresses and networks are
/// all `ip-dst`: the model keeps no direction, and `ip-dst` is what
/// blocking tools read.
pub(crate) fn write(kind: IndicatorType) -> MispType {
    use IndicatorType as T;
    let (name, category, to_ids) = match kind {
        T::Ipv4 | T::Ipv6 | T::Cidr => ("ip-dst", "Network activity", true),
        T::Domain => ("domain", "Network activity", true),
        T::Url => ("url", "Network activity", true),
        T::Email => ("email", "Payload delivery", true),
        T::Md5 => ("md5", "Payload delivery", true),
        T::Sha1 => ("sha1", "Payload delivery", true),
        T::Sha256 => ("sha256", "Payload delivery", true),
        T::Sha512 => ("sha512", "Payload delivery", true),
        T::Filename => ("filename", "Payload delivery", true),
        T::Asn => ("AS", "Network activity", false),
        T::Cve => ("vulnerability", "External analysis", false),
    };
    MispType {
        name,
        category,
        to_ids,
    }
}

/// An indicator's value as MISP writes it: AS numbers without `AS`
/// (MISP accepts only the number).
pub(crate) fn write_value(kind: IndicatorType, value: &str) -> &str {
    match kind {
        IndicatorType::Asn => value.strip_prefix("AS").unwrap_or(value),
        _ => value,
    }
}

/// ip-src and ip-dst hold single addresses of either family and, in
/// MISP, networks too.
fn ip_type(value: &str) -> IndicatorType {
    if value.contains('/') {
        IndicatorType::Cidr
    } else if value.contains(':') {
        IndicatorType::Ipv6
    } else {
        IndicatorType::Ipv4
    }
}

fn indicator(kind: IndicatorType, value: &str) -> Result<Indicator, String> {
    Indicator::new(kind, value).map_err(|e| e.to_string())
}

/// `address|port` (MISP's form), the port 0-65535.
fn split_port(value: &str) -> Result<(&str, u16), String> {
    let Some((host, port)) = value.rsplit_once('|') else {
        return Err("expected host|port".into());
    };
    let port = port.trim();
    let number = if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    {
        port.parse::<u16>().ok()
    } else {
        None
    };
    match number {
        Some(n) => Ok((host, n)),
        None => Err(format!(
            "port '{}' is not a number from 0 to 65535",
            crate::common::cut(port, 20)
        )),
    }
}

fn split_pair<'a>(value: &'a str, form: &str) -> Result<(&'a str, &'a str), String> {
    value
        .split_once('|')
        .ok_or_else(|| format!("expected {form}, with '|' between the two"))
}

/// `filename|hash`: the hash never holds '|', a file name might.
fn file_and_hash(value: &str, hash: IndicatorType, kind: &str) -> Result<Mapped, String> {
    let Some((name, digest)) = value.rsplit_once('|') else {
        return Err(format!("expected {kind} as filename|{hash}"));
    };
    Ok(Mapped::Indicators(
        vec![
            indicator(IndicatorType::Filename, name)?,
            indicator(hash, digest)?,
        ],
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use IndicatorType as T;

    fn got(kind: &str, value: &str) -> (Vec<(T, String)>, Option<String>) {
        match read(kind, value) {
            Ok(Mapped::Indicators(list, note)) => {
                (list.into_iter().map(|i| (i.kind, i.value)).collect(), note)
            }
            other => panic!("{kind} {value}: {other:?}"),
        }
    }

    #[test]
    fn every_read_type_maps() {
        let samples = [
            ("ip-src", "192.0.2.1", vec![(T::Ipv4, "192.0.2.1")]),
            ("ip-dst", "2001:DB8::1", vec![(T::Ipv6, "2001:db8::1")]),
            ("ip-dst", "192.0.2.0/24", vec![(T::Cidr, "192.0.2.0/24")]),
            (
                "hostname",
                "WWW.Evil.Example.",
                vec![(T::Domain, "www.evil.example")],
            ),
            ("domain", "evil.example", vec![(T::Domain, "evil.example")]),
            (
                "email-src",
                "a@evil.example",
                vec![(T::Email, "a@evil.example")],
            ),
            ("AS", "64500", vec![(T::Asn, "AS64500")]),
            (
                "vulnerability",
                "cve-2021-44228",
                vec![(T::Cve, "CVE-2021-44228")],
            ),
            (
                "domain|ip",
                "evil.example|192.0.2.7",
                vec![(T::Domain, "evil.example"), (T::Ipv4, "192.0.2.7")],
            ),
            (
                "filename|sha1",
                "a|b.exe|da39a3ee5e6b4b0d3255bfef95601890afd80709",
                vec![
                    (T::Filename, "a|b.exe"),
                    (T::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                ],
            ),
        ];
        for (kind, value, want) in samples {
            let want: Vec<(T, String)> = want.into_iter().map(|(t, v)| (t, v.to_owned())).collect();
            assert_eq!(got(kind, value).0, want, "{kind}");
        }
        assert_eq!(
            got("ip-dst|port", "192.0.2.1|443"),
            (vec![(T::Ipv4, "192.0.2.1".into())], Some("port 443".into()))
        );
        assert_eq!(
            got("ip-src|port", "2001:db8::1|8080").0,
            vec![(T::Ipv6, "2001:db8::1".into())]
        );
        for kind in READ_TYPES {
            assert_ne!(read(kind, "x"), Ok(Mapped::Unsupported), "{kind}");
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            read("ip-dst|port", "192.0.2.1|http").unwrap_err(),
            "port 'http' is not a number from 0 to 65535"
        );
        assert_eq!(
            read("domain|ip", "evil.example").unwrap_err(),
            "expected domain|ip, with '|' between the two"
        );
        // Half a composite is nothing.
        let err = read("domain|ip", "evil.example|999.0.0.1").unwrap_err();
        assert!(err.starts_with("ipv4: octet '999'"), "{err}");
        assert_eq!(read("ssdeep", "3:a:b"), Ok(Mapped::Unsupported));
        assert_eq!(
            read("link", " https://blog.example/post "),
            Ok(Mapped::Reference("https://blog.example/post".into()))
        );
    }

    #[test]
    fn written_types_read_back() {
        for kind in IndicatorType::ALL {
            let misp = write(kind);
            assert!(READ_TYPES.contains(&misp.name), "{kind}");
        }
        assert_eq!(write_value(T::Asn, "AS64500"), "64500");
        assert_eq!(write_value(T::Domain, "as.example"), "as.example");
    }
}
