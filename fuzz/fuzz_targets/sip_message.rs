//! Arbitrary bytes as a SIP datagram and as a stream frame: no panic; whatever parses serializes
//! and parses again, to the same meaning (Content-Length is rewritten at the end, so it is left
//! out of the comparison), and every accessor runs.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run sip_message -- -max_total_time=300
//! ```
//!
//! `crates/sip/tests/mutate.rs` checks the same property with seeded mutations in the ordinary
//! test run.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strowger_sip::{frame_len, multipart, HeaderName, Limits, Message, Response};

fn without_cl(m: &Message) -> Message {
    let mut m = m.clone();
    match &mut m {
        Message::Request(r) => r.headers.remove(&HeaderName::ContentLength),
        Message::Response(r) => r.headers.remove(&HeaderName::ContentLength),
    };
    m
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // Serialization may grow a message (canonical names, escapes, an added Content-Length).
    let relaxed = Limits {
        max_message: usize::MAX,
        max_headers: usize::MAX,
        max_line: usize::MAX,
    };
    if let Ok(Some(n)) = frame_len(data, &limits) {
        assert!(n <= data.len());
    }
    let headers_only = Message::parse_headers(Bytes::copy_from_slice(data), &limits);
    let Ok(m) = Message::parse(Bytes::copy_from_slice(data), &limits) else {
        if let Ok(h) = headers_only {
            let _ = Message::Response(Response::answering(&h, 400, "Bad Request", Some("t")))
                .to_bytes();
        }
        return;
    };
    // whatever parses as a message also parses as a header list, to the same headers
    assert_eq!(headers_only.as_ref().ok(), Some(m.headers()));
    match &m {
        Message::Request(r) => {
            let _ = (
                r.vias(),
                r.via_top(),
                r.from(),
                r.to(),
                r.call_id(),
                r.cseq(),
            );
            let _ = (
                r.contacts(),
                r.record_routes(),
                r.content_type(),
                r.routes(),
            );
            let _ = (
                r.max_forwards(),
                r.contact_star(),
                r.expires(),
                r.validate(),
            );
            let _ = Message::Response(r.response(180, "Ringing", Some("t"))).to_bytes();
            if let Some(ct) = r.headers.get(&HeaderName::ContentType) {
                let _ = multipart::split(&r.body, ct, 16);
            }
        }
        Message::Response(r) => {
            let _ = (
                r.vias(),
                r.via_top(),
                r.from(),
                r.to(),
                r.call_id(),
                r.cseq(),
            );
            let _ = (r.contacts(), r.record_routes(), r.content_type());
        }
    }
    let out = m.to_bytes();
    let again =
        Message::parse(Bytes::from(out.clone()), &relaxed).expect("serialized message re-parses");
    assert_eq!(without_cl(&again), without_cl(&m));
    assert_eq!(frame_len(&out, &relaxed), Ok(Some(out.len())));
});
