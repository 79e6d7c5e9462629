//! The sync state machine driven by arbitrary peers: connections, frames
//! (decoded from fuzzed bytes, or built from fuzzed fields), stored and
//! rejected items, time passing. It never panics, and what it asks of the
//! driver stays bounded: a range it asks to send is one the store holds,
//! a Want spans at most the configured window, a summary lists at most
//! the trusted authors, and one event yields a bounded number of actions.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use cer_proto::envelope::ChainTip;
use cer_proto::sync::{Action, Config, Sync};
use cer_proto::wire::{Frame, Item, Tip};
use cer_proto::{EnvelopeId, Fingerprint};
use libfuzzer_sys::fuzz_target;

const PEERS: u8 = 3;
const AUTHORS: u8 = 4;

#[derive(Debug, Arbitrary)]
enum Op {
    Connect(u8),
    Disconnect(u8),
    /// Bytes from the wire, as the peer sent them.
    Raw {
        peer: u8,
        bytes: Vec<u8>,
    },
    Summary {
        peer: u8,
        tips: Vec<(u8, u16)>,
    },
    Want {
        peer: u8,
        author: u8,
        from: u64,
        to: u64,
    },
    /// Items naming (author, seq), as a peer would send them: asked for,
    /// or pushed.
    Items {
        peer: u8,
        items: Vec<(u8, u16, bool)>,
        pushed: bool,
    },
    /// A lazy peer's announcement.
    Have {
        peer: u8,
        tips: Vec<(u8, u16)>,
    },
    /// A peer asks for a link mode: eager (Graft) or lazy (Prune).
    Mode {
        peer: u8,
        eager: bool,
    },
    /// The store holds the author's next envelope (from a peer, or filed).
    Stored {
        author: u8,
        from: Option<u8>,
    },
    Rejected {
        peer: u8,
        author: u8,
        seq: u16,
    },
    Trust {
        authors: Vec<u8>,
    },
    Advance {
        millis: u16,
    },
}

fn fingerprint(n: u8) -> Fingerprint {
    Fingerprint::from_raw(&[n.wrapping_add(1); 20])
}

fn peer(n: u8) -> Fingerprint {
    fingerprint(100 + n % PEERS)
}

fn author(n: u8) -> Fingerprint {
    fingerprint(n % AUTHORS)
}

fn id(author: &Fingerprint, seq: u64) -> EnvelopeId {
    let mut bytes = author.as_bytes().to_vec();
    bytes.extend_from_slice(&seq.to_be_bytes());
    EnvelopeId::of(&bytes)
}

fn to_tips(tips: Vec<(u8, u16)>) -> Vec<Tip> {
    tips.into_iter()
        .take(16)
        .map(|(a, seq)| {
            let author = author(a);
            let id = id(&author, seq.into());
            Tip {
                author,
                seq: seq.into(),
                id,
            }
        })
        .collect()
}

fuzz_target!(|ops: Vec<Op>| {
    let config = Config {
        max_want_span: 64,
        max_buffered: 32,
        max_wants_per_author: 4,
        ..Config::default()
    };
    let span = config.max_want_span;
    let mut trusted: Vec<Fingerprint> = (0..AUTHORS).map(author).collect();
    trusted.extend((0..PEERS).map(peer));
    // What the store holds: each author's contiguous tip.
    let mut store: BTreeMap<Fingerprint, u64> = BTreeMap::new();
    store.insert(author(0), 3);
    let tips = store.iter().map(|(a, seq)| {
        (
            a.clone(),
            ChainTip {
                seq: *seq,
                id: id(a, *seq),
            },
        )
    });
    let mut sync = Sync::new(config, tips, trusted.clone());
    let mut now = Instant::now();
    for op in ops.into_iter().take(256) {
        match op {
            Op::Connect(p) => sync.handle_connected(peer(p), now),
            Op::Disconnect(p) => sync.handle_disconnected(&peer(p)),
            Op::Raw { peer: p, bytes } => {
                if let Ok(frame) = Frame::decode(&bytes) {
                    sync.handle_frame(&peer(p), frame, now);
                }
            }
            Op::Summary { peer: p, tips } => {
                sync.handle_frame(&peer(p), Frame::Summary { tips: to_tips(tips) }, now);
            }
            Op::Have { peer: p, tips } => {
                sync.handle_frame(&peer(p), Frame::Have { tips: to_tips(tips) }, now);
            }
            Op::Mode { peer: p, eager } => {
                let frame = if eager { Frame::Graft } else { Frame::Prune };
                sync.handle_frame(&peer(p), frame, now);
            }
            Op::Want {
                peer: p,
                author: a,
                from,
                to,
            } => {
                sync.handle_frame(
                    &peer(p),
                    Frame::Want {
                        author: author(a),
                        from,
                        to,
                    },
                    now,
                );
            }
            Op::Items {
                peer: p,
                items,
                pushed,
            } => {
                let items = items
                    .into_iter()
                    .take(64)
                    .map(|(a, seq, tombstone)| {
                        let author = author(a);
                        let seq = u64::from(seq);
                        if tombstone {
                            Item::Tombstone(cer_proto::wire::WireTombstone {
                                author: author.clone(),
                                seq,
                                id: id(&author, seq),
                                proof: Vec::new(),
                                proof_sig: Vec::new(),
                            })
                        } else {
                            let bytes =
                                format!(r#"{{"author":"{author}","seq":{seq}}}"#).into_bytes();
                            Item::Live {
                                bytes,
                                sig: Vec::new(),
                            }
                        }
                    })
                    .collect();
                let frame = if pushed {
                    Frame::Push { items }
                } else {
                    Frame::Envelopes { items }
                };
                sync.handle_frame(&peer(p), frame, now);
            }
            Op::Stored { author: a, from } => {
                let author = author(a);
                let tip = store.entry(author.clone()).or_default();
                *tip += 1;
                let seq = *tip;
                let from = from.map(peer);
                sync.handle_stored(&author, seq, id(&author, seq), from.as_ref(), now);
            }
            Op::Rejected {
                peer: p,
                author: a,
                seq,
            } => {
                sync.handle_rejected(&peer(p), &author(a), seq.into(), now);
            }
            Op::Trust { authors } => {
                let mut set: Vec<Fingerprint> = authors.into_iter().take(8).map(author).collect();
                set.extend((0..PEERS).map(peer));
                trusted = set.clone();
                sync.set_trusted(set);
            }
            Op::Advance { millis } => {
                now += Duration::from_millis(millis.into()) * 50;
                sync.handle_timeout(now);
            }
        }
        if let Some(at) = sync.poll_timeout() {
            assert!(
                at <= now + Duration::from_secs(3600),
                "a timeout an hour away"
            );
        }
        let mut actions = 0;
        while let Some(action) = sync.poll_action() {
            actions += 1;
            assert!(actions <= 4096, "one event gave more than 4096 actions");
            match action {
                Action::Push { author, seq, .. } => {
                    let held = store.get(&author).copied().unwrap_or(0);
                    assert!(1 <= seq && seq <= held, "push of {author} {seq}, held {held}");
                }
                Action::Send {
                    frame: Frame::Have { tips },
                    ..
                } => {
                    for tip in tips {
                        let held = store.get(&tip.author).copied().unwrap_or(0);
                        assert!(tip.seq <= held, "Have of {} {}, held {held}", tip.author, tip.seq);
                    }
                }
                Action::SendRange {
                    author, from, to, ..
                } => {
                    let held = store.get(&author).copied().unwrap_or(0);
                    assert!(
                        1 <= from && from <= to && to <= held,
                        "{author} {from}..={to}, held {held}"
                    );
                }
                Action::Send {
                    frame: Frame::Want { from, to, .. },
                    ..
                } => {
                    assert!(
                        1 <= from && from <= to && to - from < span,
                        "Want {from}..={to}"
                    );
                }
                Action::Send {
                    frame: Frame::Summary { tips },
                    ..
                } => {
                    assert!(tips.len() <= trusted.len() + store.len());
                }
                _ => {}
            }
        }
    }
});
