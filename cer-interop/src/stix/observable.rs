//! What cerd can hold of STIX observables: the comparisons of a parsed
//! pattern, and the cyber-observable objects (SCOs), that name an
//! indicator value.
//!
//! A pattern is taken whole or not at all. It maps when it is observations
//! joined by OR, without qualifiers, each an OR of comparisons, or an AND
//! of comparisons on one object where exactly one names a value (several
//! for a `file`: its name and hashes) and the rest only add context kept as
//! the comment (`network-traffic:dst_port = 443`). Anything else — AND or
//! FOLLOWEDBY between observations, qualifiers, negation, LIKE, MATCHES,
//! ranges, properties with no indicator type — refuses the whole pattern as
//! skipped, naming what; a value that is not valid for its type refuses it
//! as invalid.

use cer_proto::model::{Indicator, IndicatorType};
use serde_json::{Map, Value};

use super::clip;
use super::pattern::{Comparison, Expr, Join, Literal, Op, Operand, Step, Test};

/// Why an object gives no indicators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Valid STIX, but nothing the model can hold.
    Skipped(String),
    /// Wrong: a value that is not what its type says, a missing field.
    Invalid(String),
}

/// The STIX 2.1 cyber-observable object types.
pub(crate) const SCO_TYPES: &[&str] = &[
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

/// The indicators a whole pattern names.
pub(crate) fn from_pattern(expr: &Expr) -> Result<Vec<Indicator>, Refusal> {
    let mut out = Vec::new();
    observations(expr, &mut out)?;
    Ok(out)
}

/// The indicators an SCO names: the value of an address, domain name, URL
/// or email address, a file's name and MD5/SHA-1/SHA-256/SHA-512 hashes,
/// an autonomous system's number.
pub(crate) fn from_sco(kind: &str, object: &Map<String, Value>) -> Result<Vec<Indicator>, Refusal> {
    let text = |field: &str| -> Result<String, Refusal> {
        match object.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(Refusal::Invalid(format!("{field} must be a string"))),
            None => Err(Refusal::Invalid(format!("{kind} has no {field}"))),
        }
    };
    let found = match kind {
        "ipv4-addr" | "ipv6-addr" => vec![Found::address(kind, text("value")?)],
        "domain-name" => vec![Found::fixed(IndicatorType::Domain, text("value")?)],
        "url" => vec![Found::fixed(IndicatorType::Url, text("value")?)],
        "email-addr" => vec![Found::fixed(IndicatorType::Email, text("value")?)],
        "autonomous-system" => match object.get("number") {
            Some(Value::Number(n)) if n.is_u64() => {
                vec![Found::fixed(IndicatorType::Asn, n.to_string())]
            }
            _ => {
                return Err(Refusal::Invalid(
                    "number must be a non-negative integer".into(),
                ))
            }
        },
        "file" => {
            let mut found = Vec::new();
            if object.contains_key("name") {
                found.push(Found::fixed(IndicatorType::Filename, text("name")?));
            }
            if let Some(hashes) = object.get("hashes") {
                let Some(hashes) = hashes.as_object() else {
                    return Err(Refusal::Invalid("hashes must be an object".into()));
                };
                for (algorithm, value) in hashes {
                    let Some(kind) = hash_type(algorithm) else {
                        // Like a file's size or MIME type: a property the
                        // model does not keep, not a reason to refuse it.
                        continue;
                    };
                    let Some(value) = value.as_str() else {
                        return Err(Refusal::Invalid(format!(
                            "hashes.{} must be a string",
                            clip(algorithm, 40)
                        )));
                    };
                    found.push(Found::fixed(kind, value.to_owned()));
                }
            }
            if found.is_empty() {
                return Err(Refusal::Skipped(
                    "file has no name and no MD5, SHA-1, SHA-256 or SHA-512 hash".into(),
                ));
            }
            found
        }
        other => {
            return Err(Refusal::Skipped(format!(
                "{other} objects have no indicator type"
            )))
        }
    };
    resolve(found, &[], kind == "file")
}

/// The indicator type of a hash algorithm named in `hashes`: STIX's
/// `MD5`, `SHA-1`, `SHA-256`, `SHA-512`, in any case, with or without the
/// hyphen.
pub(crate) fn hash_type(algorithm: &str) -> Option<IndicatorType> {
    let key: String = algorithm
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .collect::<String>()
        .to_ascii_uppercase();
    match key.as_str() {
        "MD5" => Some(IndicatorType::Md5),
        "SHA1" => Some(IndicatorType::Sha1),
        "SHA256" => Some(IndicatorType::Sha256),
        "SHA512" => Some(IndicatorType::Sha512),
        _ => None,
    }
}

/// A value found, before validation.
#[derive(Debug, Clone)]
struct Found {
    kind: Want,
    raw: String,
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Fixed(IndicatorType),
    /// An `ipv4-addr`/`ipv6-addr` value: an address, or a CIDR block.
    Address(IndicatorType),
    /// What a network-traffic reference names: an address, a CIDR block or
    /// a domain name.
    Host,
}

impl Found {
    fn fixed(kind: IndicatorType, raw: String) -> Found {
        Found {
            kind: Want::Fixed(kind),
            raw,
        }
    }

    fn address(object: &str, raw: String) -> Found {
        let kind = if object == "ipv6-addr" {
            IndicatorType::Ipv6
        } else {
            IndicatorType::Ipv4
        };
        Found {
            kind: Want::Address(kind),
            raw,
        }
    }

    fn indicator(&self) -> Result<Indicator, Refusal> {
        let invalid = |e: cer_proto::FieldError| Refusal::Invalid(e.to_string());
        match self.kind {
            Want::Fixed(kind) => Indicator::new(kind, &self.raw).map_err(invalid),
            Want::Address(_) if self.raw.contains('/') => {
                Indicator::new(IndicatorType::Cidr, &self.raw).map_err(invalid)
            }
            Want::Address(kind) => Indicator::new(kind, &self.raw).map_err(invalid),
            Want::Host if self.raw.contains('/') => {
                Indicator::new(IndicatorType::Cidr, &self.raw).map_err(invalid)
            }
            Want::Host => [
                IndicatorType::Ipv4,
                IndicatorType::Ipv6,
                IndicatorType::Domain,
            ]
            .into_iter()
            .find_map(|kind| Indicator::new(kind, &self.raw).ok())
            .ok_or_else(|| {
                Refusal::Invalid(format!(
                    "'{}' is not an IP address or a domain name",
                    clip(&self.raw, 80)
                ))
            }),
        }
    }
}

/// Validates found values into indicators; `context` becomes each one's
/// comment, and so do the other values when they describe `one_file`.
fn resolve(
    found: Vec<Found>,
    context: &[String],
    one_file: bool,
) -> Result<Vec<Indicator>, Refusal> {
    let indicators: Vec<Indicator> = found
        .iter()
        .map(Found::indicator)
        .collect::<Result<_, _>>()?;
    let several = one_file && indicators.len() > 1;
    let mut out = Vec::with_capacity(indicators.len());
    for (i, indicator) in indicators.iter().enumerate() {
        let mut notes: Vec<String> = context.to_vec();
        if several {
            let others: Vec<String> = indicators
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| format!("{} {}", other.kind, other.value))
                .collect();
            notes.push(format!("same file as {}", others.join(", ")));
        }
        let mut indicator = indicator.clone();
        if !notes.is_empty() {
            indicator.comment = Some(clip(&notes.join("; "), Indicator::COMMENT_MAX_CHARS));
        }
        out.push(indicator);
    }
    Ok(out)
}

fn observations(expr: &Expr, out: &mut Vec<Indicator>) -> Result<(), Refusal> {
    match expr {
        Expr::Observation {
            comparison,
            qualifiers,
        } => {
            no_qualifiers(qualifiers)?;
            comparisons(comparison, out)
        }
        Expr::Join {
            op,
            items,
            qualifiers,
        } => {
            no_qualifiers(qualifiers)?;
            match op {
                Join::Or => items.iter().try_for_each(|item| observations(item, out)),
                Join::And => Err(Refusal::Skipped(
                    "AND between observations (things seen together) cannot be held as indicators"
                        .into(),
                )),
                Join::FollowedBy => Err(Refusal::Skipped(
                    "FOLLOWEDBY (things seen in sequence) cannot be held as indicators".into(),
                )),
            }
        }
    }
}

fn no_qualifiers(qualifiers: &[super::pattern::Qualifier]) -> Result<(), Refusal> {
    match qualifiers.first() {
        None => Ok(()),
        Some(q) => Err(Refusal::Skipped(format!(
            "the qualifier {} cannot be held as an indicator",
            q.as_str()
        ))),
    }
}

fn comparisons(comparison: &Comparison, out: &mut Vec<Indicator>) -> Result<(), Refusal> {
    match comparison {
        Comparison::Or(items) => items.iter().try_for_each(|item| comparisons(item, out)),
        Comparison::And(items) => {
            let mut tests = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Comparison::Test(test) => tests.push(test),
                    _ => {
                        return Err(Refusal::Skipped(
                            "OR inside AND within one observation cannot be held as indicators"
                                .into(),
                        ))
                    }
                }
            }
            out.extend(conjunction(&tests)?);
            Ok(())
        }
        Comparison::Test(test) => {
            out.extend(conjunction(&[test])?);
            Ok(())
        }
    }
}

/// What one comparison contributes.
enum Term {
    Values(Vec<Found>),
    /// A constraint kept as the comment (None: one that says nothing
    /// worth keeping, such as `dst_ref.type = 'ipv4-addr'`).
    Context(Option<String>),
}

fn conjunction(tests: &[&Test]) -> Result<Vec<Indicator>, Refusal> {
    let Some(object) = tests.first().map(|t| t.object.as_str()) else {
        return Ok(vec![]);
    };
    if let Some(other) = tests.iter().find(|t| t.object != object) {
        return Err(Refusal::Skipped(format!(
            "AND across objects ({object} and {}) cannot be held as indicators",
            clip(&other.object, 40)
        )));
    }
    let mut found = Vec::new();
    let mut context = Vec::new();
    for test in tests {
        match term(test)? {
            Term::Values(values) => found.push(values),
            Term::Context(Some(text)) => context.push(text),
            Term::Context(None) => {}
        }
    }
    match found.len() {
        0 => Err(Refusal::Skipped(format!(
            "{} names no value an indicator can hold",
            clip(&describe(tests[0]), 80)
        ))),
        1 => resolve(found.remove(0), &context, false),
        _ if object == "file" && found.iter().all(|values| values.len() == 1) => {
            resolve(found.into_iter().flatten().collect(), &context, true)
        }
        _ => Err(Refusal::Skipped(format!(
            "AND of several {object} values cannot be held as indicators"
        ))),
    }
}

fn term(test: &Test) -> Result<Term, Refusal> {
    let path: Vec<&str> = test
        .path
        .iter()
        .map(|step| match step {
            Step::Key(key) => key.as_str(),
            Step::Index(_) => "[]",
        })
        .collect();
    let shown = || clip(&describe(test), 80);
    match test.op {
        Op::Eq | Op::In | Op::IsSubset if !test.negated => {}
        Op::Eq | Op::In | Op::IsSubset => {
            return Err(Refusal::Skipped(format!(
                "negated comparison {} cannot be held as an indicator",
                shown()
            )))
        }
        Op::Like | Op::Matches => {
            return Err(Refusal::Skipped(format!(
                "{} (a {}) cannot be held as an indicator value",
                shown(),
                if test.op == Op::Like {
                    "wildcard"
                } else {
                    "regular expression"
                }
            )))
        }
        _ => {
            return Err(Refusal::Skipped(format!(
                "the comparison {} cannot be held as an indicator",
                shown()
            )))
        }
    }
    let object = test.object.as_str();
    let want = match (object, path.as_slice()) {
        ("ipv4-addr" | "ipv6-addr", ["value"]) => Some(if test.op == Op::IsSubset {
            Want::Fixed(IndicatorType::Cidr)
        } else if object == "ipv6-addr" {
            Want::Address(IndicatorType::Ipv6)
        } else {
            Want::Address(IndicatorType::Ipv4)
        }),
        ("network-traffic", ["dst_ref" | "src_ref", "value"]) => Some(if test.op == Op::IsSubset {
            Want::Fixed(IndicatorType::Cidr)
        } else {
            Want::Host
        }),
        (_, _) if test.op == Op::IsSubset => {
            return Err(Refusal::Skipped(format!(
                "{}: ISSUBSET is held only on IP addresses (as a CIDR range)",
                shown()
            )))
        }
        ("domain-name", ["value"]) => Some(Want::Fixed(IndicatorType::Domain)),
        ("url", ["value"]) => Some(Want::Fixed(IndicatorType::Url)),
        ("email-addr", ["value"]) | ("email-message", ["from_ref" | "sender_ref", "value"]) => {
            Some(Want::Fixed(IndicatorType::Email))
        }
        ("file", ["name"]) => Some(Want::Fixed(IndicatorType::Filename)),
        ("file", ["hashes", algorithm]) => match hash_type(algorithm) {
            Some(kind) => Some(Want::Fixed(kind)),
            None => {
                return Err(Refusal::Skipped(format!(
                    "hash algorithm {} has no indicator type (MD5, SHA-1, SHA-256, SHA-512 do)",
                    clip(algorithm, 40)
                )))
            }
        },
        ("autonomous-system", ["number"]) => Some(Want::Fixed(IndicatorType::Asn)),
        ("network-traffic", ["dst_ref" | "src_ref", "type"]) => return Ok(Term::Context(None)),
        ("network-traffic", ["dst_port" | "src_port"] | ["protocols", "[]"]) => None,
        _ => {
            return Err(Refusal::Skipped(format!(
                "{} has no indicator type",
                clip(&test.path_text(), 80)
            )))
        }
    };
    let Some(want) = want else {
        return Ok(Term::Context(Some(describe(test))));
    };
    let literals: Vec<&Literal> = match &test.operand {
        Operand::One(literal) => vec![literal],
        Operand::Set(items) => items.iter().collect(),
        Operand::None => vec![],
    };
    let mut values = Vec::with_capacity(literals.len());
    for literal in literals {
        let raw = match (literal, want) {
            (Literal::Str(text), _) => text.clone(),
            (Literal::Int(n), Want::Fixed(IndicatorType::Asn)) => n.to_string(),
            (other, _) => {
                return Err(Refusal::Invalid(format!(
                    "{} compares with {}, not a string",
                    clip(&test.path_text(), 80),
                    clip(&other.to_string(), 40)
                )))
            }
        };
        values.push(Found { kind: want, raw });
    }
    if values.is_empty() {
        return Err(Refusal::Skipped(format!("{} names no value", shown())));
    }
    Ok(Term::Values(values))
}

/// A comparison as a pattern writes it.
fn describe(test: &Test) -> String {
    let operand = match &test.operand {
        Operand::None => String::new(),
        Operand::One(literal) => format!(" {literal}"),
        Operand::Set(items) => format!(
            " ({})",
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let not = if test.negated { "NOT " } else { "" };
    if test.op == Op::Exists {
        return format!("EXISTS {}", test.path_text());
    }
    format!("{} {not}{}{operand}", test.path_text(), test.op.as_str())
}

#[cfg(test)]
mod tests;
