//! CPU benchmark of the media engine (`strowger-media`).
//!
//! Subcommands:
//! - `codecs`: ns per 20 ms frame of each encoder, decoder and resampler direction.
//! - `call`: one transcoded call (PCMU 8 kHz <-> Opus 48 kHz, both directions, jitter buffers,
//!   RTP parse/build): CPU per second of call.
//! - `mixer`: one N-party room at 48 kHz, cost per mix tick and per participant.
//!
//! Every measured piece of work runs inside [`measured`] (never inlined), so under
//! `valgrind --tool=callgrind --toggle-collect='mediabench::measured'` only that work is counted.
//! With `--callgrind` the program skips its clock reads and runs the measured frames in one
//! `measured` call; instructions / frames is then the repeatable figure.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use strowger_media::codec::opus::OpusBandwidth;
use strowger_media::codec::{new_decoder, new_encoder, AudioDecoder, AudioEncoder, CodecKind};
use strowger_media::jitter::{JitterBuffer, JitterConfig, JitterOutput};
use strowger_media::mixer::Mixer;
use strowger_media::pipeline::{new_resampler, OpusSettings};
use strowger_media::resample::Resampler;
use strowger_media::rtp::{RtpBuilder, RtpPacket};

#[derive(Parser)]
#[command(
    name = "mediabench",
    about = "CPU benchmark of Strowger's media engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// ns per 20 ms frame of every encoder, decoder and resampler direction.
    Codecs {
        /// Measured frames per item.
        #[arg(long, default_value_t = 3000)]
        frames: usize,
        /// Frames run before measuring.
        #[arg(long, default_value_t = 200)]
        warmup: usize,
        /// Only the item with this name (e.g. `enc-opus`, `rs-8-48`); default: all.
        #[arg(long)]
        only: Option<String>,
        /// No clock reads: run the measured frames in one `measured` call (for callgrind).
        #[arg(long)]
        callgrind: bool,
    },
    /// One transcoded call, PCMU <-> Opus, both directions, with jitter buffers.
    Call {
        /// Seconds of call time measured.
        #[arg(long, default_value_t = 120)]
        seconds: usize,
        /// Seconds of call time run before measuring.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// No clock reads (for callgrind).
        #[arg(long)]
        callgrind: bool,
        #[command(flatten)]
        opus: OpusArgs,
        /// The Opus far end sends 8 kHz narrowband Opus (SDP `maxplaybackrate=8000`) instead of
        /// 48 kHz fullband.
        #[arg(long)]
        far_end_narrowband: bool,
    },
    /// An N-party room at 48 kHz, 20 ms frames, K loudest mixed.
    Mixer {
        /// Participants.
        #[arg(long, default_value_t = 50)]
        participants: usize,
        /// Mixed speakers (K).
        #[arg(long, default_value_t = 3)]
        speakers: usize,
        /// Measured ticks.
        #[arg(long, default_value_t = 2000)]
        ticks: usize,
        /// Ticks run before measuring.
        #[arg(long, default_value_t = 100)]
        warmup: usize,
        /// No clock reads (for callgrind).
        #[arg(long)]
        callgrind: bool,
    },
}

/// Opus settings of the call: `pipeline::OpusSettings::default()` (telephony) unless changed.
#[derive(clap::Args, Clone)]
struct OpusArgs {
    /// Start from `OpusSettings::full()` (48 kHz, complexity 10, fullband, FEC for 10 % loss:
    /// the configuration before telephony settings) instead of the telephony defaults.
    #[arg(long)]
    full: bool,
    /// Encoder complexity 0..=10.
    #[arg(long)]
    complexity: Option<u8>,
    /// Expected loss in percent (FEC on above 0).
    #[arg(long)]
    loss: Option<u8>,
    /// Maximum bandwidth: nb, mb, wb, swb or fb.
    #[arg(long)]
    max_bandwidth: Option<String>,
    /// Opus PCM rate: `match` (the G.711 side's 8 kHz, no resampler) or `48` (48 kHz).
    #[arg(long)]
    opus_rate: Option<String>,
}

impl OpusArgs {
    fn settings(&self) -> OpusSettings {
        let mut s = if self.full {
            OpusSettings::full()
        } else {
            OpusSettings::default()
        };
        if let Some(c) = self.complexity {
            s.complexity = Some(c);
        }
        if let Some(l) = self.loss {
            s.expected_loss_percent = Some(l);
        }
        if let Some(b) = &self.max_bandwidth {
            s.max_bandwidth = Some(match b.as_str() {
                "nb" => OpusBandwidth::Narrowband,
                "mb" => OpusBandwidth::Mediumband,
                "wb" => OpusBandwidth::Wideband,
                "swb" => OpusBandwidth::Superwideband,
                "fb" => OpusBandwidth::Fullband,
                other => panic!("unknown bandwidth {other}"),
            });
        }
        if let Some(r) = &self.opus_rate {
            s.match_rate = match r.as_str() {
                "match" => true,
                "48" => false,
                other => panic!("unknown opus rate {other}"),
            };
        }
        s
    }
}

/// The measured region: frames `start..start + n` of `f`. Callgrind's `--toggle-collect` target.
#[inline(never)]
fn measured(f: &mut dyn FnMut(usize), start: usize, n: usize) {
    for i in start..start + n {
        f(i);
    }
}

/// Runs `warmup` frames, then `frames` measured ones; returns each measured frame's ns (empty
/// in callgrind mode, where all measured frames run in a single [`measured`] call).
fn run(f: &mut dyn FnMut(usize), warmup: usize, frames: usize, callgrind: bool) -> Vec<u64> {
    for i in 0..warmup {
        f(i);
    }
    if callgrind {
        measured(f, warmup, frames);
        return Vec::new();
    }
    let mut ns = Vec::with_capacity(frames);
    for i in warmup..warmup + frames {
        let t = Instant::now();
        measured(f, i, 1);
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns
}

struct Stats {
    median: u64,
    mean: f64,
    p99: u64,
}

fn stats(ns: &[u64]) -> Stats {
    let mut v = ns.to_vec();
    v.sort_unstable();
    Stats {
        median: v[v.len() / 2],
        mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
        p99: v[(v.len() * 99 / 100).min(v.len() - 1)],
    }
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A deterministic xorshift generator for the noise part of the signal.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `secs` seconds of a speech-like signal at `rate` Hz: a glottal-pulse-like harmonic series on
/// a wandering pitch (100–180 Hz), shaped by three formant bumps, with syllable-rate amplitude
/// modulation, short pauses, and some noise. `seed` varies the pitch, rhythm and noise.
fn speech(rate: u32, secs: f32, seed: u64) -> Vec<i16> {
    let n = (rate as f32 * secs) as usize;
    let fs = rate as f32;
    let nyq = fs / 2.0;
    let formants = [(500.0f32, 120.0f32), (1500.0, 200.0), (2500.0, 300.0)];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let sd = seed as f32;
    let mut phase = 0.0f32;
    let mut env: Vec<f32> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f32 / fs;
        let f0 = 140.0 + 40.0 * (2.0 * std::f32::consts::PI * (0.7 + 0.05 * sd) * t).sin();
        phase += f0 / fs;
        if phase >= 1.0 {
            phase -= 1.0;
        }
        // The pitch moves slowly: refresh the formant weight of each harmonic once per ms.
        if i % (rate as usize / 1000).max(1) == 0 {
            env.clear();
            let mut h = 1;
            while (h as f32) * f0 < nyq.min(4000.0) {
                let f = h as f32 * f0;
                let e: f32 = formants
                    .iter()
                    .map(|&(c, w)| (-((f - c) / w).powi(2)).exp())
                    .sum::<f32>()
                    + 0.05;
                env.push(e / h as f32);
                h += 1;
            }
        }
        let mut v = 0.0f32;
        for (k, e) in env.iter().enumerate() {
            v += e * (2.0 * std::f32::consts::PI * (k + 1) as f32 * phase).sin();
        }
        // Syllables at ~4 Hz, and a pause of 0.4 s every 3 s.
        let syl = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * (4.0 + 0.3 * sd) * t).sin();
        let pause = if (t + 0.37 * sd) % 3.0 > 2.6 {
            0.02
        } else {
            1.0
        };
        let noise = 0.03 * rng.next_f32();
        let x = (v * 0.25 * syl * pause + noise) * 12_000.0;
        out.push(x.clamp(-32_768.0, 32_767.0) as i16);
    }
    out
}

/// 20 ms frames of `signal` at `rate`.
fn frames(signal: &[i16], rate: u32) -> Vec<&[i16]> {
    signal.chunks_exact(rate as usize / 50).collect()
}

fn codec_rate(kind: CodecKind) -> u32 {
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma => 8_000,
        CodecKind::G722 => 16_000,
        CodecKind::Opus => 48_000,
    }
}

fn name(kind: CodecKind) -> &'static str {
    match kind {
        CodecKind::Pcmu => "pcmu",
        CodecKind::Pcma => "pcma",
        CodecKind::G722 => "g722",
        CodecKind::Opus => "opus",
    }
}

fn report(item: &str, what: &str, ns: &[u64], n: usize, callgrind: bool) {
    if callgrind {
        println!("RESULT {{\"item\":\"{item}\",\"measured_frames\":{n}}}");
        return;
    }
    let s = stats(ns);
    println!(
        "{item:<10} {what:<34} median {:>8} ns  mean {:>10.0} ns  p99 {:>8} ns   load1 {}",
        s.median,
        s.mean,
        s.p99,
        load1()
    );
    println!(
        "RESULT {{\"item\":\"{item}\",\"measured_frames\":{n},\"median_ns\":{},\"mean_ns\":{:.0},\"p99_ns\":{}}}",
        s.median, s.mean, s.p99
    );
}

fn codecs(frames_n: usize, warmup: usize, only: Option<String>, callgrind: bool) {
    // 2 s of signal, cycled: 100 distinct frames.
    let secs = 2.0;
    let want = |item: &str| only.as_deref().is_none_or(|o| o == item);
    let kinds = [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus,
    ];
    // Opus as a telephony leg runs it (pipeline::OpusSettings::default() against G.711):
    // 8 kHz PCM, narrowband, complexity 5, no FEC.
    {
        let tel = OpusSettings::default();
        let sig = speech(8_000, secs, 1);
        let fr = frames(&sig, 8_000);
        let mut pre = tel.encoder(8_000).expect("encoder");
        let payloads: Vec<Vec<u8>> = fr
            .iter()
            .map(|f| {
                let mut p = Vec::new();
                pre.encode(f, &mut p).expect("encode");
                p
            })
            .collect();
        if want("enc-opus8") {
            let mut enc = tel.encoder(8_000).expect("encoder");
            let mut out = Vec::with_capacity(4000);
            let mut f = |i: usize| {
                out.clear();
                enc.encode(fr[i % fr.len()], &mut out).expect("encode");
                black_box(&out);
            };
            let ns = run(&mut f, warmup, frames_n, callgrind);
            let bytes = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
            report(
                "enc-opus8",
                &format!("opus 8 kHz NB c5 encode, {bytes} B/frame"),
                &ns,
                frames_n,
                callgrind,
            );
        }
        if want("dec-opus8") {
            let mut dec = tel.decoder(8_000).expect("decoder");
            let mut out = Vec::with_capacity(2000);
            let mut f = |i: usize| {
                out.clear();
                dec.decode(&payloads[i % payloads.len()], &mut out)
                    .expect("decode");
                black_box(&out);
            };
            let ns = run(&mut f, warmup, frames_n, callgrind);
            report(
                "dec-opus8",
                "opus decode to 8 kHz",
                &ns,
                frames_n,
                callgrind,
            );
        }
    }
    for kind in kinds {
        let item = format!("enc-{}", name(kind));
        if !want(&item) && !want(&format!("dec-{}", name(kind))) {
            continue;
        }
        let rate = codec_rate(kind);
        let sig = speech(rate, secs, 1);
        let fr = frames(&sig, rate);
        // Payloads for the decoder, from a separate encoder.
        let mut pre = new_encoder(kind).expect("encoder");
        let payloads: Vec<Vec<u8>> = fr
            .iter()
            .map(|f| {
                let mut p = Vec::new();
                pre.encode(f, &mut p).expect("encode");
                p
            })
            .collect();
        if want(&item) {
            let mut enc: Box<dyn AudioEncoder> = new_encoder(kind).expect("encoder");
            let mut out = Vec::with_capacity(4000);
            let mut f = |i: usize| {
                out.clear();
                enc.encode(fr[i % fr.len()], &mut out).expect("encode");
                black_box(&out);
            };
            let ns = run(&mut f, warmup, frames_n, callgrind);
            let bytes = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
            report(
                &item,
                &format!("{kind} encode, {bytes} B/frame"),
                &ns,
                frames_n,
                callgrind,
            );
        }
        let item = format!("dec-{}", name(kind));
        if want(&item) {
            let mut dec: Box<dyn AudioDecoder> = new_decoder(kind).expect("decoder");
            let mut out = Vec::with_capacity(2000);
            let mut f = |i: usize| {
                out.clear();
                dec.decode(&payloads[i % payloads.len()], &mut out)
                    .expect("decode");
                black_box(&out);
            };
            let ns = run(&mut f, warmup, frames_n, callgrind);
            report(&item, &format!("{kind} decode"), &ns, frames_n, callgrind);
        }
    }
    for (from, to, tel) in [
        (8_000u32, 48_000u32, false),
        (48_000, 8_000, false),
        (16_000, 48_000, false),
        (48_000, 16_000, false),
        (8_000, 48_000, true),
        (48_000, 8_000, true),
    ] {
        let item = format!(
            "rs-{}{}-{}",
            if tel { "tel-" } else { "" },
            from / 1000,
            to / 1000
        );
        if !want(&item) {
            continue;
        }
        let sig = speech(from, secs, 1);
        let fr = frames(&sig, from);
        let mut rs = if tel {
            Resampler::telephony(from, to)
        } else {
            Resampler::new(from, to)
        }
        .expect("resampler");
        let mut out = Vec::with_capacity(2000);
        let mut f = |i: usize| {
            out.clear();
            rs.process(fr[i % fr.len()], &mut out);
            black_box(&out);
        };
        let ns = run(&mut f, warmup, frames_n, callgrind);
        report(
            &item,
            &format!("resample {from} -> {to} Hz, 20 ms in"),
            &ns,
            frames_n,
            callgrind,
        );
    }
}

/// One direction of the transcoded call: RTP in -> jitter -> decode -> resample -> encode -> RTP out.
struct Leg {
    jitter: JitterBuffer,
    dec: Box<dyn AudioDecoder>,
    rs: Resampler,
    enc: Box<dyn AudioEncoder>,
    /// Decoded PCM at the decoder's rate.
    pcm: Vec<i16>,
    /// Resampled PCM waiting for a whole encoder frame.
    fifo: Vec<i16>,
    enc_frame: usize,
    /// RTP timestamp step per output packet (Opus: 960 whatever its PCM rate).
    ts_step: u32,
    out_pkt: RtpBuilder,
    /// The outgoing datagram.
    wire: Vec<u8>,
    sent: u64,
    lost: u64,
}

impl Leg {
    /// A leg from `from` to `to`; an Opus side is set up with `opus` (as the pipeline does).
    fn new(from: CodecKind, to: CodecKind, out_pt: u8, ssrc: u32, opus: &OpusSettings) -> Self {
        let dec: Box<dyn AudioDecoder> = match from {
            CodecKind::Opus => Box::new(opus.decoder(codec_rate(to)).expect("decoder")),
            k => new_decoder(k).expect("decoder"),
        };
        let enc: Box<dyn AudioEncoder> = match to {
            CodecKind::Opus => Box::new(opus.encoder(codec_rate(from)).expect("encoder")),
            k => new_encoder(k).expect("encoder"),
        };
        let (rin, rout) = (dec.sample_rate(), enc.sample_rate());
        Leg {
            jitter: JitterBuffer::new(JitterConfig::new(
                codec_rate(from),
                Duration::from_millis(20),
            )),
            dec,
            rs: new_resampler(rin, rout).expect("resampler"),
            enc,
            pcm: Vec::with_capacity(2000),
            fifo: Vec::with_capacity(4000),
            enc_frame: rout as usize / 50,
            ts_step: codec_rate(to) / 50,
            out_pkt: RtpBuilder {
                payload_type: out_pt,
                ssrc,
                payload: Vec::with_capacity(4000),
                ..RtpBuilder::default()
            },
            wire: Vec::with_capacity(4096),
            sent: 0,
            lost: 0,
        }
    }

    fn tick(&mut self, now: Instant, datagram: &[u8]) {
        let pkt = RtpPacket::parse(datagram).expect("rtp");
        self.jitter.push_rtp(
            now,
            pkt.ssrc,
            pkt.sequence_number,
            pkt.timestamp,
            pkt.payload,
        );
        self.pcm.clear();
        match self.jitter.poll(now) {
            JitterOutput::Frame(f) => self.dec.decode(&f.payload, &mut self.pcm).expect("decode"),
            JitterOutput::Lost { samples } => {
                self.lost += 1;
                self.dec.conceal(samples as usize, &mut self.pcm);
            }
            JitterOutput::Nothing => return,
        }
        self.rs.process(&self.pcm, &mut self.fifo);
        while self.fifo.len() >= self.enc_frame {
            self.out_pkt.payload.clear();
            self.enc
                .encode(&self.fifo[..self.enc_frame], &mut self.out_pkt.payload)
                .expect("encode");
            self.fifo.drain(..self.enc_frame);
            self.out_pkt.sequence_number = self.out_pkt.sequence_number.wrapping_add(1);
            self.out_pkt.timestamp = self.out_pkt.timestamp.wrapping_add(self.ts_step);
            self.wire.clear();
            self.out_pkt.write(&mut self.wire).expect("rtp write");
            black_box(&self.wire);
            self.sent += 1;
        }
    }
}

/// Incoming datagrams for `ticks` ticks of a 20 ms stream of `kind` (encoded outside the measured
/// region: this is the far end's work).
/// With `narrowband_opus`, an Opus far end encodes 8 kHz narrowband (as a WebRTC peer does
/// when the SDP asks for `maxplaybackrate=8000`); otherwise 48 kHz with the crate's defaults.
fn incoming(
    kind: CodecKind,
    pt: u8,
    ssrc: u32,
    ticks: usize,
    seed: u64,
    narrowband_opus: bool,
) -> Vec<Vec<u8>> {
    let nb = narrowband_opus && kind == CodecKind::Opus;
    let rate = if nb { 8_000 } else { codec_rate(kind) };
    let sig = speech(rate, 2.0, seed);
    let fr = frames(&sig, rate);
    let mut enc: Box<dyn AudioEncoder> = if nb {
        Box::new(OpusSettings::default().encoder(8_000).expect("encoder"))
    } else {
        new_encoder(kind).expect("encoder")
    };
    let payloads: Vec<Vec<u8>> = fr
        .iter()
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p).expect("encode");
            p
        })
        .collect();
    let mut b = RtpBuilder {
        payload_type: pt,
        ssrc,
        sequence_number: 1000,
        timestamp: 12_345,
        ..RtpBuilder::default()
    };
    // G.722's RTP clock is 8 kHz although it samples at 16 kHz; Opus's is 48 kHz whatever
    // rate it was encoded at.
    let step = if kind == CodecKind::G722 {
        160
    } else {
        codec_rate(kind) / 50
    };
    (0..ticks)
        .map(|i| {
            b.payload.clear();
            b.payload.extend_from_slice(&payloads[i % payloads.len()]);
            b.sequence_number = b.sequence_number.wrapping_add(1);
            b.timestamp = b.timestamp.wrapping_add(step);
            b.to_vec().expect("rtp")
        })
        .collect()
}

/// Thread CPU time from the kernel, in ns (first field of /proc/thread-self/schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn call(seconds: usize, warmup: usize, callgrind: bool, opus: &OpusSettings, far_nb: bool) {
    let ticks = (seconds + warmup) * 50;
    // A: the phone's PCMU towards the Opus side; B: the Opus side towards the phone.
    let in_a = incoming(CodecKind::Pcmu, 0, 0x1111_1111, ticks, 1, false);
    let in_b = incoming(CodecKind::Opus, 111, 0x2222_2222, ticks, 2, far_nb);
    let mut leg_a = Leg::new(CodecKind::Pcmu, CodecKind::Opus, 111, 0x3333_3333, opus);
    let mut leg_b = Leg::new(CodecKind::Opus, CodecKind::Pcmu, 0, 0x4444_4444, opus);
    let (rate_a, rate_b) = (leg_a.enc.sample_rate(), leg_b.dec.sample_rate());
    let t0 = Instant::now();
    let mut f = |i: usize| {
        let now = t0 + Duration::from_millis(20 * i as u64);
        leg_a.tick(now, &in_a[i]);
        leg_b.tick(now, &in_b[i]);
    };
    let cpu0 = thread_cpu_ns();
    let wall0 = Instant::now();
    let ns = run(&mut f, warmup * 50, seconds * 50, callgrind);
    let wall = wall0.elapsed();
    let cpu = thread_cpu_ns().zip(cpu0).map(|(a, b)| a - b);
    let n = seconds * 50;
    let (sent_a, sent_b, lost) = (leg_a.sent, leg_b.sent, leg_a.lost + leg_b.lost);
    if callgrind {
        println!("opus encoder at {rate_a} Hz, decoder at {rate_b} Hz; far end narrowband {far_nb}; {opus:?}");
        println!(
            "RESULT {{\"item\":\"call\",\"measured_ticks\":{n},\"measured_seconds\":{seconds},\"sent_a\":{sent_a},\"sent_b\":{sent_b},\"concealed\":{lost}}}"
        );
        return;
    }
    let s = stats(&ns);
    let sum: u64 = ns.iter().sum();
    let us_per_call_sec = sum as f64 / 1000.0 / seconds as f64;
    let pct = us_per_call_sec / 1e6 * 100.0;
    let median_pct = s.median as f64 * 50.0 / 1e9 * 100.0;
    println!(
        "call: PCMU 8 kHz <-> Opus (encoder at {rate_a} Hz, decoder at {rate_b} Hz), both directions, {seconds} s of call after {warmup} s warmup; packets out A->Opus {sent_a}, B->PCMU {sent_b}, concealed {lost}"
    );
    println!("  opus settings: {opus:?}; far end narrowband: {far_nb}");
    println!(
        "  per 20 ms tick (both directions): median {} ns  mean {:.0} ns  p99 {} ns",
        s.median, s.mean, s.p99
    );
    println!(
        "  CPU per second of call: {us_per_call_sec:.1} us (sum of ticks) = {pct:.3} % of one core; from the median tick {median_pct:.3} %"
    );
    println!(
        "  calls per core in real time: {:.0} (sum of ticks), {:.0} (median tick)",
        100.0 / pct,
        100.0 / median_pct
    );
    if let Some(cpu) = cpu {
        println!(
            "  thread CPU (schedstat) over the measured loop: {:.1} ms for {seconds} s of call, wall {:.1} ms",
            cpu as f64 / 1e6,
            wall.as_secs_f64() * 1e3
        );
    }
    println!("  load1 {}", load1());
    println!(
        "RESULT {{\"item\":\"call\",\"measured_seconds\":{seconds},\"median_tick_ns\":{},\"mean_tick_ns\":{:.0},\"p99_tick_ns\":{},\"us_per_call_second\":{us_per_call_sec:.1},\"core_percent\":{pct:.4},\"core_percent_median\":{median_pct:.4},\"calls_per_core\":{:.0},\"load1\":{}}}",
        s.median,
        s.mean,
        s.p99,
        100.0 / pct,
        load1()
    );
}

fn mixer(participants: usize, speakers: usize, ticks: usize, warmup: usize, callgrind: bool) {
    const FRAME: usize = 960;
    let mut m: Mixer<u32> = Mixer::new(FRAME);
    m.set_max_speakers(speakers);
    // Each participant has its own signal; a third of them at a low level, a few silent (muted
    // microphone sending nothing), so the ranking has real work to do.
    // Ten distinct voices of 2 s (generating 50 is slow under valgrind); participant p speaks
    // voice p % 10 at its own frame offset and gain.
    let voices: Vec<Vec<i16>> = (0..10).map(|v| speech(48_000, 2.0, 10 + v)).collect();
    let signals: Vec<Vec<i16>> = (0..participants)
        .map(|p| {
            let gain = match p % 3 {
                0 => 1.0,
                1 => 0.5,
                _ => 0.05,
            };
            voices[p % voices.len()]
                .iter()
                .map(|&x| (f32::from(x) * gain) as i16)
                .collect()
        })
        .collect();
    for p in 0..participants {
        m.add_participant(p as u32).expect("add");
    }
    let frames_per_signal = signals[0].len() / FRAME;
    let mut sink = 0u64;
    let mut f = |i: usize| {
        for (p, s) in signals.iter().enumerate() {
            if p % 10 == 9 {
                continue; // sends nothing this tick
            }
            let k = (i + p * 7) % frames_per_signal;
            m.push(p as u32, &s[k * FRAME..(k + 1) * FRAME])
                .expect("push");
        }
        m.mix_into(|id, out| {
            sink = sink.wrapping_add(u64::from(id) ^ out[0] as u64);
        });
    };
    let ns = run(&mut f, warmup, ticks, callgrind);
    black_box(sink);
    if callgrind {
        println!(
            "RESULT {{\"item\":\"mixer\",\"participants\":{participants},\"speakers\":{speakers},\"measured_ticks\":{ticks}}}"
        );
        return;
    }
    let s = stats(&ns);
    println!(
        "mixer: {participants} participants, K={speakers}, 48 kHz, 20 ms frames (push of every input + mix + every output read), {ticks} ticks"
    );
    println!(
        "  per tick: median {} ns  mean {:.0} ns  p99 {} ns; per participant (median) {:.0} ns; {:.3} % of one core per room; load1 {}",
        s.median,
        s.mean,
        s.p99,
        s.median as f64 / participants as f64,
        s.median as f64 * 50.0 / 1e9 * 100.0,
        load1()
    );
    println!(
        "RESULT {{\"item\":\"mixer\",\"participants\":{participants},\"speakers\":{speakers},\"median_tick_ns\":{},\"mean_tick_ns\":{:.0},\"p99_tick_ns\":{},\"median_ns_per_participant\":{:.0}}}",
        s.median,
        s.mean,
        s.p99,
        s.median as f64 / participants as f64
    );
}

fn main() {
    match Cli::parse().cmd {
        Cmd::Codecs {
            frames,
            warmup,
            only,
            callgrind,
        } => codecs(frames, warmup, only, callgrind),
        Cmd::Call {
            seconds,
            warmup,
            callgrind,
            opus,
            far_end_narrowband,
        } => call(
            seconds,
            warmup,
            callgrind,
            &opus.settings(),
            far_end_narrowband,
        ),
        Cmd::Mixer {
            participants,
            speakers,
            ticks,
            warmup,
            callgrind,
        } => mixer(participants, speakers, ticks, warmup, callgrind),
    }
}
