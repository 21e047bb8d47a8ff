//! `inproc`: the SFU core and every client `Rtc` in one process, on a virtual clock and a virtual
//! network in memory. Packets are delivered at once (no latency, no loss); time advances in fixed
//! ticks, so a run's packet counts do not depend on how fast the machine is.
//!
//! Only the time spent inside `Sfu` calls is measured (an `Instant` around each call): the client
//! side (str0m's SRTP, DTLS, depacketizing) costs as much again and is not the SFU's.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};
use strowger_sfu::{
    Counters, Notice, Output, ParticipantId, ParticipantInfo, RoomOptions, Sfu, SfuConfig,
    SfuEvent, Source, TrackLabel,
};

use crate::common::{self, PubMedia};

/// Options of the `inproc` mode.
#[derive(Debug, Clone, clap::Args)]
pub struct InprocArgs {
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publishers per room (audio + video each; they subscribe to nothing).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscribers per room (receive every publisher of the room; publish nothing).
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Virtual seconds before the measurement window (ICE, DTLS, first keyframes).
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Virtual seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Virtual clock step in microseconds.
    #[arg(long, default_value_t = 1000)]
    pub tick_us: u64,
    /// Bytes per video frame (one RTP packet up to ~1100).
    #[arg(long, default_value_t = 1000)]
    pub video_bytes: usize,
    /// Bytes per Opus packet.
    #[arg(long, default_value_t = 80)]
    pub audio_bytes: usize,
    /// One-way delay of the virtual network in microseconds (delivered at the first tick after
    /// it). Kept above zero: with a zero RTT str0m's delay-based estimator re-arms its timer at
    /// `now` (the SFU before 2b68773 then spun forever in `handle_timeout`), and a LAN-like
    /// delay is closer to what the SFU's bandwidth estimation sees in production.
    #[arg(long, default_value_t = 2000)]
    pub latency_us: u64,
}

const SFU_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7882);

enum Kind {
    Pub {
        media: PubMedia,
    },
    Sub {
        video: u64,
        audio: u64,
        /// Per publisher index: last seq seen, frames seen, gaps seen.
        seen: HashMap<u32, (u64, u64, u64)>,
        /// Virtual send-to-receive time of video frames in the window, µs.
        lat_us: Vec<u64>,
    },
}

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    pid: ParticipantId,
    timeout: Instant,
    connected: bool,
    failed: bool,
    kind: Kind,
}

/// Time spent in the SFU, by entry point.
#[derive(Debug, Default, Clone, Copy)]
struct SfuTime {
    receive: Duration,
    timeout: Duration,
    poll: Duration,
    commands: Duration,
    receive_calls: u64,
    timeout_calls: u64,
    poll_calls: u64,
}

impl SfuTime {
    fn total(&self) -> Duration {
        self.receive + self.timeout + self.poll + self.commands
    }
}

/// Datagrams out of the SFU, by destination and type.
#[derive(Debug, Default, Clone, Copy)]
struct Meter {
    to_sub_rtp: u64,
    to_sub_padding: u64,
    to_sub_rtcp: u64,
    to_sub_other: u64,
    to_sub_bytes: u64,
    to_pub: u64,
    into_sfu: u64,
}

struct Sim {
    now: Instant,
    sfu: Sfu,
    sfu_deadline: Instant,
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    by_pid: HashMap<ParticipantId, usize>,
    /// Datagrams in flight, with their arrival time (FIFO: one fixed delay).
    to_sfu: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    to_client: VecDeque<(Instant, usize, Vec<u8>)>,
    latency: Duration,
    offers: VecDeque<(usize, String)>,
    time: SfuTime,
    meter: Meter,
    client_errors: u64,
    base: Instant,
    measuring: bool,
}

impl Sim {
    fn drain_sfu(&mut self) {
        // Bounded: the SFU returns Timeout once it has nothing; the bound guards against a bug.
        for _ in 0..10_000_000 {
            let t0 = Instant::now();
            let o = self.sfu.poll_output();
            self.time.poll += t0.elapsed();
            self.time.poll_calls += 1;
            match o {
                Output::Transmit(t) => {
                    let Some(&i) = self.by_addr.get(&t.destination) else {
                        continue;
                    };
                    let buf: &[u8] = &t.contents;
                    match self.clients[i].kind {
                        Kind::Sub { .. } => {
                            self.meter.to_sub_bytes += buf.len() as u64;
                            if common::is_padding_rtp(buf) {
                                self.meter.to_sub_padding += 1;
                            } else if common::is_rtp(buf) {
                                self.meter.to_sub_rtp += 1;
                            } else if common::is_rtcp(buf) {
                                self.meter.to_sub_rtcp += 1;
                            } else {
                                self.meter.to_sub_other += 1;
                            }
                        }
                        Kind::Pub { .. } => self.meter.to_pub += 1,
                    }
                    self.to_client
                        .push_back((self.now + self.latency, i, buf.to_vec()));
                }
                Output::Event(SfuEvent::Notify(pid, Notice::SubscribeOffer { sdp, .. })) => {
                    if let Some(&i) = self.by_pid.get(&pid) {
                        self.offers.push_back((i, sdp));
                    }
                }
                Output::Event(SfuEvent::Removed(pid, why)) => {
                    eprintln!("warning: SFU removed {pid}: {why:?}");
                    if let Some(&i) = self.by_pid.get(&pid) {
                        self.clients[i].failed = true;
                    }
                }
                Output::Event(_) => {}
                Output::Timeout(t) => {
                    self.sfu_deadline = t;
                    return;
                }
            }
        }
    }

    fn drain_client(&mut self, i: usize) {
        let now = self.now;
        let now_ns = now.saturating_duration_since(self.base).as_nanos() as u64;
        let measuring = self.measuring;
        let arrive = now + self.latency;
        let c = &mut self.clients[i];
        if c.failed {
            return;
        }
        for _ in 0..1_000_000 {
            match c.rtc.poll_output() {
                Ok(RtcOutput::Transmit(t)) => {
                    self.to_sfu
                        .push_back((arrive, t.source, t.contents.to_vec()));
                }
                Ok(RtcOutput::Timeout(t)) => {
                    c.timeout = t;
                    return;
                }
                Ok(RtcOutput::Event(e)) => match (&mut c.kind, e) {
                    (Kind::Pub { media, .. }, Event::Connected) => {
                        c.connected = true;
                        media.start(&mut c.rtc, now);
                    }
                    (Kind::Sub { .. }, Event::Connected) => c.connected = true,
                    (Kind::Pub { media, .. }, Event::KeyframeRequest(_)) => {
                        media.request_keyframe()
                    }
                    (
                        Kind::Sub {
                            video,
                            audio,
                            seen,
                            lat_us,
                        },
                        Event::MediaData(d),
                    ) => {
                        if d.params.spec().codec.is_audio() {
                            *audio += 1;
                        } else {
                            *video += 1;
                            if let Some((p, seq, sent)) = common::parse_video(&d.data) {
                                if measuring && lat_us.len() < 10_000_000 {
                                    lat_us.push(now_ns.saturating_sub(sent) / 1000);
                                }
                                let e = seen.entry(p).or_insert((seq, 0, 0));
                                if e.1 > 0 && seq > e.0 + 1 {
                                    e.2 += seq - e.0 - 1;
                                }
                                e.0 = seq;
                                e.1 += 1;
                            }
                        }
                    }
                    (
                        _,
                        Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected),
                    ) => eprintln!("warning: client {i} ICE disconnected"),
                    _ => {}
                },
                Err(e) => {
                    eprintln!("warning: client {i} failed: {e}");
                    c.failed = true;
                    self.client_errors += 1;
                    return;
                }
            }
        }
    }

    /// Delivers every datagram due, and the answers to subscribe offers, until quiet.
    fn pump(&mut self) {
        let now = self.now;
        for _ in 0..10_000_000 {
            if self.to_sfu.front().is_some_and(|p| p.0 <= now) {
                let (_, src, buf) = self.to_sfu.pop_front().expect("checked");
                self.meter.into_sfu += 1;
                let t0 = Instant::now();
                self.sfu.handle_receive(self.now, src, SFU_ADDR, &buf);
                self.time.receive += t0.elapsed();
                self.time.receive_calls += 1;
                self.drain_sfu();
                continue;
            }
            if self.to_client.front().is_some_and(|p| p.0 <= now) {
                let (_, i, buf) = self.to_client.pop_front().expect("checked");
                let c = &mut self.clients[i];
                if c.failed {
                    continue;
                }
                let Ok(contents) = buf.as_slice().try_into() else {
                    continue;
                };
                let input = Input::Receive(
                    self.now,
                    Receive {
                        proto: Protocol::Udp,
                        source: SFU_ADDR,
                        destination: c.addr,
                        contents,
                    },
                );
                if let Err(e) = c.rtc.handle_input(input) {
                    eprintln!("warning: client {i} refused input: {e}");
                }
                self.drain_client(i);
                continue;
            }
            if let Some((i, sdp)) = self.offers.pop_front() {
                self.answer(i, &sdp);
                continue;
            }
            return;
        }
        eprintln!("warning: pump bound reached");
    }

    fn answer(&mut self, i: usize, sdp: &str) {
        let c = &mut self.clients[i];
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("warning: bad subscribe offer: {e}");
                return;
            }
        };
        let answer = match c.rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => {
                eprintln!("warning: subscribe offer refused: {e}");
                return;
            }
        };
        let pid = c.pid;
        let t0 = Instant::now();
        let r = self.sfu.subscribe_answer(self.now, pid, &answer);
        self.time.commands += t0.elapsed();
        if let Err(e) = r {
            eprintln!("warning: subscribe_answer: {e}");
        }
        self.drain_client(i);
        self.drain_sfu();
    }

    /// One tick: timers, media, then the network until quiet.
    fn step(&mut self) {
        if self.sfu_deadline <= self.now {
            let t0 = Instant::now();
            self.sfu.handle_timeout(self.now);
            self.time.timeout += t0.elapsed();
            self.time.timeout_calls += 1;
            self.drain_sfu();
        }
        let now = self.now;
        let base = self.base;
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.failed {
                continue;
            }
            let mut touched = false;
            if c.timeout <= now {
                if let Err(e) = c.rtc.handle_input(Input::Timeout(now)) {
                    eprintln!("warning: client {i} timeout: {e}");
                }
                touched = true;
            }
            if let Kind::Pub { media, .. } = &mut c.kind {
                if media.next_due().is_some_and(|t| t <= now) {
                    let clock = |t: Instant| t.saturating_duration_since(base).as_nanos() as u64;
                    if let Err(e) = media.send_due(&mut c.rtc, now, clock, |_| {}) {
                        eprintln!("warning: publisher {i}: {e}");
                    }
                    touched = true;
                }
            }
            if touched {
                self.drain_client(i);
            }
        }
        self.pump();
    }
}

fn info(identity: String, publish: bool) -> ParticipantInfo {
    ParticipantInfo {
        name: identity.clone(),
        identity,
        can_publish: publish,
        can_subscribe: !publish,
        can_screenshare: false,
    }
}

fn client_addr(n: usize) -> SocketAddr {
    let n = n as u32 + 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 1, (n >> 8) as u8, n as u8)),
        40000 + (n % 20000) as u16,
    )
}

/// Runs the `inproc` benchmark and prints its report (text, then one `RESULT {json}` line).
pub fn run(a: InprocArgs) -> Result<(), String> {
    if a.rooms == 0 || a.publishers == 0 || a.subscribers == 0 {
        return Err("rooms, publishers and subscribers must be at least 1".into());
    }
    let total = a.rooms * (a.publishers + a.subscribers);
    if total > 60_000 {
        return Err("at most 60000 participants".into());
    }
    let load_before = common::load1();
    let base = Instant::now();
    let cfg = SfuConfig {
        candidates: vec![SFU_ADDR],
        max_participants: total + 1,
        max_rooms: a.rooms + 1,
        default_room: RoomOptions {
            max_participants: a.publishers + a.subscribers,
            empty_timeout: Duration::from_secs(300),
        },
        ..SfuConfig::default()
    };
    let mut sim = Sim {
        now: base,
        sfu: Sfu::new(cfg),
        sfu_deadline: base,
        clients: Vec::with_capacity(total),
        by_addr: HashMap::new(),
        by_pid: HashMap::new(),
        to_sfu: VecDeque::new(),
        to_client: VecDeque::new(),
        latency: Duration::from_micros(a.latency_us.max(1)),
        offers: VecDeque::new(),
        time: SfuTime::default(),
        meter: Meter::default(),
        client_errors: 0,
        base,
        measuring: false,
    };
    let cert = common::shared_cert();
    let new_rtc = |now: Instant, addr: SocketAddr| -> Rtc {
        let mut b = Rtc::builder();
        if let Some(c) = &cert {
            b = b.set_dtls_cert(c.clone());
        }
        let mut rtc = b.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("valid host candidate"));
        rtc
    };

    // Publishers first, then subscribers: each subscriber gets one offer with every track.
    let mut pub_index = 0u32;
    for r in 0..a.rooms {
        let room = format!("room-{r}");
        for p in 0..a.publishers {
            let i = sim.clients.len();
            let addr = client_addr(i);
            let t0 = Instant::now();
            let joined = sim
                .sfu
                .join(sim.now, &room, info(format!("pub-{r}-{p}"), true));
            sim.time.commands += t0.elapsed();
            let (pid, _) = joined.map_err(|e| format!("join: {e}"))?;
            let mut rtc = new_rtc(sim.now, addr);
            let (sdp, pending, amid, vmid) = common::publisher_offer(&mut rtc, &pid.to_string());
            let labels = vec![
                TrackLabel {
                    mid: amid.to_string(),
                    source: Source::Microphone,
                    width: None,
                },
                TrackLabel {
                    mid: vmid.to_string(),
                    source: Source::Camera,
                    width: Some(640),
                },
            ];
            let t0 = Instant::now();
            let answer = sim.sfu.publish_offer(sim.now, pid, &sdp, labels);
            sim.time.commands += t0.elapsed();
            let (answer, _tracks) = answer.map_err(|e| format!("publish_offer: {e}"))?;
            let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
            rtc.sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| format!("accept_answer: {e}"))?;
            let media = PubMedia::new(pub_index, amid, vmid, a.audio_bytes, a.video_bytes);
            pub_index += 1;
            sim.clients.push(Client {
                rtc,
                addr,
                pid,
                timeout: sim.now,
                connected: false,
                failed: false,
                kind: Kind::Pub { media },
            });
            sim.by_addr.insert(addr, i);
            sim.by_pid.insert(pid, i);
            sim.drain_client(i);
            sim.drain_sfu();
        }
        for s in 0..a.subscribers {
            let i = sim.clients.len();
            let addr = client_addr(i);
            let t0 = Instant::now();
            let joined = sim
                .sfu
                .join(sim.now, &room, info(format!("sub-{r}-{s}"), false));
            sim.time.commands += t0.elapsed();
            let (pid, _) = joined.map_err(|e| format!("join: {e}"))?;
            sim.clients.push(Client {
                rtc: new_rtc(sim.now, addr),
                addr,
                pid,
                timeout: sim.now,
                connected: false,
                failed: false,
                kind: Kind::Sub {
                    video: 0,
                    audio: 0,
                    seen: HashMap::new(),
                    lat_us: Vec::new(),
                },
            });
            sim.by_addr.insert(addr, i);
            sim.by_pid.insert(pid, i);
            sim.drain_sfu();
        }
    }
    sim.pump();
    let setup_wall = base.elapsed();

    let tick = Duration::from_micros(a.tick_us.max(1));
    let warm_end = sim.now + Duration::from_secs_f64(a.warmup.max(0.0));
    let end = warm_end + Duration::from_secs_f64(a.seconds.max(0.0));
    let max_steps = ((a.warmup + a.seconds) * 1e6 / a.tick_us.max(1) as f64) as u64 + 10;
    let mut steps = 0u64;
    while sim.now < warm_end && steps < max_steps {
        sim.step();
        sim.now += tick;
        steps += 1;
    }

    // Measurement window.
    let connected = sim.clients.iter().filter(|c| c.connected).count();
    let failed = sim.clients.iter().filter(|c| c.failed).count();
    if connected < sim.clients.len() {
        eprintln!(
            "warning: {connected}/{} clients connected after warmup ({failed} failed)",
            sim.clients.len()
        );
    }
    let c0: Counters = sim.sfu.counters().clone();
    let sub_before: Vec<(u64, u64, u64)> = sim.clients.iter().map(sub_counts).collect();
    sim.time = SfuTime::default();
    sim.meter = Meter::default();
    sim.measuring = true;
    let wall0 = Instant::now();
    let v0 = sim.now;
    while sim.now < end && steps < max_steps {
        sim.step();
        sim.now += tick;
        steps += 1;
    }
    let wall = wall0.elapsed();
    let virt = sim.now.saturating_duration_since(v0);
    let c1 = sim.sfu.counters().clone();
    let t = sim.time;
    let m = sim.meter;

    let (mut rx_video, mut rx_audio, mut gaps) = (0u64, 0u64, 0u64);
    for (c, b) in sim.clients.iter().zip(&sub_before) {
        let n = sub_counts(c);
        rx_video += n.0 - b.0;
        rx_audio += n.1 - b.1;
        gaps += n.2 - b.2;
    }
    let mut lat: Vec<u64> = Vec::new();
    for c in &sim.clients {
        if let Kind::Sub { lat_us, .. } = &c.kind {
            lat.extend_from_slice(lat_us);
        }
    }
    lat.sort_unstable();
    let q = |x: f64| common::quantile(&lat, x).map(|us| us as f64 / 1000.0);
    let frames = c1.forwarded_frames - c0.forwarded_frames;
    let fwd_bytes = c1.forwarded_bytes - c0.forwarded_bytes;
    let secs = virt.as_secs_f64();
    let per_sub_pps = (1.0 / common::AUDIO_INTERVAL.as_secs_f64()) + common::VIDEO_FPS as f64;
    let expected = (a.rooms * a.publishers * a.subscribers) as f64 * per_sub_pps * secs;
    let sfu_ns = t.total().as_nanos() as f64;
    let per = |n: u64| if n > 0 { sfu_ns / n as f64 } else { f64::NAN };
    let load_after = common::load1();

    println!("strowger loadgen inproc");
    println!(
        "  workload        {} room(s) x ({} publisher(s) [Opus 50 pps + VP8 {} fps x {} B], {} subscriber(s))",
        a.rooms,
        a.publishers,
        common::VIDEO_FPS,
        a.video_bytes,
        a.subscribers
    );
    println!(
        "  window          {secs:.2} virtual s (after {:.1} s warmup), tick {} us, wall {:.2} s (setup {:.2} s)",
        a.warmup,
        a.tick_us,
        wall.as_secs_f64(),
        setup_wall.as_secs_f64()
    );
    println!(
        "  clients         {connected}/{} connected, {failed} failed",
        sim.clients.len()
    );
    println!(
        "  forwarded       {frames} frames ({fwd_bytes} payload B) by sfu.counters(); expected {expected:.0}"
    );
    println!(
        "  to subscribers  {} RTP media, {} RTP padding/probes, {} RTCP, {} other datagrams ({} B)",
        m.to_sub_rtp, m.to_sub_padding, m.to_sub_rtcp, m.to_sub_other, m.to_sub_bytes
    );
    println!(
        "  other traffic   {} datagrams into the SFU, {} to publishers",
        m.into_sfu, m.to_pub
    );
    println!(
        "  received        {rx_video} video + {rx_audio} audio frames by subscribers, {gaps} video seq gaps"
    );
    let ms = |o: Option<f64>| o.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    println!(
        "  virtual latency video p50 {} ms, p99 {} ms, max {} ms (network {:.1} ms one way each hop, tick {:.1} ms; the rest is queueing in the SFU's pacer)",
        ms(q(0.5)),
        ms(q(0.99)),
        ms(q(1.0)),
        sim.latency.as_secs_f64() * 1e3,
        a.tick_us as f64 / 1e3
    );
    println!(
        "  SFU time        {:.3} ms total: handle_receive {:.3} ms ({} calls), handle_timeout {:.3} ms ({} calls), poll_output {:.3} ms ({} calls)",
        sfu_ns / 1e6,
        t.receive.as_secs_f64() * 1e3,
        t.receive_calls,
        t.timeout.as_secs_f64() * 1e3,
        t.timeout_calls,
        t.poll.as_secs_f64() * 1e3,
        t.poll_calls
    );
    println!(
        "  => {:.0} ns SFU time per forwarded RTP packet ({:.0} per forwarded frame, {:.0} per datagram out), {:.1}% of one core at this rate",
        per(m.to_sub_rtp),
        per(frames),
        per(m.to_sub_rtp + m.to_sub_padding + m.to_sub_rtcp + m.to_sub_other + m.to_pub),
        sfu_ns / 1e9 / secs.max(1e-9) * 100.0
    );
    println!("  load1           {load_before} before, {load_after} after");
    let j = json!({
        "mode": "inproc",
        "rooms": a.rooms, "publishers": a.publishers, "subscribers": a.subscribers,
        "virtual_secs": secs, "wall_secs": wall.as_secs_f64(), "tick_us": a.tick_us,
        "connected": connected, "clients": sim.clients.len(), "failed": failed,
        "forwarded_frames": frames, "forwarded_bytes": fwd_bytes, "expected_frames": expected.round(),
        "to_sub_rtp": m.to_sub_rtp, "to_sub_padding": m.to_sub_padding, "to_sub_rtcp": m.to_sub_rtcp,
        "to_sub_other": m.to_sub_other, "to_pub": m.to_pub, "into_sfu": m.into_sfu,
        "rx_video": rx_video, "rx_audio": rx_audio, "video_gaps": gaps,
        "vlat_p50_ms": q(0.5), "vlat_p99_ms": q(0.99), "vlat_max_ms": q(1.0),
        "sfu_ns": sfu_ns, "sfu_receive_ns": t.receive.as_nanos() as u64,
        "sfu_timeout_ns": t.timeout.as_nanos() as u64, "sfu_poll_ns": t.poll.as_nanos() as u64,
        "ns_per_fwd_rtp": per(m.to_sub_rtp), "ns_per_fwd_frame": per(frames),
        "client_errors": sim.client_errors,
        "load1_before": load_before, "load1_after": load_after,
    });
    println!("RESULT {j}");
    Ok(())
}

fn sub_counts(c: &Client) -> (u64, u64, u64) {
    match &c.kind {
        Kind::Sub {
            video, audio, seen, ..
        } => (*video, *audio, seen.values().map(|s| s.2).sum()),
        Kind::Pub { .. } => (0, 0, 0),
    }
}
