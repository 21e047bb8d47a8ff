//! Whatever arrives on the shared port, the SFU neither panics nor lets it disturb sessions.

mod harness;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use harness::{info, test_config, Net, PubTrack};
use strowger_sfu::demux;
use strowger_sfu::str0m::media::{MediaKind, Mid};
use strowger_sfu::SfuEvent;

const MS: Duration = Duration::from_millis(1);
const COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A STUN binding request with one USERNAME attribute and nothing else (no integrity).
fn stun_request(username: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username);
    while !attrs.len().is_multiple_of(4) {
        attrs.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&COOKIE);
    m.extend_from_slice(&rng.bytes(12));
    m.extend_from_slice(&attrs);
    m
}

/// One random datagram of a random class.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(24) as usize,
        1 => rng.below(200) as usize,
        _ => rng.below(1500) as usize,
    };
    let mut d = rng.bytes(len);
    if d.is_empty() {
        return d;
    }
    match rng.below(6) {
        // STUN-looking: right first byte and cookie, random attributes.
        0 if d.len() >= 20 => {
            d[0] = rng.below(2) as u8;
            d[4..8].copy_from_slice(&COOKIE);
            let l = (d.len() - 20) as u16;
            d[2..4].copy_from_slice(&l.to_be_bytes());
        }
        // STUN with a USERNAME naming nobody.
        1 => {
            let user = format!("nobody{}:x", rng.below(1000));
            d = stun_request(user.as_bytes(), rng);
        }
        // DTLS record.
        2 => d[0] = 20 + rng.below(44) as u8,
        // RTP / RTCP.
        3 => d[0] = 128 + rng.below(64) as u8,
        _ => {}
    }
    d
}

fn is_stun(d: &[u8]) -> bool {
    d.len() >= 20 && d[0] < 2 && d[4..8] == COOKIE
}

/// A publishing, B subscribed, media flowing.
fn live() -> (Net, usize, usize, Mid, Mid) {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    let vmid = net.publish(a, &[PubTrack::camera()]).unwrap()[0];
    net.wait_for("connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    net.send_video(a, vmid, true, 500);
    net.advance(40 * MS);
    let ida = net.id(a);
    let bmid = *net
        .client(b)
        .offered
        .iter()
        .find(|(_, t)| t.participant == ida && t.kind == MediaKind::Video)
        .unwrap()
        .0;
    (net, a, b, vmid, bmid)
}

/// Media still flows from a to b, and b's keyframe requests still reach a.
fn assert_session_healthy(net: &mut Net, a: usize, b: usize, vmid: Mid, bmid: Mid) {
    // Past any keyframe throttle from earlier requests.
    net.advance(Duration::from_secs(1));
    let before = net.client(b).received.len();
    let kf_before = net.client(a).keyframe_requests.len();
    net.request_keyframe(b, bmid);
    for _ in 0..10 {
        net.send_video(a, vmid, false, 500);
        net.advance(40 * MS);
    }
    let got = net.client(b).received.len() - before;
    assert!(got >= 9, "b received {got} of 10 frames");
    assert!(
        net.client(a).keyframe_requests.len() > kf_before,
        "b's keyframe request reached a"
    );
    assert_eq!(net.sfu.gauges(), (1, 2, 1));
    let removed: Vec<_> = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, SfuEvent::Removed(..)))
        .collect();
    assert!(removed.is_empty(), "{removed:?}");
}

#[test]
fn garbage_from_unknown_addresses_is_counted_and_dropped() {
    let (mut net, a, b, vmid, bmid) = live();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let before = net.sfu.counters().clone();
    let n = 3000;
    for i in 0..n {
        let from = SocketAddr::from(([172, 16, (i / 250) as u8, (i % 250) as u8], 40_000));
        let d = garbage(&mut rng);
        net.inject(from, &d);
    }
    let after = net.sfu.counters();
    assert_eq!(after.rx_packets - before.rx_packets, n as u64);
    assert_eq!(
        after.rx_unmatched - before.rx_unmatched,
        n as u64,
        "every datagram from a stranger is unmatched"
    );
    assert_session_healthy(&mut net, a, b, vmid, bmid);
}

#[test]
fn truncated_stun_never_panics() {
    let (mut net, a, b, vmid, bmid) = live();
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for c in [a, b] {
        for p in [&net.client(c).publisher, &net.client(c).subscriber] {
            if let Some(s) = p.sent.iter().find(|d| is_stun(d)) {
                samples.push(s.clone());
            }
        }
    }
    assert!(samples.len() >= 2, "captured real STUN requests");
    let stranger = SocketAddr::from(([203, 0, 113, 9], 5555));
    for s in &samples {
        let before = net.sfu.counters().rx_unmatched;
        for len in 0..s.len() {
            net.inject(stranger, &s[..len]);
        }
        // No prefix is a STUN message str0m could take: each is dropped and counted.
        assert_eq!(
            net.sfu.counters().rx_unmatched - before,
            s.len() as u64,
            "prefixes of a {}-byte STUN request",
            s.len()
        );
        // Flipped bits and a lying length field, from a stranger.
        let mut rng = Rng(s.len() as u64 + 7);
        for _ in 0..200 {
            let mut m = s.clone();
            let i = rng.below(m.len() as u64) as usize;
            m[i] ^= 1 << rng.below(8);
            if rng.below(4) == 0 {
                m[2] = rng.next() as u8;
                m[3] = rng.next() as u8;
            }
            net.inject(stranger, &m);
        }
    }
    assert_session_healthy(&mut net, a, b, vmid, bmid);
}

#[test]
fn garbage_from_a_participants_own_address_does_not_break_its_session() {
    let (mut net, a, b, vmid, bmid) = live();
    let mut rng = Rng(0xfeed_beef_0000_0042);
    let targets = [net.client(a).publisher.addr, net.client(b).subscriber.addr];
    let mut expected_unmatched = 0u64;
    let before = net.sfu.counters().rx_unmatched;
    for i in 0..2000 {
        let from = targets[i % 2];
        let d = garbage(&mut rng);
        // Datagrams of no WebRTC class cannot be handed to a session.
        let classless = d.is_empty()
            || !(d[0] < 2 && d.len() >= 20
                || (20..64).contains(&d[0])
                || ((128..192).contains(&d[0]) && d.len() > 2));
        // STUN naming an unknown ufrag is nobody's, whatever its source.
        let foreign_stun = demux::stun_local_ufrag(&d).is_some_and(|u| u.starts_with("nobody"));
        if classless || foreign_stun {
            expected_unmatched += 1;
        }
        net.inject(from, &d);
        if i % 100 == 0 {
            // Let the real traffic interleave.
            net.advance(5 * MS);
        }
    }
    let unmatched = net.sfu.counters().rx_unmatched - before;
    assert!(
        unmatched >= expected_unmatched,
        "{unmatched} unmatched, expected at least {expected_unmatched}"
    );
    assert_session_healthy(&mut net, a, b, vmid, bmid);
}

/// Reads the USERNAME of a STUN request.
fn stun_username(d: &[u8]) -> Option<String> {
    let mut pos = 20;
    while pos + 4 <= d.len() {
        let typ = u16::from_be_bytes([d[pos], d[pos + 1]]);
        let len = u16::from_be_bytes([d[pos + 2], d[pos + 3]]) as usize;
        let body = d.get(pos + 4..pos + 4 + len)?;
        if typ == 0x0006 {
            return String::from_utf8(body.to_vec()).ok();
        }
        pos += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// The SFU's ufrag of one session, read from a STUN request the client sent to it.
fn server_ufrag(sent: &[Vec<u8>]) -> String {
    let user = sent
        .iter()
        .find(|d| is_stun(d))
        .and_then(|d| stun_username(d))
        .expect("the client sent a STUN request");
    user.split(':').next().unwrap().to_string()
}

/// b asks for a keyframe (SRTCP from b's subscriber address); true if a gets the request.
fn keyframe_request_gets_through(net: &mut Net, a: usize, b: usize, vmid: Mid, bmid: Mid) -> bool {
    let before = net.client(a).keyframe_requests.len();
    net.request_keyframe(b, bmid);
    for _ in 0..5 {
        net.send_video(a, vmid, false, 500);
        net.advance(40 * MS);
    }
    net.client(a).keyframe_requests.len() > before
}

/// A STUN request that fails its integrity check must not move an address to another session:
/// a client knows its own session's ufrag, and anyone on the path sees every ufrag in clear.
#[test]
fn a_forged_stun_request_does_not_reroute_a_participants_traffic() {
    let (mut net, a, b, vmid, bmid) = live();
    let a_ufrag = server_ufrag(&net.client(a).publisher.sent);
    // From b's subscriber address, naming a's publisher session, without integrity.
    let forged = stun_request(format!("{a_ufrag}:forged").as_bytes(), &mut Rng(99));
    net.advance(Duration::from_secs(1));
    assert!(
        keyframe_request_gets_through(&mut net, a, b, vmid, bmid),
        "control: b's keyframe request reaches a"
    );
    // Past the keyframe throttle.
    net.advance(Duration::from_secs(1));
    let b_addr = net.client(b).subscriber.addr;
    net.inject(b_addr, &forged);
    assert!(
        keyframe_request_gets_through(&mut net, a, b, vmid, bmid),
        "b's request was lost after a forged STUN from its address"
    );
}

/// Same root cause, no spoofing needed: unauthenticated requests naming b's session from four
/// other addresses push b's real address out of the session's address list.
#[test]
fn forged_stun_requests_from_elsewhere_do_not_evict_a_participants_address() {
    let (mut net, a, b, vmid, bmid) = live();
    let b_ufrag = server_ufrag(&net.client(b).subscriber.sent);
    net.advance(Duration::from_secs(1));
    assert!(
        keyframe_request_gets_through(&mut net, a, b, vmid, bmid),
        "control: b's keyframe request reaches a"
    );
    net.advance(Duration::from_secs(1));
    let mut rng = Rng(7);
    for i in 0..4u8 {
        let forged = stun_request(format!("{b_ufrag}:forged").as_bytes(), &mut rng);
        net.inject(SocketAddr::from(([198, 51, 100, i + 1], 6000)), &forged);
    }
    assert!(
        keyframe_request_gets_through(&mut net, a, b, vmid, bmid),
        "b's request was lost after forged STUN naming its session"
    );
}

/// With zero network delay str0m's bandwidth estimator re-arms its timer at `now` (its RTT is 0),
/// and `Sfu::handle_timeout` keeps re-running that connection at the same instant forever.
/// Runs in a thread so a hang fails the test instead of blocking the suite.
#[test]
fn a_zero_latency_network_does_not_hang_the_sfu() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut net = Net::new(test_config());
        net.latency = Duration::ZERO;
        let a = net.join("r", info("a")).unwrap();
        let b = net.join("r", info("b")).unwrap();
        let mids = net
            .publish(a, &[PubTrack::mic(), PubTrack::camera()])
            .unwrap();
        net.wait_for("connected", |n| {
            n.client(a).publisher.connected && n.client(b).subscriber.connected
        });
        for i in 0..100 {
            net.send_audio(a, mids[0], Some(-30));
            net.send_video(a, mids[1], i == 0, 500);
            net.advance(20 * MS);
        }
        let _ = tx.send(net.client(b).received.len());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(n) => assert!(n > 100, "{n} frames received"),
        Err(_) => panic!("the SFU did not come back from handle_timeout within 10 s"),
    }
}
