//! Range, wildcard and text search on a real node, through `cerctl --json`.

use crate::harness::TestNode;

fn file(node: &TestNode, title: &str, description: &str, iocs: &[&str]) -> String {
    let mut args = vec![
        "--title",
        title,
        "--description",
        description,
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
    ];
    for ioc in iocs {
        args.extend(["--ioc", ioc]);
    }
    node.file(&args)
}

/// (type, value, incident, matched) of every match, in the order given.
fn matches(found: &serde_json::Value) -> Vec<(String, String, String, String)> {
    found["matches"]
        .as_array()
        .unwrap_or_else(|| panic!("no matches in {found}"))
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (
                text("type"),
                text("value"),
                text("incident"),
                text("matched"),
            )
        })
        .collect()
}

/// A refused request's JSON error body (`--json` prints it to stdout).
fn refused(node: &TestNode, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = node.cerctl(&all);
    assert_eq!(out.code, 1, "{out:#?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:#?}"))
}

fn row(kind: &str, value: &str, incident: &str, matched: &str) -> (String, String, String, String) {
    (kind.into(), value.into(), incident.into(), matched.into())
}

#[test]
fn ranges_addresses_in_cidrs_and_wildcards() {
    let node = TestNode::start("KE-CIRT");
    let scan = file(
        &node,
        "Scanning from a hosting range",
        "",
        &[
            "ipv4:192.0.2.1",
            "ipv4:192.0.2.255",
            "ipv4:192.0.3.0",
            "cidr:198.51.100.0/24",
            "ipv6:2001:db8::7",
        ],
    );
    let c2 = file(
        &node,
        "C2 servers",
        "",
        &[
            "ipv4:192.0.2.200",
            "cidr:2001:db8::/48",
            "domain:www.evil.example",
            "domain:evil.example",
            "domain:badevil.example",
            "url:https://cdn.evil.example/stage2",
        ],
    );

    // A /24: both incidents' addresses in it, its last one included, in
    // address order; the neighbour outside it is not.
    let found = node.json(&["ioc", "search", "192.0.2.0/24"]);
    assert_eq!(found["searched"][0]["how"], "range", "{found}");
    assert_eq!(
        matches(&found),
        [
            row("ipv4", "192.0.2.1", &scan, "inside"),
            row("ipv4", "192.0.2.200", &c2, "inside"),
            row("ipv4", "192.0.2.255", &scan, "inside"),
        ]
    );
    assert!(found.get("truncated").is_none(), "{found}");

    // An address inside a filed CIDR finds the CIDR; IPv6 too.
    let found = node.json(&["ioc", "search", "198.51.100.77"]);
    assert_eq!(found["searched"][0]["how"], "address", "{found}");
    assert_eq!(
        matches(&found),
        [row("cidr", "198.51.100.0/24", &scan, "contains")]
    );
    let found = node.json(&["ioc", "search", "2001:db8::7"]);
    assert_eq!(
        matches(&found),
        [
            row("ipv6", "2001:db8::7", &scan, "exact"),
            row("cidr", "2001:db8::/48", &c2, "contains"),
        ]
    );
    // A smaller range inside a filed CIDR finds it as containing; the
    // same CIDR matches exactly.
    let found = node.json(&["ioc", "search", "198.51.100.128/25"]);
    assert_eq!(
        matches(&found),
        [row("cidr", "198.51.100.0/24", &scan, "contains")]
    );
    let found = node.json(&["ioc", "search", "198.51.100.0/24"]);
    assert_eq!(
        matches(&found),
        [row("cidr", "198.51.100.0/24", &scan, "exact")]
    );

    // A wildcard: domains below the domain, not the domain itself nor a
    // name that merely ends in the same letters.
    let found = node.json(&["ioc", "search", "*.Evil.Example"]);
    assert_eq!(found["searched"][0]["how"], "subdomains", "{found}");
    assert_eq!(found["searched"][0]["value"], "evil.example", "{found}");
    assert_eq!(
        matches(&found),
        [row("domain", "www.evil.example", &c2, "subdomain")]
    );

    // A limit cuts the answer short and says so, in JSON and in text.
    let found = node.json(&["ioc", "search", "192.0.0.0/8", "--limit", "2"]);
    assert_eq!(matches(&found).len(), 2);
    assert_eq!(found["truncated"], true, "{found}");
    let shown = node.cerctl(&["ioc", "search", "192.0.0.0/8", "--limit", "2"]);
    assert!(shown.ok().contains("more match"), "{}", shown.stdout);
    assert!(shown.stdout.contains("MATCH"), "{}", shown.stdout);

    // Nothing in range is exit 1, like an exact search; a bad range is
    // refused naming the field and what is wrong.
    assert_eq!(node.cerctl(&["ioc", "search", "203.0.113.0/24"]).code, 1);
    let bad = refused(&node, &["ioc", "search", "192.0.2.1/24"]);
    assert_eq!(bad["error"]["fields"][0]["field"], "value", "{bad}");
    let reason = bad["error"]["fields"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("did you mean 192.0.2.0/24"), "{bad}");
    let bad = refused(&node, &["ioc", "search", "*.*.example"]);
    assert_eq!(bad["error"]["fields"][0]["field"], "value", "{bad}");

    // Retracting an incident takes its indicators out of every range.
    node.cerctl(&["incident", "retract", &c2]).ok();
    let found = node.json(&["ioc", "search", "192.0.2.0/24"]);
    assert_eq!(matches(&found).len(), 2, "{found}");
    assert_eq!(node.cerctl(&["ioc", "search", "*.evil.example"]).code, 1);
}

#[test]
fn text_search_needs_every_word_in_title_or_description() {
    let node = TestNode::start("NG-CERT");
    let wave = file(
        &node,
        "Phishing wave against BANKS",
        "Lures impersonate the tax office; kit hosted on bulletproof servers.",
        &[],
    );
    let ransom = file(
        &node,
        "Ransomware at a hospital",
        "Initial access through a phishing mail.",
        &[],
    );
    let gone = file(&node, "Phishing test, filed by mistake", "", &[]);
    node.cerctl(&["incident", "retract", &gone]).ok();

    let ids = |text: &str| -> Vec<String> {
        let list = node.json(&["incident", "list", "--text", text, "--all"]);
        list["incidents"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Case-insensitive, in the title or the description, newest first;
    // a retracted incident has no text left to match.
    assert_eq!(ids("PHISHING"), [ransom.as_str(), wave.as_str()]);
    // Every word must match, each in either field.
    assert_eq!(ids("phishing banks"), [wave.as_str()]);
    assert_eq!(ids("ransomware mail"), [ransom.as_str()]);
    assert_eq!(ids("bulletpr tax"), [wave.as_str()]);
    assert!(ids("phishing hospital banks").is_empty());
    // With the other filters.
    let list = node.json(&["incident", "list", "--text", "phishing", "--limit", "1"]);
    assert_eq!(list["truncated"], true, "{list}");
    let bad = refused(&node, &["incident", "list", "--text", "   "]);
    assert_eq!(bad["error"]["fields"][0]["field"], "text", "{bad}");
}
