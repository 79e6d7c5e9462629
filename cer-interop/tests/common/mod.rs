//! What the STIX tests share: fixtures, options, and incident states made
//! the way a node makes them (cer-proto's fold of envelopes).

#![allow(dead_code)]

use std::path::PathBuf;

use cer_interop::{ExportIncident, ExportOptions, ImportOptions, ImportReport, Imported};
use cer_proto::api::FileIncident;
use cer_proto::envelope::{Body, Header, SightingBody};
use cer_proto::incident::{FoldInput, IncidentState};
use cer_proto::model::{Indicator, IndicatorType, Timestamp, Tlp};
use cer_proto::{EnvelopeId, Fingerprint};
use uuid::Uuid;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stix")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub fn fpr(c: char) -> Fingerprint {
    Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
}

pub fn import_options() -> ImportOptions {
    ImportOptions {
        tlp: None,
        severity: None,
        classification: None,
        file: Some("bundle.json".into()),
        indicator_type: None,
        now: ts("2026-12-01T00:00:00Z"),
    }
}

pub fn export_options() -> ExportOptions {
    ExportOptions {
        now: ts("2026-12-01T00:00:00Z"),
        active_only: false,
        producer: ("CERT-Producer".into(), fpr('F')),
        names: vec![(fpr('A'), "CERT-A".into()), (fpr('B'), "CERT-B".into())],
    }
}

pub fn import(name: &str) -> ImportReport {
    cer_interop::stix::import(&fixture(name), &import_options())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One envelope about incident `subject`, as the fold reads it.
pub fn envelope(
    n: u64,
    author: &Fingerprint,
    seq: u64,
    subject: Uuid,
    at: Timestamp,
    tlp: Tlp,
    body: Body,
) -> FoldInput {
    FoldInput {
        id: EnvelopeId::of(&n.to_be_bytes()),
        header: Header {
            author: author.clone(),
            seq,
            subject,
            kind: body.kind(),
            created: at,
            tlp,
            recipients: vec![],
        },
        body: Some(body),
    }
}

/// The state a node holds after `author` filed `incident` at `at`, and
/// CERT B sent each of `sightings`.
pub fn filed(
    incident: &FileIncident,
    subject: Uuid,
    author: &Fingerprint,
    at: Timestamp,
    sightings: &[SightingBody],
) -> IncidentState {
    let body = incident.to_body().expect("a valid incident");
    let mut inputs = vec![envelope(
        0,
        author,
        1,
        subject,
        at,
        incident.tlp,
        Body::Incident(body),
    )];
    for (i, sighting) in sightings.iter().enumerate() {
        let n = i as u64 + 1;
        inputs.push(envelope(
            n,
            &fpr('B'),
            n,
            subject,
            sighting.seen.max(at),
            incident.tlp,
            Body::Sighting(sighting.clone()),
        ));
    }
    IncidentState::fold(subject, &inputs).expect("one envelope at least")
}

/// The states a node would hold after filing every imported incident and
/// sending its sightings.
pub fn states_of(report: &ImportReport) -> Vec<IncidentState> {
    report
        .incidents
        .iter()
        .map(|imported| {
            // A v4 id of its own per source, as filing would give it.
            let source = imported.incident.source.as_ref().unwrap();
            let derived = Uuid::new_v5(&Uuid::NAMESPACE_URL, source.id.as_bytes());
            let subject = uuid::Builder::from_random_bytes(*derived.as_bytes()).into_uuid();
            let sightings: Vec<SightingBody> = imported
                .sightings
                .iter()
                .map(|s| SightingBody {
                    indicator: Indicator::new(s.kind, &s.value).unwrap(),
                    seen: s.seen,
                    count: s.count,
                    comment: s.comment.clone(),
                    false_positive: false,
                })
                .collect();
            filed(
                &imported.incident,
                subject,
                &fpr('A'),
                ts("2026-11-28T13:00:00Z"),
                &sightings,
            )
        })
        .collect()
}

pub fn export_states(states: &[IncidentState], options: &ExportOptions) -> Vec<u8> {
    let incidents: Vec<ExportIncident<'_>> = states
        .iter()
        .map(|state| ExportIncident {
            state,
            reporter_name: Some("CERT-A"),
        })
        .collect();
    cer_interop::stix::export(&incidents, options)
}

/// Every indicator in the report as (type, value, incident TLP), sorted.
pub fn values(report: &ImportReport) -> Vec<(IndicatorType, String, Tlp)> {
    let mut out: Vec<_> = report
        .incidents
        .iter()
        .flat_map(|imported: &Imported| {
            imported
                .incident
                .indicators
                .iter()
                .map(|i| (i.kind, i.value.clone(), imported.incident.tlp))
        })
        .collect();
    out.sort();
    out
}

/// Runs the OASIS validator and the stix2 library on a bundle. Returns
/// false (having said why on stderr) when CER_PYTHON is not set.
pub fn validate_with_oasis(bundle: &[u8]) -> bool {
    let Some(python) = std::env::var_os("CER_PYTHON") else {
        eprintln!("skipped: CER_PYTHON not set (bash .ci/python-tools makes it)");
        return false;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, bundle).unwrap();
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(VALIDATE)
        .arg(&path)
        .output()
        .expect("CER_PYTHON runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the validator script failed:\n{stdout}\n{stderr}"
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("validator output {stdout:?}: {e}"));
    let problems = result["problems"].as_array().unwrap();
    assert!(
        result["valid"] == true && problems.is_empty(),
        "stix2-validator: {}",
        serde_json::to_string_pretty(&result).unwrap()
    );
    assert!(result["parsed"].as_u64().unwrap() > 0);
    true
}

/// The OASIS validator at its default settings (every error and every
/// warning), then stix2's parser without custom content.
const VALIDATE: &str = r#"
import json, sys
import stix2
from stix2validator import validate_file, ValidationOptions
path = sys.argv[1]
result = validate_file(path, ValidationOptions())
problems = []
for obj in result.object_results:
    problems += ["error: " + str(e) for e in obj.errors]
    problems += ["warning: " + str(w) for w in obj.warnings]
if result.fatal:
    problems.append("fatal: " + str(result.fatal))
with open(path) as f:
    bundle = stix2.parse(f.read(), allow_custom=False)
print(json.dumps({"valid": result.is_valid, "problems": problems, "parsed": len(bundle.objects)}))
"#;
