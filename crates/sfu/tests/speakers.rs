//! Active speakers from the audio-level header extension.

mod harness;

use std::time::{Duration, Instant};

use harness::{info, test_config, Net, PubTrack};
use strowger_sfu::{Notice, ParticipantId, Source};

const MS: Duration = Duration::from_millis(1);

fn speaker_lists(net: &Net, c: usize, since: Instant) -> Vec<Vec<ParticipantId>> {
    net.client(c)
        .notices
        .iter()
        .filter(|(t, _)| *t >= since)
        .filter_map(|(_, n)| match n {
            Notice::ActiveSpeakers(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// A and C publish microphones, B only listens.
fn setup() -> (
    Net,
    usize,
    usize,
    usize,
    [strowger_sfu::str0m::media::Mid; 2],
) {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    let c = net.join("r", info("c")).unwrap();
    let am = net.publish(a, &[PubTrack::mic()]).unwrap()[0];
    let cm = net.publish(c, &[PubTrack::mic()]).unwrap()[0];
    net.wait_for("publishers connected", |n| {
        n.client(a).publisher.connected && n.client(c).publisher.connected
    });
    (net, a, b, c, [am, cm])
}

/// 20 ms audio from A and C at the given levels (None: A sends nothing) for `d`.
fn talk(
    net: &mut Net,
    a: usize,
    c: usize,
    mids: [strowger_sfu::str0m::media::Mid; 2],
    levels: (Option<i8>, i8),
    d: Duration,
) {
    let end = net.now + d;
    while net.now < end {
        if let Some(l) = levels.0 {
            net.send_audio(a, mids[0], Some(l));
        }
        net.send_audio(c, mids[1], Some(levels.1));
        net.advance(20 * MS);
    }
}

#[test]
fn the_loud_participant_is_the_active_speaker_and_the_quiet_one_is_not() {
    let (mut net, a, b, c, mids) = setup();
    let (ida, idc) = (net.id(a), net.id(c));
    let t0 = net.now;
    talk(
        &mut net,
        a,
        c,
        mids,
        (Some(-20), -100),
        Duration::from_millis(1500),
    );

    let lists = speaker_lists(&net, b, t0);
    assert_eq!(
        lists.last(),
        Some(&vec![ida]),
        "b's speaker lists: {lists:?}"
    );
    assert!(
        lists.iter().all(|l| !l.contains(&idc)),
        "c at -100 dBov never speaks: {lists:?}"
    );
    // Everyone in the room hears the same, each change once.
    for who in [a, c] {
        assert_eq!(speaker_lists(&net, who, t0), lists);
    }
    assert_eq!(lists.len(), 1, "announced once while it does not change");

    // C gets louder than A: both speak, loudest first.
    let t1 = net.now;
    talk(
        &mut net,
        a,
        c,
        mids,
        (Some(-30), -10),
        Duration::from_millis(2000),
    );
    let lists = speaker_lists(&net, b, t1);
    assert_eq!(lists.last(), Some(&vec![idc, ida]), "{lists:?}");

    // A stops sending (DTX, or left the mic): only C remains.
    let t2 = net.now;
    talk(
        &mut net,
        a,
        c,
        mids,
        (None, -10),
        Duration::from_millis(1500),
    );
    let lists = speaker_lists(&net, b, t2);
    assert_eq!(lists.last(), Some(&vec![idc]), "{lists:?}");
}

#[test]
fn announcements_are_rate_limited() {
    let (mut net, a, b, c, mids) = setup();
    let t0 = net.now;
    // Both speak; A wavers around C's level, so who is loudest flips every few packets.
    let end = net.now + Duration::from_secs(3);
    let mut i = 0u64;
    while net.now < end {
        let louder = (i / 3).is_multiple_of(2);
        net.send_audio(a, mids[0], Some(if louder { -5 } else { -17 }));
        net.send_audio(c, mids[1], Some(-11));
        net.advance(20 * MS);
        i += 1;
    }
    let times: Vec<Instant> = net
        .client(b)
        .notices
        .iter()
        .filter(|(t, n)| *t >= t0 && matches!(n, Notice::ActiveSpeakers(_)))
        .map(|(t, _)| *t)
        .collect();
    let interval = net.sfu.config().speaker_interval;
    assert!(
        times.len() >= 4,
        "the order keeps changing, so it is announced repeatedly: {} times",
        times.len()
    );
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= interval,
            "two announcements {:?} apart",
            w[1] - w[0]
        );
    }
}

#[test]
fn a_muted_microphone_does_not_make_a_speaker() {
    let (mut net, a, b, c, mids) = setup();
    let ida = net.id(a);
    talk(
        &mut net,
        a,
        c,
        mids,
        (Some(-20), -100),
        Duration::from_millis(1000),
    );
    assert_eq!(speaker_lists(&net, b, net.start).last(), Some(&vec![ida]));
    net.sfu.set_muted(ida, Source::Microphone, true).unwrap();
    net.pump();
    assert!(net
        .client(b)
        .notices_matching(|n| matches!(n, Notice::TrackMuted(p, _, true) if *p == ida))
        .next()
        .is_some());
    let t1 = net.now;
    // Still sending loud packets (a client that only signalled the mute).
    talk(
        &mut net,
        a,
        c,
        mids,
        (Some(-20), -100),
        Duration::from_millis(1500),
    );
    let lists = speaker_lists(&net, b, t1);
    assert_eq!(lists.last(), Some(&vec![]), "muted: {lists:?}");
}
