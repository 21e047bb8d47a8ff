//! Interoperability with ffmpeg: our G.711 (in WAV) and G.722 (raw) streams decoded by ffmpeg,
//! and ffmpeg's encodings decoded by us, each checked for the tone (frequency within 1 %, level
//! within 1 dB) and compared byte for byte / sample for sample with our own codec.
//!
//! Opus: our packets in an Ogg Opus file (our `ogg` writer) decoded by ffmpeg, with its native
//! decoder and with libopus; and ffmpeg's libopus encoding (32 kbit/s, constrained VBR) read
//! by our Ogg reader and decoded by us. Opus is not bit-exact across encoders, so these check the
//! tone and the SNR, and how close ffmpeg's decoding of our stream is to ours.
//!
//! Measured Opus (ffmpeg 5.1, libopus 1.3.1; 1 kHz at -10 dBFS / chord 2 × -16 dBFS):
//! - ours → ffmpeg native decoder: SNR 27.2 / 17.2 dB, 26.5–33.0 dB from our own decoding
//! - ours → ffmpeg libopus decoder: SNR 27.1 / 17.5 dB, 108–115 dB from ours (all but 10–36 of
//!   48000 samples equal)
//! - ffmpeg libopus encoder (32k, constrained VBR) → ours: SNR 16.3 / 16.7 dB; libopus decoding
//!   the same file is 75–78 dB from ours (fixed-point vs float builds differ by an LSB)
//!
//! Needs the `ffmpeg` binary (Debian: `apt-get install -y --no-install-recommends ffmpeg`;
//! `scripts/test` installs it). Without it these tests fail, on purpose.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{check_tones, snr_db, tones};
use strowger_media::codec::opus::{packet_samples, OpusDecoder, OpusEncoder, OpusOptions};
use strowger_media::codec::{new_decoder, new_encoder, AudioDecoder, AudioEncoder, CodecKind};
use strowger_media::ogg::{self, OpusHead, ReadLimits};
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

/// A hard signal for G.722: a full-scale chirp over the whole band, white noise, a clipped
/// square wave and silence, to exercise every limiter and both sub-bands.
fn torture_signal() -> Vec<i16> {
    let rate = 16000.0;
    let mut x = Vec::new();
    // Chirp 50 Hz → 7950 Hz over 2 s at full scale.
    let mut phase = 0.0f64;
    for i in 0..32000 {
        let f = 50.0 + 7900.0 * f64::from(i) / 32000.0;
        phase += 2.0 * std::f64::consts::PI * f / rate;
        x.push((32767.0 * phase.sin()).round() as i16);
    }
    // White noise (xorshift), full range.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..16000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x.push((s >> 48) as u16 as i16);
    }
    // Square wave at 300 Hz, full scale, then silence, then a quiet tone.
    for i in 0..8000 {
        x.push(if (i / 27) % 2 == 0 {
            i16::MAX
        } else {
            i16::MIN
        });
    }
    x.extend(std::iter::repeat_n(0, 4000));
    x.extend(tones(16000, 0.25, &[(3000.0, -60.0)]));
    x
}

/// Bit-exactness on a hard signal: ffmpeg's G.722 encoding of it equals ours, and ffmpeg's
/// decoding of arbitrary bytes (including the codes 0–3 no encoder emits) equals ours.
#[test]
fn g722_bit_exact_on_torture_signal_and_random_bytes() {
    let dir = scratch("g722-torture");
    let input = torture_signal();
    let src = dir.join("torture.wav");
    std::fs::write(&src, wav::write_pcm16(16000, 1, &input)).unwrap();
    let theirs_g722 = dir.join("ffmpeg.g722");
    ffmpeg(&[
        "-i",
        p(&src),
        "-acodec",
        "g722",
        "-f",
        "g722",
        p(&theirs_g722),
    ]);
    let theirs = std::fs::read(&theirs_g722).unwrap();
    let ours = encode(CodecKind::G722, &input);
    assert_eq!(theirs.len(), ours.len());
    if let Some(i) = theirs.iter().zip(&ours).position(|(a, b)| a != b) {
        panic!(
            "G.722 encodings differ first at byte {i} of {}: ffmpeg {:#04x}, ours {:#04x}",
            ours.len(),
            theirs[i],
            ours[i]
        );
    }

    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..40000)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 56) as u8
        })
        .collect();
    for (name, payload) in [("random", &random), ("ours", &ours)] {
        let file = dir.join(format!("{name}.g722"));
        std::fs::write(&file, payload).unwrap();
        let raw = dir.join(format!("{name}.s16"));
        ffmpeg(&[
            "-f",
            "g722",
            "-i",
            p(&file),
            "-f",
            "s16le",
            "-acodec",
            "pcm_s16le",
            p(&raw),
        ]);
        let theirs = read_s16le(&raw);
        let ours = decode(CodecKind::G722, payload);
        assert_eq!(theirs.len(), ours.len());
        if let Some(i) = theirs.iter().zip(&ours).position(|(a, b)| a != b) {
            panic!(
                "G.722 decodings of {name} bytes differ first at sample {i}: ffmpeg {}, ours {}",
                theirs[i], ours[i]
            );
        }
    }
}

/// Every 16-bit value through ffmpeg's G.711 encoders. ffmpeg's encoder tables pick the nearest
/// reconstruction value, which near a few decision values (segment ends, where the decision
/// value is not the midpoint of the two reconstruction values, and exact ties) differs from the
/// decision values of G.711's tables, which we follow (with the ITU-T reference's one's
/// complement magnitude for negative samples). So: equal codes, or adjacent codes where ffmpeg's
/// is the nearer one; the count of those is printed and bounded.
#[test]
fn g711_every_sample_value_matches_ffmpeg() {
    let dir = scratch("g711-all");
    let input: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    let src = dir.join("all.wav");
    std::fs::write(&src, wav::write_pcm16(8000, 1, &input)).unwrap();
    for (kind, codec, lsb) in [
        (CodecKind::Pcmu, "pcm_mulaw", 4),
        (CodecKind::Pcma, "pcm_alaw", 8),
    ] {
        let out = dir.join(format!("{codec}.wav"));
        ffmpeg(&["-i", p(&src), "-acodec", codec, p(&out)]);
        let file = std::fs::read(&out).unwrap();
        let (_, theirs) = wav::read(&file).unwrap();
        let ours = encode(kind, &input);
        assert_eq!(theirs.len(), ours.len());
        let ours_pcm = decode(kind, &ours);
        let theirs_pcm = decode(kind, theirs);
        let mut ties = 0;
        for i in 0..input.len() {
            if ours[i] == theirs[i] {
                continue;
            }
            let x = i32::from(input[i]);
            let d_ours = (x - i32::from(ours_pcm[i])).abs();
            let d_theirs = (x - i32::from(theirs_pcm[i])).abs();
            let step = (i32::from(ours_pcm[i]) - i32::from(theirs_pcm[i])).abs();
            assert!(
                d_theirs <= d_ours + 2 * lsb && d_ours + d_theirs == step,
                "{kind}: sample {x} encodes to {:#04x} ({}) in ffmpeg, {:#04x} ({}) here",
                theirs[i],
                theirs_pcm[i],
                ours[i],
                ours_pcm[i]
            );
            ties += 1;
        }
        println!("{kind}: {ties} of 65536 sample values code differently (adjacent codes)");
        assert!(ties < 1024, "{kind}: {ties} differences");
    }
}

/// Slack so that the SNR search (0..=64 samples of delay) covers ±32 samples around the
/// nominal alignment.
const SLACK: usize = 32;

/// 1 s of `parts` through our Opus encoder into an Ogg Opus file; ffmpeg decodes it (with
/// `decoder` when given, else its default, the native one) and the tone must be there.
fn opus_roundtrip_through_ffmpeg(parts: &[(f64, f64)], name: &str) {
    let dir = scratch(name);
    let input = tones(48_000, 1.0, parts);
    let mut enc = OpusEncoder::new(OpusOptions::default()).unwrap();
    let pre_skip = enc.lookahead() as usize;
    // One frame of silence more, so that the pre-skip does not cut the end of the tone.
    let mut padded = input.clone();
    padded.extend([0; 960]);
    let payloads: Vec<Vec<u8>> = padded
        .chunks(960)
        .map(|c| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            p
        })
        .collect();
    let head = OpusHead {
        channels: 1,
        pre_skip: pre_skip as u16,
        input_sample_rate: 48_000,
        output_gain: 0,
    };
    let packets: Vec<(&[u8], usize)> = payloads
        .iter()
        .map(|p| (p.as_slice(), packet_samples(p).unwrap()))
        .collect();
    let file = dir.join("ours.opus");
    std::fs::write(
        &file,
        ogg::write_opus_file(0x5157_0001, head, &packets, Some(input.len() as u64)),
    )
    .unwrap();

    // Our own decoding, pre-skip dropped, for comparison.
    let mut dec = OpusDecoder::new(1).unwrap();
    let mut ours = Vec::new();
    for p in &payloads {
        dec.decode(p, &mut ours).unwrap();
    }
    let ours = &ours[pre_skip..];

    let skip = 4800;
    for decoder in [None, Some("libopus")] {
        let raw = dir.join(format!("ffmpeg-{}.s16", decoder.unwrap_or("native")));
        let mut args: Vec<&str> = Vec::new();
        if let Some(d) = decoder {
            args.extend(["-c:a", d]);
        }
        args.extend([
            "-i",
            p(&file),
            "-f",
            "s16le",
            "-ar",
            "48000",
            "-ac",
            "1",
            p(&raw),
        ]);
        ffmpeg(&args);
        let theirs = read_s16le(&raw);
        let what = format!("opus ours→ffmpeg ({})", decoder.unwrap_or("native decoder"));
        // The granule position of the last page trims the end: exactly the input's length.
        assert_eq!(theirs.len(), input.len(), "{what}: sample count");
        let report = check_tones(&what, &theirs[skip..], 48_000, parts);
        let (snr, delay) = snr_db(&input[skip..input.len() - 64], &theirs[skip - SLACK..]);
        let n = ours.len().min(theirs.len());
        let (agree, _) = snr_db(&ours[skip..n - 64], &theirs[skip - SLACK..n]);
        let same = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
        println!(
            "{report}SNR {snr:.1} dB (delay {:+}); against our decoding {agree:.1} dB, \
             {same}/{n} samples equal",
            delay as i64 - SLACK as i64
        );
        assert!(snr >= 14.0, "{what}: SNR {snr:.1} dB");
        // libopus (1.3.1 here) decodes our packets as we do but for a few samples; ffmpeg's own
        // decoder is a different (float) implementation: measured 26.5–33 dB from ours.
        let floor = if decoder.is_some() { 60.0 } else { 20.0 };
        assert!(
            agree >= floor,
            "{what}: differs from our decoding ({agree:.1} dB)"
        );
    }
}

#[test]
fn opus_ours_to_ffmpeg() {
    opus_roundtrip_through_ffmpeg(ONE_K, "opus-o2f");
}

#[test]
fn opus_chord_ours_to_ffmpeg() {
    opus_roundtrip_through_ffmpeg(CHORD, "opus-chord-o2f");
}

/// ffmpeg's libopus encodes a tone to Ogg Opus; our Ogg reader and decoder get the tone back.
fn opus_from_ffmpeg(parts: &[(f64, f64)], name: &str) {
    let dir = scratch(name);
    let input = tones(48_000, 1.0, parts);
    let src = dir.join("tone.wav");
    std::fs::write(&src, wav::write_pcm16(48_000, 1, &input)).unwrap();
    let out = dir.join("ffmpeg.opus");
    ffmpeg(&[
        "-i",
        p(&src),
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-vbr",
        "constrained",
        p(&out),
    ]);
    let file = std::fs::read(&out).unwrap();
    let packets = ogg::read_packets(&file, ReadLimits::default()).unwrap();
    assert!(packets.len() > 2, "only {} packets", packets.len());
    let head = OpusHead::parse(&packets[0].data).unwrap();
    assert_eq!(head.channels, 1);
    assert!(packets[1].data.starts_with(b"OpusTags"));
    let mut dec = OpusDecoder::new(1).unwrap();
    assert_eq!(dec.kind(), CodecKind::Opus);
    let mut decoded = Vec::new();
    let mut bytes = 0;
    for packet in &packets[2..] {
        bytes += packet.data.len();
        dec.decode(&packet.data, &mut decoded).unwrap();
    }
    // The last page's granule position says how many samples the stream really has.
    let last = packets.last().unwrap().granule.unwrap() as usize;
    let pre_skip = usize::from(head.pre_skip);
    let decoded = &decoded[pre_skip..last.min(decoded.len())];
    assert_eq!(decoded.len(), input.len(), "sample count");
    let skip = 4800;
    let report = check_tones("opus ffmpeg→ours", &decoded[skip..], 48_000, parts);
    let (snr, delay) = snr_db(&input[skip..input.len() - 64], &decoded[skip - SLACK..]);
    println!(
        "{report}SNR {snr:.1} dB (delay {:+}); {} packets, {} bit/s, pre-skip {pre_skip}",
        delay as i64 - SLACK as i64,
        packets.len() - 2,
        bytes * 8
    );
    // ffmpeg's libopus encodes for "audio" (CELT), whose waveform SNR on tones is lower than
    // that of our VoIP (SILK/hybrid) encoding: 16.3 dB (tone) and 16.7 dB (chord) measured.
    assert!(snr >= 12.0, "SNR {snr:.1} dB");

    // libopus decoding the same file must give (nearly) the same samples as our decoder.
    let raw = dir.join("libopus.s16");
    ffmpeg(&[
        "-c:a",
        "libopus",
        "-i",
        p(&out),
        "-f",
        "s16le",
        "-ar",
        "48000",
        "-ac",
        "1",
        p(&raw),
    ]);
    let theirs = read_s16le(&raw);
    assert_eq!(theirs.len(), decoded.len(), "libopus sample count");
    let (agree, _) = snr_db(&decoded[skip..decoded.len() - 64], &theirs[skip - SLACK..]);
    let same = decoded.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    println!(
        "libopus decoding of the same file: {agree:.1} dB from ours, {same}/{} samples equal",
        decoded.len()
    );
    assert!(
        agree >= 60.0,
        "libopus decodes differently from us ({agree:.1} dB)"
    );
}

#[test]
fn opus_ffmpeg_to_ours() {
    opus_from_ffmpeg(ONE_K, "opus-f2o");
}

#[test]
fn opus_chord_ffmpeg_to_ours() {
    opus_from_ffmpeg(CHORD, "opus-chord-f2o");
}
