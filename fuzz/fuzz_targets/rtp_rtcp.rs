//! Arbitrary bytes as an RTP packet and as a compound RTCP datagram: no panic, and whatever
//! parses writes back and parses to the same value.
//!
//! Run (stable toolchain, libFuzzer needs the nightly-only sanitizer flag):
//!
//! ```sh
//! cargo install cargo-fuzz
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run rtp_rtcp -- -max_total_time=300
//! ```
//!
//! `crates/media/tests/parser_robustness.rs` checks the same property with seeded mutations in
//! the ordinary test run.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strowger_media::{rtcp, rtp::RtpPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        let b = p.to_builder();
        let bytes = b.to_vec().expect("a parsed RTP packet writes back");
        let again = RtpPacket::parse(&bytes).expect("written RTP parses");
        assert_eq!(again.to_builder(), b);
    }
    for p in rtcp::iter_compound(data) {
        let _ = p;
    }
    if let Ok(packets) = rtcp::parse_compound(data) {
        let mut bytes = Vec::new();
        rtcp::write_compound(&packets, &mut bytes).expect("parsed RTCP writes back");
        assert_eq!(rtcp::parse_compound(&bytes).expect("written RTCP parses"), packets);
    }
});
