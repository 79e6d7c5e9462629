//! CSV with a header row, and plain lists of values: import and export.
//!
//! **CSV import** ([`import`]): a header row naming at least a `value`
//! column, and any of `type`, `comment`, `first_seen`, `last_seen`,
//! `valid_until`, `tlp`, `confidence`. Types in the model's names
//! (`ipv4`, `sha256`…) or MISP's (`ip-dst`, `domain|ip`, `filename|md5`…);
//! a row without a type is typed by its value, like a list's line. Times
//! as RFC 3339, a date, `YYYY-MM-DD HH:MM:SS` (UTC) or Unix seconds.
//!
//! **Plain lists** ([`import_list`]): one value per line; empty lines
//! and lines starting with `#` are passed over. Every line has
//! [`ImportOptions::indicator_type`](crate::ImportOptions) when given,
//! else the first type it is valid as, in the model's order (ipv4, ipv6,
//! cidr, domain, url, email, md5, sha1, sha256, sha512, asn, cve), a file
//! name only when nothing else fits.
//!
//! Both give incidents of at most [`Bulk::per_incident`] indicators, one
//! series per TLP, titled with [`Bulk::title`] and a part number. A bad
//! row is reported with its line number and reason and costs only itself.
//!
//! **Export** ([`export`]): one row per indicator ([`EXPORT_COLUMNS`]),
//! RFC 4180 quoting, CRLF line ends. Cells are data, never formulas: a
//! text cell that a spreadsheet would run (it begins with `=`, `+`, `-`,
//! `@`, a tab or a carriage return) is written with a `'` in front, as
//! OWASP advises against CSV injection, and so is one that begins with
//! `'` followed by one of those or another `'`. The importer takes that
//! `'` off again, so export → import gives back every value.
//!
//! Must not: read files or the clock.

mod export;
mod import;

pub use export::{export, EXPORT_COLUMNS};
pub use import::{import, import_list};

/// Indicators per incident when a bulk import is cut up.
pub const DEFAULT_PER_INCIDENT: usize = 10_000;

/// How a long feed becomes incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulk {
    /// At most this many indicators per incident (at most one envelope's
    /// worth, 10,000).
    pub per_incident: usize,
    /// The incidents' shared title; default `Indicators from FILE`.
    pub title: Option<String>,
}

impl Default for Bulk {
    fn default() -> Self {
        Bulk {
            per_incident: DEFAULT_PER_INCIDENT,
            title: None,
        }
    }
}

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as written: `'` in front of what a spreadsheet would run.
fn guard(cell: &str) -> std::borrow::Cow<'_, str> {
    let mut chars = cell.chars();
    let first = chars.next();
    let second = chars.next();
    let risky = match first {
        Some(c) if FORMULA_START.contains(&c) => true,
        Some('\'') => second.is_some_and(|c| c == '\'' || FORMULA_START.contains(&c)),
        _ => false,
    };
    if risky {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// The cell's text with [`guard`]'s `'` taken off.
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with('\'') || rest.starts_with(FORMULA_START) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_guarded_and_read_back() {
        for (plain, written) in [
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("+x@evil.example", "'+x@evil.example"),
            ("-1", "'-1"),
            ("@SUM(1)", "'@SUM(1)"),
            ("\tx", "'\tx"),
            ("'=x", "''=x"),
            ("''", "'''"),
            ("'quoted'", "'quoted'"),
            ("evil.example", "evil.example"),
            ("", ""),
        ] {
            assert_eq!(guard(plain), written, "{plain:?}");
            assert_eq!(unguard(written), plain, "{written:?}");
        }
    }
}
