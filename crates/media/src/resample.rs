//! Sample-rate conversion for mono 16-bit PCM between the rates the engine's codecs use
//! (8, 16 and 48 kHz, both ways), so that legs with different codecs can be bridged and mixed.
//!
//! A polyphase FIR resampler with a Kaiser-windowed sinc lowpass: the rate ratio is reduced to
//! `up / down`, the input is (conceptually) zero-stuffed by `up`, low-pass filtered below the
//! lower of the two Nyquist frequencies and decimated by `down`; only the filter phase each
//! output needs is evaluated. The resampler keeps the tail of the previous chunk and its phase,
//! so a stream can be fed in chunks of any size and the output is identical, sample for sample,
//! to feeding it at once: no clicks at chunk boundaries.

use std::f64::consts::PI;

/// Stopband attenuation the lowpass is designed for, in dB.
const STOPBAND_DB: f64 = 80.0;
/// The lowpass starts rolling off at this fraction of the lower Nyquist frequency…
const PASSBAND_EDGE: f64 = 0.84;
/// …and reaches full attenuation at this fraction (at Nyquist, so nothing folds back).
const STOPBAND_EDGE: f64 = 1.0;
/// Largest reduced interpolation or decimation factor accepted (bounds the filter size).
const MAX_FACTOR: u32 = 64;
/// Independent accumulators of the dot product (8 × f32: two SSE or one AVX register).
const LANES: usize = 8;

/// `Σ a[k] · b[k]` over equal lengths that are multiples of [`LANES`], in [`LANES`]
/// independent partial sums so that the compiler can vectorise it (a single running sum is a
/// dependency chain it may not reorder).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    debug_assert!(a.len().is_multiple_of(LANES));
    // Fixed-size chunks: no bounds checks inside, and the 8 lanes map onto vector registers.
    let (a, _) = a.as_chunks::<LANES>();
    let (b, _) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.iter().zip(b) {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))
}

/// Why a resampler could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// A rate is zero, or the reduced ratio between them is too complex.
    #[error("unsupported sample rate conversion {from} Hz -> {to} Hz")]
    Unsupported {
        /// Input rate in Hz.
        from: u32,
        /// Output rate in Hz.
        to: u32,
    },
}

/// A streaming mono resampler from one fixed rate to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Interpolation factor (number of filter phases).
    up: usize,
    /// Decimation factor.
    down: usize,
    /// Taps per phase of the prototype filter.
    taps: usize,
    /// Taps per phase as evaluated: `taps` rounded up to a multiple of [`LANES`] (zeros on the
    /// oldest side), so the dot product runs in whole SIMD-width chunks.
    padded: usize,
    /// `phases[p][padded - 1 - j]` is the prototype coefficient `h[p + j * up]`, scaled by
    /// `up`: stored oldest-sample first, so a phase and its input window are walked forwards
    /// together.
    phases: Vec<Vec<f32>>,
    /// Input history followed by unconsumed input; always starts with `taps - 1` samples of history.
    buf: Vec<f32>,
    /// Index in `buf` of the newest input sample the next output needs.
    idx: usize,
    /// Filter phase of the next output.
    phase: usize,
}

/// Rounds (half away from zero) and saturates a filter output to 16 bits. Adding ±0.5 and
/// truncating avoids a `roundf` library call per sample on baseline x86-64 (no SSE4.1); the
/// `as` cast saturates.
#[inline]
fn to_i16(x: f32) -> i16 {
    (x + 0.5f32.copysign(x)) as i16
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Zeroth-order modified Bessel function of the first kind (series expansion).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= half / k as f64;
        let t = term * term;
        sum += t;
        if t < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// The telephony filter ([`Resampler::telephony`]) passes up to this fraction of the lower
/// Nyquist frequency (3.4 kHz at 8 kHz)…
const TEL_PASSBAND_EDGE: f64 = 0.85;
/// …and is at full attenuation from here (4.6 kHz at 8 kHz): what lies between 4 and 4.6 kHz
/// folds to 3.4–4 kHz, outside the telephone band.
const TEL_STOPBAND_EDGE: f64 = 1.15;
/// Stopband attenuation of the telephony filter, in dB (32 taps per phase at 8 ↔ 48 kHz; its
/// alias and image rejection is tested at ≥ 60 dB).
const TEL_STOPBAND_DB: f64 = 75.0;

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz. Equal rates pass samples through unchanged.
    ///
    /// Its lowpass is flat to 84 % of the lower Nyquist frequency (3.36 kHz at 8 kHz) and
    /// 80 dB down at that Nyquist frequency, so nothing folds back at all.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        Self::design(from, to, PASSBAND_EDGE, STOPBAND_EDGE, STOPBAND_DB)
    }

    /// A cheaper resampler for telephone-band audio (G.711 ↔ wideband or fullband legs): flat to
    /// 85 % of the lower Nyquist frequency (3.4 kHz at 8 kHz), 75 dB down from 115 % of it
    /// (4.6 kHz). Between Nyquist and 115 % some attenuated signal folds back, but only above
    /// 85 %, outside the telephone band. At 8 ↔ 48 kHz it has 32 taps per phase instead of 64.
    pub fn telephony(from: u32, to: u32) -> Result<Self, ResampleError> {
        Self::design(
            from,
            to,
            TEL_PASSBAND_EDGE,
            TEL_STOPBAND_EDGE,
            TEL_STOPBAND_DB,
        )
    }

    fn design(
        from: u32,
        to: u32,
        passband_edge: f64,
        stopband_edge: f64,
        stopband_db: f64,
    ) -> Result<Self, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError::Unsupported { from, to });
        }
        let g = gcd(from, to);
        let (up, down) = (to / g, from / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(ResampleError::Unsupported { from, to });
        }
        let (up, down) = (up as usize, down as usize);
        if up == 1 && down == 1 {
            return Ok(Self {
                from,
                to,
                up,
                down,
                taps: 1,
                padded: 1,
                phases: vec![vec![1.0]],
                buf: Vec::new(),
                idx: 0,
                phase: 0,
            });
        }

        // Design at the intermediate rate `from * up`, frequencies normalised to it (cycles/sample).
        let high = f64::from(from) * up as f64;
        let nyquist = f64::from(from.min(to)) / 2.0;
        let pass = passband_edge * nyquist / high;
        let stop = stopband_edge * nyquist / high;
        let cutoff = (pass + stop) / 2.0;
        let width = 2.0 * PI * (stop - pass);
        let beta = 0.1102 * (stopband_db - 8.7);
        let min_len = ((stopband_db - 8.0) / (2.285 * width)).ceil() as usize + 1;
        let taps = min_len.div_ceil(up).max(2);
        let len = taps * up;
        let centre = (len - 1) as f64 / 2.0;
        let i0_beta = bessel_i0(beta);
        let proto: Vec<f64> = (0..len)
            .map(|n| {
                let x = n as f64 - centre;
                let sinc = if x == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * PI * cutoff * x).sin() / (PI * x)
                };
                let r = x / (centre + 0.5);
                let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
                sinc * window
            })
            .collect();
        // Unity DC gain per phase after zero-stuffing: the whole filter sums to `up`.
        let sum: f64 = proto.iter().sum();
        let scale = up as f64 / sum;
        let padded = taps.next_multiple_of(LANES);
        let phases = (0..up)
            .map(|p| {
                (0..padded)
                    .rev()
                    .map(|j| {
                        if j < taps {
                            (proto[p + j * up] * scale) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut r = Self {
            from,
            to,
            up,
            down,
            taps,
            padded,
            phases,
            buf: Vec::new(),
            idx: 0,
            phase: 0,
        };
        r.reset();
        Ok(r)
    }

    /// Input rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Delay the filter adds, in output samples (rounded).
    pub fn delay(&self) -> usize {
        if self.up == 1 && self.down == 1 {
            return 0;
        }
        let len = self.taps * self.up;
        ((len - 1) as f64 / 2.0 / self.down as f64).round() as usize
    }

    /// Forgets the stream: the next call starts from silence, as after [`Resampler::new`].
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.padded - 1, 0.0);
        self.idx = self.padded - 1;
        self.phase = 0;
    }

    /// Converts the next chunk of the stream (any length, including zero) and appends the output
    /// to `out`. Over a whole stream about `len * to / from` samples come out; a chunk yields
    /// whole output samples only, the remainder waits for the next chunk.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == 1 && self.down == 1 {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        out.reserve(input.len() * self.up / self.down + 1);
        let taps = self.padded;
        if self.down == 1 {
            // Integer interpolation (8 → 48 kHz: by 6): every input sample gives `up` outputs,
            // one per phase, all over the same window; no position arithmetic.
            debug_assert_eq!(self.phase, 0);
            while self.idx < self.buf.len() {
                let window = &self.buf[self.idx + 1 - taps..=self.idx];
                for coeffs in &self.phases {
                    out.push(to_i16(dot(coeffs, window)));
                }
                self.idx += 1;
            }
        } else if self.up == 1 {
            // Integer decimation (48 → 8 kHz: by 6): one output every `down` inputs.
            let coeffs = &self.phases[0];
            while self.idx < self.buf.len() {
                let window = &self.buf[self.idx + 1 - taps..=self.idx];
                out.push(to_i16(dot(coeffs, window)));
                self.idx += self.down;
            }
        } else {
            while self.idx < self.buf.len() {
                let window = &self.buf[self.idx + 1 - taps..=self.idx];
                out.push(to_i16(dot(&self.phases[self.phase], window)));
                self.phase += self.down;
                self.idx += self.phase / self.up;
                self.phase %= self.up;
            }
        }
        // Keep `taps - 1` samples of history before the next needed sample.
        let drop = (self.idx + 1 - taps).min(self.buf.len());
        self.buf.drain(..drop);
        self.idx -= drop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u32; 3] = [8000, 16000, 48000];

    fn tone(rate: u32, freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (amplitude * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16
            })
            .collect()
    }

    fn resample_all(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        r.process(input, &mut out);
        out
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Frequency from interpolated upward zero crossings.
    fn frequency(x: &[i16], rate: u32) -> f64 {
        let mut crossings = Vec::new();
        for n in 1..x.len() {
            let (a, b) = (f64::from(x[n - 1]), f64::from(x[n]));
            if a < 0.0 && b >= 0.0 {
                crossings.push(n as f64 - 1.0 + (-a) / (b - a));
            }
        }
        let (first, last) = (crossings[0], *crossings.last().unwrap());
        (crossings.len() - 1) as f64 / (last - first) * f64::from(rate)
    }

    /// The steady middle of a signal, away from the filter's start-up transient and the end.
    fn steady(x: &[i16]) -> &[i16] {
        &x[x.len() / 4..x.len() * 3 / 4]
    }

    fn level_db(out: &[i16], reference: &[i16]) -> f64 {
        20.0 * (rms(out) / rms(reference)).log10()
    }

    #[test]
    fn output_length_matches_ratio() {
        for &from in &RATES {
            for &to in &RATES {
                let input = vec![0i16; from as usize];
                let out = resample_all(from, to, &input);
                assert!(
                    out.len().abs_diff(to as usize) <= 1,
                    "{from}->{to}: {} samples",
                    out.len()
                );
            }
        }
    }

    #[test]
    fn equal_rates_pass_through() {
        let input = tone(16000, 1000.0, 10000.0, 1000);
        assert_eq!(resample_all(16000, 16000, &input), input);
    }

    #[test]
    fn rejects_unsupported_ratios() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(8000, 0).is_err());
        assert!(Resampler::new(44100, 48000).is_err());
        assert!(Resampler::new(11025, 22050).is_ok());
    }

    #[test]
    fn one_khz_tone_keeps_frequency_and_level_in_every_direction() {
        for &from in &RATES {
            for &to in &RATES {
                let input = tone(from, 1000.0, 10000.0, from as usize);
                let out = resample_all(from, to, &input);
                let f = frequency(steady(&out), to);
                let db = level_db(steady(&out), steady(&input));
                println!("{from}->{to}: {f:.3} Hz, {db:+.4} dB");
                assert!((f - 1000.0).abs() < 10.0, "{from}->{to}: {f} Hz");
                assert!(db.abs() < 1.0, "{from}->{to}: {db} dB");
            }
        }
    }

    #[test]
    fn round_trips_keep_frequency_and_level() {
        for (a, b) in [(8000, 48000), (16000, 48000), (48000, 16000), (8000, 16000)] {
            let input = tone(a, 1000.0, 10000.0, a as usize);
            let there = resample_all(a, b, &input);
            let back = resample_all(b, a, &there);
            let f = frequency(steady(&back), a);
            let db = level_db(steady(&back), steady(&input));
            println!("{a}->{b}->{a}: {f:.3} Hz, {db:+.4} dB");
            assert!((f - 1000.0).abs() < 10.0, "{a}->{b}->{a}: {f} Hz");
            assert!(db.abs() < 1.0, "{a}->{b}->{a}: {db} dB");
        }
    }

    #[test]
    fn tones_above_the_new_nyquist_are_attenuated_by_40_db() {
        // Each of these would alias into the output band if not filtered out.
        for (from, to, freq) in [
            (48000, 16000, 10000.0),
            (48000, 16000, 9000.0),
            (48000, 8000, 5000.0),
            (48000, 8000, 12000.0),
            (16000, 8000, 5000.0),
            (16000, 8000, 7000.0),
        ] {
            let input = tone(from, freq, 20000.0, from as usize);
            let out = resample_all(from, to, &input);
            let db = level_db(steady(&out), steady(&input));
            println!("{freq} Hz {from}->{to}: {db:.1} dB");
            assert!(db < -40.0, "{freq} Hz {from}->{to}: only {db} dB");
        }
    }

    #[test]
    fn upsampling_leaves_no_images() {
        // A 3 kHz tone at 8 kHz upsampled to 48 kHz must not come with its image at 5 kHz.
        let input = tone(8000, 3000.0, 20000.0, 8000);
        let out = resample_all(8000, 48000, &input);
        let s = steady(&out);
        let goertzel = |x: &[i16], f: f64| {
            let w = 2.0 * PI * f / 48000.0;
            let (mut re, mut im) = (0.0, 0.0);
            for (n, &v) in x.iter().enumerate() {
                re += f64::from(v) * (w * n as f64).cos();
                im -= f64::from(v) * (w * n as f64).sin();
            }
            (re * re + im * im).sqrt() / x.len() as f64
        };
        let wanted = goertzel(s, 3000.0);
        let image = goertzel(s, 5000.0);
        let db = 20.0 * (image / wanted).log10();
        println!("image at 5 kHz: {db:.1} dB");
        assert!(db < -40.0, "image only {db} dB down");
    }

    #[test]
    fn telephony_filter_keeps_the_band_and_rejects_aliases_and_images_by_60_db() {
        let mut long = Resampler::new(8000, 48000).unwrap();
        let short = Resampler::telephony(8000, 48000).unwrap();
        assert!(
            short.padded * 2 <= long.padded,
            "{} vs {}",
            short.padded,
            long.padded
        );
        long.reset();
        // The telephone band keeps its frequency and level, both ways.
        for freq in [300.0, 1000.0, 3400.0] {
            for (from, to) in [(8000, 48000), (48000, 8000), (8000, 16000), (16000, 8000)] {
                let input = tone(from, freq, 10000.0, from as usize);
                let mut r = Resampler::telephony(from, to).unwrap();
                let mut out = Vec::new();
                r.process(&input, &mut out);
                let f = frequency(steady(&out), to);
                let db = level_db(steady(&out), steady(&input));
                println!("telephony {freq} Hz {from}->{to}: {f:.3} Hz, {db:+.3} dB");
                assert!((f - freq).abs() < freq / 100.0, "{from}->{to}: {f} Hz");
                assert!(db.abs() < 0.5, "{freq} Hz {from}->{to}: {db} dB");
            }
        }
        // Everything that would fold into 0–3.4 kHz is at least 60 dB down.
        for (from, to, freq) in [
            (48000, 8000, 4700.0),
            (48000, 8000, 6000.0),
            (48000, 8000, 12000.0),
            (48000, 16000, 9500.0),
            (16000, 8000, 5000.0),
            (16000, 8000, 7000.0),
        ] {
            let input = tone(from, freq, 20000.0, from as usize);
            let mut r = Resampler::telephony(from, to).unwrap();
            let mut out = Vec::new();
            r.process(&input, &mut out);
            let db = level_db(steady(&out), steady(&input));
            println!("telephony {freq} Hz {from}->{to}: {db:.1} dB");
            assert!(db < -60.0, "{freq} Hz {from}->{to}: only {db} dB");
        }
        // Upsampling: the image of 3 kHz at 5 kHz is at least 60 dB down.
        let input = tone(8000, 3000.0, 20000.0, 8000);
        let mut r = Resampler::telephony(8000, 48000).unwrap();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let s = steady(&out);
        let goertzel = |x: &[i16], f: f64| {
            let w = 2.0 * PI * f / 48000.0;
            let (mut re, mut im) = (0.0, 0.0);
            for (n, &v) in x.iter().enumerate() {
                re += f64::from(v) * (w * n as f64).cos();
                im -= f64::from(v) * (w * n as f64).sin();
            }
            (re * re + im * im).sqrt() / x.len() as f64
        };
        let db = 20.0 * (goertzel(s, 5000.0) / goertzel(s, 3000.0)).log10();
        println!("telephony image at 5 kHz: {db:.1} dB");
        assert!(db < -60.0, "image only {db} dB down");
    }

    /// A small deterministic PRNG for chunk sizes (splitmix64).
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn output_does_not_depend_on_chunk_sizes() {
        let mut seed = 7u64;
        for &from in &RATES {
            for &to in &RATES {
                let mut input = tone(from, 1000.0, 8000.0, from as usize / 2);
                input.extend(tone(from, 3100.0, 12000.0, from as usize / 2));
                let whole = resample_all(from, to, &input);
                let mut r = Resampler::new(from, to).unwrap();
                let mut chunked = Vec::new();
                let mut rest = &input[..];
                while !rest.is_empty() {
                    // Odd sizes from 0 to 321 samples, including empty chunks.
                    let n = ((next(&mut seed) % 161) * 2 + 1).min(rest.len() as u64) as usize;
                    let n = if next(&mut seed).is_multiple_of(17) {
                        0
                    } else {
                        n
                    };
                    r.process(&rest[..n], &mut chunked);
                    rest = &rest[n..];
                }
                assert_eq!(whole, chunked, "{from}->{to}");
            }
        }
    }

    #[test]
    fn reset_forgets_the_stream() {
        let input = tone(16000, 1000.0, 10000.0, 800);
        let mut r = Resampler::new(16000, 48000).unwrap();
        let mut first = Vec::new();
        r.process(&input, &mut first);
        r.reset();
        let mut second = Vec::new();
        r.process(&input, &mut second);
        assert_eq!(first, second);
    }
}
