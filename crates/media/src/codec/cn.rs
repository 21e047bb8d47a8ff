//! RFC 3389 comfort noise: the payload (a noise level and optional spectral coefficients) and a
//! generator of noise at that level.
//!
//! The level byte is the noise level in -dBov (0..=127), the same scale as [`crate::level`]
//! (0 dBov = a full-scale square wave). Spectral coefficients (reflection coefficients, one
//! byte each) are kept when parsing but the generator ignores them: it produces white noise at
//! the signalled level.

use super::CodecError;
use crate::level;

/// Static RTP payload type of comfort noise at an 8000 Hz clock (RFC 3551).
pub const STATIC_PT: u8 = 13;

/// Most spectral coefficients a payload may carry (RFC 3389 §3.2 allows up to 254; anything
/// longer is refused as corrupt).
const MAX_COEFFS: usize = 254;

/// One comfort-noise payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnPayload {
    /// Noise level in -dBov, 0..=127.
    pub level: u8,
    /// Quantised reflection coefficients (may be empty).
    pub coeffs: Vec<u8>,
}

impl CnPayload {
    /// A payload with only the level.
    pub fn with_level(level: u8) -> Self {
        Self {
            level: level.min(level::SILENCE),
            coeffs: Vec::new(),
        }
    }

    /// The level of `pcm` as a payload.
    pub fn from_pcm(pcm: &[i16]) -> Self {
        Self::with_level(level::audio_level(pcm))
    }

    /// Parses a payload. The level's high bit must be clear (RFC 3389 §3.1).
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        let (&first, rest) = payload
            .split_first()
            .ok_or(CodecError::InvalidPayload("empty comfort-noise payload"))?;
        if first & 0x80 != 0 {
            return Err(CodecError::InvalidPayload("comfort-noise level above 127"));
        }
        if rest.len() > MAX_COEFFS {
            return Err(CodecError::InvalidPayload(
                "too many comfort-noise coefficients",
            ));
        }
        Ok(Self {
            level: first,
            coeffs: rest.to_vec(),
        })
    }

    /// Appends the payload to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.level.min(level::SILENCE));
        out.extend_from_slice(&self.coeffs[..self.coeffs.len().min(MAX_COEFFS)]);
    }

    /// The level in dBov (negative), or `-inf` for 127 (silence).
    pub fn dbov(&self) -> f64 {
        if self.level >= level::SILENCE {
            f64::NEG_INFINITY
        } else {
            -f64::from(self.level)
        }
    }
}

/// White noise at a comfort-noise level, from a small seeded PRNG (reproducible).
#[derive(Debug, Clone)]
pub struct NoiseGenerator {
    state: u64,
    /// RMS of the output in sample units.
    rms: f64,
}

impl NoiseGenerator {
    /// A generator seeded with `seed`, silent until [`NoiseGenerator::set_level`].
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            rms: 0.0,
        }
    }

    /// Sets the level (-dBov, 0..=127).
    pub fn set_level(&mut self, level: u8) {
        let db = CnPayload::with_level(level).dbov();
        self.rms = if db.is_finite() {
            32768.0 * 10f64.powf(db / 20.0)
        } else {
            0.0
        };
    }

    fn next_unit(&mut self) -> f64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let v = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (v >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Appends `samples` samples of noise to `out`.
    pub fn generate(&mut self, samples: usize, out: &mut Vec<i16>) {
        // Uniform on [-a, a] has RMS a/√3.
        let a = self.rms * 3f64.sqrt();
        out.extend((0..samples).map(|_| {
            let u = self.next_unit() * 2.0 - 1.0;
            (u * a).round().clamp(-32768.0, 32767.0) as i16
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write_round_trip() {
        let p = CnPayload::parse(&[40, 1, 2, 3]).unwrap();
        assert_eq!(p.level, 40);
        assert_eq!(p.coeffs, [1, 2, 3]);
        let mut out = Vec::new();
        p.write(&mut out);
        assert_eq!(out, [40, 1, 2, 3]);
        assert!(CnPayload::parse(&[]).is_err());
        assert!(CnPayload::parse(&[0x80]).is_err());
        assert!(CnPayload::parse(&[0; 300]).is_err());
    }

    #[test]
    fn noise_comes_out_at_its_level() {
        for lvl in [30u8, 50, 70] {
            let mut g = NoiseGenerator::new(7);
            g.set_level(lvl);
            let mut pcm = Vec::new();
            g.generate(8000, &mut pcm);
            let measured = level::dbov(&pcm);
            assert!((measured + f64::from(lvl)).abs() < 0.5, "{lvl}: {measured}");
            assert_eq!(CnPayload::from_pcm(&pcm).level, lvl);
        }
        let mut g = NoiseGenerator::new(7);
        g.set_level(127);
        let mut pcm = Vec::new();
        g.generate(100, &mut pcm);
        assert!(pcm.iter().all(|&s| s == 0));
    }
}
