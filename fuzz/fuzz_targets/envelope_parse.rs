//! An envelope's bytes from a peer: parse and shape checks never panic; a
//! parsed envelope's place (author, seq) is what the sync machine's quick
//! look reads too, and its body, if plain, is typed and validated.
#![no_main]

use cer_proto::envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peeked = Envelope::peek_place(data);
    let Ok(envelope) = Envelope::parse(data) else {
        return;
    };
    let header = envelope.header();
    let (author, seq) = peeked.expect("a parsed envelope has a place");
    assert_eq!(author, header.author);
    assert_eq!(seq, header.seq);
    let _ = envelope.check_follows(None);
    if let Some(Ok(body)) = envelope.plain_body() {
        let _ = body.validate();
        let _ = body.to_value();
    }
});
