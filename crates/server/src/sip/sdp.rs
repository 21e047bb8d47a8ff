//! The B2BUA's use of SDP: where a leg wants its media, and the same description pointed at the
//! relay for the other leg (c= and m= rewritten, our own o= line per leg, versions increasing).

use std::net::SocketAddr;

use bytes::Bytes;
use strowger_sip::sdp::{self, SessionDescription};

/// The media a description asks for: its first audio stream.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// RTP address; `None` when on hold with `c=0.0.0.0`.
    pub rtp: Option<SocketAddr>,
    /// RTCP address when it is not RTP port + 1 (`a=rtcp`, or the RTP address with `a=rtcp-mux`).
    pub rtcp: Option<SocketAddr>,
    /// sendonly, inactive or `c=0.0.0.0`.
    pub hold: bool,
}

/// Our `o=` line toward one leg, and the last description sent there.
#[derive(Debug, Default)]
pub struct Origin {
    base: Option<sdp::Origin>,
    last: Option<SessionDescription>,
}

impl Origin {
    pub fn new() -> Self {
        Origin::default()
    }
}

fn audio_index(d: &SessionDescription) -> Option<usize> {
    d.media
        .iter()
        .position(|m| m.kind.eq_ignore_ascii_case("audio") && !m.is_rejected() && m.is_rtp())
}

/// Where the first audio stream of `body` goes. `None`: not SDP, or no audio stream.
pub fn media_target(body: &[u8]) -> Option<Target> {
    let d = SessionDescription::parse_bytes(body).ok()?;
    let i = audio_index(&d)?;
    let hold = d.is_media_on_hold(i);
    let rtp = d
        .media_addr(i)
        .filter(|a| !a.ip().is_unspecified() && a.port() != 0);
    let m = &d.media[i];
    let rtcp = if m.has_attribute("rtcp-mux") {
        rtp
    } else {
        m.rtcp().and_then(|r| {
            let ip = r
                .connection
                .as_ref()
                .and_then(|c| c.ip())
                .or_else(|| rtp.map(|a| a.ip()))?;
            Some(SocketAddr::new(ip, r.port))
        })
    };
    Some(Target { rtp, rtcp, hold })
}

/// `body` with its first audio stream pointed at `addr` (other streams rejected: the relay
/// anchors one audio stream), and our `o=` line for that leg. `None` if `body` is not SDP with
/// an audio stream.
pub fn rewrite(body: &[u8], addr: SocketAddr, origin: &mut Origin) -> Option<Bytes> {
    let mut d = SessionDescription::parse_bytes(body).ok()?;
    let i = audio_index(&d)?;
    let mut ports = Vec::with_capacity(d.media.len());
    for (j, m) in d.media.iter_mut().enumerate() {
        if j == i {
            ports.push(addr.port());
        } else {
            m.port = 0;
            ports.push(0);
        }
    }
    d.rewrite_connection(addr.ip(), &ports);
    match (&origin.base, &origin.last) {
        (Some(base), Some(last)) => {
            d.origin = base.clone();
            d.follow(last);
        }
        _ => {
            d.origin = sdp::Origin::new("strowger", u64::from(rand::random::<u32>()), addr.ip());
        }
    }
    origin.base = Some(d.origin.clone());
    origin.last = Some(d.clone());
    Some(Bytes::from(d.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\nm=video 51372 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn target_and_rewrite() {
        let t = media_target(OFFER.as_bytes()).unwrap();
        assert_eq!(t.rtp, Some("192.0.2.10:49170".parse().unwrap()));
        assert!(!t.hold);
        let mut o = Origin::new();
        let relay: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        let out = rewrite(OFFER.as_bytes(), relay, &mut o).unwrap();
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.contains("c=IN IP4 203.0.113.5"), "{s}");
        assert!(s.contains("m=audio 40000 RTP/AVP 8 0 101"), "{s}");
        assert!(s.contains("m=video 0 "), "{s}");
        assert!(!s.contains("192.0.2.10"), "topology hidden: {s}");
        assert!(s.contains("telephone-event"), "{s}");
        let v1 = s.lines().find(|l| l.starts_with("o=")).unwrap().to_string();
        // The same description again keeps the version; a changed one bumps it.
        let again = rewrite(OFFER.as_bytes(), relay, &mut o).unwrap();
        let v2 = std::str::from_utf8(&again)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .to_string();
        assert_eq!(v1, v2);
        let hold = OFFER.replace("a=sendrecv", "a=sendonly");
        assert!(media_target(hold.as_bytes()).unwrap().hold);
        let held = rewrite(hold.as_bytes(), relay, &mut o).unwrap();
        let v3 = std::str::from_utf8(&held)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .to_string();
        assert_ne!(v1, v3);
        assert!(std::str::from_utf8(&held).unwrap().contains("a=sendonly"));
    }

    #[test]
    fn not_sdp() {
        assert!(media_target(b"hello").is_none());
        let mut o = Origin::new();
        assert!(rewrite(b"v=0\r\n", "127.0.0.1:1".parse().unwrap(), &mut o).is_none());
    }
}
