use super::*;
use crate::envelope::{Body, Draft, DraftBody, IncidentBody};
use crate::model::{Affected, Classification, Severity, Status, Timestamp, Tlp};
use crate::wire::WireTombstone;
use uuid::Uuid;

fn fp(n: u8) -> Fingerprint {
    Fingerprint::parse(&format!("{n:02X}").repeat(20)).unwrap()
}

fn id(author: &Fingerprint, seq: u64) -> EnvelopeId {
    EnvelopeId::of(format!("{author}/{seq}").as_bytes())
}

fn tip(author: &Fingerprint, seq: u64) -> ChainTip {
    ChainTip {
        seq,
        id: id(author, seq),
    }
}

/// Unit tests use tombstones: their author and seq need no JSON.
fn item(author: &Fingerprint, seq: u64) -> Item {
    Item::Tombstone(WireTombstone {
        author: author.clone(),
        seq,
        id: id(author, seq),
        proof: vec![],
        proof_sig: vec![],
    })
}

fn live(author: &Fingerprint, seq: u64) -> Item {
    let draft = Draft {
        author: author.clone(),
        seq,
        prev: (seq > 1).then(|| id(author, seq - 1)),
        created: Timestamp::from_unix_nanos(0),
        subject: Uuid::nil(),
        tlp: Tlp::Green,
        recipients: vec![],
        body: DraftBody::Plain(Body::Incident(IncidentBody {
            title: "t".into(),
            description: String::new(),
            severity: Severity::Low,
            classification: Classification::parse("test/test").unwrap(),
            status: Status::New,
            indicators: vec![],
            affected: Affected::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            source: None,
        })),
        withdraws: vec![],
    };
    Item::Live {
        bytes: draft.to_bytes().unwrap(),
        sig: vec![0; 64],
    }
}

fn batch(author: &Fingerprint, seqs: impl IntoIterator<Item = u64>) -> Frame {
    Frame::Envelopes {
        items: seqs.into_iter().map(|seq| item(author, seq)).collect(),
    }
}

fn summary(tips: &[(&Fingerprint, u64)]) -> Frame {
    Frame::Summary {
        tips: tips
            .iter()
            .map(|(author, seq)| Tip {
                author: (*author).clone(),
                seq: *seq,
                id: id(author, *seq),
            })
            .collect(),
    }
}

fn want(author: &Fingerprint, from: u64, to: u64) -> Frame {
    Frame::Want {
        author: author.clone(),
        from,
        to,
    }
}

fn drain(sync: &mut Sync) -> Vec<Action> {
    std::iter::from_fn(|| sync.poll_action()).collect()
}

fn sends(actions: &[Action]) -> Vec<(PeerId, Frame)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send { peer, frame } => Some((peer.clone(), frame.clone())),
            _ => None,
        })
        .collect()
}

fn ingests(actions: &[Action]) -> Vec<(PeerId, u64)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Ingest { from, seq, .. } => Some((from.clone(), *seq)),
            _ => None,
        })
        .collect()
}

/// A node `me` trusting `me`, A, B, C and author X, with peers A and B
/// connected and summarized as holding nothing.
struct Fixture {
    sync: Sync,
    now: Instant,
    me: Fingerprint,
    a: PeerId,
    b: PeerId,
    x: Fingerprint,
}

fn fixture(config: Config, our_x: u64) -> Fixture {
    let (me, a, b, c, x) = (fp(0xEE), fp(0xA1), fp(0xB2), fp(0xC3), fp(0x99));
    let tips = (our_x > 0).then(|| (x.clone(), tip(&x, our_x)));
    let trusted = [me.clone(), a.clone(), b.clone(), c, x.clone()];
    let mut sync = Sync::new(config, tips, trusted);
    let now = Instant::now();
    for peer in [&a, &b] {
        sync.handle_connected(peer.clone(), now);
        sync.handle_frame(peer, summary(&[]), now);
    }
    drain(&mut sync);
    Fixture {
        sync,
        now,
        me,
        a,
        b,
        x,
    }
}

#[test]
fn connect_sends_summary_of_trusted_authors_only() {
    let (me, peer, untrusted) = (fp(1), fp(2), fp(3));
    let tips = [
        (me.clone(), tip(&me, 5)),
        (untrusted.clone(), tip(&untrusted, 9)),
    ];
    let mut sync = Sync::new(Config::default(), tips, [me.clone(), peer.clone()]);
    let now = Instant::now();
    sync.handle_connected(peer.clone(), now);
    assert_eq!(
        drain(&mut sync),
        vec![Action::Send {
            peer: peer.clone(),
            frame: summary(&[(&me, 5)])
        }]
    );
    assert_eq!(
        sync.poll_timeout(),
        Some(now + Config::default().anti_entropy)
    );
    let view = sync.peer(&peer).unwrap();
    assert!(!view.summarized);
    assert_eq!(view.ahead, 5);
}

#[test]
fn untrusted_peer_is_refused_on_connect() {
    let mut sync = Sync::new(Config::default(), [], [fp(1)]);
    sync.handle_connected(fp(2), Instant::now());
    assert!(matches!(
        drain(&mut sync).as_slice(),
        [Action::Disconnect { peer, .. }] if *peer == fp(2)
    ));
    assert!(sync.peer(&fp(2)).is_none());
}

#[test]
fn summary_asks_for_what_is_missing_in_spans_once() {
    let config = Config {
        max_want_span: 100,
        ..Config::default()
    };
    let mut f = fixture(config, 10);
    let untrusted = fp(0x55);
    f.sync.handle_frame(
        &f.a,
        summary(&[(&f.x, 250), (&untrusted, 7), (&f.me, 0)]),
        f.now,
    );
    let asked = sends(&drain(&mut f.sync));
    assert_eq!(
        asked,
        vec![
            (f.a.clone(), want(&f.x, 11, 110)),
            (f.a.clone(), want(&f.x, 111, 210)),
            (f.a.clone(), want(&f.x, 211, 250)),
        ]
    );
    let view = f.sync.peer(&f.a).unwrap();
    assert!(view.summarized);
    assert_eq!(view.behind, 240);
    // B holds more: only the part not already asked of A.
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 260)]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.b.clone(), want(&f.x, 251, 260))]
    );
    // A repeats itself: nothing new.
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 250)]), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
}

#[test]
fn stalled_want_is_asked_again_of_another_peer() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&f.x, 1, 5))]
    );
    let timeout = Config::default().want_timeout;
    // Progress pushes the deadline back.
    let later = f.now + timeout / 2;
    f.sync.handle_frame(&f.a, batch(&f.x, [1, 2]), later);
    assert_eq!(
        ingests(&drain(&mut f.sync)),
        vec![(f.a.clone(), 1), (f.a.clone(), 2)]
    );
    // Its own deadline comes first; the peer's progress extends it.
    assert_eq!(f.sync.poll_timeout(), Some(f.now + timeout));
    f.sync.handle_timeout(f.now + timeout);
    assert_eq!(drain(&mut f.sync), vec![]);
    assert_eq!(f.sync.poll_timeout(), Some(later + timeout));
    f.sync.handle_timeout(later + timeout);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.b.clone(), want(&f.x, 3, 5))]
    );
}

#[test]
fn want_is_answered_up_to_the_local_tip() {
    let mut f = fixture(Config::default(), 10);
    f.sync.handle_frame(&f.a, want(&f.x, 4, 20), f.now);
    assert_eq!(
        drain(&mut f.sync),
        vec![Action::SendRange {
            peer: f.a.clone(),
            author: f.x.clone(),
            from: 4,
            to: 10
        }]
    );
    assert_eq!(f.sync.peer(&f.a).unwrap().sent, 7);
    // Beyond the tip, an author we lack, an untrusted author: nothing.
    f.sync.handle_frame(&f.a, want(&f.x, 11, 20), f.now);
    f.sync.handle_frame(&f.a, want(&f.me, 1, 20), f.now);
    f.sync.handle_frame(&f.a, want(&fp(0x55), 1, 20), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    // What was sent in answer is not pushed again.
    f.sync.handle_stored(&f.x, 11, id(&f.x, 11), None, f.now);
    assert_eq!(
        drain(&mut f.sync),
        vec![
            Action::Push {
                peer: f.a.clone(),
                author: f.x.clone(),
                seq: 11,
                urgent: false
            },
            Action::Push {
                peer: f.b.clone(),
                author: f.x.clone(),
                seq: 11,
                urgent: false
            },
        ]
    );
}

#[test]
fn items_in_order_are_ingested_and_duplicates_counted() {
    let mut f = fixture(Config::default(), 2);
    f.sync
        .handle_frame(&f.a, batch(&f.x, [1, 2, 3, 4, 3]), f.now);
    assert_eq!(
        ingests(&drain(&mut f.sync)),
        vec![(f.a.clone(), 3), (f.a.clone(), 4)]
    );
    // Handed out but not stored yet: still a duplicate.
    f.sync.handle_frame(&f.b, batch(&f.x, [4]), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    let a = f.sync.peer(&f.a).unwrap();
    assert_eq!((a.received, a.duplicates), (5, 3));
    let stats = f.sync.stats();
    assert_eq!(
        (stats.received, stats.duplicates, stats.ingested),
        (6, 4, 2)
    );
}

#[test]
fn live_items_are_parsed_and_junk_counted() {
    let mut f = fixture(Config::default(), 0);
    let frame = Frame::Envelopes {
        items: vec![
            live(&f.x, 1),
            Item::Live {
                bytes: b"{not json".to_vec(),
                sig: vec![],
            },
            live(&fp(0x55), 1),
        ],
    };
    f.sync.handle_frame(&f.a, frame, f.now);
    assert_eq!(ingests(&drain(&mut f.sync)), vec![(f.a.clone(), 1)]);
    let view = f.sync.peer(&f.a).unwrap();
    assert_eq!((view.received, view.junk, view.ignored), (3, 1, 1));
}

#[test]
fn out_of_order_items_wait_for_the_gap() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, batch(&f.x, [3, 4]), f.now);
    f.sync.handle_frame(&f.b, batch(&f.x, [7]), f.now);
    let actions = drain(&mut f.sync);
    assert_eq!(ingests(&actions), vec![]);
    assert_eq!(
        sends(&actions),
        vec![
            (f.a.clone(), want(&f.x, 1, 2)),
            (f.b.clone(), want(&f.x, 5, 6)),
        ]
    );
    assert_eq!(f.sync.stats().buffered, 3);
    f.sync.handle_frame(&f.a, batch(&f.x, [1, 2]), f.now);
    assert_eq!(
        ingests(&drain(&mut f.sync)),
        vec![
            (f.a.clone(), 1),
            (f.a.clone(), 2),
            (f.a.clone(), 3),
            (f.a.clone(), 4)
        ]
    );
    f.sync.handle_frame(&f.b, batch(&f.x, [5, 6]), f.now);
    assert_eq!(
        ingests(&drain(&mut f.sync)),
        vec![(f.b.clone(), 5), (f.b.clone(), 6), (f.b.clone(), 7)]
    );
    assert_eq!(f.sync.stats().buffered, 0);
    assert_eq!(
        f.sync.poll_timeout(),
        Some(f.now + Config::default().anti_entropy)
    );
}

#[test]
fn buffer_is_bounded_per_peer() {
    let config = Config {
        max_buffered: 2,
        ..Config::default()
    };
    let mut f = fixture(config, 0);
    f.sync.handle_frame(&f.a, batch(&f.x, [2, 3, 4, 5]), f.now);
    drain(&mut f.sync);
    let stats = f.sync.stats();
    assert_eq!((stats.buffered, stats.overflowed), (2, 2));
    f.sync.handle_frame(&f.a, batch(&f.x, [1]), f.now);
    // 1..=3 follow on; 4 and 5 were dropped and are asked for again.
    let actions = drain(&mut f.sync);
    assert_eq!(
        ingests(&actions),
        vec![(f.a.clone(), 1), (f.a.clone(), 2), (f.a.clone(), 3)]
    );
    assert_eq!(f.sync.stats().buffered, 0);
    f.sync
        .handle_timeout(f.now + Config::default().want_timeout);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&f.x, 4, 5))]
    );
}

#[test]
fn stored_envelopes_are_pushed_once_and_not_back() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, batch(&f.x, [1]), f.now);
    drain(&mut f.sync);
    f.sync
        .handle_stored(&f.x, 1, id(&f.x, 1), Some(&f.a), f.now);
    assert_eq!(
        drain(&mut f.sync),
        vec![Action::Push {
            peer: f.b.clone(),
            author: f.x.clone(),
            seq: 1,
            urgent: false
        }]
    );
    // Stored again (a replay): nothing more.
    f.sync
        .handle_stored(&f.x, 1, id(&f.x, 1), Some(&f.a), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    assert_eq!(f.sync.local_tip(&f.x), Some(tip(&f.x, 1)));
    // A local filing goes to both; an unsummarized peer gets a fresh
    // summary when its own arrives instead.
    let c = fp(0xC3);
    f.sync.handle_connected(c.clone(), f.now);
    drain(&mut f.sync);
    f.sync.handle_stored(&f.me, 1, id(&f.me, 1), None, f.now);
    let actions = drain(&mut f.sync);
    assert_eq!(actions.len(), 2);
    assert!(actions
        .iter()
        .all(|a| matches!(a, Action::Push { peer, .. } if *peer != c)));
    f.sync.handle_frame(&c, summary(&[]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(c.clone(), summary(&[(&f.x, 1), (&f.me, 1)]))]
    );
}

#[test]
fn push_carries_only_the_new_envelope() {
    let mut f = fixture(Config::default(), 10);
    // B says it holds 3 of X: it is catching up on its own.
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 3)]), f.now);
    drain(&mut f.sync);
    f.sync
        .handle_stored(&f.x, 11, id(&f.x, 11), Some(&f.a), f.now);
    assert_eq!(
        drain(&mut f.sync),
        vec![Action::Push {
            peer: f.b.clone(),
            author: f.x.clone(),
            seq: 11,
            urgent: false
        }]
    );
    let view = f.sync.peer(&f.b).unwrap();
    assert_eq!((view.sent, view.ahead), (1, 0));
}

#[test]
fn rejection_forgets_successors_and_asks_elsewhere() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 4)]), f.now);
    drain(&mut f.sync);
    f.sync.handle_frame(&f.a, batch(&f.x, [1, 2, 4]), f.now);
    f.sync.handle_frame(&f.b, batch(&f.x, [1]), f.now);
    drain(&mut f.sync);
    f.sync
        .handle_stored(&f.x, 1, id(&f.x, 1), Some(&f.a), f.now);
    drain(&mut f.sync);
    f.sync.handle_rejected(&f.a, &f.x, 2, f.now);
    // A's buffered 4 is gone; 2 is asked of B (3..=4 still are, from
    // B's summary).
    assert_eq!(f.sync.stats().buffered, 0);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.b.clone(), want(&f.x, 2, 2))]
    );
    f.sync.handle_frame(&f.b, batch(&f.x, [2, 3, 4]), f.now);
    assert_eq!(
        ingests(&drain(&mut f.sync)),
        vec![(f.b.clone(), 2), (f.b.clone(), 3), (f.b.clone(), 4)]
    );
    // The echo of the first rejection (3 failed for want of 2) and a
    // rejection for something never handed out change nothing.
    f.sync.handle_rejected(&f.a, &f.x, 3, f.now);
    f.sync.handle_rejected(&f.a, &f.x, 9, f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
}

#[test]
fn rejected_peer_is_not_asked_again_until_cooldown() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 3)]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&f.x, 1, 3))]
    );
    f.sync.handle_frame(&f.a, batch(&f.x, [1, 2, 3]), f.now);
    drain(&mut f.sync);
    f.sync.handle_rejected(&f.a, &f.x, 1, f.now);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 3)]), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    let cooldown = f.now + Config::default().want_timeout;
    assert_eq!(f.sync.poll_timeout(), Some(cooldown));
    f.sync.handle_timeout(cooldown);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&f.x, 1, 3))]
    );
}

#[test]
fn untrusted_authors_are_neither_asked_nor_ingested() {
    let mut f = fixture(Config::default(), 0);
    let stranger = fp(0x55);
    f.sync
        .handle_frame(&f.a, summary(&[(&stranger, 100)]), f.now);
    f.sync.handle_frame(&f.a, batch(&stranger, [1, 2]), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    assert_eq!(f.sync.peer(&f.a).unwrap().ignored, 2);
    assert_eq!(f.sync.peer(&f.a).unwrap().behind, 0);
    // Trusting it later asks the peer that said it holds it.
    let mut trusted = vec![f.me.clone(), f.a.clone(), f.b.clone(), f.x.clone()];
    trusted.push(stranger.clone());
    f.sync.set_trusted(trusted);
    assert_eq!(f.sync.poll_timeout(), Some(f.now));
    f.sync.handle_timeout(f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&stranger, 1, 100))]
    );
}

#[test]
fn distrusted_peer_is_disconnected_and_its_wants_move() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
    f.sync.handle_frame(&f.a, batch(&f.x, [3]), f.now);
    drain(&mut f.sync);
    assert_eq!(f.sync.stats().buffered, 1);
    f.sync.set_trusted([f.me.clone(), f.b.clone(), f.x.clone()]);
    assert_eq!(
        drain(&mut f.sync),
        vec![Action::Disconnect {
            peer: f.a.clone(),
            reason: "no longer trusted".into()
        }]
    );
    assert!(f.sync.peer(&f.a).is_none());
    assert_eq!(f.sync.stats().buffered, 0);
    f.sync.handle_timeout(f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.b.clone(), want(&f.x, 1, 5))]
    );
    // Frames from it are ignored now.
    f.sync.handle_frame(&f.a, batch(&f.x, [1]), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    // Distrusting an author drops what was asked or buffered of it.
    f.sync.handle_frame(&f.b, batch(&f.x, [4]), f.now);
    f.sync.set_trusted([f.me.clone(), f.b.clone()]);
    assert_eq!(f.sync.stats().buffered, 0);
    f.sync.handle_frame(&f.b, batch(&f.x, [1]), f.now);
    assert_eq!(drain(&mut f.sync), vec![]);
    assert_eq!(
        f.sync.poll_timeout(),
        Some(f.now + Config::default().anti_entropy)
    );
}

#[test]
fn disconnect_moves_wants_to_another_peer() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
    drain(&mut f.sync);
    f.sync.handle_disconnected(&f.a);
    assert_eq!(f.sync.poll_timeout(), Some(f.now));
    f.sync.handle_timeout(f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.b.clone(), want(&f.x, 1, 5))]
    );
}

#[test]
fn anti_entropy_sends_summaries_periodically() {
    let mut f = fixture(Config::default(), 3);
    let period = Config::default().anti_entropy;
    assert_eq!(f.sync.poll_timeout(), Some(f.now + period));
    f.sync.handle_timeout(f.now + period);
    let expected = summary(&[(&f.x, 3)]);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), expected.clone()), (f.b.clone(), expected)]
    );
    assert_eq!(f.sync.poll_timeout(), Some(f.now + period * 2));
}

#[test]
fn want_window_is_bounded_and_slides() {
    let config = Config {
        max_want_span: 10,
        max_wants_per_author: 2,
        ..Config::default()
    };
    let mut f = fixture(config, 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 100)]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![
            (f.a.clone(), want(&f.x, 1, 10)),
            (f.a.clone(), want(&f.x, 11, 20))
        ]
    );
    f.sync.handle_frame(&f.a, batch(&f.x, 1..=10), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&f.x, 21, 30))]
    );
}

#[test]
fn huge_seqs_do_not_overflow() {
    let mut f = fixture(Config::default(), 0);
    f.sync
        .handle_frame(&f.a, summary(&[(&f.x, u64::MAX)]), f.now);
    f.sync.handle_frame(&f.a, batch(&f.x, [u64::MAX]), f.now);
    f.sync
        .handle_frame(&f.a, want(&f.x, u64::MAX, u64::MAX), f.now);
    let actions = drain(&mut f.sync);
    assert_eq!(
        sends(&actions).len(),
        Config::default().max_wants_per_author
    );
    f.sync
        .handle_stored(&f.x, u64::MAX, id(&f.x, 1), None, f.now);
    f.sync.handle_frame(&f.a, batch(&f.x, [u64::MAX]), f.now);
    f.sync.handle_timeout(f.now + Duration::from_secs(3600));
    drain(&mut f.sync);
}

#[test]
fn uncovered_subtracts_wants_and_buffer() {
    let now = Instant::now();
    let mut state = Author::default();
    for (from, to) in [(5, 9), (20, 30)] {
        state.wants.push(Outstanding {
            peer: fp(1),
            from,
            to,
            deadline: now,
            limit: now,
        });
    }
    state.buffer.insert(
        12,
        Buffered {
            peer: fp(1),
            item: item(&fp(9), 12),
        },
    );
    assert_eq!(
        uncovered(&state, 1, 40),
        vec![(1, 4), (10, 11), (13, 19), (31, 40)]
    );
    assert_eq!(uncovered(&state, 5, 9), vec![]);
    assert_eq!(uncovered(&state, 25, 25), vec![]);
    assert_eq!(uncovered(&state, 2, 1), vec![]);
    assert_eq!(uncovered(&state, 31, u64::MAX), vec![(31, u64::MAX)]);
}

#[test]
fn pushes_do_not_keep_a_lost_want_alive() {
    let mut f = fixture(Config::default(), 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![(f.a.clone(), want(&f.x, 1, 5))]
    );
    // The Want was lost; A goes on pushing what it stores next.
    let timeout = Config::default().want_timeout;
    let later = f.now + timeout / 2;
    let push = Frame::Push {
        items: vec![item(&f.x, 6)],
    };
    f.sync.handle_frame(&f.a, push, later);
    drain(&mut f.sync);
    f.sync.handle_timeout(f.now + timeout);
    let asked = sends(&drain(&mut f.sync));
    assert!(
        asked.contains(&(f.b.clone(), want(&f.x, 1, 5))),
        "asked again of B: {asked:?}"
    );
}

#[test]
fn answers_keep_queued_wants_alive_up_to_their_limit() {
    let config = Config {
        max_want_span: 2,
        ..Config::default()
    };
    let mut f = fixture(config.clone(), 0);
    f.sync.handle_frame(&f.a, summary(&[(&f.x, 6)]), f.now);
    f.sync.handle_frame(&f.b, summary(&[(&f.x, 6)]), f.now);
    assert_eq!(
        sends(&drain(&mut f.sync)),
        vec![
            (f.a.clone(), want(&f.x, 1, 2)),
            (f.a.clone(), want(&f.x, 3, 4)),
            (f.a.clone(), want(&f.x, 5, 6)),
        ]
    );
    let timeout = config.want_timeout;
    // A answers the first Want slowly: the others wait behind it.
    let mut at = f.now;
    let mut seq = 1;
    while seq <= 2 {
        at += timeout / 2;
        f.sync.handle_frame(&f.a, batch(&f.x, [seq]), at);
        f.sync.handle_timeout(at);
        assert_eq!(sends(&drain(&mut f.sync)), vec![], "at seq {seq}");
        seq += 1;
    }
    // Then it stalls: 10 s later the rest goes to B.
    f.sync.handle_timeout(at + timeout);
    let asked = sends(&drain(&mut f.sync));
    assert!(
        asked.contains(&(f.b.clone(), want(&f.x, 3, 4))),
        "{asked:?}"
    );
}
