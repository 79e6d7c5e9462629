//! Warninglists: values that are almost never what a report means to
//! name — private and documentation address ranges, loopback, well-known
//! public resolvers — in MISP's warninglist JSON format, so operators can
//! drop MISP's published lists into the folder too.
//!
//! Loading is from one folder (`warninglists_dir`), reloaded on change by
//! [`crate::watch`]; a file that cannot be read or parsed is reported and
//! the others stay in force. Matching is pure: an indicator is checked
//! against every list and the names of the lists it is on come back.
//! Filing such an indicator warns (or, strict, is refused); received ones
//! are flagged in searches, and playbooks skip them unless
//! `match: include_warninglisted: true`.

use std::path::{Path, PathBuf};

use cer_proto::model::IndicatorType;
use ipnet::IpNet;
use serde::Deserialize;

/// The lists in force.
#[derive(Debug, Clone, Default)]
pub struct Warninglists {
    lists: Vec<List>,
}

#[derive(Debug, Clone)]
struct List {
    name: String,
    entries: Entries,
}

#[derive(Debug, Clone)]
enum Entries {
    /// Exact values (case-insensitive).
    Strings(Vec<String>),
    /// Address ranges: an address inside, or a CIDR overlapping, matches.
    Cidrs(Vec<IpNet>),
    /// Host names: the name itself or any name under it (a URL's host too).
    Hostnames(Vec<String>),
    /// Any value containing one of these (case-insensitive).
    Substrings(Vec<String>),
}

/// A list file refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ListError {
    pub file: String,
    pub reason: String,
}

/// A warninglist file as MISP writes it.
#[derive(Deserialize)]
struct File {
    name: String,
    #[serde(rename = "type", default = "string_type")]
    kind: String,
    list: Vec<String>,
}

fn string_type() -> String {
    "string".into()
}

/// Largest list file read.
const MAX_FILE_BYTES: u64 = 32 << 20;

impl Warninglists {
    /// Reads every `*.json` file in `dir` (not hidden), in name order. A
    /// missing folder holds no lists.
    pub fn load_dir(dir: &Path) -> (Warninglists, Vec<ListError>) {
        let mut lists = Warninglists::default();
        let mut errors = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (lists, errors);
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
                    && p.is_file()
            })
            .collect();
        paths.sort();
        for path in paths {
            let file = path.display().to_string();
            match read(&path).and_then(|bytes| List::parse(&bytes)) {
                Ok(list) => lists.lists.push(list),
                Err(reason) => errors.push(ListError { file, reason }),
            }
        }
        (lists, errors)
    }

    /// A set of lists from file contents, for tests.
    pub fn from_json(files: &[&str]) -> Result<Warninglists, String> {
        let lists = files
            .iter()
            .map(|f| List::parse(f.as_bytes()))
            .collect::<Result<_, _>>()?;
        Ok(Warninglists { lists })
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The names of the lists `value` (of type `kind`) is on.
    pub fn matches(&self, kind: IndicatorType, value: &str) -> Vec<String> {
        let address = match kind {
            IndicatorType::Ipv4 | IndicatorType::Ipv6 => {
                value.parse::<std::net::IpAddr>().ok().map(IpNet::from)
            }
            IndicatorType::Cidr => value.parse::<IpNet>().ok(),
            _ => None,
        };
        let host = match kind {
            IndicatorType::Domain => Some(value.to_owned()),
            IndicatorType::Url => url::Url::parse(value)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned)),
            IndicatorType::Email => value.rsplit_once('@').map(|(_, d)| d.to_owned()),
            _ => None,
        };
        let lower = value.to_ascii_lowercase();
        self.lists
            .iter()
            .filter(|list| match &list.entries {
                Entries::Strings(values) => values.contains(&lower),
                Entries::Substrings(parts) => parts.iter().any(|p| lower.contains(p.as_str())),
                Entries::Cidrs(nets) => address.is_some_and(|addr| {
                    nets.iter()
                        .any(|net| net.contains(&addr) || addr.contains(net))
                }),
                Entries::Hostnames(names) => host.as_deref().is_some_and(|host| {
                    let host = host.trim_end_matches('.').to_ascii_lowercase();
                    names.iter().any(|name| {
                        host == *name
                            || host
                                .strip_suffix(name.as_str())
                                .is_some_and(|rest| rest.ends_with('.'))
                    })
                }),
            })
            .map(|list| list.name.clone())
            .collect()
    }
}

impl List {
    fn parse(bytes: &[u8]) -> Result<List, String> {
        let file: File = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a warninglist (name, type, list): {e}"))?;
        let name = file.name.trim().to_owned();
        if name.is_empty() || name.chars().any(char::is_control) || name.len() > 200 {
            return Err("name: must be one line of at most 200 bytes".into());
        }
        let values = file
            .list
            .iter()
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        let entries = match file.kind.as_str() {
            "string" => Entries::Strings(values.collect()),
            "substring" => Entries::Substrings(values.collect()),
            "hostname" => {
                Entries::Hostnames(values.map(|v| v.trim_end_matches('.').to_owned()).collect())
            }
            "cidr" => {
                let mut nets = Vec::new();
                for (i, value) in values.enumerate() {
                    // A bare address is its own /32 or /128.
                    let net = value.parse::<IpNet>().or_else(|_| {
                        value
                            .parse::<std::net::IpAddr>()
                            .map(IpNet::from)
                            .map_err(|_| format!("list[{i}]: '{value}' is not an address or CIDR"))
                    })?;
                    nets.push(net.trunc());
                }
                Entries::Cidrs(nets)
            }
            other => {
                return Err(format!(
                    "type: '{other}' is not supported (string, substring, hostname or cidr)"
                ))
            }
        };
        Ok(List { name, entries })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Warninglists {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warninglists");
        let (lists, errors) = Warninglists::load_dir(&dir);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(lists.len() >= 4, "{}", lists.len());
        lists
    }

    #[test]
    fn the_shipped_lists_cover_private_documentation_and_resolver_addresses() {
        let lists = shipped();
        let on = |kind, value: &str| lists.matches(kind, value);
        assert!(!on(IndicatorType::Ipv4, "10.1.2.3").is_empty());
        assert!(!on(IndicatorType::Ipv4, "100.64.0.1").is_empty());
        assert!(!on(IndicatorType::Ipv4, "192.0.2.44").is_empty());
        assert!(!on(IndicatorType::Ipv4, "127.0.0.1").is_empty());
        assert!(!on(IndicatorType::Ipv4, "169.254.10.10").is_empty());
        assert!(!on(IndicatorType::Ipv6, "2001:db8::7").is_empty());
        assert!(!on(IndicatorType::Ipv6, "fe80::1").is_empty());
        assert!(!on(IndicatorType::Ipv4, "8.8.8.8").is_empty());
        assert!(!on(IndicatorType::Ipv6, "2606:4700:4700::1111").is_empty());
        assert!(!on(IndicatorType::Cidr, "10.0.0.0/16").is_empty(), "inside");
        assert!(
            !on(IndicatorType::Cidr, "0.0.0.0/0").is_empty(),
            "overlapping"
        );
        assert!(on(IndicatorType::Ipv4, "8.8.8.9").is_empty());
        assert!(on(IndicatorType::Ipv4, "11.0.0.1").is_empty());
        assert!(on(IndicatorType::Ipv6, "2a00:1450::1").is_empty());
    }

    #[test]
    fn hostnames_match_names_under_them_and_strings_match_exactly() {
        let lists = Warninglists::from_json(&[
            r#"{"name": "cdn", "type": "hostname", "list": ["akamaiedge.net"]}"#,
            r#"{"name": "sinkholes", "type": "string", "list": ["Sinkhole.Example"]}"#,
            r#"{"name": "words", "type": "substring", "list": ["localhost"]}"#,
        ])
        .unwrap();
        assert_eq!(
            lists.matches(IndicatorType::Domain, "e1.akamaiedge.net"),
            ["cdn"]
        );
        assert_eq!(
            lists.matches(IndicatorType::Domain, "akamaiedge.net"),
            ["cdn"]
        );
        assert!(lists
            .matches(IndicatorType::Domain, "notakamaiedge.net")
            .is_empty());
        assert_eq!(
            lists.matches(IndicatorType::Url, "https://a.akamaiedge.net/x"),
            ["cdn"]
        );
        assert_eq!(
            lists.matches(IndicatorType::Domain, "sinkhole.example"),
            ["sinkholes"]
        );
        assert_eq!(
            lists.matches(IndicatorType::Url, "http://localhost.example/"),
            ["words"]
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason_and_the_rest_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"name": "ok", "type": "cidr", "list": ["192.0.2.0/24"]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"name": "bad", "type": "cidr", "list": ["not-an-address"]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"{"name": "r", "type": "regex", "list": []}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("d.json"), "not json").unwrap();
        let (lists, errors) = Warninglists::load_dir(dir.path());
        assert_eq!(lists.len(), 1);
        let reasons: Vec<String> = errors.iter().map(|e| e.reason.clone()).collect();
        assert_eq!(errors.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("'not-an-address' is not an address or CIDR"));
        assert!(reasons[1].contains("'regex' is not supported"));
        assert!(reasons[2].starts_with("not a warninglist"));
    }
}
