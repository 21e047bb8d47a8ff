//! G.711 (ITU-T, 1988): µ-law (PCMU) and A-law (PCMA) companding at 8 kHz, one byte per sample.
//!
//! Encoding follows the segment/quantization description of the recommendation: the magnitude
//! is split into eight segments (chords) of 16 steps each, the step doubling from one segment to
//! the next. µ-law works on 14-bit magnitudes with a bias of 33 and inverts all bits; A-law works
//! on 13-bit magnitudes and inverts the even bits (XOR 0x55). Both use the decision values and
//! reconstruction values (the middle of each step) of the recommendation's tables 1 (A-law) and
//! 2 (µ-law), scaled to 16-bit PCM; negative samples take the one's complement magnitude, as in
//! the ITU-T reference implementation (G.191). Decoding is table-driven; the tables are computed
//! at compile time.
//!
//! ffmpeg's encoder rounds to the nearest reconstruction value instead, so near some decision
//! values (segment ends, ties) it picks the adjacent code; decoding is identical.

use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind};

/// The µ-law bias, in 14-bit units.
const ULAW_BIAS: i32 = 33;
/// The largest biased 14-bit µ-law magnitude (the top of segment 7).
const ULAW_MAX_BIASED: i32 = 0x1FFF;

/// Encodes one 16-bit sample to µ-law. Only the top 14 bits count, as in G.711.
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    // 14-bit sample. Negative values use the one's complement magnitude (as the ITU-T reference
    // implementation does), so -1 maps to magnitude 0. The sign bit is 0 for positive values
    // before the final inversion.
    let x = i32::from(pcm) >> 2;
    let (sign, mag) = if x < 0 { (0x80, !x) } else { (0x00, x) };
    // Biased magnitude, 33..=8191; segment s covers [32·2^s, 64·2^s).
    let biased = (mag + ULAW_BIAS).min(ULAW_MAX_BIASED);
    let seg = (31 - (biased as u32).leading_zeros()) as i32 - 5;
    let seg = seg.clamp(0, 7);
    let step = (biased >> (seg + 1)) & 0x0F;
    !((sign | (seg << 4) | step) as u8)
}

/// Decodes one µ-law byte (computed; [`ulaw_to_linear`] is the table lookup).
const fn ulaw_expand(code: u8) -> i16 {
    let c = !code;
    let seg = ((c >> 4) & 0x07) as i32;
    let step = (c & 0x0F) as i32;
    // Reconstruction at the middle of the step, minus the bias, in 14-bit units, then << 2.
    let v = (((2 * step + 33) << seg) - ULAW_BIAS) << 2;
    if c & 0x80 != 0 {
        -v as i16
    } else {
        v as i16
    }
}

/// Encodes one 16-bit sample to A-law. Only the top 13 bits count, as in G.711.
pub fn linear_to_alaw(pcm: i16) -> u8 {
    // 13-bit sample, one's complement magnitude for negative values; A-law's sign bit is 1 for
    // positive values. The 12-bit magnitude (0..=2047) counts in steps of segments 0 and 1.
    let x = i32::from(pcm) >> 3;
    let (sign, mag) = if x < 0 { (0x00, !x) } else { (0x80, x) };
    let mag = mag >> 1;
    let code = if mag < 32 {
        // Segments 0 and 1 share the step size; segment 1 starts at 16.
        mag
    } else {
        // Segment s (2..=7) covers [16·2^(s-1), 32·2^(s-1)).
        let seg = (31 - (mag as u32).leading_zeros()) as i32 - 3; // 2..=7
        (seg << 4) | ((mag >> (seg - 1)) & 0x0F)
    };
    ((sign | code) as u8) ^ 0x55
}

/// Decodes one A-law byte (computed; [`alaw_to_linear`] is the table lookup).
const fn alaw_expand(code: u8) -> i16 {
    let c = code ^ 0x55;
    let seg = ((c >> 4) & 0x07) as i32;
    let step = (c & 0x0F) as i32;
    // Middle of the step in 13-bit units (×2 for the half step), then scaled to 16 bits.
    let mag = if seg == 0 {
        (2 * step + 1) << 3
    } else {
        (2 * step + 33) << (seg + 2)
    };
    if c & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_expand(i as u8)
        } else {
            ulaw_expand(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law code → 16-bit PCM.
pub static ULAW_TABLE: [i16; 256] = build_table(false);
/// A-law code → 16-bit PCM.
pub static ALAW_TABLE: [i16; 256] = build_table(true);

/// Decodes one µ-law byte.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

/// Which companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law (PCMU).
    Mu,
    /// A-law (PCMA).
    A,
}

impl Law {
    fn kind(self) -> CodecKind {
        match self {
            Law::Mu => CodecKind::Pcmu,
            Law::A => CodecKind::Pcma,
        }
    }
}

/// G.711 encoder, 8 kHz mono.
#[derive(Debug, Clone)]
pub struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    /// A new encoder for `law`.
    pub fn new(law: Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for G711Encoder {
    fn kind(&self) -> CodecKind {
        self.law.kind()
    }
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn channels(&self) -> u16 {
        1
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.reserve(pcm.len());
        match self.law {
            Law::Mu => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            Law::A => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
        Ok(())
    }
}

/// G.711 decoder, 8 kHz mono.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    fade: Fade,
}

impl G711Decoder {
    /// A new decoder for `law`.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            fade: Fade::default(),
        }
    }
}

impl AudioDecoder for G711Decoder {
    fn kind(&self) -> CodecKind {
        self.law.kind()
    }
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn channels(&self) -> u16 {
        1
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let table = match self.law {
            Law::Mu => &ULAW_TABLE,
            Law::A => &ALAW_TABLE,
        };
        let start = out.len();
        out.extend(payload.iter().map(|&c| table[usize::from(c)]));
        self.fade.remember(&out[start..]);
        Ok(())
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.fade.conceal(samples, 8000, out);
    }
}

/// Concealment for codecs without their own: repeats the last decoded frame while fading it out
/// linearly over 20 ms, then silence until the next good frame.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fade {
    last: Vec<i16>,
    /// Samples of concealment already produced since the last good frame.
    done: usize,
}

impl Fade {
    /// The longest frame remembered (60 ms at 16 kHz).
    const MAX: usize = 960;

    pub(crate) fn remember(&mut self, frame: &[i16]) {
        self.done = 0;
        if frame.is_empty() {
            return;
        }
        let tail = &frame[frame.len().saturating_sub(Self::MAX)..];
        self.last.clear();
        self.last.extend_from_slice(tail);
    }

    pub(crate) fn conceal(&mut self, samples: usize, rate: u32, out: &mut Vec<i16>) {
        let span = (rate / 50) as usize; // 20 ms
        out.reserve(samples);
        for _ in 0..samples {
            let v = if self.last.is_empty() || self.done >= span {
                0
            } else {
                let s = i32::from(self.last[self.done % self.last.len()]);
                let gain = (span - self.done) as i32;
                (s * gain / span as i32) as i16
            };
            self.done = self.done.saturating_add(1);
            out.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F); // negative zero
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
    }

    /// The decision values of G.711 table 2 (µ-law), in 14-bit units: the first value of each
    /// segment and its step.
    #[test]
    fn ulaw_segments_match_the_recommendation() {
        // Segment boundaries (decision values) in 14-bit units: 0, 31, 95, 223, 479, 991, 2015, 4063, 8159.
        let bounds = [0, 31, 95, 223, 479, 991, 2015, 4063];
        let steps = [2, 4, 8, 16, 32, 64, 128, 256];
        for seg in 0..8 {
            for q in 0..16 {
                // First step of segment 0 is 1 wide (0..1) in the recommendation; the others are full.
                let lo = if seg == 0 {
                    if q == 0 {
                        0
                    } else {
                        2 * q - 1
                    }
                } else {
                    bounds[seg] + steps[seg] * q
                };
                let code = linear_to_ulaw((lo << 2) as i16);
                assert_eq!(
                    !code & 0x7F,
                    ((seg << 4) | q) as u8,
                    "seg {seg} q {q} lo {lo}"
                );
                // One below the decision value is still the previous step.
                if lo > 0 {
                    let below = !linear_to_ulaw(((lo << 2) - 1) as i16) & 0x7F;
                    assert_eq!(below, (((seg << 4) | q) - 1) as u8, "below {lo}");
                }
                // Negative samples: the magnitude is the one's complement, -(lo + 1).
                let neg = linear_to_ulaw((-(lo as i32 + 1) << 2) as i16);
                assert_eq!(neg, code & 0x7F, "negative seg {seg} q {q}");
            }
        }
    }

    /// The decision values of G.711 table 1 (A-law), in 12-bit magnitude units (16-bit >> 4):
    /// segments 0 and 1 have steps of 1 from 0 and 16, segment s >= 2 starts at 16·2^(s-1) with
    /// steps of 2^(s-1).
    #[test]
    fn alaw_segments_match_the_recommendation() {
        for seg in 0..8i32 {
            let (start, step) = match seg {
                0 => (0, 1),
                1 => (16, 1),
                s => (16 << (s - 1), 1 << (s - 1)),
            };
            for q in 0..16 {
                let lo = start + q * step;
                let want = ((seg << 4) | q) as u8;
                let code = linear_to_alaw((lo << 4) as i16);
                assert_eq!(code ^ 0x55, want | 0x80, "seg {seg} q {q}");
                if lo > 0 {
                    let below = (linear_to_alaw(((lo << 4) - 1) as i16) ^ 0x55) & 0x7F;
                    assert_eq!(below, want - 1, "below {lo}");
                }
                let neg = linear_to_alaw((-(lo + 1) << 4) as i16);
                assert_eq!(neg ^ 0x55, want, "negative seg {seg} q {q}");
            }
        }
    }

    #[test]
    fn exhaustive_round_trip() {
        for c in 0..=255u8 {
            let u = ulaw_to_linear(c);
            assert_eq!(ulaw_to_linear(linear_to_ulaw(u)), u, "µ-law {c:#04x}");
            let a = alaw_to_linear(c);
            assert_eq!(alaw_to_linear(linear_to_alaw(a)), a, "A-law {c:#04x}");
            // Every code but µ-law's negative zero (0x7F) reproduces itself.
            if c != 0x7F {
                assert_eq!(linear_to_ulaw(u), c);
            }
            assert_eq!(linear_to_alaw(a), c);
        }
    }

    #[test]
    fn monotonic_and_bounded_error() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(x));
            let a = alaw_to_linear(linear_to_alaw(x));
            assert!(u >= prev_u, "µ-law not monotonic at {x}");
            assert!(a >= prev_a, "A-law not monotonic at {x}");
            prev_u = u;
            prev_a = a;
            // The error is at most half a step; the largest step is 1024 (µ) / 1024 (A) in
            // 16-bit units, plus the clipped top.
            let mag = i32::from(x).abs();
            let eu = (i32::from(u) - i32::from(x)).abs();
            let ea = (i32::from(a) - i32::from(x)).abs();
            if mag < 32000 {
                assert!(
                    eu <= 512 && eu * 16 <= mag.max(256),
                    "µ-law error {eu} at {x}"
                );
                assert!(
                    ea <= 512 && ea * 16 <= mag.max(256),
                    "A-law error {ea} at {x}"
                );
            }
        }
    }

    #[test]
    fn decoder_tables_are_symmetric() {
        for c in 0..128u8 {
            assert_eq!(ulaw_to_linear(c), -ulaw_to_linear(c | 0x80));
            assert_eq!(alaw_to_linear(c ^ 0x80), -alaw_to_linear(c));
        }
    }

    #[test]
    fn conceal_fades_out() {
        let mut d = G711Decoder::new(Law::Mu);
        let mut out = Vec::new();
        d.decode(&[0x80; 160], &mut out).unwrap();
        out.clear();
        d.conceal(320, &mut out);
        assert_eq!(out.len(), 320);
        assert_eq!(out[0], 32124);
        assert!(out[80] < 32124 && out[80] > 0);
        assert!(out[160..].iter().all(|&s| s == 0));
    }
}
