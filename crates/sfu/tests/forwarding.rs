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
            sent_video.push(net.send_video(a, vmid, None, i == 0, 7, 600 + i, 0));
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
