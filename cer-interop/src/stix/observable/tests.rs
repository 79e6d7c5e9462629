use serde_json::json;

use super::*;
use crate::stix::pattern::parse;

fn values(pattern: &str) -> Vec<String> {
    let expr = parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    from_pattern(&expr)
        .unwrap_or_else(|r| panic!("{pattern}: {r:?}"))
        .iter()
        .map(|i| i.to_string())
        .collect()
}

fn refused(pattern: &str) -> Refusal {
    let expr = parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    match from_pattern(&expr) {
        Ok(found) => panic!("{pattern}: mapped to {found:?}"),
        Err(refusal) => refusal,
    }
}

fn skipped(pattern: &str) -> String {
    match refused(pattern) {
        Refusal::Skipped(reason) => reason,
        other => panic!("{pattern}: {other:?}"),
    }
}

fn invalid(pattern: &str) -> String {
    match refused(pattern) {
        Refusal::Invalid(reason) => reason,
        other => panic!("{pattern}: {other:?}"),
    }
}

#[test]
fn every_comparison_we_hold() {
    let sha256 = "ab".repeat(32);
    for (pattern, want) in [
        ("[ipv4-addr:value = '203.0.113.7']", "ipv4:203.0.113.7"),
        (
            "[ipv4-addr:value = '198.51.100.0/24']",
            "cidr:198.51.100.0/24",
        ),
        (
            "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
            "cidr:198.51.100.0/24",
        ),
        ("[ipv6-addr:value = '2001:DB8::1']", "ipv6:2001:db8::1"),
        ("[ipv6-addr:value = '2001:db8::/32']", "cidr:2001:db8::/32"),
        (
            "[domain-name:value = 'Evil.Example']",
            "domain:evil.example",
        ),
        (
            "[url:value = 'HTTP://Evil.Example/a']",
            "url:http://evil.example/a",
        ),
        (
            "[email-addr:value = 'a@evil.example']",
            "email:a@evil.example",
        ),
        (
            "[email-message:from_ref.value = 'a@evil.example']",
            "email:a@evil.example",
        ),
        (
            "[email-message:sender_ref.value = 'a@evil.example']",
            "email:a@evil.example",
        ),
        (
            "[file:hashes.MD5 = 'D41D8CD98F00B204E9800998ECF8427E']",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ),
        (
            "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']",
            "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
        ("[file:name = 'invoice.exe']", "filename:invoice.exe"),
        ("[autonomous-system:number = 64500]", "asn:AS64500"),
        ("[autonomous-system:number = 'AS64500']", "asn:AS64500"),
        (
            "[network-traffic:dst_ref.value = '192.0.2.1']",
            "ipv4:192.0.2.1",
        ),
        (
            "[network-traffic:src_ref.value = '2001:db8::2']",
            "ipv6:2001:db8::2",
        ),
        (
            "[network-traffic:dst_ref.value = 'c2.example']",
            "domain:c2.example",
        ),
        (
            "[network-traffic:dst_ref.value ISSUBSET '192.0.2.0/24']",
            "cidr:192.0.2.0/24",
        ),
    ] {
        assert_eq!(values(pattern), [want], "{pattern}");
    }
    assert_eq!(
        values(&format!("[file:hashes.'SHA-256' = '{sha256}']")),
        [format!("sha256:{sha256}")]
    );
    assert_eq!(
        values(&format!("[file:hashes.'sha512' = '{}']", "c".repeat(128))),
        [format!("sha512:{}", "c".repeat(128))]
    );
}

#[test]
fn or_gives_several_indicators() {
    assert_eq!(
        values("[ipv4-addr:value = '192.0.2.1'] OR [domain-name:value = 'a.example' OR domain-name:value = 'b.example']"),
        ["ipv4:192.0.2.1", "domain:a.example", "domain:b.example"]
    );
    assert_eq!(
        values("[domain-name:value IN ('a.example', 'b.example')]"),
        ["domain:a.example", "domain:b.example"]
    );
}

#[test]
fn context_becomes_the_comment() {
    let expr = parse(
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '192.0.2.1' AND network-traffic:dst_port = 443 AND network-traffic:protocols[*] = 'tcp']",
    )
    .unwrap();
    let found = from_pattern(&expr).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].to_string(), "ipv4:192.0.2.1");
    assert_eq!(
        found[0].comment.as_deref(),
        Some("network-traffic:dst_port = 443; network-traffic:protocols[*] = 'tcp'")
    );
}

#[test]
fn one_file_gives_its_name_and_hashes() {
    let sha256 = "ab".repeat(32);
    let expr = parse(&format!(
        "[file:name = 'a.exe' AND file:hashes.'SHA-256' = '{sha256}']"
    ))
    .unwrap();
    let found = from_pattern(&expr).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].comment.as_deref(),
        Some(format!("same file as sha256 {sha256}").as_str())
    );
    assert_eq!(
        found[1].comment.as_deref(),
        Some("same file as filename a.exe")
    );
}

#[test]
fn what_we_cannot_hold_is_skipped_by_name() {
    for (pattern, reason) in [
        ("[ipv4-addr:value = '192.0.2.1'] AND [domain-name:value = 'a.example']", "AND between observations"),
        ("[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [domain-name:value = 'a.example']", "FOLLOWEDBY"),
        ("[ipv4-addr:value = '192.0.2.1'] WITHIN 60 SECONDS", "qualifier WITHIN"),
        ("[ipv4-addr:value = '192.0.2.1'] REPEATS 3 TIMES", "qualifier REPEATS"),
        ("[ipv4-addr:value = '192.0.2.1'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'", "qualifier START/STOP"),
        ("([ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.2']) WITHIN 5 SECONDS", "qualifier WITHIN"),
        ("[url:value MATCHES '^http://evil']", "regular expression"),
        ("[domain-name:value LIKE '%.evil.example']", "wildcard"),
        ("[domain-name:value != 'good.example']", "negated comparison"),
        ("[domain-name:value NOT IN ('good.example')]", "negated comparison"),
        ("[network-traffic:dst_port > 1024]", "the comparison network-traffic:dst_port > 1024"),
        ("[EXISTS file:name]", "the comparison EXISTS file:name"),
        ("[ipv4-addr:value ISSUPERSET '192.0.2.1']", "the comparison"),
        ("[domain-name:value ISSUBSET 'example.com']", "ISSUBSET is held only on IP addresses"),
        ("[ipv4-addr:value = '192.0.2.1' AND domain-name:value = 'a.example']", "AND across objects (ipv4-addr and domain-name)"),
        ("[ipv4-addr:value = '192.0.2.1' AND (ipv4-addr:value = '192.0.2.2' OR ipv4-addr:value = '192.0.2.3')]", "OR inside AND"),
        ("[ipv4-addr:value = '192.0.2.1' AND ipv4-addr:value = '192.0.2.2']", "AND of several ipv4-addr values"),
        ("[network-traffic:src_ref.value = '192.0.2.1' AND network-traffic:dst_ref.value = '192.0.2.2']", "AND of several network-traffic values"),
        ("[file:hashes.SSDEEP = '3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C']", "hash algorithm SSDEEP"),
        ("[mac-addr:value = '00:00:5e:00:53:01']", "mac-addr:value has no indicator type"),
        ("[file:size = 1024]", "file:size has no indicator type"),
        ("[network-traffic:dst_port = 443]", "names no value an indicator can hold"),
        ("[domain-name:value IN ()]", "names no value"),
    ] {
        let got = skipped(pattern);
        assert!(got.contains(reason), "{pattern}: {got}");
    }
}

#[test]
fn one_bad_value_refuses_the_whole_pattern() {
    assert_eq!(
        invalid("[ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.300']"),
        "ipv4: octet '300' in '192.0.2.300' is not in 0-255"
    );
    assert!(invalid("[ipv4-addr:value = '2001:db8::1']").contains("is not an IPv4 address"));
    assert!(invalid("[ipv4-addr:value = 5]").contains("compares with 5, not a string"));
    assert!(invalid("[file:hashes.MD5 = 'abc']").contains("md5: must be 32 hex digits"));
    assert!(invalid("[network-traffic:dst_ref.value = 'not a host']")
        .contains("is not an IP address or a domain name"));
    assert!(invalid("[ipv4-addr:value ISSUBSET '192.0.2.1']").contains("cidr:"));
}

#[test]
fn observables_we_hold() {
    let sco = |kind: &str, object: serde_json::Value| {
        from_sco(kind, object.as_object().unwrap())
            .map(|found| found.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    assert_eq!(
        sco("ipv4-addr", json!({"value": "192.0.2.0/24"})).unwrap(),
        ["cidr:192.0.2.0/24"]
    );
    assert_eq!(
        sco("ipv6-addr", json!({"value": "2001:db8::1"})).unwrap(),
        ["ipv6:2001:db8::1"]
    );
    assert_eq!(
        sco("domain-name", json!({"value": "A.Example"})).unwrap(),
        ["domain:a.example"]
    );
    assert_eq!(
        sco("url", json!({"value": "http://a.example/x"})).unwrap(),
        ["url:http://a.example/x"]
    );
    assert_eq!(
        sco("email-addr", json!({"value": "x@a.example"})).unwrap(),
        ["email:x@a.example"]
    );
    assert_eq!(
        sco("autonomous-system", json!({"number": 64500})).unwrap(),
        ["asn:AS64500"]
    );
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    assert_eq!(
        sco(
            "file",
            json!({"name": "a.exe", "size": 10, "hashes": {"MD5": md5, "TLSH": "T1…"}})
        )
        .unwrap(),
        ["filename:a.exe".to_owned(), format!("md5:{md5}")]
    );
    assert!(matches!(
        sco("file", json!({"size": 10, "hashes": {"TLSH": "T1"}})),
        Err(Refusal::Skipped(r)) if r.contains("no name and no MD5")
    ));
    assert!(matches!(
        sco("mac-addr", json!({"value": "00:00:5e:00:53:01"})),
        Err(Refusal::Skipped(r)) if r == "mac-addr objects have no indicator type"
    ));
    assert!(matches!(
        sco("ipv4-addr", json!({})),
        Err(Refusal::Invalid(r)) if r == "ipv4-addr has no value"
    ));
    assert!(matches!(
        sco("ipv4-addr", json!({"value": 7})),
        Err(Refusal::Invalid(r)) if r == "value must be a string"
    ));
    assert!(matches!(
        sco("autonomous-system", json!({"number": -1})),
        Err(Refusal::Invalid(r)) if r.contains("non-negative integer")
    ));
    assert!(matches!(
        sco("file", json!({"hashes": {"MD5": "xyz"}})),
        Err(Refusal::Invalid(r)) if r.contains("md5")
    ));
}

#[test]
fn hash_names_are_read_leniently() {
    for (name, kind) in [
        ("MD5", IndicatorType::Md5),
        ("md5", IndicatorType::Md5),
        ("SHA-1", IndicatorType::Sha1),
        ("SHA1", IndicatorType::Sha1),
        ("sha_256", IndicatorType::Sha256),
        ("SHA-512", IndicatorType::Sha512),
    ] {
        assert_eq!(hash_type(name), Some(kind), "{name}");
    }
    assert_eq!(hash_type("SHA3-256"), None);
    assert_eq!(hash_type("SSDEEP"), None);
}
