//! Local API request bodies and query strings, read the way the API reads
//! them (serde into cer-proto's types, whose fields validate as they
//! deserialize): never panics, and whatever is accepted survives a round
//! trip through JSON unchanged, so what the node stores is what it read.
#![no_main]

use cer_proto::api;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn body<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(bytes) else {
        return;
    };
    let json = serde_json::to_vec(&value).expect("an accepted body serializes");
    let again: T = serde_json::from_slice(&json).expect("an accepted body reads back");
    assert_eq!(again, value);
}

fn query<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(value) = serde_urlencoded::from_bytes::<T>(bytes) else {
        return;
    };
    // A query reads back as itself when re-encoded (lists excepted: the
    // API's query types are flat).
    if let Ok(text) = serde_urlencoded::to_string(&value) {
        if let Ok(again) = serde_urlencoded::from_str::<T>(&text) {
            assert_eq!(again, value);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 14 {
        0 => body::<api::FileIncident>(rest),
        1 => body::<api::UpdateIncident>(rest),
        2 => body::<api::RetractIncident>(rest),
        3 => body::<api::AcknowledgeIncident>(rest),
        4 => body::<api::SightIndicator>(rest),
        5 => body::<api::AddCert>(rest),
        6 => body::<api::CheckPlaybook>(rest),
        7 => body::<api::TestPlaybook>(rest),
        8 => body::<api::ResumePlaybook>(rest),
        9 => body::<api::ForgetPlaybook>(rest),
        10 => body::<api::AddTaxiiClient>(rest),
        11 => query::<api::IncidentQuery>(rest),
        12 => query::<api::IocQuery>(rest),
        _ => query::<api::RunQuery>(rest),
    }
});
