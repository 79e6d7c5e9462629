//! The index's ordered families: written with the indicators, removed by
//! a retraction, found by range reads at their edges, checked by `check`,
//! rebuilt by `rebuild` and moved into at open for a store of the previous
//! format.

use cer_proto::envelope::{RetractionBody, UpdateBody, Withdrawal};
use cer_proto::model::{Indicator, IndicatorType};
use ipnet::IpNet;

use super::tests::{
    assert_consistent, author, envelope, incident, labelled, open, put, tip_of, Accept,
};
use super::*;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// The `type:value` of each hit, in the order found.
fn values(found: &RangeHits) -> Vec<String> {
    found
        .hits
        .iter()
        .map(|(_, e)| format!("{}:{}", e.kind, e.value))
        .collect()
}

fn specs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const ADDRESSES: &[&str] = &[
    "ipv4:192.0.1.255",
    "ipv4:192.0.2.0",
    "ipv4:192.0.2.77",
    "ipv4:192.0.2.255",
    "ipv4:192.0.3.0",
    "ipv4:255.255.255.255",
    "cidr:192.0.2.7/32",
    "cidr:192.0.2.0/25",
    "cidr:192.0.2.128/25",
    "cidr:192.0.0.0/16",
    "cidr:0.0.0.0/0",
    "ipv6:2001:db8::1",
    "ipv6:2001:db8:0:ffff:ffff:ffff:ffff:ffff",
    "ipv6:2001:db9::",
    "ipv6:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "cidr:2001:db8::/32",
    "cidr:2001:db8::1/128",
    "cidr:::/0",
];

#[test]
fn ranges_find_addresses_and_networks_inside_and_around() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let subject = Uuid::new_v4();
    put(
        &store,
        &envelope(
            &author(),
            None,
            subject,
            incident("ranges", &specs(ADDRESSES)),
            vec![],
        ),
    );

    // A /24: its first and last address, networks inside it (also /32),
    // never its neighbours nor the networks around it; in address order,
    // a network before an address that is its first.
    let found = store.inside(net("192.0.2.0/24"), 100).unwrap();
    assert_eq!(
        values(&found),
        [
            "cidr:192.0.2.0/25",
            "ipv4:192.0.2.0",
            "cidr:192.0.2.7/32",
            "ipv4:192.0.2.77",
            "cidr:192.0.2.128/25",
            "ipv4:192.0.2.255",
        ]
    );
    assert!(!found.truncated);
    assert!(found.hits.iter().all(|(id, _)| *id == subject));
    assert_eq!(
        values(&store.containing(net("192.0.2.0/24"), false, 100).unwrap()),
        ["cidr:192.0.0.0/16", "cidr:0.0.0.0/0"]
    );
    // An address: the networks containing it, most specific first, its
    // own /32 included.
    assert_eq!(
        values(&store.containing(net("192.0.2.7/32"), true, 100).unwrap()),
        [
            "cidr:192.0.2.7/32",
            "cidr:192.0.2.0/25",
            "cidr:192.0.0.0/16",
            "cidr:0.0.0.0/0"
        ]
    );
    // The last address of the last range.
    assert_eq!(
        values(&store.inside(net("255.255.255.255/32"), 100).unwrap()),
        ["ipv4:255.255.255.255"]
    );
    assert_eq!(
        values(
            &store
                .containing(net("255.255.255.255/32"), true, 100)
                .unwrap()
        ),
        ["cidr:0.0.0.0/0"]
    );
    // /0 holds every IPv4 indicator and no IPv6 one, and nothing holds it.
    let all = store.inside(net("0.0.0.0/0"), 100).unwrap();
    assert_eq!(all.hits.len(), 11, "{:?}", values(&all));
    assert!(values(&all).iter().all(|v| !v.contains("::")));
    assert!(store
        .containing(net("0.0.0.0/0"), false, 100)
        .unwrap()
        .hits
        .is_empty());
    // A limit cuts a range short and says so.
    let cut = store.inside(net("0.0.0.0/0"), 3).unwrap();
    assert_eq!((cut.hits.len(), cut.truncated), (3, true));
    let cut = store.containing(net("192.0.2.7/32"), true, 2).unwrap();
    assert_eq!((cut.hits.len(), cut.truncated), (2, true));

    // IPv6: /32 to its last address, /128, ::/0.
    assert_eq!(
        values(&store.inside(net("2001:db8::/32"), 100).unwrap()),
        [
            "cidr:2001:db8::/32",
            "cidr:2001:db8::1/128",
            "ipv6:2001:db8::1",
            "ipv6:2001:db8:0:ffff:ffff:ffff:ffff:ffff",
        ]
    );
    assert_eq!(
        values(&store.containing(net("2001:db8::1/128"), true, 200).unwrap()),
        ["cidr:2001:db8::1/128", "cidr:2001:db8::/32", "cidr:::/0"]
    );
    assert_eq!(
        values(&store.inside(net("2001:db8::1/128"), 100).unwrap()),
        ["cidr:2001:db8::1/128", "ipv6:2001:db8::1"]
    );
    assert_eq!(store.inside(net("::/0"), 100).unwrap().hits.len(), 7);
    assert_eq!(
        values(&store.inside(net("ffff:ffff:ffff:ffff::/64"), 100).unwrap()),
        ["ipv6:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    );
    drop(store);
    assert_consistent(dir.path());
}

#[test]
fn wildcards_find_domains_below_a_domain_by_whole_labels() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let names = specs(&[
        "domain:example.com",
        "domain:www.example.com",
        "domain:a.b.example.com",
        "domain:badexample.com",
        "domain:example.com.evil.example",
        "domain:xn--bcher-kva.example",
        "domain:shop.xn--bcher-kva.example",
        "url:https://login.example.com/reset?u=1",
        "url:https://login.example.com/other",
        "url:http://192.0.2.1/payload",
        "email:ceo@mail.example.com",
        "email:billing@example.com",
    ]);
    put(
        &store,
        &envelope(
            &author(),
            None,
            Uuid::new_v4(),
            incident("names", &names),
            vec![],
        ),
    );
    // Domains only: URL hosts and email domains are not indexed by name.
    assert_eq!(
        values(&store.below("example.com", 100).unwrap()),
        ["domain:a.b.example.com", "domain:www.example.com"]
    );
    // Every name under a top-level domain, the apex names included.
    assert_eq!(
        values(&store.below("com", 100).unwrap()),
        [
            "domain:badexample.com",
            "domain:example.com",
            "domain:a.b.example.com",
            "domain:www.example.com"
        ]
    );
    // Punycode labels are labels like any other.
    assert_eq!(
        values(&store.below("xn--bcher-kva.example", 100).unwrap()),
        ["domain:shop.xn--bcher-kva.example"]
    );
    assert!(store.below("www.example.com", 100).unwrap().hits.is_empty());
    let cut = store.below("com", 3).unwrap();
    assert_eq!((cut.hits.len(), cut.truncated), (3, true));
    // Each still found exactly.
    for (kind, value) in [
        (IndicatorType::Url, "https://login.example.com/other"),
        (IndicatorType::Email, "ceo@mail.example.com"),
        (IndicatorType::Domain, "example.com"),
    ] {
        assert_eq!(
            store.indicator_hits(kind, value).unwrap().len(),
            1,
            "{value}"
        );
    }
    drop(store);
    assert_consistent(dir.path());
}

#[test]
fn updates_add_and_retractions_remove_index_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let subject = Uuid::new_v4();
    let first = envelope(
        &author(),
        None,
        subject,
        incident(
            "c2",
            &specs(&["ipv4:198.51.100.7", "domain:c2.example.net"]),
        ),
        vec![],
    );
    put(&store, &first);
    let update = envelope(
        &author(),
        tip_of(&first),
        subject,
        Body::Update(UpdateBody {
            indicators: vec![
                Indicator::parse_spec("ipv4:198.51.100.8").unwrap(),
                Indicator::parse_spec("cidr:198.51.100.0/24").unwrap(),
            ],
            ..UpdateBody::default()
        }),
        vec![],
    );
    put(&store, &update);
    assert_eq!(
        values(&store.inside(net("198.51.100.0/24"), 100).unwrap()),
        [
            "cidr:198.51.100.0/24",
            "ipv4:198.51.100.7",
            "ipv4:198.51.100.8"
        ]
    );
    assert_eq!(store.below("example.net", 100).unwrap().hits.len(), 1);
    let retraction = envelope(
        &author(),
        tip_of(&update),
        subject,
        Body::Retraction(RetractionBody {
            target: None,
            reason: Some("false positive".into()),
        }),
        vec![Withdrawal {
            seq: 1,
            id: first.id,
            kind: Kind::Incident,
            created: first.envelope.created,
        }],
    );
    put(&store, &retraction);
    assert!(store.inside(net("0.0.0.0/0"), 100).unwrap().hits.is_empty());
    assert!(store
        .containing(net("198.51.100.7/32"), true, 100)
        .unwrap()
        .hits
        .is_empty());
    assert!(store.below("net", 100).unwrap().hits.is_empty());
    for family in index::FAMILIES {
        assert_eq!(store.shared.db.scan_prefix([family]).count(), 0);
    }
    drop(store);
    assert_consistent(dir.path());
}

#[test]
fn check_finds_missing_and_stray_index_keys_and_rebuild_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let subject = Uuid::new_v4();
    {
        let store = open(dir.path());
        put(
            &store,
            &envelope(
                &author(),
                None,
                subject,
                incident(
                    "kept",
                    &specs(&["ipv4:203.0.113.9", "domain:www.kept.example"]),
                ),
                vec![],
            ),
        );
        let db = &store.shared.db;
        let address = index::key(IndicatorType::Ipv4, "203.0.113.9", subject);
        assert!(db.remove(&address).unwrap().is_some());
        let stray = index::key(IndicatorType::Domain, "ghost.kept.example", subject);
        db.insert(stray, 0u32.to_be_bytes().to_vec()).unwrap();
        store.close().unwrap();
    }
    let report = check(&dir.path().join("store"), &Accept).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("ipv4:203.0.113.9 is missing from the indicator index")),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("index entry domain:ghost.kept.example of incident")),
        "{:?}",
        report.problems
    );
    rebuild(&dir.path().join("store"), &Accept).unwrap();
    assert_consistent(dir.path());
    let store = open(dir.path());
    assert_eq!(
        values(&store.inside(net("203.0.113.0/24"), 10).unwrap()),
        ["ipv4:203.0.113.9"]
    );
    assert_eq!(
        values(&store.below("kept.example", 10).unwrap()),
        ["domain:www.kept.example"]
    );
}

#[test]
fn a_store_of_the_previous_format_has_its_keys_moved_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let iocs: Vec<String> = (0..300)
            .map(|i| format!("ipv4:10.0.{}.{}", i / 256, i % 256))
            .chain(["domain:old.example.org".into(), "cidr:10.0.0.0/8".into()])
            .collect();
        put(
            &store,
            &envelope(
                &author(),
                None,
                Uuid::new_v4(),
                incident("old", &iocs),
                vec![],
            ),
        );
        // What a store of format 2 holds: every index key in `x`.
        let db = &store.shared.db;
        for family in [index::ADDRESS, index::NAME] {
            for item in db.scan_prefix([family]) {
                let (key, position) = item.unwrap();
                let mut exact = vec![keys::INDEX];
                exact.extend_from_slice(index::describe(&key).as_bytes());
                exact.push(0);
                exact.extend_from_slice(&key[key.len() - 16..]);
                db.insert(exact, position).unwrap();
                db.remove(key).unwrap();
            }
        }
        assert_eq!(db.scan_prefix([keys::INDEX]).count(), 302);
        db.insert(keys::meta("format"), &2u64.to_be_bytes())
            .unwrap();
        store.close().unwrap();
    }
    let store = open(dir.path());
    let format = store.shared.db.get(keys::meta("format")).unwrap().unwrap();
    assert_eq!(keys::u64_from(&format, "format").unwrap(), FORMAT_VERSION);
    assert_eq!(
        store.inside(net("10.0.1.0/24"), 1000).unwrap().hits.len(),
        44
    );
    assert_eq!(
        values(&store.containing(net("10.0.0.1/32"), true, 10).unwrap()),
        ["cidr:10.0.0.0/8"]
    );
    assert_eq!(store.below("example.org", 10).unwrap().hits.len(), 1);
    assert_eq!(store.shared.db.scan_prefix([keys::INDEX]).count(), 0);
    assert_eq!(
        store
            .indicator_hits(IndicatorType::Ipv4, "10.0.0.7")
            .unwrap()
            .len(),
        1
    );
    drop(store);
    assert_consistent(dir.path());
}

/// Words every listed incident's title or description must hold.
struct Words(Vec<String>);

impl SummaryFilter for Words {
    fn since(&self) -> Option<Timestamp> {
        None
    }

    fn until(&self) -> Option<Timestamp> {
        None
    }

    fn accept(&self, _: &IncidentSummary) -> bool {
        true
    }

    fn words(&self) -> &[String] {
        &self.0
    }
}

#[test]
fn text_matches_only_incidents_this_node_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let readable = Uuid::new_v4();
    put(
        &store,
        &envelope(
            &author(),
            None,
            readable,
            incident("Wiper at a port operator", &[]),
            vec![],
        ),
    );
    // Encrypted for others: this node holds it but cannot read it.
    let mut sealed = labelled(
        &super::tests::other(),
        None,
        Uuid::new_v4(),
        incident("Wiper at a port operator", &[]),
        vec![],
        Tlp::Amber,
    );
    sealed.body = None;
    store
        .ingest_blocking(vec![Incoming::Live(Box::new(sealed))], None)
        .unwrap();
    let page = Page {
        offset: 0,
        limit: 10,
        oldest_first: false,
    };
    let listed = |words: &[&str]| -> Vec<Uuid> {
        let words = Words(words.iter().map(|w| (*w).to_owned()).collect());
        let (found, _) = store.list(&words, page).unwrap();
        found.iter().map(|s| s.id).collect()
    };
    assert_eq!(store.list(&Words(vec![]), page).unwrap().0.len(), 2);
    assert_eq!(listed(&["wiper", "port"]), [readable]);
    assert!(listed(&["wiper", "hospital"]).is_empty());
}
