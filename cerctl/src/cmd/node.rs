//! What the node says about itself: `status`, `peers`, `certs list`.

use std::io::Write;
use std::time::Duration;

use cer_proto::api::{CertList, PeerList, Status};
use time::OffsetDateTime;

use super::{connect, print_json, write_fields, Ctx, Io};
use crate::exit;
use crate::render::{self, age, bytes, one_line, or_dash};

pub(super) async fn status(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let status = connect(ctx).await?.status().await?;
    if ctx.json {
        return print_json(io, &status);
    }
    write_status(io.stdout, status)?;
    Ok(exit::OK)
}

/// `cerctl health`: one line, and exit 0 only when the node is healthy.
/// A node that does not answer is not serving: that is exit 1 too, with
/// the reason, so a monitor needs only the exit status.
pub(super) async fn health(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let answer = match connect(ctx).await {
        Ok(mut client) => client.health().await,
        Err(e) => {
            writeln!(io.stdout, "unhealthy: {}", one_line(&format!("{e:#}")))?;
            return Ok(exit::NOT_FOUND);
        }
    };
    let health = match answer {
        Ok(health) => health,
        Err(e) => {
            writeln!(io.stdout, "unhealthy: {}", one_line(&e.to_string()))?;
            return Ok(exit::NOT_FOUND);
        }
    };
    let code = if health.healthy {
        exit::OK
    } else {
        exit::NOT_FOUND
    };
    if ctx.json {
        print_json(io, &health)?;
        return Ok(code);
    }
    let verdict = if health.healthy {
        "healthy"
    } else {
        "unhealthy"
    };
    let reason = if health.healthy {
        health
            .checks
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        health.reason()
    };
    writeln!(io.stdout, "{verdict}: {}", one_line(&reason))?;
    Ok(code)
}

fn write_status(out: &mut dyn Write, status: Status) -> std::io::Result<()> {
    let uptime = humantime::format_duration(Duration::from_secs(status.uptime_seconds));
    let mut rows: Vec<(&str, String)> = vec![
        ("name", one_line(&status.name)),
        ("fingerprint", status.fingerprint.to_string()),
        ("version", status.version),
        ("data dir", status.data_dir),
        ("api socket", status.api_socket),
        ("listen", or_dash(status.listen)),
        ("uptime", uptime.to_string()),
        ("incidents", status.incidents.to_string()),
        ("indicators", status.indicators.to_string()),
        (
            "envelopes",
            format!("{} ({} tombstones)", status.envelopes, status.tombstones),
        ),
        ("authors", status.authors.to_string()),
        ("store size", bytes(status.store_bytes)),
        ("trusted certs", status.trusted_certs.to_string()),
        (
            "peers",
            format!(
                "{} connected of {} configured",
                status.peers_connected, status.peers_configured
            ),
        ),
        (
            "playbooks",
            if status.playbook_cursor >= status.events {
                format!("every action finished (event {})", status.events)
            } else {
                format!(
                    "every action finished up to event {} of {} (later ones run or wait for it)",
                    status.playbook_cursor, status.events
                )
            },
        ),
    ];
    if status.equivocations > 0 {
        // Proof that an author signed two histories: rare, and worth a look.
        rows.push((
            "equivocations",
            format!(
                "{} (an author signed two different envelopes with the same seq; see the daemon's log)",
                status.equivocations
            ),
        ));
    }
    write_fields(out, &rows)
}

pub(super) async fn peers(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let peers = connect(ctx).await?.peers().await?;
    if ctx.json {
        return print_json(io, &peers);
    }
    write_peers(io.stdout, &peers, OffsetDateTime::now_utc(), ctx.wide)?;
    Ok(exit::OK)
}

fn write_peers(
    out: &mut dyn Write,
    peers: &PeerList,
    now: OffsetDateTime,
    wide: bool,
) -> std::io::Result<()> {
    if peers.peers.is_empty() {
        return writeln!(out, "no peers configured or connected");
    }
    let mut rows = Vec::new();
    for peer in &peers.peers {
        let rejections = if peer.rejections.values().all(|n| *n == 0) {
            "0".to_owned()
        } else {
            let total: u64 = peer.rejections.values().sum();
            let detail: Vec<String> = peer
                .rejections
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(reason, n)| format!("{}={n}", one_line(reason)))
                .collect();
            format!("{total} ({})", detail.join(", "))
        };
        let mut row = vec![
            peer.name
                .as_deref()
                .map_or_else(|| "-".to_owned(), one_line),
            or_dash(
                peer.fingerprint
                    .as_ref()
                    .map(|f| if wide { f.as_str() } else { f.short() }),
            ),
            peer.address
                .as_deref()
                .map_or_else(|| "-".to_owned(), one_line),
            if peer.connected { "yes" } else { "no" }.to_owned(),
            peer.last_seen
                .map_or_else(|| "never".to_owned(), |t| age(t.0, now)),
            peer.envelopes_sent.to_string(),
            peer.envelopes_received.to_string(),
        ];
        if wide {
            row.push(
                match peer.eager {
                    Some(true) => "eager",
                    Some(false) => "lazy",
                    None => "-",
                }
                .to_owned(),
            );
            row.push(peer.duplicates.to_string());
            row.push(format!(
                "{}/{}",
                render::bytes(peer.bytes_received),
                render::bytes(peer.bytes_sent)
            ));
        }
        row.push(peer.behind.to_string());
        row.push(rejections);
        rows.push(row);
    }
    // Duplicates and bytes only with --wide (and in --json): the rest
    // fits 100 columns.
    let table = if wide {
        let header = [
            "NAME",
            "FINGERPRINT",
            "ADDRESS",
            "UP",
            "LAST SEEN",
            "SENT",
            "RECEIVED",
            "PUSH",
            "DUPLICATES",
            "BYTES IN/OUT",
            "BEHIND",
            "REJECTIONS",
        ];
        render::fitted_table(header, rows_of(rows), &[], usize::MAX)
    } else {
        let header = [
            "NAME",
            "FINGERPRINT",
            "ADDRESS",
            "UP",
            "LAST SEEN",
            "SENT",
            "RECEIVED",
            "BEHIND",
            "REJECTIONS",
        ];
        render::fitted_table(header, rows_of(rows), &[8, 0, 2], render::TABLE_WIDTH)
    };
    render::write_table(out, &table)
}

/// Rows of a known width for [`render::fitted_table`].
fn rows_of<const N: usize>(rows: Vec<Vec<String>>) -> Vec<[String; N]> {
    rows.into_iter()
        .filter_map(|row| <[String; N]>::try_from(row).ok())
        .collect()
}

pub(super) async fn certs(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let certs = connect(ctx).await?.certs().await?;
    if ctx.json {
        return print_json(io, &certs);
    }
    write_certs(io.stdout, &certs)?;
    Ok(exit::OK)
}

pub(super) async fn add_cert(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    file: &std::path::Path,
) -> anyhow::Result<i32> {
    use anyhow::Context as _;
    let armored = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read certificate {}", file.display()))?;
    let request = cer_proto::api::AddCert { armored };
    let cert: cer_proto::api::CertInfo =
        connect(ctx).await?.post_json("/v1/certs", &request).await?;
    if ctx.json {
        return print_json(io, &cert);
    }
    if let Some(revoked) = &cert.revoked {
        writeln!(
            io.stdout,
            "revoked {} ({}): its signatures from {revoked} on are refused",
            one_line(&cert.name),
            cert.fingerprint
        )?;
        return Ok(exit::OK);
    }
    writeln!(
        io.stdout,
        "trusted {} ({})",
        one_line(&cert.name),
        cert.fingerprint
    )?;
    Ok(exit::OK)
}

pub(super) async fn remove_cert(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    given: &str,
) -> anyhow::Result<i32> {
    let mut client = connect(ctx).await?;
    // A full fingerprint goes as it is; a name or short one is looked up.
    let fingerprint = match crate::resolve::full_fingerprint(given) {
        Some(fingerprint) => fingerprint,
        None => crate::resolve::cert(given, &client.certs().await?)?,
    };
    let path = format!("/v1/certs/{fingerprint}");
    let cert: cer_proto::api::CertInfo = client.delete_json(&path).await?;
    if ctx.json {
        return print_json(io, &cert);
    }
    writeln!(
        io.stdout,
        "no longer trusted: {} ({})",
        one_line(&cert.name),
        cert.fingerprint
    )?;
    Ok(exit::OK)
}

fn write_certs(out: &mut dyn Write, certs: &CertList) -> std::io::Result<()> {
    if certs.certs.is_empty() {
        writeln!(out, "no trusted certificates")?;
    } else {
        let mut table = render::table(["NAME", "FINGERPRINT", "OWN", "ENCRYPTION", "VALID"]);
        for cert in &certs.certs {
            table.add_row([
                one_line(&cert.name),
                cert.fingerprint.to_string(),
                if cert.own { "yes" } else { "" }.to_owned(),
                if cert.can_encrypt {
                    "yes"
                } else if cert.revoked.is_some() {
                    "no (revoked)"
                } else {
                    "no (cannot receive TLP:AMBER+)"
                }
                .to_owned(),
                validity(cert),
            ]);
        }
        render::write_table(out, &table)?;
    }
    if !certs.refused.is_empty() {
        writeln!(out, "\nRefused files:")?;
        for refused in &certs.refused {
            writeln!(
                out,
                "  {}: {}",
                one_line(&refused.file),
                one_line(&refused.reason)
            )?;
        }
    }
    Ok(())
}

/// How long a certificate is good for: revoked (and since when), expired,
/// until a date, or without expiry.
fn validity(cert: &cer_proto::api::CertInfo) -> String {
    if let Some(revoked) = &cert.revoked {
        return format!("revoked {revoked}");
    }
    let valid = match &cert.expires {
        Some(expires) => format!("until {expires}"),
        None => "no expiry".to_owned(),
    };
    match &cert.key {
        Some(key) => format!("{valid}; key now {}", key.short()),
        None => valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::api::PeerInfo;
    use cer_proto::Fingerprint;
    use std::collections::BTreeMap;

    #[test]
    fn peers_show_state_and_rejections_by_reason() {
        let now = time::macros::datetime!(2026-11-28 13:00:00 UTC);
        let peers = PeerList {
            peers: vec![
                PeerInfo {
                    name: Some("NG-CERT".into()),
                    fingerprint: Some(Fingerprint::parse(&"C".repeat(40)).unwrap()),
                    address: Some("198.51.100.20:7443".into()),
                    connected: true,
                    last_seen: Some("2026-11-28T12:59:00Z".parse().unwrap()),
                    envelopes_sent: 4,
                    envelopes_received: 7,
                    behind: 0,
                    duplicates: 1,
                    eager: Some(false),
                    bytes_sent: 2048,
                    bytes_received: 4096,
                    rejections: BTreeMap::from([
                        ("bad_signature".into(), 2),
                        ("oversized".into(), 0),
                    ]),
                },
                PeerInfo {
                    name: None,
                    fingerprint: None,
                    address: Some("198.51.100.21:7443".into()),
                    connected: false,
                    last_seen: None,
                    envelopes_sent: 0,
                    envelopes_received: 0,
                    behind: 3,
                    duplicates: 0,
                    eager: None,
                    bytes_sent: 0,
                    bytes_received: 0,
                    rejections: BTreeMap::new(),
                },
            ],
        };
        let mut out = Vec::new();
        write_peers(&mut out, &peers, now, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
        let mut wide = Vec::new();
        write_peers(&mut wide, &peers, now, true).unwrap();
        let wide = String::from_utf8(wide).unwrap();
        assert!(
            wide.contains("4.0 KiB/2.0 KiB")
                && wide.contains("2 (bad_signature=2)")
                && wide.contains("lazy"),
            "{wide}"
        );
        for cell in [
            "NG-CERT",
            "CCCCCCCCCCCCCCCC",
            "yes",
            "1m ago",
            "2 (bad_signa",
        ] {
            assert!(lines[1].contains(cell), "{cell} missing from {}", lines[1]);
        }
        assert!(
            lines[2].contains("never") && lines[2].contains(" no "),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn status_flags_equivocations() {
        let mut status: Status = serde_json::from_value(serde_json::json!({
            "name": "KE-CIRT", "fingerprint": "A".repeat(40), "version": "0.1.0",
            "data_dir": "cerd-data", "api_socket": "cerd-data/cerd.sock", "uptime_seconds": 3700,
            "envelopes": 10, "tombstones": 1, "incidents": 4, "indicators": 9, "authors": 2,
            "store_bytes": 2_097_152, "trusted_certs": 3, "peers_connected": 1, "peers_configured": 2,
            "equivocations": 0
        }))
        .unwrap();
        let mut out = Vec::new();
        write_status(&mut out, status.clone()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("uptime:        1h 1m 40s"), "{text}");
        assert!(
            text.contains("2.0 MiB") && !text.contains("equivocations"),
            "{text}"
        );
        status.equivocations = 1;
        let mut out = Vec::new();
        write_status(&mut out, status).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("equivocations: 1 "));
    }
}
