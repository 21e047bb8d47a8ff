//! Property test: 100,000 mutations of valid messages (bit flips, truncation, byte insertion,
//! duplicated and deleted lines). The parser must never panic; when a mutant parses, every
//! accessor must run without panicking, and serialize → parse must succeed and keep the meaning.

use bytes::Bytes;
use strowger_sip::{frame_len, multipart, HeaderName, Limits, Message};

/// xorshift64* — small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SEEDS: &[&str] = &[
    "REGISTER sip:registrar.biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.com>\r\nFrom: Bob <sip:bob@biloxi.com>;tag=456248\r\nCall-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\nContact: <sip:bob@192.0.2.4>;expires=3600, \"Bob, mobile\" <sip:bob@[2001:db8::4]:5062;transport=tcp>\r\nExpires: 7200\r\nContent-Length: 0\r\n\r\n",
    "INVITE sip:bob@biloxi.com;user=phone?Subject=hi%20there SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=[2001:db8::9]\r\nv: SIP/2.0/TCP a.example.com:5060;branch=z9hG4bK1, SIP/2.0/TLS b.example.com;branch=z9hG4bK2\r\nMax-Forwards: 70\r\nTo: \"Bob \\\"B\\\"\" <sip:bob@biloxi.com>\r\nf: Alice <sips:alice:pw@atlanta.com>;tag=1928301774\r\ni: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\nm: <sip:alice@pc33.atlanta.com>\r\nRoute: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\nRecord-Route: <sip:p3.example.com;lr>\r\nSubject: folded\r\n  over two lines\r\nDate: Sat, 15 Oct 2005 04:44:56 GMT\r\nc: application/sdp\r\nl: 31\r\n\r\nv=0\r\no=- 0 0 IN IP4 192.0.2.1\r\n",
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3\r\nVia: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1\r\nTo: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContact: <tel:+1-201-555-0123;phone-context=example.com>\r\nContent-Length: 0\r\n\r\n",
    "MESSAGE sip:kumiko@example.org SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\nTo: <sip:kumiko@example.org>\nFrom: <sip:fluffy@example.com>;tag=2fb0dcc9\nCall-ID: 3d9485ad0c49859b\nCSeq: 1 MESSAGE\nContent-Type: multipart/mixed;boundary=7a9c\nContent-Length: 74\n\n--7a9c\nContent-Type: text/plain\n\nHello\n--7a9c\nContent-Type: text/plain\n\nWorld\n--7a9c--\n",
];

const INTERESTING: &[u8] = b":;,=\"<>@[]%\\ \t\r\n?&/0123456789";

fn mutate(rng: &mut Rng, msg: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let op = rng.below(7);
        match op {
            0 => {
                // bit flip
                if !msg.is_empty() {
                    let i = rng.below(msg.len());
                    msg[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                // truncation
                let n = rng.below(msg.len() + 1);
                msg.truncate(n);
            }
            2 => {
                // insert an interesting byte
                let i = rng.below(msg.len() + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                msg.insert(i, b);
            }
            3 => {
                // insert a random byte
                let i = rng.below(msg.len() + 1);
                msg.insert(i, rng.next() as u8);
            }
            4 | 5 => {
                // duplicate (4) or delete (5) a whole line
                let lines: Vec<usize> = std::iter::once(0)
                    .chain(
                        msg.iter()
                            .enumerate()
                            .filter(|(_, &c)| c == b'\n')
                            .map(|(i, _)| i + 1),
                    )
                    .filter(|&i| i < msg.len())
                    .collect();
                if lines.is_empty() {
                    continue;
                }
                let k = rng.below(lines.len());
                let start = lines[k];
                let end = lines.get(k + 1).copied().unwrap_or(msg.len());
                let line: Vec<u8> = msg[start..end].to_vec();
                if op == 5 || line.len() > 2000 {
                    msg.drain(start..end);
                } else {
                    let at = lines[rng.below(lines.len())];
                    msg.splice(at..at, line);
                }
            }
            _ => {
                // overwrite a byte with an interesting one
                if !msg.is_empty() {
                    let i = rng.below(msg.len());
                    msg[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
        }
    }
}

fn without_cl(m: &Message) -> Message {
    let mut m = m.clone();
    match &mut m {
        Message::Request(r) => r.headers.remove(&HeaderName::ContentLength),
        Message::Response(r) => r.headers.remove(&HeaderName::ContentLength),
    };
    m
}

/// Exercises every accessor; returns nothing, must not panic.
fn touch(m: &Message) {
    match m {
        Message::Request(r) => {
            let _ = (
                r.vias(),
                r.via_top(),
                r.from(),
                r.to(),
                r.call_id(),
                r.cseq(),
            );
            let _ = (r.contacts(), r.record_routes(), r.content_type());
            let _ = (r.max_forwards(), r.routes(), r.contact_star(), r.expires());
            let _ = r.validate();
            let resp = r.response(200, "OK", Some("tag1"));
            let _ = Message::Response(resp).to_bytes();
            let _ = r.uri.to_string();
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
}

#[test]
fn mutated_messages_never_panic_and_round_trip() {
    let limits = Limits::default();
    // Serialization may grow a message (canonical names, escapes, an added Content-Length):
    // re-parse without the size limits.
    let relaxed = Limits {
        max_message: usize::MAX,
        max_headers: usize::MAX,
        max_line: usize::MAX,
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut err) = (0u32, 0u32);
    for i in 0..100_000u32 {
        let seed = SEEDS[i as usize % SEEDS.len()];
        let mut msg = seed.as_bytes().to_vec();
        mutate(&mut rng, &mut msg);
        let _ = frame_len(&msg, &limits);
        match Message::parse(Bytes::from(msg.clone()), &limits) {
            Ok(m) => {
                ok += 1;
                touch(&m);
                let out = m.to_bytes();
                let again =
                    Message::parse(Bytes::from(out.clone()), &relaxed).unwrap_or_else(|e| {
                        panic!(
                            "re-parse failed: {e:?}\ninput: {:?}\noutput: {:?}",
                            String::from_utf8_lossy(&msg),
                            String::from_utf8_lossy(&out)
                        )
                    });
                assert_eq!(
                    without_cl(&again),
                    without_cl(&m),
                    "meaning changed\ninput: {:?}",
                    String::from_utf8_lossy(&msg)
                );
                assert_eq!(frame_len(&out, &relaxed), Ok(Some(out.len())));
            }
            Err(_) => err += 1,
        }
    }
    println!("parsed {ok}, rejected {err}");
    // the mutations must leave a fair share parseable, or the test exercises little
    assert!(ok > 10_000, "ok={ok} err={err}");
    assert!(err > 10_000, "ok={ok} err={err}");
}
