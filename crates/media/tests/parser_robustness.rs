//! Bounded property test of the RTP and RTCP parsers: seeded random and mutated datagrams must
//! parse or fail without panicking, and whatever parses must write back and parse to the same
//! value. The same property as `fuzz/fuzz_targets/rtp_rtcp.rs`, deterministic so it runs in CI.

use std::time::{Duration, Instant};

use strowger_media::rtcp::{self, RtcpPacket};
use strowger_media::rtp::{OwnedExtension, RtpBuilder, RtpPacket, StreamRewriter, TimestampGap};
use strowger_media::stats::{round_trip_time, ReceiverStats};

const ITERATIONS: u32 = 200_000;

/// xorshift64* (Vigna): small, seeded, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn rtp_seeds() -> Vec<Vec<u8>> {
    let base = RtpBuilder {
        marker: true,
        payload_type: 0,
        sequence_number: 65535,
        timestamp: 160,
        ssrc: 0x1234_5678,
        payload: vec![0xD5; 160],
        ..Default::default()
    };
    let variants = [
        base.clone(),
        RtpBuilder {
            csrc: vec![1, 2, 3],
            padding: 4,
            ..base.clone()
        },
        RtpBuilder {
            extension: Some(OwnedExtension::OneByte(vec![
                (1, vec![0x80]),
                (5, vec![1, 2, 3]),
            ])),
            ..base.clone()
        },
        RtpBuilder {
            extension: Some(OwnedExtension::TwoByte {
                appbits: 0,
                elements: vec![(1, vec![]), (250, vec![7; 20])],
            }),
            padding: 1,
            ..base.clone()
        },
        RtpBuilder {
            extension: Some(OwnedExtension::Raw {
                profile: 0xABAC,
                data: vec![1; 8],
            }),
            ..base
        },
    ];
    variants.iter().map(|b| b.to_vec().unwrap()).collect()
}

fn rtcp_seed() -> Vec<u8> {
    let block = rtcp::ReportBlock {
        ssrc: 2,
        fraction_lost: 3,
        cumulative_lost: -4,
        highest_seq: 70000,
        jitter: 12,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 100,
    };
    let packets = [
        RtcpPacket::SenderReport(rtcp::SenderReport {
            ssrc: 1,
            ntp_time: 1 << 40,
            rtp_time: 5,
            packet_count: 6,
            octet_count: 7,
            reports: vec![block],
            extension: vec![],
        }),
        RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
            ssrc: 1,
            reports: vec![block, block],
            extension: vec![0; 4],
        }),
        RtcpPacket::SourceDescription(vec![rtcp::SdesChunk {
            ssrc: 1,
            items: vec![rtcp::SdesItem {
                kind: rtcp::sdes_type::CNAME,
                value: b"x@y".to_vec(),
            }],
        }]),
        RtcpPacket::Bye(rtcp::Bye {
            sources: vec![1],
            reason: Some(b"bye".to_vec()),
        }),
        RtcpPacket::App(rtcp::App {
            subtype: 1,
            ssrc: 1,
            name: *b"TEST",
            data: vec![1, 2, 3, 4],
        }),
        RtcpPacket::ExtendedReport(rtcp::ExtendedReport {
            ssrc: 1,
            blocks: vec![
                rtcp::XrBlock::ReceiverReferenceTime { ntp_time: 99 },
                rtcp::XrBlock::Dlrr(vec![rtcp::DlrrItem::default(); 2]),
                rtcp::XrBlock::VoipMetrics(rtcp::VoipMetrics {
                    signal_level: -30,
                    ..Default::default()
                }),
            ],
        }),
        RtcpPacket::Unknown {
            packet_type: 206,
            count: 1,
            body: vec![0; 8],
        },
    ];
    let mut out = Vec::new();
    rtcp::write_compound(&packets, &mut out).unwrap();
    out
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            2 => {
                let n = rng.below(data.len() + 1);
                data.truncate(n);
            }
            3 => {
                for _ in 0..rng.below(8) {
                    data.push(rng.next() as u8);
                }
            }
            4 if !data.is_empty() => {
                // Interesting values in length and count fields.
                let i = rng.below(data.len());
                data[i] = [0, 1, 0x0F, 0x1F, 0x7F, 0x80, 0xFF][rng.below(7)];
            }
            _ => {
                let i = rng.below(data.len() + 1);
                data.insert(i, rng.next() as u8);
            }
        }
    }
}

fn check(data: &[u8], rw: &mut StreamRewriter, stats: &mut ReceiverStats, now: Instant) {
    if let Ok(p) = RtpPacket::parse(data) {
        let b = p.to_builder();
        let bytes = b.to_vec().expect("a parsed RTP packet writes back");
        let again = RtpPacket::parse(&bytes).expect("written RTP parses");
        assert_eq!(again.to_builder(), b);
        if let Some(ext) = p.extension {
            let _ = ext.elements().count();
        }
        stats.on_packet(now, p.sequence_number, p.timestamp);
        let mut copy = data.to_vec();
        rw.rewrite_packet(now, &mut copy, true).unwrap();
    }
    for p in rtcp::iter_compound(data).flatten() {
        if let RtcpPacket::ReceiverReport(rr) = &p {
            for b in &rr.reports {
                let _ = round_trip_time(b, u64::from_le_bytes([data[0]; 8]));
            }
        }
    }
    if let Ok(packets) = rtcp::parse_compound(data) {
        let mut bytes = Vec::new();
        rtcp::write_compound(&packets, &mut bytes).expect("parsed RTCP writes back");
        assert_eq!(
            rtcp::parse_compound(&bytes).expect("written RTCP parses"),
            packets
        );
    }
}

#[test]
fn random_and_mutated_datagrams() {
    let mut rng = Rng(0x5EED_0F57_0E6E_1234);
    let rtp = rtp_seeds();
    let rtcp = rtcp_seed();
    let t0 = Instant::now();
    let mut rw = StreamRewriter::new(1, 8000, TimestampGap::Wallclock);
    let mut stats = ReceiverStats::new(1, 8000);
    let (mut rtp_ok, mut rtcp_ok) = (0u32, 0u32);
    for i in 0..ITERATIONS {
        let mut data = if rng.below(4) == 0 {
            let len = rng.below(300);
            (0..len).map(|_| rng.next() as u8).collect()
        } else if rng.below(2) == 0 {
            rtcp.clone()
        } else {
            rtp[rng.below(rtp.len())].clone()
        };
        mutate(&mut rng, &mut data);
        // Random bytes start as RTP/RTCP version 2 half the time so they get past the first check.
        if !data.is_empty() && rng.below(2) == 0 {
            data[0] = (data[0] & 0x3F) | 0x80;
        }
        rtp_ok += u32::from(RtpPacket::parse(&data).is_ok());
        rtcp_ok += u32::from(rtcp::parse_compound(&data).is_ok());
        let now = t0 + Duration::from_millis(u64::from(i) * 20 + rng.below(40) as u64);
        check(&data, &mut rw, &mut stats, now);
    }
    // The mutations must reach past the parsers' first checks, or this tests little.
    assert!(rtp_ok > ITERATIONS / 10, "only {rtp_ok} RTP parsed");
    assert!(rtcp_ok > ITERATIONS / 20, "only {rtcp_ok} RTCP parsed");
    eprintln!("{ITERATIONS} datagrams: {rtp_ok} parsed as RTP, {rtcp_ok} as compound RTCP");
    let _ = stats.report_block(t0);
}
