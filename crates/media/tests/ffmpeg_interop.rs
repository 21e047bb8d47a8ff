//! Interoperability with ffmpeg: our G.711 (in WAV) and G.722 (raw) streams decoded by ffmpeg,
//! and ffmpeg's encodings decoded by us, each checked for the tone (frequency within 1 %, level
//! within 1 dB) and compared byte for byte / sample for sample with our own codec.
//!
//! Needs the `ffmpeg` binary (Debian: `apt-get install -y --no-install-recommends ffmpeg`;
//! `scripts/test` installs it). Without it these tests fail, on purpose.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{check_tones, snr_db, tones};
use strowger_media::codec::{new_decoder, new_encoder, CodecKind};
use strowger_media::wav::{self, WavFormat, WavSpec};

const ONE_K: &[(f64, f64)] = &[(1000.0, -10.0)];
const CHORD: &[(f64, f64)] = &[(440.0, -16.0), (1320.0, -16.0)];

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run ffmpeg ({e}): install it, e.g. \
                 `apt-get install -y --no-install-recommends ffmpeg` (scripts/test does)"
            )
        });
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ffmpeg-interop-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn encode(kind: CodecKind, pcm: &[i16]) -> Vec<u8> {
    let mut enc = new_encoder(kind).unwrap();
    let mut out = Vec::new();
    enc.encode(pcm, &mut out).unwrap();
    out
}

fn decode(kind: CodecKind, payload: &[u8]) -> Vec<i16> {
    let mut dec = new_decoder(kind).unwrap();
    let mut out = Vec::new();
    dec.decode(payload, &mut out).unwrap();
    out
}

fn read_s16le(path: &Path) -> Vec<i16> {
    wav::pcm16_samples(&std::fs::read(path).unwrap())
}

/// Our encoder → file → ffmpeg decodes to s16le → the tone must be there, and ffmpeg's samples
/// must match our decoder's.
fn ours_to_ffmpeg(kind: CodecKind, parts: &[(f64, f64)], name: &str) {
    let dir = scratch(name);
    let rate = if kind == CodecKind::G722 { 16000 } else { 8000 };
    let input = tones(rate, 1.0, parts);
    let payload = encode(kind, &input);
    let (file, fmt_args): (PathBuf, &[&str]) = match kind {
        CodecKind::G722 => {
            let f = dir.join("ours.g722");
            std::fs::write(&f, &payload).unwrap();
            (f, &["-f", "g722"])
        }
        _ => {
            let format = if kind == CodecKind::Pcmu {
                WavFormat::Ulaw
            } else {
                WavFormat::Alaw
            };
            let spec = WavSpec {
                format,
                sample_rate: 8000,
                channels: 1,
            };
            let f = dir.join("ours.wav");
            std::fs::write(&f, wav::write(spec, &payload)).unwrap();
            (f, &[])
        }
    };
    let raw = dir.join("ffmpeg.s16");
    let mut args: Vec<&str> = fmt_args.to_vec();
    args.extend([
        "-i",
        p(&file),
        "-f",
        "s16le",
        "-acodec",
        "pcm_s16le",
        p(&raw),
    ]);
    ffmpeg(&args);
    let theirs = read_s16le(&raw);
    let ours = decode(kind, &payload);
    assert_eq!(theirs.len(), ours.len(), "{kind}: sample count");
    let skip = rate as usize / 20;
    let report = check_tones(&format!("{kind} ours→ffmpeg"), &theirs[skip..], rate, parts);
    let (snr, delay) = snr_db(&input[skip..input.len() - 64], &theirs[skip..]);
    let same = theirs.iter().zip(&ours).filter(|(a, b)| a == b).count();
    println!(
        "{report}SNR {snr:.1} dB (delay {delay}); ffmpeg's decoding equals ours in {same}/{} samples",
        ours.len()
    );
    assert_eq!(
        theirs, ours,
        "{kind}: ffmpeg decodes our stream differently from us"
    );
}

/// Tone → ffmpeg encodes (pcm_mulaw/pcm_alaw in WAV, raw g722) → our decoder → the tone must be
/// there, and ffmpeg's bytes must equal our encoder's.
fn ffmpeg_to_ours(kind: CodecKind, parts: &[(f64, f64)], name: &str) {
    let dir = scratch(name);
    let rate = if kind == CodecKind::G722 { 16000 } else { 8000 };
    let input = tones(rate, 1.0, parts);
    let src = dir.join("tone.wav");
    std::fs::write(&src, wav::write_pcm16(rate, 1, &input)).unwrap();
    let payload = match kind {
        CodecKind::G722 => {
            let out = dir.join("ffmpeg.g722");
            ffmpeg(&["-i", p(&src), "-acodec", "g722", "-f", "g722", p(&out)]);
            std::fs::read(&out).unwrap()
        }
        _ => {
            let out = dir.join("ffmpeg.wav");
            let codec = if kind == CodecKind::Pcmu {
                "pcm_mulaw"
            } else {
                "pcm_alaw"
            };
            ffmpeg(&["-i", p(&src), "-acodec", codec, p(&out)]);
            let file = std::fs::read(&out).unwrap();
            let (spec, data) = wav::read(&file).unwrap();
            let want = if kind == CodecKind::Pcmu {
                WavFormat::Ulaw
            } else {
                WavFormat::Alaw
            };
            assert_eq!(
                (spec.format, spec.sample_rate, spec.channels),
                (want, 8000, 1)
            );
            data.to_vec()
        }
    };
    let decoded = decode(kind, &payload);
    let skip = rate as usize / 20;
    let report = check_tones(
        &format!("{kind} ffmpeg→ours"),
        &decoded[skip..],
        rate,
        parts,
    );
    let (snr, delay) = snr_db(&input[skip..input.len() - 64], &decoded[skip..]);
    let ours = encode(kind, &input);
    let same = ours.iter().zip(&payload).filter(|(a, b)| a == b).count();
    println!(
        "{report}SNR {snr:.1} dB (delay {delay}); ffmpeg's bytes equal ours in {same}/{}",
        ours.len()
    );
    assert_eq!(payload.len(), ours.len(), "{kind}: payload length");
    assert_eq!(payload, ours, "{kind}: ffmpeg encodes differently from us");
}

#[test]
fn pcmu_ours_to_ffmpeg() {
    ours_to_ffmpeg(CodecKind::Pcmu, ONE_K, "pcmu-o2f");
}

#[test]
fn pcma_ours_to_ffmpeg() {
    ours_to_ffmpeg(CodecKind::Pcma, ONE_K, "pcma-o2f");
}

#[test]
fn g722_ours_to_ffmpeg() {
    ours_to_ffmpeg(CodecKind::G722, ONE_K, "g722-o2f");
}

#[test]
fn g722_chord_ours_to_ffmpeg() {
    ours_to_ffmpeg(CodecKind::G722, CHORD, "g722-chord-o2f");
}

#[test]
fn pcmu_ffmpeg_to_ours() {
    ffmpeg_to_ours(CodecKind::Pcmu, ONE_K, "pcmu-f2o");
}

#[test]
fn pcma_ffmpeg_to_ours() {
    ffmpeg_to_ours(CodecKind::Pcma, ONE_K, "pcma-f2o");
}

#[test]
fn g722_ffmpeg_to_ours() {
    ffmpeg_to_ours(CodecKind::G722, ONE_K, "g722-f2o");
}

#[test]
fn g722_chord_ffmpeg_to_ours() {
    ffmpeg_to_ours(CodecKind::G722, CHORD, "g722-chord-f2o");
}
