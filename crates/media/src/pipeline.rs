//! A one-direction transcoder: RTP of one codec in, RTP of another (or the same) codec out.
//!
//! Sans-IO with virtual time. [`Transcoder::push_rtp`] takes each incoming datagram with its
//! arrival time; [`Transcoder::poll`] (call it every few milliseconds, at most every 10 ms)
//! runs everything that is due up to `now` and hands out the outgoing packets one by one.
//!
//! The chain: adaptive [`JitterBuffer`] (one poll per input frame) → decode (concealment on
//! `Lost`) → [`Resampler`] to the output codec's rate → reframing FIFO → encode in frames of the
//! output ptime → RTP with its own SSRC and continuous sequence numbers and timestamps (the
//! timestamp also advances across pauses, by the time that passed).
//!
//! **Clock drift.** The sender's clock may run a little fast or slow against ours (±0.5 % is
//! not unusual). The buffer delay then creeps up or down. The transcoder does not let the
//! jitter buffer skip or conceal whole frames for it: when the delay has grown by a frame it
//! pulls one extra frame into the FIFO; when the delay has been falling (over the last
//! [`SLOPE_POLLS`] polls) and is about to go under the target, it skips one poll. The FIFO's
//! low-water level (the least it holds before an output frame, over a window) is watched
//! against the level it started with and brought back by dropping or duplicating a few
//! samples per output frame (one in 160 at most, at least one), at points of least local
//! activity (peaks of a tone, quiet moments of speech). Each such frame is counted in
//! [`TranscoderStats::drift_adjustments`]. The FIFO starts at one output frame plus two input
//! frames (60 ms at 20/20 ms), which is also the latency the transcoder adds on top of the
//! jitter buffer.
//!
//! **Comfort noise (RFC 3389).** When the input's CN payload type is configured, a CN packet
//! switches the input to comfort noise at its level: lost and missing frames are filled with
//! noise at that level (instead of being concealed or stopping the output) until speech
//! resumes. If the output negotiated CN too, the output sends a CN packet at the start of the
//! silence and every [`CN_REFRESH`] frames instead of encoded noise, and marks the first speech
//! packet after it.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use strowger_media::codec::CodecKind;
//! use strowger_media::pipeline::{Transcoder, TranscoderConfig};
//! use strowger_media::rtp::RtpBuilder;
//!
//! let cfg = TranscoderConfig::new(CodecKind::Pcmu, 0, CodecKind::Pcma, 8);
//! let mut tc = Transcoder::new(cfg).unwrap();
//! let t0 = Instant::now();
//! let mut out = Vec::new();
//! for i in 0..20u32 {
//!     let now = t0 + Duration::from_millis(20 * u64::from(i));
//!     let pkt = RtpBuilder {
//!         payload_type: 0,
//!         sequence_number: i as u16,
//!         timestamp: 160 * i,
//!         ssrc: 1,
//!         payload: vec![0xff; 160],
//!         ..Default::default()
//!     };
//!     tc.push_rtp(now, &pkt.to_vec().unwrap()).unwrap();
//!     while let Some(p) = tc.poll(now) {
//!         out.push(p);
//!     }
//! }
//! assert!(out.len() >= 15);
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::cn::{CnPayload, NoiseGenerator};
use crate::codec::opus::{OpusBandwidth, OpusDecoder, OpusEncoder, OpusOptions, API_RATES};
use crate::codec::{self, AudioDecoder, AudioEncoder, CodecError, CodecKind};
use crate::jitter::{JitterBuffer, JitterConfig, JitterOutput};
use crate::resample::{ResampleError, Resampler};
use crate::rtp::{RtpBuilder, RtpError, RtpPacket};

/// With CN on the output, a CN packet is repeated every this many output frames of silence.
pub const CN_REFRESH: u32 = 10;

/// Tag byte in front of payloads in the jitter buffer: audio.
const TAG_AUDIO: u8 = 0;
/// Tag byte in front of payloads in the jitter buffer: comfort noise.
const TAG_CN: u8 = 1;

/// Margin around the jitter buffer's target delay, in ms, for pulling an extra frame or skipping
/// a poll (hysteresis so that one does not undo the other).
const EXTRA_MARGIN_MS: f64 = 1.5;
const SKIP_MARGIN_MS: f64 = 1.0;
/// Smallest fall of the buffer delay per input frame, in ms, taken as the sender's clock being
/// slow (0.1 % of a 10 ms frame).
const SLOPE_MIN_MS: f64 = 0.01;
/// Polls over which the trend of the buffer delay is measured.
pub const SLOPE_POLLS: usize = 50;
/// FIFO deviation from its nominal low-water level that starts sample adjustments, in ms.
const DRIFT_THRESHOLD_MS: f64 = 2.0;
/// At most one sample in this many is dropped or duplicated per output frame (0.625 %: enough
/// for ±0.5 % of drift, little enough to keep a tone within 1 % of its pitch).
const MAX_ADJUST_DIVISOR: usize = 160;

/// The RTP clock rate of a codec.
pub fn rtp_clock(kind: CodecKind) -> u32 {
    match kind {
        CodecKind::Opus => 48_000,
        CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8_000,
    }
}

/// PCM rate of a codec's natural (default) encoder and decoder.
fn natural_rate(kind: CodecKind) -> u32 {
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma => 8_000,
        CodecKind::G722 => 16_000,
        CodecKind::Opus => 48_000,
    }
}

/// The resampler between two legs: the cheaper telephone-band filter
/// ([`Resampler::telephony`]) when one side is 8 kHz (its audio is telephone band anyway),
/// the full one otherwise.
pub fn new_resampler(from: u32, to: u32) -> Result<Resampler, ResampleError> {
    if from.min(to) == 8_000 {
        Resampler::telephony(from, to)
    } else {
        Resampler::new(from, to)
    }
}

/// How the Opus side of a [`Transcoder`] is set up (unused when neither side is Opus).
///
/// The defaults are for telephony: the other side is usually G.711 (8 kHz, 300–3400 Hz), so
/// Opus runs at the other side's PCM rate (no resampling at all for G.711 and G.722), codes
/// only the bandwidth the other side carries, at complexity 5, with in-band FEC only while the
/// receiver reports loss ([`Transcoder::set_expected_loss`]). Opus ↔ Opus keeps the
/// fullband reference ([`OpusSettings::full`]): 48 kHz, complexity 10, FEC for 10 % loss. See `bench/media/README.md` for
/// the cost and quality of each setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// Encoder target bit rate in bit/s. Default 32 000.
    pub bitrate: u32,
    /// Encoder complexity 0..=10. Default `None`: 5 when the other side is at most wideband
    /// (G.711, G.722: libopus's own choice for VoIP on ARM, at about half the encoder work of
    /// 10), 10 when it is Opus (fullband, where 5 loses ~1 dB on the chord test).
    pub complexity: Option<u8>,
    /// In-band FEC while the expected loss is above zero. Default true.
    pub fec: bool,
    /// Packet loss the encoder expects at first, in percent; FEC is off while it is 0. Update
    /// it from the receiver's reports with [`Transcoder::set_expected_loss`]. Default `None`:
    /// 0 when the other side is at most wideband, 10 when it is Opus (the fullband reference
    /// setting: without FEC, libopus's mode decision moves tonal input to CELT, which loses
    /// ~9 dB on the Opus ↔ Opus chord test).
    pub expected_loss_percent: Option<u8>,
    /// Highest bandwidth the encoder codes. Default `None`: the other side's
    /// ([`OpusBandwidth::for_rate`] of its PCM rate: narrowband for G.711, wideband for G.722,
    /// no limit for Opus).
    pub max_bandwidth: Option<OpusBandwidth>,
    /// Run the Opus encoder and decoder at the other side's PCM rate when Opus supports it
    /// (8 kHz for G.711, 16 kHz for G.722), so no resampler runs. Default true; false: 48 kHz.
    pub match_rate: bool,
    /// Discontinuous transmission. Default false.
    pub dtx: bool,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            bitrate: 32_000,
            complexity: None,
            fec: true,
            expected_loss_percent: None,
            max_bandwidth: None,
            match_rate: true,
            dtx: false,
        }
    }
}

impl OpusSettings {
    /// The settings of [`OpusOptions::default`] (48 kHz, complexity 10, fullband, FEC for 10 %
    /// loss): the engine's configuration before telephony settings existed.
    pub fn full() -> Self {
        OpusSettings {
            bitrate: 32_000,
            complexity: Some(10),
            fec: true,
            expected_loss_percent: Some(10),
            max_bandwidth: Some(OpusBandwidth::Fullband),
            match_rate: false,
            dtx: false,
        }
    }

    /// The Opus PCM rate for a leg whose other side runs at `other_rate` Hz.
    pub fn api_rate(&self, other_rate: u32) -> u32 {
        if self.match_rate && API_RATES.contains(&other_rate) {
            other_rate
        } else {
            crate::codec::opus::SAMPLE_RATE
        }
    }

    /// The encoder options for a leg whose other side runs at `other_rate` Hz.
    pub fn encoder_options(&self, other_rate: u32) -> OpusOptions {
        let telephony = other_rate <= 16_000;
        let loss = self
            .expected_loss_percent
            .unwrap_or(if telephony { 0 } else { 10 });
        OpusOptions {
            channels: 1,
            bitrate: self.bitrate,
            fec: self.fec && loss > 0,
            expected_loss_percent: loss,
            dtx: self.dtx,
            sample_rate: self.api_rate(other_rate),
            complexity: self.complexity.unwrap_or(if telephony { 5 } else { 10 }),
            max_bandwidth: self
                .max_bandwidth
                .unwrap_or_else(|| OpusBandwidth::for_rate(other_rate)),
        }
    }

    /// A mono Opus encoder for a leg whose other side runs at `other_rate` Hz.
    pub fn encoder(&self, other_rate: u32) -> Result<OpusEncoder, CodecError> {
        OpusEncoder::new(self.encoder_options(other_rate))
    }

    /// A mono Opus decoder for a leg whose other side runs at `other_rate` Hz.
    pub fn decoder(&self, other_rate: u32) -> Result<OpusDecoder, CodecError> {
        OpusDecoder::with_rate(self.api_rate(other_rate), 1)
    }
}

/// Why a transcoder could not be built or a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A codec could not be created.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// No resampler between the two rates.
    #[error("resampler: {0}")]
    Resample(#[from] ResampleError),
    /// The incoming datagram is not RTP.
    #[error("rtp: {0}")]
    Rtp(#[from] RtpError),
    /// A ptime the codec cannot do, or outside 10–60 ms.
    #[error("unsupported ptime {0:?} for {1}")]
    Ptime(Duration, CodecKind),
}

/// How a [`Transcoder`] is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscoderConfig {
    /// Incoming codec.
    pub input: CodecKind,
    /// Incoming payload type.
    pub input_pt: u8,
    /// Incoming RTP clock rate (see [`rtp_clock`]).
    pub input_clock: u32,
    /// Incoming packet time (10–60 ms): the jitter buffer's frame.
    pub input_ptime: Duration,
    /// Incoming comfort-noise payload type, if negotiated.
    pub input_cn_pt: Option<u8>,
    /// Outgoing codec.
    pub output: CodecKind,
    /// Outgoing payload type.
    pub output_pt: u8,
    /// Outgoing packet time (10–60 ms; Opus: 10, 20, 40 or 60).
    pub output_ptime: Duration,
    /// Outgoing comfort-noise payload type, if negotiated.
    pub output_cn_pt: Option<u8>,
    /// Outgoing SSRC.
    pub output_ssrc: u32,
    /// First outgoing sequence number.
    pub output_seq: u16,
    /// First outgoing RTP timestamp.
    pub output_ts: u32,
    /// Jitter buffer delay floor.
    pub min_delay: Duration,
    /// Jitter buffer delay ceiling.
    pub max_delay: Duration,
    /// The Opus encoder or decoder, if either side is Opus.
    pub opus: OpusSettings,
}

impl TranscoderConfig {
    /// 20 ms on both sides, no CN, default RTP clocks, 20–200 ms jitter buffer.
    pub fn new(input: CodecKind, input_pt: u8, output: CodecKind, output_pt: u8) -> Self {
        Self {
            input,
            input_pt,
            input_clock: rtp_clock(input),
            input_ptime: Duration::from_millis(20),
            input_cn_pt: None,
            output,
            output_pt,
            output_ptime: Duration::from_millis(20),
            output_cn_pt: None,
            output_ssrc: 0x5354_5257,
            output_seq: 1,
            output_ts: 0,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            opus: OpusSettings::default(),
        }
    }
}

/// Counters of a [`Transcoder`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscoderStats {
    /// RTP packets accepted (audio or CN of the configured payload types).
    pub packets_in: u64,
    /// Packets ignored: another payload type, or unparseable.
    pub ignored: u64,
    /// Input frames decoded (audio packets played by the jitter buffer).
    pub frames_in: u64,
    /// Input CN packets played.
    pub cn_in: u64,
    /// Input frames concealed (lost, late, or inserted by the jitter buffer).
    pub concealed: u64,
    /// Payloads that failed to decode (concealed instead).
    pub decode_errors: u64,
    /// Input frames' worth of comfort noise generated.
    pub cn_generated: u64,
    /// Output frames (one per output ptime while the output runs), including CN frames.
    pub frames_out: u64,
    /// Output packets sent (audio and CN).
    pub packets_out: u64,
    /// Output CN packets sent.
    pub cn_out: u64,
    /// Output frames that were short of samples and padded with silence.
    pub underruns: u64,
    /// Output frames in which samples were dropped or duplicated for clock drift.
    pub drift_adjustments: u64,
    /// Samples dropped for drift (output rate).
    pub drift_dropped: u64,
    /// Samples duplicated for drift (output rate).
    pub drift_duplicated: u64,
    /// Extra frames pulled from the jitter buffer because its delay grew by a frame.
    pub extra_pulls: u64,
    /// Jitter buffer polls skipped because its delay fell to the target.
    pub skipped_polls: u64,
    /// Samples thrown away: beyond the FIFO's hard bound, or an extra pull while the FIFO was
    /// already well above its nominal level.
    pub overflow_samples: u64,
    /// Current FIFO level in ms.
    pub fifo_ms: f64,
    /// Highest FIFO level seen, in ms (measured before each output frame).
    pub fifo_max_ms: f64,
    /// Jitter buffer delay at its last poll, in ms.
    pub jitter_delay_ms: f64,
    /// Jitter buffer target delay, in ms.
    pub jitter_target_ms: f64,
}

/// Samples of `ptime` at `rate`.
fn samples_of(rate: u32, ptime: Duration) -> usize {
    (u128::from(rate) * ptime.as_micros() / 1_000_000) as usize
}

fn check_ptime(kind: CodecKind, ptime: Duration) -> Result<(), PipelineError> {
    let ms = ptime.as_millis();
    let ok = ptime.subsec_micros().is_multiple_of(1000)
        && (10..=60).contains(&ms)
        && match kind {
            CodecKind::Opus => [10, 20, 40, 60].contains(&ms),
            _ => true,
        };
    if ok {
        Ok(())
    } else {
        Err(PipelineError::Ptime(ptime, kind))
    }
}

/// The one-direction transcoder. See the module documentation.
pub struct Transcoder {
    cfg: TranscoderConfig,
    jb: JitterBuffer,
    dec: Box<dyn AudioDecoder>,
    enc: Box<dyn AudioEncoder>,
    resampler: Resampler,
    noise: NoiseGenerator,
    /// Comfort-noise level while the input is in a CN silence.
    cn_level: Option<u8>,
    /// Output-rate samples waiting to be encoded.
    fifo: VecDeque<i16>,
    /// Samples per input frame at the decoder rate.
    in_frame_dec: usize,
    /// Samples per input frame at the output rate.
    in_frame_out: usize,
    /// Samples per output frame at the encoder rate.
    out_frame: usize,
    /// RTP timestamp units per output frame.
    out_frame_ts: u32,
    /// FIFO level at which the output starts.
    prime: usize,
    /// FIFO level beyond which the oldest samples are dropped.
    limit: usize,
    /// Output frames per drift-measurement window.
    window: u32,
    window_count: u32,
    window_min: usize,
    nominal: Option<usize>,
    /// Current FIFO deviation from nominal, in samples (positive: too full).
    excess: i64,
    /// Buffer delay at the last polls (at most [`SLOPE_POLLS`]), in ms, for its trend.
    delays: VecDeque<f64>,
    next_in: Option<Instant>,
    next_out: Option<Instant>,
    /// The input is idle (jitter buffer not playing, no CN).
    idle: bool,
    out_seq: u16,
    out_ts: u32,
    /// When and at which timestamp the last output frame went (to carry the clock over pauses).
    last_frame: Option<(Instant, u32)>,
    marker: bool,
    /// Output frames since the last CN packet sent (None: not in a CN silence on the output).
    cn_out_since: Option<u32>,
    out_queue: VecDeque<Vec<u8>>,
    pcm: Vec<i16>,
    resampled: Vec<i16>,
    frame: Vec<i16>,
    stats: TranscoderStats,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// A transcoder for `cfg`.
    pub fn new(cfg: TranscoderConfig) -> Result<Self, PipelineError> {
        check_ptime(cfg.input, cfg.input_ptime)?;
        check_ptime(cfg.output, cfg.output_ptime)?;
        if cfg.input_clock == 0 {
            return Err(PipelineError::Codec(CodecError::Unsupported(
                "zero input clock",
            )));
        }
        let dec: Box<dyn AudioDecoder> = match cfg.input {
            CodecKind::Opus => Box::new(cfg.opus.decoder(natural_rate(cfg.output))?),
            kind => codec::new_decoder(kind)?,
        };
        let enc: Box<dyn AudioEncoder> = match cfg.output {
            CodecKind::Opus => Box::new(cfg.opus.encoder(natural_rate(cfg.input))?),
            kind => codec::new_encoder(kind)?,
        };
        let resampler = new_resampler(dec.sample_rate(), enc.sample_rate())?;
        let mut jcfg = JitterConfig::new(cfg.input_clock, cfg.input_ptime);
        jcfg.min_delay = cfg.min_delay;
        jcfg.max_delay = cfg.max_delay.max(cfg.min_delay);
        // Shrinking is done here, by pulling an extra frame into the FIFO instead of skipping.
        jcfg.shrink_interval = u32::MAX;
        let in_frame_dec = samples_of(dec.sample_rate(), cfg.input_ptime);
        let in_frame_out = samples_of(enc.sample_rate(), cfg.input_ptime);
        let out_frame = samples_of(enc.sample_rate(), cfg.output_ptime);
        let out_frame_ts = samples_of(rtp_clock(cfg.output), cfg.output_ptime) as u32;
        let prime = out_frame + 2 * in_frame_out;
        let limit = prime + 4 * in_frame_out + out_frame;
        let window = cfg
            .input_ptime
            .as_micros()
            .div_ceil(cfg.output_ptime.as_micros()) as u32
            + 1;
        let stats = TranscoderStats {
            jitter_target_ms: cfg.min_delay.as_secs_f64() * 1000.0,
            ..TranscoderStats::default()
        };
        Ok(Self {
            jb: JitterBuffer::new(jcfg),
            dec,
            enc,
            resampler,
            noise: NoiseGenerator::new(u64::from(cfg.output_ssrc) ^ 0x9e37_79b9_7f4a_7c15),
            cn_level: None,
            fifo: VecDeque::new(),
            in_frame_dec,
            in_frame_out,
            out_frame,
            out_frame_ts,
            prime,
            limit,
            window,
            window_count: 0,
            window_min: usize::MAX,
            nominal: None,
            excess: 0,
            delays: VecDeque::with_capacity(SLOPE_POLLS),
            next_in: None,
            next_out: None,
            idle: true,
            out_seq: cfg.output_seq,
            out_ts: cfg.output_ts,
            last_frame: None,
            marker: true,
            cn_out_since: None,
            out_queue: VecDeque::new(),
            pcm: Vec::new(),
            resampled: Vec::new(),
            frame: Vec::new(),
            stats,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TranscoderConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &TranscoderStats {
        &self.stats
    }

    /// The jitter buffer's own counters.
    pub fn jitter_stats(&self) -> &crate::jitter::JitterStats {
        self.jb.stats()
    }

    /// Tells the output encoder the packet loss its receiver reports, in percent (e.g. from RTCP
    /// receiver reports, smoothed). An Opus output turns in-band FEC on while it is above zero
    /// (if [`OpusSettings::fec`]) and off at zero; other codecs ignore it.
    pub fn set_expected_loss(&mut self, percent: u8) {
        if self.cfg.output == CodecKind::Opus && self.cfg.opus.fec {
            self.enc.set_expected_loss(percent);
            self.cfg.opus.expected_loss_percent = Some(percent.min(100));
        }
    }

    /// Whether the output is currently producing frames.
    pub fn is_active(&self) -> bool {
        self.next_out.is_some()
    }

    /// Takes one incoming datagram that arrived at `now`. Packets of other payload types are
    /// counted and ignored.
    pub fn push_rtp(&mut self, now: Instant, datagram: &[u8]) -> Result<(), PipelineError> {
        let p = match RtpPacket::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.ignored += 1;
                return Err(e.into());
            }
        };
        let tag = if p.payload_type == self.cfg.input_pt {
            TAG_AUDIO
        } else if Some(p.payload_type) == self.cfg.input_cn_pt {
            TAG_CN
        } else {
            self.stats.ignored += 1;
            return Ok(());
        };
        if p.payload.is_empty() {
            self.stats.ignored += 1;
            return Ok(());
        }
        self.stats.packets_in += 1;
        let mut payload = Vec::with_capacity(p.payload.len() + 1);
        payload.push(tag);
        payload.extend_from_slice(p.payload);
        self.jb
            .push_rtp(now, p.ssrc, p.sequence_number, p.timestamp, payload);
        if self.next_in.is_none() {
            self.next_in = Some(now);
        }
        Ok(())
    }

    /// Runs everything due up to `now` and returns the next outgoing packet, if any. Call it
    /// until it returns `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(p) = self.out_queue.pop_front() {
            return Some(p);
        }
        self.advance(now);
        self.out_queue.pop_front()
    }

    /// Runs everything due up to `now` and appends all outgoing packets to `out`.
    pub fn poll_into(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.advance(now);
        out.extend(self.out_queue.drain(..));
    }

    fn advance(&mut self, now: Instant) {
        // A long idle pause: do not replay every tick of it.
        if let Some(t) = self.next_in {
            if self.idle
                && self.next_out.is_none()
                && self.jb.is_empty()
                && t + self.cfg.input_ptime < now
            {
                self.next_in = Some(now);
            }
        }
        loop {
            let tin = self.next_in.filter(|&t| t <= now);
            let tout = self.next_out.filter(|&t| t <= now);
            match (tin, tout) {
                (Some(i), Some(o)) if i <= o => self.input_tick(i),
                (Some(i), None) => self.input_tick(i),
                (_, Some(o)) => self.output_tick(o),
                (None, None) => break,
            }
        }
        self.stats.fifo_ms = self.samples_ms(self.fifo.len());
    }

    /// Change of the buffer delay per poll over the last [`SLOPE_POLLS`] polls, in ms.
    fn delay_trend(&self) -> f64 {
        match (self.delays.front(), self.delays.back()) {
            (Some(first), Some(last)) if self.delays.len() > 1 => {
                (last - first) / (self.delays.len() - 1) as f64
            }
            _ => 0.0,
        }
    }

    fn samples_ms(&self, n: usize) -> f64 {
        n as f64 * 1000.0 / f64::from(self.enc.sample_rate())
    }

    fn input_tick(&mut self, t: Instant) {
        self.next_in = Some(t + self.cfg.input_ptime);
        let frame_ms = self.cfg.input_ptime.as_secs_f64() * 1000.0;
        let js = self.jb.stats();
        let (delay, target) = (js.delay_ms, js.target_ms);
        // The sender's clock is slower than ours: the delay is falling and has come down to the
        // target. Skip this poll rather than let the jitter buffer conceal a frame, if the FIFO
        // can afford it.
        if !self.idle
            && self.cn_level.is_none()
            && self.next_out.is_some()
            && self.delays.len() == SLOPE_POLLS
            && self.delay_trend() < -SLOPE_MIN_MS
            && delay < target + SKIP_MARGIN_MS
            && self.fifo.len() >= self.in_frame_out.max(self.out_frame) + self.out_frame / 4
        {
            self.stats.skipped_polls += 1;
            self.delays.clear();
            return;
        }
        let out = self.jb.poll(t);
        let playing = !matches!(out, JitterOutput::Nothing);
        self.play(out, true);
        if playing {
            let d = self.jb.stats().delay_ms;
            // Steps of half a frame or more are the buffer adapting, not drift: start over.
            if self
                .delays
                .back()
                .is_some_and(|&p| (d - p).abs() >= frame_ms / 2.0)
            {
                self.delays.clear();
            }
            if self.delays.len() == SLOPE_POLLS {
                self.delays.pop_front();
            }
            self.delays.push_back(d);
        } else {
            self.delays.clear();
        }
        if playing {
            let js = self.jb.stats();
            if js.delay_ms >= js.target_ms + frame_ms + EXTRA_MARGIN_MS {
                // The sender's clock is faster: take a frame now rather than let the buffer grow.
                self.stats.extra_pulls += 1;
                self.delays.clear();
                let keep = self
                    .nominal
                    .is_none_or(|n| self.fifo.len() <= n + 3 * self.in_frame_out);
                let out = self.jb.poll(t);
                self.play(out, keep);
            }
        }
        let js = self.jb.stats();
        self.stats.jitter_delay_ms = js.delay_ms;
        self.stats.jitter_target_ms = js.target_ms;

        if self.idle {
            if self.next_out.is_none() {
                self.fifo.clear();
            }
        } else if self.next_out.is_none() && self.fifo.len() >= self.prime {
            self.start_output(t);
        }
    }

    /// Decodes (or conceals, or generates noise for) one jitter buffer output into the FIFO.
    fn play(&mut self, out: JitterOutput, keep: bool) {
        self.pcm.clear();
        match out {
            JitterOutput::Frame(f) => {
                self.idle = false;
                let (tag, payload) = f.payload.split_first().expect("tagged payload");
                if *tag == TAG_CN {
                    self.stats.cn_in += 1;
                    let level =
                        CnPayload::parse(payload).map_or(crate::level::SILENCE, |c| c.level);
                    self.cn_level = Some(level);
                    self.noise.set_level(level);
                    self.stats.cn_generated += 1;
                    self.noise.generate(self.in_frame_dec, &mut self.pcm);
                } else {
                    self.cn_level = None;
                    self.stats.frames_in += 1;
                    if self.dec.decode(payload, &mut self.pcm).is_err() {
                        self.stats.decode_errors += 1;
                        self.pcm.clear();
                        self.dec.conceal(self.in_frame_dec, &mut self.pcm);
                    }
                }
            }
            JitterOutput::Lost { samples } => {
                self.idle = false;
                let n = (u64::from(samples) * u64::from(self.dec.sample_rate())
                    / u64::from(self.cfg.input_clock)) as usize;
                if self.cn_level.is_some() {
                    self.stats.cn_generated += 1;
                    self.noise.generate(n, &mut self.pcm);
                } else {
                    self.stats.concealed += 1;
                    self.dec.conceal(n, &mut self.pcm);
                }
            }
            JitterOutput::Nothing => {
                if self.cn_level.is_some() {
                    self.idle = false;
                    self.stats.cn_generated += 1;
                    self.noise.generate(self.in_frame_dec, &mut self.pcm);
                } else {
                    self.idle = true;
                }
            }
        }
        if self.pcm.is_empty() {
            return;
        }
        self.resampled.clear();
        self.resampler.process(&self.pcm, &mut self.resampled);
        if keep {
            self.fifo.extend(self.resampled.iter().copied());
        } else {
            self.stats.overflow_samples += self.resampled.len() as u64;
        }
    }

    fn start_output(&mut self, t: Instant) {
        self.next_out = Some(t);
        self.marker = true;
        self.nominal = None;
        self.window_count = 0;
        self.window_min = usize::MAX;
        self.excess = 0;
        if let Some((at, ts)) = self.last_frame {
            // Carry the clock over the pause.
            let gap = t.saturating_duration_since(at);
            let ticks = (gap.as_secs_f64() * f64::from(rtp_clock(self.cfg.output))).round() as u64;
            self.out_ts = ts.wrapping_add(ticks.max(u64::from(self.out_frame_ts)) as u32);
        }
    }

    fn output_tick(&mut self, t: Instant) {
        self.next_out = Some(t + self.cfg.output_ptime);
        let level = self.fifo.len();
        self.stats.fifo_max_ms = self.stats.fifo_max_ms.max(self.samples_ms(level));
        if level < self.out_frame && self.idle {
            // The input stopped: flush what is left and stop.
            if level > 0 {
                self.frame.clear();
                self.frame.extend(self.fifo.drain(..));
                self.frame.resize(self.out_frame, 0);
                self.emit(t);
            }
            self.next_out = None;
            self.cn_out_since = None;
            return;
        }

        // Drift measurement: the lowest level before an output frame over a window (not while
        // the input has stopped and the FIFO drains).
        if self.idle {
            self.window_count = 0;
            self.window_min = usize::MAX;
            self.excess = 0;
        }
        self.window_min = self.window_min.min(level);
        self.window_count += 1;
        if self.window_count >= self.window {
            match self.nominal {
                None => self.nominal = Some(self.window_min),
                Some(n) => self.excess = self.window_min as i64 - n as i64,
            }
            self.window_count = 0;
            self.window_min = usize::MAX;
        }

        // Hard bound.
        if level > self.limit {
            let drop = level - self.prime;
            self.fifo.drain(..drop);
            self.stats.overflow_samples += drop as u64;
            self.excess = 0;
        }

        let threshold =
            (DRIFT_THRESHOLD_MS * f64::from(self.enc.sample_rate()) / 1000.0).round() as i64;
        let max_adj = (self.out_frame / MAX_ADJUST_DIVISOR).max(1);
        self.frame.clear();
        if self.excess > threshold && self.fifo.len() >= self.out_frame + max_adj {
            let k = max_adj.min((self.excess - threshold) as usize).max(1);
            self.frame.extend(self.fifo.drain(..self.out_frame + k));
            adjust(&mut self.frame, k, true);
            self.excess -= k as i64;
            self.stats.drift_adjustments += 1;
            self.stats.drift_dropped += k as u64;
        } else if self.excess < -threshold && self.fifo.len() >= self.out_frame {
            let k = max_adj.min((-threshold - self.excess) as usize).max(1);
            self.frame.extend(self.fifo.drain(..self.out_frame - k));
            adjust(&mut self.frame, k, false);
            self.excess += k as i64;
            self.stats.drift_adjustments += 1;
            self.stats.drift_duplicated += k as u64;
        } else {
            let n = self.out_frame.min(self.fifo.len());
            self.frame.extend(self.fifo.drain(..n));
            if n < self.out_frame {
                self.stats.underruns += 1;
                self.frame.resize(self.out_frame, 0);
            }
        }
        self.emit(t);
    }

    /// Encodes `self.frame` (or sends CN) and advances the output clock.
    fn emit(&mut self, t: Instant) {
        self.stats.frames_out += 1;
        let cn_out = match (self.cn_level, self.cfg.output_cn_pt) {
            (Some(level), Some(pt)) => Some((level, pt)),
            _ => None,
        };
        if let Some((level, pt)) = cn_out {
            let since = self.cn_out_since.map_or(CN_REFRESH, |s| s + 1);
            if since >= CN_REFRESH {
                let mut payload = Vec::new();
                CnPayload::with_level(level).write(&mut payload);
                self.send(pt, payload);
                self.stats.cn_out += 1;
                self.cn_out_since = Some(0);
            } else {
                self.cn_out_since = Some(since);
            }
            // The first audio packet after the silence starts a talkspurt.
            self.marker = true;
        } else {
            self.cn_out_since = None;
            let mut payload = Vec::new();
            match self.enc.encode(&self.frame, &mut payload) {
                Ok(()) => self.send(self.cfg.output_pt, payload),
                Err(_) => self.marker = true,
            }
        }
        self.last_frame = Some((t, self.out_ts));
        self.out_ts = self.out_ts.wrapping_add(self.out_frame_ts);
    }

    fn send(&mut self, pt: u8, payload: Vec<u8>) {
        let b = RtpBuilder {
            marker: self.marker,
            payload_type: pt,
            sequence_number: self.out_seq,
            timestamp: self.out_ts,
            ssrc: self.cfg.output_ssrc,
            payload,
            ..RtpBuilder::default()
        };
        if let Ok(bytes) = b.to_vec() {
            self.out_queue.push_back(bytes);
            self.out_seq = self.out_seq.wrapping_add(1);
            self.stats.packets_out += 1;
            // A CN packet is followed by more silence; the marker goes on the next talkspurt.
            self.marker = false;
        }
    }
}

/// Drops (`drop`) or duplicates `k` samples of `frame`, one in each of `k` equal segments, at
/// the point of least local activity (smallest |x[i-1] - x[i]| + |x[i+1] - x[i]|).
fn adjust(frame: &mut Vec<i16>, k: usize, drop: bool) {
    if frame.len() < 3 || k == 0 {
        return;
    }
    let mut points = Vec::with_capacity(k);
    let seg = (frame.len() - 2) / k;
    if seg == 0 {
        return;
    }
    for s in 0..k {
        let lo = 1 + s * seg;
        let hi = (lo + seg).min(frame.len() - 1);
        let best = (lo..hi)
            .min_by_key(|&i| {
                let (a, b, c) = (
                    i32::from(frame[i - 1]),
                    i32::from(frame[i]),
                    i32::from(frame[i + 1]),
                );
                (a - b).abs() + (c - b).abs()
            })
            .unwrap_or(lo);
        points.push(best);
    }
    // Back to front so that indices stay valid.
    for &i in points.iter().rev() {
        if drop {
            frame.remove(i);
        } else {
            frame.insert(i, frame[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjust_drops_and_duplicates_at_quiet_points() {
        let mut f: Vec<i16> = vec![100, -100, 100, 5, 5, 5, 100, -100, 100, -100];
        adjust(&mut f, 1, true);
        assert_eq!(f.len(), 9);
        assert_eq!(f[3..5], [5, 5]);
        let mut f: Vec<i16> = vec![100, -100, 100, 5, 5, 5, 100, -100, 100, -100];
        adjust(&mut f, 1, false);
        assert_eq!(f.len(), 11);
        assert_eq!(f[3..7], [5, 5, 5, 5]);
    }

    #[test]
    fn opus_settings_follow_the_other_side() {
        let s = OpusSettings::default();
        let nb = s.encoder_options(8_000);
        assert_eq!(
            (
                nb.sample_rate,
                nb.complexity,
                nb.fec,
                nb.expected_loss_percent
            ),
            (8_000, 5, false, 0)
        );
        assert_eq!(nb.max_bandwidth, OpusBandwidth::Narrowband);
        let wb = s.encoder_options(16_000);
        assert_eq!(
            (wb.sample_rate, wb.max_bandwidth),
            (16_000, OpusBandwidth::Wideband)
        );
        let fb = s.encoder_options(48_000);
        assert_eq!(fb, OpusOptions::default());
        assert_eq!(
            OpusSettings::full().encoder_options(8_000),
            OpusOptions::default()
        );
        // The transcoder runs Opus at 8 kHz against PCMU and FEC follows the reported loss.
        let mut cfg = TranscoderConfig::new(CodecKind::Pcmu, 0, CodecKind::Opus, 111);
        let mut tc = Transcoder::new(cfg.clone()).unwrap();
        assert_eq!(tc.enc.sample_rate(), 8_000);
        assert_eq!(tc.resampler.input_rate(), tc.resampler.output_rate());
        tc.set_expected_loss(5);
        assert_eq!(tc.config().opus.expected_loss_percent, Some(5));
        cfg.opus.match_rate = false;
        let tc = Transcoder::new(cfg).unwrap();
        assert_eq!(tc.enc.sample_rate(), 48_000);
        assert_eq!(tc.resampler.output_rate(), 48_000);
    }

    #[test]
    fn bad_ptimes_are_refused() {
        let mut c = TranscoderConfig::new(CodecKind::Pcmu, 0, CodecKind::Opus, 111);
        c.output_ptime = Duration::from_millis(30);
        assert!(matches!(
            Transcoder::new(c.clone()),
            Err(PipelineError::Ptime(..))
        ));
        c.output = CodecKind::Pcma;
        assert!(Transcoder::new(c.clone()).is_ok());
        c.input_ptime = Duration::from_millis(5);
        assert!(Transcoder::new(c).is_err());
    }
}
