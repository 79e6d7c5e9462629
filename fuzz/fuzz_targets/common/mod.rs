//! What the importer targets share: options, and the check that an import
//! gives only filings the node would take.

use cer_interop::{ImportOptions, ImportReport};
use cer_proto::model::Timestamp;

pub fn options() -> ImportOptions {
    ImportOptions {
        tlp: None,
        severity: None,
        classification: None,
        file: Some("fuzz".into()),
        indicator_type: None,
        now: Timestamp(time::OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap()),
    }
}

/// Every incident read has its source set and survives the API's JSON: it
/// serializes, and reads back as the same filing.
pub fn check(report: &ImportReport) {
    for imported in &report.incidents {
        assert!(imported.incident.source.is_some());
        let json = serde_json::to_vec(&imported.incident).expect("a filing serializes");
        let again: cer_proto::api::FileIncident =
            serde_json::from_slice(&json).expect("an imported filing reads back");
        assert_eq!(again, imported.incident);
    }
}
