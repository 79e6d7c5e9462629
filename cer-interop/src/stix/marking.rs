//! TLP as STIX marks it: the TLP 1.0 marking definitions STIX 2.1 fixes
//! (§7.2.1.4), and the TLP 2.0 ones the OASIS TLP 2.0 extension
//! (`extension-definition--60a3c5c5-…`) publishes, whose objects an
//! export carries.

use cer_proto::model::Tlp;
use serde_json::{json, Value};

/// The TLP 2.0 extension every TLP 2.0 marking definition declares.
pub const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// The TLP 2.0 marking definitions' own creation time, part of the
/// published objects like their ids.
const TLP2_CREATED: &str = "2022-10-01T00:00:00.000Z";

/// TLP 2.0: label, marking definition id, name.
const TLP2: [(Tlp, &str, &str); 5] = [
    (
        Tlp::Clear,
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        "TLP:CLEAR",
    ),
    (
        Tlp::Green,
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        "TLP:GREEN",
    ),
    (
        Tlp::Amber,
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        "TLP:AMBER",
    ),
    (
        Tlp::AmberStrict,
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "TLP:AMBER+STRICT",
    ),
    (
        Tlp::Red,
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        "TLP:RED",
    ),
];

/// TLP 1.0, as STIX 2.1 predefines it (white is TLP 2.0's clear).
const TLP1: [(Tlp, &str); 4] = [
    (
        Tlp::Clear,
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    ),
    (
        Tlp::Green,
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    ),
    (
        Tlp::Amber,
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    ),
    (
        Tlp::Red,
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    ),
];

/// The TLP 2.0 marking definition id for `tlp`.
pub fn id(tlp: Tlp) -> &'static str {
    TLP2.iter()
        .find(|(t, _, _)| *t == tlp)
        .map_or(TLP2[4].1, |(_, id, _)| id)
}

/// The TLP a fixed marking definition id (TLP 1.0 or 2.0) stands for.
pub fn known(id: &str) -> Option<Tlp> {
    TLP2.iter()
        .map(|(tlp, known, _)| (*tlp, *known))
        .chain(TLP1)
        .find(|(_, known)| *known == id)
        .map(|(tlp, _)| tlp)
}

/// The TLP a marking-definition object in a bundle defines, whatever its
/// id: a TLP 1.0 definition (`definition_type: tlp`) or the TLP 2.0
/// extension's `tlp_2_0`. None for any other marking (statements, custom).
pub fn defined(object: &serde_json::Map<String, Value>) -> Option<Tlp> {
    if let Some(tlp) = object.get("id").and_then(Value::as_str).and_then(known) {
        return Some(tlp);
    }
    let tlp1 = (object.get("definition_type").and_then(Value::as_str) == Some("tlp"))
        .then(|| object.get("definition")?.get("tlp")?.as_str())
        .flatten();
    let tlp2 = object
        .get("extensions")
        .and_then(|e| e.get(TLP2_EXTENSION))
        .and_then(|e| e.get("tlp_2_0"))
        .and_then(Value::as_str);
    tlp1.or(tlp2)?.parse().ok()
}

/// The TLP 2.0 marking-definition object for `tlp`, as published.
pub fn object(tlp: Tlp) -> Value {
    let (_, id, name) = TLP2
        .iter()
        .find(|(t, _, _)| *t == tlp)
        .copied()
        .unwrap_or(TLP2[4]);
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": id,
        "created": TLP2_CREATED,
        "name": name,
        "extensions": {
            TLP2_EXTENSION: {
                "extension_type": "property-extension",
                "tlp_2_0": tlp.as_str(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_a_tlp2_marking_that_reads_back() {
        for tlp in Tlp::ALL {
            assert_eq!(known(id(tlp)), Some(tlp));
            let object = object(tlp);
            assert_eq!(object["id"], id(tlp));
            assert_eq!(defined(object.as_object().unwrap()), Some(tlp));
        }
    }

    #[test]
    fn tlp1_ids_map_to_their_tlp2_labels() {
        assert_eq!(
            known("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
            Some(Tlp::Clear)
        );
        assert_eq!(
            known("marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
            Some(Tlp::Red)
        );
        assert_eq!(
            known("marking-definition--00000000-0000-4000-8000-000000000000"),
            None
        );
    }

    #[test]
    fn custom_tlp_definitions_are_read_and_statements_are_not() {
        let tlp1 = json!({"type": "marking-definition", "id": "marking-definition--1",
            "definition_type": "tlp", "definition": {"tlp": "white"}});
        assert_eq!(defined(tlp1.as_object().unwrap()), Some(Tlp::Clear));
        let statement = json!({"type": "marking-definition", "id": "marking-definition--2",
            "definition_type": "statement", "definition": {"statement": "Copyright"}});
        assert_eq!(defined(statement.as_object().unwrap()), None);
    }
}
