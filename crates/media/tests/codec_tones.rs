//! Every codec through encode → decode with a 1 kHz tone and a 440 + 1320 Hz chord: the
//! frequencies survive within 1 %, the levels within 1 dB, and the SNR stays above a floor per
//! codec.
//!
//! Measured SNRs (printed with `cargo test -- --nocapture`), floors in the constants below:
//! - PCMU: 1 kHz at -10 dBFS 40.9 dB; chord (2 × -16 dBFS) 39.8 dB
//! - PCMA: 1 kHz at -10 dBFS 40.3 dB; chord 39.0 dB
//! - G.722: 1 kHz at -10 dBFS 47.7 dB; chord 41.7 dB; 6 kHz (higher sub-band) 27.1 dB
//!
//! Opus has its own tests in `opus.rs`.
//!
//! G.722's delay (QMF analysis + synthesis) is 22 samples; the SNR search finds it (for the
//! 1 kHz tone any delay ≡ 22 mod 16 fits as well).

mod common;

use common::{check_tones, snr_db, tones, zero_crossing_freq};
use strowger_media::codec::{new_decoder, new_encoder, CodecKind};

const ONE_K: &[(f64, f64)] = &[(1000.0, -10.0)];
const CHORD: &[(f64, f64)] = &[(440.0, -16.0), (1320.0, -16.0)];

/// Runs `pcm` through the codec in 20 ms frames.
fn through(kind: CodecKind, pcm: &[i16]) -> (Vec<i16>, usize) {
    let mut enc = new_encoder(kind).unwrap();
    let mut dec = new_decoder(kind).unwrap();
    let frame = enc.sample_rate() as usize / 50;
    let mut out = Vec::new();
    let mut bytes = 0;
    for chunk in pcm.chunks(frame) {
        let mut payload = Vec::new();
        enc.encode(chunk, &mut payload).unwrap();
        bytes += payload.len();
        dec.decode(&payload, &mut out).unwrap();
    }
    assert_eq!(out.len(), pcm.len());
    (out, bytes)
}

fn run(kind: CodecKind, rate: u32, parts: &[(f64, f64)], snr_floor: f64) -> f64 {
    let input = tones(rate, 1.0, parts);
    let (out, bytes) = through(kind, &input);
    // 64 kbit/s for all three.
    assert_eq!(bytes * 8, 64_000, "{kind} bit rate");
    // Leave out the first 50 ms (ADPCM adaptation) and measure the rest.
    let skip = rate as usize / 20;
    let (snr, delay) = snr_db(&input[skip..input.len() - 64], &out[skip..]);
    let report = check_tones(&kind.to_string(), &out[skip..], rate, parts);
    if parts.len() == 1 {
        let f = zero_crossing_freq(&out[skip..], rate);
        assert!(
            (f - parts[0].0).abs() <= parts[0].0 * 0.01,
            "{kind}: zero crossings say {f:.1} Hz"
        );
    }
    println!("{report}SNR {snr:.1} dB (delay {delay} samples)");
    assert!(
        snr >= snr_floor,
        "{kind}: SNR {snr:.1} dB below the floor of {snr_floor} dB"
    );
    snr
}

/// G.711 at -10 dBFS: companding gives 39–41 dB; the floor leaves room.
const SNR_FLOOR_G711: f64 = 37.0;
/// G.722 at 64 kbit/s on tones well inside the lower band: 41.7–47.7 dB measured.
const SNR_FLOOR_G722: f64 = 38.0;

#[test]
fn pcmu_tone() {
    run(CodecKind::Pcmu, 8000, ONE_K, SNR_FLOOR_G711);
}

#[test]
fn pcmu_chord() {
    run(CodecKind::Pcmu, 8000, CHORD, SNR_FLOOR_G711);
}

#[test]
fn pcma_tone() {
    run(CodecKind::Pcma, 8000, ONE_K, SNR_FLOOR_G711);
}

#[test]
fn pcma_chord() {
    run(CodecKind::Pcma, 8000, CHORD, SNR_FLOOR_G711);
}

#[test]
fn g722_tone() {
    run(CodecKind::G722, 16000, ONE_K, SNR_FLOOR_G722);
}

#[test]
fn g722_chord() {
    run(CodecKind::G722, 16000, CHORD, SNR_FLOOR_G722);
}

/// A tone in the higher sub-band (6 kHz) must come out too: checks the QMF and the 2-bit band.
#[test]
fn g722_high_band_tone() {
    let parts = &[(6000.0, -10.0)];
    let input = tones(16000, 1.0, parts);
    let (out, _) = through(CodecKind::G722, &input);
    let skip = 800;
    let (snr, delay) = snr_db(&input[skip..input.len() - 64], &out[skip..]);
    // The level check is looser: 2-bit ADPCM.
    let peak = common::peak_near(&out[skip..], 16000, 6000.0);
    let amp = common::amplitude_at(&out[skip..], 16000, peak);
    let err = common::db(amp / (32767.0 * 10f64.powf(-0.5)));
    println!("G722 6 kHz: {peak:.1} Hz, level {err:+.2} dB, SNR {snr:.1} dB (delay {delay})");
    assert!((peak - 6000.0).abs() <= 60.0);
    assert!(err.abs() <= 1.0, "6 kHz level off by {err:+.2} dB");
    assert!(snr >= 24.0, "6 kHz SNR {snr:.1} dB");
}

#[test]
fn constructors() {
    for kind in [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus,
    ] {
        let enc = new_encoder(kind).unwrap();
        let dec = new_decoder(kind).unwrap();
        assert_eq!((enc.kind(), dec.kind()), (kind, kind));
        assert_eq!(enc.sample_rate(), dec.sample_rate());
        assert_eq!((enc.channels(), dec.channels()), (1, 1));
    }
}
