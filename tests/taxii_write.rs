//! The TAXII inbox on a real node: who may post, what media type, and what
//! becomes of posted objects (incidents this node files, the client as
//! their source, a status per object that only that client reads).

use serde_json::json;

use crate::harness::eventually;
use crate::taxii::{add_client, basic, get, request, taxii, taxii_node, SOON, TAXII};

#[test]
fn a_writer_posts_objects_that_become_incidents_with_a_status_per_object() {
    let (node, port) = taxii_node();
    let reader = basic("siem", &add_client(&node, "siem", "green"));
    let added = node.json(&[
        "taxii",
        "clients",
        "add",
        "tip",
        "--max-tlp",
        "green",
        "--write",
    ]);
    let writer = basic("tip", added["token"].as_str().unwrap());

    // Only a writer sees the inbox, and nobody reads it.
    let listed = |auth: &str| -> Vec<String> {
        get(&node, port, "/api/collections/", &taxii(auth)).json()["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["alias"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(&reader), ["clear", "green"]);
    assert_eq!(listed(&writer), ["clear", "green", "inbox"]);
    assert_eq!(
        get(
            &node,
            port,
            "/api/collections/inbox/objects/",
            &taxii(&writer)
        )
        .status,
        403
    );

    let green = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
    let envelope = json!({
        "objects": [
            {
                "type": "indicator", "spec_version": "2.1",
                "id": "indicator--7a1b5a8e-0a4c-4b55-9c57-0f9a3f0d2f10",
                "created": "2026-11-30T10:00:00.000Z", "modified": "2026-11-30T10:00:00.000Z",
                "name": "C2 seen by a bank", "pattern": "[ipv4-addr:value = '203.0.113.77']",
                "pattern_type": "stix", "valid_from": "2026-11-30T10:00:00Z",
                "object_marking_refs": [green]
            },
            {
                "type": "indicator", "spec_version": "2.1",
                "id": "indicator--7a1b5a8e-0a4c-4b55-9c57-0f9a3f0d2f11",
                "created": "2026-11-30T10:00:00.000Z", "modified": "2026-11-30T10:00:00.000Z",
                "pattern": "[ipv4-addr:value = 'not-an-address']",
                "pattern_type": "stix", "valid_from": "2026-11-30T10:00:00Z",
                "object_marking_refs": [green]
            }
        ]
    });
    let body = serde_json::to_vec(&envelope).unwrap();
    let post = |auth: &str, content_type: &str| {
        request(
            &node,
            port,
            "POST",
            "/api/collections/inbox/objects/",
            &[
                ("accept", TAXII),
                ("content-type", content_type),
                ("authorization", auth),
            ],
            body.clone(),
        )
    };

    // A wrong Content-Type is 415; a reader, or a readable collection,
    // 403; and none of them files anything.
    let wrong_type = post(&writer, "application/json");
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text());
    assert!(wrong_type.json()["title"].is_string());
    assert_eq!(post(&reader, TAXII).status, 403);
    let to_green = request(
        &node,
        port,
        "POST",
        "/api/collections/green/objects/",
        &[
            ("accept", TAXII),
            ("content-type", TAXII),
            ("authorization", &writer),
        ],
        body.clone(),
    );
    assert_eq!(to_green.status, 403);
    assert_eq!(
        node.json(&["incident", "list"])["incidents"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The writer's post: one object taken, one refused with its reason.
    let posted = post(&writer, TAXII);
    assert_eq!(posted.status, 202, "{}", posted.text());
    let status = posted.json();
    assert_eq!(status["status"], "complete");
    assert_eq!(status["total_count"], 2);
    assert_eq!(status["success_count"], 1, "{status}");
    assert_eq!(
        status["successes"][0]["id"],
        "indicator--7a1b5a8e-0a4c-4b55-9c57-0f9a3f0d2f10"
    );
    assert_eq!(status["failure_count"], 1);
    assert_eq!(
        status["failures"][0]["id"],
        "indicator--7a1b5a8e-0a4c-4b55-9c57-0f9a3f0d2f11"
    );
    assert!(status["failures"][0]["message"].as_str().unwrap().len() > 3);

    // Filed here, with the client as its source, and served to readers.
    let hits = node.json(&["ioc", "search", "203.0.113.77"]);
    let incident = hits["matches"][0]["incident"].as_str().unwrap().to_owned();
    let detail = node.json(&["incident", "show", &incident]);
    assert_eq!(detail["incident"]["content"]["source"]["format"], "taxii");
    assert_eq!(detail["incident"]["content"]["source"]["file"], "tip");
    let page = get(
        &node,
        port,
        "/api/collections/green/objects/?match[type]=indicator",
        &taxii(&reader),
    );
    assert!(page.text().contains("203.0.113.77"), "{}", page.text());

    // The status again, to its client only.
    let path = format!("/api/status/{}/", status["id"].as_str().unwrap());
    let again = get(&node, port, &path, &taxii(&writer));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["success_count"], 1);
    assert_eq!(get(&node, port, &path, &taxii(&reader)).status, 404);

    // Unmarked objects are TLP:AMBER, readable by this CERT alone even
    // when it trusts others.
    let ng = crate::harness::TestNode::new("NG-CERT");
    ng.init();
    node.cerctl(&["certs", "add", ng.cert_path().to_str().unwrap()])
        .ok();
    let unmarked = json!({ "objects": [{
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--7a1b5a8e-0a4c-4b55-9c57-0f9a3f0d2f12",
        "created": "2026-11-30T10:00:00.000Z", "modified": "2026-11-30T10:00:00.000Z",
        "pattern": "[domain-name:value = 'amber-by-default.example']",
        "pattern_type": "stix", "valid_from": "2026-11-30T10:00:00Z"
    }]});
    let answer = request(
        &node,
        port,
        "POST",
        "/api/collections/inbox/objects/",
        &[
            ("accept", TAXII),
            ("content-type", TAXII),
            ("authorization", &writer),
        ],
        serde_json::to_vec(&unmarked).unwrap(),
    );
    assert_eq!(answer.json()["success_count"], 1, "{}", answer.text());
    let hits = node.json(&["ioc", "search", "amber-by-default.example"]);
    let amber = hits["matches"][0]["incident"].as_str().unwrap().to_owned();
    let shown = node.json(&["incident", "show", &amber]);
    assert_eq!(shown["incident"]["tlp"], "amber", "{shown}");
    assert_eq!(
        shown["incident"]["recipients"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{shown}"
    );
    let certs = node.json(&["certs", "list"]);
    let ng_fingerprint = certs["certs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "NG-CERT")
        .map(|c| c["fingerprint"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("NG-CERT trusted: {certs}"));
    let envelope = &shown["envelopes"][0];
    assert!(
        !envelope.to_string().contains(&ng_fingerprint),
        "{envelope}"
    );

    // The same post again files nothing new.
    assert_eq!(post(&writer, TAXII).json()["success_count"], 1);
    let listed = node.json(&["incident", "list"]);
    assert_eq!(listed["incidents"].as_array().unwrap().len(), 2);
    eventually(SOON, "the inbox audit line", || {
        node.log().contains("taxii_inbox").then_some(())
    });
}
