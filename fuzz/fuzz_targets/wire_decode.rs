//! A mesh frame from a peer: decoding never panics, and whatever decodes
//! encodes back to bytes that decode to the same frame.
#![no_main]

use cer_proto::wire::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let bytes = frame.encode();
    assert_eq!(bytes.len(), frame.encoded_len());
    let again = Frame::decode(&bytes).expect("an encoded frame decodes");
    assert_eq!(again, frame);
});
