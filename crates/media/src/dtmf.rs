//! DTMF: RFC 4733 telephone-events (payload, sender, receiver) and in-band tones (generation
//! and Goertzel detection).
//!
//! Everything is measured in RTP timestamp units (samples at the clock rate) and driven by the
//! caller: the sender is told when a key goes down and up and what time it is now, and hands out
//! packets to send; the receiver takes packets and hands out one [`DtmfEvent`] per key press.
//! In-band, [`DtmfGenerator`] writes the dual tones into PCM and [`DtmfDetector`] finds them
//! again, frame by frame.

use std::collections::VecDeque;
use std::f64::consts::PI;

/// Row (low group) frequencies in Hz.
pub const ROW_FREQS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies in Hz.
pub const COL_FREQS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad, by row then column.
pub const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// All 16 digits in RFC 4733 event order (event code = index).
pub const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];
/// Largest duration of one RFC 4733 segment.
pub const MAX_SEGMENT: u32 = 0xFFFF;

/// Why a DTMF call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtmfError {
    /// A telephone-event payload shorter than 4 bytes.
    #[error("telephone-event payload too short: {0} bytes")]
    Truncated(usize),
    /// Not one of the 16 DTMF digits.
    #[error("not a DTMF digit")]
    NotADigit,
}

/// The RFC 4733 event code of a digit (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
pub fn digit_to_event(digit: char) -> Option<u8> {
    DIGITS
        .iter()
        .position(|&d| d == digit.to_ascii_uppercase())
        .map(|i| i as u8)
}

/// The digit of an RFC 4733 event code, if it is one of the 16 DTMF events.
pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// The (row, column) frequencies of a digit.
pub fn digit_freqs(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k == d {
                return Some((ROW_FREQS[r], COL_FREQS[c]));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// RFC 4733 payload

/// One RFC 4733 telephone-event payload block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 for DTMF digits).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level as `-dBm0`, 0–63 (only for DTMF-like events).
    pub volume: u8,
    /// Duration so far, in timestamp units, from the packet's RTP timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Size of the payload in bytes.
    pub const LEN: usize = 4;

    /// Parses the first block of a payload; trailing bytes are ignored, the R bit is ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let b: &[u8; 4] = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(DtmfError::Truncated(payload.len()))?;
        Ok(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Appends the 4-byte payload (R bit zero, volume truncated to 6 bits).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.event);
        out.push(if self.end { 0x80 } else { 0 } | (self.volume & 0x3f));
        out.extend_from_slice(&self.duration.to_be_bytes());
    }

    /// The payload as an array.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            if self.end { 0x80 } else { 0 } | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// A telephone-event packet to send or that was received: what goes into the RTP header
/// besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// RTP timestamp (start of the event, or of its current segment).
    pub timestamp: u32,
    /// RTP marker bit: set on the first packet of an event.
    pub marker: bool,
    /// The payload.
    pub payload: TelephoneEvent,
}

// ---------------------------------------------------------------------------------------------
// Sender

#[derive(Debug, Clone)]
struct SendState {
    event: u8,
    start: u32,
    /// Elapsed time (from `start`) at which the current segment begins.
    seg_offset: u64,
    /// Elapsed time of the next update.
    next_update: u64,
}

/// RFC 4733 sender: a start packet (marker set), an update every 50 ms with the growing
/// duration, three end packets with the E bit, and new segments (new timestamp, duration
/// restarting) every `0xFFFF` units for long presses.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    interval: u32,
    volume: u8,
    state: Option<SendState>,
    queue: VecDeque<DtmfPacket>,
}

impl DtmfSender {
    /// A sender for an RTP clock of `clock_rate` Hz (8000 for telephone-event/8000), updating
    /// every 50 ms at volume 10 (-10 dBm0).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            interval: (clock_rate / 20).max(1),
            volume: 10,
            state: None,
            queue: VecDeque::new(),
        }
    }

    /// Sets the update interval in timestamp units.
    pub fn set_update_interval(&mut self, units: u32) {
        self.interval = units.max(1);
    }

    /// Sets the volume reported in packets (`-dBm0`, 0–63).
    pub fn set_volume(&mut self, volume: u8) {
        self.volume = volume.min(63);
    }

    /// Whether a key is down.
    pub fn is_active(&self) -> bool {
        self.state.is_some()
    }

    /// A key goes down at RTP time `now`. A key still down is released first.
    pub fn start(&mut self, digit: char, now: u32) -> Result<(), DtmfError> {
        let event = digit_to_event(digit).ok_or(DtmfError::NotADigit)?;
        self.start_event(event, now);
        Ok(())
    }

    /// Like [`start`](Self::start) with a raw event code.
    pub fn start_event(&mut self, event: u8, now: u32) {
        if self.state.is_some() {
            self.stop(now);
        }
        self.state = Some(SendState {
            event,
            start: now,
            seg_offset: 0,
            next_update: u64::from(self.interval),
        });
        self.push(now, true, event, false, 0);
    }

    /// Time passes: queues the updates (and segment ends) due up to `now`.
    pub fn advance(&mut self, now: u32) {
        self.advance_inner(now, true);
    }

    fn advance_inner(&mut self, now: u32, inclusive: bool) {
        let Some(st) = self.state.clone() else { return };
        let elapsed = Self::elapsed(st.start, now);
        let mut next = st.next_update;
        while next < elapsed || (inclusive && next == elapsed) {
            self.emit_at(next, false);
            next += u64::from(self.interval);
        }
        if let Some(st) = &mut self.state {
            st.next_update = next;
        }
    }

    /// The key goes up at `now`: queues three end packets with the final duration.
    pub fn stop(&mut self, now: u32) {
        // Updates strictly before `now`; the end packets carry the duration at `now`.
        self.advance_inner(now, false);
        let Some(st) = &self.state else { return };
        let elapsed = Self::elapsed(st.start, now);
        self.emit_at(elapsed, true);
        self.state = None;
    }

    /// Time from `start` to `now`; a `now` before `start` (a caller's clock going back) is 0.
    fn elapsed(start: u32, now: u32) -> u64 {
        let d = now.wrapping_sub(start);
        if d > u32::MAX / 2 {
            0
        } else {
            u64::from(d)
        }
    }

    /// Emits the packet describing elapsed time `at`, closing full segments on the way.
    fn emit_at(&mut self, at: u64, end: bool) {
        let Some(st) = &mut self.state else { return };
        let (event, start) = (st.event, st.start);
        // Close every segment that is full by `at` (a packet with the maximum duration), then
        // continue in a new segment whose timestamp is the old one plus that maximum.
        let mut closed = Vec::new();
        while at > st.seg_offset + u64::from(MAX_SEGMENT) {
            closed.push(st.seg_offset);
            st.seg_offset += u64::from(MAX_SEGMENT);
        }
        let seg_offset = st.seg_offset;
        for off in closed {
            self.push(
                start.wrapping_add(off as u32),
                false,
                event,
                false,
                MAX_SEGMENT as u16,
            );
        }
        let ts = start.wrapping_add(seg_offset as u32);
        let duration = (at - seg_offset) as u16;
        let copies = if end { 3 } else { 1 };
        for _ in 0..copies {
            self.push(ts, false, event, end, duration);
        }
    }

    fn push(&mut self, timestamp: u32, marker: bool, event: u8, end: bool, duration: u16) {
        self.queue.push_back(DtmfPacket {
            timestamp,
            marker,
            payload: TelephoneEvent {
                event,
                end,
                volume: self.volume,
                duration,
            },
        });
    }

    /// The next packet to send, oldest first. The three end packets are queued together; the
    /// caller may space them out by its packetization interval.
    pub fn poll_packet(&mut self) -> Option<DtmfPacket> {
        self.queue.pop_front()
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver

/// One key press recovered by [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// RFC 4733 event code.
    pub event: u8,
    /// The digit, for the 16 DTMF events.
    pub digit: Option<char>,
    /// RTP timestamp at which the press began.
    pub timestamp: u32,
    /// Total duration in timestamp units (across segments).
    pub duration: u64,
    /// Volume of the last packet (`-dBm0`).
    pub volume: u8,
    /// Whether an end packet was seen (false: it timed out or the next event arrived first).
    pub ended: bool,
}

#[derive(Debug, Clone, Copy)]
struct RecvState {
    event: u8,
    start: u32,
    /// Offset of the current segment from `start`.
    seg_offset: u64,
    /// Largest duration seen in the current segment.
    seg_duration: u64,
    volume: u8,
}

impl RecvState {
    fn total(&self) -> u64 {
        self.seg_offset + self.seg_duration
    }
}

/// RFC 4733 receiver: turns packets (in any order, with losses, duplicates and the redundant end
/// packets) into exactly one [`DtmfEvent`] per press.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    tolerance: u64,
    timeout: u64,
    active: Option<RecvState>,
    /// The last finished event: (event, start, offset of its last segment), to drop stragglers.
    finished: Option<(u8, u32, u64)>,
    events: VecDeque<DtmfEvent>,
}

impl DtmfReceiver {
    /// A receiver for an RTP clock of `clock_rate` Hz. An event without end packets is reported
    /// after 1 s of silence ([`handle_timeout`](Self::handle_timeout)).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            tolerance: u64::from(clock_rate / 4),
            timeout: u64::from(clock_rate),
            active: None,
            finished: None,
            events: VecDeque::new(),
        }
    }

    /// Handles a received packet.
    pub fn handle_packet(&mut self, packet: &DtmfPacket) {
        let (ts, p) = (packet.timestamp, packet.payload);
        if let Some((event, start, last_seg)) = self.finished {
            let off = u64::from(ts.wrapping_sub(start));
            if (event == p.event && off <= last_seg) || self.is_stale(ts, start) {
                return; // redundant end or a late packet of a finished press
            }
        }
        if let Some(mut st) = self.active {
            if self.is_stale(ts, st.start) {
                return; // a late packet from before the current press
            }
            let off = u64::from(ts.wrapping_sub(st.start));
            let same = st.event == p.event && off <= st.seg_offset + u64::from(MAX_SEGMENT);
            let delta = off.wrapping_sub(st.seg_offset);
            let continues = same
                && (off <= st.seg_offset
                    || (!packet.marker
                        && delta > u64::from(MAX_SEGMENT).saturating_sub(self.tolerance)
                        && delta <= st.seg_duration + self.tolerance));
            if continues {
                if off > st.seg_offset {
                    // A new segment of a long press.
                    st.seg_duration = st.total().max(off) - off;
                    st.seg_offset = off;
                }
                if off == st.seg_offset {
                    st.seg_duration = st.seg_duration.max(u64::from(p.duration));
                    st.volume = p.volume;
                }
                self.active = Some(st);
                if p.end && off == st.seg_offset {
                    self.finish(true);
                }
                return;
            }
            // Something else began: the current press lost its end packets.
            self.finish(false);
        }
        self.active = Some(RecvState {
            event: p.event,
            start: ts,
            seg_offset: 0,
            seg_duration: u64::from(p.duration),
            volume: p.volume,
        });
        if p.end {
            self.finish(true);
        }
    }

    /// Whether `ts` lies shortly (up to ten timeouts) before `reference`: a late packet.
    fn is_stale(&self, ts: u32, reference: u32) -> bool {
        let back = u64::from(reference.wrapping_sub(ts));
        back > 0 && back <= 10 * self.timeout
    }

    /// Parses `payload` and handles it as a packet with this RTP timestamp and marker.
    pub fn handle_payload(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let payload = TelephoneEvent::parse(payload)?;
        self.handle_packet(&DtmfPacket {
            timestamp,
            marker,
            payload,
        });
        Ok(())
    }

    /// Reports a press whose end packets never came, once RTP time `now` is a timeout past
    /// its last known duration.
    pub fn handle_timeout(&mut self, now: u32) {
        if let Some(st) = self.active {
            let off = u64::from(now.wrapping_sub(st.start));
            if off < u64::from(u32::MAX / 2) && off > st.total() + self.timeout {
                self.finish(false);
            }
        }
    }

    fn finish(&mut self, ended: bool) {
        if let Some(st) = self.active.take() {
            self.finished = Some((st.event, st.start, st.seg_offset));
            self.events.push_back(DtmfEvent {
                event: st.event,
                digit: event_to_digit(st.event),
                timestamp: st.start,
                duration: st.total(),
                volume: st.volume,
                ended,
            });
        }
    }

    /// The next finished press.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }
}

// ---------------------------------------------------------------------------------------------
// In-band generation

/// Writes DTMF dual tones into PCM.
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    sample_rate: u32,
    tone_ms: u32,
    pause_ms: u32,
    amplitude: f64,
}

impl DtmfGenerator {
    /// 100 ms tones, 100 ms pauses, each frequency at -10 dBov.
    pub fn new(sample_rate: u32) -> Self {
        let mut g = Self {
            sample_rate,
            tone_ms: 100,
            pause_ms: 100,
            amplitude: 0.0,
        };
        g.set_level_dbov(-10.0);
        g
    }

    /// Sets tone and pause durations in milliseconds.
    pub fn set_durations(&mut self, tone_ms: u32, pause_ms: u32) {
        self.tone_ms = tone_ms;
        self.pause_ms = pause_ms;
    }

    /// Sets the level of each of the two frequencies in dBov (a full-scale sine is -3 dBov);
    /// clamped to -9 dBov so that the sum cannot clip.
    pub fn set_level_dbov(&mut self, dbov: f64) {
        let dbov = if dbov.is_nan() { -10.0 } else { dbov.min(-9.0) };
        self.amplitude = 32768.0 * 2f64.sqrt() * 10f64.powf(dbov / 20.0);
    }

    /// Peak amplitude of each frequency.
    pub fn amplitude(&self) -> f64 {
        self.amplitude
    }

    /// Appends one tone of the configured duration.
    pub fn tone(&self, digit: char, out: &mut Vec<i16>) -> Result<(), DtmfError> {
        let n = (u64::from(self.sample_rate) * u64::from(self.tone_ms) / 1000) as usize;
        self.tone_samples(digit, n, out)
    }

    /// Appends `samples` samples of a digit's tone.
    pub fn tone_samples(
        &self,
        digit: char,
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), DtmfError> {
        let (lo, hi) = digit_freqs(digit).ok_or(DtmfError::NotADigit)?;
        let rate = f64::from(self.sample_rate);
        out.extend((0..samples).map(|i| {
            let t = i as f64 / rate;
            let v = self.amplitude * ((2.0 * PI * lo * t).sin() + (2.0 * PI * hi * t).sin());
            v.round().clamp(-32767.0, 32767.0) as i16
        }));
        Ok(())
    }

    /// Appends each digit's tone followed by a pause.
    pub fn sequence(&self, digits: &str, out: &mut Vec<i16>) -> Result<(), DtmfError> {
        let pause = (u64::from(self.sample_rate) * u64::from(self.pause_ms) / 1000) as usize;
        for d in digits.chars() {
            self.tone(d, out)?;
            out.extend(std::iter::repeat_n(0, pause));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// In-band detection

/// A digit found in PCM by [`DtmfDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedDigit {
    /// The digit.
    pub digit: char,
    /// Index (from the first sample processed) of the first block in which it was heard.
    pub start_sample: u64,
}

/// In-band DTMF detector: Goertzel filters at the eight frequencies over fixed blocks
/// (205 samples at 8 kHz, scaled for other rates), with checks on absolute level, the share of
/// the block's energy in the two tones, twist (normal ≤ 8 dB, reverse ≤ 4 dB) and the peak over
/// the other frequencies of its group (≥ 6 dB). A digit is reported once after `min_blocks`
/// consecutive blocks agree, and not again until it has been absent for `release_blocks`.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    block: usize,
    coeffs: [f64; 8],
    min_energy: f64,
    min_blocks: u32,
    release_blocks: u32,
    buf: Vec<i16>,
    processed: u64,
    candidate: Option<(char, u32, u64)>,
    active: Option<char>,
    misses: u32,
    out: VecDeque<DetectedDigit>,
}

impl DtmfDetector {
    /// A detector for PCM at `sample_rate` Hz, accepting tones down to -40 dBov per frequency.
    pub fn new(sample_rate: u32) -> Self {
        let rate = f64::from(sample_rate.max(1));
        let block = ((rate * 205.0 / 8000.0).round() as usize).max(1);
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROW_FREQS.iter().chain(&COL_FREQS)) {
            *c = 2.0 * (2.0 * PI * f / rate).cos();
        }
        let mut d = Self {
            block,
            coeffs,
            min_energy: 0.0,
            min_blocks: 2,
            release_blocks: 2,
            buf: Vec::with_capacity(block),
            processed: 0,
            candidate: None,
            active: None,
            misses: 0,
            out: VecDeque::new(),
        };
        d.set_min_level_dbov(-40.0);
        d
    }

    /// Samples per analysis block.
    pub fn block_samples(&self) -> usize {
        self.block
    }

    /// Sets the weakest accepted level of each frequency, in dBov.
    pub fn set_min_level_dbov(&mut self, dbov: f64) {
        // Energy over a block of a sine at that level: N · A²/2 with A = 32768·√2·10^(dB/20).
        let a = 32768.0 * 2f64.sqrt() * 10f64.powf(dbov / 20.0);
        self.min_energy = self.block as f64 * a * a / 2.0;
    }

    /// Sets how many consecutive blocks a digit needs (minimum duration) and how many blocks it
    /// must be absent before the same digit can be reported again.
    pub fn set_blocks(&mut self, min_blocks: u32, release_blocks: u32) {
        self.min_blocks = min_blocks.max(1);
        self.release_blocks = release_blocks.max(1);
    }

    /// Feeds PCM; any length.
    pub fn process(&mut self, mut pcm: &[i16]) {
        while !pcm.is_empty() {
            let take = (self.block - self.buf.len()).min(pcm.len());
            self.buf.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.buf.len() == self.block {
                let digit = self.analyze();
                let start = self.processed;
                self.processed += self.block as u64;
                self.buf.clear();
                self.track(digit, start);
            }
        }
    }

    /// The next detected digit.
    pub fn poll_digit(&mut self) -> Option<DetectedDigit> {
        self.out.pop_front()
    }

    fn track(&mut self, digit: Option<char>, start: u64) {
        match digit {
            Some(d) if self.active == Some(d) => {
                self.misses = 0;
                return;
            }
            _ => {}
        }
        if self.active.is_some() {
            self.misses += 1;
            if self.misses >= self.release_blocks || digit.is_some() {
                self.active = None;
                self.misses = 0;
            }
        }
        let Some(d) = digit else {
            self.candidate = None;
            return;
        };
        let (count, first) = match self.candidate {
            Some((c, n, first)) if c == d => (n + 1, first),
            _ => (1, start),
        };
        if self.active.is_none() && count >= self.min_blocks {
            self.active = Some(d);
            self.misses = 0;
            self.candidate = None;
            self.out.push_back(DetectedDigit {
                digit: d,
                start_sample: first,
            });
        } else {
            self.candidate = Some((d, count, first));
        }
    }

    fn analyze(&self) -> Option<char> {
        let n = self.buf.len() as f64;
        let energy: f64 = self.buf.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        if energy < self.min_energy {
            return None;
        }
        let mut power = [0.0f64; 8];
        for (p, &c) in power.iter_mut().zip(&self.coeffs) {
            let (mut q1, mut q2) = (0.0f64, 0.0f64);
            for &s in &self.buf {
                let q0 = c * q1 - q2 + f64::from(s);
                q2 = q1;
                q1 = q0;
            }
            // |X|² → energy of that sine in the block (A²N²/4 → A²N/2).
            *p = (q1 * q1 + q2 * q2 - c * q1 * q2) * 2.0 / n;
        }
        let (rows, cols) = power.split_at(4);
        let peak = |g: &[f64]| {
            let (i, &max) = g.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
            // Relative peak: every other frequency of the group at least 6 dB lower.
            g.iter()
                .enumerate()
                .all(|(j, &p)| j == i || p * 4.0 <= max)
                .then_some((i, max))
        };
        let (r, row) = peak(rows)?;
        let (c, col) = peak(cols)?;
        if row < self.min_energy || col < self.min_energy {
            return None;
        }
        // Twist: the high group may be up to 8 dB weaker (normal) or 4 dB stronger (reverse).
        if row > col * 10f64.powf(0.8) || col > row * 10f64.powf(0.4) {
            return None;
        }
        // Most of the block's energy must be in the two tones (not speech or noise).
        if row + col < 0.5 * energy {
            return None;
        }
        Some(KEYPAD[r][c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a small seeded PRNG for noise.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    #[test]
    fn mapping() {
        for (i, &d) in DIGITS.iter().enumerate() {
            assert_eq!(digit_to_event(d), Some(i as u8));
            assert_eq!(event_to_digit(i as u8), Some(d));
            assert!(digit_freqs(d).is_some());
        }
        assert_eq!(digit_to_event('a'), Some(12));
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_freqs('5'), Some((770.0, 1336.0)));
        assert_eq!(digit_freqs('D'), Some((941.0, 1633.0)));
    }

    #[test]
    fn payload_roundtrip() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 0x1234,
        };
        let mut v = Vec::new();
        ev.write(&mut v);
        assert_eq!(v, [11, 0x8a, 0x12, 0x34]);
        assert_eq!(ev.to_bytes(), [11, 0x8a, 0x12, 0x34]);
        assert_eq!(TelephoneEvent::parse(&v), Ok(ev));
        // R bit ignored, trailing bytes ignored.
        assert_eq!(
            TelephoneEvent::parse(&[5, 0x40 | 63, 0, 160, 9, 9]),
            Ok(TelephoneEvent {
                event: 5,
                end: false,
                volume: 63,
                duration: 160
            })
        );
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::Truncated(3))
        );
        assert_eq!(TelephoneEvent::parse(&[]), Err(DtmfError::Truncated(0)));
    }

    fn drain(s: &mut DtmfSender, out: &mut Vec<DtmfPacket>) {
        while let Some(p) = s.poll_packet() {
            out.push(p);
        }
    }

    /// Presses `digit` at `start` for `len` units, advancing in 20 ms (160-unit) steps.
    fn press(s: &mut DtmfSender, digit: char, start: u32, len: u32) -> Vec<DtmfPacket> {
        let mut out = Vec::new();
        s.start(digit, start).unwrap();
        let mut t = 0;
        while t + 160 < len {
            t += 160;
            s.advance(start.wrapping_add(t));
        }
        s.stop(start.wrapping_add(len));
        drain(s, &mut out);
        out
    }

    #[test]
    fn sender_packets() {
        let mut s = DtmfSender::new(8000);
        let p = press(&mut s, '7', 1000, 1600);
        // start, updates at 400, 800, 1200, then the final duration three times.
        let durs: Vec<(u16, bool, bool)> = p
            .iter()
            .map(|p| (p.payload.duration, p.payload.end, p.marker))
            .collect();
        assert_eq!(
            durs,
            [
                (0, false, true),
                (400, false, false),
                (800, false, false),
                (1200, false, false),
                (1600, true, false),
                (1600, true, false),
                (1600, true, false),
            ]
        );
        assert!(p
            .iter()
            .all(|p| p.timestamp == 1000 && p.payload.event == 7));
        assert!(!s.is_active());
    }

    #[test]
    fn sender_to_receiver_all_digits_with_loss_and_duplicates() {
        let mut s = DtmfSender::new(8000);
        let mut r = DtmfReceiver::new(8000);
        // Start near the wrap of the RTP timestamp.
        let mut ts = u32::MAX - 5000;
        for (i, &d) in DIGITS.iter().enumerate() {
            let len = 800 + 160 * i as u32;
            let mut pkts = press(&mut s, d, ts, len);
            // Lose one packet: the start for even digits, the first update for odd ones.
            pkts.remove(if i % 2 == 0 { 0 } else { 1 });
            // Duplicate the end packets (network duplication) and an update.
            let ends: Vec<_> = pkts.iter().filter(|p| p.payload.end).copied().collect();
            pkts.extend(ends);
            pkts.insert(1, pkts[0]);
            for p in &pkts {
                let mut bytes = Vec::new();
                p.payload.write(&mut bytes);
                r.handle_payload(p.timestamp, p.marker, &bytes).unwrap();
            }
            let ev = r.poll_event().expect("one event");
            assert_eq!(ev.digit, Some(d));
            assert_eq!(ev.timestamp, ts);
            assert_eq!(ev.duration, u64::from(len));
            assert!(ev.ended);
            assert_eq!(r.poll_event(), None, "exactly one event for {d}");
            ts = ts.wrapping_add(len + 800);
        }
    }

    #[test]
    fn same_digit_twice_and_lost_ends() {
        let mut s = DtmfSender::new(8000);
        let mut r = DtmfReceiver::new(8000);
        // First press loses all its end packets; the second press of the same digit follows.
        let a = press(&mut s, '3', 0, 800);
        let b = press(&mut s, '3', 1600, 800);
        for p in a.iter().filter(|p| !p.payload.end).chain(&b) {
            r.handle_packet(p);
        }
        let e1 = r.poll_event().unwrap();
        assert_eq!(
            (e1.digit, e1.timestamp, e1.duration, e1.ended),
            (Some('3'), 0, 400, false)
        );
        let e2 = r.poll_event().unwrap();
        assert_eq!(
            (e2.digit, e2.timestamp, e2.duration, e2.ended),
            (Some('3'), 1600, 800, true)
        );
        assert_eq!(r.poll_event(), None);
        // Late packets of both presses (reordered after the second ended) change nothing.
        r.handle_packet(&a[2]);
        r.handle_packet(&b[1]);
        r.handle_packet(&a[0]);
        assert_eq!(r.poll_event(), None);
        // A press whose ends are all lost is reported after the timeout.
        let c = press(&mut s, '9', 4000, 800);
        for p in c.iter().filter(|p| !p.payload.end) {
            r.handle_packet(p);
        }
        r.handle_timeout(4000 + 800);
        assert_eq!(r.poll_event(), None);
        r.handle_timeout(4000 + 800 + 9000);
        let e3 = r.poll_event().unwrap();
        assert_eq!((e3.digit, e3.ended), (Some('9'), false));
    }

    #[test]
    fn long_press_over_8_seconds() {
        let mut s = DtmfSender::new(8000);
        let start = 4_000_000_000u32;
        let len = 10 * 8000; // 10 s: more than one 0xFFFF segment (8.19 s)
        let pkts = press(&mut s, '#', start, len);
        // A segment ends with the maximum duration; the next starts 0xFFFF later, no marker.
        let boundary = pkts
            .iter()
            .position(|p| p.payload.duration == 0xFFFF)
            .expect("segment end");
        assert_eq!(pkts[boundary].timestamp, start);
        let next = pkts[boundary + 1];
        assert_eq!(next.timestamp, start.wrapping_add(0xFFFF));
        assert!(!next.marker && !next.payload.end);
        let last = pkts.last().unwrap();
        assert!(last.payload.end);
        assert_eq!(u32::from(last.payload.duration), len - 0xFFFF);
        assert_eq!(pkts.iter().filter(|p| p.marker).count(), 1);
        // The receiver joins the segments into one press, also when the boundary packet is lost.
        for lose in [None, Some(boundary)] {
            let mut r = DtmfReceiver::new(8000);
            for (i, p) in pkts.iter().enumerate() {
                if Some(i) != lose {
                    r.handle_packet(p);
                    r.handle_packet(p);
                }
            }
            let ev = r.poll_event().unwrap();
            assert_eq!(
                (ev.digit, ev.timestamp, ev.duration),
                (Some('#'), start, u64::from(len))
            );
            assert_eq!(r.poll_event(), None);
        }
    }

    fn detect(pcm: &[i16], rate: u32) -> Vec<char> {
        let mut d = DtmfDetector::new(rate);
        // Feed in 20 ms frames, which do not line up with the detector's blocks.
        for chunk in pcm.chunks((rate / 50) as usize) {
            d.process(chunk);
        }
        std::iter::from_fn(|| d.poll_digit())
            .map(|x| x.digit)
            .collect()
    }

    #[test]
    fn generate_and_detect_all_digits() {
        let all: String = DIGITS.iter().collect();
        for rate in [8000, 16000] {
            let g = DtmfGenerator::new(rate);
            let mut pcm = Vec::new();
            g.sequence(&all, &mut pcm).unwrap();
            assert_eq!(detect(&pcm, rate), DIGITS.to_vec(), "rate {rate}");
        }
        // Repeated digit, short (60 ms) tones and pauses, at a lower level.
        let mut g = DtmfGenerator::new(8000);
        g.set_durations(60, 60);
        g.set_level_dbov(-25.0);
        let mut pcm = Vec::new();
        g.sequence("1155#", &mut pcm).unwrap();
        assert_eq!(detect(&pcm, 8000), vec!['1', '1', '5', '5', '#']);
        assert!(g.tone('x', &mut pcm).is_err());
    }

    #[test]
    fn detect_with_noise() {
        let all: String = DIGITS.iter().collect();
        let g = DtmfGenerator::new(8000);
        let mut pcm = Vec::new();
        g.sequence(&all, &mut pcm).unwrap();
        // White noise 20 dB below the tone pair (RMS of the pair = one tone's amplitude);
        // uniform noise on [-u, u] has RMS u/√3. Also over the pauses.
        let u = g.amplitude() / 10.0 * 3f64.sqrt();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for s in &mut pcm {
            *s = (f64::from(*s) + u * rng.unit())
                .round()
                .clamp(-32768.0, 32767.0) as i16;
        }
        assert_eq!(detect(&pcm, 8000), DIGITS.to_vec());
    }

    #[test]
    fn no_false_detections() {
        let rate = 8000.0;
        // Silence, a single tone, a row-only chord, strong noise, and too much twist.
        let single: Vec<i16> = (0..8000)
            .map(|i| (10000.0 * (2.0 * PI * 1000.0 * i as f64 / rate).sin()) as i16)
            .collect();
        let two_rows: Vec<i16> = (0..8000)
            .map(|i| {
                let t = i as f64 / rate;
                (8000.0 * ((2.0 * PI * 697.0 * t).sin() + (2.0 * PI * 852.0 * t).sin())) as i16
            })
            .collect();
        let twisted: Vec<i16> = (0..8000)
            .map(|i| {
                let t = i as f64 / rate;
                (12000.0 * (2.0 * PI * 697.0 * t).sin() + 1000.0 * (2.0 * PI * 1209.0 * t).sin())
                    as i16
            })
            .collect();
        let mut rng = Rng(42);
        let noise: Vec<i16> = (0..8000).map(|_| (10000.0 * rng.unit()) as i16).collect();
        for pcm in [vec![0; 8000], single, two_rows, twisted, noise] {
            assert!(detect(&pcm, 8000).is_empty());
        }
    }

    #[test]
    fn detector_start_sample() {
        let g = DtmfGenerator::new(8000);
        let mut pcm = vec![0; 1000];
        g.tone('0', &mut pcm).unwrap();
        let mut d = DtmfDetector::new(8000);
        d.process(&pcm);
        let x = d.poll_digit().unwrap();
        assert_eq!(x.digit, '0');
        // Reported from the first block that heard it, at most one block early.
        assert!(x.start_sample + d.block_samples() as u64 >= 1000 && x.start_sample <= 1000 + 205);
    }
}
