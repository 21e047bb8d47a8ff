//! The transcoding pipeline end to end: RTP of one codec in, RTP of another out, decoded and
//! measured.
//!
//! Every pair of PCMU, PCMA, G.722 and Opus (16, same-codec included) carries a 1 kHz tone at
//! -10 dBFS and a 440 + 1320 Hz chord at 2 × -16 dBFS with 20 ms on both sides: frequencies
//! within 1 %, levels within 1 dB, SNR (tone components fitted by least squares, everything
//! else counted as noise, so codec and resampler delays do not matter) above a floor per pair;
//! see `snr_floor` for the measured table (G.711/G.722 pairs 32–44 dB, Opus pairs 31–38 dB). Reframing between 10, 30 and 60 ms, loss and jitter,
//! a drifting sender clock and a comfort-noise silence have their own tests.

mod common;

use std::time::{Duration, Instant};

use common::{check_tones, tones};
use strowger_media::codec::cn::CnPayload;
use strowger_media::codec::opus::OpusBandwidth;
use strowger_media::codec::{new_decoder, new_encoder, CodecKind};
use strowger_media::level;
use strowger_media::pipeline::{
    rtp_clock, OpusSettings, Transcoder, TranscoderConfig, TranscoderStats,
};
use strowger_media::rtp::{RtpBuilder, RtpPacket};

use CodecKind::{Opus, Pcma, Pcmu, G722};

const ONE_K: &[(f64, f64)] = &[(1000.0, -10.0)];
const CHORD: &[(f64, f64)] = &[(440.0, -16.0), (1320.0, -16.0)];
const CN_PT: u8 = 13;

fn pt(kind: CodecKind) -> u8 {
    match kind {
        Pcmu => 0,
        Pcma => 8,
        G722 => 9,
        Opus => 111,
    }
}

fn pcm_rate(kind: CodecKind) -> u32 {
    new_encoder(kind).unwrap().sample_rate()
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the sender sends and how the network treats it.
#[derive(Clone)]
struct Scenario {
    input: CodecKind,
    output: CodecKind,
    in_ms: u64,
    out_ms: u64,
    /// Fractional error of the sender's clock (+0.003: it runs 0.3 % fast).
    drift: f64,
    loss: f64,
    jitter_ms: f64,
    seed: u64,
    /// Replace input frames `[from, to)` (in frames) by a CN packet at the start (and one every
    /// second) at this level, and no other packets; with no level, send nothing (DTX without CN).
    cn_gap: Option<(usize, usize, Option<u8>)>,
    output_cn: bool,
    /// The transcoder's Opus settings.
    opus: OpusSettings,
}

impl Scenario {
    fn new(input: CodecKind, output: CodecKind) -> Self {
        Self {
            input,
            output,
            in_ms: 20,
            out_ms: 20,
            drift: 0.0,
            loss: 0.0,
            jitter_ms: 0.0,
            seed: 1,
            cn_gap: None,
            output_cn: false,
            opus: OpusSettings::default(),
        }
    }
}

struct Outcome {
    /// Output packets in the order sent: (pt, marker, seq, ts, payload).
    packets: Vec<(u8, bool, u16, u32, Vec<u8>)>,
    stats: TranscoderStats,
    /// Highest FIFO level seen at any poll, ms.
    fifo_peak_ms: f64,
    jitter_concealed: u64,
    /// Frames the jitter buffer inserted (concealed) to grow its delay.
    jitter_inserted: u64,
}

fn run(s: &Scenario, pcm: &[i16]) -> Outcome {
    let mut cfg = TranscoderConfig::new(s.input, pt(s.input), s.output, pt(s.output));
    cfg.input_ptime = Duration::from_millis(s.in_ms);
    cfg.output_ptime = Duration::from_millis(s.out_ms);
    cfg.input_cn_pt = Some(CN_PT);
    cfg.opus = s.opus;
    if s.output_cn {
        cfg.output_cn_pt = Some(CN_PT);
    }
    let mut tc = Transcoder::new(cfg).unwrap();
    let mut enc = new_encoder(s.input).unwrap();
    let frame = enc.sample_rate() as usize * s.in_ms as usize / 1000;
    let frame_ts = rtp_clock(s.input) * s.in_ms as u32 / 1000;
    let period = Duration::from_millis(s.in_ms).as_secs_f64() / (1.0 + s.drift);
    let mut rng = Rng(s.seed);
    let mut arrivals: Vec<(f64, Vec<u8>)> = Vec::new();
    let mut seq: u16 = 5000;
    let frames_per_sec = (1000 / s.in_ms) as usize;
    for (i, chunk) in pcm.chunks_exact(frame).enumerate() {
        let mut payload = Vec::new();
        enc.encode(chunk, &mut payload).unwrap();
        let (ptype, payload) = match s.cn_gap {
            Some((from, to, lvl)) if (from..to).contains(&i) => {
                let Some(lvl) = lvl else { continue };
                if (i - from) % frames_per_sec != 0 {
                    continue;
                }
                let mut p = Vec::new();
                CnPayload::with_level(lvl).write(&mut p);
                (CN_PT, p)
            }
            _ => (pt(s.input), payload),
        };
        seq = seq.wrapping_add(1);
        if rng.unit() < s.loss {
            continue;
        }
        let b = RtpBuilder {
            payload_type: ptype,
            sequence_number: seq,
            timestamp: 12345u32.wrapping_add(i as u32 * frame_ts),
            ssrc: 0xabcd,
            payload,
            ..RtpBuilder::default()
        };
        let at = i as f64 * period + 0.040 + rng.unit() * s.jitter_ms / 1000.0;
        arrivals.push((at, b.to_vec().unwrap()));
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let end = arrivals.last().unwrap().0 + 0.5;
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut next = 0;
    let mut fifo_peak_ms = 0.0f64;
    let mut t = 0.0;
    while t < end {
        while next < arrivals.len() && arrivals[next].0 <= t {
            let at = t0 + Duration::from_secs_f64(arrivals[next].0);
            tc.push_rtp(at, &arrivals[next].1).unwrap();
            next += 1;
        }
        tc.poll_into(t0 + Duration::from_secs_f64(t), &mut out);
        fifo_peak_ms = fifo_peak_ms.max(tc.stats().fifo_ms);
        t += 0.002;
    }
    let packets = out
        .iter()
        .map(|b| {
            let p = RtpPacket::parse(b).unwrap();
            assert_eq!(p.ssrc, tc.config().output_ssrc);
            (
                p.payload_type,
                p.marker,
                p.sequence_number,
                p.timestamp,
                p.payload.to_vec(),
            )
        })
        .collect();
    Outcome {
        packets,
        stats: tc.stats().clone(),
        fifo_peak_ms,
        jitter_concealed: tc.jitter_stats().concealed,
        jitter_inserted: tc.jitter_stats().inserted,
    }
}

/// Checks that sequence numbers go up by one and timestamps by one output frame throughout,
/// and decodes the audio packets (CN packets: silence for their share).
fn decode_continuous(s: &Scenario, o: &Outcome) -> Vec<i16> {
    let frame_ts = rtp_clock(s.output) * s.out_ms as u32 / 1000;
    let mut dec = new_decoder(s.output).unwrap();
    let frame = dec.sample_rate() as usize * s.out_ms as usize / 1000;
    let mut pcm = Vec::new();
    let mut prev: Option<(u16, u32)> = None;
    for (ptype, _, seq, ts, payload) in &o.packets {
        if let Some((pseq, pts)) = prev {
            assert_eq!(*seq, pseq.wrapping_add(1), "sequence gap");
            if !s.output_cn {
                assert_eq!(
                    *ts,
                    pts.wrapping_add(frame_ts),
                    "timestamp gap at seq {seq}"
                );
            } else {
                let d = ts.wrapping_sub(pts);
                assert!(d >= frame_ts && d % frame_ts == 0, "timestamp step {d}");
                let missing = (d / frame_ts - 1) as usize * frame;
                pcm.resize(pcm.len() + missing, 0);
            }
        }
        prev = Some((*seq, *ts));
        if *ptype == CN_PT {
            pcm.resize(pcm.len() + frame, 0);
        } else {
            assert_eq!(*ptype, pt(s.output));
            dec.decode(payload, &mut pcm).unwrap();
        }
    }
    pcm
}

/// SNR in dB of `x` against the best least-squares fit of sines and cosines at `freqs`: the
/// fitted part is the signal, the residual is noise and distortion.
fn tone_snr(x: &[i16], rate: u32, freqs: &[f64]) -> f64 {
    let m = 2 * freqs.len();
    let basis = |i: usize, k: usize| {
        let w = 2.0 * std::f64::consts::PI * freqs[k / 2] / f64::from(rate);
        if k.is_multiple_of(2) {
            (w * i as f64).cos()
        } else {
            (w * i as f64).sin()
        }
    };
    let mut ata = vec![vec![0.0; m + 1]; m];
    for (i, &v) in x.iter().enumerate() {
        let b: Vec<f64> = (0..m).map(|k| basis(i, k)).collect();
        for r in 0..m {
            for c in 0..m {
                ata[r][c] += b[r] * b[c];
            }
            ata[r][m] += b[r] * f64::from(v);
        }
    }
    // Gauss-Jordan.
    for col in 0..m {
        let piv = (col..m)
            .max_by(|&a, &b| ata[a][col].abs().total_cmp(&ata[b][col].abs()))
            .unwrap();
        ata.swap(col, piv);
        for r in 0..m {
            if r != col {
                let f = ata[r][col] / ata[col][col];
                let pivot_row = ata[col].clone();
                for (x, p) in ata[r].iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let coef: Vec<f64> = (0..m).map(|k| ata[k][m] / ata[k][k]).collect();
    let (mut sig, mut err) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let fit: f64 = (0..m).map(|k| coef[k] * basis(i, k)).sum();
        sig += fit * fit;
        err += (f64::from(v) - fit).powi(2);
    }
    10.0 * (sig / err.max(1e-9)).log10()
}

/// Transcodes `parts` for `secs`, checks continuity, frequencies and levels, returns the SNR.
fn transcode_tones(s: &Scenario, parts: &[(f64, f64)], secs: f64) -> f64 {
    let input = tones(pcm_rate(s.input), secs, parts);
    let o = run(s, &input);
    let out = decode_continuous(s, &o);
    let rate = pcm_rate(s.output);
    // Leave out the start (buffering, codec and resampler warm-up) and the flushed end.
    // At the end the jitter buffer conceals for 200 ms before the output stops.
    let skip = rate as usize / 10;
    let body = &out[skip..out.len() - 3 * skip];
    let what = format!("{} {}ms → {} {}ms", s.input, s.in_ms, s.output, s.out_ms);
    let report = check_tones(&what, body, rate, parts);
    let freqs: Vec<f64> = parts.iter().map(|p| p.0).collect();
    let snr = tone_snr(body, rate, &freqs);
    println!("{report}SNR {snr:.1} dB; {:?}", o.stats);
    assert_eq!(o.stats.underruns, 0, "{what}");
    assert_eq!(o.stats.drift_adjustments, 0, "{what}");
    snr
}

/// SNR floors per pair, 3 dB under the lower of the two measured figures (1 kHz at -10 dBFS /
/// 440 + 1320 Hz chord at 2 × -16 dBFS, 20 ms both sides, jitter-free network):
///
/// | in \ out | PCMU        | PCMA        | G722        | Opus        |
/// |----------|-------------|-------------|-------------|-------------|
/// | PCMU     | 44.1 / 39.9 | 41.3 / 39.3 | 42.5 / 38.3 | 36.4 / 32.8 |
/// | PCMA     | 44.1 / 37.0 | 41.3 / 39.1 | 40.4 / 37.5 | 37.7 / 31.4 |
/// | G722     | 32.4 / 38.1 | 42.8 / 36.9 | 44.4 / 38.7 | 38.1 / 32.6 |
/// | Opus     | 36.6 / 32.6 | 35.9 / 32.7 | 38.5 / 33.8 | 37.4 / 31.0 |
///
/// G.711 on both ends stays at the companding limit (37–44 dB), G.722 adds little; Opus at its
/// default 32 kbit/s is perceptual, so its pairs are 5–8 dB lower (31–38 dB). G.722 → PCMU on the
/// 1 kHz tone (exactly 8 samples a period at 8 kHz) is the outlier: its µ-law error is periodic
/// and lands in harmonics instead of spreading as noise.
///
/// Reframing (1 kHz tone): PCMA 10 → G722 30 ms 40.4 dB, G722 60 → PCMU 10 ms 32.4 dB,
/// PCMU 30 → PCMA 60 ms 41.3 dB, Opus 20 → PCMA 60 ms 35.4 dB, PCMU 30 → Opus 60 ms 28.3 dB,
/// Opus 60 → Opus 10 ms 25.9 dB (Opus at 10 ms frames spends more of its bits on overhead).
fn snr_floor(input: CodecKind, output: CodecKind) -> f64 {
    let measured = match (input, output) {
        (Pcmu, Pcmu) => 39.9,
        (Pcmu, Pcma) => 39.3,
        (Pcmu, G722) => 38.3,
        (Pcmu, Opus) => 32.8,
        (Pcma, Pcmu) => 37.0,
        (Pcma, Pcma) => 39.1,
        (Pcma, G722) => 37.5,
        (Pcma, Opus) => 31.4,
        (G722, Pcmu) => 32.4,
        (G722, Pcma) => 36.9,
        (G722, G722) => 38.7,
        (G722, Opus) => 32.6,
        (Opus, Pcmu) => 32.6,
        (Opus, Pcma) => 32.7,
        (Opus, G722) => 33.8,
        (Opus, Opus) => 31.0,
    };
    measured - 3.0
}

fn pair(input: CodecKind, output: CodecKind) {
    let secs = if input == Opus || output == Opus {
        0.6
    } else {
        1.0
    };
    let s = Scenario::new(input, output);
    let floor = snr_floor(input, output);
    for (name, parts) in [("1 kHz", ONE_K), ("chord", CHORD)] {
        let snr = transcode_tones(&s, parts, secs);
        println!("SNR {input} → {output} {name}: {snr:.1} dB");
        assert!(
            snr >= floor,
            "{input} → {output} {name}: SNR {snr:.1} dB < {floor}"
        );
    }
}

/// SNR of the Opus ↔ PCMU pairs under each Opus setting (the table in
/// `bench/media/README.md`): `cargo test -p strowger-media --release --test pipeline --
/// --ignored --nocapture opus_settings`.
#[test]
#[ignore = "measurement for the benchmark README, not a check"]
fn opus_settings_quality_table() {
    let full = OpusSettings::full();
    let tel = OpusSettings::default();
    let c = |n: u8| OpusSettings {
        complexity: Some(n),
        ..tel
    };
    let rows: [(&str, OpusSettings); 13] = [
        ("full: 48 kHz, c10, FB, FEC 10 %", full),
        (
            "full + complexity 5",
            OpusSettings {
                complexity: Some(5),
                ..full
            },
        ),
        (
            "full + FEC off (loss 0 %)",
            OpusSettings {
                expected_loss_percent: Some(0),
                ..full
            },
        ),
        (
            "full + max bandwidth NB",
            OpusSettings {
                max_bandwidth: Some(OpusBandwidth::Narrowband),
                ..full
            },
        ),
        (
            "full + max bandwidth WB",
            OpusSettings {
                max_bandwidth: Some(OpusBandwidth::Wideband),
                ..full
            },
        ),
        (
            "telephony at 48 kHz (c5, NB, no FEC)",
            OpusSettings {
                match_rate: false,
                ..tel
            },
        ),
        ("telephony default (8 kHz, c5, NB, no FEC)", tel),
        (
            "telephony + complexity 10",
            OpusSettings {
                complexity: Some(10),
                ..tel
            },
        ),
        ("telephony + complexity 4", c(4)),
        ("telephony + complexity 3", c(3)),
        ("telephony + complexity 2", c(2)),
        ("telephony + complexity 0", c(0)),
        (
            "telephony + FEC (loss 10 %)",
            OpusSettings {
                expected_loss_percent: Some(10),
                ..tel
            },
        ),
    ];
    for (name, opus) in rows {
        let mut line = format!("| {name} |");
        for (input, output) in [(Pcmu, Opus), (Opus, Pcmu)] {
            let s = Scenario {
                opus,
                ..Scenario::new(input, output)
            };
            for parts in [ONE_K, CHORD] {
                let snr = transcode_tones(&s, parts, 0.6);
                line += &format!(" {snr:.1} |");
            }
        }
        println!("TABLE {line}");
    }
}

macro_rules! pairs {
    ($($name:ident: $a:expr => $b:expr;)*) => {
        $(#[test] fn $name() { pair($a, $b); })*
    };
}

pairs! {
    pcmu_to_pcmu: Pcmu => Pcmu;
    pcmu_to_pcma: Pcmu => Pcma;
    pcmu_to_g722: Pcmu => G722;
    pcmu_to_opus: Pcmu => Opus;
    pcma_to_pcmu: Pcma => Pcmu;
    pcma_to_pcma: Pcma => Pcma;
    pcma_to_g722: Pcma => G722;
    pcma_to_opus: Pcma => Opus;
    g722_to_pcmu: G722 => Pcmu;
    g722_to_pcma: G722 => Pcma;
    g722_to_g722: G722 => G722;
    g722_to_opus: G722 => Opus;
    opus_to_pcmu: Opus => Pcmu;
    opus_to_pcma: Opus => Pcma;
    opus_to_g722: Opus => G722;
    opus_to_opus: Opus => Opus;
}

#[test]
fn reframing_between_ptimes() {
    for (input, in_ms, output, out_ms) in [
        (Pcma, 10, G722, 30),
        (G722, 60, Pcmu, 10),
        (Pcmu, 30, Pcma, 60),
        (Opus, 20, Pcma, 60),
        (Pcmu, 30, Opus, 60),
        (Opus, 60, Opus, 10),
    ] {
        let mut s = Scenario::new(input, output);
        s.in_ms = in_ms;
        s.out_ms = out_ms;
        let secs = if input == Opus || output == Opus {
            0.6
        } else {
            1.0
        };
        let snr = transcode_tones(&s, ONE_K, secs);
        println!("SNR {input} {in_ms} ms → {output} {out_ms} ms: {snr:.1} dB");
        // Measured 25.9–41.3 dB (see `snr_floor`); Opus at 10 ms frames is the lowest.
        let floor = if input == Opus || output == Opus {
            22.0
        } else {
            29.0
        };
        assert!(snr >= floor, "SNR {snr:.1} dB below {floor}");
    }
}

#[test]
fn loss_and_jitter_keep_the_tone_and_the_stream() {
    for (input, output) in [(Pcmu, G722), (G722, Pcma), (Opus, Pcmu)] {
        let mut s = Scenario::new(input, output);
        s.loss = 0.05;
        s.jitter_ms = 20.0;
        s.seed = 42;
        let secs = 2.0;
        let input_pcm = tones(pcm_rate(input), secs, ONE_K);
        let o = run(&s, &input_pcm);
        let out = decode_continuous(&s, &o);
        let rate = pcm_rate(output);
        let body = &out[rate as usize / 5..out.len() - rate as usize / 10];
        let peak = common::peak_near(body, rate, 1000.0);
        let amp = common::amplitude_at(body, rate, peak);
        let err = common::db(amp / (32767.0 * 10f64.powf(-0.5)));
        println!(
            "{input} → {output} with loss: {peak:.1} Hz, level {err:+.2} dB, {} packets; {:?}",
            o.packets.len(),
            o.stats
        );
        assert!((peak - 1000.0).abs() <= 10.0);
        // Concealment of 5 % of the frames costs some level.
        assert!(err.abs() <= 2.0, "level {err:+.2} dB");
        assert!(o.stats.concealed > 0);
        // Output frames cover the input's duration (plus buffering) without holes.
        // (and 200 ms of concealment after the last packet).
        let expected = (secs * 50.0) as usize + 10;
        assert!(
            o.packets.len() >= expected - 3 && o.packets.len() <= expected + 8,
            "{} packets",
            o.packets.len()
        );
        assert_eq!(o.stats.underruns, 0);
    }
}

fn drifting(drift: f64, jitter_ms: f64, max_inserted: u64) {
    let mut s = Scenario::new(Pcmu, Pcma);
    s.drift = drift;
    s.jitter_ms = jitter_ms;
    let secs = 60.0;
    let input = tones(8000, secs, ONE_K);
    let o = run(&s, &input);
    let out = decode_continuous(&s, &o);
    println!(
        "drift {drift:+}: {} packets, FIFO peak {:.1} ms, jitter buffer concealed {} \
         (inserted {}); {:?}",
        o.packets.len(),
        o.fifo_peak_ms,
        o.jitter_concealed,
        o.jitter_inserted,
        o.stats
    );
    // 60 s of media arrive in 60 / (1 + drift) s of our time, plus 200 ms of concealment
    // after the last packet.
    let expected = (secs / (1.0 + drift) + 0.2) * 50.0;
    assert!(
        (o.packets.len() as f64 - expected).abs() <= 3.0,
        "{} packets, expected {expected:.0}",
        o.packets.len()
    );
    // Bounded: never more than the priming level (60 ms here) plus a frame or two.
    assert!(
        o.fifo_peak_ms <= 100.0,
        "FIFO peak {:.1} ms",
        o.fifo_peak_ms
    );
    assert!(o.stats.drift_adjustments > 0);
    // The clock difference's worth of media (0.3 % of 60 s = 180 ms) is dropped or duplicated,
    // apart from frames the jitter buffer inserted when jitter made it raise its target.
    let moved = (o.stats.drift_dropped as f64 - o.stats.drift_duplicated as f64) / 8000.0
        - o.jitter_inserted as f64 * 0.02;
    assert!(
        (moved - secs * drift).abs() <= 0.05,
        "net {moved:.3} s adjusted"
    );
    assert_eq!(o.stats.underruns, 0);
    // No concealment for the drift: apart from the 200 ms after the last packet, only frames
    // the jitter buffer inserts when jitter makes its target rise.
    assert!(
        o.jitter_inserted <= max_inserted,
        "{} inserted",
        o.jitter_inserted
    );
    assert!(
        o.jitter_concealed - o.jitter_inserted <= 12,
        "{}",
        o.jitter_concealed
    );
    // Dropped or duplicated samples shift the phase, so a DFT over the whole minute would not
    // see one coherent tone: check the level (RMS) and the pitch (zero crossings) instead.
    let body = &out[800..out.len() - 8 * 400];
    let db = level::dbov(body) + 3.01;
    let f = common::zero_crossing_freq(body, 8000);
    println!("drift {drift:+}: level {db:.2} dBFS, {f:.2} Hz");
    assert!((db + 10.0).abs() <= 1.0, "level {db:.2} dBFS");
    assert!((f - 1000.0).abs() <= 10.0, "{f:.2} Hz");
}

#[test]
fn fast_sender_clock_is_absorbed_by_the_fifo() {
    drifting(0.003, 5.0, 0);
}

#[test]
fn slow_sender_clock_is_absorbed_by_the_fifo() {
    drifting(-0.003, 5.0, 0);
}

fn cn_gap(output_cn: bool) {
    let mut s = Scenario::new(Pcmu, G722);
    s.output_cn = output_cn;
    // 1 s tone, 2 s CN at -50 dBov, 1 s tone.
    s.cn_gap = Some((50, 150, Some(50)));
    let input = tones(8000, 4.0, ONE_K);
    let o = run(&s, &input);
    println!(
        "CN (output CN {output_cn}): {} packets; {:?}",
        o.packets.len(),
        o.stats
    );
    let out = decode_continuous(&s, &o);
    let rate = 16000usize;
    assert!(o.stats.cn_in >= 2);
    assert_eq!(o.stats.underruns, 0);
    // The output covers the whole 4 s without a break.
    let span = o.packets.last().unwrap().3.wrapping_sub(o.packets[0].3) as usize / 160 + 1;
    assert!((200..=212).contains(&span), "{span} frames");
    // Find the silence: the output lags the input by the buffering.
    let lag = rate * 80 / 1000;
    let gap = &out[rate + lag + rate / 5..3 * rate + lag - rate / 5];
    if output_cn {
        let cn: Vec<_> = o.packets.iter().filter(|p| p.0 == CN_PT).collect();
        assert!(cn.len() >= 8 && cn.len() <= 12, "{} CN packets", cn.len());
        assert!(cn.iter().all(|p| p.4 == [50]));
        // Only CN is sent during the gap, and the talkspurt after it is marked.
        let first_after = o
            .packets
            .iter()
            .skip_while(|p| p.0 != CN_PT)
            .find(|p| p.0 != CN_PT)
            .unwrap();
        assert!(first_after.1, "marker on the talkspurt after CN");
        assert!(o.packets.len() < 150);
    } else {
        assert_eq!(o.packets.len(), span);
        let db = level::dbov(gap);
        println!("comfort noise at {db:.1} dBov");
        assert!((db + 50.0).abs() <= 2.0, "noise at {db:.1} dBov");
    }
    // Clean resumption: the last second carries the tone at its level.
    let after = &out[3 * rate + lag + rate / 10..out.len() - rate / 10];
    check_tones("after CN", after, rate as u32, ONE_K);
}

#[test]
fn comfort_noise_silence_keeps_the_output_going_at_its_level() {
    cn_gap(false);
}

#[test]
fn comfort_noise_passes_as_cn_packets_when_the_output_has_cn() {
    cn_gap(true);
}

#[test]
fn silence_without_cn_stops_the_output_and_resumes_on_the_wallclock() {
    let mut s = Scenario::new(Pcma, Pcmu);
    // 1 s tone, 2 s of nothing, 1 s tone.
    s.cn_gap = Some((50, 150, None));
    let input = tones(8000, 4.0, ONE_K);
    let o = run(&s, &input);
    println!("silence: {} packets; {:?}", o.packets.len(), o.stats);
    // Sequence numbers stay continuous; the timestamp jumps by the pause.
    let resumed = o
        .packets
        .windows(2)
        .position(|w| w[1].3.wrapping_sub(w[0].3) != 160)
        .expect("a pause")
        + 1;
    for w in o.packets.windows(2) {
        assert_eq!(w[1].2, w[0].2.wrapping_add(1));
    }
    let (before, after) = (&o.packets[resumed - 1], &o.packets[resumed]);
    let jump = after.3.wrapping_sub(before.3);
    println!("timestamp jump {jump} ({} ms)", jump / 8);
    // The pause is 2 s less the 200 ms the jitter buffer conceals, give or take buffering.
    assert!((13_600..=15_200).contains(&jump), "jump {jump}");
    assert!(after.1, "marker on the first packet after the pause");
    assert!(o.packets.iter().filter(|p| p.1).count() == 2);
    assert_eq!(o.stats.underruns, 0);
    // The talkspurt after the pause carries the tone.
    let mut dec = new_decoder(Pcmu).unwrap();
    let mut pcm = Vec::new();
    for p in &o.packets[resumed + 5..o.packets.len() - 15] {
        dec.decode(&p.4, &mut pcm).unwrap();
    }
    check_tones("after pause", &pcm, 8000, ONE_K);
}

#[test]
fn other_payload_types_and_garbage_are_ignored() {
    let cfg = TranscoderConfig::new(Pcmu, 0, Pcma, 8);
    let mut tc = Transcoder::new(cfg).unwrap();
    let t0 = Instant::now();
    assert!(tc.push_rtp(t0, &[1, 2, 3]).is_err());
    let dtmf = RtpBuilder {
        payload_type: 101,
        payload: vec![1, 0, 0, 160],
        ..RtpBuilder::default()
    };
    tc.push_rtp(t0, &dtmf.to_vec().unwrap()).unwrap();
    assert_eq!(tc.stats().ignored, 2);
    assert_eq!(tc.stats().packets_in, 0);
    assert!(tc.poll(t0 + Duration::from_secs(1)).is_none());
}

/// ±0.5 % with 20 ms of jitter on top. The jitter buffer's target then moves with the measured
/// spread (20 → ~29 ms); each rise is a frame it inserts (measured: none at +0.5 %, 5 in the
/// minute at -0.5 %, taken back later by extra pulls into the FIFO).
#[test]
fn half_a_percent_of_drift_with_jitter() {
    drifting(0.005, 20.0, 6);
    drifting(-0.005, 20.0, 6);
}
