//! Adaptive jitter buffer for the audio legs the engine decodes: it turns RTP packets arriving
//! at irregular times, out of order, duplicated or not at all into one frame per fixed tick.
//!
//! Sans-IO with virtual time: [`JitterBuffer::push`] takes each packet with its arrival time,
//! [`JitterBuffer::poll`] is called once per frame (every `ptime`) and answers with the frame to
//! decode, [`JitterOutput::Lost`] when the decoder must conceal, or [`JitterOutput::Nothing`]
//! while the buffer is filling or the sender is silent.
//!
//! Packets are ordered by sequence number (extended across the 16-bit wrap) and played by RTP
//! timestamp. Duplicates and packets whose slot has already been played are discarded and
//! counted. The buffer measures each packet's transit time (arrival minus media time) and keeps
//! the spread between the fastest and slowest transit of the last couple of seconds; the target
//! delay is `jitter_factor * spread` clamped to `[min_delay, max_delay]`. The estimate follows a
//! larger spread at once and a smaller one slowly; the playout delay grows by holding playout for
//! a concealed frame whenever it is below target, and shrinks by skipping one frame at most every
//! `shrink_interval` frames when it is a frame or more above. A sequence-number or timestamp jump
//! (a restarted sender) or a new SSRC resets the stream.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use strowger_media::jitter::{JitterBuffer, JitterConfig, JitterOutput};
//!
//! let ptime = Duration::from_millis(20);
//! let mut jb = JitterBuffer::new(JitterConfig::new(8000, ptime));
//! let t0 = Instant::now();
//! jb.push(t0, 1, 0, vec![0xff; 160]);
//! assert_eq!(jb.poll(t0), JitterOutput::Nothing); // filling up to the 20 ms floor
//! assert!(matches!(jb.poll(t0 + ptime), JitterOutput::Frame(f) if f.seq == 1));
//! assert_eq!(jb.poll(t0 + 2 * ptime), JitterOutput::Lost { samples: 160 });
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A sequence number this far from the highest seen, either way, means a new stream.
const MAX_SEQ_JUMP: i64 = 1000;
/// How fast the jitter estimate follows a smaller measured spread (fraction per packet).
const JITTER_DECAY: f64 = 1.0 / 64.0;
/// Slack when comparing delays, in seconds, so that float rounding does not decide.
const EPSILON: f64 = 1e-6;

/// How a [`JitterBuffer`] behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate in Hz (8000 for G.711 and G.722, 48000 for Opus).
    pub clock_rate: u32,
    /// RTP timestamp units per frame; each packet carries one frame, one is played per poll.
    pub frame_samples: u32,
    /// Floor of the target delay.
    pub min_delay: Duration,
    /// Ceiling of the target delay.
    pub max_delay: Duration,
    /// Target delay = `jitter_factor` × measured transit spread (before clamping).
    pub jitter_factor: f64,
    /// Most packets held; beyond it the oldest is dropped.
    pub max_packets: usize,
    /// How far back the transit spread is measured.
    pub window: Duration,
    /// Fewest polls between two frames skipped to shrink the delay.
    pub shrink_interval: u32,
    /// A timestamp that disagrees with the arrival time by more than this means a new stream.
    pub max_timestamp_jump: Duration,
}

impl JitterConfig {
    /// Defaults for a stream at `clock_rate` Hz with `ptime` of media per packet: target delay
    /// between 20 and 200 ms, at most 50 packets, a 2 s measurement window.
    pub fn new(clock_rate: u32, ptime: Duration) -> Self {
        let frame_samples = (u128::from(clock_rate) * ptime.as_micros() / 1_000_000).max(1) as u32;
        Self {
            clock_rate,
            frame_samples,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            jitter_factor: 1.0,
            max_packets: 50,
            window: Duration::from_secs(2),
            shrink_interval: 10,
            max_timestamp_jump: Duration::from_secs(2),
        }
    }

    fn frame_secs(&self) -> f64 {
        f64::from(self.frame_samples) / f64::from(self.clock_rate)
    }
}

/// One packet's payload, released in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub rtp_ts: u32,
    /// The packet's payload, for the decoder.
    pub payload: Vec<u8>,
}

/// What to play for the current tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitterOutput {
    /// Decode this frame.
    Frame(Frame),
    /// Nothing to play in time (a lost or late packet, or a frame inserted to grow the delay):
    /// conceal this many samples (RTP timestamp units).
    Lost {
        /// Samples to conceal, at the RTP clock rate.
        samples: u32,
    },
    /// Not playing: still buffering, or the sender has been silent for a while.
    Nothing,
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Buffered for playout.
    Buffered,
    /// Buffered as the first packet of a new stream; everything before was dropped.
    Reset,
    /// Held back: it jumps away from the stream, and restarts it only if the next packet
    /// follows it (otherwise it is discarded and counted as invalid).
    Held,
    /// Discarded: already buffered or played.
    Duplicate,
    /// Discarded: its slot has been played (or concealed) already.
    Late,
}

/// Counters and current figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// Packets pushed.
    pub received: u64,
    /// Frames released by `poll`.
    pub delivered: u64,
    /// Packets discarded because their slot had passed.
    pub late: u64,
    /// Packets discarded as duplicates.
    pub duplicate: u64,
    /// Packets dropped because the buffer was full (oldest first).
    pub overflow: u64,
    /// Packets dropped to shrink the delay.
    pub shrink_dropped: u64,
    /// `Lost` outputs (frames the decoder concealed), including those inserted to grow the delay.
    pub concealed: u64,
    /// Of those, frames inserted to grow the delay.
    pub inserted: u64,
    /// Stream resets (sequence or timestamp jump, new SSRC).
    pub resets: u64,
    /// Packets discarded as a sequence or timestamp jump that the next packet did not confirm.
    pub invalid: u64,
    /// Delay the buffer adds at the last poll, in ms (relative to the fastest recent packet).
    pub delay_ms: f64,
    /// Current target delay, in ms.
    pub target_ms: f64,
    /// Current jitter estimate (transit spread), in ms.
    pub jitter_ms: f64,
}

/// A packet that looks like the start of a new stream, waiting for its successor.
#[derive(Debug)]
struct Held {
    arrival: Instant,
    seq: u16,
    rtp_ts: u32,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct Entry {
    ts: i64,
    rtp_ts: u32,
    payload: Vec<u8>,
}

/// An adaptive jitter buffer for one RTP stream. See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Buffered packets by extended sequence number.
    packets: BTreeMap<i64, Entry>,
    ssrc: Option<u32>,
    probation: Option<Held>,
    /// Arrival time and extended timestamp that transit times are measured from.
    epoch: Option<(Instant, i64)>,
    highest_seq: i64,
    highest_ts: i64,
    highest_arrival: Instant,
    playing: bool,
    /// Whether playout has begun since the stream started (`playout_ts` is meaningful).
    started: bool,
    /// Extended timestamp of the next frame to play.
    playout_ts: i64,
    /// Highest extended sequence number released or skipped, and which of the 64 below it were.
    last_out: Option<i64>,
    out_mask: u64,
    /// Monotonic queues of (arrival, transit) over the window: increasing for the minimum,
    /// decreasing for the maximum.
    min_q: VecDeque<(Instant, f64)>,
    max_q: VecDeque<(Instant, f64)>,
    /// Last known fastest transit, for when the window has emptied.
    min_transit: f64,
    jitter: f64,
    target: f64,
    since_shrink: u32,
    underrun: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(mut cfg: JitterConfig) -> Self {
        cfg.clock_rate = cfg.clock_rate.max(1);
        cfg.frame_samples = cfg.frame_samples.max(1);
        let target = cfg.min_delay.as_secs_f64();
        let now = Instant::now();
        Self {
            cfg,
            packets: BTreeMap::new(),
            ssrc: None,
            probation: None,
            epoch: None,
            highest_seq: 0,
            highest_ts: 0,
            highest_arrival: now,
            playing: false,
            started: false,
            playout_ts: 0,
            last_out: None,
            out_mask: 0,
            min_q: VecDeque::new(),
            max_q: VecDeque::new(),
            min_transit: 0.0,
            jitter: 0.0,
            target,
            since_shrink: 0,
            underrun: 0,
            stats: JitterStats {
                target_ms: target * 1000.0,
                ..JitterStats::default()
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Counters and current figures.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        Duration::from_secs_f64(self.target)
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Drops every packet and the stream's position (the next packet starts a new stream);
    /// keeps the jitter estimate, which belongs to the network rather than the stream.
    pub fn reset(&mut self) {
        self.packets.clear();
        self.probation = None;
        self.epoch = None;
        self.playing = false;
        self.started = false;
        self.last_out = None;
        self.out_mask = 0;
        self.min_q.clear();
        self.max_q.clear();
        self.min_transit = 0.0;
        self.since_shrink = 0;
        self.underrun = 0;
    }

    /// Takes a packet of the stream with SSRC `ssrc`; a different SSRC than before resets.
    pub fn push_rtp(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        rtp_ts: u32,
        payload: impl Into<Vec<u8>>,
    ) -> Pushed {
        let changed = self.ssrc.is_some_and(|s| s != ssrc) && self.epoch.is_some();
        self.ssrc = Some(ssrc);
        if changed {
            self.stats.received += 1;
            self.stats.resets += 1;
            self.reset();
            self.start_stream(now, seq, rtp_ts, payload.into());
            return Pushed::Reset;
        }
        self.push(now, seq, rtp_ts, payload)
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u16,
        rtp_ts: u32,
        payload: impl Into<Vec<u8>>,
    ) -> Pushed {
        self.stats.received += 1;
        self.accept(now, seq, rtp_ts, payload.into())
    }

    fn accept(&mut self, now: Instant, seq: u16, rtp_ts: u32, payload: Vec<u8>) -> Pushed {
        if self.epoch.is_none() {
            self.start_stream(now, seq, rtp_ts, payload);
            return Pushed::Buffered;
        }
        let dseq = i64::from(seq.wrapping_sub(self.highest_seq as u16) as i16);
        let dts = i64::from(rtp_ts.wrapping_sub(self.highest_ts as u32) as i32);
        let ext_seq = self.highest_seq + dseq;
        let ext_ts = self.highest_ts + dts;

        let jumped = dseq.abs() > MAX_SEQ_JUMP
            || (dseq > 0 && {
                let media = dts as f64 / f64::from(self.cfg.clock_rate);
                let wall = now
                    .saturating_duration_since(self.highest_arrival)
                    .as_secs_f64();
                (media - wall).abs() > self.cfg.max_timestamp_jump.as_secs_f64()
            });
        if jumped {
            // One stray packet (very late, corrupt) must not restart the stream: wait for the
            // next one to follow it.
            match self.probation.take() {
                Some(held) if seq == held.seq.wrapping_add(1) => {
                    self.stats.resets += 1;
                    self.reset();
                    self.start_stream(held.arrival, held.seq, held.rtp_ts, held.payload);
                    self.accept(now, seq, rtp_ts, payload);
                    return Pushed::Reset;
                }
                previous => {
                    if previous.is_some() {
                        self.stats.invalid += 1;
                    }
                    self.probation = Some(Held {
                        arrival: now,
                        seq,
                        rtp_ts,
                        payload,
                    });
                    return Pushed::Held;
                }
            }
        }
        if self.probation.take().is_some() {
            self.stats.invalid += 1;
        }

        if self.packets.contains_key(&ext_seq) || self.was_released(ext_seq) {
            self.stats.duplicate += 1;
            return Pushed::Duplicate;
        }
        if dseq > 0 {
            self.highest_seq = ext_seq;
            self.highest_ts = ext_ts;
            self.highest_arrival = now;
        }
        // Late packets are the best evidence of jitter: measure before discarding.
        self.measure(now, ext_ts);
        if self.last_out.is_some_and(|l| ext_seq <= l) || (self.started && ext_ts < self.playout_ts)
        {
            self.stats.late += 1;
            return Pushed::Late;
        }
        self.insert(ext_seq, ext_ts, rtp_ts, payload);
        Pushed::Buffered
    }

    /// Called once per frame: what to play now.
    pub fn poll(&mut self, now: Instant) -> JitterOutput {
        let frame = i64::from(self.cfg.frame_samples);
        if !self.playing {
            let Some(head) = self.packets.values().next() else {
                return JitterOutput::Nothing;
            };
            if self.delay_at(now, head.ts) + EPSILON < self.target {
                return JitterOutput::Nothing;
            }
            self.playing = true;
            self.started = true;
            self.playout_ts = head.ts;
            self.since_shrink = 0;
            self.underrun = 0;
        }

        let delay = self.delay_at(now, self.playout_ts);
        self.stats.delay_ms = delay * 1000.0;
        self.since_shrink = self.since_shrink.saturating_add(1);

        if delay + EPSILON < self.target {
            // Grow: hold playout for one concealed frame.
            self.stats.concealed += 1;
            self.stats.inserted += 1;
            return JitterOutput::Lost {
                samples: self.cfg.frame_samples,
            };
        }
        if delay + EPSILON >= self.target + self.cfg.frame_secs()
            && self.since_shrink >= self.cfg.shrink_interval
        {
            // Shrink: skip the frame due now.
            self.since_shrink = 0;
            if let Some((&seq, e)) = self.packets.first_key_value() {
                if e.ts < self.playout_ts + frame {
                    self.packets.remove(&seq);
                    self.mark_released(seq);
                    self.stats.shrink_dropped += 1;
                }
            }
            self.playout_ts += frame;
        }

        // Anything whose slot has passed can no longer be played in order.
        while let Some((&seq, e)) = self.packets.first_key_value() {
            if e.ts >= self.playout_ts {
                break;
            }
            self.packets.remove(&seq);
            self.mark_released(seq);
            self.stats.late += 1;
        }

        match self.packets.first_key_value() {
            Some((&seq, e)) if e.ts == self.playout_ts => {
                let e = self.packets.remove(&seq).expect("head exists");
                self.mark_released(seq);
                self.playout_ts += frame;
                self.underrun = 0;
                self.stats.delivered += 1;
                JitterOutput::Frame(Frame {
                    seq: seq as u16,
                    rtp_ts: e.rtp_ts,
                    payload: e.payload,
                })
            }
            Some((_, e)) => {
                let gap = (e.ts - self.playout_ts).min(frame);
                self.playout_ts += gap;
                self.underrun = 0;
                self.stats.concealed += 1;
                JitterOutput::Lost {
                    samples: gap as u32,
                }
            }
            None => {
                let limit = self.cfg.max_delay.as_secs_f64() / self.cfg.frame_secs();
                if f64::from(self.underrun) >= limit {
                    // The sender has gone quiet: stop and buffer again when it resumes.
                    self.playing = false;
                    return JitterOutput::Nothing;
                }
                self.underrun += 1;
                self.playout_ts += frame;
                self.stats.concealed += 1;
                JitterOutput::Lost {
                    samples: self.cfg.frame_samples,
                }
            }
        }
    }

    /// Convenience for callers that conceal on their own: the next frame, if one is due now.
    pub fn pop(&mut self, now: Instant) -> Option<Frame> {
        match self.poll(now) {
            JitterOutput::Frame(f) => Some(f),
            _ => None,
        }
    }

    fn start_stream(&mut self, now: Instant, seq: u16, rtp_ts: u32, payload: Vec<u8>) {
        let ext_seq = i64::from(seq);
        let ext_ts = i64::from(rtp_ts);
        self.epoch = Some((now, ext_ts));
        self.highest_seq = ext_seq;
        self.highest_ts = ext_ts;
        self.highest_arrival = now;
        self.measure(now, ext_ts);
        self.insert(ext_seq, ext_ts, rtp_ts, payload);
    }

    fn insert(&mut self, ext_seq: i64, ts: i64, rtp_ts: u32, payload: Vec<u8>) {
        self.packets.insert(
            ext_seq,
            Entry {
                ts,
                rtp_ts,
                payload,
            },
        );
        while self.packets.len() > self.cfg.max_packets.max(1) {
            let (seq, _) = self.packets.pop_first().expect("not empty");
            self.mark_released(seq);
            self.stats.overflow += 1;
            if self.playing {
                if let Some(head) = self.packets.values().next() {
                    self.playout_ts = self.playout_ts.max(head.ts);
                }
            }
        }
    }

    fn was_released(&self, ext_seq: i64) -> bool {
        match self.last_out {
            Some(l) if ext_seq <= l => {
                let d = l - ext_seq;
                d < 64 && (self.out_mask >> d) & 1 == 1
            }
            _ => false,
        }
    }

    fn mark_released(&mut self, ext_seq: i64) {
        match self.last_out {
            Some(l) if ext_seq <= l => {
                let d = l - ext_seq;
                if d < 64 {
                    self.out_mask |= 1 << d;
                }
            }
            Some(l) => {
                let d = ext_seq - l;
                self.out_mask = if d >= 64 { 1 } else { (self.out_mask << d) | 1 };
                self.last_out = Some(ext_seq);
            }
            None => {
                self.out_mask = 1;
                self.last_out = Some(ext_seq);
            }
        }
    }

    /// Seconds from the stream's epoch to `ts` in media time.
    fn media_secs(&self, ts: i64) -> f64 {
        let ts0 = self.epoch.map_or(0, |(_, t)| t);
        (ts - ts0) as f64 / f64::from(self.cfg.clock_rate)
    }

    /// Delay added if the frame at `ts` is played at `now`, relative to the fastest packet.
    fn delay_at(&self, now: Instant, ts: i64) -> f64 {
        let Some((t0, _)) = self.epoch else {
            return 0.0;
        };
        let since = now.saturating_duration_since(t0).as_secs_f64();
        since - self.media_secs(ts) - self.min_transit
    }

    /// Records one packet's transit and updates the jitter estimate and target delay.
    fn measure(&mut self, now: Instant, ts: i64) {
        let Some((t0, _)) = self.epoch else {
            return;
        };
        let transit = now.saturating_duration_since(t0).as_secs_f64() - self.media_secs(ts);
        let window = self.cfg.window;
        let expired = |q: &VecDeque<(Instant, f64)>| {
            q.front()
                .is_some_and(|&(t, _)| now.saturating_duration_since(t) > window)
        };
        while expired(&self.min_q) {
            self.min_q.pop_front();
        }
        while expired(&self.max_q) {
            self.max_q.pop_front();
        }
        while self.min_q.back().is_some_and(|&(_, v)| v >= transit) {
            self.min_q.pop_back();
        }
        self.min_q.push_back((now, transit));
        while self.max_q.back().is_some_and(|&(_, v)| v <= transit) {
            self.max_q.pop_back();
        }
        self.max_q.push_back((now, transit));

        let min = self.min_q.front().map_or(transit, |&(_, v)| v);
        let max = self.max_q.front().map_or(transit, |&(_, v)| v);
        self.min_transit = min;
        let spread = max - min;
        if spread > self.jitter {
            self.jitter = spread;
        } else {
            self.jitter += (spread - self.jitter) * JITTER_DECAY;
        }
        let floor = self.cfg.min_delay.as_secs_f64();
        let ceiling = self.cfg.max_delay.as_secs_f64().max(floor);
        self.target = (self.cfg.jitter_factor * self.jitter).clamp(floor, ceiling);
        self.stats.jitter_ms = self.jitter * 1000.0;
        self.stats.target_ms = self.target * 1000.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);
    const FRAME: u32 = 160;

    fn cfg() -> JitterConfig {
        JitterConfig::new(8000, PTIME)
    }

    /// splitmix64: a small seeded PRNG.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The network between sender and buffer.
    struct Net {
        loss: f64,
        dup: f64,
        /// Uniform extra delay 0..jitter(i) ms for packet `i`, on top of a 40 ms base.
        jitter: fn(usize) -> f64,
    }

    struct Poll {
        at: Duration,
        out: JitterOutput,
        stats: JitterStats,
    }

    /// Sends `count` packets, one per 20 ms, starting at `seq0`/`ts0`; polls every 20 ms
    /// (3 ms after a send tick) until a second after the last send. Payload = packet index.
    fn simulate(
        jb: &mut JitterBuffer,
        seed: u64,
        seq0: u16,
        ts0: u32,
        count: usize,
        net: &Net,
    ) -> Vec<Poll> {
        let mut rng = Rng(seed);
        let t0 = Instant::now();
        let mut arrivals = Vec::new();
        for i in 0..count {
            if rng.unit() < net.loss {
                continue;
            }
            let copies = if rng.unit() < net.dup { 2 } else { 1 };
            for _ in 0..copies {
                let ms = 40.0 + rng.unit() * (net.jitter)(i);
                let at = PTIME * i as u32 + Duration::from_secs_f64(ms / 1000.0);
                arrivals.push((at, i));
            }
        }
        arrivals.sort_by_key(|&(at, _)| at);
        let mut next = 0;
        let mut polls = Vec::new();
        for k in 0..count + 50 {
            let at = PTIME * k as u32 + Duration::from_millis(3);
            while next < arrivals.len() && arrivals[next].0 <= at {
                let (when, i) = arrivals[next];
                let seq = seq0.wrapping_add(i as u16);
                let ts = ts0.wrapping_add(i as u32 * FRAME);
                jb.push(t0 + when, seq, ts, (i as u32).to_le_bytes().to_vec());
                next += 1;
            }
            let out = jb.poll(t0 + at);
            polls.push(Poll {
                at,
                out,
                stats: jb.stats().clone(),
            });
        }
        polls
    }

    fn index(f: &Frame) -> usize {
        u32::from_le_bytes(f.payload[..4].try_into().unwrap()) as usize
    }

    fn check_order(polls: &[Poll], seq0: u16, ts0: u32) -> Vec<usize> {
        let delivered: Vec<usize> = polls
            .iter()
            .filter_map(|p| match &p.out {
                JitterOutput::Frame(f) => {
                    let i = index(f);
                    assert_eq!(f.seq, seq0.wrapping_add(i as u16));
                    assert_eq!(f.rtp_ts, ts0.wrapping_add(i as u32 * FRAME));
                    Some(i)
                }
                _ => None,
            })
            .collect();
        for w in delivered.windows(2) {
            assert!(
                w[0] < w[1],
                "out of order or duplicate: {} then {}",
                w[0],
                w[1]
            );
        }
        delivered
    }

    fn check_accounting(jb: &JitterBuffer) {
        let s = jb.stats();
        assert_eq!(
            s.received,
            s.delivered
                + s.late
                + s.duplicate
                + s.overflow
                + s.shrink_dropped
                + s.invalid
                + jb.len() as u64
                + u64::from(jb.probation.is_some()),
            "{s:?}"
        );
    }

    #[test]
    fn steady_stream_plays_every_frame_at_the_floor_delay() {
        let mut jb = JitterBuffer::new(cfg());
        let net = Net {
            loss: 0.0,
            dup: 0.0,
            jitter: |_| 0.0,
        };
        let polls = simulate(&mut jb, 1, 100, 1000, 500, &net);
        let delivered = check_order(&polls, 100, 1000);
        assert_eq!(delivered, (0..500).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!(
            (s.late, s.duplicate, s.overflow, s.shrink_dropped),
            (0, 0, 0, 0)
        );
        let mid = &polls[250].stats;
        assert!((20.0..40.0).contains(&mid.delay_ms), "{mid:?}");
        assert_eq!(mid.target_ms, 20.0);
        check_accounting(&jb);
    }

    #[test]
    fn loss_reordering_duplicates_and_jitter_with_wraparound() {
        let mut jb = JitterBuffer::new(cfg());
        let net = Net {
            loss: 0.05,
            dup: 0.05,
            jitter: |_| 30.0,
        };
        // Sequence numbers wrap after 35 packets, timestamps after ~100.
        let (seq0, ts0) = (65500, u32::MAX - 100 * FRAME + 1);
        let polls = simulate(&mut jb, 42, seq0, ts0, 3000, &net);
        let delivered = check_order(&polls, seq0, ts0);
        let s = jb.stats().clone();
        println!("{s:?}");
        assert!(delivered.len() > 2700, "{}", delivered.len());
        assert!(s.duplicate > 100, "{s:?}");
        assert_eq!(s.overflow, 0);
        assert_eq!(s.resets, 0);
        for p in &polls {
            assert!((20.0..=200.0).contains(&p.stats.target_ms), "{:?}", p.stats);
        }
        // Once adapted (after the first seconds), nothing arrives too late.
        let late_after_warmup = s.late - polls[500].stats.late;
        assert!(
            late_after_warmup <= 3,
            "{late_after_warmup} late after warm-up"
        );
        assert!(s.target_ms >= 25.0 && s.target_ms <= 40.0, "{s:?}");
        check_accounting(&jb);
    }

    #[test]
    fn delay_adapts_up_under_jitter_and_back_down_after() {
        let mut jb = JitterBuffer::new(cfg());
        // 0–20 s clean, 20–40 s 30 ms uniform jitter, 40–80 s clean.
        let net = Net {
            loss: 0.0,
            dup: 0.0,
            jitter: |i| if (1000..2000).contains(&i) { 30.0 } else { 0.0 },
        };
        let polls = simulate(&mut jb, 7, 0, 0, 4000, &net);
        check_order(&polls, 0, 0);
        let at = |secs: u64| {
            &polls
                .iter()
                .find(|p| p.at >= Duration::from_secs(secs))
                .unwrap()
                .stats
        };
        for secs in [19, 25, 39, 45, 79] {
            let s = at(secs);
            println!(
                "{secs:>2} s: delay {:.1} ms, target {:.1} ms, jitter {:.1} ms, late {}, \
                 inserted {}, shrink-dropped {}",
                s.delay_ms, s.target_ms, s.jitter_ms, s.late, s.inserted, s.shrink_dropped
            );
        }
        let before = at(19);
        assert!(
            before.delay_ms < 40.0 && before.target_ms == 20.0,
            "{before:?}"
        );
        let during = at(39);
        assert!(during.target_ms >= 25.0, "{during:?}");
        assert!(during.delay_ms >= during.target_ms, "{during:?}");
        assert!(during.delay_ms > before.delay_ms + 5.0, "{during:?}");
        // Adapted within 5 s of the jitter starting: no late packets after that.
        assert_eq!(at(39).late, at(25).late);
        let after = at(79);
        assert_eq!(after.target_ms, 20.0, "{after:?}");
        // Grown by concealed insertions, shrunk by skipping a frame now and then.
        assert!(
            during.inserted >= 1 && after.shrink_dropped >= 1,
            "{after:?}"
        );
        assert_eq!(after.inserted, during.inserted);
        assert!(after.delay_ms < 40.0, "{after:?}");
        // It shrinks slowly: still above the floor shortly after the jitter stopped.
        assert!(at(41).target_ms > 20.0, "{:?}", at(41));
        for p in &polls {
            assert!((20.0..=200.0).contains(&p.stats.target_ms));
        }
        check_accounting(&jb);
    }

    #[test]
    fn target_follows_the_amount_of_jitter() {
        let jitters: [fn(usize) -> f64; 4] = [|_| 10.0, |_| 30.0, |_| 80.0, |_| 150.0];
        for (jitter, expected) in jitters.into_iter().zip([10.0f64, 30.0, 80.0, 150.0]) {
            let mut jb = JitterBuffer::new(cfg());
            let net = Net {
                loss: 0.02,
                dup: 0.0,
                jitter,
            };
            let polls = simulate(&mut jb, 11, 1, 1, 2000, &net);
            check_order(&polls, 1, 1);
            let s = jb.stats();
            let late_after_warmup = s.late - polls[250].stats.late;
            println!(
                "{expected} ms jitter: target {:.1} ms, delay {:.1} ms, late {} ({} after 5 s)",
                s.target_ms, s.delay_ms, s.late, late_after_warmup
            );
            let want = expected.max(20.0);
            assert!(
                s.target_ms >= want * 0.85 && s.target_ms <= want * 1.05,
                "{expected}: {s:?}"
            );
            assert!(s.delay_ms >= s.target_ms, "{expected}: {s:?}");
            assert!(late_after_warmup <= 2, "{expected}: {s:?}");
            check_accounting(&jb);
        }
    }

    #[test]
    fn target_delay_stops_at_the_ceiling() {
        let mut c = cfg();
        c.max_delay = Duration::from_millis(120);
        let mut jb = JitterBuffer::new(c);
        let net = Net {
            loss: 0.0,
            dup: 0.0,
            jitter: |_| 400.0,
        };
        let polls = simulate(&mut jb, 3, 0, 0, 1000, &net);
        check_order(&polls, 0, 0);
        assert_eq!(jb.stats().target_ms, 120.0);
        assert!(jb.stats().late > 0);
        check_accounting(&jb);
    }

    fn frames_and_losses(jb: &mut JitterBuffer, t0: Instant, from: u32, to: u32) -> Vec<String> {
        (from..to)
            .map(|k| match jb.poll(t0 + PTIME * k) {
                JitterOutput::Frame(f) => format!("F{}", f.seq),
                JitterOutput::Lost { samples } => format!("L{samples}"),
                JitterOutput::Nothing => "-".into(),
            })
            .collect()
    }

    #[test]
    fn missing_packets_come_out_as_lost_of_their_length() {
        let mut jb = JitterBuffer::new(cfg());
        let t0 = Instant::now();
        for i in 0u16..10 {
            if i == 3 || i == 6 || i == 7 {
                continue;
            }
            jb.push(
                t0 + PTIME * u32::from(i),
                i,
                u32::from(i) * FRAME,
                vec![i as u8],
            );
        }
        // Playing starts one frame (the 20 ms floor) after the first arrival.
        let out = frames_and_losses(&mut jb, t0, 0, 11);
        assert_eq!(
            out,
            ["-", "F0", "F1", "F2", "L160", "F4", "F5", "L160", "L160", "F8", "F9"]
        );
        // A packet whose slot has been concealed is late.
        assert_eq!(
            jb.push(t0 + PTIME * 11, 7, 7 * FRAME, vec![7]),
            Pushed::Late
        );
        // A played one is a duplicate.
        assert_eq!(
            jb.push(t0 + PTIME * 11, 5, 5 * FRAME, vec![5]),
            Pushed::Duplicate
        );
        assert_eq!(jb.stats().late, 1);
        assert_eq!(jb.stats().duplicate, 1);
        assert_eq!(jb.stats().concealed, 3);
    }

    #[test]
    fn lost_covers_a_partial_gap_in_timestamps() {
        let mut jb = JitterBuffer::new(cfg());
        let t0 = Instant::now();
        jb.push(t0, 1, 0, vec![1]);
        // Next packet starts 80 samples late (sender dropped half a frame).
        jb.push(t0 + PTIME, 2, FRAME + 80, vec![2]);
        let out = frames_and_losses(&mut jb, t0, 1, 4);
        assert_eq!(out, ["F1", "L80", "F2"]);
    }

    #[test]
    fn reorders_across_the_sequence_wrap() {
        let mut jb = JitterBuffer::new(cfg());
        let t0 = Instant::now();
        let ts0 = u32::MAX - FRAME + 1;
        let order: [u16; 6] = [65533, 65535, 65534, 1, 0, 2];
        for (k, &seq) in order.iter().enumerate() {
            let i = seq.wrapping_sub(65533);
            let ts = ts0.wrapping_add(u32::from(i) * FRAME);
            assert_eq!(
                jb.push(t0 + Duration::from_millis(k as u64), seq, ts, vec![]),
                Pushed::Buffered
            );
        }
        assert_eq!(
            jb.push(t0, 65535, ts0.wrapping_add(2 * FRAME), vec![]),
            Pushed::Duplicate
        );
        let out = frames_and_losses(&mut jb, t0, 1, 8);
        assert_eq!(
            out,
            ["F65533", "F65534", "F65535", "F0", "F1", "F2", "L160"]
        );
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut c = cfg();
        c.max_packets = 10;
        let mut jb = JitterBuffer::new(c);
        let t0 = Instant::now();
        // A burst of 25 packets at once (a stalled network releasing its queue).
        for i in 0u16..25 {
            jb.push(t0, i, u32::from(i) * FRAME, vec![]);
        }
        assert_eq!(jb.len(), 10);
        assert_eq!(jb.stats().overflow, 15);
        let out = frames_and_losses(&mut jb, t0, 1, 3);
        assert_eq!(out[0], "F15");
        check_accounting(&jb);
    }

    #[test]
    fn sequence_jump_timestamp_jump_and_new_ssrc_reset_the_stream() {
        let mut jb = JitterBuffer::new(cfg());
        let t0 = Instant::now();
        for i in 0u16..5 {
            jb.push_rtp(
                t0 + PTIME * u32::from(i),
                9,
                i,
                u32::from(i) * FRAME,
                vec![],
            );
        }
        let _ = frames_and_losses(&mut jb, t0, 1, 4);
        // The sender restarts with new numbering: confirmed by the packet after.
        let t1 = t0 + PTIME * 5;
        assert_eq!(jb.push_rtp(t1, 9, 30000, 5 * FRAME, vec![]), Pushed::Held);
        assert_eq!(jb.len(), 2);
        assert_eq!(
            jb.push_rtp(t1 + PTIME, 9, 30001, 6 * FRAME, vec![]),
            Pushed::Reset
        );
        assert_eq!(jb.len(), 2);
        // Same numbering continues but the timestamp leaps an hour ahead.
        let t2 = t1 + PTIME * 2;
        assert_eq!(jb.push_rtp(t2, 9, 30002, 8000 * 3600, vec![]), Pushed::Held);
        assert_eq!(
            jb.push_rtp(t2, 9, 30003, 8000 * 3600 + FRAME, vec![]),
            Pushed::Reset
        );
        assert_eq!(jb.stats().resets, 2);
        // A different source.
        let t3 = t2 + PTIME;
        assert_eq!(jb.push_rtp(t3, 10, 7, 123, vec![]), Pushed::Reset);
        assert_eq!(jb.stats().resets, 3);
        let out = frames_and_losses(&mut jb, t3 - PTIME * 2, 3, 5);
        assert_eq!(out, ["F7", "L160"]);
        // A talkspurt after silence (timestamp and arrival advance together) is no jump.
        let t4 = t3 + Duration::from_secs(5);
        assert_eq!(
            jb.push_rtp(t4, 10, 8, 123 + 8000 * 5, vec![]),
            Pushed::Buffered
        );
        assert_eq!(jb.stats().resets, 3);
    }

    #[test]
    fn a_stray_packet_far_away_does_not_reset() {
        let mut jb = JitterBuffer::new(cfg());
        let t0 = Instant::now();
        for i in 0u16..6 {
            let t = t0 + PTIME * u32::from(i);
            jb.push(t, i + 100, u32::from(i) * FRAME, vec![]);
            if i == 2 {
                // A packet from far in the past, or garbage.
                assert_eq!(jb.push(t, 40000, 77, vec![]), Pushed::Held);
            }
        }
        let out = frames_and_losses(&mut jb, t0, 1, 7);
        assert_eq!(out, ["F100", "F101", "F102", "F103", "F104", "F105"]);
        assert_eq!(jb.stats().resets, 0);
        assert_eq!(jb.stats().invalid, 1);
        check_accounting(&jb);
    }

    #[test]
    fn long_silence_stops_playout_and_restarts_on_the_next_packet() {
        let mut jb = JitterBuffer::new(cfg());
        let t0 = Instant::now();
        jb.push(t0, 0, 0, vec![]);
        let out = frames_and_losses(&mut jb, t0, 1, 14);
        // 200 ms of concealment (10 frames), then silence.
        assert_eq!(out[0], "F0");
        assert!(out[1..11].iter().all(|o| o == "L160"), "{out:?}");
        assert!(out[11..].iter().all(|o| o == "-"), "{out:?}");
        // Talk resumes 3 s later (DTX): plays after the target delay.
        let t1 = t0 + Duration::from_secs(3);
        jb.push(t1, 1, 8000 * 3, vec![]);
        assert_eq!(jb.poll(t1), JitterOutput::Nothing);
        assert!(matches!(jb.poll(t1 + PTIME), JitterOutput::Frame(f) if f.seq == 1));
    }
}
