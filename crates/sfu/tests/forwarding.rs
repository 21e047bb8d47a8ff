//! Media published by one participant reaches the others, byte for byte.

mod harness;

use std::time::Duration;

use harness::{info, test_config, Net, PubTrack};
use strowger_sfu::str0m::media::MediaKind;
use strowger_sfu::{Notice, Source};

const MS: Duration = Duration::from_millis(1);

#[test]
fn audio_and_video_reach_the_other_participant() {
    let mut net = Net::new(test_config());
    let a = net.join("room", info("alice")).unwrap();
    let b = net.join("room", info("bob")).unwrap();
    let (ida, idb) = (net.id(a), net.id(b));
    assert!(
        net.client(a)
            .notices_matching(|n| matches!(n, Notice::ParticipantJoined(s) if s.id == idb))
            .count()
            == 1,
        "alice is told bob joined"
    );

    let mids = net
        .publish(a, &[PubTrack::mic(), PubTrack::camera()])
        .unwrap();
    let (amid, vmid) = (mids[0], mids[1]);
    // str0m announces the publisher's m-lines once its connection is up.
    net.run_while_not(Duration::from_secs(5), 10 * MS, |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });

    // Bob is told about both tracks and offered both, with the right sources.
    let published: Vec<_> = net
        .client(b)
        .notices_matching(|n| matches!(n, Notice::TrackPublished(..)))
        .cloned()
        .collect();
    assert_eq!(published.len(), 2, "{published:?}");
    let offers = net.client(b).subscribe_offers();
    assert_eq!(offers.len(), 1, "one subscribe offer for both tracks");
    let tracks = &offers[0].1;
    assert_eq!(tracks.len(), 2);
    let audio = tracks.iter().find(|t| t.kind == MediaKind::Audio).unwrap();
    let video = tracks.iter().find(|t| t.kind == MediaKind::Video).unwrap();
    assert_eq!(audio.source, Source::Microphone);
    assert_eq!(video.source, Source::Camera);
    assert_eq!(audio.participant, ida);
    assert_eq!(video.participant, ida);
    assert_ne!(audio.track, video.track);
    // The msid of each m-line names the publisher and the track (docs/protocol.md).
    let sdp = &offers[0].0;
    for t in tracks {
        assert!(
            sdp.contains(&format!("a=msid:{} {}", ida, t.track)),
            "msid for {} in\n{sdp}",
            t.track
        );
    }
    assert!(net.client(b).answer_errors.is_empty());
    // Alice publishes nothing to herself.
    assert!(net.client(a).subscribe_offers().is_empty());

    let before = net.sfu.counters().forwarded_frames;
    let mut sent_audio = Vec::new();
    let mut sent_video = Vec::new();
    for i in 0..60 {
        sent_audio.push(net.send_audio(a, amid, Some(-30)));
        if i % 2 == 0 {
            sent_video.push(net.send_video(a, vmid, i == 0, 600 + i));
        }
        net.advance(20 * MS);
    }
    net.advance(300 * MS);

    let got_audio: Vec<Vec<u8>> = net
        .client(b)
        .received_from(ida, MediaKind::Audio)
        .iter()
        .map(|r| r.data.clone())
        .collect();
    let got_video: Vec<Vec<u8>> = net
        .client(b)
        .received_from(ida, MediaKind::Video)
        .iter()
        .map(|r| r.data.clone())
        .collect();
    // A lossless network: everything arrives, in order, unchanged.
    assert_eq!(got_audio, sent_audio, "audio payloads");
    assert_eq!(got_video, sent_video, "video payloads");
    let first_video = &net.client(b).received_from(ida, MediaKind::Video)[0];
    assert!(first_video.keyframe, "the keyframe is still a keyframe");

    let forwarded = net.sfu.counters().forwarded_frames - before;
    assert_eq!(forwarded, (sent_audio.len() + sent_video.len()) as u64);
    assert!(net.sfu.counters().forwarded_bytes > 0);
}

#[test]
fn media_fans_out_and_a_late_joiner_gets_existing_tracks_at_once() {
    let mut net = Net::new(test_config());
    let a = net.join("room", info("alice")).unwrap();
    let b = net.join("room", info("bob")).unwrap();
    let amid = net.publish(a, &[PubTrack::mic()]).unwrap()[0];
    net.wait_for("b connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    let ida = net.id(a);

    // Carol joins after the track exists: she is offered it right away.
    let c = net.join("room", info("carol")).unwrap();
    let offers = net.client(c).subscribe_offers();
    assert_eq!(offers.len(), 1, "an offer comes with the join");
    assert_eq!(offers[0].1.len(), 1);
    assert_eq!(offers[0].1[0].participant, ida);
    assert_eq!(offers[0].1[0].source, Source::Microphone);
    // And `join` listed alice with her track (the harness drops the list; ask the room).
    let snap = net.sfu.room("room").unwrap();
    let alice = snap.participants.iter().find(|p| p.id == ida).unwrap();
    assert_eq!(alice.tracks.len(), 1);
    net.wait_for("c connected", |n| n.client(c).subscriber.connected);

    let mut sent = Vec::new();
    for _ in 0..25 {
        sent.push(net.send_audio(a, amid, Some(-40)));
        net.advance(20 * MS);
    }
    net.advance(100 * MS);
    for who in [b, c] {
        let got: Vec<Vec<u8>> = net
            .client(who)
            .received_from(ida, MediaKind::Audio)
            .iter()
            .map(|r| r.data.clone())
            .collect();
        // b also got whatever came before carol joined; compare the common tail.
        assert!(
            got.ends_with(&sent),
            "{} misses frames: got {} sent {}",
            net.client(who).name,
            got.len(),
            sent.len()
        );
    }
    // Nobody receives its own media.
    assert!(net.client(a).received.is_empty());
}

#[test]
fn a_participant_without_subscribe_grant_is_told_but_not_offered() {
    let mut net = Net::new(test_config());
    let a = net.join("room", info("alice")).unwrap();
    let mut watcher = info("watcher");
    watcher.can_subscribe = false;
    let w = net.join("room", watcher).unwrap();
    let amid = net.publish(a, &[PubTrack::mic()]).unwrap()[0];
    net.wait_for("a connected", |n| n.client(a).publisher.connected);
    for _ in 0..10 {
        net.send_audio(a, amid, None);
        net.advance(20 * MS);
    }
    let cl = net.client(w);
    assert_eq!(
        cl.notices_matching(|n| matches!(n, Notice::TrackPublished(..)))
            .count(),
        1
    );
    assert!(cl.subscribe_offers().is_empty());
    assert!(cl.received.is_empty());
    assert_eq!(net.sfu.counters().forwarded_frames, 0);
}

#[test]
fn a_stopped_track_is_unpublished_and_its_m_line_stopped() {
    let mut net = Net::new(test_config());
    let a = net.join("room", info("alice")).unwrap();
    let b = net.join("room", info("bob")).unwrap();
    let mids = net
        .publish(a, &[PubTrack::mic(), PubTrack::camera()])
        .unwrap();
    net.wait_for("connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    let ida = net.id(a);
    let video = net.client(b).subscribe_offers()[0]
        .1
        .iter()
        .find(|t| t.kind == MediaKind::Video)
        .unwrap()
        .clone();
    assert_eq!(net.sfu.gauges().2, 2);

    net.unpublish(a, &[mids[1]]).unwrap();
    net.advance(100 * MS);
    assert_eq!(net.sfu.gauges().2, 1, "one track left");
    let own: Vec<&str> = net
        .client(a)
        .own_tracks
        .iter()
        .map(|(m, _)| m.as_str())
        .collect();
    assert_eq!(own, vec![mids[0].to_string().as_str()]);
    let bn = net.client(b);
    assert_eq!(
        bn.notices_matching(|n| *n == Notice::TrackUnpublished(ida, video.track))
            .count(),
        1
    );
    let (sdp, tracks) = bn.subscribe_offers().pop().unwrap();
    assert_eq!(tracks.len(), 1, "only the audio m-line stays active");
    assert_eq!(tracks[0].kind, MediaKind::Audio);
    assert!(
        sdp.lines().any(|l| l.starts_with("m=video 0 ")),
        "video m-line stopped:\n{sdp}"
    );
    assert!(bn.answer_errors.is_empty());

    // Audio keeps flowing on the surviving m-line.
    let before = net.client(b).received.len();
    for _ in 0..10 {
        net.send_audio(a, mids[0], None);
        net.advance(20 * MS);
    }
    assert!(net.client(b).received.len() >= before + 9);
}

#[test]
fn the_next_subscribe_offer_waits_for_the_answer_to_the_previous_one() {
    let mut net = Net::new(test_config());
    let a = net.join("room", info("alice")).unwrap();
    let b = net.join("room", info("bob")).unwrap();
    net.clients[b].auto_answer = false;
    net.publish(a, &[PubTrack::mic()]).unwrap();
    net.wait_for("first offer", |n| !n.client(b).unanswered.is_empty());
    // A second track while the first offer is unanswered.
    net.publish(a, &[PubTrack::camera()]).unwrap();
    net.advance(Duration::from_millis(500));
    assert_eq!(
        net.client(b).subscribe_offers().len(),
        1,
        "no second offer before the answer"
    );
    net.answer_next(b).unwrap();
    net.advance(50 * MS);
    let offers = net.client(b).subscribe_offers();
    assert_eq!(offers.len(), 2, "the change is offered after the answer");
    let kinds: Vec<MediaKind> = offers[1].1.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, vec![MediaKind::Audio, MediaKind::Video]);
    net.answer_next(b).unwrap();
    net.wait_for("b connected", |n| n.client(b).subscriber.connected);
    assert!(net.client(b).answer_errors.is_empty());
}

fn limited() -> strowger_sfu::SfuConfig {
    strowger_sfu::SfuConfig {
        max_tracks_per_participant: 2,
        max_mlines_per_offer: 3,
        ..test_config()
    }
}

#[test]
fn an_offer_with_too_many_m_lines_is_refused() {
    let mut net = Net::new(limited());
    let a = net.join("room", info("alice")).unwrap();
    let err = net.publish(a, &vec![PubTrack::mic(); 4]).unwrap_err();
    assert_eq!(err.code(), "invalid_sdp", "{err:?}");
    assert_eq!(net.sfu.gauges(), (1, 1, 0));
}

#[test]
fn m_lines_over_the_track_limit_are_not_published() {
    let mut net = Net::new(limited());
    let a = net.join("room", info("alice")).unwrap();
    let b = net.join("room", info("bob")).unwrap();
    net.publish(
        a,
        &[PubTrack::mic(), PubTrack::camera(), PubTrack::camera()],
    )
    .unwrap();
    net.wait_for("connected", |n| n.client(a).publisher.connected);
    net.advance(100 * MS);
    assert_eq!(
        net.sfu.gauges().2,
        2,
        "the third m-line is over the track limit"
    );
    let offered = net.client(b).subscribe_offers().pop().unwrap().1;
    assert_eq!(offered.len(), 2);
}
