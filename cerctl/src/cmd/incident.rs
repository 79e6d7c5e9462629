//! `cerctl incident ...`: file, list, show, update and retract.

use std::io::Write;

use anyhow::bail;
use cer_proto::api::{
    FileIncident, IncidentDetail, IncidentList, IncidentQuery, RetractIncident, SignatureState,
    UpdateIncident,
};
use cer_proto::envelope::ReceiptState;
use cer_proto::incident::Event;
use cer_proto::model::{Affected, Status as IncidentStatus, Tlp};
use cer_proto::FieldErrors;
use time::OffsetDateTime;

use super::{connect, incident_id, print_json, write_fields, Ctx, Io};
use crate::cli::{AckArgs, FileArgs, ListArgs, RetractArgs, ShowArgs, UpdateArgs};
use crate::render::{
    self, age, cert_full, cert_name, one_line, or_dash, plural, seconds, short_id, truncate, when,
};
use crate::{exit, input, resolve};

pub(super) async fn file(ctx: &Ctx<'_>, io: &mut Io<'_>, args: FileArgs) -> anyhow::Result<i32> {
    let request_id = args.request_id;
    let strict = args.strict;
    let mut incident = match &args.from {
        Some(path) => input::read_file_incident(path, io.stdin)?,
        None => {
            let incident = incident_from_flags(args)?;
            incident
                .to_body()
                .map_err(|errors| anyhow::Error::new(errors).context("invalid incident"))?;
            incident
        }
    };
    if request_id.is_some() {
        incident.request_id = request_id;
    }
    incident.strict |= strict;
    let filed = connect(ctx).await?.file_incident(&incident).await?;
    if ctx.json {
        return print_json(io, &filed);
    }
    for warning in &filed.warnings {
        writeln!(io.stderr, "warning: {}", one_line(warning))?;
    }
    // Only the id, so `id=$(cerctl incident file ...)` works.
    writeln!(io.stdout, "{}", filed.incident)?;
    Ok(exit::OK)
}

fn incident_from_flags(args: FileArgs) -> anyhow::Result<FileIncident> {
    // clap enforces these without --from; this is for a future change of
    // the flags, not for users.
    let (Some(title), Some(severity), Some(tlp), Some(classification)) =
        (args.title, args.severity, args.tlp, args.class)
    else {
        bail!("--title, --severity, --tlp and --class are required without --from");
    };
    Ok(FileIncident {
        title,
        description: args.description.unwrap_or_default(),
        severity,
        tlp,
        classification,
        status: args.status.unwrap_or(IncidentStatus::New),
        indicators: with_expiry(args.ioc, args.valid_until).collect(),
        affected: Affected {
            sectors: args.sector,
            countries: args.country,
        },
        occurred: args.occurred,
        detected: args.detected,
        tags: args.tag,
        to: args.to,
        request_id: None,
        source: None,
        strict: args.strict,
    })
}

/// The indicators given on the command line, each valid until `until`
/// when given.
fn with_expiry(
    indicators: Vec<cer_proto::model::Indicator>,
    until: Option<cer_proto::model::Timestamp>,
) -> impl Iterator<Item = cer_proto::model::Indicator> {
    indicators.into_iter().map(move |mut indicator| {
        indicator.valid_until = until.or(indicator.valid_until);
        indicator
    })
}

pub(super) async fn list(ctx: &Ctx<'_>, io: &mut Io<'_>, args: ListArgs) -> anyhow::Result<i32> {
    let now = OffsetDateTime::now_utc();
    let query = IncidentQuery {
        since: args.since.map(|since| since.resolve(now)),
        severity_at_least: args.severity_at_least,
        tlp: args.tlp,
        status: args.status,
        classification: args.class,
        from: args.from,
        include_retracted: args.all,
        limit: args.limit.map(|n| n as usize),
        until: args.until.map(|until| until.resolve(now)),
        offset: args.offset,
        oldest_first: args.oldest_first,
        text: args.text,
    };
    let list = connect(ctx).await?.list_incidents(&query).await?;
    if ctx.json {
        return print_json(io, &list);
    }
    write_incident_list(io.stdout, &list, now, ctx.wide)?;
    Ok(exit::OK)
}

fn write_incident_list(
    out: &mut dyn Write,
    list: &IncidentList,
    now: OffsetDateTime,
    wide: bool,
) -> std::io::Result<()> {
    if list.incidents.is_empty() {
        return writeln!(out, "no incidents match");
    }
    let mut rows = Vec::new();
    for incident in &list.incidents {
        let reporter = match (&incident.reporter_name, &incident.reporter) {
            (Some(name), _) => one_line(name),
            (None, Some(fingerprint)) => fingerprint.short().to_owned(),
            (None, None) => "-".to_owned(),
        };
        rows.push([
            render::incident_id(&incident.id, wide),
            age(incident.updated.0, now),
            or_dash(incident.severity),
            incident.tlp.to_string(),
            if incident.retracted {
                "retracted".to_owned()
            } else {
                or_dash(incident.status)
            },
            or_dash(incident.classification.as_ref()),
            reporter,
            one_line(&incident.title),
        ]);
    }
    let table = render::fitted_table(
        [
            "ID", "UPDATED", "SEVERITY", "TLP", "STATUS", "CLASS", "REPORTER", "TITLE",
        ],
        rows,
        &[7, 6, 5],
        render::table_width(wide),
    );
    render::write_table(out, &table)?;
    if list.truncated {
        writeln!(
            out,
            "(showing {}; more match: narrow the filters, raise --limit, or page on with --offset)",
            list.incidents.len()
        )?;
    }
    Ok(())
}

pub(super) async fn show(ctx: &Ctx<'_>, io: &mut Io<'_>, args: ShowArgs) -> anyhow::Result<i32> {
    let id = resolve::id_arg(&args.id)?;
    let mut client = connect(ctx).await?;
    let id = incident_id(&mut client, &args.id, id).await?;
    let detail = client.incident(id).await?;
    if ctx.json {
        return print_json(io, &detail);
    }
    write_detail(io.stdout, &detail, OffsetDateTime::now_utc(), ctx.wide)?;
    Ok(exit::OK)
}

fn write_detail(
    out: &mut dyn Write,
    detail: &IncidentDetail,
    now: OffsetDateTime,
    wide: bool,
) -> std::io::Result<()> {
    let width = render::table_width(wide);
    let incident = &detail.incident;
    let names = &detail.names;
    let content = incident
        .content
        .as_ref()
        .filter(|_| incident.retracted.is_none());

    let mut rows: Vec<(&str, String)> = vec![
        ("title", one_line(incident.display_title())),
        ("id", incident.id.to_string()),
    ];
    if let Some(content) = content {
        rows.push(("severity", content.severity.to_string()));
    }
    let mut tlp = format!("TLP:{}", incident.tlp.as_str().to_ascii_uppercase());
    if !incident.recipients.is_empty() {
        let recipients: Vec<String> = incident
            .recipients
            .iter()
            .map(|r| cert_name(r, names))
            .collect();
        tlp.push_str(&format!(" (to {})", recipients.join(", ")));
    }
    rows.push(("tlp", tlp));
    if let Some(content) = content {
        rows.push(("status", content.status.to_string()));
        rows.push(("classification", content.classification.to_string()));
    }
    rows.push((
        "reporter",
        incident
            .reporter
            .as_ref()
            .map_or_else(|| "(not yet received)".to_owned(), |r| cert_full(r, names)),
    ));
    if let Some(filed) = &incident.filed {
        rows.push(("filed", when(filed, now)));
    }
    rows.push(("updated", when(&incident.updated, now)));
    // Each recipient's furthest receipt (the fold keeps the highest).
    let receipts: Vec<String> = incident
        .receipts()
        .into_iter()
        .map(|(who, state, at)| format!("{} {state} {}", cert_name(who, names), when(&at, now)))
        .collect();
    if !receipts.is_empty() {
        rows.push(("receipts", receipts.join("; ")));
    }
    if let Some(content) = content {
        if let Some(occurred) = &content.occurred {
            rows.push(("occurred", when(occurred, now)));
        }
        if let Some(detected) = &content.detected {
            rows.push(("detected", when(detected, now)));
        }
        if !content.tags.is_empty() {
            rows.push(("tags", content.tags.join(", ")));
        }
        if !content.affected.sectors.is_empty() {
            rows.push(("sectors", content.affected.sectors.join(", ")));
        }
        if !content.affected.countries.is_empty() {
            let countries: Vec<String> = content
                .affected
                .countries
                .iter()
                .map(|c| c.to_string())
                .collect();
            rows.push(("countries", countries.join(", ")));
        }
    }
    write_fields(out, &rows)?;

    if let Some(retracted) = &incident.retracted {
        writeln!(
            out,
            "\nRETRACTED by its reporter {}{}; its content and indicators are withdrawn.",
            when(&retracted.at, now),
            retracted
                .reason
                .as_deref()
                .map(|r| format!(": {}", one_line(r)))
                .unwrap_or_default()
        )?;
    } else if !incident.readable {
        writeln!(
            out,
            "\nENCRYPTED: this TLP:{} incident is addressed to other CERTs; this node holds and relays it as \
             ciphertext and cannot read it.",
            incident.tlp.as_str().to_ascii_uppercase()
        )?;
    }

    if let Some(content) = content.filter(|c| !c.description.trim().is_empty()) {
        writeln!(out, "\nDescription:")?;
        for line in content.description.lines() {
            writeln!(out, "  {}", one_line(line))?;
        }
    }

    if !incident.indicators.is_empty() {
        writeln!(out, "\nIndicators:")?;
        let mut rows = Vec::new();
        for indicator in &incident.indicators {
            let reporters: Vec<String> = indicator
                .reported_by
                .iter()
                .map(|r| cert_name(r, names))
                .collect();
            // The label it was shared under, where not the incident's.
            let mut value = render::indicator_value(indicator.kind, &indicator.value);
            if let Some(tlp) = indicator.tlp {
                value.push_str(&format!(" {}", label_marker(tlp)));
            }
            rows.push([
                indicator.kind.to_string(),
                value,
                seconds(&indicator.first_seen),
                seconds(&indicator.last_seen),
                reporters.join(", "),
                indicator.sightings.to_string(),
            ]);
        }
        let table = render::fitted_table(
            [
                "TYPE",
                "VALUE",
                "FIRST SEEN",
                "LAST SEEN",
                "REPORTED BY",
                "SIGHTINGS",
            ],
            rows,
            &[4, 1],
            width,
        );
        render::write_table(out, &table)?;
    }

    if !incident.timeline.is_empty() {
        writeln!(out, "\nTimeline:")?;
        let mut rows = Vec::new();
        for entry in &incident.timeline {
            // An envelope under another label than the incident's says so.
            let event = match entry.tlp {
                Some(tlp) => format!("{} {}", label_marker(tlp), event_summary(&entry.event)),
                None => event_summary(&entry.event),
            };
            rows.push([
                seconds(&entry.at),
                cert_name(&entry.author, names),
                entry.kind.to_string(),
                event,
            ]);
        }
        let table = render::fitted_table(["TIME", "AUTHOR", "KIND", "EVENT"], rows, &[3, 1], width);
        render::write_table(out, &table)?;
    }

    if !detail.local.is_empty() {
        writeln!(out, "\nLocal (this node only, from playbooks):")?;
        for a in &detail.local {
            let what = match (&a.tag, &a.note) {
                (Some(tag), _) => format!("tag {}", render::one_line(tag)),
                (None, Some(note)) => format!("note {}", render::one_line(note)),
                (None, None) => continue,
            };
            writeln!(
                out,
                "  {}  {what}  ({})",
                seconds(&a.at),
                render::one_line(&a.playbook)
            )?;
        }
    }

    if !detail.envelopes.is_empty() {
        writeln!(out, "\nEnvelopes:")?;
        let mut rows = Vec::new();
        for envelope in &detail.envelopes {
            let signature = match envelope.signature {
                SignatureState::Good => {
                    format!(
                        "good signature by {}",
                        cert_full(&envelope.header.author, names)
                    )
                }
                SignatureState::Withdrawn => {
                    format!(
                        "withdrawn by {} (tombstone only)",
                        cert_full(&envelope.header.author, names)
                    )
                }
            };
            rows.push([
                if wide {
                    envelope.id.to_string()
                } else {
                    short_id(&envelope.id)
                },
                envelope.header.kind.to_string(),
                envelope.header.seq.to_string(),
                seconds(&envelope.header.created),
                signature,
            ]);
        }
        let table = render::fitted_table(
            ["ENVELOPE", "KIND", "SEQ", "CREATED", "SIGNATURE"],
            rows,
            &[4],
            width,
        );
        render::write_table(out, &table)?;
    }
    Ok(())
}

/// `[AMBER]`: the label of an envelope or indicator that differs from
/// its incident's.
fn label_marker(tlp: Tlp) -> String {
    format!("[{}]", tlp.as_str().to_ascii_uppercase())
}

/// One line saying what an envelope did to the incident.
fn event_summary(event: &Event) -> String {
    match event {
        Event::Filed => "filed".into(),
        Event::Updated {
            changes,
            note,
            indicators_added,
            ignored,
        } => {
            let mut parts: Vec<String> = changes.iter().map(|c| one_line(c)).collect();
            if *indicators_added > 0 {
                parts.push(format!(
                    "+{indicators_added} indicator{}",
                    plural(*indicators_added)
                ));
            }
            if let Some(note) = note {
                parts.push(format!("note: {}", truncate(note, 120)));
            }
            if !ignored.is_empty() {
                let ignored: Vec<String> = ignored.iter().map(|i| one_line(i)).collect();
                parts.push(format!("ignored: {}", ignored.join(", ")));
            }
            if parts.is_empty() {
                "updated".into()
            } else {
                parts.join("; ")
            }
        }
        Event::Sighting {
            kind,
            value,
            seen,
            count,
            comment,
            false_positive,
        } => {
            let mut text = if *false_positive {
                format!(
                    "reported {kind}:{} as a false positive at {seen}",
                    one_line(value)
                )
            } else {
                format!("sighted {kind}:{} x{count} at {seen}", one_line(value))
            };
            if let Some(comment) = comment {
                text.push_str(&format!(" ({})", truncate(comment, 80)));
            }
            text
        }
        Event::Retracted { target, reason } => {
            let mut text = match target {
                Some(target) => format!("withdrew envelope {}", short_id(target)),
                None => "retracted the incident".to_owned(),
            };
            if let Some(reason) = reason {
                text.push_str(&format!(": {}", truncate(reason, 120)));
            }
            text
        }
        Event::Receipt {
            target,
            state,
            comment,
        } => {
            let state = match state {
                ReceiptState::Received => "received",
                ReceiptState::Actioned => "actioned",
                ReceiptState::Resolved => "resolved",
            };
            let mut text = format!("receipt: {state} (envelope {})", short_id(target));
            if let Some(comment) = comment {
                text.push_str(&format!(": {}", truncate(comment, 80)));
            }
            text
        }
        Event::KeyTransition => "moved to a new signing key".into(),
        Event::KeyRevocation => "revoked a key".into(),
        Event::Encrypted => "(encrypted for other CERTs)".into(),
        Event::Withdrawn => "(withdrawn by its author)".into(),
    }
}

pub(super) async fn update(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: UpdateArgs,
) -> anyhow::Result<i32> {
    let update = UpdateIncident {
        status: args.status,
        severity: args.severity,
        title: args.title,
        description: args.description,
        classification: args.class,
        note: args.note,
        indicators: with_expiry(args.ioc, args.valid_until)
            .chain(args.expire.into_iter().map(|mut indicator| {
                indicator.valid_until =
                    Some(cer_proto::model::Timestamp(time::OffsetDateTime::now_utc()));
                indicator
            }))
            .collect(),
        tags: args.tag,
        tlp: args.tlp,
        to: args.to,
        strict: args.strict,
    };
    update
        .to_body()
        .map_err(|e| anyhow::Error::new(FieldErrors::from(e)).context("invalid update"))?;
    let id = resolve::id_arg(&args.id)?;
    let mut client = connect(ctx).await?;
    let id = incident_id(&mut client, &args.id, id).await?;
    let filed = client.update_incident(id, &update).await?;
    if ctx.json {
        return print_json(io, &filed);
    }
    for warning in &filed.warnings {
        writeln!(io.stderr, "warning: {}", one_line(warning))?;
    }
    writeln!(io.stdout, "{}", filed.envelope)?;
    Ok(exit::OK)
}

pub(super) async fn retract(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: RetractArgs,
) -> anyhow::Result<i32> {
    let retraction = RetractIncident {
        reason: args.reason,
        envelope: args.envelope,
    };
    let id = resolve::id_arg(&args.id)?;
    let mut client = connect(ctx).await?;
    let id = incident_id(&mut client, &args.id, id).await?;
    let filed = client.retract_incident(id, &retraction).await?;
    if ctx.json {
        return print_json(io, &filed);
    }
    writeln!(io.stdout, "{}", filed.envelope)?;
    Ok(exit::OK)
}

pub(super) async fn ack(ctx: &Ctx<'_>, io: &mut Io<'_>, args: AckArgs) -> anyhow::Result<i32> {
    let receipt = cer_proto::api::AcknowledgeIncident {
        state: args.state,
        comment: args.comment,
    };
    let id = resolve::id_arg(&args.id)?;
    let mut client = connect(ctx).await?;
    let id = incident_id(&mut client, &args.id, id).await?;
    let path = format!("/v1/incidents/{id}/receipts");
    let filed: cer_proto::api::Filed = client.post_json(&path, &receipt).await?;
    if ctx.json {
        return print_json(io, &filed);
    }
    writeln!(io.stdout, "{}", filed.envelope)?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::api::{EnvelopeInfo, IncidentSummary};
    use cer_proto::envelope::Kind;
    use cer_proto::incident::{Content, IndicatorEntry, TimelineEntry};
    use cer_proto::model::{Classification, IndicatorType, Severity, Timestamp, Tlp};
    use cer_proto::{EnvelopeId, Fingerprint};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn fpr(c: char) -> Fingerprint {
        Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn list_shows_one_row_per_incident() {
        let now = time::macros::datetime!(2026-11-28 13:00:00 UTC);
        let list = IncidentList {
            incidents: vec![IncidentSummary {
                id: Uuid::nil(),
                title: "A very long title that certainly does not fit in the listing column".into(),
                severity: Some(Severity::High),
                tlp: Tlp::Amber,
                classification: Some(Classification::parse("malicious-code/c2-server").unwrap()),
                status: Some(IncidentStatus::Open),
                reporter: Some(fpr('A')),
                reporter_name: Some("KE-CIRT".into()),
                filed: Some(ts("2026-11-28T12:00:00Z")),
                updated: ts("2026-11-28T12:55:00Z"),
                indicators: 1,
                readable: true,
                retracted: false,
            }],
            truncated: true,
        };
        let mut out = Vec::new();
        write_incident_list(&mut out, &list, now, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        let row = text.lines().nth(1).unwrap();
        for cell in [
            "00000000  ",
            "5m ago",
            "high",
            "amber",
            "open",
            "KE-CIRT",
            "…",
        ] {
            assert!(row.contains(cell), "{cell} missing from {row}");
        }
        assert!(text.contains("--limit"), "{text}");
        let mut out = Vec::new();
        write_incident_list(&mut out, &list, now, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("00000000-0000-0000-0000-000000000000"),
            "{text}"
        );
        assert!(
            text.contains("does not fit in the listing column"),
            "{text}"
        );
    }

    fn receipt(seq: u64, state: ReceiptState, at: &str) -> TimelineEntry {
        TimelineEntry {
            envelope: EnvelopeId::of(&[seq as u8]),
            author: fpr('B'),
            seq,
            at: ts(at),
            kind: Kind::Receipt,
            tlp: None,
            event: Event::Receipt {
                target: EnvelopeId::of(b"envelope"),
                state,
                comment: None,
            },
        }
    }

    #[test]
    fn show_names_signers_and_indicators() {
        let now = time::macros::datetime!(2026-11-28 13:00:00 UTC);
        let id = EnvelopeId::of(b"envelope");
        let detail = IncidentDetail {
            local: vec![],
            incident: cer_proto::incident::IncidentState {
                id: Uuid::nil(),
                reporter: Some(fpr('A')),
                tlp: Tlp::Green,
                recipients: vec![],
                filed: Some(ts("2026-11-28T12:00:00Z")),
                updated: ts("2026-11-28T12:00:00Z"),
                readable: true,
                content: Some(Content {
                    title: "C2 server".into(),
                    description: "Seen beaconing.\nTwice.".into(),
                    severity: Severity::High,
                    classification: Classification::parse("malicious-code/c2-server").unwrap(),
                    status: IncidentStatus::New,
                    affected: Affected::default(),
                    occurred: None,
                    detected: None,
                    tags: vec!["botnet".into()],
                    source: None,
                }),
                indicators: vec![
                    IndicatorEntry {
                        kind: IndicatorType::Ipv4,
                        value: "203.0.113.7".into(),
                        first_seen: ts("2026-11-28T12:00:00Z"),
                        last_seen: ts("2026-11-28T12:30:00Z"),
                        confidence: None,
                        comment: None,
                        reported_by: vec![fpr('A'), fpr('B')],
                        sightings: 3,
                        tlp: None,
                        details_tlp: Some(Tlp::Amber),
                        valid_until: None,
                        valid_until_set: None,
                    },
                    IndicatorEntry {
                        kind: IndicatorType::Ipv4,
                        value: "198.51.100.9".into(),
                        first_seen: ts("2026-11-28T12:10:00Z"),
                        last_seen: ts("2026-11-28T12:10:00Z"),
                        confidence: None,
                        comment: None,
                        reported_by: vec![fpr('A')],
                        sightings: 0,
                        tlp: Some(Tlp::Amber),
                        details_tlp: Some(Tlp::Amber),
                        valid_until: None,
                        valid_until_set: None,
                    },
                ],
                retracted: None,
                timeline: vec![
                    TimelineEntry {
                        envelope: id,
                        author: fpr('A'),
                        seq: 1,
                        at: ts("2026-11-28T12:00:00Z"),
                        kind: Kind::Incident,
                        tlp: None,
                        event: Event::Filed,
                    },
                    // A note shared under a stricter label says so.
                    TimelineEntry {
                        envelope: EnvelopeId::of(b"amber"),
                        author: fpr('A'),
                        seq: 2,
                        at: ts("2026-11-28T12:10:00Z"),
                        kind: Kind::Update,
                        tlp: Some(Tlp::Amber),
                        event: Event::Updated {
                            changes: vec![],
                            note: Some("attributed".into()),
                            indicators_added: 1,
                            ignored: vec![],
                        },
                    },
                    // B acknowledged twice: the furthest state is shown.
                    receipt(2, ReceiptState::Resolved, "2026-11-28T12:20:00Z"),
                    receipt(3, ReceiptState::Received, "2026-11-28T12:40:00Z"),
                ],
            },
            envelopes: vec![EnvelopeInfo {
                id,
                header: cer_proto::envelope::Header {
                    author: fpr('A'),
                    seq: 1,
                    subject: Uuid::nil(),
                    kind: Kind::Incident,
                    created: ts("2026-11-28T12:00:00Z"),
                    tlp: Tlp::Green,
                    recipients: vec![],
                },
                signature: SignatureState::Good,
                bytes: 300,
            }],
            names: BTreeMap::from([(fpr('A'), "KE-CIRT".to_owned())]),
        };
        let mut out = Vec::new();
        write_detail(&mut out, &detail, now, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(text.contains(&short_id(&id)), "{text}");
        let mut out = Vec::new();
        write_detail(&mut out, &detail, now, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "title:",
            "C2 server",
            "TLP:GREEN",
            "1h ago",
            "  Seen beaconing.",
            "203.0.113.7",
            "KE-CIRT, BBBBBBBBBBBBBBBB",
            &format!("good signature by KE-CIRT ({})", fpr('A')),
            &id.to_hex(),
            "receipts:",
            "BBBBBBBBBBBBBBBB resolved",
            "[AMBER] +1 indicator; note: attributed",
            "198.51.100.9 [AMBER]",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
