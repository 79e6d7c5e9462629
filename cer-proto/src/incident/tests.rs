use super::*;
use crate::envelope::{RetractionBody, SightingBody, UpdateBody};

fn fpr(c: char) -> Fingerprint {
    Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
}

fn input(n: u8, author: char, seq: u64, minute: u8, body: Body) -> FoldInput {
    FoldInput {
        id: EnvelopeId::of(&[n]),
        header: Header {
            author: fpr(author),
            seq,
            subject: Uuid::nil(),
            kind: body.kind(),
            created: format!("2026-11-28T13:{minute:02}:00Z").parse().unwrap(),
            tlp: Tlp::Green,
            recipients: vec![],
        },
        body: Some(body),
    }
}

fn filed() -> Body {
    Body::Incident(IncidentBody {
        title: "C2 server".into(),
        description: String::new(),
        severity: Severity::High,
        classification: Classification::parse("malicious-code/c2-server").unwrap(),
        status: Status::New,
        indicators: vec![Indicator::parse_spec("ipv4:203.0.113.7").unwrap()],
        affected: Affected::default(),
        occurred: None,
        detected: None,
        tags: vec![],
        source: None,
    })
}

fn update(status: Status, note: &str) -> Body {
    Body::Update(UpdateBody {
        status: Some(status),
        note: Some(note.into()),
        ..UpdateBody::default()
    })
}

#[test]
fn fold_is_independent_of_arrival_order() {
    let a = vec![
        input(1, 'A', 1, 0, filed()),
        input(
            2,
            'A',
            2,
            5,
            update(Status::Contained, "takedown requested"),
        ),
        input(
            3,
            'B',
            1,
            7,
            Body::Sighting(SightingBody {
                indicator: Indicator::parse_spec("ipv4:203.0.113.7").unwrap(),
                seen: "2026-11-28T13:06:00Z".parse().unwrap(),
                count: 3,
                comment: None,
                false_positive: false,
            }),
        ),
    ];
    let mut b = a.clone();
    b.reverse();
    let sa = IncidentState::fold(Uuid::nil(), &a).unwrap();
    let sb = IncidentState::fold(Uuid::nil(), &b).unwrap();
    assert_eq!(sa, sb);
    let content = sa.content.as_ref().unwrap();
    assert_eq!(content.status, Status::Contained);
    assert_eq!(sa.indicators.len(), 1);
    assert_eq!(sa.indicators[0].sightings, 3);
    assert_eq!(sa.indicators[0].reported_by, vec![fpr('A'), fpr('B')]);
    assert_eq!(sa.timeline.len(), 3);
}

#[test]
fn only_the_author_changes_fields() {
    let inputs = vec![
        input(1, 'A', 1, 0, filed()),
        input(2, 'B', 1, 5, update(Status::Closed, "we think it's done")),
    ];
    let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    assert_eq!(state.content.unwrap().status, Status::New);
    match &state.timeline[1].event {
        Event::Updated { ignored, note, .. } => {
            assert_eq!(ignored.len(), 1);
            assert_eq!(note.as_deref(), Some("we think it's done"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn retraction_before_the_incident_still_retracts() {
    let retraction = Body::Retraction(RetractionBody {
        target: None,
        reason: Some("false positive".into()),
    });
    let inputs = vec![
        input(9, 'A', 2, 9, retraction),
        input(1, 'A', 1, 0, filed()),
    ];
    let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    assert!(state.retracted.is_some());
    assert!(state.indicators.is_empty());
    assert_eq!(state.display_title(), "(retracted)");
}

#[test]
fn a_third_party_cannot_retract() {
    let retraction = Body::Retraction(RetractionBody {
        target: None,
        reason: None,
    });
    let inputs = vec![
        input(1, 'A', 1, 0, filed()),
        input(9, 'B', 1, 9, retraction),
    ];
    let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    assert!(state.retracted.is_none());
    assert_eq!(state.indicators.len(), 1);
}

#[test]
fn unreadable_body_is_shown_as_encrypted() {
    let mut only = input(1, 'A', 1, 0, filed());
    only.body = None;
    let state = IncidentState::fold(Uuid::nil(), &[only]).unwrap();
    assert!(!state.readable);
    assert_eq!(state.display_title(), "(encrypted)");
    assert_eq!(state.timeline[0].event, Event::Encrypted);
}

/// Applying envelopes one at a time, each after the last, gives what
/// folding them all at once gives.
#[test]
fn apply_next_matches_the_whole_fold() {
    let sighting = |n: u8, author: char, minute: u8, spec: &str| {
        input(
            n,
            author,
            n as u64,
            minute,
            Body::Sighting(SightingBody {
                indicator: Indicator::parse_spec(spec).unwrap(),
                seen: format!("2026-11-28T13:{minute:02}:30Z").parse().unwrap(),
                count: 2,
                comment: None,
                false_positive: false,
            }),
        )
    };
    let with_iocs = |n: u8, minute: u8, specs: &[&str]| {
        input(
            n,
            'A',
            n as u64,
            minute,
            Body::Update(UpdateBody {
                severity: Some(Severity::Critical),
                indicators: specs
                    .iter()
                    .map(|s| Indicator::parse_spec(s).unwrap())
                    .collect(),
                ..UpdateBody::default()
            }),
        )
    };
    let inputs = vec![
        input(1, 'A', 1, 0, filed()),
        with_iocs(2, 2, &["domain:a.example", "ipv4:203.0.113.7"]),
        sighting(3, 'B', 3, "ipv4:203.0.113.7"),
        sighting(4, 'C', 4, "domain:new.example"),
        input(5, 'B', 5, 5, update(Status::Closed, "not the author")),
        with_iocs(6, 6, &["domain:new.example"]),
    ];
    let mut state = IncidentState::fold(Uuid::nil(), &inputs[..1]).unwrap();
    let mut table = Indicators::default();
    for entry in std::mem::take(&mut state.indicators) {
        table
            .index
            .insert((entry.kind, entry.value.clone()), table.entries.len());
        table.entries.push(entry);
    }
    for next in &inputs[1..] {
        assert!(state.apply_next(next, &mut table), "{:?}", next.header.kind);
    }
    state.indicators = table.entries;
    assert_eq!(state, IncidentState::fold(Uuid::nil(), &inputs).unwrap());

    // What could change the past takes a whole fold.
    let mut state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    let mut table = Indicators::default();
    let early = sighting(7, 'B', 1, "ipv4:203.0.113.7");
    assert!(!state.apply_next(&early, &mut table));
    let retraction = input(
        8,
        'A',
        8,
        9,
        Body::Retraction(RetractionBody {
            target: None,
            reason: None,
        }),
    );
    assert!(!state.apply_next(&retraction, &mut table));
    assert_eq!(state, IncidentState::fold(Uuid::nil(), &inputs).unwrap());
}

fn labelled(mut input: FoldInput, tlp: Tlp) -> FoldInput {
    input.header.tlp = tlp;
    input
}

fn with_iocs(note: &str, specs: &[&str]) -> Body {
    Body::Update(UpdateBody {
        note: Some(note.into()),
        indicators: specs
            .iter()
            .map(|s| Indicator::parse_spec(s).unwrap())
            .collect(),
        ..UpdateBody::default()
    })
}

fn sighting_of(spec: &str, minute: u8) -> Body {
    Body::Sighting(SightingBody {
        indicator: Indicator::parse_spec(spec).unwrap(),
        seen: format!("2026-11-28T13:{minute:02}:30Z").parse().unwrap(),
        count: 1,
        comment: None,
        false_positive: false,
    })
}

fn indicator<'s>(state: &'s IncidentState, value: &str) -> &'s IndicatorEntry {
    state
        .indicators
        .iter()
        .find(|i| i.value == value)
        .unwrap_or_else(|| panic!("{value} not in {:?}", state.indicators))
}

/// An AMBER update on a GREEN incident: its timeline entry says AMBER, the
/// indicator it adds is AMBER, and an indicator the GREEN filing named
/// stays GREEN while its details now gather AMBER ones.
#[test]
fn entries_record_the_tlp_of_their_envelopes() {
    let inputs = vec![
        input(1, 'A', 1, 0, filed()),
        labelled(
            input(
                2,
                'A',
                2,
                5,
                with_iocs(
                    "actor attribution",
                    &["ipv4:198.51.100.9", "ipv4:203.0.113.7"],
                ),
            ),
            Tlp::Amber,
        ),
        input(3, 'B', 1, 7, sighting_of("ipv4:203.0.113.7", 7)),
    ];
    let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    assert_eq!(state.tlp, Tlp::Green);
    let labels: Vec<Tlp> = state.timeline.iter().map(|e| e.label(state.tlp)).collect();
    assert_eq!(labels, [Tlp::Green, Tlp::Amber, Tlp::Green]);
    // Entries at the incident's label carry none of their own.
    assert_eq!(state.timeline[0].tlp, None);
    assert_eq!(state.timeline[1].tlp, Some(Tlp::Amber));

    let named_green = indicator(&state, "203.0.113.7");
    assert_eq!(named_green.tlp, None);
    assert_eq!(named_green.tlp_range(state.tlp), (Tlp::Green, Tlp::Amber));
    let added_amber = indicator(&state, "198.51.100.9");
    assert_eq!(added_amber.tlp_range(state.tlp), (Tlp::Amber, Tlp::Amber));

    // A GREEN sighting shares the AMBER indicator at GREEN from then on.
    let mut more = inputs.clone();
    more.push(input(4, 'B', 2, 9, sighting_of("ipv4:198.51.100.9", 9)));
    let state = IncidentState::fold(Uuid::nil(), &more).unwrap();
    assert_eq!(
        indicator(&state, "198.51.100.9").tlp_range(state.tlp),
        (Tlp::Green, Tlp::Amber)
    );

    // The labels survive the JSON the store and the API use.
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["timeline"][1]["tlp"], "amber");
    assert!(json["timeline"][0].get("tlp").is_none());
    let back: IncidentState = serde_json::from_value(json).unwrap();
    assert_eq!(back, state);
}

#[test]
fn an_envelope_above_the_incident_tlp_changes_no_field() {
    let update = Body::Update(UpdateBody {
        status: Some(Status::Closed),
        tags: vec!["apt".into()],
        note: Some("closed for the AMBER circle".into()),
        ..UpdateBody::default()
    });
    let inputs = vec![
        input(1, 'A', 1, 0, filed()),
        labelled(input(2, 'A', 2, 5, update.clone()), Tlp::Amber),
    ];
    let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    let content = state.content.as_ref().unwrap();
    assert_eq!(content.status, Status::New);
    assert!(content.tags.is_empty());
    match &state.timeline[1].event {
        Event::Updated {
            changes,
            ignored,
            note,
            ..
        } => {
            assert!(changes.is_empty(), "{changes:?}");
            assert_eq!(
                ignored,
                &["field changes and tags in a TLP:AMBER envelope on a TLP:GREEN incident"]
            );
            assert_eq!(note.as_deref(), Some("closed for the AMBER circle"));
        }
        other => panic!("unexpected {other:?}"),
    }

    // At the incident's own label (or below it) the same update applies.
    let inputs = vec![input(1, 'A', 1, 0, filed()), input(2, 'A', 2, 5, update)];
    let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
    let content = state.content.as_ref().unwrap();
    assert_eq!(content.status, Status::Closed);
    assert_eq!(content.tags, ["apt"]);
}

/// Once the incident is retracted, a node still holding an AMBER update
/// and one holding only its tombstone (which carries the retraction's
/// label) fold the same timeline.
#[test]
fn a_withdrawn_entry_is_labelled_alike_live_or_tombstoned() {
    let retraction = input(
        9,
        'A',
        3,
        9,
        Body::Retraction(RetractionBody {
            target: None,
            reason: None,
        }),
    );
    let amber = labelled(input(2, 'A', 2, 5, with_iocs("n", &[])), Tlp::Amber);
    let mut tombstone = amber.clone();
    tombstone.header.tlp = Tlp::Green;
    tombstone.body = None;
    let live = IncidentState::fold(
        Uuid::nil(),
        &[input(1, 'A', 1, 0, filed()), amber, retraction.clone()],
    )
    .unwrap();
    let gone = IncidentState::fold(
        Uuid::nil(),
        &[input(1, 'A', 1, 0, filed()), tombstone, retraction],
    )
    .unwrap();
    assert_eq!(live, gone);
    assert_eq!(live.timeline[1].event, Event::Withdrawn);
    assert_eq!(live.timeline[1].tlp, None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const TLPS: [Tlp; 4] = [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::Red];
    const POOL: [&str; 4] = [
        "ipv4:203.0.113.7",
        "ipv4:198.51.100.9",
        "domain:c2.example",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ];

    /// (author, minute, tlp, sighting or update, indicators named)
    type Step = (usize, u8, usize, bool, Vec<usize>);

    fn inputs(filing_tlp: usize, steps: &[Step]) -> Vec<FoldInput> {
        let mut out = vec![labelled(input(0, 'A', 1, 0, filed()), TLPS[filing_tlp])];
        let mut seqs = [1u64, 0, 0];
        for (n, (author, minute, tlp, sighting, iocs)) in steps.iter().enumerate() {
            seqs[*author] += 1;
            let specs: Vec<&str> = iocs.iter().map(|i| POOL[*i]).collect();
            let body = match (sighting, specs.first()) {
                (true, Some(spec)) => sighting_of(spec, *minute),
                _ => with_iocs("n", &specs),
            };
            let who = ['A', 'B', 'C'][*author];
            let step = input(n as u8 + 1, who, seqs[*author], *minute, body);
            out.push(labelled(step, TLPS[*tlp]));
        }
        out
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            0usize..3,
            1u8..50,
            0usize..TLPS.len(),
            any::<bool>(),
            proptest::collection::vec(0usize..POOL.len(), 0..3),
        )
    }

    proptest! {
        /// With envelopes under mixed labels, the fold still ignores
        /// arrival order, and applying them one at a time gives what the
        /// whole fold gives.
        #[test]
        fn labels_keep_the_fold_order_independent_and_incremental(
            filing_tlp in 0usize..TLPS.len(),
            steps in proptest::collection::vec(step(), 0..12),
            seed in any::<u64>(),
        ) {
            let inputs = inputs(filing_tlp, &steps);
            let whole = IncidentState::fold(Uuid::nil(), &inputs).unwrap();

            let mut shuffled = inputs.clone();
            let mut rng = seed;
            for i in (1..shuffled.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (rng >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(&IncidentState::fold(Uuid::nil(), &shuffled).unwrap(), &whole);

            let mut sorted: Vec<&FoldInput> = inputs.iter().collect();
            sorted.sort_by_key(|i| (i.header.created, i.header.author.clone(), i.header.seq, i.id));
            let mut state = IncidentState::fold(Uuid::nil(), &inputs[..1]).unwrap();
            let mut table = Indicators::default();
            for entry in std::mem::take(&mut state.indicators) {
                table.index.insert((entry.kind, entry.value.clone()), table.entries.len());
                table.entries.push(entry);
            }
            for next in sorted.into_iter().filter(|i| i.header.kind != Kind::Incident) {
                prop_assert!(state.apply_next(next, &mut table));
            }
            state.indicators = table.entries;
            prop_assert_eq!(&state, &whole);
        }
    }
}
