//! What both modes share: the synthetic media (payload layout, pacing), the publisher's SDP
//! offer, and small statistics helpers.

use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::{Rtc, RtcError};

/// Opus packets: one every 20 ms (50 pps).
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Video frames per second.
pub const VIDEO_FPS: u64 = 30;
/// A keyframe at least this often (and on every keyframe request).
pub const KEYFRAME_EVERY: u64 = 2 * VIDEO_FPS;

/// Marks a loadgen video frame; found at [`TAG_AT`].
const MAGIC: [u8; 4] = *b"SLG1";
/// Where our tag starts in a video frame (after a VP8-like frame header).
const TAG_AT: usize = 12;
/// Magic, publisher index (u32), sequence number (u64), send time in ns (u64).
const TAG_LEN: usize = 4 + 4 + 8 + 8;

/// The smallest video frame that carries the tag.
pub const MIN_VIDEO_BYTES: usize = TAG_AT + TAG_LEN;

/// A synthetic VP8 frame of `size` bytes. Byte 0 carries VP8's P bit (0 = keyframe), which is
/// all str0m and the SFU look at; a keyframe also gets VP8's start code. Then our tag.
pub fn video_frame(size: usize, key: bool, publisher: u32, seq: u64, send_ns: u64) -> Vec<u8> {
    let size = size.max(MIN_VIDEO_BYTES);
    let mut v = vec![0u8; size];
    v[0] = if key { 0x10 } else { 0x11 };
    if key {
        v[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        // 640x360
        v[6..10].copy_from_slice(&[0x80, 0x02, 0x68, 0x01]);
    }
    let t = &mut v[TAG_AT..TAG_AT + TAG_LEN];
    t[0..4].copy_from_slice(&MAGIC);
    t[4..8].copy_from_slice(&publisher.to_be_bytes());
    t[8..16].copy_from_slice(&seq.to_be_bytes());
    t[16..24].copy_from_slice(&send_ns.to_be_bytes());
    // Filler that is not all zeros (cheap, deterministic).
    for (i, b) in v[TAG_AT + TAG_LEN..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seq as u8);
    }
    v
}

/// The tag of a loadgen video frame: (publisher, seq, send time ns).
pub fn parse_video(data: &[u8]) -> Option<(u32, u64, u64)> {
    let t = data.get(TAG_AT..TAG_AT + TAG_LEN)?;
    if t[0..4] != MAGIC {
        return None;
    }
    let publisher = u32::from_be_bytes(t[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(t[8..16].try_into().ok()?);
    let send_ns = u64::from_be_bytes(t[16..24].try_into().ok()?);
    Some((publisher, seq, send_ns))
}

/// A synthetic Opus packet (the SFU never decodes it).
pub fn audio_frame(size: usize, n: u64) -> Vec<u8> {
    let mut v = vec![0u8; size.max(1)];
    // TOC byte: config 31 (CELT FB 20 ms), mono, one frame.
    v[0] = 0xf8;
    for (i, b) in v[1..].iter_mut().enumerate() {
        *b = (i as u8) ^ (n as u8);
    }
    v
}

/// Adds a send-only audio and video m-line and makes the offer: (sdp, pending, audio, video).
pub fn publisher_offer(rtc: &mut Rtc, stream: &str) -> (String, SdpPendingOffer, Mid, Mid) {
    let mut api = rtc.sdp_api();
    let amid = api.add_media(
        MediaKind::Audio,
        Direction::SendOnly,
        Some(stream.to_string()),
        Some(format!("{stream}-a")),
        None,
    );
    let vmid = api.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        Some(stream.to_string()),
        Some(format!("{stream}-v")),
        None,
    );
    let (offer, pending) = api.apply().expect("two new m-lines are a change");
    (offer.to_sdp_string(), pending, amid, vmid)
}

/// The negotiated payload type of `codec` on `mid`.
pub fn pt_for(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Option<Pt> {
    let w = rtc.writer(mid)?;
    let pt = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt());
    pt
}

/// The media a publisher sends, paced from the instant its connection came up.
pub struct PubMedia {
    /// Index carried in each video frame (unique in the run).
    pub index: u32,
    pub amid: Mid,
    pub vmid: Mid,
    apt: Option<Pt>,
    vpt: Option<Pt>,
    start: Option<Instant>,
    audio_n: u64,
    video_n: u64,
    want_key: bool,
    pub audio_bytes: usize,
    pub video_bytes: usize,
    /// Frames written (audio, video).
    pub sent_audio: u64,
    pub sent_video: u64,
    /// Write errors from str0m.
    pub errors: u64,
}

impl PubMedia {
    pub fn new(index: u32, amid: Mid, vmid: Mid, audio_bytes: usize, video_bytes: usize) -> Self {
        PubMedia {
            index,
            amid,
            vmid,
            apt: None,
            vpt: None,
            start: None,
            audio_n: 0,
            video_n: 0,
            want_key: true,
            audio_bytes,
            video_bytes,
            sent_audio: 0,
            sent_video: 0,
            errors: 0,
        }
    }

    /// The connection is up: media starts now.
    pub fn start(&mut self, rtc: &mut Rtc, now: Instant) {
        if self.start.is_some() {
            return;
        }
        self.apt = pt_for(rtc, self.amid, Codec::Opus);
        self.vpt = pt_for(rtc, self.vmid, Codec::Vp8);
        self.start = Some(now);
    }

    pub fn started(&self) -> bool {
        self.start.is_some()
    }

    /// The next instant something is due, if started.
    pub fn next_due(&self) -> Option<Instant> {
        let s = self.start?;
        Some(self.audio_at(s).min(self.video_at(s)))
    }

    fn audio_at(&self, s: Instant) -> Instant {
        s + AUDIO_INTERVAL * self.audio_n as u32
    }

    fn video_at(&self, s: Instant) -> Instant {
        s + Duration::from_nanos(self.video_n * 1_000_000_000 / VIDEO_FPS)
    }

    /// A keyframe was asked for: the next video frame is one.
    pub fn request_keyframe(&mut self) {
        self.want_key = true;
    }

    /// Writes every frame due at `now`. `clock_ns` gives the send timestamp put in video frames.
    /// Returns the (publisher, seq) of video frames written, for the caller's window accounting.
    /// Bounded: at most 10 frames of each kind per call (a stalled caller does not burst forever).
    pub fn send_due(
        &mut self,
        rtc: &mut Rtc,
        now: Instant,
        clock_ns: impl Fn(Instant) -> u64,
        mut on_video: impl FnMut(u64),
    ) -> Result<(), RtcError> {
        let Some(s) = self.start else {
            return Ok(());
        };
        for _ in 0..10 {
            let at = self.audio_at(s);
            if at > now {
                break;
            }
            if let (Some(pt), Some(w)) = (self.apt, rtc.writer(self.amid)) {
                let t = MediaTime::new(self.audio_n * 960, Frequency::FORTY_EIGHT_KHZ);
                let data = audio_frame(self.audio_bytes, self.audio_n);
                match w.audio_level(-30, true).write(pt, at, t, data) {
                    Ok(()) => self.sent_audio += 1,
                    Err(_) => self.errors += 1,
                }
            }
            self.audio_n += 1;
        }
        for _ in 0..10 {
            let at = self.video_at(s);
            if at > now {
                break;
            }
            let seq = self.video_n;
            let key = self.want_key || seq.is_multiple_of(KEYFRAME_EVERY);
            if let (Some(pt), Some(w)) = (self.vpt, rtc.writer(self.vmid)) {
                let t = MediaTime::new(seq * 90_000 / VIDEO_FPS, Frequency::NINETY_KHZ);
                let data = video_frame(self.video_bytes, key, self.index, seq, clock_ns(now));
                match w.write(pt, at, t, data) {
                    Ok(()) => {
                        self.sent_video += 1;
                        self.want_key = false;
                        on_video(seq);
                    }
                    Err(_) => self.errors += 1,
                }
            }
            self.video_n += 1;
        }
        Ok(())
    }
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// RTCP by RFC 5761 demultiplexing (second byte 192..=223); else RTP. SRTP leaves the header clear.
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && (192..=223).contains(&buf[1]) && (buf[0] >> 6) == 2
}

/// An RTP (not RTCP) packet, by its version bits.
pub fn is_rtp(buf: &[u8]) -> bool {
    buf.len() >= 12 && (buf[0] >> 6) == 2 && !is_rtcp(buf)
}

/// An RTP packet with the padding bit: str0m's bandwidth probes (RTX padding).
pub fn is_padding_rtp(buf: &[u8]) -> bool {
    is_rtp(buf) && (buf[0] & 0x20) != 0
}

/// The one-minute load average.
pub fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A DTLS certificate shared by all client `Rtc`s of the process (key generation is slow).
pub fn shared_cert() -> Option<str0m::config::DtlsCert> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_tag_round_trips() {
        let f = video_frame(1000, true, 7, 123456, 987654321);
        assert_eq!(f.len(), 1000);
        assert_eq!(f[0] & 1, 0, "keyframe P bit");
        assert_eq!(parse_video(&f), Some((7, 123456, 987654321)));
        let d = video_frame(10, false, 1, 2, 3);
        assert_eq!(d.len(), MIN_VIDEO_BYTES);
        assert_eq!(d[0] & 1, 1);
        assert_eq!(parse_video(&d), Some((1, 2, 3)));
        assert_eq!(parse_video(&[0u8; 40]), None);
    }

    #[test]
    fn quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn rtp_rtcp_demux() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x80;
        rtp[1] = 96;
        assert!(is_rtp(&rtp) && !is_rtcp(&rtp) && !is_padding_rtp(&rtp));
        rtp[0] = 0xa0;
        assert!(is_padding_rtp(&rtp));
        let mut rtcp = [0u8; 20];
        rtcp[0] = 0x81;
        rtcp[1] = 201;
        assert!(is_rtcp(&rtcp) && !is_rtp(&rtcp));
    }
}
