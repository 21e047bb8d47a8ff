use std::net::{IpAddr, SocketAddr};

use strowger_sip::sdp::{
    answer, offer, static_payload, AddrType, Attribute, Capabilities, Codec, Connection, Crypto,
    Direction, Origin, SdpError, SessionDescription, MAX_MEDIA, MAX_SDP_LEN,
};

const BARESIP: &str = "v=0\r\n\
o=- 1834569227 2102874543 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.1\r\n\
m=audio 10174 RTP/AVP 96 9 0 8 101\r\n\
b=AS:128\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1;maxaveragebitrate=28000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:10175 IN IP4 192.0.2.10\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:1407451434 cname:a5c8c0f3-5b6a-4f2e-9d43-1d5f3b7a2a11\r\n\
a=ptime:20\r\n";

const SIPP_PCMA: &str = "v=0\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\n\
s=-\n\
c=IN IP4 127.0.0.1\n\
t=0 0\n\
m=audio 6000 RTP/AVP 8\n\
a=rtpmap:8 PCMA/8000\n";

const CHROME_LIKE: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream0\r\n\
m=audio 50000 RTP/AVP 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 198.51.100.7\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=sendrecv\r\n\
a=msid:stream0 track0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3735928559 cname:x9Qp2mG3\r\n\
m=video 50002 RTP/AVP 96 97\r\n\
c=IN IP4 198.51.100.7\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n";

const LINPHONE: &str = "v=0\r\n\
o=alice 3390 1299 IN IP4 203.0.113.20\r\n\
s=Talk\r\n\
c=IN IP4 203.0.113.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n\
m=video 9078 RTP/AVP 96\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:96 nack pli\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn relay_origin() -> Origin {
    Origin::new("strowger", 1000, ip("10.0.0.1"))
}

fn voice_caps() -> Capabilities {
    let mut caps = Capabilities::audio(vec![
        Codec::new(8, "PCMA", 8000, 1),
        Codec::new(0, "PCMU", 8000, 1),
        Codec::new(96, "opus", 48000, 2),
        Codec::new(101, "telephone-event", 8000, 1).with_fmtp("0-16"),
    ]);
    caps.rtcp_mux = true;
    caps
}

fn formats(m: &strowger_sip::sdp::Media) -> Vec<&str> {
    m.formats.iter().map(String::as_str).collect()
}

#[test]
fn baresip_offer_parses() {
    let sd = SessionDescription::parse(BARESIP).unwrap();
    assert_eq!(sd.origin.session_version, 2102874543);
    assert_eq!(sd.origin.addr_type, AddrType::Ip4);
    assert_eq!(sd.media.len(), 1);
    let m = &sd.media[0];
    assert_eq!(m.kind, "audio");
    assert_eq!(m.proto, "RTP/AVP");
    assert_eq!(m.bandwidths[0].bw_type, "AS");
    assert_eq!(m.bandwidths[0].value, 128);
    let codecs = m.codecs();
    let names: Vec<_> = codecs
        .iter()
        .map(|c| (c.payload_type, c.name.as_str(), c.clock_rate, c.channels))
        .collect();
    assert_eq!(
        names,
        vec![
            (96, "opus", 48000, 2),
            (9, "G722", 8000, 1),
            (0, "PCMU", 8000, 1),
            (8, "PCMA", 8000, 1),
            (101, "telephone-event", 8000, 1)
        ]
    );
    assert_eq!(codecs[4].fmtp.as_deref(), Some("0-15"));
    assert!(m.has_telephone_event());
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    let rtcp = m.rtcp().unwrap();
    assert_eq!(rtcp.port, 10175);
    assert_eq!(rtcp.connection.unwrap().address, "192.0.2.10");
    assert_eq!(
        sd.media_addr(0),
        Some("192.0.2.10:10174".parse::<SocketAddr>().unwrap())
    );
    assert!(!sd.is_on_hold());
    assert_eq!(
        sd.attributes,
        vec![Attribute::new("tool", "baresip 3.10.1")]
    );
}

#[test]
fn sipp_pcma_offer_answered() {
    let sd = SessionDescription::parse(SIPP_PCMA).unwrap();
    assert_eq!(
        sd.media_addr(0),
        Some("127.0.0.1:6000".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(sd.media_direction(0), Direction::SendRecv);
    let ans = answer(&sd, &voice_caps(), relay_origin(), ip("10.0.0.1"), &[40000]);
    let text = ans.to_string();
    assert!(text.contains("m=audio 40000 RTP/AVP 8\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"));
    assert!(text.contains("a=sendrecv\r\n"));
    assert!(text.contains("c=IN IP4 10.0.0.1\r\n"));
    assert!(!text.contains("telephone-event"));
    assert!(text.starts_with("v=0\r\no=strowger 1000 1000 IN IP4 10.0.0.1\r\ns=-\r\nc="));
    // The answer parses back to itself.
    assert_eq!(SessionDescription::parse(&text).unwrap(), ans);
}

#[test]
fn chrome_like_offer_answered() {
    let sd = SessionDescription::parse(CHROME_LIKE).unwrap();
    assert_eq!(sd.media.len(), 2);
    assert_eq!(sd.connection, None);
    assert_eq!(
        sd.media_addr(0),
        Some("198.51.100.7:50000".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(sd.media[0].mid(), Some("0"));
    assert_eq!(sd.media[1].codecs().len(), 2);
    let ans = answer(
        &sd,
        &voice_caps(),
        relay_origin(),
        ip("10.0.0.1"),
        &[40000, 40002],
    );
    assert_eq!(ans.media.len(), 2);
    let a = &ans.media[0];
    // Offerer's order, offerer's payload types, telephone-event/8000 only (ours is 8000).
    assert_eq!(formats(a), vec!["111", "0", "8", "126"]);
    assert_eq!(a.rtpmap(126).unwrap().0, "telephone-event");
    assert_eq!(a.fmtp("126"), Some("0-16"));
    // Chrome's fmtp for opus is echoed.
    assert_eq!(a.fmtp("111"), Some("minptime=10;useinbandfec=1"));
    assert_eq!(a.mid(), Some("0"));
    assert!(a.has_attribute("rtcp-mux"));
    // Without mux support it is not answered.
    let mut caps = voice_caps();
    caps.rtcp_mux = false;
    let ans2 = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[40000, 40002]);
    assert!(!ans2.media[0].has_attribute("rtcp-mux"));
    assert_eq!(a.direction(), Some(Direction::SendRecv));
    // No video capability: rejected with port 0, same kind and proto, mid kept.
    let v = &ans.media[1];
    assert_eq!(v.port, 0);
    assert_eq!(v.kind, "video");
    assert_eq!(v.proto, "RTP/AVP");
    assert_eq!(v.mid(), Some("1"));
    assert!(!v.formats.is_empty());
    assert_eq!(ans.media_addr(1), None);
}

#[test]
fn linphone_offer_static_types_and_telephone_events() {
    let sd = SessionDescription::parse(LINPHONE).unwrap();
    assert_eq!(sd.name, "Talk");
    let codecs = sd.media[0].codecs();
    assert_eq!(codecs.len(), 9);
    // Static types without rtpmap come from the table; fmtp still applies.
    let g729 = codecs.iter().find(|c| c.payload_type == 18).unwrap();
    assert_eq!((g729.name.as_str(), g729.clock_rate), ("G729", 8000));
    assert_eq!(g729.fmtp.as_deref(), Some("annexb=yes"));
    assert_eq!(codecs[3].name, "PCMU");
    assert_eq!(codecs[4].name, "PCMA");
    assert_eq!(codecs.iter().filter(|c| c.is_telephone_event()).count(), 3);
    let ans = answer(
        &sd,
        &voice_caps(),
        relay_origin(),
        ip("10.0.0.1"),
        &[40000, 40002],
    );
    let a = &ans.media[0];
    assert_eq!(formats(a), vec!["96", "0", "8", "100"]);
    assert_eq!(a.rtpmap(100).unwrap(), ("telephone-event".into(), 8000, 1));
    assert_eq!(a.rtpmap(0).unwrap(), ("PCMU".into(), 8000, 1));
    assert_eq!(ans.media[1].port, 0);
    // Without telephone-event in our capabilities, none is answered.
    let mut caps = voice_caps();
    caps.audio.retain(|c| !c.is_telephone_event());
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[40000, 40002]);
    assert!(!ans.media[0].has_telephone_event());
    // Video accepted when we have VP8; the video payload type 96 is independent of audio's.
    let mut caps = voice_caps();
    caps.video = vec![Codec::new(100, "VP8", 90000, 1)];
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[40000, 40002]);
    assert_eq!(ans.media[1].port, 40002);
    assert_eq!(formats(&ans.media[1]), vec!["96"]);
}

#[test]
fn no_common_codec_rejects_stream() {
    let sd = SessionDescription::parse(LINPHONE).unwrap();
    let caps = Capabilities::audio(vec![
        Codec::new(9, "G722", 8000, 1),
        Codec::new(101, "telephone-event", 8000, 1),
    ]);
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[40000, 40002]);
    // Only telephone-event in common: not a usable stream.
    assert_eq!(ans.media[0].port, 0);
    assert_eq!(ans.media.len(), 2);
    // A missing port also rejects the stream.
    let ans = answer(&sd, &voice_caps(), relay_origin(), ip("10.0.0.1"), &[]);
    assert!(ans.media.iter().all(|m| m.port == 0));
    // An unsupported transport too.
    let tcp = SIPP_PCMA.replace("RTP/AVP", "TCP/MSRP");
    let sd = SessionDescription::parse(&tcp).unwrap();
    let ans = answer(&sd, &voice_caps(), relay_origin(), ip("10.0.0.1"), &[4]);
    assert_eq!(ans.media[0].port, 0);
    assert_eq!(ans.media[0].proto, "TCP/MSRP");
}

#[test]
fn round_trips_keep_meaning() {
    for text in [BARESIP, SIPP_PCMA, CHROME_LIKE, LINPHONE] {
        let sd = SessionDescription::parse(text).unwrap();
        let out = sd.to_string();
        assert!(out.ends_with("\r\n"));
        assert!(!out.replace("\r\n", "").contains('\n'));
        let again = SessionDescription::parse(&out).unwrap();
        assert_eq!(again, sd);
        assert_eq!(again.to_string(), out);
    }
    // CRLF input with these orderings comes out byte-identical.
    assert_eq!(
        SessionDescription::parse(BARESIP).unwrap().to_string(),
        BARESIP
    );
    assert_eq!(
        SessionDescription::parse(LINPHONE).unwrap().to_string(),
        LINPHONE
    );
    // LF input is written with CRLF.
    assert_eq!(
        SessionDescription::parse(SIPP_PCMA).unwrap().to_string(),
        SIPP_PCMA.replace('\n', "\r\n")
    );
}

#[test]
fn optional_lines_tolerated() {
    let text = "v=0\n\
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\n\
s=SDP Seminar\n\
i=A Seminar on the session description protocol\n\
u=http://www.example.com/seminars/sdp.pdf\n\
e=j.doe@example.com (Jane Doe)\n\
p=+1 617 555-6011\n\
c=IN IP4 224.2.17.12/127\n\
b=CT:1000\n\
t=2873397496 2873404696\n\
r=7d 1h 0 25h\n\
z=2882844526 -1h 2898848070 0\n\
k=clear:secret\n\
a=recvonly\n\
m=audio 49170/2 RTP/AVP 0\n\
i=voice\n\
k=prompt\n\
x=unknown line type\n\
m=video 51372 RTP/AVP 99\n\
a=rtpmap:99 h263-1998/90000\n";
    let sd = SessionDescription::parse(text).unwrap();
    assert_eq!(
        sd.info.as_deref(),
        Some("A Seminar on the session description protocol")
    );
    assert_eq!(sd.emails.len(), 1);
    assert_eq!(sd.phones.len(), 1);
    let c = sd.connection.as_ref().unwrap();
    assert_eq!(c.address, "224.2.17.12");
    assert_eq!(c.suffix.as_deref(), Some("127"));
    assert_eq!(sd.timings[0].repeats, vec!["7d 1h 0 25h"]);
    assert!(sd.zone.is_some());
    assert_eq!(sd.media[0].port_count, Some(2));
    assert_eq!(sd.media[0].title.as_deref(), Some("voice"));
    // Session-level recvonly is the default for the media.
    assert_eq!(sd.media_direction(0), Direction::RecvOnly);
    assert_eq!(sd.media_direction(1), Direction::RecvOnly);
    let out = sd.to_string();
    assert!(!out.contains("k="));
    assert!(!out.contains("x="));
    assert!(out.contains("m=audio 49170/2 RTP/AVP 0\r\n"));
    assert_eq!(SessionDescription::parse(&out).unwrap(), sd);
    // Missing s= and t= are tolerated.
    let sd = SessionDescription::parse("v=0\no=- 1 1 IN IP6 ::1\nm=audio 5 RTP/AVP 0\n").unwrap();
    assert_eq!(sd.name, "-");
    assert_eq!(sd.timings.len(), 1);
    assert!(sd.to_string().contains("s=-\r\nt=0 0\r\n"));
}

#[test]
fn unknown_attributes_preserved_in_order() {
    let sd = SessionDescription::parse(CHROME_LIKE).unwrap();
    let names: Vec<&str> = sd.media[0]
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        &names[..6],
        &["rtcp", "mid", "extmap", "extmap", "sendrecv", "msid"]
    );
    assert_eq!(
        sd.attributes[2],
        Attribute::new("msid-semantic", " WMS stream0")
    );
}

#[test]
fn malformed_inputs_are_errors() {
    let cases: &[(&str, &str)] = &[
        ("empty", ""),
        ("missing v", "o=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n"),
        ("v=1", "v=1\no=- 1 1 IN IP4 1.2.3.4\ns=-\n"),
        ("missing o", "v=0\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\n"),
        ("bad o", "v=0\no=- 1 IN IP4 1.2.3.4\n"),
        ("bad o version", "v=0\no=- 1 x IN IP4 1.2.3.4\n"),
        (
            "port too big",
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 70000 RTP/AVP 0\n",
        ),
        (
            "port text",
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio abc RTP/AVP 0\n",
        ),
        (
            "negative port",
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio -1 RTP/AVP 0\n",
        ),
        (
            "bad count",
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 1/x RTP/AVP 0\n",
        ),
        ("short m", "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 1\n"),
        ("bad c", "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP5 1.2.3.4\n"),
        ("short c", "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4\n"),
        ("bad b", "v=0\no=- 1 1 IN IP4 1.2.3.4\nb=AS\n"),
        ("bad t", "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=now\n"),
        ("not a line", "v=0\no=- 1 1 IN IP4 1.2.3.4\nhello\n"),
        (
            "uppercase type",
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nM=audio 1 RTP/AVP 0\n",
        ),
        ("empty attr", "v=0\no=- 1 1 IN IP4 1.2.3.4\na=\n"),
        ("r before t", "v=0\no=- 1 1 IN IP4 1.2.3.4\nr=1\n"),
        (
            "two o",
            "v=0\no=- 1 1 IN IP4 1.2.3.4\no=- 1 1 IN IP4 1.2.3.4\n",
        ),
    ];
    for (what, text) in cases {
        assert!(
            SessionDescription::parse(text).is_err(),
            "accepted {what}: {text:?}"
        );
    }
    assert_eq!(
        SessionDescription::parse("o=- 1 1 IN IP4 1.2.3.4\n"),
        Err(SdpError::BadVersion)
    );
    assert_eq!(
        SessionDescription::parse("v=0\ns=x\n"),
        Err(SdpError::Missing('o'))
    );
    assert_eq!(
        SessionDescription::parse_bytes(b"v=0\no=\xff\n"),
        Err(SdpError::NotUtf8)
    );
}

#[test]
fn absurd_sizes_are_bounded() {
    let big = format!("{SIPP_PCMA}a=x:{}\n", "y".repeat(MAX_SDP_LEN));
    assert_eq!(SessionDescription::parse(&big), Err(SdpError::TooLong));
    assert_eq!(
        SessionDescription::parse_bytes(big.as_bytes()),
        Err(SdpError::TooLong)
    );
    let mut many_m = String::from("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n");
    for i in 0..=MAX_MEDIA {
        many_m.push_str(&format!("m=audio {} RTP/AVP 0\n", 1000 + i));
    }
    assert_eq!(
        SessionDescription::parse(&many_m),
        Err(SdpError::TooManyMedia)
    );
    let mut many_a = String::from(SIPP_PCMA);
    for i in 0..1000 {
        many_a.push_str(&format!("a=x{i}\n"));
    }
    assert_eq!(
        SessionDescription::parse(&many_a),
        Err(SdpError::TooManyAttributes)
    );
    let many_fmt = format!(
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 1 RTP/AVP {}\n",
        (0..500)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(SessionDescription::parse(&many_fmt).is_err());
    // Huge numbers in typed attributes do not panic.
    let weird = format!(
        "{SIPP_PCMA}a=ptime:1e400\na=maxptime:-5\na=rtcp:99999999\na=rtpmap:8 PCMA/99999999999\n\
         a=crypto:99999999999 X\na=fmtp:\n"
    );
    let sd = SessionDescription::parse(&weird).unwrap();
    assert_eq!(sd.media[0].ptime(), None);
    assert_eq!(sd.media[0].maxptime(), None);
    assert_eq!(sd.media[0].rtcp(), None);
    assert!(sd.media[0].crypto().is_empty());
    let _ = sd.media[0].codecs();
}

#[test]
fn truncations_and_mutations_never_panic() {
    for text in [BARESIP, CHROME_LIKE, LINPHONE] {
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            if let Ok(sd) = SessionDescription::parse_bytes(&bytes[..cut]) {
                for m in &sd.media {
                    let _ = m.codecs();
                }
                let _ = SessionDescription::parse(&sd.to_string()).unwrap();
            }
        }
        let mut seed = 0x2545f491u32;
        for _ in 0..2000 {
            let mut m = bytes.to_vec();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % m.len();
                m[i] = (seed >> 8) as u8;
            }
            if let Ok(sd) = SessionDescription::parse_bytes(&m) {
                for i in 0..sd.media.len() {
                    let _ = (
                        sd.media_addr(i),
                        sd.is_media_on_hold(i),
                        sd.media[i].codecs(),
                    );
                    let _ = (
                        sd.media[i].rtcp(),
                        sd.media[i].crypto(),
                        sd.media[i].ptime(),
                    );
                }
                let _ = answer(
                    &sd,
                    &voice_caps(),
                    relay_origin(),
                    ip("10.0.0.1"),
                    &[1, 2, 3],
                );
                let _ = SessionDescription::parse(&sd.to_string()).unwrap();
            }
        }
    }
}

fn with_direction(dir: &str) -> SessionDescription {
    SessionDescription::parse(&format!("{SIPP_PCMA}a={dir}\n")).unwrap()
}

#[test]
fn hold_and_resume_answered() {
    let caps = voice_caps();
    let o = relay_origin();
    let cases = [
        ("sendonly", Direction::RecvOnly, true),
        ("recvonly", Direction::SendOnly, false),
        ("inactive", Direction::Inactive, true),
        ("sendrecv", Direction::SendRecv, false),
    ];
    for (offered, expected, hold) in cases {
        let sd = with_direction(offered);
        assert_eq!(sd.is_on_hold(), hold, "{offered}");
        let ans = answer(&sd, &caps, o.clone(), ip("10.0.0.1"), &[40000]);
        assert_eq!(ans.media[0].direction(), Some(expected), "{offered}");
        assert_eq!(ans.media_direction(0), expected);
    }
    // Session-level sendonly applies to the media.
    let text = SIPP_PCMA.replace("t=0 0\n", "t=0 0\na=sendonly\n");
    let sd = SessionDescription::parse(&text).unwrap();
    assert!(sd.is_on_hold());
    let ans = answer(&sd, &caps, o.clone(), ip("10.0.0.1"), &[40000]);
    assert_eq!(ans.media[0].direction(), Some(Direction::RecvOnly));
    // RFC 2543 hold: c=0.0.0.0.
    let text = SIPP_PCMA.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let sd = SessionDescription::parse(&text).unwrap();
    assert!(sd.is_on_hold());
    assert_eq!(sd.media_addr(0).unwrap().ip(), ip("0.0.0.0"));
    let ans = answer(&sd, &caps, o.clone(), ip("10.0.0.1"), &[40000]);
    assert_eq!(ans.media[0].direction(), Some(Direction::RecvOnly));
    // We put the peer on hold: our caps say sendonly.
    let mut holding = caps.clone();
    holding.direction = Direction::SendOnly;
    let ans = answer(
        &with_direction("sendrecv"),
        &holding,
        o.clone(),
        ip("10.0.0.1"),
        &[1],
    );
    assert_eq!(ans.media[0].direction(), Some(Direction::SendOnly));
    let ans = answer(
        &with_direction("sendonly"),
        &holding,
        o,
        ip("10.0.0.1"),
        &[1],
    );
    assert_eq!(ans.media[0].direction(), Some(Direction::Inactive));
    // Rejected media is never "on hold".
    let text = SIPP_PCMA.replace("6000", "0");
    assert!(!SessionDescription::parse(&text).unwrap().is_on_hold());
}

#[test]
fn direction_table() {
    use Direction::*;
    for (offered, ours, expected) in [
        (SendRecv, SendRecv, SendRecv),
        (SendOnly, SendRecv, RecvOnly),
        (RecvOnly, SendRecv, SendOnly),
        (Inactive, SendRecv, Inactive),
        (SendRecv, RecvOnly, RecvOnly),
        (SendRecv, Inactive, Inactive),
        (RecvOnly, RecvOnly, Inactive),
    ] {
        assert_eq!(Direction::answer(offered, ours), expected);
    }
    assert_eq!(SendOnly.reversed(), RecvOnly);
    assert_eq!(Inactive.reversed(), Inactive);
    let mut m = SessionDescription::parse(BARESIP).unwrap().media.remove(0);
    let pos = m.attributes.iter().position(|a| a.name == "sendrecv");
    m.set_direction(SendOnly);
    assert_eq!(m.attributes.iter().position(|a| a.name == "sendonly"), pos);
    assert_eq!(m.direction(), Some(SendOnly));
    assert!(!m.has_attribute("sendrecv"));
}

#[test]
fn ptime_passed_through_or_ours() {
    let sd = SessionDescription::parse(&format!("{SIPP_PCMA}a=ptime:30\na=maxptime:60\n")).unwrap();
    let mut caps = voice_caps();
    caps.ptime = Some(20);
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[1]);
    assert_eq!(ans.media[0].ptime(), Some(30));
    assert_eq!(ans.media[0].maxptime(), Some(60));
    let sd = SessionDescription::parse(SIPP_PCMA).unwrap();
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[1]);
    assert_eq!(ans.media[0].ptime(), Some(20));
}

#[test]
fn rewrite_connection_anchors_media() {
    let mut sd = SessionDescription::parse(CHROME_LIKE).unwrap();
    sd.media[1].port = 0; // a rejected stream stays rejected
    let before = sd.clone();
    sd.rewrite_connection(ip("203.0.113.99"), &[30000, 30002]);
    assert_eq!(sd.connection, Some(Connection::new(ip("203.0.113.99"))));
    assert_eq!(
        sd.media_addr(0),
        Some("203.0.113.99:30000".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(sd.media[0].connections[0].address, "203.0.113.99");
    assert_eq!(sd.media[1].port, 0);
    assert_eq!(sd.media[0].rtcp(), None);
    // Codecs, mid and the other attributes are untouched.
    assert_eq!(sd.media[0].codecs(), before.media[0].codecs());
    assert_eq!(sd.media[0].mid(), Some("0"));
    assert_eq!(sd.attributes, before.attributes);
    assert_eq!(
        sd.media[0].attributes.len(),
        before.media[0].attributes.len() - 1
    );
    // IPv6 relay address.
    let mut sd = SessionDescription::parse(BARESIP).unwrap();
    sd.rewrite_connection(ip("2001:db8::1"), &[30000]);
    let text = sd.to_string();
    assert!(text.contains("c=IN IP6 2001:db8::1\r\n"), "{text}");
    assert!(text.contains("m=audio 30000 RTP/AVP"));
    assert!(!text.contains("a=rtcp:"));
    assert!(text.contains("a=rtcp-rsize"));
    // A hold address is kept (the hold is still signalled).
    let mut sd =
        SessionDescription::parse(&SIPP_PCMA.replace("127.0.0.1\nt", "0.0.0.0\nt")).unwrap();
    assert!(sd.is_on_hold());
    sd.rewrite_connection(ip("203.0.113.99"), &[30000]);
    assert!(sd.is_on_hold());
    assert_eq!(sd.media[0].port, 30000);
}

#[test]
fn origin_version_follows_changes() {
    let first = SessionDescription::parse(SIPP_PCMA).unwrap();
    // An identical description keeps the version.
    let mut same = SessionDescription::parse(SIPP_PCMA).unwrap();
    same.origin = Origin::new("other", 1, ip("1.1.1.1"));
    same.follow(&first);
    assert_eq!(same.origin, first.origin);
    // A changed one takes over o= and bumps the version.
    let mut changed = with_direction("sendonly");
    changed.origin = Origin::new("other", 1, ip("1.1.1.1"));
    changed.follow(&first);
    assert!(changed.origin.same_session(&first.origin));
    assert_eq!(
        changed.origin.session_version,
        first.origin.session_version + 1
    );
    let mut b = first.clone();
    b.bump_version();
    assert_eq!(b.origin.session_version, first.origin.session_version + 1);
}

#[test]
fn offer_from_capabilities_and_back() {
    let mut caps = voice_caps();
    caps.ptime = Some(20);
    let o = offer(
        &caps,
        relay_origin(),
        ip("10.0.0.1"),
        &[("audio", 40000), ("video", 40002)],
    );
    let text = o.to_string();
    assert!(
        text.contains("m=audio 40000 RTP/AVP 8 0 96 101\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"));
    assert!(text.contains("a=fmtp:101 0-16\r\n"));
    assert!(text.contains("a=ptime:20\r\n"));
    assert!(text.contains("a=sendrecv\r\n"));
    assert!(text.contains("a=rtcp-mux\r\n"));
    // No video codecs: offered disabled.
    assert!(text.contains("m=video 0 RTP/AVP"));
    let parsed = SessionDescription::parse(&text).unwrap();
    assert_eq!(parsed, o);
    // A peer with PCMU and telephone-event answers our offer.
    let peer = Capabilities::audio(vec![
        Codec::new(0, "PCMU", 8000, 1),
        Codec::new(101, "telephone-event", 8000, 1),
    ]);
    let ans = answer(
        &parsed,
        &peer,
        Origin::new("peer", 7, ip("10.0.0.2")),
        ip("10.0.0.2"),
        &[5000, 5002],
    );
    assert_eq!(formats(&ans.media[0]), vec!["0", "101"]);
    assert_eq!(ans.media[1].port, 0);
}

#[test]
fn srtp_sdes_offer_answer() {
    let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAoc2VuZG1zZyk=";
    let mut caps = voice_caps();
    caps.protos = vec!["RTP/SAVP".into(), "RTP/AVP".into()];
    caps.crypto = vec![Crypto {
        tag: 0,
        suite: "AES_CM_128_HMAC_SHA1_80".into(),
        params: key.into(),
    }];
    let o = offer(&caps, relay_origin(), ip("10.0.0.1"), &[("audio", 40000)]);
    let crypto = o.media[0].crypto();
    assert_eq!(crypto.len(), 1);
    assert_eq!(crypto[0].tag, 1);
    assert_eq!(o.media[0].proto, "RTP/SAVP");
    // The answer to a SAVP offer picks a common suite and keeps the offer's tag.
    let text = format!(
        "{}a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:AAAA\na=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:BBBB|2^20|1:32\n",
        SIPP_PCMA.replace("RTP/AVP", "RTP/SAVP")
    );
    let sd = SessionDescription::parse(&text).unwrap();
    assert_eq!(sd.media[0].crypto()[1].params, "inline:BBBB|2^20|1:32");
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[40000]);
    let c = ans.media[0].crypto();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].tag, 4);
    assert_eq!(c[0].suite, "AES_CM_128_HMAC_SHA1_80");
    assert_eq!(c[0].params, key);
    // No common suite: rejected.
    caps.crypto[0].suite = "AEAD_AES_256_GCM".into();
    let ans = answer(&sd, &caps, relay_origin(), ip("10.0.0.1"), &[40000]);
    assert_eq!(ans.media[0].port, 0);
    // SAVP not among our protos: rejected.
    let ans = answer(&sd, &voice_caps(), relay_origin(), ip("10.0.0.1"), &[40000]);
    assert_eq!(ans.media[0].port, 0);
}

#[test]
fn static_payload_table() {
    assert_eq!(static_payload(0), Some(("PCMU", 8000, 1)));
    assert_eq!(static_payload(8), Some(("PCMA", 8000, 1)));
    assert_eq!(static_payload(9), Some(("G722", 8000, 1)));
    assert_eq!(static_payload(13), Some(("CN", 8000, 1)));
    assert_eq!(static_payload(18), Some(("G729", 8000, 1)));
    assert_eq!(static_payload(96), None);
    assert!(Codec::from_static(13).unwrap().is_auxiliary());
    // A dynamic type without rtpmap is skipped; an rtpmap overrides the table.
    let sd = SessionDescription::parse(
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0 97 3 x\na=rtpmap:3 foo/16000\n",
    )
    .unwrap();
    let c = sd.media[0].codecs();
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].name, "foo");
    assert_eq!(c[1].clock_rate, 16000);
}

#[test]
fn trailing_spaces_on_flags_tolerated() {
    let sd = SessionDescription::parse(&format!("{SIPP_PCMA}a=sendonly  \n")).unwrap();
    assert_eq!(sd.media_direction(0), Direction::SendOnly);
}
