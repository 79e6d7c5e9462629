//! Human output: tables, relative ages, truncation and short names.
//!
//! Pure formatting with the clock passed in, so it is tested without a
//! daemon. comfy-table is used only here.

use std::collections::BTreeMap;
use std::io::{self, Write};

use cer_proto::model::{IndicatorType, Timestamp};
use cer_proto::{EnvelopeId, Fingerprint};
use comfy_table::{presets, Table};
use time::{OffsetDateTime, UtcOffset};

/// A borderless table with a header, left-aligned, two spaces between
/// columns: easy to read and to `grep`/`awk`.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(header);
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// Widest line a table takes by default; `--wide` lifts the limit.
pub const TABLE_WIDTH: usize = 100;

/// Characters of an incident id shown in tables without `--wide`: enough
/// to give back as a prefix (`cerctl incident show 0192ab3c`).
pub const SHORT_ID_CHARS: usize = 8;

/// Width a flexible column keeps, if it can, before others give way.
const COMFORTABLE_CHARS: usize = 20;

/// A table whose lines fit `width` characters: the `flexible` columns
/// (by index) give up characters in the order given, first each down to
/// [`COMFORTABLE_CHARS`], then each down to the larger of its header and
/// 8 characters; cut cells end with `…`. Cells must
/// already be one line and escaped (see [`one_line`]).
pub fn fitted_table<const N: usize>(
    header: [&str; N],
    rows: Vec<[String; N]>,
    flexible: &[usize],
    width: usize,
) -> Table {
    let chars = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| chars(h)).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(chars(cell));
        }
    }
    let floor = |i: usize| chars(header[i]).max(8);
    let total = |widths: &[usize]| widths.iter().sum::<usize>() + 2 * (N.saturating_sub(1));
    // First each gives way down to a comfortable width, then, if still
    // needed, down to its floor: a long title does not lose everything
    // while a long class keeps all of it.
    for pass_floor in [|f: usize| f.max(COMFORTABLE_CHARS), |f: usize| f] {
        for &i in flexible {
            let over = total(&widths).saturating_sub(width);
            widths[i] -= over.min(widths[i].saturating_sub(pass_floor(floor(i))));
        }
    }
    let mut table = self::table(header);
    for row in rows {
        table.add_row(
            row.iter()
                .enumerate()
                .map(|(i, cell)| {
                    if chars(cell) > widths[i] {
                        truncate(cell, widths[i])
                    } else {
                        cell.clone()
                    }
                })
                .collect::<Vec<_>>(),
        );
    }
    table
}

/// The width tables fit: [`TABLE_WIDTH`], or unlimited with `--wide`.
pub fn table_width(wide: bool) -> usize {
    if wide {
        usize::MAX
    } else {
        TABLE_WIDTH
    }
}

/// An incident id for a table: its first [`SHORT_ID_CHARS`] hex digits,
/// or the whole id with `--wide`.
pub fn incident_id(id: &uuid::Uuid, wide: bool) -> String {
    if wide {
        id.to_string()
    } else {
        id.simple().to_string()[..SHORT_ID_CHARS].to_owned()
    }
}

/// Writes a table without the trailing blanks its padding leaves.
pub fn write_table(out: &mut dyn Write, table: &Table) -> io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// How long ago `then` was, relative to `now`: `12s ago`, `5m ago`,
/// `3h ago`, `2d ago`; the date for anything older than 30 days;
/// `in 5m` for times ahead of `now` (clock skew between CERTs).
pub fn age(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - then).whole_seconds();
    let span = short_span(seconds.unsigned_abs());
    if seconds < 0 {
        if seconds.unsigned_abs() > 30 * DAY {
            return date(then);
        }
        return format!("in {span}");
    }
    if seconds < 5 {
        return "just now".into();
    }
    if seconds.unsigned_abs() > 30 * DAY {
        return date(then);
    }
    format!("{span} ago")
}

/// A timestamp to the second, in UTC: `2026-11-28T13:00:00Z`. Tables do
/// not need the nanoseconds envelopes carry; `--json` keeps them.
pub fn seconds(at: &Timestamp) -> String {
    let t = at.0.checked_to_offset(UtcOffset::UTC).unwrap_or(at.0);
    let (hour, minute, second) = t.to_hms();
    format!("{}T{hour:02}:{minute:02}:{second:02}Z", date(t))
}

/// A timestamp with its age: `2026-11-28T13:00:00Z (5m ago)`.
pub fn when(at: &Timestamp, now: OffsetDateTime) -> String {
    format!("{} ({})", seconds(at), age(at.0, now))
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
/// Text from other CERTs is made safe first: line breaks and tabs become
/// spaces (one line per table cell), and every other control or bidi
/// character is shown escaped by [`cer_proto::text::escape`], so it can
/// neither break the table nor drive the terminal.
pub fn truncate(text: &str, max: usize) -> String {
    let folded: String = text
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let clean = cer_proto::text::escape(&folded).into_owned();
    match clean.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if clean.chars().count() > max => format!("{}…", &clean[..cut]),
        _ => clean,
    }
}

/// Free text from other CERTs, one line, control and bidi characters
/// escaped.
pub fn one_line(text: &str) -> String {
    truncate(text, usize::MAX)
}

/// The first `n` lines of outside text (a program's output), each made
/// safe by [`one_line`], and how many lines were left out.
pub fn first_lines(text: &str, n: usize) -> (Vec<String>, usize) {
    let mut lines = text.lines();
    let shown: Vec<String> = lines.by_ref().take(n).map(one_line).collect();
    (shown, lines.count())
}

/// JSON text (as serde_json writes it) for the terminal: every character
/// a terminal must not receive raw that serde_json leaves as it is (DEL,
/// C1 controls, bidi controls; it escapes the C0 ones itself) written as a
/// `\uXXXX` escape. Such characters occur only inside strings, so the
/// result is the same JSON value; the whitespace between tokens stays.
pub fn terminal_json(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| cer_proto::text::is_unsafe_for_terminal(c) && !matches!(c, '\n' | '\r' | '\t');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            // Every such character is in the Basic Multilingual Plane.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// An indicator value for the terminal, escaped. A domain (or an email
/// address's domain) written in punycode gets its Unicode form beside it,
/// `xn--mnchen-3ya.example  (münchen.example)`, but only when every label
/// decodes cleanly, nothing in it needs escaping (no control or bidi
/// characters), and no label mixes Latin, Greek and Cyrillic letters, the
/// usual look-alike trick; otherwise the punycode alone is shown.
pub fn indicator_value(kind: IndicatorType, value: &str) -> String {
    let shown = one_line(value);
    let domain = match kind {
        IndicatorType::Domain => value,
        IndicatorType::Email => match value.rsplit_once('@') {
            Some((_, domain)) => domain,
            None => return shown,
        },
        _ => return shown,
    };
    match unicode_domain(domain) {
        Some(unicode) => format!("{shown}  ({})", value.replace(domain, &unicode)),
        None => shown,
    }
}

/// The Unicode form of a punycode domain, when it is safe to show.
fn unicode_domain(domain: &str) -> Option<String> {
    let punycode = domain.split('.').any(|label| {
        label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
    });
    if !punycode {
        return None;
    }
    let (unicode, decoded) = idna::domain_to_unicode(domain);
    decoded.ok()?;
    if unicode == domain
        || cer_proto::text::escape(&unicode) != unicode.as_str()
        || unicode.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    if unicode.split('.').any(mixes_scripts) {
        return None;
    }
    Some(unicode)
}

/// Whether a label has letters of more than one of Latin, Greek and
/// Cyrillic (`pаypal` with a Cyrillic `а`).
fn mixes_scripts(label: &str) -> bool {
    let script = |c: char| match c {
        'a'..='z' | 'A'..='Z' | '\u{c0}'..='\u{24f}' | '\u{1e00}'..='\u{1eff}' => Some(0),
        '\u{370}'..='\u{3ff}' | '\u{1f00}'..='\u{1fff}' => Some(1),
        '\u{400}'..='\u{52f}' => Some(2),
        _ => None,
    };
    let mut seen = label.chars().filter_map(script);
    match seen.next() {
        Some(first) => seen.any(|s| s != first),
        None => false,
    }
}

/// A CERT by name when known, otherwise by short fingerprint.
pub fn cert_name(fingerprint: &Fingerprint, names: &BTreeMap<Fingerprint, String>) -> String {
    match names.get(fingerprint) {
        Some(name) => one_line(name),
        None => fingerprint.short().to_owned(),
    }
}

/// "NAME (FINGERPRINT)", or just the fingerprint when the name is unknown.
pub fn cert_full(fingerprint: &Fingerprint, names: &BTreeMap<Fingerprint, String>) -> String {
    match names.get(fingerprint) {
        Some(name) => format!("{} ({fingerprint})", one_line(name)),
        None => fingerprint.to_string(),
    }
}

/// An optional value, or `-`.
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The first 16 hex digits of an envelope id, for timelines.
pub fn short_id(id: &EnvelopeId) -> String {
    id.to_hex()[..16].to_owned()
}

/// `s` for counts other than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A size in bytes, binary units.
pub fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    match n {
        n if n < KIB => format!("{n} B"),
        n if n < KIB * KIB => format!("{:.1} KiB", n as f64 / KIB as f64),
        n if n < KIB * KIB * KIB => format!("{:.1} MiB", n as f64 / (KIB * KIB) as f64),
        n => format!("{:.1} GiB", n as f64 / (KIB * KIB * KIB) as f64),
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn short_span(seconds: u64) -> String {
    match seconds {
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => format!("{}m", s / MINUTE),
        s if s < DAY => format!("{}h", s / HOUR),
        s => format!("{}d", s / DAY),
    }
}

fn date(at: OffsetDateTime) -> String {
    let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    #[test]
    fn json_for_the_terminal_is_the_same_value_with_nothing_raw() {
        let value = serde_json::json!({
            "title": "\u{1b}]52;c;x\u{7}",
            "note": "a\u{9b}31m \u{200e}b\u{202e} \u{7f} é 中",
        });
        for text in [
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            let shown = terminal_json(&text);
            assert!(
                !shown
                    .chars()
                    .any(|c| cer_proto::text::is_unsafe_for_terminal(c) && c != '\n'),
                "{shown}"
            );
            assert!(
                shown.contains("\\u009b") && shown.contains("é 中"),
                "{shown}"
            );
            let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
            assert_eq!(back, value);
        }
        assert!(matches!(
            terminal_json("{\"a\": 1}"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn ages_are_short_and_relative() {
        let now = datetime!(2026-11-28 13:00:00 UTC);
        let ago = |d: Duration| age(now - d, now);
        assert_eq!(ago(Duration::seconds(2)), "just now");
        assert_eq!(ago(Duration::seconds(42)), "42s ago");
        assert_eq!(ago(Duration::minutes(5) + Duration::seconds(59)), "5m ago");
        assert_eq!(ago(Duration::hours(3)), "3h ago");
        assert_eq!(ago(Duration::days(2) + Duration::hours(23)), "2d ago");
        assert_eq!(ago(Duration::days(45)), "2026-10-14");
        assert_eq!(ago(Duration::minutes(-5)), "in 5m");
    }

    #[test]
    fn first_lines_are_escaped_and_the_rest_counted() {
        let (lines, more) = first_lines("a\tb\r\n\u{1b}[2Jc\nd\ne\n", 2);
        assert_eq!(lines, ["a b", "\\u{1b}[2Jc"]);
        assert_eq!(more, 2);
        assert_eq!(first_lines("", 5), (Vec::<String>::new(), 0));
        assert_eq!(first_lines("x", 5), (vec!["x".to_owned()], 0));
    }

    #[test]
    fn timestamps_are_shown_to_the_second_in_utc() {
        let at: Timestamp = "2026-11-28T15:01:03.660897342+02:00".parse().unwrap();
        assert_eq!(seconds(&at), "2026-11-28T13:01:03Z");
        let now = time::macros::datetime!(2026-11-28 13:06:04 UTC);
        assert_eq!(when(&at, now), "2026-11-28T13:01:03Z (5m ago)");
    }

    #[test]
    fn truncation_counts_characters_and_escapes_controls() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("a longer title here", 10), "a longer …");
        assert_eq!(truncate("ééééééé", 4), "ééé…");
        assert_eq!(truncate("two\nlines\x1b[31m", 40), "two lines\\u{1b}[31m");
        assert_eq!(
            one_line("Evil\u{1b}]52;c;cGF5bG9hZA==\u{7} CERT\u{202E}"),
            "Evil\\u{1b}]52;c;cGF5bG9hZA==\\u{7} CERT\\u{202e}"
        );
    }

    #[test]
    fn certs_show_names_when_known() {
        let fpr = Fingerprint::parse(&"AB".repeat(20)).unwrap();
        let mut names = BTreeMap::new();
        assert_eq!(cert_name(&fpr, &names), "ABABABABABABABAB");
        names.insert(fpr.clone(), "KE-CIRT".to_owned());
        assert_eq!(cert_name(&fpr, &names), "KE-CIRT");
        assert_eq!(
            cert_full(&fpr, &names),
            format!("KE-CIRT ({})", "AB".repeat(20))
        );
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }

    #[test]
    fn fitted_tables_cut_the_flexible_columns_to_the_width() {
        let long = "x".repeat(80);
        let rows = vec![[
            "0192ab3c".to_owned(),
            long.clone(),
            "a reporter name that is long".to_owned(),
        ]];
        let table = fitted_table(["ID", "TITLE", "REPORTER"], rows.clone(), &[1, 2], 60);
        // The title gives way first: the reporter stays whole.
        let mut out = Vec::new();
        write_table(&mut out, &table).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
        assert!(text.contains("0192ab3c") && text.contains('…'), "{text}");
        assert!(text.contains("a reporter name that is long"), "{text}");
        let table = fitted_table(["ID", "TITLE", "REPORTER"], rows, &[1, 2], usize::MAX);
        let mut out = Vec::new();
        write_table(&mut out, &table).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(&long));
    }

    #[test]
    fn punycode_domains_show_their_unicode_form_when_it_is_safe() {
        assert_eq!(
            indicator_value(IndicatorType::Domain, "xn--mnchen-3ya.example"),
            "xn--mnchen-3ya.example  (münchen.example)"
        );
        assert_eq!(
            indicator_value(IndicatorType::Email, "info@xn--mnchen-3ya.example"),
            "info@xn--mnchen-3ya.example  (info@münchen.example)"
        );
        // Plain ASCII and other types stay as they are.
        assert_eq!(
            indicator_value(IndicatorType::Domain, "example.org"),
            "example.org"
        );
        assert_eq!(
            indicator_value(IndicatorType::Filename, "xn--mnchen-3ya.exe"),
            "xn--mnchen-3ya.exe"
        );
        // Latin with a Cyrillic "а": the look-alike is not shown.
        let (spoof, _) =
            idna::domain_to_ascii_cow("pаypal.example".as_bytes(), idna::AsciiDenyList::URL)
                .map(|a| (a.into_owned(), ()))
                .unwrap();
        assert!(spoof.starts_with("xn--"), "{spoof}");
        assert_eq!(indicator_value(IndicatorType::Domain, &spoof), spoof);
        // Undecodable punycode is shown as it is.
        assert_eq!(
            indicator_value(IndicatorType::Domain, "xn--zz-0000000.example"),
            "xn--zz-0000000.example"
        );
        // A label decoding to a bidi control is refused.
        let bidi = idna::punycode::encode_str("a\u{202e}b").unwrap();
        let domain = format!("xn--{bidi}.example");
        assert_eq!(indicator_value(IndicatorType::Domain, &domain), domain);
    }

    #[test]
    fn table_has_no_borders() {
        let mut t = table(["ID", "TITLE"]);
        t.add_row(["1", "one"]);
        let mut out = Vec::new();
        write_table(&mut out, &t).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
        assert!(text.lines().next().unwrap().starts_with("ID"), "{text}");
    }
}
