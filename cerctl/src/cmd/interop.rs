//! `cerctl import` and `cerctl export --format stix|misp|misp-feed|csv`:
//! the CERT ecosystem's formats in and out, through cer-interop's mapping.
//!
//! An import files each incident the source describes, signed by this
//! node, with the source recorded in its body. The request id is derived
//! from the source (format and id), so importing the same event again gets
//! the first answer back (`repeated`) instead of a second incident; what
//! the source added since becomes a signed update, and an unchanged source
//! changes nothing.

use std::collections::BTreeMap;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use cer_interop::csv::Bulk;
use cer_interop::{
    ExportIncident, ExportOptions, Format, ImportOptions, ImportReport, Imported, Problem,
};
use cer_proto::api::{IncidentQuery, UpdateIncident, MAX_LIST_LIMIT};
use cer_proto::incident::IncidentState;
use cer_proto::model::{Timestamp, Tlp};
use cer_proto::Fingerprint;
use serde::Serialize;
use uuid::Uuid;

use super::{connect, print_json, Ctx, Io};
use crate::cli::{ExportArgs, ExportFormat, ImportArgs};
use crate::client::Client;
use crate::exit;
use crate::render::one_line;

/// Filings sent at once by an import.
const PARALLEL_FILINGS: usize = 2;
/// Largest file read for an import.
const MAX_IMPORT_BYTES: u64 = 1 << 30;
/// The namespace of import request ids (a UUIDv5 of `format:source id`).
const IMPORT_NAMESPACE: Uuid = Uuid::from_u128(0x6365_7264_2d69_6d70_6f72_742d_7265_7131);

/// What an import did, as `--json` prints it.
#[derive(Debug, Default, Serialize)]
struct Summary {
    imported: u64,
    updated: u64,
    unchanged: u64,
    skipped: u64,
    invalid: u64,
    /// Each incident filed or updated.
    incidents: Vec<Uuid>,
    problems: Vec<Problem>,
    /// What the node filed but warned about (a warninglisted value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
}

pub(super) async fn import(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: ImportArgs,
) -> anyhow::Result<i32> {
    let options = ImportOptions {
        tlp: args.tlp,
        severity: args.severity,
        classification: args.class.clone(),
        file: (args.path != "-").then(|| file_name(Path::new(&args.path))),
        indicator_type: args.kind,
        now: Timestamp(time::OffsetDateTime::now_utc()),
    };
    let path = PathBuf::from(&args.path);
    let explicit = match args.format.as_deref() {
        None | Some("auto") => None,
        Some(name) => Some(name.parse::<Format>().map_err(anyhow::Error::msg)?),
    };
    if explicit == Some(Format::MispFeed) || (explicit.is_none() && path.is_dir()) {
        return import_feed(ctx, io, &args, &path, &options).await;
    }
    let bytes = read_input(&args.path, io)?;
    let format = explicit.unwrap_or_else(|| Format::detect(&bytes));
    let bulk = Bulk {
        per_incident: args.per_incident,
        title: args.title.clone(),
    };
    let report = match format {
        Format::Stix => cer_interop::stix::import(&bytes, &options),
        Format::Misp => cer_interop::misp::import(&bytes, &options),
        Format::Csv => cer_interop::csv::import(&bytes, &options, &bulk),
        Format::List => cer_interop::csv::import_list(&bytes, &options, &bulk),
        Format::MispFeed => unreachable!("handled above"),
    }
    .with_context(|| format!("cannot import {}", one_line(&args.path)))?;
    let mut summary = Summary::default();
    let code = file_report(ctx, io, &args, format, report, &mut summary).await?;
    write_summary(ctx, io, &summary)?;
    Ok(code)
}

/// A MISP feed folder: the events whose manifest timestamp changed since
/// the last import of this folder (remembered per folder in cerctl's
/// state directory).
async fn import_feed(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: &ImportArgs,
    dir: &Path,
    options: &ImportOptions,
) -> anyhow::Result<i32> {
    let manifest_path = dir.join("manifest.json");
    let manifest = std::fs::read(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = cer_interop::misp::feed_manifest(&manifest)?;
    let state_file = match &args.feed_state {
        Some(file) => file.clone(),
        None => feed_state_file(dir)?,
    };
    let mut previous: BTreeMap<Uuid, i64> = std::fs::read(&state_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let changed = cer_interop::misp::feed_changes(&manifest.entries, &previous);
    let mut summary = Summary::default();
    for problem in &manifest.invalid {
        summary.problems.push(problem.clone());
        summary.invalid += 1;
    }
    let unchanged_events = manifest.entries.len() - changed.len();
    let mut code = exit::OK;
    for uuid in changed {
        let file = dir.join(format!("{uuid}.json"));
        let report = match std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                cer_interop::misp::import_feed_event(uuid, &bytes, options)
                    .map_err(|e| e.to_string())
            }) {
            Ok(report) => report,
            Err(reason) => {
                summary.invalid += 1;
                summary.problems.push(Problem {
                    location: file.display().to_string(),
                    reason,
                });
                continue;
            }
        };
        code = code.max(file_report(ctx, io, args, Format::MispFeed, report, &mut summary).await?);
        if !args.dry_run {
            if let Some(entry) = manifest.entries.iter().find(|e| e.uuid == uuid) {
                previous.insert(uuid, entry.timestamp);
            }
        }
    }
    summary.unchanged += unchanged_events as u64;
    if !args.dry_run {
        if let Some(parent) = state_file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&state_file, serde_json::to_vec(&previous)?)
            .with_context(|| format!("cannot save {}", state_file.display()))?;
    }
    write_summary(ctx, io, &summary)?;
    Ok(code)
}

/// Files (or, dry, counts) what an import found; problems are reported
/// as they are.
async fn file_report(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: &ImportArgs,
    format: Format,
    report: ImportReport,
    summary: &mut Summary,
) -> anyhow::Result<i32> {
    summary.skipped += report.skipped.len() as u64;
    summary.invalid += report.invalid.len() as u64;
    if !ctx.json {
        for p in &report.skipped {
            writeln!(
                io.stderr,
                "skipped: {}: {}",
                one_line(&p.location),
                one_line(&p.reason)
            )?;
        }
        for p in &report.invalid {
            writeln!(
                io.stderr,
                "invalid: {}: {}",
                one_line(&p.location),
                one_line(&p.reason)
            )?;
        }
    }
    summary.problems.extend(report.skipped.iter().cloned());
    summary.problems.extend(report.invalid.iter().cloned());
    if args.strict && !report.invalid.is_empty() {
        writeln!(
            io.stderr,
            "cerctl: {} invalid items; --strict: nothing imported",
            report.invalid.len()
        )?;
        return Ok(exit::NOT_FOUND);
    }
    if args.dry_run {
        summary.dry_run = true;
        for imported in &report.incidents {
            summary.imported += 1;
            if !ctx.json {
                writeln!(
                    io.stdout,
                    "would import: {} ({} indicators, TLP:{})",
                    one_line(&imported.incident.title),
                    imported.incident.indicators.len(),
                    imported.incident.tlp
                )?;
            }
        }
        return Ok(exit::OK);
    }
    // A few filings at once: while the node's writer stores one batch,
    // the next filings are checked, signed and queued.
    let progress = progress_bar(report.incidents.len());
    let mut queues: Vec<Vec<(usize, Imported)>> =
        (0..PARALLEL_FILINGS).map(|_| Vec::new()).collect();
    for (n, mut imported) in report.incidents.into_iter().enumerate() {
        if imported.incident.tlp >= Tlp::Amber && imported.incident.to.is_empty() {
            imported.incident.to = args.to.clone();
        }
        queues[n % PARALLEL_FILINGS].push((n, imported));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for queue in queues.into_iter().filter(|q| !q.is_empty()) {
        let (socket, timeout, strict) = (ctx.socket.to_owned(), ctx.timeout, args.strict);
        let progress = progress.clone();
        tasks.spawn(async move {
            let mut client = Client::connect_with_timeout(&socket, timeout).await?;
            let mut results = Vec::with_capacity(queue.len());
            for (n, imported) in queue {
                let title = imported.incident.title.clone();
                let outcome = file_one(&mut client, format, imported, strict).await;
                if let Some(bar) = &progress {
                    bar.inc(1);
                }
                results.push((n, title, outcome));
            }
            Ok::<_, anyhow::Error>(results)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.extend(done.context("an import task failed")??);
    }
    results.sort_by_key(|(n, _, _)| *n);
    let mut code = exit::OK;
    for (_, title, outcome) in results {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // One incident the node refuses (a RED one without
            // recipients, a warninglisted value with --strict) does not
            // stop the others.
            Err(e) => {
                let problem = Problem {
                    location: title,
                    reason: format!("{e:#}"),
                };
                if !ctx.json {
                    writeln!(
                        io.stderr,
                        "invalid: {}: {}",
                        one_line(&problem.location),
                        one_line(&problem.reason)
                    )?;
                }
                summary.invalid += 1;
                summary.problems.push(problem);
                code = exit::NOT_FOUND;
                continue;
            }
        };
        let warnings = match outcome {
            Outcome::Imported(id, warnings) => {
                summary.imported += 1;
                summary.incidents.push(id);
                warnings
            }
            Outcome::Updated(id, warnings) => {
                summary.updated += 1;
                summary.incidents.push(id);
                warnings
            }
            Outcome::Unchanged => {
                summary.unchanged += 1;
                Vec::new()
            }
        };
        for warning in warnings {
            let warning = format!("{title}: {warning}");
            if !ctx.json {
                writeln!(io.stderr, "warning: {}", one_line(&warning))?;
            }
            summary.warnings.push(warning);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(code)
}

enum Outcome {
    /// Filed, with the node's warnings.
    Imported(Uuid, Vec<String>),
    Updated(Uuid, Vec<String>),
    Unchanged,
}

/// Files one imported incident, or updates the one filed from the same
/// source before with what is new.
async fn file_one(
    client: &mut Client,
    format: Format,
    imported: Imported,
    strict: bool,
) -> anyhow::Result<Outcome> {
    let mut incident = imported.incident;
    let source = incident
        .source
        .clone()
        .context("an importer gave an incident without its source")?;
    // A MISP event read from a feed and the same event exported alone are
    // one source.
    let family = match format {
        Format::MispFeed | Format::Misp => "misp",
        other => other.as_str(),
    };
    incident.request_id = Some(Uuid::new_v5(
        &IMPORT_NAMESPACE,
        format!("{family}:{}", source.id).as_bytes(),
    ));
    incident.strict = strict;
    let wanted = incident.indicators.clone();
    let filed = client
        .file_incident(&incident)
        .await
        .with_context(|| format!("filing {}", one_line(&incident.title)))?;
    if !filed.repeated {
        for sighting in imported.sightings {
            let request = cer_proto::api::SightIndicator {
                kind: sighting.kind,
                value: sighting.value,
                seen: Some(sighting.seen),
                count: sighting.count.max(1),
                comment: sighting.comment,
                false_positive: false,
            };
            client.sight(filed.incident, &request).await?;
        }
        return Ok(Outcome::Imported(filed.incident, filed.warnings));
    }
    // Imported before: what the source names now and the incident does
    // not (or names with another expiry) goes in one signed update.
    let detail = client.incident(filed.incident).await?;
    let new = cer_interop::new_since(wanted, &detail.incident);
    if new.is_empty() || detail.incident.retracted.is_some() {
        return Ok(Outcome::Unchanged);
    }
    let update = UpdateIncident {
        note: Some(format!(
            "re-imported from {} {}",
            source.format,
            source.file.as_deref().unwrap_or(&source.id)
        )),
        indicators: new,
        strict,
        ..Default::default()
    };
    let updated = client.update_incident(filed.incident, &update).await?;
    Ok(Outcome::Updated(filed.incident, updated.warnings))
}

fn write_summary(ctx: &Ctx<'_>, io: &mut Io<'_>, summary: &Summary) -> anyhow::Result<()> {
    if ctx.json {
        print_json(io, summary)?;
        return Ok(());
    }
    writeln!(
        io.stdout,
        "{}imported {}, updated {}, unchanged {}, skipped {}, invalid {}",
        if summary.dry_run { "dry run: " } else { "" },
        summary.imported,
        summary.updated,
        summary.unchanged,
        summary.skipped,
        summary.invalid
    )?;
    Ok(())
}

/// A progress bar on a terminal for imports of several incidents; none
/// when stderr is piped.
fn progress_bar(total: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if total < 2 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} incidents {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn read_input(path: &str, io: &mut Io<'_>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == "-" {
        io.stdin
            .take(MAX_IMPORT_BYTES + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot read {}", one_line(path)))?
            .take(MAX_IMPORT_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", one_line(path)))?;
    }
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        bail!("{} is larger than 1 GiB", one_line(path));
    }
    Ok(bytes)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Where cerctl remembers a feed folder's manifest timestamps.
fn feed_state_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let base = match std::env::var_os("XDG_STATE_HOME") {
        Some(state) if !state.is_empty() => PathBuf::from(state),
        _ => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".local/state")
        }
    };
    let key = Uuid::new_v5(&IMPORT_NAMESPACE, dir.as_os_str().as_encoded_bytes());
    Ok(base.join("cerctl/misp-feeds").join(format!("{key}.json")))
}

pub(super) async fn export(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: ExportArgs,
) -> anyhow::Result<i32> {
    let max_tlp = match args.tlp {
        None => Tlp::Green,
        Some(tlp) => {
            if tlp >= Tlp::Amber {
                writeln!(
                    io.stderr,
                    "warning: exporting up to TLP:{}; share it only as its label allows",
                    tlp.as_str().to_ascii_uppercase()
                )?;
            }
            tlp
        }
    };
    if args.sign && args.out.is_none() {
        bail!("--sign writes FILE.asc next to the export: give --out FILE");
    }
    let mut client = connect(ctx).await?;
    let status = client.status().await?;
    let ids: Vec<Uuid> = match args.incident {
        Some(id) => vec![id],
        None => {
            let mut ids = Vec::new();
            let mut offset = 0;
            loop {
                let query = IncidentQuery {
                    since: args.since,
                    from: args.from.clone(),
                    limit: Some(MAX_LIST_LIMIT),
                    offset: Some(offset),
                    ..Default::default()
                };
                let page = client.list_incidents(&query).await?;
                offset += page.incidents.len();
                ids.extend(page.incidents.iter().map(|i| i.id));
                if !page.truncated || page.incidents.is_empty() {
                    break;
                }
            }
            ids
        }
    };
    let mut states: Vec<(IncidentState, Option<String>)> = Vec::new();
    let mut names: BTreeMap<Fingerprint, String> = BTreeMap::new();
    for id in ids {
        let detail = client.incident(id).await?;
        let mut state = detail.incident;
        // Never what this node cannot read, nor above the label asked for.
        if !state.readable || state.retracted.is_some() || state.tlp > max_tlp {
            continue;
        }
        if !args.kind.is_empty() {
            state.indicators.retain(|i| args.kind.contains(&i.kind));
        }
        let reporter_name = state
            .reporter
            .as_ref()
            .and_then(|r| detail.names.get(r).cloned());
        names.extend(detail.names);
        states.push((state, reporter_name));
    }
    let incidents: Vec<ExportIncident<'_>> = states
        .iter()
        .map(|(state, name)| ExportIncident {
            state,
            reporter_name: name.as_deref(),
        })
        .collect();
    let options = ExportOptions {
        now: Timestamp(time::OffsetDateTime::now_utc()),
        active_only: args.active,
        producer: (status.name.clone(), status.fingerprint.clone()),
        names: names.into_iter().collect(),
    };
    let files: Vec<(String, Vec<u8>)> = match args.format {
        ExportFormat::Envelopes => unreachable!("envelopes are exported by export::export"),
        ExportFormat::Stix => vec![(
            String::new(),
            cer_interop::stix::export(&incidents, &options),
        )],
        ExportFormat::Misp => vec![(
            String::new(),
            cer_interop::misp::export(&incidents, &options),
        )],
        ExportFormat::Csv => vec![(
            String::new(),
            cer_interop::csv::export(&incidents, &options),
        )],
        ExportFormat::MispFeed => {
            if args.out.is_none() {
                bail!("a MISP feed is a folder: give --out DIR");
            }
            cer_interop::misp::export_feed(&incidents, &options)
        }
    };
    let Some(out) = args.out else {
        for (_, bytes) in &files {
            io.stdout.write_all(bytes)?;
        }
        return Ok(exit::OK);
    };
    let feed = args.format == ExportFormat::MispFeed;
    if feed {
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
    }
    let mut written = Vec::new();
    for (name, bytes) in &files {
        let path = if feed {
            // Names come from our own exporter (uuids, manifest.json), but
            // a path separator would still leave the folder.
            if name.contains('/') || name.starts_with('.') {
                bail!("refusing to write {name:?} outside {}", out.display());
            }
            out.join(name)
        } else {
            out.clone()
        };
        write_new(&path, bytes)?;
        if args.sign {
            let signature = client.sign(bytes).await?;
            let mut asc = path.clone().into_os_string();
            asc.push(".asc");
            write_new(Path::new(&asc), &signature)?;
        }
        written.push(path.display().to_string());
    }
    writeln!(
        io.stderr,
        "exported {} incidents to {}{}",
        incidents.len(),
        out.display(),
        if args.sign { " (signed: FILE.asc)" } else { "" }
    )?;
    Ok(exit::OK)
}

/// Writes a file that must not exist yet (never overwritten, never
/// through a symbolic link).
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
