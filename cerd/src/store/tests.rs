use cer_proto::envelope::{
    ChainTip, Draft, DraftBody, IncidentBody, RetractionBody, SightingBody, UpdateBody, Withdrawal,
};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Status};

use super::*;

pub(super) fn author() -> Fingerprint {
    Fingerprint::parse(&"AB12".repeat(10)).unwrap()
}

pub(super) fn other() -> Fingerprint {
    Fingerprint::parse(&"CD34".repeat(10)).unwrap()
}

pub(super) fn incident(title: &str, iocs: &[String]) -> Body {
    Body::Incident(IncidentBody {
        title: title.into(),
        description: String::new(),
        severity: Severity::High,
        classification: Classification::parse("malicious-code/c2-server").unwrap(),
        status: Status::New,
        indicators: iocs
            .iter()
            .map(|s| Indicator::parse_spec(s).unwrap())
            .collect(),
        affected: Default::default(),
        occurred: None,
        detected: None,
        tags: vec![],
        source: None,
    })
}

pub(super) fn note(text: &str) -> Body {
    Body::Update(UpdateBody {
        note: Some(text.into()),
        ..UpdateBody::default()
    })
}

/// Signs nothing: the store does not verify; `check` uses [`Accept`].
pub(super) fn envelope(
    by: &Fingerprint,
    tip: Option<ChainTip>,
    subject: Uuid,
    body: Body,
    withdraws: Vec<Withdrawal>,
) -> NewEnvelope {
    labelled(by, tip, subject, body, withdraws, Tlp::Green)
}

/// An envelope under `tlp`; above GREEN its body stands for ciphertext
/// this node could read (the store keeps what it decrypted).
pub(super) fn labelled(
    by: &Fingerprint,
    tip: Option<ChainTip>,
    subject: Uuid,
    body: Body,
    withdraws: Vec<Withdrawal>,
    tlp: Tlp,
) -> NewEnvelope {
    let readable = body.clone();
    let body = if tlp.is_encrypted() {
        DraftBody::Encrypted {
            kind: body.kind(),
            armored: "-----BEGIN PGP MESSAGE-----\n\nwcBMA\n-----END PGP MESSAGE-----\n".into(),
        }
    } else {
        DraftBody::Plain(body)
    };
    let bytes = Draft {
        author: by.clone(),
        seq: tip.map_or(1, |t| t.seq + 1),
        prev: tip.map(|t| t.id),
        created: Timestamp(time::OffsetDateTime::now_utc()),
        subject,
        tlp,
        recipients: vec![],
        body,
        withdraws,
    }
    .to_bytes()
    .unwrap();
    NewEnvelope {
        id: EnvelopeId::of(&bytes),
        envelope: Envelope::parse(&bytes).unwrap(),
        bytes,
        sig: b"sig".to_vec(),
        body: Some(readable),
    }
}

pub(super) fn tip_of(new: &NewEnvelope) -> Option<ChainTip> {
    Some(ChainTip {
        seq: new.envelope.seq,
        id: new.id,
    })
}

pub(super) fn put(store: &Store, new: &NewEnvelope) -> Inserted {
    store
        .ingest_blocking(vec![Incoming::Live(Box::new(new.clone()))], None)
        .unwrap()
        .remove(0)
        .unwrap()
}

pub(super) struct Accept;

impl Verifier for Accept {
    fn envelope(&self, _: &[u8], sig: &[u8]) -> Verdict {
        if sig == b"sig" {
            Verdict::Good
        } else {
            Verdict::Bad("bad signature".into())
        }
    }

    fn tombstone(&self, _: &EnvelopeId, _: &Tombstone) -> Verdict {
        Verdict::Good
    }
}

pub(super) fn open(dir: &Path) -> Store {
    Store::open(&dir.join("store"), Options::default()).unwrap()
}

pub(super) fn assert_consistent(dir: &Path) {
    // sled's own background jobs may hold the lock for a moment after the
    // store is dropped: wait until it is released.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let report = loop {
        match check(&dir.join("store"), &Accept) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => break result.unwrap(),
        }
    };
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn duplicates_equivocations_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let subject = Uuid::new_v4();
    let first = envelope(
        &author(),
        None,
        subject,
        incident("one", &["ipv4:203.0.113.7".into()]),
        vec![],
    );
    assert!(matches!(put(&store, &first), Inserted::Stored { .. }));
    assert_eq!(put(&store, &first), Inserted::Duplicate);

    let rival = envelope(
        &author(),
        None,
        Uuid::new_v4(),
        incident("rival", &[]),
        vec![],
    );
    assert_eq!(
        put(&store, &rival),
        Inserted::Equivocation { held: first.id }
    );
    assert_eq!(store.counts().equivocations, 1);

    let gap = envelope(
        &author(),
        Some(ChainTip {
            seq: 2,
            id: first.id,
        }),
        Uuid::new_v4(),
        incident("gap", &[]),
        vec![],
    );
    let results = store
        .ingest_blocking(vec![Incoming::Live(Box::new(gap))], None)
        .unwrap();
    assert!(matches!(results[0], Err(StoreError::Chain(_))));
    let counts = store.counts();
    assert_eq!(
        (
            counts.envelopes,
            counts.incidents,
            counts.indicators,
            counts.authors
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(store.chain_tip(&author()).unwrap(), tip_of(&first));
    assert_eq!(
        store
            .indicator_hits(IndicatorType::Ipv4, "203.0.113.7")
            .unwrap()
            .len(),
        1
    );
    // Stored, then the equivocation: two events, numbered from 1.
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(matches!(events[1].change, Change::Equivocation { .. }));
    drop(store);
    assert_consistent(dir.path());
}

#[test]
fn retraction_leaves_only_proven_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let subject = Uuid::new_v4();
    let first = envelope(
        &author(),
        None,
        subject,
        incident("secret-ish title", &["domain:evil.example".into()]),
        vec![],
    );
    put(&store, &first);
    // Another CERT's note about it: only that CERT could withdraw it.
    let theirs = envelope(&other(), None, subject, note("seen here too"), vec![]);
    put(&store, &theirs);
    let retraction = envelope(
        &author(),
        tip_of(&first),
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
    let state = store.incident(subject).unwrap().unwrap();
    assert!(state.retracted.is_some());
    assert!(state.content.is_none());
    assert!(store
        .indicator_hits(IndicatorType::Domain, "evil.example")
        .unwrap()
        .is_empty());
    match store.envelope(&first.id).unwrap().unwrap() {
        StoredEnvelope::Tombstone(t) => {
            assert_eq!(t.withdrawn_by, retraction.id);
            assert_eq!(t.proof, retraction.bytes);
        }
        StoredEnvelope::Live { .. } => panic!("retracted body still held"),
    }
    assert!(matches!(
        store.envelope(&theirs.id).unwrap().unwrap(),
        StoredEnvelope::Live { .. }
    ));
    let counts = store.counts();
    assert_eq!((counts.tombstones, counts.indicators), (1, 0));
    assert!(store.summary(subject).unwrap().unwrap().retracted);
    drop(store);
    assert_consistent(dir.path());
}

#[test]
fn a_note_touches_only_the_incident_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let subject = Uuid::new_v4();
    let iocs: Vec<String> = (0..1000)
        .map(|i| format!("ipv4:10.0.{}.{}", i / 256, i % 256))
        .collect();
    let first = envelope(&author(), None, subject, incident("big", &iocs), vec![]);
    put(&store, &first);
    let chunks_before: Vec<_> = store
        .shared
        .db
        .scan_prefix(&keys::chunk(subject, 0)[..17])
        .map(|kv| kv.unwrap())
        .collect();
    let mut tip = tip_of(&first);
    for n in 0..3 {
        let update = envelope(&author(), tip, subject, note(&format!("note {n}")), vec![]);
        tip = tip_of(&update);
        put(&store, &update);
    }
    let chunks_after: Vec<_> = store
        .shared
        .db
        .scan_prefix(&keys::chunk(subject, 0)[..17])
        .map(|kv| kv.unwrap())
        .collect();
    assert_eq!(
        chunks_before, chunks_after,
        "a note rewrote indicator chunks"
    );
    // A sighting rewrites just its chunk, and adding a new indicator appends.
    let sighting = envelope(
        &other(),
        None,
        subject,
        Body::Sighting(SightingBody {
            indicator: Indicator::parse_spec("ipv4:10.0.3.231").unwrap(),
            seen: Timestamp(time::OffsetDateTime::now_utc()),
            count: 4,
            comment: None,
            false_positive: false,
        }),
        vec![],
    );
    put(&store, &sighting);
    let hits = store
        .indicator_hits(IndicatorType::Ipv4, "10.0.3.231")
        .unwrap();
    assert_eq!(hits[0].1.sightings, 4);
    assert_eq!(hits[0].1.reported_by, vec![author(), other()]);
    let more = UpdateBody {
        indicators: vec![Indicator::parse_spec("domain:added.example").unwrap()],
        ..UpdateBody::default()
    };
    put(
        &store,
        &envelope(&author(), tip, subject, Body::Update(more), vec![]),
    );
    assert_eq!(store.counts().indicators, 1001);
    assert_eq!(
        store.incident(subject).unwrap().unwrap().indicators.len(),
        1001
    );
    drop(store);
    assert_consistent(dir.path());
}

#[test]
fn a_repeated_request_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let request = Uuid::new_v4();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let publish = |subject: Uuid| Publish {
        author: author(),
        subject,
        created: Timestamp(time::OffsetDateTime::now_utc()),
        tlp: Tlp::Green,
        recipients: vec![],
        body: DraftBody::Plain(incident("once", &[])),
        readable: Some(incident("once", &[])),
        withdraws: vec![],
        request: Some(request),
        sign: Box::new(|_| b"sig".to_vec()),
    };
    let first = rt.block_on(store.publish(publish(Uuid::new_v4()))).unwrap();
    let again = rt.block_on(store.publish(publish(Uuid::new_v4()))).unwrap();
    assert!(!first.repeated && again.repeated);
    assert_eq!(first.filed, again.filed);
    assert_eq!(store.counts().incidents, 1);
    assert_eq!(store.request(request).unwrap(), Some(first.filed));
}

#[test]
fn counts_and_cursor_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = envelope(
        &author(),
        None,
        Uuid::new_v4(),
        incident("a", &["ipv4:192.0.2.1".into(), "ipv4:192.0.2.2".into()]),
        vec![],
    );
    {
        let store = open(dir.path());
        put(&store, &first);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.set_cursor("test", 1)).unwrap();
        store.close().unwrap();
    }
    let store = open(dir.path());
    let counts = store.counts();
    assert_eq!(
        (
            counts.envelopes,
            counts.incidents,
            counts.indicators,
            counts.authors
        ),
        (1, 1, 2, 1)
    );
    assert_eq!(store.cursor("test").unwrap(), 1);
    assert_eq!(*store.durable_events().borrow(), 1);
}

#[test]
fn another_format_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .shared
            .db
            .insert(keys::meta("format"), &1u64.to_be_bytes())
            .unwrap();
        store.close().unwrap();
    }
    let Err(e) = Store::open(&dir.path().join("store"), Options::default()) else {
        panic!("opened a store of another format");
    };
    let text = e.to_string();
    assert!(
        text.contains("format version 1") && text.contains("Move the folder aside"),
        "{text}"
    );
}

#[test]
fn rebuild_keeps_what_verifies_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let subject = Uuid::new_v4();
    let first = envelope(
        &author(),
        None,
        subject,
        incident("kept", &["domain:kept.example".into()]),
        vec![],
    );
    let second = envelope(
        &author(),
        tip_of(&first),
        Uuid::new_v4(),
        incident("damaged", &[]),
        vec![],
    );
    let third = envelope(
        &author(),
        tip_of(&second),
        Uuid::new_v4(),
        incident("after", &[]),
        vec![],
    );
    {
        let store = open(dir.path());
        for e in [&first, &second, &third] {
            put(&store, e);
        }
        // Damage the second envelope's record, and an index record.
        store
            .shared
            .db
            .insert(
                keys::envelope(&second.id),
                b"\x01\x00\x00\x00\x05junk".to_vec(),
            )
            .unwrap();
        store
            .shared
            .db
            .insert(
                index::key(IndicatorType::Domain, "ghost.example", subject),
                7u32.to_be_bytes().to_vec(),
            )
            .unwrap();
        store.close().unwrap();
    }
    let report = check(&dir.path().join("store"), &Accept).unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains("seq 2")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.contains("ghost.example")),
        "{:?}",
        report.problems
    );

    let rebuilt = rebuild(&dir.path().join("store"), &Accept).unwrap();
    assert_eq!(rebuilt.kept_envelopes, 1);
    assert!(rebuilt.old.exists());
    assert_consistent(dir.path());
    let store = open(dir.path());
    assert_eq!(store.chain_tip(&author()).unwrap(), tip_of(&first));
    assert_eq!(
        store
            .incident(subject)
            .unwrap()
            .unwrap()
            .content
            .unwrap()
            .title,
        "kept"
    );
    assert_eq!(store.counts().envelopes, 1);
    // The event log was kept as it was: three envelopes stored.
    assert_eq!(store.events_after(0, 10).unwrap().len(), 3);
}

#[test]
fn a_failed_batch_writes_nothing_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let damaged = Uuid::new_v4();
    let first = envelope(&author(), None, damaged, incident("one", &[]), vec![]);
    put(&store, &first);
    // A record the writer cannot read: folding into it fails the batch.
    store
        .shared
        .db
        .insert(keys::incident(damaged), b"\x00\x00\x00\x02{}".to_vec())
        .unwrap();
    let note_on_damaged = envelope(&author(), tip_of(&first), damaged, note("x"), vec![]);
    let result = store.ingest_blocking(vec![Incoming::Live(Box::new(note_on_damaged))], None);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(store.chain_tip(&author()).unwrap(), tip_of(&first));
    assert_eq!(store.counts().envelopes, 1);
    assert_eq!(store.events_after(0, 10).unwrap().len(), 1);
    // The writer still takes what it can store.
    let other = envelope(
        &author(),
        tip_of(&first),
        Uuid::new_v4(),
        incident("two", &[]),
        vec![],
    );
    assert!(matches!(put(&store, &other), Inserted::Stored { .. }));
    assert_eq!(store.counts().envelopes, 2);
}

/// One step of a generated history.
#[derive(Debug, Clone)]
enum Step {
    /// The first author files an incident naming these pool indicators.
    File(Vec<usize>),
    /// The first author adds a note and these indicators to incident n,
    /// under one of [`LABELS`].
    Update(usize, Vec<usize>, usize),
    /// The second author sights pool indicator i in incident n, under one
    /// of [`LABELS`].
    Sight(usize, usize, usize),
    /// The first author retracts incident n, withdrawing its envelopes.
    Retract(usize),
}

/// The labels of updates and sightings: below, at and above the
/// incidents' GREEN.
const LABELS: [Tlp; 3] = [Tlp::Clear, Tlp::Green, Tlp::Amber];

fn pool(i: usize) -> String {
    format!("ipv4:192.0.2.{}", i % 12)
}

/// Builds both authors' chains from the steps: (author 1's, author 2's).
fn history(steps: &[Step]) -> (Vec<NewEnvelope>, Vec<NewEnvelope>) {
    let (mut mine, mut theirs): (Vec<NewEnvelope>, Vec<NewEnvelope>) = (vec![], vec![]);
    let mut incidents: Vec<(Uuid, Vec<usize>)> = vec![];
    let tip = |chain: &Vec<NewEnvelope>| chain.last().and_then(tip_of);
    for step in steps {
        match step {
            Step::File(iocs) => {
                let subject = Uuid::new_v4();
                let specs: Vec<String> = iocs.iter().map(|i| pool(*i)).collect();
                let e = envelope(
                    &author(),
                    tip(&mine),
                    subject,
                    incident("f", &specs),
                    vec![],
                );
                incidents.push((subject, vec![mine.len()]));
                mine.push(e);
            }
            Step::Update(n, iocs, label) if !incidents.is_empty() => {
                let at = n % incidents.len();
                let (subject, own) = &mut incidents[at];
                let body = Body::Update(UpdateBody {
                    note: Some("n".into()),
                    indicators: iocs
                        .iter()
                        .map(|i| Indicator::parse_spec(&pool(*i)).unwrap())
                        .collect(),
                    ..UpdateBody::default()
                });
                own.push(mine.len());
                let e = labelled(
                    &author(),
                    tip(&mine),
                    *subject,
                    body,
                    vec![],
                    LABELS[*label],
                );
                mine.push(e);
            }
            Step::Sight(n, i, label) if !incidents.is_empty() => {
                let (subject, _) = incidents[n % incidents.len()];
                let body = Body::Sighting(SightingBody {
                    indicator: Indicator::parse_spec(&pool(*i)).unwrap(),
                    seen: Timestamp(time::OffsetDateTime::now_utc()),
                    count: 1,
                    comment: None,
                    false_positive: false,
                });
                let e = labelled(
                    &other(),
                    tip(&theirs),
                    subject,
                    body,
                    vec![],
                    LABELS[*label],
                );
                theirs.push(e);
            }
            Step::Retract(n) if !incidents.is_empty() => {
                let (subject, own) = incidents[n % incidents.len()].clone();
                let withdraws = own
                    .iter()
                    .map(|at| Withdrawal {
                        seq: mine[*at].envelope.seq,
                        id: mine[*at].id,
                        kind: mine[*at].envelope.kind,
                        created: mine[*at].envelope.created,
                    })
                    .collect();
                let body = Body::Retraction(RetractionBody {
                    target: None,
                    reason: None,
                });
                let e = envelope(&author(), tip(&mine), subject, body, withdraws);
                mine.push(e);
            }
            _ => {}
        }
    }
    (mine, theirs)
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let iocs = proptest::collection::vec(0usize..12, 0..4);
    prop_oneof![
        3 => iocs.clone().prop_map(Step::File),
        4 => (0usize..8, iocs, 0..LABELS.len()).prop_map(|(n, i, l)| Step::Update(n, i, l)),
        3 => (0usize..8, 0usize..12, 0..LABELS.len()).prop_map(|(n, i, l)| Step::Sight(n, i, l)),
        1 => (0usize..8).prop_map(Step::Retract),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Whatever the history, and however it is cut into batches and
    /// interleaved between authors, and whatever labels its updates and
    /// sightings carry, what the writer stores (applied
    /// envelope by envelope where it can) is what a whole refold of the
    /// envelopes gives: `check` finds nothing, and the indicator index
    /// agrees.
    #[test]
    fn incremental_writes_match_a_whole_refold(
        steps in proptest::collection::vec(step(), 1..40),
        cuts in proptest::collection::vec(1usize..6, 1..20),
        theirs_first in proptest::prelude::any::<bool>(),
    ) {
        let (mine, theirs) = history(&steps);
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Interleave the two chains (each in order), cut into batches.
        let mut order: Vec<NewEnvelope> = Vec::new();
        let (mut a, mut b) = (mine.iter(), theirs.iter());
        let mut turn = theirs_first;
        loop {
            let next = if turn { b.next().or_else(|| a.next()) } else { a.next().or_else(|| b.next()) };
            let Some(next) = next else { break };
            order.push(next.clone());
            turn = !turn;
        }
        let mut cuts = cuts.iter().cycle();
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let n = (*cuts.next().unwrap()).min(rest.len());
            let items = rest[..n].iter().cloned().map(|e| Incoming::Live(Box::new(e))).collect();
            for result in store.ingest_blocking(items, None).unwrap() {
                let stored = matches!(result.unwrap(), Inserted::Stored { .. });
                proptest::prop_assert!(stored);
            }
            rest = &rest[n..];
        }
        let counts = store.counts();
        proptest::prop_assert_eq!(counts.envelopes as usize, mine.len() + theirs.len());
        drop(store);
        let report = check(&dir.path().join("store"), &Accept).unwrap();
        proptest::prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[test]
fn a_store_in_use_is_refused_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let Err(e) = Store::open(&dir.path().join("store"), Options::default()) else {
        panic!("opened a store another handle holds");
    };
    let text = e.to_string();
    assert!(
        matches!(e, StoreError::Locked { .. }) && text.contains("another cerd running"),
        "{text}"
    );
}

#[test]
fn incidents_arrive_in_the_order_stored_whatever_time_they_carry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let first = envelope(&author(), None, a, incident("a", &[]), vec![]);
    put(&store, &first);
    // A peer's incident filed a day ago arrives after it.
    let day_ago = Timestamp(time::OffsetDateTime::now_utc() - time::Duration::days(1));
    let bytes = Draft {
        author: other(),
        seq: 1,
        prev: None,
        created: day_ago,
        subject: b,
        tlp: Tlp::Green,
        recipients: vec![],
        body: DraftBody::Plain(incident("b", &[])),
        withdraws: vec![],
    }
    .to_bytes()
    .unwrap();
    let late = NewEnvelope {
        id: EnvelopeId::of(&bytes),
        envelope: Envelope::parse(&bytes).unwrap(),
        bytes,
        sig: b"sig".to_vec(),
        body: Some(incident("b", &[])),
    };
    put(&store, &late);
    let (arrived, more) = store.arrivals(None, 10).unwrap();
    assert!(!more);
    let ids: Vec<Uuid> = arrived.iter().map(|(_, s)| s.id).collect();
    assert_eq!(ids, [a, b]);
    let (at_a, at_b) = (arrived[0].0, arrived[1].0);
    assert!(at_a < at_b);
    assert!(store.arrived_at(at_a, a).unwrap().is_some());
    // An update moves its incident to the end; its old place is gone.
    put(
        &store,
        &envelope(&author(), tip_of(&first), a, note("more"), vec![]),
    );
    let (arrived, _) = store.arrivals(None, 10).unwrap();
    assert_eq!(
        arrived.iter().map(|(_, s)| s.id).collect::<Vec<_>>(),
        [b, a]
    );
    assert!(arrived[1].0 > at_b);
    assert!(store.arrived_at(at_a, a).unwrap().is_none());
    let (after_b, more) = store.arrivals(Some((at_b, b)), 10).unwrap();
    assert!(!more);
    assert_eq!(after_b.len(), 1);
    assert_eq!(after_b[0].1.id, a);
    let (one, more) = store.arrivals(None, 1).unwrap();
    assert!(more);
    assert_eq!(one[0].1.id, b);

    // A store of format 3 kept no arrivals: they are derived at open,
    // each incident placed at its last update.
    let db = &store.shared.db;
    for item in db.scan_prefix([keys::ADDED]) {
        db.remove(item.unwrap().0).unwrap();
    }
    for item in db.scan_prefix([keys::INCIDENT]) {
        let (k, v) = item.unwrap();
        let mut head = decode_head(&v).unwrap();
        head.added = None;
        db.insert(k, encode_head(&head).unwrap()).unwrap();
    }
    db.insert(keys::meta("format"), &3u64.to_be_bytes())
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    let (arrived, _) = store.arrivals(None, 10).unwrap();
    assert_eq!(
        arrived.iter().map(|(_, s)| s.id).collect::<Vec<_>>(),
        [b, a]
    );
    assert_eq!(arrived[0].0, arrived[0].1.updated);
    // What arrives next still goes to the end.
    let c = Uuid::new_v4();
    put(
        &store,
        &envelope(&other(), tip_of(&late), c, incident("c", &[]), vec![]),
    );
    let (arrived, _) = store.arrivals(None, 10).unwrap();
    assert_eq!(arrived.last().unwrap().1.id, c);
    drop(store);
    assert_consistent(dir.path());
}
