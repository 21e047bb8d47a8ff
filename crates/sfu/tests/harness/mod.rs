//! An in-memory network for the SFU core: one `Sfu`, N clients made of two str0m `Rtc`s each
//! (publisher and subscriber), and a virtual clock that only moves when the harness moves it.
//!
//! Nothing here touches a socket or sleeps. Datagrams are routed by destination address with a
//! fixed one-way delay ([`Net::latency`]) and no loss; time jumps from one deadline (a timer of
//! the SFU or of a client `Rtc`, or a datagram's arrival) to the next, so a test of seconds of
//! media runs in milliseconds and always the same way.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use strowger_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use strowger_sfu::str0m::format::Codec;
use strowger_sfu::str0m::media::{
    Direction, KeyframeRequest, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast,
    SimulcastLayer,
};
use strowger_sfu::str0m::net::{Protocol, Receive};
use strowger_sfu::str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};
use strowger_sfu::{
    Notice, OfferedTrack, Output, ParticipantId, ParticipantInfo, Sfu, SfuConfig, SfuError,
    SfuEvent, Source, TrackLabel, TrackSummary,
};

/// The SFU's one advertised address.
pub const SFU_ADDR: ([u8; 4], u16) = ([10, 0, 0, 1], 5000);

pub fn sfu_addr() -> SocketAddr {
    SocketAddr::from(SFU_ADDR)
}

/// A config for tests: the one candidate, everything else default unless changed by the caller.
pub fn test_config() -> SfuConfig {
    SfuConfig {
        candidates: vec![sfu_addr()],
        // Generous, so the bandwidth estimate never decides a layer in these tests.
        initial_estimate_bps: 5_000_000,
        ..SfuConfig::default()
    }
}

/// A participant that may do everything.
pub fn info(name: &str) -> ParticipantInfo {
    ParticipantInfo {
        identity: name.to_string(),
        name: name.to_uppercase(),
        can_publish: true,
        can_subscribe: true,
        can_screenshare: true,
    }
}

/// A valid publisher offer with one send-only m-line per kind, from a throwaway `Rtc`.
pub fn offer_sdp(now: Instant, kinds: &[MediaKind]) -> String {
    let mut rtc = Rtc::builder().build(now);
    let mut api = rtc.sdp_api();
    for k in kinds {
        api.add_media(*k, Direction::SendOnly, None, None, None);
    }
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

/// One datagram in flight.
#[derive(Debug, Clone)]
pub struct Packet {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// One client-side `Rtc` with its fake socket address.
pub struct Peer {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub timeout: Option<Instant>,
    pub connected: bool,
    /// The first datagrams this peer sent (the robustness tests replay its STUN requests).
    pub sent: Vec<Vec<u8>>,
}

impl Peer {
    fn new(now: Instant, addr: SocketAddr) -> Peer {
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        Peer {
            rtc,
            addr,
            timeout: None,
            connected: false,
            sent: Vec::new(),
        }
    }
}

/// A frame the subscriber side of a client received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub mid: Mid,
    pub time: MediaTime,
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Media time between two video frames: 40 ms at 90 kHz (tests send 25 frames a second).
pub const FRAME_TICKS: u64 = 3600;

/// One video frame to write.
#[derive(Debug, Clone, Copy)]
pub struct VideoFrame {
    /// Simulcast layer, by rid.
    pub rid: Option<&'static str>,
    pub keyframe: bool,
    /// Written into the frame so a receiver can tell which layer it came from.
    pub layer: u8,
    /// Bytes in the frame.
    pub size: usize,
    /// Media time of the first frame (90 kHz): layers of one track may run on different clocks.
    pub time_base: u64,
}

/// What a client wants to publish in one m-line.
#[derive(Debug, Clone)]
pub struct PubTrack {
    pub kind: MediaKind,
    pub source: Source,
    /// Simulcast rids sent, lowest first (empty for none).
    pub rids: Vec<&'static str>,
    pub width: Option<u32>,
}

impl PubTrack {
    pub fn mic() -> PubTrack {
        PubTrack {
            kind: MediaKind::Audio,
            source: Source::Microphone,
            rids: vec![],
            width: None,
        }
    }

    pub fn camera() -> PubTrack {
        PubTrack {
            kind: MediaKind::Video,
            source: Source::Camera,
            rids: vec![],
            width: None,
        }
    }

    pub fn simulcast_camera(rids: &[&'static str], width: u32) -> PubTrack {
        PubTrack {
            kind: MediaKind::Video,
            source: Source::Camera,
            rids: rids.to_vec(),
            width: Some(width),
        }
    }
}

/// A test participant.
pub struct Client {
    pub name: String,
    pub id: ParticipantId,
    pub publisher: Peer,
    pub subscriber: Peer,
    /// Every notice the SFU addressed to this participant.
    pub notices: Vec<(Instant, Notice)>,
    /// mid → track, from the last answered subscribe offer.
    pub offered: HashMap<Mid, OfferedTrack>,
    /// Frames received on the subscriber connection.
    pub received: Vec<Received>,
    /// Keyframe requests that reached the publisher connection.
    pub keyframe_requests: Vec<(Instant, KeyframeRequest)>,
    /// Answer subscribe offers as they come (default).
    pub auto_answer: bool,
    /// Offers not answered (when `auto_answer` is off): (sdp, tracks).
    pub unanswered: Vec<(String, Vec<OfferedTrack>)>,
    /// Errors the SFU returned to our subscribe answers.
    pub answer_errors: Vec<SfuError>,
    /// Gone (left or removed): its peers are no longer driven.
    pub gone: bool,
    /// The tracks the SFU said we publish, by mid (from the last `publish_offer`).
    pub own_tracks: Vec<(String, TrackSummary)>,
    /// Per (mid, rid) count of frames written, to derive media time.
    frames_sent: HashMap<(Mid, Option<Rid>), u64>,
}

impl Client {
    /// Notices of one shape, in order.
    pub fn notices_matching<'a>(
        &'a self,
        f: impl Fn(&Notice) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Notice> + 'a {
        self.notices.iter().map(|(_, n)| n).filter(move |n| f(n))
    }

    pub fn subscribe_offers(&self) -> Vec<(String, Vec<OfferedTrack>)> {
        self.notices
            .iter()
            .filter_map(|(_, n)| match n {
                Notice::SubscribeOffer { sdp, tracks } => Some((sdp.clone(), tracks.clone())),
                _ => None,
            })
            .collect()
    }

    /// Frames received on the subscriber m-line that carries `kind` from `from`.
    pub fn received_from(&self, from: ParticipantId, kind: MediaKind) -> Vec<&Received> {
        self.received
            .iter()
            .filter(|r| {
                self.offered
                    .get(&r.mid)
                    .is_some_and(|t| t.participant == from && t.kind == kind)
            })
            .collect()
    }
}

/// The SFU and its clients on one virtual network.
pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub sfu: Sfu,
    pub clients: Vec<Client>,
    /// Events other than `Notify`, in order.
    pub events: Vec<(Instant, SfuEvent)>,
    /// Datagrams addressed to nobody we know.
    pub undeliverable: usize,
    /// One-way delay of every datagram (5 ms). With zero, str0m's bandwidth estimator measures an
    /// RTT of 0 and asks for its next timeout at "now", on which the SFU spins (see
    /// `a_zero_latency_network_does_not_hang_the_sfu` in robustness.rs).
    pub latency: Duration,
    sfu_timeout: Option<Instant>,
    /// When `handle_timeout` last ran: a deadline not after it is not asked for again at the
    /// same instant (when idle the SFU answers with a wall-clock time, unrelated to ours).
    sfu_fired_at: Option<Instant>,
    /// Datagrams in flight with their arrival time (FIFO: time only moves forward).
    queue: VecDeque<(Instant, Packet)>,
    to_answer: Vec<(usize, String, Vec<OfferedTrack>)>,
}

/// Bound on loop iterations of one `run_until`, so a livelock fails the test instead of hanging.
const MAX_ITERATIONS: usize = 2_000_000;

impl Net {
    pub fn new(cfg: SfuConfig) -> Net {
        let now = Instant::now();
        Net {
            start: now,
            now,
            sfu: Sfu::new(cfg),
            clients: Vec::new(),
            events: Vec::new(),
            undeliverable: 0,
            latency: Duration::from_millis(5),
            sfu_timeout: None,
            sfu_fired_at: None,
            queue: VecDeque::new(),
            to_answer: Vec::new(),
        }
    }

    /// Milliseconds since start (for messages).
    pub fn elapsed_ms(&self) -> u128 {
        (self.now - self.start).as_millis()
    }

    pub fn client(&self, c: usize) -> &Client {
        &self.clients[c]
    }

    pub fn id(&self, c: usize) -> ParticipantId {
        self.clients[c].id
    }

    // ------------------------------------------------------------ commands

    /// Joins a room as a new client; returns its index.
    pub fn join(&mut self, room: &str, who: ParticipantInfo) -> Result<usize, SfuError> {
        let name = who.identity.clone();
        let (id, _) = self.sfu.join(self.now, room, who)?;
        let n = self.clients.len() as u8 + 1;
        let ip = Ipv4Addr::new(192, 168, 1, n);
        self.clients.push(Client {
            name,
            id,
            publisher: Peer::new(self.now, SocketAddr::from((ip, 10_000))),
            subscriber: Peer::new(self.now, SocketAddr::from((ip, 20_000))),
            notices: Vec::new(),
            offered: HashMap::new(),
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            auto_answer: true,
            unanswered: Vec::new(),
            answer_errors: Vec::new(),
            gone: false,
            own_tracks: Vec::new(),
            frames_sent: HashMap::new(),
        });
        self.pump();
        Ok(self.clients.len() - 1)
    }

    /// Leaves; the client's connections are closed too.
    pub fn leave(&mut self, c: usize) -> Result<(), SfuError> {
        let id = self.clients[c].id;
        self.sfu.leave(self.now, id)?;
        let cl = &mut self.clients[c];
        cl.gone = true;
        cl.publisher.rtc.disconnect();
        cl.subscriber.rtc.disconnect();
        self.pump();
        Ok(())
    }

    /// Offers `tracks` on the client's publisher connection; returns their mids.
    pub fn publish(&mut self, c: usize, tracks: &[PubTrack]) -> Result<Vec<Mid>, SfuError> {
        let now = self.now;
        let cl = &mut self.clients[c];
        let mut api = cl.publisher.rtc.sdp_api();
        let mut mids = Vec::new();
        let mut labels = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            let simulcast = (!t.rids.is_empty()).then(|| {
                let mut s = Simulcast::new();
                for r in &t.rids {
                    s.add_send_layer(SimulcastLayer::new(r));
                }
                s
            });
            let mid = api.add_media(
                t.kind,
                Direction::SendOnly,
                Some(format!("{}-stream", cl.name)),
                Some(format!("{}-track{i}", cl.name)),
                simulcast,
            );
            labels.push(TrackLabel {
                mid: mid.to_string(),
                source: t.source,
                width: t.width,
            });
            mids.push(mid);
        }
        let (offer, pending): (SdpOffer, SdpPendingOffer) = api.apply().expect("changes to offer");
        let (answer, own) = self
            .sfu
            .publish_offer(now, cl.id, &offer.to_sdp_string(), labels)?;
        cl.own_tracks = own;
        let answer = SdpAnswer::from_sdp_string(&answer).expect("the SFU's answer parses");
        cl.publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the SFU's answer is acceptable");
        self.pump();
        Ok(mids)
    }

    /// Stops published m-lines (the client stops its transceivers and offers again).
    pub fn unpublish(&mut self, c: usize, mids: &[Mid]) -> Result<(), SfuError> {
        let now = self.now;
        let cl = &mut self.clients[c];
        let mut api = cl.publisher.rtc.sdp_api();
        for m in mids {
            api.stop_media(*m);
        }
        let (offer, pending) = api.apply().expect("changes to offer");
        let (answer, own) = self
            .sfu
            .publish_offer(now, cl.id, &offer.to_sdp_string(), vec![])?;
        cl.own_tracks = own;
        let answer = SdpAnswer::from_sdp_string(&answer).expect("the SFU's answer parses");
        cl.publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the SFU's answer is acceptable");
        self.pump();
        Ok(())
    }

    /// Answers the oldest unanswered subscribe offer of a client that has `auto_answer` off.
    pub fn answer_next(&mut self, c: usize) -> Result<(), SfuError> {
        let (sdp, tracks) = self.clients[c].unanswered.remove(0);
        let r = self.answer(c, &sdp, tracks);
        self.pump();
        r
    }

    fn answer(&mut self, c: usize, sdp: &str, tracks: Vec<OfferedTrack>) -> Result<(), SfuError> {
        let now = self.now;
        let cl = &mut self.clients[c];
        let offer = SdpOffer::from_sdp_string(sdp).expect("subscribe offer parses");
        let answer = cl
            .subscriber
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("subscribe offer is acceptable");
        cl.offered.clear();
        for t in tracks {
            cl.offered.insert(Mid::from(t.mid.as_str()), t);
        }
        self.sfu
            .subscribe_answer(now, cl.id, &answer.to_sdp_string())
    }

    // --------------------------------------------------------------- media

    /// The client's payload type for a codec on one of its m-lines.
    fn pt(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Pt {
        let w = rtc.writer(mid).expect("writer for a published mid");
        let pt = w
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt());
        pt.unwrap_or_else(|| panic!("{codec:?} negotiated on {mid}"))
    }

    /// Writes one 20 ms Opus frame with an audio level (dBov, 0 loudest, -127 silent).
    /// Returns the bytes written.
    pub fn send_audio(&mut self, c: usize, mid: Mid, level: Option<i8>) -> Vec<u8> {
        let now = self.now;
        let cl = &mut self.clients[c];
        let n = cl.frames_sent.entry((mid, None)).or_insert(0);
        let seq = *n;
        *n += 1;
        let mut data = vec![0xA0, c as u8];
        data.extend_from_slice(&(seq as u32).to_be_bytes());
        data.extend_from_slice(&[0x55; 20]);
        let pt = Self::pt(&mut cl.publisher.rtc, mid, Codec::Opus);
        let mut w = cl.publisher.rtc.writer(mid).expect("writer");
        if let Some(l) = level {
            w = w.audio_level(l, l > -50);
        }
        let time = MediaTime::new(
            seq * 960,
            strowger_sfu::str0m::media::Frequency::FORTY_EIGHT_KHZ,
        );
        w.write(pt, now, time, data.clone()).expect("audio write");
        data
    }

    /// Writes one VP8 frame without simulcast (see [`Net::send_frame`]).
    pub fn send_video(&mut self, c: usize, mid: Mid, keyframe: bool, size: usize) -> Vec<u8> {
        self.send_frame(
            c,
            mid,
            VideoFrame {
                rid: None,
                keyframe,
                layer: 0,
                size,
                time_base: 0,
            },
        )
    }

    /// Writes one VP8 frame ([`FRAME_TICKS`] of media time after the previous one). The frame is
    /// `[tag, layer, seq(4), filler…]`: `tag` bit 0 is the VP8 "P" (inter-frame) bit, so 0 makes
    /// str0m flag the frame as a keyframe; `layer` tells a receiver which source layer it came
    /// from. Returns the bytes written.
    pub fn send_frame(&mut self, c: usize, mid: Mid, f: VideoFrame) -> Vec<u8> {
        let VideoFrame {
            rid,
            keyframe,
            layer,
            size,
            time_base,
        } = f;
        let now = self.now;
        let cl = &mut self.clients[c];
        let rid = rid.map(Rid::from);
        let n = cl.frames_sent.entry((mid, rid)).or_insert(0);
        let seq = *n;
        *n += 1;
        let mut data = Vec::with_capacity(size.max(16));
        if keyframe {
            // P = 0 in the first byte; a VP8 start code and a size follow the sequence number.
            data.extend_from_slice(&[0x10, layer]);
        } else {
            data.extend_from_slice(&[0x11, layer]);
        }
        data.extend_from_slice(&(seq as u32).to_be_bytes());
        if keyframe {
            data.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
        }
        while data.len() < size.max(16) {
            data.push(0x42);
        }
        let pt = Self::pt(&mut cl.publisher.rtc, mid, Codec::Vp8);
        let mut w = cl.publisher.rtc.writer(mid).expect("writer");
        if let Some(r) = rid {
            w = w.rid(r);
        }
        let time = MediaTime::new(
            time_base + seq * FRAME_TICKS,
            strowger_sfu::str0m::media::Frequency::NINETY_KHZ,
        );
        w.write(pt, now, time, data.clone()).expect("video write");
        data
    }

    /// The subscriber connection asks for a keyframe on one of its m-lines.
    pub fn request_keyframe(&mut self, c: usize, mid: Mid) {
        let cl = &mut self.clients[c];
        let mut w = cl.subscriber.rtc.writer(mid).expect("subscriber writer");
        w.request_keyframe(None, KeyframeRequestKind::Pli)
            .expect("PLI negotiated and a stream is receiving");
    }

    /// Both connections of every client in `cs` are up.
    pub fn connected(&self, cs: &[usize]) -> bool {
        cs.iter()
            .all(|c| self.clients[*c].publisher.connected && self.clients[*c].subscriber.connected)
    }

    /// Runs until `cond` holds (at most 5 s of virtual time, 10 ms steps).
    pub fn wait_for(&mut self, what: &str, cond: impl Fn(&Net) -> bool) {
        let end = self.now + Duration::from_secs(5);
        while !cond(self) {
            assert!(
                self.now < end,
                "{what}: not reached after 5 s of virtual time"
            );
            self.advance(Duration::from_millis(10));
        }
    }

    /// Runs until `cond` holds, stepping `step` at a time, at most `limit`.
    pub fn run_while_not(&mut self, limit: Duration, step: Duration, cond: impl Fn(&Net) -> bool) {
        let end = self.now + limit;
        while !cond(self) {
            assert!(
                self.now < end,
                "condition not reached after {limit:?} (t = {} ms)",
                self.elapsed_ms()
            );
            self.advance(step);
        }
    }

    // ---------------------------------------------------------------- time

    /// Moves virtual time forward by `d`, handling every deadline and datagram on the way.
    pub fn advance(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    pub fn run_until(&mut self, deadline: Instant) {
        let mut stuck_at_same_instant = 0;
        for _ in 0..MAX_ITERATIONS {
            self.pump();
            let next = self.next_deadline();
            if next > deadline {
                if self.now < deadline {
                    self.now = deadline;
                }
                return;
            }
            if next > self.now {
                self.now = next;
                stuck_at_same_instant = 0;
            } else {
                stuck_at_same_instant += 1;
                if stuck_at_same_instant > 100 {
                    // Something keeps asking for "now": let a millisecond pass.
                    self.now += Duration::from_millis(1);
                    stuck_at_same_instant = 0;
                }
            }
            self.fire_timeouts();
        }
        panic!("run_until did not reach its deadline in {MAX_ITERATIONS} iterations");
    }

    fn next_deadline(&self) -> Instant {
        let far = self.now + Duration::from_secs(3600);
        // With no room and no participant the SFU has nothing scheduled and answers with a
        // wall-clock instant (see `an_idle_sfu_does_not_read_the_wall_clock`): ignore it.
        let idle = self.sfu.gauges() == (0, 0, 0);
        let mut t = match self.sfu_timeout {
            _ if idle => far,
            // Already handled at this instant: wait for time to move.
            Some(st) if st <= self.now && self.sfu_fired_at == Some(self.now) => far,
            Some(st) => st,
            None => far,
        };
        if let Some((at, _)) = self.queue.front() {
            t = t.min(*at);
        }
        for c in self.clients.iter().filter(|c| !c.gone) {
            for p in [&c.publisher, &c.subscriber] {
                if let Some(pt) = p.timeout {
                    t = t.min(pt);
                }
            }
        }
        t.max(self.now)
    }

    fn fire_timeouts(&mut self) {
        let now = self.now;
        if self.sfu_timeout.is_some_and(|t| t <= now) && self.sfu_fired_at != Some(now) {
            self.sfu_timeout = None;
            self.sfu_fired_at = Some(now);
            self.sfu.handle_timeout(now);
        }
        for c in self.clients.iter_mut().filter(|c| !c.gone) {
            for p in [&mut c.publisher, &mut c.subscriber] {
                if p.timeout.is_some_and(|t| t <= now) {
                    p.timeout = None;
                    p.rtc
                        .handle_input(Input::Timeout(now))
                        .expect("client rtc handles timeout");
                }
            }
        }
    }

    /// Drains every output and delivers every datagram, until all is quiet at `now`.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            for c in 0..self.clients.len() {
                self.poll_client(c);
            }
            self.drain_sfu();
            let answers = std::mem::take(&mut self.to_answer);
            for (c, sdp, tracks) in answers {
                if let Err(e) = self.answer(c, &sdp, tracks) {
                    self.clients[c].answer_errors.push(e);
                }
            }
            self.drain_sfu();
            let due = self.queue.front().is_some_and(|(at, _)| *at <= self.now);
            if !due && self.to_answer.is_empty() {
                return;
            }
            while self.queue.front().is_some_and(|(at, _)| *at <= self.now) {
                let (_, p) = self.queue.pop_front().expect("checked");
                self.deliver(p);
            }
        }
        panic!("network never went quiet");
    }

    fn drain_sfu(&mut self) {
        for _ in 0..1_000_000 {
            match self.sfu.poll_output() {
                Output::Transmit(t) => self.queue.push_back((
                    self.now + self.latency,
                    Packet {
                        from: t.source,
                        to: t.destination,
                        data: t.contents.to_vec(),
                    },
                )),
                Output::Event(SfuEvent::Notify(to, n)) => {
                    let Some(c) = self.clients.iter().position(|c| c.id == to) else {
                        panic!("notice for unknown participant {to}: {n:?}");
                    };
                    if let Notice::SubscribeOffer { sdp, tracks } = &n {
                        if self.clients[c].auto_answer && !self.clients[c].gone {
                            self.to_answer.push((c, sdp.clone(), tracks.clone()));
                        } else {
                            self.clients[c]
                                .unanswered
                                .push((sdp.clone(), tracks.clone()));
                        }
                    }
                    self.clients[c].notices.push((self.now, n));
                }
                Output::Event(e) => self.events.push((self.now, e)),
                Output::Timeout(t) => {
                    self.sfu_timeout = Some(t);
                    return;
                }
            }
        }
        panic!("the SFU never returned Timeout");
    }

    fn poll_client(&mut self, c: usize) {
        let now = self.now;
        let cl = &mut self.clients[c];
        if cl.gone {
            return;
        }
        for sub in [false, true] {
            let peer = if sub {
                &mut cl.subscriber
            } else {
                &mut cl.publisher
            };
            loop {
                match peer.rtc.poll_output().expect("client rtc output") {
                    RtcOutput::Timeout(t) => {
                        peer.timeout = Some(t);
                        break;
                    }
                    RtcOutput::Transmit(t) => {
                        if peer.sent.len() < 200 {
                            peer.sent.push(t.contents.to_vec());
                        }
                        self.queue.push_back((
                            now + self.latency,
                            Packet {
                                from: t.source,
                                to: t.destination,
                                data: t.contents.to_vec(),
                            },
                        ));
                    }
                    RtcOutput::Event(e) => match e {
                        Event::Connected => peer.connected = true,
                        Event::MediaData(d) if sub => cl.received.push(Received {
                            at: now,
                            mid: d.mid,
                            time: d.time,
                            keyframe: d.is_keyframe(),
                            data: d.data.to_vec(),
                        }),
                        Event::KeyframeRequest(r) if !sub => cl.keyframe_requests.push((now, r)),
                        _ => {}
                    },
                }
            }
        }
    }

    fn deliver(&mut self, p: Packet) {
        let now = self.now;
        if p.to == sfu_addr() {
            self.sfu.handle_receive(now, p.from, p.to, &p.data);
            self.drain_sfu();
            return;
        }
        for cl in self.clients.iter_mut().filter(|c| !c.gone) {
            for peer in [&mut cl.publisher, &mut cl.subscriber] {
                if peer.addr == p.to {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: p.from,
                            destination: p.to,
                            contents: p.data.as_slice().try_into().expect("SFU sent a datagram"),
                        },
                    );
                    peer.rtc
                        .handle_input(input)
                        .expect("client rtc accepts the SFU's datagram");
                    return;
                }
            }
        }
        self.undeliverable += 1;
    }

    /// Injects a datagram into the SFU as if it arrived from `from`.
    pub fn inject(&mut self, from: SocketAddr, data: &[u8]) {
        self.sfu.handle_receive(self.now, from, sfu_addr(), data);
        self.drain_sfu();
    }
}
