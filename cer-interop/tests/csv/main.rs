//! CSV and plain lists: every column and refusal on hand-written
//! fixtures, bulk cutting, the export's quoting and formula guard, and
//! export → import as the identity.

#[path = "../shared/mod.rs"]
mod common;

use std::collections::BTreeSet;

use cer_interop::csv::{self, Bulk, EXPORT_COLUMNS};
use cer_interop::{ExportOptions, ImportOptions};
use cer_proto::incident::Retracted;
use cer_proto::model::{IndicatorType as T, Tlp};
use cer_proto::EnvelopeId;
use proptest::prelude::*;

use common::{
    any_incident, at, export_incident, export_options, fixture, has, lines, options, sample_state,
    state_of,
};

fn summary(report: &cer_interop::ImportReport) -> Vec<(String, String, Tlp, Vec<String>)> {
    report
        .incidents
        .iter()
        .map(|i| {
            let file = &i.incident;
            (
                file.source.as_ref().unwrap().id.clone(),
                file.title.clone(),
                file.tlp,
                file.indicators.iter().map(|x| x.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn csv_rows_map_every_column() {
    let report = csv::import(
        &fixture("csv/indicators.csv"),
        &options("indicators.csv"),
        &Bulk::default(),
    )
    .unwrap();
    assert_eq!(
        summary(&report),
        [
            (
                "indicators.csv".into(),
                "Indicators from indicators.csv".into(),
                Tlp::Amber,
                vec![
                    "cidr:198.51.100.0/24".into(),
                    "ipv4:192.0.2.2".into(),
                    "domain:bad.example".into(),
                    "ipv4:203.0.113.9".into(),
                    "domain:evil.example".into(),
                    "filename:=cmd.exe".into(),
                    "url:https://evil.example/a".into(),
                    "email:+x@evil.example".into(),
                ]
            ),
            (
                "indicators.csv#clear".into(),
                "Indicators from indicators.csv (TLP:CLEAR)".into(),
                Tlp::Clear,
                vec!["md5:d41d8cd98f00b204e9800998ecf8427e".into()]
            ),
            (
                "indicators.csv#green".into(),
                "Indicators from indicators.csv (TLP:GREEN)".into(),
                Tlp::Green,
                vec!["ipv4:192.0.2.1".into()]
            ),
        ]
    );
    let green = &report.incidents[2].incident.indicators[0];
    assert_eq!(
        green.comment.as_deref(),
        Some("C2 panel"),
        "the first of a repeated value counts"
    );
    assert_eq!(green.first_seen, Some(at("2026-11-01T00:00:00Z")));
    assert_eq!(green.last_seen, Some(at("2026-11-02T12:00:00Z")));
    assert_eq!(green.valid_until, Some(at("2026-12-31T00:00:00Z")));
    assert_eq!(green.confidence, Some(80));
    let amber = &report.incidents[0].incident.indicators;
    assert_eq!(
        amber[1].comment.as_deref(),
        Some("port 443; quoted, with a comma")
    );
    assert_eq!(
        amber[6].comment.as_deref(),
        Some("a comment\r\non two lines")
    );
    assert_eq!(amber[6].first_seen, Some(at("2026-11-18T11:06:40Z")));
    let source = report.incidents[0].incident.source.as_ref().unwrap();
    assert_eq!(
        (source.format.as_str(), source.file.as_deref()),
        ("csv", Some("indicators.csv"))
    );

    assert_eq!(
        lines(&report.skipped),
        ["line 1: column 'source_feed' is not read"]
    );
    let invalid = lines(&report.invalid);
    assert_eq!(invalid.len(), 8, "{invalid:#?}");
    for (line, part) in [
        ("line 9", "ipv4: octet '999' in '999.1.1.1' is not in 0-255"),
        ("line 10", "sha256: must be 64 hex digits, got 3"),
        ("line 11", "unknown type 'bogus'; use one of ipv4, ipv6"),
        ("line 12", "first_seen: 'yesterday' is not a time"),
        (
            "line 13",
            "tlp 'purple' is not one of clear, green, amber, amber+strict, red",
        ),
        ("line 14", "confidence '200' is not 0-100"),
        (
            "line 15",
            "last_seen 2026-11-01T00:00:00Z is before first_seen 2026-11-05T00:00:00Z",
        ),
        (
            "line 20",
            "link is a reference to a report, not an indicator",
        ),
    ] {
        assert!(has(&report.invalid, line, part), "{line}: {invalid:#?}");
    }
    for imported in &report.incidents {
        imported.incident.to_body().unwrap();
    }
}

#[test]
fn defaults_come_from_the_options() {
    let opts = ImportOptions {
        tlp: Some(Tlp::Green),
        ..options("indicators.csv")
    };
    let bulk = Bulk {
        per_incident: 3,
        title: Some("Partner feed".into()),
    };
    let report = csv::import(&fixture("csv/indicators.csv"), &opts, &bulk).unwrap();
    let got: Vec<(String, String, usize)> = summary(&report)
        .into_iter()
        .map(|(id, title, _, list)| (id, title, list.len()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "indicators.csv".into(),
                "Partner feed (part 1 of 3)".into(),
                3
            ),
            (
                "indicators.csv#2".into(),
                "Partner feed (part 2 of 3)".into(),
                3
            ),
            (
                "indicators.csv#3".into(),
                "Partner feed (part 3 of 3)".into(),
                1
            ),
            (
                "indicators.csv#clear".into(),
                "Partner feed (TLP:CLEAR)".into(),
                1
            ),
            (
                "indicators.csv#amber".into(),
                "Partner feed (TLP:AMBER)".into(),
                2
            ),
        ]
    );
}

#[test]
fn a_csv_without_a_value_column_is_refused_whole() {
    for bytes in [&b"type,indicatorz\nipv4,192.0.2.1\n"[..], b""] {
        let err = csv::import(bytes, &options("x.csv"), &Bulk::default()).unwrap_err();
        assert!(err.reason.contains("no 'value' column"), "{err}");
    }
    let bad_title = Bulk {
        title: Some("two\nlines".into()),
        ..Bulk::default()
    };
    assert!(csv::import(b"value\n192.0.2.1\n", &options("x.csv"), &bad_title).is_err());
    // A header of aliases, a BOM, and a type for every line from the options.
    let opts = ImportOptions {
        indicator_type: Some(T::Domain),
        ..options("x.csv")
    };
    let report = csv::import(
        "\u{feff}IOC\nevil.example\n192.0.2.1\n".as_bytes(),
        &opts,
        &Bulk::default(),
    )
    .unwrap();
    assert_eq!(report.incidents[0].incident.indicators.len(), 1);
    assert!(
        has(&report.invalid, "line 3", "numeric label"),
        "{:?}",
        lines(&report.invalid)
    );
}

#[test]
fn a_list_is_typed_line_by_line() {
    let report = csv::import_list(
        &fixture("csv/list.txt"),
        &options("list.txt"),
        &Bulk::default(),
    )
    .unwrap();
    let got: Vec<String> = report.incidents[0]
        .incident
        .indicators
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "ipv4:192.0.2.1",
            "ipv6:2001:db8::1",
            "domain:evil.example",
            "url:https://evil.example/x",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "asn:AS64500",
            "cve:CVE-2021-44228",
            "filename:report_final.pdf",
            "cidr:192.0.2.0/24",
        ]
    );
    assert_eq!(
        report.incidents[0].incident.source.as_ref().unwrap().format,
        "list"
    );
    assert_eq!(lines(&report.invalid).len(), 1);
    assert!(has(
        &report.invalid,
        "line 11",
        "'not valid / path' is not an address"
    ));

    let opts = ImportOptions {
        indicator_type: Some(T::Ipv4),
        ..options("list.txt")
    };
    let report = csv::import_list(&fixture("csv/list.txt"), &opts, &Bulk::default()).unwrap();
    assert_eq!(report.incidents[0].incident.indicators.len(), 1);
    assert_eq!(
        report.invalid.len(),
        9,
        "every other value, with the ipv4 reason"
    );
    assert!(has(&report.invalid, "line 5", "is not an IPv4 address"));
    assert!(
        csv::import_list(b"\n# nothing\n", &options("x"), &Bulk::default())
            .unwrap()
            .incidents
            .is_empty()
    );
    let report =
        csv::import_list(b"192.0.2.1\n\xff\xfe\n", &options("x"), &Bulk::default()).unwrap();
    assert_eq!(lines(&report.invalid), ["line 2: not UTF-8"]);
}

#[test]
fn a_big_feed_is_cut_into_parts() {
    let mut text = String::from("value\n");
    for n in 0..25_001u32 {
        text.push_str(&format!("10.{}.{}.{}\n", n >> 16, (n >> 8) & 255, n & 255));
    }
    let report = csv::import(text.as_bytes(), &options("big.csv"), &Bulk::default()).unwrap();
    let sizes: Vec<usize> = report
        .incidents
        .iter()
        .map(|i| i.incident.indicators.len())
        .collect();
    assert_eq!(sizes, [10_000, 10_000, 5_001]);
    assert_eq!(
        report.incidents[2].incident.title,
        "Indicators from big.csv (part 3 of 3)"
    );
    let oversized = Bulk {
        per_incident: 1_000_000,
        title: None,
    };
    let report = csv::import(text.as_bytes(), &options("big.csv"), &oversized).unwrap();
    assert_eq!(
        report.incidents[0].incident.indicators.len(),
        10_000,
        "never more than an envelope holds"
    );
}

#[test]
fn the_export_has_one_row_per_indicator() {
    let state = sample_state();
    let bytes = csv::export(&[export_incident(&state)], &export_options());
    let text = String::from_utf8(bytes).unwrap();
    let rows: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(rows[0], EXPORT_COLUMNS.join(","));
    assert_eq!(
        rows.len(),
        1 + 14 + 1,
        "header, rows, and the final line end"
    );
    let id = state.id.to_string();
    assert_eq!(
        rows[1],
        format!(
            "{id},CERT-B,green,ipv4,192.0.2.10,2026-11-20T12:00:00Z,2026-11-20T12:00:00Z,,0,30,"
        )
    );
    assert!(rows.contains(&format!("{id},CERT-B,green,email,'=phish@evil.example,2026-11-20T12:00:00Z,2026-11-20T12:00:00Z,,0,,").as_str()));
    assert!(rows.contains(&format!("{id},CERT-B,green,filename,'+invoice.exe,2026-11-20T12:00:00Z,2026-11-20T12:00:00Z,,0,,").as_str()));
    assert!(
        rows.iter()
            .any(|r| r.ends_with(",'@SUM(A1) - seen in the lure")),
        "comments guarded too"
    );
    assert!(
        rows.iter().any(|r| r.contains(",amber,ipv4,203.0.113.77,")),
        "the indicator's own label"
    );
    assert!(rows
        .iter()
        .any(|r| r.contains(",evil.example,") && r.contains(",2026-11-30T00:00:00Z,")));

    let active = ExportOptions {
        active_only: true,
        ..export_options()
    };
    let text = String::from_utf8(csv::export(&[export_incident(&state)], &active)).unwrap();
    assert!(!text.contains(",evil.example,"));

    let mut retracted = sample_state();
    retracted.retracted = Some(Retracted {
        by: EnvelopeId::of(b"r"),
        at: at("2026-11-26T00:00:00Z"),
        reason: None,
    });
    let text = String::from_utf8(csv::export(
        &[export_incident(&retracted)],
        &export_options(),
    ))
    .unwrap();
    assert_eq!(text, format!("{}\r\n", EXPORT_COLUMNS.join(",")));
}

#[test]
fn quoting_follows_rfc_4180() {
    let mut state = sample_state();
    state.indicators.truncate(1);
    state.indicators[0].comment = Some("say \"hi\", then\nleave".into());
    let text =
        String::from_utf8(csv::export(&[export_incident(&state)], &export_options())).unwrap();
    assert!(
        text.ends_with(",\"say \"\"hi\"\", then\nleave\"\r\n"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn csv_export_then_import_is_the_identity(incidents in proptest::collection::vec(any_incident(), 1..4)) {
        let states: Vec<_> = incidents.iter().enumerate().map(|(n, (tlp, list))| state_of(*tlp, list, n as u128)).collect();
        let exported: Vec<_> = states.iter().map(export_incident).collect();
        let bytes = csv::export(&exported, &export_options());
        let report = csv::import(&bytes, &options("export.csv"), &Bulk::default()).unwrap();
        prop_assert!(report.invalid.is_empty(), "{:?}", report.invalid);
        prop_assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        let got: BTreeSet<_> = report
            .incidents
            .iter()
            .flat_map(|i| i.incident.indicators.iter().map(move |x| (x.kind, x.value.clone(), i.incident.tlp)))
            .collect();
        let want: BTreeSet<_> = common::expected(&states).into_keys().collect();
        prop_assert_eq!(got, want);
    }
}
