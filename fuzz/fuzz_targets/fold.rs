//! The fold over arbitrary envelope sequences: envelopes separated by a
//! 0xFF byte (never in UTF-8 JSON). Folding never panics, and the state
//! does not depend on the order the envelopes arrived in.
#![no_main]

use cer_proto::envelope::Envelope;
use cer_proto::incident::{FoldInput, IncidentState};
use cer_proto::EnvelopeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut inputs = Vec::new();
    for chunk in data.split(|b| *b == 0xff).take(64) {
        let Ok(envelope) = Envelope::parse(chunk) else {
            continue;
        };
        let body = envelope.plain_body().and_then(Result::ok);
        inputs.push(FoldInput::new(EnvelopeId::of(chunk), &envelope, body));
    }
    let Some(first) = inputs.first() else {
        return;
    };
    let subject = first.header.subject;
    let forward = IncidentState::fold(subject, &inputs);
    inputs.reverse();
    let backward = IncidentState::fold(subject, &inputs);
    assert_eq!(forward, backward, "the fold depends on arrival order");
});
