//! Writes seeds for the fuzz targets that need real protocol bytes:
//! envelopes of every kind (`envelope_parse`), incidents as sequences of
//! envelopes (`fold`) and wire frames (`wire_decode`). Usage:
//! `cer-fuzz-seeds CORPUS_DIR` (fuzz/seed runs it).

use std::path::Path;

use cer_proto::envelope::{
    Body, Draft, DraftBody, IncidentBody, Kind, ReceiptBody, ReceiptState, RetractionBody,
    SightingBody, UpdateBody, Withdrawal,
};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Status, Tlp};
use cer_proto::wire::{Frame, Item, Tip, WireTombstone};
use cer_proto::{EnvelopeId, Fingerprint};

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: cer-fuzz-seeds CORPUS_DIR");
    let out = Path::new(&out);
    let author = Fingerprint::parse(&"AB".repeat(20)).unwrap();
    let other = Fingerprint::parse(&"CD".repeat(20)).unwrap();
    let subject = uuid::Uuid::from_u128(0x5eed);
    let created = "2026-11-28T13:00:00Z".parse().unwrap();
    let ip = Indicator::new(IndicatorType::Ipv4, "203.0.113.7").unwrap();
    let bodies = vec![
        Body::Incident(IncidentBody {
            title: "C2 server".into(),
            description: "seen twice".into(),
            severity: Severity::High,
            classification: Classification::parse("malicious-code/c2-server").unwrap(),
            status: Status::New,
            indicators: vec![
                ip.clone(),
                Indicator::new(IndicatorType::Domain, "c2.example").unwrap(),
            ],
            affected: Default::default(),
            occurred: None,
            detected: None,
            tags: vec!["botnet".into()],
            source: None,
        }),
        Body::Update(UpdateBody {
            status: Some(Status::Contained),
            severity: Some(Severity::Critical),
            title: None,
            description: None,
            classification: None,
            note: Some("blocked".into()),
            indicators: vec![Indicator::new(IndicatorType::Sha256, &"a".repeat(64)).unwrap()],
            tags: vec![],
        }),
        Body::Sighting(SightingBody {
            indicator: ip,
            seen: created,
            count: 3,
            comment: None,
            false_positive: false,
        }),
        Body::Receipt(ReceiptBody {
            target: EnvelopeId::of(b"first"),
            state: ReceiptState::Actioned,
            comment: Some("done".into()),
        }),
        Body::Retraction(RetractionBody {
            target: None,
            reason: Some("false positive".into()),
        }),
    ];
    let mut chain: Vec<Vec<u8>> = Vec::new();
    let mut prev = None;
    for (i, body) in bodies.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let withdraws = match body {
            Body::Retraction(_) => vec![Withdrawal {
                seq: 1,
                id: EnvelopeId::of(&chain[0]),
                kind: Kind::Incident,
                created,
            }],
            _ => vec![],
        };
        let draft = Draft {
            author: if i == 2 {
                other.clone()
            } else {
                author.clone()
            },
            seq,
            prev,
            created,
            subject,
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(body),
            withdraws,
        };
        let bytes = draft.to_bytes().unwrap();
        prev = Some(EnvelopeId::of(&bytes));
        write(out, "envelope_parse", &format!("kind-{i}"), &bytes);
        chain.push(bytes);
    }
    // The fold reads envelopes separated by 0xFF.
    write(out, "fold", "incident", &chain.join(&[0xff][..]));
    write(out, "fold", "incident-reversed", &{
        let mut reversed = chain.clone();
        reversed.reverse();
        reversed.join(&[0xff][..])
    });
    let frames = [
        Frame::Summary {
            tips: vec![Tip {
                author: author.clone(),
                seq: 5,
                id: EnvelopeId::of(&chain[4]),
            }],
        },
        Frame::Want {
            author: author.clone(),
            from: 1,
            to: 5,
        },
        Frame::Envelopes {
            items: vec![
                Item::Live {
                    bytes: chain[0].clone(),
                    sig: vec![0x88; 119],
                },
                Item::Tombstone(WireTombstone {
                    author: author.clone(),
                    seq: 1,
                    id: EnvelopeId::of(&chain[0]),
                    proof: chain[4].clone(),
                    proof_sig: vec![0x88; 119],
                }),
            ],
        },
        Frame::Push {
            items: vec![Item::Live {
                bytes: chain[1].clone(),
                sig: vec![0x88; 119],
            }],
        },
        Frame::Have {
            tips: vec![Tip {
                author: author.clone(),
                seq: 5,
                id: EnvelopeId::of(&chain[4]),
            }],
        },
        Frame::Prune,
        Frame::Graft,
        Frame::Auth {
            fingerprint: other,
            signature: vec![0x88; 119],
        },
        Frame::Goodbye {
            reason: "shutting down".into(),
        },
    ];
    for (i, frame) in frames.iter().enumerate() {
        write(out, "wire_decode", &format!("frame-{i}"), &frame.encode());
    }
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}
