//! PyMISP as the judge: every event we write loads with `MISPEvent` and
//! validates against PyMISP's strict schema (`schema.json`), and PyMISP's
//! own feed generator, run over our event files, writes the manifest and
//! hashes we wrote. Needs `CER_PYTHON` (a python with pymisp and
//! jsonschema: `bash .ci/python-tools` prints one); without it the test
//! says so and passes nothing off as checked.

use std::path::Path;
use std::process::Command;

use cer_interop::misp;
use serde_json::Value;
use uuid::Uuid;

use crate::common::{
    at, cert_b, export_incident, export_options, fixture, options, sample_state, state_from,
};

const JUDGE: &str = r#"
import json, pathlib, shutil, sys, tempfile
import jsonschema, pymisp
from pymisp import MISPEvent
from pymisp.tools import feed_meta_generator

out = pathlib.Path(sys.argv[1])
schema = json.loads((pathlib.Path(pymisp.__file__).parent / "data" / "schema.json").read_text())
validator = jsonschema.Draft4Validator(schema)
checked = 0

def judge(doc, where, attributes):
    global checked
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        sys.exit(f"{where}: schema.json: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors))
    event = MISPEvent(strict_validation=True)
    event.load(json.dumps(doc))
    if len(event.attributes) != attributes:
        sys.exit(f"{where}: PyMISP loaded {len(event.attributes)} attributes, the file has {attributes}")
    if event.uuid != doc["Event"]["uuid"] or event.info != doc["Event"]["info"]:
        sys.exit(f"{where}: PyMISP read another uuid or info")
    for attribute in event.attributes:
        if attribute.type not in event.describe_types["types"]:
            sys.exit(f"{where}: unknown MISP type {attribute.type}")
        if attribute.category not in event.describe_types["category_type_mappings"] or \
           attribute.type not in event.describe_types["category_type_mappings"][attribute.category]:
            sys.exit(f"{where}: {attribute.type} is not allowed in category {attribute.category}")
    checked += 1

# The REST-style export: every entry of "response" is an event.
combined = json.loads((out / "export.json").read_text())
for n, doc in enumerate(combined["response"]):
    judge(doc, f"export.json response[{n}]", len(doc["Event"].get("Attribute", [])))

# The feed: each event file loads from disk, and PyMISP's generator,
# run over a copy of the event files, writes what we wrote.
feed = out / "feed"
events = [p for p in feed.glob("*.json") if p.name != "manifest.json"]
for path in events:
    event = MISPEvent()
    event.load_file(str(path))
    doc = json.loads(path.read_text())
    judge(doc, path.name, len(doc["Event"].get("Attribute", [])))
with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    for path in events:
        shutil.copy(path, scratch / path.name)
    feed_meta_generator(scratch)
    theirs = json.loads((scratch / "manifest.json").read_text())
    ours = json.loads((feed / "manifest.json").read_text())
    if set(theirs) != set(ours):
        sys.exit(f"manifest uuids differ: {sorted(theirs)} vs {sorted(ours)}")
    for uuid, entry in theirs.items():
        mine = ours[uuid]
        for key in ("info", "date", "analysis", "threat_level_id", "timestamp"):
            if str(entry[key]) != str(mine[key]):
                sys.exit(f"manifest {uuid} {key}: PyMISP {entry[key]!r}, ours {mine[key]!r}")
        if entry["Orgc"]["uuid"] != mine["Orgc"]["uuid"] or entry["Orgc"]["name"] != mine["Orgc"]["name"]:
            sys.exit(f"manifest {uuid} Orgc differs")
        if [t["name"] for t in entry["Tag"]] != [t["name"] for t in mine["Tag"]]:
            sys.exit(f"manifest {uuid} tags differ")
    theirs = sorted((scratch / "hashes.csv").read_text().splitlines())
    ours = sorted((feed / "hashes.csv").read_text().splitlines())
    if theirs != ours:
        sys.exit(f"hashes.csv differs: PyMISP {theirs[:3]}..., ours {ours[:3]}...")
print(f"pymisp {pymisp.__version__}: {checked} events load and validate against schema.json; feed manifest and hashes match")
"#;

#[test]
fn pymisp_loads_and_validates_what_we_write() {
    let Some(python) = std::env::var_os("CER_PYTHON") else {
        eprintln!("skipped: CER_PYTHON not set (bash .ci/python-tools makes it)");
        return;
    };
    // A rich incident, and every incident the full fixture imports as.
    let mut states = vec![sample_state()];
    let imported = misp::import(
        &fixture("misp/event-full.json"),
        &options("event-full.json"),
    )
    .unwrap();
    for (n, part) in imported.incidents.iter().enumerate() {
        let id = Uuid::from_u128(0xabc0 + n as u128);
        states.push(state_from(
            &part.incident,
            id,
            cert_b(),
            at("2026-11-25T00:00:00Z"),
        ));
    }
    let incidents: Vec<_> = states.iter().map(export_incident).collect();
    let options = export_options();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    std::fs::write(out.join("export.json"), misp::export(&incidents, &options)).unwrap();
    let feed = out.join("feed");
    std::fs::create_dir(&feed).unwrap();
    for (name, bytes) in misp::export_feed(&incidents, &options) {
        assert!(is_plain_name(&name), "{name}");
        std::fs::write(feed.join(&name), bytes).unwrap();
    }
    let exported: Value =
        serde_json::from_slice(&std::fs::read(out.join("export.json")).unwrap()).unwrap();
    assert_eq!(exported["response"].as_array().unwrap().len(), states.len());

    let script = out.join("judge.py");
    std::fs::write(&script, JUDGE).unwrap();
    let run = Command::new(&python)
        .arg(&script)
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&python).display()));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "PyMISP refused our output:\n{stdout}\n{stderr}"
    );
    eprintln!("{}", stdout.trim());
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.')
}
