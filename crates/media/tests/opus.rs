//! Opus through encode → decode: tones keep their frequency (1 %) and level (1 dB), stereo keeps
//! its channels apart, concealment and FEC stand in for lost packets, DTX shrinks silence, and
//! bad input is refused without a panic.
//!
//! Opus is a perceptual codec, so the waveform SNR is far below G.711's; the floors below sit
//! under what was measured (printed with `cargo test -- --nocapture`), see the constants.
//!
//! Measured at the defaults (48 kHz mono, 32 kbit/s VoIP, complexity 10, FEC at 10 %): 1 kHz at
//! -10 dBFS SNR 27.4 dB (level -0.03 dB, 32.2 kbit/s); chord 440 + 1320 Hz SNR 17.5 dB (levels
//! -0.05 / -0.03 dB, 29.6 kbit/s). The decoded signal lags the input by the encoder's
//! look-ahead (312 samples) less 3.

mod common;

use common::{amplitude_at, check_tones, db, peak_near, snr_db, tones, zero_crossing_freq};
use strowger_media::codec::opus::{packet_samples, OpusDecoder, OpusEncoder, OpusOptions};
use strowger_media::codec::{new_decoder, new_encoder, AudioDecoder, AudioEncoder, CodecError};
use strowger_media::codec::{CodecKind, CodecKind::Opus};

const RATE: u32 = 48_000;
const FRAME: usize = 960; // 20 ms
const ONE_K: &[(f64, f64)] = &[(1000.0, -10.0)];
const CHORD: &[(f64, f64)] = &[(440.0, -16.0), (1320.0, -16.0)];

/// SNR floor for the 1 kHz tone at -10 dBFS, 32 kbit/s: 27.4 dB measured.
const SNR_FLOOR_TONE: f64 = 22.0;
/// SNR floor for the 440 + 1320 Hz chord (2 × -16 dBFS), 32 kbit/s: 17.5 dB measured.
const SNR_FLOOR_CHORD: f64 = 14.0;

/// Encodes `pcm` in 20 ms frames; returns the payloads.
fn encode_all(enc: &mut dyn AudioEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
    let frame = FRAME * usize::from(enc.channels());
    pcm.chunks(frame)
        .map(|chunk| {
            let mut payload = Vec::new();
            enc.encode(chunk, &mut payload).unwrap();
            payload
        })
        .collect()
}

fn decode_all(dec: &mut dyn AudioDecoder, payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in payloads {
        dec.decode(p, &mut out).unwrap();
    }
    out
}

/// Slack left before the look-ahead so that the SNR search (0..=64 samples) covers ±32 around it.
const SLACK: usize = 32;

/// The decoded signal lined up with the input: the encoder's look-ahead (less [`SLACK`])
/// dropped.
fn aligned(out: &[i16], lookahead: usize, channels: usize) -> &[i16] {
    &out[(lookahead - SLACK) * channels..]
}

fn run(parts: &[(f64, f64)], floor: f64) -> f64 {
    let input = tones(RATE, 1.0, parts);
    let mut enc = new_encoder(Opus).unwrap();
    let mut dec = new_decoder(Opus).unwrap();
    assert_eq!((enc.sample_rate(), enc.channels()), (RATE, 1));
    let payloads = encode_all(enc.as_mut(), &input);
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let out = decode_all(dec.as_mut(), &payloads);
    assert_eq!(out.len(), input.len());
    let lookahead = OpusEncoder::new(OpusOptions::default())
        .unwrap()
        .lookahead() as usize;
    let out = aligned(&out, lookahead, 1);
    // Leave out the first 100 ms (the encoder settling) and measure the rest.
    let skip = RATE as usize / 10;
    let (snr, delay) = snr_db(&input[skip..input.len() - lookahead - 64], &out[skip..]);
    let report = check_tones("opus", &out[skip..], RATE, parts);
    if parts.len() == 1 {
        let f = zero_crossing_freq(&out[skip..], RATE);
        assert!(
            (f - parts[0].0).abs() <= parts[0].0 * 0.01,
            "zero crossings say {f:.1} Hz"
        );
    }
    println!(
        "{report}SNR {snr:.1} dB (delay {lookahead}{:+} samples), {} bit/s",
        delay as i64 - SLACK as i64,
        bytes * 8
    );
    // VBR around 32 kbit/s.
    assert!(
        (20_000..=40_000).contains(&(bytes * 8)),
        "bit rate {}",
        bytes * 8
    );
    assert!(
        snr >= floor,
        "SNR {snr:.1} dB below the floor of {floor} dB"
    );
    snr
}

#[test]
fn opus_tone() {
    run(ONE_K, SNR_FLOOR_TONE);
}

#[test]
fn opus_chord() {
    run(CHORD, SNR_FLOOR_CHORD);
}

#[test]
fn constructors() {
    let enc = new_encoder(Opus).unwrap();
    let dec = new_decoder(Opus).unwrap();
    assert_eq!((enc.kind(), dec.kind()), (Opus, Opus));
    assert_eq!((enc.sample_rate(), dec.sample_rate()), (48_000, 48_000));
    assert_eq!((enc.channels(), dec.channels()), (1, 1));
    let d = OpusOptions::default();
    assert_eq!(
        (d.channels, d.bitrate, d.fec, d.expected_loss_percent, d.dtx),
        (1, 32_000, true, 10, false)
    );
    for bad in [
        OpusOptions { channels: 3, ..d },
        OpusOptions { bitrate: 100, ..d },
        OpusOptions {
            expected_loss_percent: 101,
            ..d
        },
    ] {
        assert!(matches!(
            OpusEncoder::new(bad),
            Err(CodecError::Unsupported(_))
        ));
    }
    assert!(OpusDecoder::new(0).is_err());
    assert_eq!(CodecKind::Opus.to_string(), "opus");
}

/// Left 1 kHz, right 440 Hz at 96 kbit/s: each channel carries its own tone at the right level
/// and little of the other. Measured: levels -0.22 / -0.23 dB, SNR 25.0 / 24.2 dB, crosstalk
/// -33.0 / -32.5 dB. (At 64 kbit/s the left level comes out -1.4 dB; at 128 kbit/s SNR 31.7 /
/// 32.3 dB, crosstalk -69.6 / -56.9 dB.)
#[test]
fn opus_stereo() {
    let left = tones(RATE, 1.0, &[(1000.0, -10.0)]);
    let right = tones(RATE, 1.0, &[(440.0, -12.0)]);
    let input: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let opts = OpusOptions {
        channels: 2,
        bitrate: 96_000,
        ..OpusOptions::default()
    };
    let mut enc = OpusEncoder::new(opts).unwrap();
    let mut dec = OpusDecoder::new(2).unwrap();
    let lookahead = enc.lookahead() as usize;
    let payloads = encode_all(&mut enc, &input);
    let out = decode_all(&mut dec, &payloads);
    assert_eq!(out.len(), input.len());
    let out = aligned(&out, lookahead, 2);
    let skip = RATE as usize / 10;
    let l: Vec<i16> = out.iter().step_by(2).skip(skip).copied().collect();
    let r: Vec<i16> = out.iter().skip(1).step_by(2).skip(skip).copied().collect();
    let n = l.len() - 64;
    let (snr_l, _) = snr_db(&left[skip..skip + n], &l);
    let (snr_r, _) = snr_db(&right[skip..skip + n], &r);
    let rep_l = check_tones("left", &l, RATE, &[(1000.0, -10.0)]);
    let rep_r = check_tones("right", &r, RATE, &[(440.0, -12.0)]);
    // Crosstalk: the other channel's tone, relative to this channel's own.
    let x_l = db(amplitude_at(&l, RATE, 440.0) / amplitude_at(&l, RATE, 1000.0));
    let x_r = db(amplitude_at(&r, RATE, 1000.0) / amplitude_at(&r, RATE, 440.0));
    println!(
        "{rep_l}{rep_r}SNR left {snr_l:.1} dB, right {snr_r:.1} dB; crosstalk {x_l:.1} / {x_r:.1} dB"
    );
    assert!(snr_l >= 20.0 && snr_r >= 20.0);
    assert!(
        x_l <= -20.0 && x_r <= -20.0,
        "crosstalk {x_l:.1} / {x_r:.1} dB"
    );
}

/// RMS of `x` in dB relative to a sine at `dbfs`.
fn rms_db(x: &[i16], dbfs: f64) -> f64 {
    let ms = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64;
    let sine_rms = 32767.0 * 10f64.powf(dbfs / 20.0) / 2f64.sqrt();
    db(ms.sqrt() / sine_rms)
}

/// Every 10th packet lost and concealed: the tone is still there at the right frequency, and
/// each concealed frame carries on the tone (its frequency, and its level at the start) before
/// fading. Opus's concealment of a pure tone fades fast (measured: from -0.3…-1.2 dB at the start
/// to -26…-33 dB by the end of the lost 20 ms), so over the whole second the 1 kHz level drops
/// by 2.2 dB; the frequency stays 1000.0 Hz.
#[test]
fn opus_plc_every_tenth_packet() {
    let input = tones(RATE, 1.0, ONE_K);
    let mut enc = new_encoder(Opus).unwrap();
    let mut dec = new_decoder(Opus).unwrap();
    let payloads = encode_all(enc.as_mut(), &input);
    let mut out = Vec::new();
    let mut lost = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        if i % 10 == 9 {
            lost.push(out.len());
            dec.conceal(FRAME, &mut out);
        } else {
            dec.decode(p, &mut out).unwrap();
        }
    }
    assert_eq!(out.len(), input.len());
    let skip = RATE as usize / 10;
    let peak = peak_near(&out[skip..], RATE, 1000.0);
    let level = db(amplitude_at(&out[skip..], RATE, peak) / (32767.0 * 10f64.powf(-0.5)));
    let mut report =
        format!("opus PLC: 1000 Hz → {peak:.1} Hz, level {level:+.2} dB; concealed frames:");
    let mut checks = Vec::new();
    for &at in &lost {
        let f = zero_crossing_freq(&out[at..at + FRAME / 2], RATE);
        let start = rms_db(&out[at..at + FRAME / 8], -10.0);
        let end = rms_db(&out[at + FRAME * 7 / 8..at + FRAME], -10.0);
        report += &format!(" [{f:.1} Hz, {start:+.1} → {end:+.1} dB]");
        checks.push((f, start, end));
    }
    println!("{report}");
    for (f, start, end) in checks {
        // The concealment repeats the last pitch period as the encoder estimated it: for a pure
        // 1 kHz tone that comes out 2.5–3 % sharp (measured 1025.5–1029 Hz).
        assert!((f - 1000.0).abs() <= 50.0, "concealed frame at {f:.1} Hz");
        assert!(
            start.abs() <= 2.0,
            "concealed frame starts at {start:+.1} dB"
        );
        assert!(end >= -40.0, "concealed frame fades to {end:+.1} dB");
    }
    assert!((peak - 1000.0).abs() <= 10.0);
    assert!(level.abs() <= 3.0, "level with PLC {level:+.2} dB");
}

/// Error energy in `frame` against `reference`, relative to the reference's energy, in dB.
fn error_db(reference: &[i16], frame: &[i16]) -> f64 {
    let (mut sig, mut err) = (0.0, 0.0);
    for (&r, &d) in reference.iter().zip(frame) {
        sig += f64::from(r).powi(2);
        err += (f64::from(d) - f64::from(r)).powi(2);
    }
    10.0 * (err / sig.max(1.0)).log10()
}

/// A 440 Hz tone switching to 1320 Hz at the frame that is lost: concealment can only extend
/// the old tone, FEC (in the next packet) carries the new one, so FEC is closer to what the
/// decoder would have produced without the loss.
#[test]
fn opus_fec_beats_plc() {
    let lost = 25;
    let mut input = tones(RATE, 1.0, &[(440.0, -12.0)]);
    let high = tones(RATE, 1.0, &[(1320.0, -12.0)]);
    input[lost * FRAME..].copy_from_slice(&high[lost * FRAME..]);
    let mut enc = new_encoder(Opus).unwrap();
    let payloads = encode_all(enc.as_mut(), &input);

    let reference = decode_all(new_decoder(Opus).unwrap().as_mut(), &payloads);
    let mut plc = Vec::new();
    let mut fec = Vec::new();
    let mut dec_plc = OpusDecoder::new(1).unwrap();
    let mut dec_fec = OpusDecoder::new(1).unwrap();
    for (i, p) in payloads.iter().enumerate() {
        if i == lost {
            dec_plc.conceal(FRAME, &mut plc);
            let n = packet_samples(&payloads[i + 1]).unwrap();
            assert_eq!(n, FRAME);
            dec_fec.decode_fec(&payloads[i + 1], n, &mut fec).unwrap();
        } else {
            dec_plc.decode(p, &mut plc).unwrap();
            dec_fec.decode(p, &mut fec).unwrap();
        }
    }
    assert_eq!(plc.len(), reference.len());
    assert_eq!(fec.len(), reference.len());
    let span = lost * FRAME..(lost + 1) * FRAME;
    let e_plc = error_db(&reference[span.clone()], &plc[span.clone()]);
    let e_fec = error_db(&reference[span.clone()], &fec[span.clone()]);
    let f_fec = peak_near(&fec[span.clone()], RATE, 1320.0);
    let a_fec = db(amplitude_at(&fec[span.clone()], RATE, 1320.0)
        / amplitude_at(&reference[span.clone()], RATE, 1320.0));
    let a_plc = db(amplitude_at(&plc[span.clone()], RATE, 1320.0)
        / amplitude_at(&reference[span], RATE, 1320.0));
    println!(
        "lost frame vs loss-free decoding: PLC error {e_plc:+.1} dB, FEC error {e_fec:+.1} dB; \
         1320 Hz level: FEC {a_fec:+.1} dB ({f_fec:.1} Hz), PLC {a_plc:+.1} dB"
    );
    assert!(
        e_fec + 3.0 <= e_plc,
        "FEC {e_fec:+.1} dB vs PLC {e_plc:+.1} dB"
    );
    assert!(a_fec > a_plc + 6.0);
}

/// With DTX, silence turns into packets of at most 2 bytes after the encoder's hang-over (but for
/// a comfort-noise update every 400 ms), and they decode to silence. Measured over the last
/// 600 ms: 29 packets of 1 byte and one of 28 bytes, against 22–34 bytes per packet without DTX.
#[test]
fn opus_dtx_silence() {
    let opts = OpusOptions {
        dtx: true,
        ..OpusOptions::default()
    };
    let mut enc = OpusEncoder::new(opts).unwrap();
    let mut input = tones(RATE, 0.4, ONE_K);
    input.extend(std::iter::repeat_n(0i16, RATE as usize));
    let payloads = encode_all(&mut enc, &input);
    let silent = &payloads[payloads.len() - 30..];
    let sizes: Vec<usize> = silent.iter().map(Vec::len).collect();
    let mut plain = OpusEncoder::new(OpusOptions::default()).unwrap();
    let plain_sizes: Vec<usize> = encode_all(&mut plain, &input)[payloads.len() - 30..]
        .iter()
        .map(Vec::len)
        .collect();
    println!("DTX silence packet sizes {sizes:?}; without DTX {plain_sizes:?}");
    // One packet in 20 (every 400 ms) is a full-size update of the comfort noise.
    let tiny = sizes.iter().filter(|&&s| s <= 2).count();
    assert!(tiny >= 27, "DTX packets {sizes:?}");
    let (dtx_bytes, plain_bytes): (usize, usize) = (sizes.iter().sum(), plain_sizes.iter().sum());
    assert!(
        dtx_bytes * 5 <= plain_bytes,
        "DTX {dtx_bytes} vs {plain_bytes} bytes"
    );
    let mut dec = OpusDecoder::new(1).unwrap();
    let out = decode_all(&mut dec, &payloads);
    assert_eq!(out.len(), input.len());
    let tail = &out[out.len() - 30 * FRAME..];
    let peak = tail.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak <= 100, "DTX silence decodes to peaks of {peak}");
}

#[test]
fn opus_bad_frame_sizes() {
    let mut enc = new_encoder(Opus).unwrap();
    let mut out = Vec::new();
    for n in [0, 1, 119, 959, 961, 1000, 3000, 48_000] {
        assert_eq!(
            enc.encode(&vec![0; n], &mut out),
            Err(CodecError::FrameSize(n)),
            "{n} samples"
        );
    }
    for n in [120, 240, 480, 960, 1920, 2880] {
        enc.encode(&vec![0; n], &mut out).unwrap();
    }
    let mut stereo = OpusEncoder::new(OpusOptions {
        channels: 2,
        ..OpusOptions::default()
    })
    .unwrap();
    assert_eq!(
        stereo.encode(&[0; 961], &mut out),
        Err(CodecError::FrameSize(961))
    );
    stereo.encode(&[0; 1920], &mut out).unwrap();
    let mut dec = OpusDecoder::new(1).unwrap();
    for n in [0, 100, 960 + 1, 6000] {
        assert_eq!(
            dec.decode_fec(&[0x78, 0, 0], n, &mut Vec::new()),
            Err(CodecError::FrameSize(n))
        );
    }
}

#[test]
fn opus_garbage_is_an_error_not_a_panic() {
    let mut dec = new_decoder(Opus).unwrap();
    let mut out = Vec::new();
    // Empty; code 3 with zero frames; code 3 with 63 × 20 ms (> 120 ms); code 1 (two equal
    // frames) with an odd length; code 2 whose first frame length runs past the end.
    for bad in [
        &[][..],
        &[0x03, 0x00],
        &[0x0B, 0x3F, 1, 2, 3],
        &[0x01, 1, 2, 3],
        &[0x02, 250, 1, 2],
    ] {
        assert!(dec.decode(bad, &mut out).is_err(), "{bad:?} accepted");
    }
    assert!(out.is_empty());
    // Random bytes: whatever the decoder makes of them, no panic, and output only in whole
    // frames.
    let mut x = 0x9E37_79B9u32;
    for len in 0..400 {
        let junk: Vec<u8> = (0..len % 200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let before = out.len();
        if dec.decode(&junk, &mut out).is_ok() {
            assert!((out.len() - before).is_multiple_of(120));
        }
    }
    // The decoder still works afterwards.
    let mut enc = new_encoder(Opus).unwrap();
    let mut p = Vec::new();
    enc.encode(&[0; 960], &mut p).unwrap();
    let before = out.len();
    dec.decode(&p, &mut out).unwrap();
    assert_eq!(out.len() - before, 960);
}

#[test]
fn opus_conceal_odd_lengths() {
    let mut dec = OpusDecoder::new(2).unwrap();
    let mut out = Vec::new();
    for n in [0, 1, 160, 960, 7000] {
        let before = out.len();
        dec.conceal(n, &mut out);
        assert_eq!(out.len() - before, 2 * n);
    }
}

/// Opus at the G.711 side's rate: 8 kHz PCM in (narrowband, complexity 5, as the pipeline's
/// telephony legs run it), decoded at 8 kHz and at 48 kHz; tones keep frequency and level,
/// concealment and FEC work at 8 kHz, and FEC follows the expected loss.
#[test]
fn opus_at_8_khz() {
    use strowger_media::codec::opus::OpusBandwidth;
    let opts = OpusOptions {
        sample_rate: 8000,
        complexity: 5,
        max_bandwidth: OpusBandwidth::Narrowband,
        fec: false,
        expected_loss_percent: 0,
        ..OpusOptions::default()
    };
    let mut enc = OpusEncoder::new(opts).unwrap();
    assert_eq!(enc.sample_rate(), 8000);
    let input = tones(8000, 1.0, ONE_K);
    let payloads: Vec<Vec<u8>> = input
        .chunks(160)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            p
        })
        .collect();
    // The RTP clock stays 48 kHz: a 20 ms packet is 960 samples whatever the PCM rate.
    assert_eq!(packet_samples(&payloads[10]).unwrap(), 960);
    let mut dec8 = OpusDecoder::with_rate(8000, 1).unwrap();
    assert_eq!(dec8.sample_rate(), 8000);
    let out8 = decode_all(&mut dec8, &payloads);
    assert_eq!(out8.len(), input.len());
    let report = check_tones("opus 8 kHz → 8 kHz", &out8[1600..], 8000, ONE_K);
    println!("{report}");
    let mut dec48 = OpusDecoder::new(1).unwrap();
    let out48 = decode_all(&mut dec48, &payloads);
    assert_eq!(out48.len(), input.len() * 6);
    let report = check_tones("opus 8 kHz → 48 kHz", &out48[9600..], 48000, ONE_K);
    println!("{report}");
    // Concealment and FEC at 8 kHz produce a frame's worth.
    let mut out = Vec::new();
    dec8.conceal(160, &mut out);
    assert_eq!(out.len(), 160);
    out.clear();
    dec8.decode_fec(&payloads[20], 160, &mut out).unwrap();
    assert_eq!(out.len(), 160);
    assert!(dec8.decode_fec(&payloads[20], 170, &mut out).is_err());
    // Expected loss switches FEC on, and back off at zero.
    enc.set_expected_loss(10);
    assert!(enc.options().fec);
    assert_eq!(enc.options().expected_loss_percent, 10);
    enc.set_expected_loss(0);
    assert!(!enc.options().fec);
    // Rates Opus does not run at are refused.
    assert!(OpusEncoder::new(OpusOptions {
        sample_rate: 44_100,
        ..opts
    })
    .is_err());
    assert!(OpusDecoder::with_rate(11_025, 1).is_err());
    assert!(OpusEncoder::new(OpusOptions {
        complexity: 11,
        ..opts
    })
    .is_err());
}
