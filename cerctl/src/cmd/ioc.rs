//! `cerctl ioc search`: who reported an indicator, and when; `cerctl ioc
//! sight`: this CERT saw it (or found it a false positive).

use std::io::Write;

use cer_proto::api::{IocQuery, IocSearch, Matched, SearchMode, SearchedAs};

use super::{connect, print_json, Ctx, Io};
use crate::cli::{SearchArgs, SightArgs};
use crate::exit;
use crate::render::{self, age, one_line, or_dash};

pub(super) async fn search(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: SearchArgs,
) -> anyhow::Result<i32> {
    let query = IocQuery {
        value: args.value,
        kind: args.kind,
        limit: args.limit.map(|n| n as usize),
    };
    let found = connect(ctx).await?.search_ioc(&query).await?;
    // Like grep: no match is exit 1, with or without --json.
    let code = if found.matches.is_empty() {
        exit::NOT_FOUND
    } else {
        exit::OK
    };
    if ctx.json {
        print_json(io, &found)?;
    } else {
        write_search(io.stdout, &query.value, &found, ctx.wide)?;
    }
    Ok(code)
}

pub(super) async fn sight(ctx: &Ctx<'_>, io: &mut Io<'_>, args: SightArgs) -> anyhow::Result<i32> {
    let mut client = connect(ctx).await?;
    // The incidents to sight it on: the one given, or every one here that
    // names the value (under the type given, or any type it can be).
    let query = IocQuery {
        value: args.value.clone(),
        kind: args.kind,
        limit: None,
    };
    let mut found = client.search_ioc(&query).await?;
    // A sighting is of the value itself, not of what a range or a
    // wildcard would find.
    found.matches.retain(|m| m.matched == Matched::Exact);
    let targets: Vec<(uuid::Uuid, cer_proto::model::IndicatorType, String)> = match &args.incident {
        Some(given) => {
            let id = crate::resolve::id_arg(given)?;
            let id = super::incident_id(&mut client, given, id).await?;
            let named: Vec<_> = found
                .matches
                .iter()
                .filter(|m| m.incident == id)
                .map(|m| (m.incident, m.kind, m.value.clone()))
                .collect();
            if named.is_empty() {
                anyhow::bail!(
                    "incident {id} does not name {}; add it with `cerctl incident update {id} --ioc TYPE:VALUE` first",
                    one_line(&args.value)
                );
            }
            named
        }
        None => found
            .matches
            .iter()
            .map(|m| (m.incident, m.kind, m.value.clone()))
            .collect(),
    };
    if targets.is_empty() {
        writeln!(
            io.stderr,
            "cerctl: no incident here names {}; nothing to sight (file or update an incident with it first)",
            one_line(&args.value)
        )?;
        return Ok(exit::NOT_FOUND);
    }
    let mut filed = Vec::new();
    for (incident, kind, value) in targets {
        let sighting = cer_proto::api::SightIndicator {
            kind,
            value,
            seen: args.at,
            count: args.count,
            comment: args.comment.clone(),
            false_positive: args.false_positive,
        };
        let answer = client.sight(incident, &sighting).await?;
        filed.push(serde_json::json!({
            "incident": incident,
            "type": kind,
            "value": sighting.value,
            "envelope": answer.envelope,
        }));
        if !ctx.json {
            let what = if args.false_positive {
                "false positive reported"
            } else {
                "sighting filed"
            };
            writeln!(
                io.stdout,
                "{what} on incident {incident}: {kind}:{} ({})",
                one_line(&sighting.value),
                answer.envelope
            )?;
        }
    }
    if ctx.json {
        print_json(io, &serde_json::json!({ "sightings": filed }))?;
    }
    Ok(exit::OK)
}

fn write_search(
    out: &mut dyn Write,
    value: &str,
    found: &IocSearch,
    wide: bool,
) -> std::io::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    if found.matches.is_empty() {
        let searched: Vec<String> = found.searched.iter().map(searched_as).collect();
        return match searched.as_slice() {
            [] => writeln!(out, "no incident names {}", one_line(value)),
            _ => writeln!(
                out,
                "no incident names {} (searched {})",
                one_line(value),
                searched.join(", ")
            ),
        };
    }
    // How each matched, only when some did other than exactly.
    let show_how = found.matches.iter().any(|m| m.matched != Matched::Exact);
    let mut rows = Vec::new();
    for found in &found.matches {
        let reporters: Vec<String> = found
            .reported_by
            .iter()
            .map(|r| match &r.name {
                Some(name) => one_line(name),
                None => r.fingerprint.short().to_owned(),
            })
            .collect();
        // Marked where the node would not act on it.
        let mut value = render::indicator_value(found.kind, &found.value);
        if found.expired {
            value.push_str(" (expired)");
        }
        if !found.warninglists.is_empty() {
            value.push_str(" (warninglisted)");
        }
        let mut row = vec![
            found.kind.to_string(),
            value,
            render::incident_id(&found.incident, wide),
            one_line(&found.title),
            or_dash(found.severity),
            found.tlp.to_string(),
            reporters.join(", "),
            age(found.last_seen.0, now),
            found.sightings.to_string(),
        ];
        if show_how {
            row.insert(2, matched(found.matched).to_owned());
        }
        rows.push(row);
    }
    let headers = [
        "TYPE",
        "VALUE",
        "MATCH",
        "INCIDENT",
        "TITLE",
        "SEVERITY",
        "TLP",
        "REPORTED BY",
        "LAST SEEN",
        "SIGHTINGS",
    ];
    let width = render::table_width(wide);
    let table = if show_how {
        let rows = rows.into_iter().map(cells).collect();
        render::fitted_table(headers, rows, &[4, 7, 1], width)
    } else {
        let rows = rows.into_iter().map(cells).collect();
        let [t, v, _, rest @ ..] = headers;
        let mut short = [""; 9];
        short[0] = t;
        short[1] = v;
        short[2..].copy_from_slice(&rest);
        render::fitted_table(short, rows, &[3, 6, 1], width)
    };
    render::write_table(out, &table)?;
    // Who sighted what, and the lists values are on, below the table.
    for found in &found.matches {
        for list in &found.warninglists {
            writeln!(
                out,
                "{}: on warninglist {}",
                one_line(&found.value),
                one_line(list)
            )?;
        }
        for sighted in &found.sighted_by {
            let who = sighted
                .cert
                .name
                .as_deref()
                .map(one_line)
                .unwrap_or_else(|| sighted.cert.fingerprint.short().to_owned());
            let mut line = format!(
                "{}: sighted by {who} {}x in {}, {} to {}",
                one_line(&found.value),
                sighted.count,
                render::incident_id(&found.incident, wide),
                sighted.first,
                sighted.last
            );
            if sighted.false_positives > 0 {
                line.push_str(&format!(
                    "; {} false-positive report(s)",
                    sighted.false_positives
                ));
            }
            writeln!(out, "{line}")?;
        }
    }
    if found.truncated {
        writeln!(
            out,
            "(showing {}; more match: narrow the range or raise --limit)",
            found.matches.len()
        )?;
    }
    Ok(())
}

/// A reading of the value as the user would write it.
fn searched_as(s: &SearchedAs) -> String {
    match s.how {
        SearchMode::Subdomains => format!("{}:*.{}", s.kind, s.value),
        _ => format!("{}:{}", s.kind, s.value),
    }
}

/// A row built cell by cell, as the table wants it.
fn cells<const N: usize>(row: Vec<String>) -> [String; N] {
    row.try_into()
        .unwrap_or_else(|row: Vec<String>| panic!("a row of {} cells, not {N}", row.len()))
}

fn matched(how: Matched) -> &'static str {
    match how {
        Matched::Exact => "exact",
        Matched::Inside => "inside",
        Matched::Contains => "contains",
        Matched::Subdomain => "subdomain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::api::{CertRef, IocMatch};
    use cer_proto::model::{IndicatorType, Tlp};

    #[test]
    fn matches_fit_100_columns_and_show_unicode_domains() {
        let found = IocSearch {
            searched: vec![],
            matches: vec![IocMatch {
                kind: IndicatorType::Domain,
                value: "xn--mnchen-3ya.example".into(),
                incident: uuid::Uuid::parse_str("0192ab3c-1f00-7000-8000-000000000001").unwrap(),
                matched: Matched::Exact,
                title:
                    "Phishing kit impersonating the city of Munich's payment portal, seen in mail"
                        .into(),
                severity: None,
                tlp: Tlp::AmberStrict,
                reported_by: vec![CertRef {
                    fingerprint: cer_proto::Fingerprint::parse(&"C".repeat(40)).unwrap(),
                    name: Some("DE-CERT-BUND-MUNICH-REGIONAL".into()),
                }],
                first_seen: "2026-11-28T12:00:00Z".parse().unwrap(),
                last_seen: "2026-11-28T12:30:00Z".parse().unwrap(),
                sightings: 3,
                valid_until: None,
                expired: true,
                warninglists: vec!["Documentation addresses".into()],
                sighted_by: vec![],
            }],
            truncated: false,
        };
        let mut out = Vec::new();
        write_search(&mut out, "x", &found, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(text.contains("0192ab3c "), "{text}");
        let mut out = Vec::new();
        write_search(&mut out, "x", &found, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("0192ab3c-1f00-7000-8000-000000000001"),
            "{text}"
        );
        assert!(text.contains("seen in mail"), "{text}");
        assert!(!text.contains("MATCH"), "{text}");
        assert!(
            text.contains("xn--mnchen-3ya.example  (münchen.example)"),
            "{text}"
        );
    }

    #[test]
    fn range_matches_say_how_they_matched_and_when_cut_short() {
        let hit = |value: &str, kind, matched| IocMatch {
            kind,
            value: value.into(),
            incident: uuid::Uuid::nil(),
            matched,
            title: "Scan from a hosting range".into(),
            severity: None,
            tlp: Tlp::Green,
            reported_by: vec![],
            first_seen: "2026-11-28T12:00:00Z".parse().unwrap(),
            last_seen: "2026-11-28T12:30:00Z".parse().unwrap(),
            sightings: 0,
            valid_until: None,
            expired: false,
            warninglists: vec![],
            sighted_by: vec![],
        };
        let found = IocSearch {
            searched: vec![SearchedAs {
                kind: IndicatorType::Cidr,
                value: "192.0.2.0/24".into(),
                how: SearchMode::Range,
            }],
            matches: vec![
                hit("192.0.0.0/16", IndicatorType::Cidr, Matched::Contains),
                hit("192.0.2.7", IndicatorType::Ipv4, Matched::Inside),
            ],
            truncated: true,
        };
        let mut out = Vec::new();
        write_search(&mut out, "192.0.2.0/24", &found, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(text.lines().next().unwrap().contains("MATCH"), "{text}");
        assert!(
            text.contains("contains") && text.contains("inside"),
            "{text}"
        );
        assert!(text.contains("(showing 2; more match"), "{text}");

        let none = IocSearch {
            searched: vec![SearchedAs {
                kind: IndicatorType::Domain,
                value: "example.com".into(),
                how: SearchMode::Subdomains,
            }],
            matches: vec![],
            truncated: false,
        };
        let mut out = Vec::new();
        write_search(&mut out, "*.example.com", &none, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("(searched domain:*.example.com)"), "{text}");
    }
}
