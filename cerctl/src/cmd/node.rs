//! What the node says about itself: `status`, `peers`, `certs list`.

USES
pub(super) async fn status(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let status = connect(ctx).await?.status().await?;
    if ctx.json {
        return print_json(io, &status);
    }
    let uptime = humantime::format_duration(std::time::Duration::from_secs(status.uptime_seconds));
    let rows: [(&str, String); 14] = [
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
    ];
    print_fields(io, &rows)?;
    if status.equivocations > 0 {
        writeln!(
            io.stdout,
            "{:<15} {} (an author signed two different envelopes with the same seq; see the daemon's log)",
            "EQUIVOCATIONS:", status.equivocations
        )?;
    }
    Ok(exit::OK)
}

pub(super) async fn peers(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let peers = connect(ctx).await?.peers().await?;
    if ctx.json {
        return print_json(io, &peers);
    }
    write_peers(io.stdout, &peers, OffsetDateTime::now_utc())?;
    Ok(exit::OK)
}

fn write_peers(out: &mut dyn Write, peers: &PeerList, now: OffsetDateTime) -> std::io::Result<()> {
    if peers.peers.is_empty() {
        return writeln!(out, "no peers configured or connected");
    }
    let mut table = render::table([
        "NAME",
        "FINGERPRINT",
        "ADDRESS",
        "CONNECTED",
        "LAST SEEN",
        "SENT",
        "RECEIVED",
        "BEHIND",
        "REJECTIONS",
    ]);
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
        table.add_row([
            peer.name
                .as_deref()
                .map_or_else(|| "-".to_owned(), one_line),
            or_dash(peer.fingerprint.as_ref().map(|f| f.short())),
            peer.address
                .as_deref()
                .map_or_else(|| "-".to_owned(), one_line),
            if peer.connected { "yes" } else { "no" }.to_owned(),
            peer.last_seen
                .map_or_else(|| "never".to_owned(), |t| age(t.0, now)),
            peer.envelopes_sent.to_string(),
            peer.envelopes_received.to_string(),
            peer.behind.to_string(),
            rejections,
        ]);
    }
    render::write_table(out, &table)
}

pub(super) async fn certs(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let certs = connect(ctx).await?.certs().await?;
    if ctx.json {
        return print_json(io, &certs);
    }
    write_certs(io.stdout, &certs)?;
    Ok(exit::OK)
}

fn write_certs(out: &mut dyn Write, certs: &CertList) -> std::io::Result<()> {
    if certs.certs.is_empty() {
        writeln!(out, "no trusted certificates")?;
    } else {
        let mut table = render::table(["NAME", "FINGERPRINT", "OWN", "ENCRYPTION"]);
        for cert in &certs.certs {
            table.add_row([
                one_line(&cert.name),
                cert.fingerprint.to_string(),
                if cert.own { "yes" } else { "" }.to_owned(),
                if cert.can_encrypt {
                    "yes"
                } else {
                    "no (cannot receive TLP:AMBER+)"
                }
                .to_owned(),
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
