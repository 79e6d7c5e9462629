//! What the MISP and CSV mappings share: reading the time forms outside
//! tools write, fitting outside text into the model's limits, and cutting
//! a long list of indicators into incidents of at most one envelope each,
//! one series per TLP.
//!
//! No I/O and no clock, like the rest of the crate.

use std::collections::BTreeMap;

use cer_proto::api::FileIncident;
use cer_proto::envelope::{MAX_INDICATORS, MAX_TITLE_CHARS};
use cer_proto::model::{Indicator, Source, Timestamp, Tlp};

use crate::{ExportIncident, ExportOptions, Imported, Problem};

/// Reads a point in time as outside tools write it: RFC 3339 (any
/// offset, any fraction), `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DD
/// HH:MM:SS` (UTC) or Unix seconds.
pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i128 = text
            .parse()
            .map_err(|_| format!("'{text}' is not a time"))?;
        return Ok(Timestamp::from_unix_nanos(seconds * 1_000_000_000));
    }
    if let Ok(t) = Timestamp::parse(text) {
        return Ok(t);
    }
    // A date's year may carry a sign or more digits than RFC 3339 can
    // write back: such a time is refused, never stored.
    let four_digits = |year: i32| {
        if (0..=9999).contains(&year) {
            Ok(())
        } else {
            Err(format!("'{}' is outside years 0000-9999", cut(text, 60)))
        }
    };
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_only) {
        four_digits(date.year())?;
        return Ok(Timestamp(date.midnight().assume_utc()));
    }
    let spaced = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = time::PrimitiveDateTime::parse(text, &spaced) {
        four_digits(t.year())?;
        return Ok(Timestamp(t.assume_utc()));
    }
    Err(format!(
        "'{}' is not a time; expected RFC 3339 (2026-11-28T13:00:00Z), a date (2026-11-28) or Unix seconds",
        cut(text, 60)
    ))
}

/// Text cut to at most `max` characters, with `…` where it was cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if text[at..].chars().nth(1).is_some() => format!("{}…", &text[..at]),
        _ => text.to_owned(),
    }
}

/// An indicator's comment as the model holds it, or why it was dropped
/// or cut. A comment is a detail of its indicator: a bad one never costs
/// the indicator, and the report says what happened to it.
pub(crate) fn fit_comment(text: &str) -> (Option<String>, Option<String>) {
    let text = text.trim();
    if text.is_empty() {
        return (None, None);
    }
    if let Err(e) = cer_proto::text::check_no_bidi("comment", text) {
        return (None, Some(format!("comment dropped: {}", e.reason)));
    }
    let max = Indicator::COMMENT_MAX_CHARS;
    if text.chars().nth(max).is_some() {
        return (
            Some(cut(text, max)),
            Some(format!("comment cut to {max} characters")),
        );
    }
    (Some(text.to_owned()), None)
}

/// An incident title made from outside text: its first line, trimmed
/// and cut to the model's limit; `fallback` when that leaves nothing.
/// The second value is true when the title lost part of the text (the
/// caller keeps the whole in the description).
pub(crate) fn title_from(text: &str, fallback: &str) -> (String, bool) {
    let trimmed = text.trim();
    let first = trimmed.lines().next().unwrap_or("").trim();
    let clean: String = first.chars().filter(|c| !c.is_control()).collect();
    if clean.trim().is_empty() {
        return (fallback.to_owned(), !trimmed.is_empty());
    }
    let title = cut(clean.trim(), MAX_TITLE_CHARS);
    let lost = title != trimmed;
    (title, lost)
}

/// Indicators gathered per TLP, then cut into incidents of at most
/// `per_incident` indicators (never more than one envelope holds).
///
/// Naming, so that importing the same source again finds the same
/// incidents: the default label's parts are `ID`, `ID#2`, `ID#3`…; a
/// stricter or looser label's parts are `ID#amber`, `ID#amber-2`…
pub(crate) struct Series {
    pub base_tlp: Tlp,
    pub per_incident: usize,
    /// Per label, its parts as they fill: indicators are placed once
    /// and never moved again, however long the feed.
    groups: BTreeMap<Tlp, Vec<Vec<Indicator>>>,
}

impl Series {
    pub fn new(base_tlp: Tlp, per_incident: usize) -> Series {
        Series {
            base_tlp,
            per_incident: per_incident.clamp(1, MAX_INDICATORS),
            groups: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, tlp: Tlp, indicator: Indicator) {
        let per = self.per_incident;
        let parts = self.groups.entry(tlp).or_default();
        match parts.last_mut() {
            Some(part) if part.len() < per => part.push(indicator),
            last => {
                // A second part means a long feed: give it its full room.
                let mut part = if last.is_some() {
                    Vec::with_capacity(per)
                } else {
                    Vec::new()
                };
                part.push(indicator);
                parts.push(part);
            }
        }
    }

    /// How many indicators are held under `tlp`.
    pub fn len(&self, tlp: Tlp) -> usize {
        self.groups.get(&tlp).map_or(0, |parts| {
            parts
                .last()
                .map_or(0, |last| (parts.len() - 1) * self.per_incident + last.len())
        })
    }

    /// The `n`th indicator held under `tlp`.
    pub fn get(&self, tlp: Tlp, n: usize) -> Option<&Indicator> {
        let parts = self.groups.get(&tlp)?;
        parts.get(n / self.per_incident)?.get(n % self.per_incident)
    }

    /// The incidents: `template` copied for each part with its label,
    /// indicators, title and source id. With `keep_empty`, the default
    /// label's first part is made even with no indicators, so a source
    /// without any still gives its incident.
    pub fn finish(
        mut self,
        template: &FileIncident,
        source: &Source,
        keep_empty: bool,
    ) -> Vec<Imported> {
        if keep_empty {
            let base = self.groups.entry(self.base_tlp).or_default();
            if base.is_empty() {
                base.push(vec![]);
            }
        }
        let mut order: Vec<Tlp> = self.groups.keys().copied().collect();
        order.sort_by_key(|t| (*t != self.base_tlp, *t));
        let mut out = Vec::new();
        for tlp in order {
            let Some(chunks) = self.groups.remove(&tlp) else {
                continue;
            };
            let parts = chunks.len();
            for (n, chunk) in chunks.into_iter().enumerate() {
                let part = n + 1;
                let mut incident = template.clone();
                incident.tlp = tlp;
                incident.indicators = chunk;
                incident.title = part_title(&template.title, tlp, self.base_tlp, part, parts);
                incident.source = Some(Source {
                    id: part_id(&source.id, tlp, self.base_tlp, part),
                    ..source.clone()
                });
                out.push(Imported {
                    incident,
                    sightings: vec![],
                });
            }
        }
        out
    }
}

fn part_id(id: &str, tlp: Tlp, base: Tlp, part: usize) -> String {
    match (tlp == base, part) {
        (true, 1) => id.to_owned(),
        (true, n) => format!("{id}#{n}"),
        (false, 1) => format!("{id}#{tlp}"),
        (false, n) => format!("{id}#{tlp}-{n}"),
    }
}

fn part_title(title: &str, tlp: Tlp, base: Tlp, part: usize, parts: usize) -> String {
    let mut notes = Vec::new();
    if tlp != base {
        notes.push(format!("TLP:{}", tlp.as_str().to_ascii_uppercase()));
    }
    if parts > 1 {
        notes.push(format!("part {part} of {parts}"));
    }
    if notes.is_empty() {
        return title.to_owned();
    }
    let suffix = format!(" ({})", notes.join(", "));
    let room = MAX_TITLE_CHARS.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", cut(title, room))
}

/// The reporting CERT's name as this node knows it (the trust store's
/// name, else its fingerprint).
pub(crate) fn reporter_name(incident: &ExportIncident<'_>, options: &ExportOptions) -> String {
    let reporter = incident.state.reporter.as_ref();
    let known = reporter.and_then(|r| {
        options
            .names
            .iter()
            .find(|(f, _)| f == r)
            .map(|(_, name)| name.clone())
    });
    incident
        .reporter_name
        .map(str::to_owned)
        .or(known)
        .or_else(|| reporter.map(|r| r.as_str().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A problem at `location`.
pub(crate) fn problem(location: impl Into<String>, reason: impl Into<String>) -> Problem {
    Problem {
        location: location.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::model::{Classification, IndicatorType, Severity};

    #[test]
    fn times_in_the_forms_tools_write() {
        let want: Timestamp = "2026-11-28T13:00:00Z".parse().unwrap();
        assert_eq!(parse_time("2026-11-28T13:00:00Z"), Ok(want));
        assert_eq!(parse_time("2026-11-28T13:00:00.000000+00:00"), Ok(want));
        assert_eq!(parse_time("2026-11-28 13:00:00"), Ok(want));
        assert_eq!(parse_time(" 1795870800 "), Ok(want));
        assert_eq!(
            parse_time("2026-11-28"),
            Ok("2026-11-28T00:00:00Z".parse().unwrap())
        );
        let err = parse_time("last tuesday").unwrap_err();
        assert!(err.contains("'last tuesday' is not a time"), "{err}");
        assert!(parse_time("").is_err());
        // Found by fuzzing (misp_import): a signed year parsed as a date,
        // and the filing it went into could not be written as JSON.
        for far in ["-4052-11-20", "-0001-01-01 00:00:00"] {
            let err = parse_time(far).unwrap_err();
            assert!(err.contains("outside years 0000-9999"), "{far}: {err}");
        }
        // Unix seconds saturate at the last instant RFC 3339 can write.
        let latest = parse_time("999999999999").unwrap();
        assert!(serde_json::to_string(&latest).is_ok());
    }

    #[test]
    fn comments_are_fitted_not_fatal() {
        assert_eq!(fit_comment("  "), (None, None));
        assert_eq!(fit_comment(" port 443 "), (Some("port 443".into()), None));
        let (kept, why) = fit_comment("a\u{202e}b");
        assert_eq!(kept, None);
        assert!(why
            .unwrap()
            .starts_with("comment dropped: must not contain bidi"));
        let (kept, why) = fit_comment(&"x".repeat(2000));
        assert_eq!(kept.unwrap().chars().count(), Indicator::COMMENT_MAX_CHARS);
        assert_eq!(why.unwrap(), "comment cut to 1024 characters");
    }

    #[test]
    fn titles_take_the_first_line() {
        assert_eq!(title_from("Phish wave", "x"), ("Phish wave".into(), false));
        assert_eq!(
            title_from("Phish wave\nmore detail", "x"),
            ("Phish wave".into(), true)
        );
        assert_eq!(title_from("  \n ", "fallback"), ("fallback".into(), false));
        assert_eq!(
            title_from("\u{7}\nreal", "fallback"),
            ("fallback".into(), true)
        );
        assert_eq!(title_from("", "fallback"), ("fallback".into(), false));
        let (long, lost) = title_from(&"t".repeat(300), "x");
        assert_eq!(long.chars().count(), MAX_TITLE_CHARS);
        assert!(lost);
    }

    #[test]
    fn series_cut_per_label_and_size() {
        let template = FileIncident::new(
            "Feed",
            Severity::Medium,
            Tlp::Green,
            Classification::parse("other/other").unwrap(),
        );
        let source = Source {
            format: "csv".into(),
            id: "feed.csv".into(),
            creator: None,
            file: Some("feed.csv".into()),
        };
        let mut series = Series::new(Tlp::Green, 2);
        for i in 1..=5 {
            let ip = Indicator::new(IndicatorType::Ipv4, &format!("192.0.2.{i}")).unwrap();
            series.push(Tlp::Green, ip);
        }
        let amber = Indicator::new(IndicatorType::Domain, "evil.example").unwrap();
        series.push(Tlp::Amber, amber);
        let out = series.finish(&template, &source, true);
        let got: Vec<_> = out
            .iter()
            .map(|i| {
                (
                    i.incident.source.as_ref().unwrap().id.as_str(),
                    i.incident.title.as_str(),
                    i.incident.tlp,
                    i.incident.indicators.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("feed.csv", "Feed (part 1 of 3)", Tlp::Green, 2),
                ("feed.csv#2", "Feed (part 2 of 3)", Tlp::Green, 2),
                ("feed.csv#3", "Feed (part 3 of 3)", Tlp::Green, 1),
                ("feed.csv#amber", "Feed (TLP:AMBER)", Tlp::Amber, 1),
            ]
        );
    }
}
