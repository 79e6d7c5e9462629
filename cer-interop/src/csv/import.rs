//! CSV and plain lists → filing requests, built for feeds of millions of
//! rows: one reused record buffer, types and labels matched in place,
//! and an allocation per row only for what the indicator keeps.

use std::hash::{BuildHasher, RandomState};

use ::csv::{ByteRecord, ReaderBuilder};
use cer_proto::api::FileIncident;
use cer_proto::model::{
    Classification, Indicator, IndicatorType, Severity, Source, Timestamp, Tlp,
};

use super::{unguard, Bulk};
use crate::common::{cut, fit_comment, parse_time, problem, Series};
use crate::misp::{read_attribute, Mapped};
use crate::{FormatError, ImportOptions, ImportReport};

/// Reads a CSV file with a header row. Source format `csv`, id the file
/// name (`#2`, `#amber`… for further parts).
pub fn import(
    bytes: &[u8],
    options: &ImportOptions,
    bulk: &Bulk,
) -> Result<ImportReport, FormatError> {
    let mut reader = ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header = reader
        .byte_headers()
        .map_err(|e| csv_error(format!("cannot read the header row: {e}")))?
        .clone();
    let mut report = ImportReport::default();
    let columns = Columns::find(&header, &mut report)?;
    let mut run = Run::new("csv", options, bulk)?;
    // One entry per line at most: the table never regrows.
    let rows = bytes.iter().filter(|b| **b == b'\n').count();
    run.seen.reserve(rows, |&(h, _, _)| h);
    let mut record = ByteRecord::new();
    let mut lines = LineCounter::new(bytes);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = lines.line_at(e.position().map_or(bytes.len() as u64, |p| p.byte()));
                report
                    .invalid
                    .push(problem(format!("line {line}"), format!("not CSV: {e}")));
                break;
            }
        }
        let line = lines.line_at(record.position().map_or(0, |p| p.byte()));
        if let Err(reason) = run.row(&columns, &record, options) {
            report.invalid.push(problem(format!("line {line}"), reason));
        }
        if let Some(why) = run.comment_note.take() {
            report.skipped.push(problem(format!("line {line}"), why));
        }
    }
    run.finish(report)
}

/// Reads a plain list, one value per line. Source format `list`.
pub fn import_list(
    bytes: &[u8],
    options: &ImportOptions,
    bulk: &Bulk,
) -> Result<ImportReport, FormatError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut run = Run::new("list", options, bulk)?;
    let mut report = ImportReport::default();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let Ok(text) = std::str::from_utf8(raw) else {
            report
                .invalid
                .push(problem(format!("line {}", n + 1), "not UTF-8"));
            continue;
        };
        let value = text.trim();
        if value.is_empty() || value.starts_with('#') {
            continue;
        }
        let found = match options.indicator_type {
            Some(kind) => Indicator::new(kind, value).map_err(|e| e.to_string()),
            None => detect(value),
        };
        match found {
            Ok(indicator) => run.push(run.base_tlp, indicator),
            Err(reason) => report
                .invalid
                .push(problem(format!("line {}", n + 1), reason)),
        }
    }
    run.finish(report)
}

/// The first type `value` is valid as, in the model's order, a file name
/// only when nothing else fits: what `IndicatorType::candidates` would
/// put first, without trying the rest.
pub(crate) fn detect(value: &str) -> Result<Indicator, String> {
    IndicatorType::ALL
        .into_iter()
        .filter(|kind| *kind != IndicatorType::Filename)
        .chain([IndicatorType::Filename])
        .find_map(|kind| Indicator::new(kind, value).ok())
        .ok_or_else(|| {
            format!(
                "'{}' is not an address, network, domain, URL, email address, hash, AS number, CVE id or file name",
                cut(value, 80)
            )
        })
}

/// Line numbers from byte offsets. The reader's own count runs one short
/// after a CRLF (it starts the next record at the LF), and feeds come
/// with either line end.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record starting at byte `at` (offsets only grow).
    fn line_at(&mut self, at: u64) -> usize {
        let mut at = usize::try_from(at)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        if self.bytes.get(at) == Some(&b'\n') {
            at += 1;
        }
        if at > self.offset {
            let newlines = self.bytes[self.offset..at]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.line += newlines;
            self.offset = at;
        }
        self.line
    }
}

fn csv_error(reason: String) -> FormatError {
    FormatError {
        format: "csv",
        reason,
    }
}

/// Where each known column is.
struct Columns {
    value: usize,
    kind: Option<usize>,
    comment: Option<usize>,
    first_seen: Option<usize>,
    last_seen: Option<usize>,
    valid_until: Option<usize>,
    tlp: Option<usize>,
    confidence: Option<usize>,
}

impl Columns {
    fn find(header: &ByteRecord, report: &mut ImportReport) -> Result<Columns, FormatError> {
        let mut columns = Columns {
            value: usize::MAX,
            kind: None,
            comment: None,
            first_seen: None,
            last_seen: None,
            valid_until: None,
            tlp: None,
            confidence: None,
        };
        for (i, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let slot = match name.as_str() {
                "value" | "indicator" | "ioc" => {
                    columns.value = i;
                    continue;
                }
                "type" => &mut columns.kind,
                "comment" => &mut columns.comment,
                "first_seen" => &mut columns.first_seen,
                "last_seen" => &mut columns.last_seen,
                "valid_until" => &mut columns.valid_until,
                "tlp" => &mut columns.tlp,
                "confidence" => &mut columns.confidence,
                // What the CSV export writes and the model derives itself.
                "incident" | "cert" | "sightings" => continue,
                other => {
                    report.skipped.push(problem(
                        "line 1",
                        format!("column '{}' is not read", cut(other, 40)),
                    ));
                    continue;
                }
            };
            *slot = Some(i);
        }
        if columns.value == usize::MAX {
            return Err(csv_error(
                "the header row has no 'value' column (the first row must name the columns: type,value,…)"
                    .into(),
            ));
        }
        Ok(columns)
    }
}

/// One import in progress.
struct Run {
    series: Series,
    base_tlp: Tlp,
    template: FileIncident,
    source: Source,
    /// Values already taken, as (hash, label, place in that label's
    /// list): a feed that repeats a value yields it once. The hash is
    /// randomly seeded so a crafted feed cannot pile values into one
    /// bucket, and kept so growing the table hashes nothing again.
    seen: hashbrown::HashTable<(u64, Tlp, u32)>,
    hasher: RandomState,
    comment_note: Option<String>,
}

impl Run {
    fn new(format: &str, options: &ImportOptions, bulk: &Bulk) -> Result<Run, FormatError> {
        let base_tlp = options.tlp.unwrap_or(Tlp::Amber);
        let title = match (&bulk.title, &options.file) {
            (Some(title), _) => title.clone(),
            (None, Some(file)) => cut(&format!("Indicators from {file}"), 200),
            (None, None) => "Imported indicators".to_owned(),
        };
        let classification = options
            .classification
            .clone()
            .unwrap_or_else(|| Classification::parse("other/undetermined").expect("in RSIT"));
        let mut template = FileIncident::new(
            title,
            options.severity.unwrap_or(Severity::Medium),
            base_tlp,
            classification,
        );
        let source = Source {
            format: format.to_owned(),
            id: options.file.clone().unwrap_or_else(|| format.to_owned()),
            creator: None,
            file: options.file.clone(),
        };
        template.source = Some(source.clone());
        template.to_body().map_err(|e| FormatError {
            format: if format == "csv" { "csv" } else { "list" },
            reason: e.to_string(),
        })?;
        Ok(Run {
            series: Series::new(base_tlp, bulk.per_incident),
            base_tlp,
            template,
            source,
            seen: hashbrown::HashTable::new(),
            hasher: RandomState::new(),
            comment_note: None,
        })
    }

    fn push(&mut self, tlp: Tlp, indicator: Indicator) {
        let Run { series, seen, .. } = self;
        let hash = self
            .hasher
            .hash_one((tlp, indicator.kind, indicator.value.as_str()));
        let taken = |&(h, t, n): &(u64, Tlp, u32)| {
            h == hash
                && t == tlp
                && series.get(t, n as usize).is_some_and(|held| {
                    held.kind == indicator.kind && held.value == indicator.value
                })
        };
        if seen.find(hash, taken).is_some() {
            return;
        }
        let place = series.len(tlp);
        if let Ok(place) = u32::try_from(place) {
            seen.insert_unique(hash, (hash, tlp, place), |&(h, _, _)| h);
        }
        series.push(tlp, indicator);
    }

    /// One CSV row: every field it has is valid, or the row is refused
    /// with the first reason.
    fn row(
        &mut self,
        columns: &Columns,
        record: &ByteRecord,
        options: &ImportOptions,
    ) -> Result<(), String> {
        let field = |at: Option<usize>, name: &str| -> Result<&str, String> {
            let Some(bytes) = at.and_then(|i| record.get(i)) else {
                return Ok("");
            };
            // Only the fields read are trimmed: the reader's own trim
            // rewrites every field of every row.
            std::str::from_utf8(bytes.trim_ascii())
                .map(unguard)
                .map_err(|_| format!("{name}: not UTF-8"))
        };
        let value = field(Some(columns.value), "value")?;
        if value.is_empty() {
            if record.iter().all(|f| f.trim_ascii().is_empty()) {
                return Ok(());
            }
            return Err("no value".into());
        }
        let kind = field(columns.kind, "type")?;
        let Typed {
            first,
            second,
            note,
        } = typed(kind, value, options)?;
        let first_seen = time(field(columns.first_seen, "first_seen")?, "first_seen")?;
        let last_seen = time(field(columns.last_seen, "last_seen")?, "last_seen")?;
        let valid_until = time(field(columns.valid_until, "valid_until")?, "valid_until")?;
        if let (Some(first), Some(last)) = (first_seen, last_seen) {
            if first > last {
                return Err(format!("last_seen {last} is before first_seen {first}"));
            }
        }
        let tlp = match field(columns.tlp, "tlp")? {
            "" => self.base_tlp,
            text => label(text)?,
        };
        let confidence = match field(columns.confidence, "confidence")? {
            "" => None,
            text => Some(
                text.parse::<u8>()
                    .ok()
                    .filter(|c| *c <= 100)
                    .ok_or_else(|| format!("confidence '{}' is not 0-100", cut(text, 20)))?,
            ),
        };
        let given = field(columns.comment, "comment")?;
        let comment = match (note, given) {
            (None, "") => None,
            (note, given) => {
                let joined = match note {
                    Some(note) if given.is_empty() => note,
                    Some(note) => format!("{note}; {given}"),
                    None => given.to_owned(),
                };
                let (comment, why) = fit_comment(&joined);
                self.comment_note = why;
                comment
            }
        };
        for indicator in std::iter::once(first).chain(second) {
            let indicator = Indicator {
                first_seen,
                last_seen,
                confidence,
                comment: comment.clone(),
                valid_until,
                ..indicator
            };
            self.push(tlp, indicator);
        }
        Ok(())
    }

    fn finish(self, mut report: ImportReport) -> Result<ImportReport, FormatError> {
        report
            .incidents
            .extend(self.series.finish(&self.template, &self.source, false));
        Ok(report)
    }
}

/// What a row's type and value give: one indicator, or two for MISP's
/// composite types, and a note for their comment (a port).
struct Typed {
    first: Indicator,
    second: Option<Indicator>,
    note: Option<String>,
}

/// Types in the model's names, MISP's, or none (typed by the value).
fn typed(kind: &str, value: &str, options: &ImportOptions) -> Result<Typed, String> {
    let one = |first| Typed {
        first,
        second: None,
        note: None,
    };
    if kind.is_empty() {
        return match options.indicator_type {
            Some(kind) => Indicator::new(kind, value).map_err(|e| e.to_string()),
            None => detect(value),
        }
        .map(one);
    }
    if let Some(ours) = IndicatorType::ALL
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(kind))
    {
        return Indicator::new(ours, value)
            .map(one)
            .map_err(|e| e.to_string());
    }
    let misp = crate::misp::read_types()
        .iter()
        .find(|name| name.eq_ignore_ascii_case(kind))
        .copied()
        .or_else(|| kind.eq_ignore_ascii_case("ip").then_some("ip-dst"));
    let unknown = || {
        format!(
            "unknown type '{}'; use one of {} or a MISP attribute type such as ip-dst",
            cut(kind, 40),
            IndicatorType::ALL.map(|t| t.as_str()).join(", ")
        )
    };
    match misp.map(|name| read_attribute(name, value)) {
        Some(Ok(Mapped::Indicators(list, note))) => {
            let mut list = list.into_iter();
            let first = list.next().ok_or_else(unknown)?;
            Ok(Typed {
                first,
                second: list.next(),
                note,
            })
        }
        Some(Err(reason)) => Err(format!("{kind}: {reason}")),
        Some(Ok(Mapped::Reference(_))) => Err(format!(
            "{kind} is a reference to a report, not an indicator"
        )),
        Some(Ok(Mapped::Unsupported)) | None => Err(unknown()),
    }
}

fn time(text: &str, column: &str) -> Result<Option<Timestamp>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    parse_time(text)
        .map(Some)
        .map_err(|reason| format!("{column}: {reason}"))
}

/// A TLP cell, matched in place (`amber`, `TLP:AMBER`, `white`…).
fn label(text: &str) -> Result<Tlp, String> {
    let bare = match text.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("tlp:") => text[4..].trim_start(),
        _ => text,
    };
    Tlp::ALL
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(bare))
        .or_else(|| bare.eq_ignore_ascii_case("white").then_some(Tlp::Clear))
        .ok_or_else(|| {
            format!(
                "tlp '{}' is not one of clear, green, amber, amber+strict, red",
                cut(text, 30)
            )
        })
}
