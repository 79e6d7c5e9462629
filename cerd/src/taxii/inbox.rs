//! The `inbox` collection: clients allowed to write post STIX 2.1 objects,
//! which this node imports with `cer_interop::stix` and files as its own
//! incidents, the client recorded as their source (`taxii`, client name).
//! A repeat of the same report from the same client updates the incident
//! filed before with what is new, as `cerctl import` does. Every post is
//! answered with a TAXII status resource listing each object's success or
//! failure; statuses are kept in memory for their client to read again.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use cer_interop::{ImportOptions, ImportReport, Imported};
use cer_proto::api::{SightIndicator, TaxiiClient, UpdateIncident};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::AUDIT;
use crate::node::{Node, NodeError};

/// Statuses kept for clients to read; the oldest goes first.
const KEPT: usize = 1_000;

/// Request ids of inbox filings: `taxii:{client}:{source id}` in it.
const NAMESPACE: Uuid = Uuid::from_u128(0x6a0f_1d0e_5b2c_4c8e_9d51_3f7e_2b6a_c410);

/// Statuses of posts, by id.
#[derive(Default)]
pub struct Statuses {
    kept: Mutex<Kept>,
}

/// Each status with the client that posted, and their order.
#[derive(Default)]
struct Kept {
    by_id: HashMap<Uuid, (String, Value)>,
    order: VecDeque<Uuid>,
}

impl Statuses {
    fn keep(&self, client: &str, status: Value, id: Uuid) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.order.len() == KEPT {
            if let Some(oldest) = kept.order.pop_front() {
                kept.by_id.remove(&oldest);
            }
        }
        kept.by_id.insert(id, (client.to_owned(), status));
        kept.order.push_back(id);
    }

    /// A status, to the client that posted it only.
    pub fn get(&self, client: &str, id: &str) -> Option<Value> {
        let id: Uuid = id.parse().ok()?;
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.by_id
            .get(&id)
            .filter(|(owner, _)| owner == client)
            .map(|(_, status)| status.clone())
    }
}

/// Why a post was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("objects: {0}")]
    Body(String),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// Imports and files a posted TAXII envelope (`{"objects": [...]}`) for
/// `client`, and returns its status resource.
pub async fn post(
    node: &Arc<Node>,
    statuses: &Statuses,
    client: &TaxiiClient,
    body: &[u8],
) -> Result<Value, PostError> {
    let requested = crate::audit::now();
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| PostError::Body(format!("not a TAXII envelope: {e}")))?;
    let objects = envelope
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| PostError::Body("a TAXII envelope has an objects list".into()))?;
    let posted: Vec<(String, String)> = objects
        .iter()
        .map(|o| {
            let text = |key: &str| o.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
            let version = o
                .get("modified")
                .or_else(|| o.get("created"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            (text("id"), version)
        })
        .collect();
    // The importer reads bundles: the envelope's objects are one, named
    // by the objects it holds, so that posting the same loose indicators
    // again updates what the first post filed.
    let mut names: Vec<&str> = posted.iter().map(|(id, _)| id.as_str()).collect();
    names.sort_unstable();
    let bundle_id = Uuid::new_v5(&NAMESPACE, names.join("\n").as_bytes());
    let bundle = json!({
        "type": "bundle",
        "id": format!("bundle--{bundle_id}"),
        "objects": objects,
    });
    let bytes = serde_json::to_vec(&bundle).map_err(|e| PostError::Body(e.to_string()))?;
    let options = ImportOptions {
        tlp: None,
        severity: None,
        classification: None,
        file: Some(client.name.clone()),
        indicator_type: None,
        now: requested,
    };
    let report = cer_interop::stix::import(&bytes, &options)
        .map_err(|e| PostError::Body(e.reason.clone()))?;
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for problem in report.skipped.iter().chain(&report.invalid) {
        if let Some((id, _)) = posted
            .iter()
            .find(|(id, _)| !id.is_empty() && problem.location.contains(id.as_str()))
        {
            failed
                .entry(id.clone())
                .or_insert_with(|| problem.reason.clone());
        }
    }
    let ImportReport { incidents, .. } = report;
    let mut filed = 0;
    for imported in incidents {
        let source = imported
            .incident
            .source
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        if let Err(e) = file_one(node, client, imported).await {
            let reason = e.to_string();
            let named = source.split('#').next().unwrap_or("");
            if posted.iter().any(|(id, _)| id == named) {
                failed.entry(named.to_owned()).or_insert(reason);
            } else {
                // Loose indicators, filed together under the bundle: each
                // of them failed with it.
                for (id, _) in &posted {
                    if id.starts_with("indicator--") || id.starts_with("observed-data--") {
                        failed.entry(id.clone()).or_insert_with(|| reason.clone());
                    }
                }
            }
        } else {
            filed += 1;
        }
    }
    let entry = |(id, version): &(String, String), message: Option<&String>| {
        let mut entry = json!({ "id": id });
        if !version.is_empty() {
            entry["version"] = json!(version);
        }
        if let Some(message) = message {
            entry["message"] = json!(message);
        }
        entry
    };
    let mut seen = BTreeSet::new();
    let (mut successes, mut failures) = (Vec::new(), Vec::new());
    for object in posted.iter().filter(|(id, _)| seen.insert(id.clone())) {
        match failed.get(&object.0) {
            Some(reason) => failures.push(entry(object, Some(reason))),
            None => successes.push(entry(object, None)),
        }
    }
    let id = Uuid::new_v4();
    let status = json!({
        "id": id,
        "status": "complete",
        "request_timestamp": requested.to_string(),
        "total_count": successes.len() + failures.len(),
        "success_count": successes.len(),
        "successes": successes,
        "failure_count": failures.len(),
        "failures": failures,
        "pending_count": 0,
        "pendings": [],
    });
    tracing::info!(
        target: AUDIT,
        event = "taxii_inbox",
        client = %client.name,
        status = %id,
        objects = posted.len(),
        failures = status["failure_count"].as_u64().unwrap_or(0),
        incidents = filed,
        "TAXII objects posted"
    );
    statuses.keep(&client.name, status.clone(), id);
    Ok(status)
}

/// Files one imported incident, or updates the one this client's earlier
/// post of the same report filed with what is new.
async fn file_one(
    node: &Arc<Node>,
    client: &TaxiiClient,
    imported: Imported,
) -> Result<(), NodeError> {
    let Imported {
        mut incident,
        sightings,
    } = imported;
    let source = incident.source.as_mut().map(|s| {
        s.format = "taxii".into();
        s.file = Some(client.name.clone());
        s.id.clone()
    });
    incident.request_id =
        source.map(|id| Uuid::new_v5(&NAMESPACE, format!("taxii:{}:{id}", client.name).as_bytes()));
    // A constituent's AMBER stays with this CERT: encrypted to this node
    // alone, not to every peer; analysts decide what goes further.
    if incident.tlp == cer_proto::model::Tlp::Amber && incident.to.is_empty() {
        incident.to = vec![node.fingerprint().to_string()];
    }
    let wanted = incident.indicators.clone();
    let filed = node.file(incident).await?;
    if !filed.repeated {
        for sighting in sightings {
            let request = SightIndicator {
                kind: sighting.kind,
                value: sighting.value,
                seen: Some(sighting.seen),
                count: sighting.count.max(1),
                comment: sighting.comment,
                false_positive: false,
            };
            node.sight(filed.incident, request).await?;
        }
        return Ok(());
    }
    let id = filed.incident;
    let reader = node.clone();
    let held = tokio::task::spawn_blocking(move || reader.detail(id))
        .await
        .map_err(|e| NodeError::Sign(e.to_string()))??
        .incident;
    if held.retracted.is_some() {
        return Ok(());
    }
    let new = cer_interop::new_since(wanted, &held);
    if new.is_empty() {
        return Ok(());
    }
    let update = UpdateIncident {
        note: Some(format!("posted again by TAXII client {}", client.name)),
        indicators: new,
        ..Default::default()
    };
    node.update(id, update).await?;
    Ok(())
}
