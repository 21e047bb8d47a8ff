//! Joining, leaving, refusals and room expiry.

mod harness;

use std::time::Duration;

use harness::{info, offer_sdp, test_config, Net, PubTrack};
use strowger_sfu::str0m::media::MediaKind;
use strowger_sfu::{
    Notice, ParticipantId, RoomOptions, SfuConfig, SfuError, SfuEvent, Source, TrackId, TrackLabel,
};

fn config_with_room(max_participants: usize, empty_timeout: Duration) -> SfuConfig {
    SfuConfig {
        default_room: RoomOptions {
            max_participants,
            empty_timeout,
        },
        ..test_config()
    }
}

fn room_closed_events(net: &Net) -> Vec<String> {
    net.events
        .iter()
        .filter_map(|(_, e)| match e {
            SfuEvent::RoomClosed(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_full_room_refuses_the_next_participant() {
    let mut net = Net::new(config_with_room(2, Duration::from_secs(60)));
    net.join("standup", info("a")).unwrap();
    net.join("standup", info("b")).unwrap();
    let err = net.join("standup", info("c")).unwrap_err();
    assert_eq!(err, SfuError::RoomFull("standup".into(), 2));
    assert_eq!(err.code(), "room_full");
    // The refusal left nothing behind, and another room is still open to c.
    assert_eq!(net.sfu.gauges(), (1, 2, 0));
    net.join("other", info("c")).unwrap();
    assert_eq!(net.sfu.gauges(), (2, 3, 0));
    assert_eq!(
        net.events
            .iter()
            .filter(|(_, e)| matches!(e, SfuEvent::RoomCreated(_)))
            .count(),
        2
    );
}

#[test]
fn rooms_are_not_created_on_join_when_auto_create_is_off() {
    let mut net = Net::new(SfuConfig {
        auto_create_rooms: false,
        ..test_config()
    });
    let err = net.join("nowhere", info("a")).unwrap_err();
    assert_eq!(err, SfuError::NoSuchRoom("nowhere".into()));
    assert_eq!(err.code(), "not_found");
    assert_eq!(net.sfu.gauges(), (0, 0, 0));
    let now = net.now;
    net.sfu
        .create_room(now, "nowhere", RoomOptions::default())
        .unwrap();
    assert_eq!(
        net.sfu
            .create_room(now, "nowhere", RoomOptions::default())
            .unwrap_err(),
        SfuError::RoomExists("nowhere".into())
    );
    net.join("nowhere", info("a")).unwrap();
    assert_eq!(net.sfu.gauges(), (1, 1, 0));
}

#[test]
fn bad_room_names_are_refused() {
    let mut net = Net::new(test_config());
    for name in ["", "has space", "slash/es", &"x".repeat(129)] {
        let err = net.join(name, info("a")).unwrap_err();
        assert_eq!(err.code(), "bad_request", "{name:?}");
    }
    assert_eq!(net.sfu.gauges(), (0, 0, 0));
}

#[test]
fn commands_refused_by_grants_or_state() {
    let mut net = Net::new(test_config());
    let mut listener = info("listener");
    listener.can_publish = false;
    let l = net.join("r", listener).unwrap();
    let mut camera_only = info("camera");
    camera_only.can_screenshare = false;
    let c = net.join("r", camera_only).unwrap();
    let now = net.now;

    let sdp = offer_sdp(now, &[MediaKind::Audio, MediaKind::Video]);
    let err = net
        .sfu
        .publish_offer(now, net.id(l), &sdp, vec![])
        .unwrap_err();
    assert!(matches!(err, SfuError::Forbidden(_)), "{err:?}");
    assert_eq!(err.code(), "forbidden");

    let screen = vec![TrackLabel {
        mid: "1".into(),
        source: Source::Screen,
        width: None,
    }];
    let err = net
        .sfu
        .publish_offer(now, net.id(c), &sdp, screen)
        .unwrap_err();
    assert!(matches!(err, SfuError::Forbidden(_)), "{err:?}");

    for garbage in ["", "hello", "v=0\r\nm=audio banana\r\n", "\u{0}\u{1}\u{2}"] {
        let err = net
            .sfu
            .publish_offer(now, net.id(c), garbage, vec![])
            .unwrap_err();
        assert!(
            matches!(err, SfuError::InvalidSdp(_)),
            "{garbage:?}: {err:?}"
        );
        assert_eq!(err.code(), "invalid_sdp");
    }

    // Nothing was offered to the subscriber side yet.
    let err = net
        .sfu
        .subscribe_answer(now, net.id(c), "v=0\r\n")
        .unwrap_err();
    assert!(matches!(err, SfuError::OutOfOrder(_)), "{err:?}");
    assert_eq!(err.code(), "out_of_order");

    let ghost = ParticipantId(999_999);
    assert_eq!(
        net.sfu.publish_offer(now, ghost, &sdp, vec![]).unwrap_err(),
        SfuError::NoSuchParticipant
    );
    assert_eq!(
        net.sfu.leave(now, ghost).unwrap_err(),
        SfuError::NoSuchParticipant
    );

    assert_eq!(
        net.sfu
            .set_subscription(now, net.id(c), TrackId(424_242), Some(320), false)
            .unwrap_err(),
        SfuError::NoSuchTrack
    );
    assert_eq!(
        net.sfu
            .set_muted(net.id(c), Source::Microphone, true)
            .unwrap_err(),
        SfuError::NoSuchTrack
    );

    // After all these refusals the camera participant can still publish normally.
    net.publish(c, &[PubTrack::mic()]).unwrap();
    net.wait_for("publisher connected", |n| n.client(c).publisher.connected);
    assert_eq!(net.sfu.gauges(), (1, 2, 1));
}

#[test]
fn a_bad_subscribe_answer_is_refused_and_the_offer_stays_answerable() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    net.clients[b].auto_answer = false;
    net.publish(a, &[PubTrack::mic()]).unwrap();
    net.wait_for("offer to b", |n| !n.client(b).unanswered.is_empty());
    let now = net.now;
    let err = net
        .sfu
        .subscribe_answer(now, net.id(b), "not sdp")
        .unwrap_err();
    assert!(matches!(err, SfuError::InvalidSdp(_)), "{err:?}");
    // The real answer is still accepted afterwards.
    net.answer_next(b).unwrap();
    net.wait_for("b's subscriber connected", |n| {
        n.client(b).subscriber.connected
    });
    // And a second answer to the same offer is out of order.
    let err = net
        .sfu
        .subscribe_answer(net.now, net.id(b), "v=0\r\n")
        .unwrap_err();
    assert!(matches!(err, SfuError::OutOfOrder(_)), "{err:?}");
}

#[test]
fn leaving_tells_the_others_stops_their_m_lines_and_the_empty_room_closes() {
    let empty_timeout = Duration::from_secs(10);
    let mut net = Net::new(config_with_room(10, empty_timeout));
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    let mids = net
        .publish(a, &[PubTrack::mic(), PubTrack::camera()])
        .unwrap();
    net.wait_for("b receives", |n| n.client(b).subscriber.connected);
    for _ in 0..5 {
        net.send_audio(a, mids[0], None);
        net.advance(Duration::from_millis(20));
    }
    assert!(!net.client(b).received.is_empty());
    assert_eq!(net.sfu.gauges(), (1, 2, 2));
    let ida = net.id(a);
    let offers_before = net.client(b).subscribe_offers().len();
    let a_tracks: Vec<_> = net.client(b).subscribe_offers()[0]
        .1
        .iter()
        .map(|t| t.track)
        .collect();

    net.leave(a).unwrap();
    net.advance(Duration::from_millis(50));

    let bn = net.client(b);
    assert_eq!(
        bn.notices_matching(|n| *n == Notice::ParticipantLeft(ida))
            .count(),
        1
    );
    for t in &a_tracks {
        assert_eq!(
            bn.notices_matching(|n| *n == Notice::TrackUnpublished(ida, *t))
                .count(),
            1,
            "TrackUnpublished for {t}"
        );
    }
    let offers = bn.subscribe_offers();
    assert_eq!(
        offers.len(),
        offers_before + 1,
        "a new offer stops a's m-lines"
    );
    let (sdp, tracks) = offers.last().unwrap();
    assert!(tracks.is_empty(), "no active m-line left: {tracks:?}");
    let stopped = sdp
        .lines()
        .filter(|l| l.starts_with("m=audio 0 ") || l.starts_with("m=video 0 "))
        .count();
    assert_eq!(stopped, 2, "both m-lines rejected (port 0) in\n{sdp}");
    assert!(bn.answer_errors.is_empty(), "{:?}", bn.answer_errors);
    assert_eq!(net.sfu.gauges(), (1, 1, 0));

    net.leave(b).unwrap();
    assert_eq!(net.sfu.gauges(), (1, 0, 0));
    assert_eq!(net.sfu.room_names(), vec!["r".to_string()]);
    // Still there just before the timeout...
    net.advance(empty_timeout - Duration::from_millis(200));
    assert!(room_closed_events(&net).is_empty());
    assert_eq!(net.sfu.gauges().0, 1);
    // ...and closed once it has passed.
    net.advance(Duration::from_millis(400));
    assert_eq!(room_closed_events(&net), vec!["r".to_string()]);
    assert_eq!(net.sfu.gauges(), (0, 0, 0));
    assert!(net.sfu.room("r").is_none());
}

#[test]
fn a_room_refilled_before_its_timeout_stays_open() {
    let empty_timeout = Duration::from_secs(2);
    let mut net = Net::new(config_with_room(10, empty_timeout));
    let a = net.join("r", info("a")).unwrap();
    net.leave(a).unwrap();
    net.advance(Duration::from_millis(1500));
    net.join("r", info("b")).unwrap();
    net.advance(Duration::from_secs(5));
    assert!(room_closed_events(&net).is_empty());
    assert_eq!(net.sfu.gauges(), (1, 1, 0));
}

#[test]
fn closing_a_room_removes_everyone() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    net.publish(a, &[PubTrack::mic()]).unwrap();
    net.wait_for("b connected", |n| n.client(b).subscriber.connected);
    let now = net.now;
    net.sfu.close_room(now, "r").unwrap();
    net.pump();
    for c in [a, b] {
        let id = net.id(c);
        assert!(net
            .client(c)
            .notices_matching(|n| *n == Notice::RoomClosed("r".into()))
            .next()
            .is_some());
        assert!(net.events.iter().any(|(_, e)| matches!(
            e,
            SfuEvent::Removed(p, strowger_sfu::LeaveReason::RoomClosed) if *p == id
        )));
    }
    assert_eq!(room_closed_events(&net), vec!["r".to_string()]);
    assert_eq!(net.sfu.gauges(), (0, 0, 0));
    // Time passing afterwards does not resurrect anything or panic.
    net.advance(Duration::from_secs(2));
    assert_eq!(net.sfu.gauges(), (0, 0, 0));
}

/// A participant leaving one room must not be announced in another room.
#[test]
fn unpublishing_on_leave_is_not_announced_to_other_rooms() {
    let mut net = Net::new(test_config());
    let a = net.join("one", info("a")).unwrap();
    let b = net.join("one", info("b")).unwrap();
    let d = net.join("two", info("d")).unwrap();
    net.publish(a, &[PubTrack::mic()]).unwrap();
    net.wait_for("b connected", |n| n.client(b).subscriber.connected);
    let before = net.client(d).notices.len();
    net.leave(a).unwrap();
    net.advance(Duration::from_millis(50));
    let leaked: Vec<_> = net.client(d).notices[before..]
        .iter()
        .map(|(_, n)| n)
        .collect();
    assert!(
        leaked.is_empty(),
        "d (room two) was told about room one: {leaked:?}"
    );
}

/// docs/protocol.md: "`tracks` in the answer lists every track the participant now publishes,
/// with its `mid`: this is how a client learns its own track ids."
#[test]
fn the_publish_answer_lists_the_new_tracks() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let mids = net
        .publish(a, &[PubTrack::mic(), PubTrack::camera()])
        .unwrap();
    let own = &net.client(a).own_tracks;
    let listed: Vec<&str> = own.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        listed,
        mids.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "the answer to the first publish_offer lists its tracks"
    );
    assert_eq!(own[0].1.kind, MediaKind::Audio);
    assert_eq!(own[1].1.source, Source::Camera);
}

/// The core is sans-IO: its deadlines must come from the times it was given. When idle it answers
/// `Instant::now() + 1 s`, which a shell on another clock (a simulation, these tests, a paused
/// runtime) sees as a deadline in the past, so it calls `handle_timeout` in a busy loop.
#[test]
fn an_idle_sfu_does_not_read_the_wall_clock() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    net.leave(a).unwrap();
    let now = net.now;
    net.sfu.close_room(now, "r").unwrap();
    // An hour later on the caller's clock.
    let later = now + Duration::from_secs(3600);
    net.sfu.handle_timeout(later);
    let deadline = loop {
        match net.sfu.poll_output() {
            strowger_sfu::Output::Timeout(t) => break t,
            _ => continue,
        }
    };
    assert!(
        deadline > later,
        "idle deadline {:?} before the caller's now",
        later - deadline
    );
}

#[test]
fn a_late_answer_after_the_publisher_left_is_fine() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    net.clients[b].auto_answer = false;
    net.publish(a, &[PubTrack::mic(), PubTrack::camera()])
        .unwrap();
    net.wait_for("offer to b", |n| !n.client(b).unanswered.is_empty());
    net.leave(a).unwrap();
    net.advance(Duration::from_millis(50));
    // b answers the offer that still carries a's tracks.
    net.answer_next(b).unwrap();
    net.advance(Duration::from_millis(50));
    // Then gets one that stops them.
    assert_eq!(net.client(b).unanswered.len(), 1);
    let (sdp, tracks) = net.client(b).unanswered[0].clone();
    assert!(tracks.is_empty(), "{tracks:?}");
    assert_eq!(
        sdp.lines()
            .filter(|l| l.starts_with("m=audio 0 ") || l.starts_with("m=video 0 "))
            .count(),
        2,
        "{sdp}"
    );
    net.answer_next(b).unwrap();
    net.advance(Duration::from_millis(500));
    assert!(net.client(b).unanswered.is_empty());
    assert_eq!(net.sfu.gauges(), (1, 1, 0));
}

fn removed_for_media(net: &Net, c: usize) -> bool {
    let id = net.id(c);
    net.events.iter().any(|(_, e)| {
        matches!(
            e,
            SfuEvent::Removed(p, strowger_sfu::LeaveReason::MediaFailed) if *p == id
        )
    })
}

/// docs/protocol.md, `left`: "its media connection failed (DTLS closed or ICE gave up)".
#[test]
fn a_client_closing_its_connection_is_removed() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    net.publish(a, &[PubTrack::mic()]).unwrap();
    net.wait_for("connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    let ida = net.id(a);
    // a closes its publisher connection (DTLS close_notify) without `leave`.
    net.clients[a].publisher.rtc.close().unwrap();
    net.advance(Duration::from_secs(2));
    assert!(removed_for_media(&net, a), "events: {:?}", net.events);
    assert!(net
        .client(b)
        .notices_matching(|n| *n == Notice::ParticipantLeft(ida))
        .next()
        .is_some());
    assert_eq!(net.sfu.gauges(), (1, 1, 0));
}

#[test]
fn a_client_that_vanishes_is_removed() {
    let mut net = Net::new(test_config());
    let a = net.join("r", info("a")).unwrap();
    let b = net.join("r", info("b")).unwrap();
    net.publish(a, &[PubTrack::mic()]).unwrap();
    net.wait_for("connected", |n| {
        n.client(a).publisher.connected && n.client(b).subscriber.connected
    });
    // a's machine drops off the network: not a packet more. str0m's ICE-lite agent reports
    // `Disconnected` 15 s after the last binding request, but the `Rtc` stays alive.
    net.clients[a].gone = true;
    net.advance(Duration::from_secs(60));
    assert!(removed_for_media(&net, a), "events: {:?}", net.events);
    assert_eq!(net.sfu.gauges(), (1, 1, 0));
}
