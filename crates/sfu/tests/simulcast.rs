//! Simulcast: one layer per subscriber, chosen by the size it asks for, switched on keyframes.

mod harness;

use std::time::{Duration, Instant};

use harness::{info, test_config, Net, PubTrack, VideoFrame, FRAME_TICKS};
use strowger_sfu::str0m::media::{MediaKind, Mid};
use strowger_sfu::{Notice, TrackId};

const MS: Duration = Duration::from_millis(1);
const RIDS: [&str; 3] = ["q", "h", "f"];
/// Bytes per frame of each layer (kept small: the bandwidth estimate must never decide here).
const SIZES: [usize; 3] = [60, 120, 240];
/// Each layer runs on its own RTP clock, as separate encoders may: a forwarder that does not
/// rewrite media time would jump on every switch.
const TIME_BASES: [u64; 3] = [9_000_000, 4_500_000, 90_000];

/// A fake simulcast encoder: a keyframe at start, then only when asked and allowed.
struct Encoder {
    mid: Mid,
    /// Answer keyframe requests for this layer.
    honor: [bool; 3],
    pending: [bool; 3],
    seen_requests: usize,
    started: bool,
}

impl Encoder {
    fn new(mid: Mid) -> Encoder {
        Encoder {
            mid,
            honor: [true; 3],
            pending: [false; 3],
            seen_requests: 0,
            started: false,
        }
    }

    /// One 25 fps tick: take in keyframe requests, send a frame on every layer, advance 40 ms.
    fn tick(&mut self, net: &mut Net, a: usize) {
        let reqs = &net.client(a).keyframe_requests;
        for (_, r) in &reqs[self.seen_requests..] {
            assert_eq!(r.mid, self.mid);
            let li = r
                .rid
                .map(|rid| RIDS.iter().position(|x| **x == *rid).expect("known rid"))
                .expect("simulcast keyframe requests name a rid");
            self.pending[li] = true;
        }
        self.seen_requests = reqs.len();
        for (li, rid) in RIDS.iter().enumerate() {
            let key = !self.started || (self.pending[li] && self.honor[li]);
            if key {
                self.pending[li] = false;
            }
            net.send_frame(
                a,
                self.mid,
                VideoFrame {
                    rid: Some(rid),
                    keyframe: key,
                    layer: li as u8,
                    size: SIZES[li],
                    time_base: TIME_BASES[li],
                },
            );
        }
        self.started = true;
        net.advance(40 * MS);
    }

    fn run(&mut self, net: &mut Net, a: usize, d: Duration) {
        let end = net.now + d;
        while net.now < end {
            self.tick(net, a);
        }
    }
}

/// (source layer, keyframe, media time, arrival) of every video frame b received since `from`.
fn layers_since(net: &Net, b: usize, from: Instant) -> Vec<(u8, bool, u64, Instant)> {
    let ida = net.id(0);
    net.client(b)
        .received_from(ida, MediaKind::Video)
        .into_iter()
        .filter(|r| r.at >= from)
        .map(|r| (r.data[1], r.keyframe, r.time.numer(), r.at))
        .collect()
}

fn setup() -> (Net, usize, usize, Encoder, TrackId) {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    let mid = net
        .publish(a, &[PubTrack::simulcast_camera(&RIDS, 1280)])
        .unwrap()[0];
    net.wait_for("connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    let ida = net.id(a);
    let published = net
        .client(b)
        .notices_matching(|n| matches!(n, Notice::TrackPublished(p, _) if *p == ida))
        .next()
        .cloned();
    let Some(Notice::TrackPublished(_, summary)) = published else {
        panic!("b was told about a's camera");
    };
    assert!(summary.simulcast, "published with simulcast: {summary:?}");
    (net, a, b, Encoder::new(mid), summary.id)
}

#[test]
fn a_small_subscription_gets_the_low_layer_and_switches_up_on_a_keyframe() {
    let (mut net, a, b, mut enc, track) = setup();
    let idb = net.id(b);

    // b wants a thumbnail before any media flows.
    let now = net.now;
    net.sfu
        .set_subscription(now, idb, track, Some(320), false)
        .unwrap();
    let t0 = net.now;
    enc.run(&mut net, a, Duration::from_millis(1500));
    let got = layers_since(&net, b, t0);
    assert!(
        got.len() >= 20,
        "b receives the thumbnail: {} frames",
        got.len()
    );
    assert!(
        got.iter().all(|g| g.0 == 0),
        "only layer q (320 px) reaches a 320 px subscription: {:?}",
        got.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    assert!(got[0].1, "the first forwarded frame is a keyframe");
    assert_eq!(net.sfu.counters().layer_switches, 1);

    // b now wants full size; a's encoder is slow to produce the keyframe of f.
    enc.honor[2] = false;
    let requests_before = net.client(a).keyframe_requests.len();
    let t1 = net.now;
    net.sfu
        .set_subscription(t1, idb, track, None, false)
        .unwrap();
    enc.run(&mut net, a, Duration::from_millis(600));
    let asked_f = net.client(a).keyframe_requests[requests_before..]
        .iter()
        .any(|(_, r)| r.rid.as_deref() == Some("f"));
    assert!(asked_f, "the SFU asks a for a keyframe of f");
    let waiting = layers_since(&net, b, t1);
    assert!(waiting.len() >= 10, "b keeps receiving while waiting");
    assert!(
        waiting.iter().all(|g| g.0 == 0),
        "no switch before f's keyframe: {:?}",
        waiting.iter().map(|g| g.0).collect::<Vec<_>>()
    );

    // The keyframe of f comes: b switches to f at that frame and gets nothing of q after it.
    enc.honor[2] = true;
    enc.pending[2] = true;
    let t2 = net.now;
    enc.run(&mut net, a, Duration::from_millis(600));
    let after = layers_since(&net, b, t2);
    let first_f = after
        .iter()
        .position(|g| g.0 == 2)
        .expect("b receives layer f after its keyframe");
    assert!(after[first_f].1, "the first frame of f is its keyframe");
    assert!(
        after[first_f..].iter().all(|g| g.0 == 2),
        "after the switch only f: {:?}",
        after.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    assert!(after[first_f..].len() >= 10);
    assert_eq!(net.sfu.counters().layer_switches, 2);

    // b's media time never goes back, and the switch costs about one frame of time, not the
    // distance between the layers' clocks.
    let all = layers_since(&net, b, t0);
    for w in all.windows(2) {
        let (prev, next) = (w[0].2, w[1].2);
        assert!(
            next > prev,
            "media time went from {prev} to {next} (layers {} -> {})",
            w[0].0,
            w[1].0
        );
        assert!(
            next - prev <= 3 * FRAME_TICKS,
            "media time jumped {} ticks (layers {} -> {})",
            next - prev,
            w[0].0,
            w[1].0
        );
    }
}

#[test]
fn a_lower_limit_switches_down_on_the_lower_layers_keyframe() {
    let (mut net, a, b, mut enc, track) = setup();
    let idb = net.id(b);
    // Unlimited: b gets f.
    let t0 = net.now;
    enc.run(&mut net, a, Duration::from_millis(1000));
    let got = layers_since(&net, b, t0);
    assert!(
        got.last().is_some_and(|g| g.0 == 2),
        "an unlimited subscription gets f: {:?}",
        got.iter().map(|g| g.0).collect::<Vec<_>>()
    );

    // 640 px: h.
    let t1 = net.now;
    net.sfu
        .set_subscription(t1, idb, track, Some(640), false)
        .unwrap();
    enc.run(&mut net, a, Duration::from_millis(600));
    let after = layers_since(&net, b, t1);
    let first_h = after
        .iter()
        .position(|g| g.0 == 1)
        .expect("b switches to h");
    assert!(after[first_h].1, "on h's keyframe");
    assert!(after[..first_h].iter().all(|g| g.0 == 2));
    assert!(after[first_h..].iter().all(|g| g.0 == 1));

    // Paused: nothing at all; resumed: frames again.
    let t2 = net.now;
    net.sfu
        .set_subscription(t2, idb, track, Some(640), true)
        .unwrap();
    enc.run(&mut net, a, Duration::from_millis(400));
    // Frames already in flight may still land in the first few ms.
    let paused = layers_since(&net, b, t2 + 20 * MS);
    assert!(paused.is_empty(), "paused, yet received {paused:?}");
    let t3 = net.now;
    net.sfu
        .set_subscription(t3, idb, track, Some(640), false)
        .unwrap();
    enc.run(&mut net, a, Duration::from_millis(400));
    let resumed = layers_since(&net, b, t3);
    assert!(resumed.len() >= 5, "resumed: {resumed:?}");
    assert!(resumed.iter().all(|g| g.0 == 1));
}
