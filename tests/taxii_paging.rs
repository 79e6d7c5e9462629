//! TAXII paging at scale and under arrivals: ten thousand objects read in
//! pages of a thousand while incidents are filed, and an incident a peer
//! sends late, with an old time, still reaching a client that polls with
//! `added_after`.

use std::collections::HashMap;

use crate::harness::{eventually, TestNode};
use crate::taxii::{add_client, basic, get, read_all, serve_taxii, taxii, SOON};

#[test]
fn ten_thousand_objects_page_without_gaps_or_repeats_while_incidents_arrive() {
    let mut node = TestNode::new("KE-CIRT");
    let port = serve_taxii(&mut node);
    let list: String = (0..5_000)
        .map(|i| format!("11.{}.{}.{}\n", i / 65_536, (i / 256) % 256, i % 256))
        .collect();
    let file = node.dir.path().join("c2.txt");
    std::fs::write(&file, list).unwrap();
    let imported = node.json(&[
        "ioc",
        "import",
        file.to_str().unwrap(),
        "--tlp",
        "green",
        "--severity",
        "high",
        "--class",
        "malicious-code/c2-server",
        "--per-incident",
        "100",
    ]);
    assert_eq!(imported["imported"], 50, "{imported}");
    let auth = basic("siem", &add_client(&node, "siem", "green"));

    let before = read_all(&node, port, &auth, "green", 1_000, &mut || {});
    assert!(before.len() >= 10_000, "{} objects", before.len());
    let mut filed = 0;
    let paged = read_all(&node, port, &auth, "green", 1_000, &mut || {
        if filed < 4 {
            node.file(&[
                "--title",
                &format!("late {filed}"),
                "--severity",
                "low",
                "--tlp",
                "green",
                "--class",
                "test/test",
                "--ioc",
                &format!("ipv4:12.0.0.{filed}"),
            ]);
            filed += 1;
        }
    });
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for object in &paged {
        *seen.entry(object["id"].as_str().unwrap()).or_default() += 1;
    }
    for object in &before {
        let id = object["id"].as_str().unwrap();
        assert_eq!(seen.get(id), Some(&1), "{id}");
    }
    let late: Vec<&serde_json::Value> = paged
        .iter()
        .filter(|o| o["pattern"].as_str().is_some_and(|p| p.contains("12.0.0.")))
        .collect();
    assert_eq!(
        late.len(),
        4,
        "every incident filed while paging comes once"
    );
    assert_eq!(paged.len(), seen.len(), "no object twice");
}

#[test]
fn an_incident_a_peer_sends_late_reaches_a_client_polling_with_added_after() {
    let mut ke = TestNode::new("KE-CIRT");
    let mut ng = TestNode::new("NG-CERT");
    ke.init();
    ng.init();
    ke.trust(&ng);
    ng.trust(&ke);
    // NG files while the two are not linked.
    ng.spawn();
    ng.file(&[
        "--title",
        "filed early at NG",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.201",
    ]);
    let port = serve_taxii(&mut ke);
    ke.file(&[
        "--title",
        "filed later at KE",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.202",
    ]);
    let auth = basic("siem", &add_client(&ke, "siem", "green"));
    let first = get(&ke, port, "/api/collections/green/objects/", &taxii(&auth));
    assert!(first.text().contains("203.0.113.202"));
    let cut = first.headers["x-taxii-date-added-last"]
        .to_str()
        .unwrap()
        .to_owned();

    // Linked now: NG's older incident arrives at KE.
    ng.stop();
    ng.add_peer(&ke.listen_addr());
    ng.spawn();
    eventually(SOON, "NG's incident at KE", || {
        let out = ke.cerctl(&["--json", "ioc", "search", "203.0.113.201"]);
        (out.code == 0).then_some(())
    });
    let polled = get(
        &ke,
        port,
        &format!("/api/collections/green/objects/?added_after={cut}"),
        &taxii(&auth),
    );
    assert_eq!(polled.status, 200, "{}", polled.text());
    assert!(polled.text().contains("203.0.113.201"), "{}", polled.text());
    assert!(
        !polled.text().contains("203.0.113.202"),
        "{}",
        polled.text()
    );
}
