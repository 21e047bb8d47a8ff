//! Keyframe requests from subscribers reach the publisher, throttled per track.

mod harness;

use std::time::Duration;

use harness::{info, test_config, Net, PubTrack};
use strowger_sfu::str0m::media::{MediaKind, Mid};
use strowger_sfu::SfuConfig;

const MS: Duration = Duration::from_millis(1);

/// A publishes a camera, B subscribes; returns (net, a, b, a's video mid, b's mid for it).
fn setup(interval: Duration) -> (Net, usize, usize, Mid, Mid) {
    let mut net = Net::new(SfuConfig {
        keyframe_request_interval: interval,
        ..test_config()
    });
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    let vmid = net.publish(a, &[PubTrack::camera()]).unwrap()[0];
    net.wait_for("connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    let ida = net.id(a);
    let bmid = *net
        .client(b)
        .offered
        .iter()
        .find(|(_, t)| t.participant == ida && t.kind == MediaKind::Video)
        .expect("b was offered a's video")
        .0;
    (net, a, b, vmid, bmid)
}

/// Sends delta frames at 25 fps for `d`, calling `each` before every frame.
fn stream_video(net: &mut Net, a: usize, vmid: Mid, d: Duration, mut each: impl FnMut(&mut Net)) {
    let end = net.now + d;
    while net.now < end {
        each(net);
        net.send_video(a, vmid, false, 300);
        net.advance(40 * MS);
    }
}

fn requests_reaching_publisher(
    interval: Duration,
    window: Duration,
    ask_every: Duration,
) -> Vec<Duration> {
    let (mut net, a, b, vmid, bmid) = setup(interval);
    // A keyframe first, then let the start-up requests (subscriber connected) pass.
    net.send_video(a, vmid, true, 300);
    stream_video(&mut net, a, vmid, Duration::from_secs(1), |_| {});
    assert!(
        !net.client(b).received.is_empty(),
        "b receives a's video before asking for keyframes"
    );
    let quiet_from = net.now;
    stream_video(&mut net, a, vmid, Duration::from_secs(1), |_| {});
    let quiet: Vec<_> = net
        .client(a)
        .keyframe_requests
        .iter()
        .filter(|(t, _)| *t >= quiet_from)
        .collect();
    assert!(
        quiet.is_empty(),
        "no keyframe requests while nobody asks: {quiet:?}"
    );

    let from = net.now;
    let sfu_before = net.sfu.counters().keyframe_requests;
    let mut next_ask = net.now;
    stream_video(&mut net, a, vmid, window, |net| {
        while net.now >= next_ask {
            net.request_keyframe(b, bmid);
            next_ask += ask_every;
        }
    });
    // Let the last request travel.
    net.advance(50 * MS);
    let got: Vec<Duration> = net
        .client(a)
        .keyframe_requests
        .iter()
        .filter(|(t, _)| *t >= from)
        .map(|(t, r)| {
            assert_eq!(r.mid, vmid);
            assert_eq!(r.rid, None);
            *t - from
        })
        .collect();
    assert_eq!(
        net.sfu.counters().keyframe_requests - sfu_before,
        got.len() as u64,
        "every request the SFU counts reaches the publisher"
    );
    eprintln!("keyframe requests at the publisher: {got:?}");
    got
}

fn check_throttle(interval: Duration) {
    let window = Duration::from_secs(2);
    // The subscriber asks ten times per interval.
    let got = requests_reaching_publisher(interval, window, interval / 10);
    let most = (window.as_millis() / interval.as_millis()) as usize + 1;
    assert!(
        got.len() >= most - 1 && got.len() <= most,
        "{} requests reached the publisher in {window:?} with interval {interval:?}: {got:?}",
        got.len()
    );
    for w in got.windows(2) {
        // The SFU throttles on its own clock; arrival at the publisher may shift by a few ms.
        assert!(
            w[1] - w[0] + 15 * MS >= interval,
            "two requests {:?} apart (interval {interval:?}): {got:?}",
            w[1] - w[0]
        );
    }
}

#[test]
fn subscriber_keyframe_requests_are_throttled_to_one_per_interval() {
    check_throttle(Duration::from_millis(500));
}

#[test]
fn the_throttle_follows_the_configured_interval() {
    check_throttle(Duration::from_millis(200));
}

#[test]
fn an_occasional_request_goes_through_at_once() {
    let interval = Duration::from_millis(500);
    // One request per second: never throttled.
    let got = requests_reaching_publisher(interval, Duration::from_secs(3), Duration::from_secs(1));
    assert_eq!(got.len(), 3, "{got:?}");
    for (i, t) in got.iter().enumerate() {
        let asked = Duration::from_secs(i as u64);
        assert!(
            *t >= asked && *t < asked + 60 * MS,
            "request {i} arrived {t:?} after the start, asked at {asked:?}"
        );
    }
}
