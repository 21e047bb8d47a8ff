//! Signal generation and measurement shared by the codec tests.

#![allow(dead_code)]

use std::f64::consts::PI;

/// Sum of sines: `(frequency Hz, amplitude in dBFS)`, `secs` long at `rate`.
pub fn tones(rate: u32, secs: f64, parts: &[(f64, f64)]) -> Vec<i16> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let v: f64 = parts
                .iter()
                .map(|&(f, db)| 32767.0 * 10f64.powf(db / 20.0) * (2.0 * PI * f * t).sin())
                .sum();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Amplitude (peak, in sample units) of the component at `freq` (single-bin DFT over the whole
/// signal, Hann-windowed so neighbouring tones do not leak in).
pub fn amplitude_at(x: &[i16], rate: u32, freq: f64) -> f64 {
    let n = x.len() as f64;
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let win = 0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos();
        re += win * f64::from(s) * (w * i as f64).cos();
        im -= win * f64::from(s) * (w * i as f64).sin();
        wsum += win;
    }
    2.0 * (re * re + im * im).sqrt() / wsum
}

/// The frequency near `around` (±5 %) with the strongest component, to 0.1 Hz: a coarse scan
/// then a fine one.
pub fn peak_near(x: &[i16], rate: u32, around: f64) -> f64 {
    let scan = |lo: f64, hi: f64, step: f64| {
        let mut best = (lo, -1.0);
        let mut f = lo;
        while f <= hi {
            let a = amplitude_at(x, rate, f);
            if a > best.1 {
                best = (f, a);
            }
            f += step;
        }
        best.0
    };
    let coarse = scan(around * 0.95, around * 1.05, around * 0.0025);
    scan(coarse - around * 0.0025, coarse + around * 0.0025, 0.1)
}

/// Frequency from zero crossings (linear interpolation between samples), for single tones.
pub fn zero_crossing_freq(x: &[i16], rate: u32) -> f64 {
    let mut first = None;
    let mut last = 0.0;
    let mut count = 0usize;
    for i in 1..x.len() {
        let (a, b) = (f64::from(x[i - 1]), f64::from(x[i]));
        if a < 0.0 && b >= 0.0 {
            let t = (i - 1) as f64 + (-a) / (b - a);
            if first.is_none() {
                first = Some(t);
            } else {
                count += 1;
            }
            last = t;
        }
    }
    let first = first.expect("no zero crossing");
    count as f64 * f64::from(rate) / (last - first)
}

/// SNR in dB of `decoded` against `reference`, after finding the codec delay (0..=64 samples)
/// that minimises the error. Returns (snr_db, delay).
pub fn snr_db(reference: &[i16], decoded: &[i16]) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for delay in 0..=64 {
        let n = reference.len().min(decoded.len().saturating_sub(delay));
        let (mut sig, mut err) = (0.0, 0.0);
        for i in 0..n {
            let r = f64::from(reference[i]);
            let d = f64::from(decoded[i + delay]);
            sig += r * r;
            err += (d - r) * (d - r);
        }
        let snr = 10.0 * (sig / err.max(1e-9)).log10();
        if snr > best.0 {
            best = (snr, delay);
        }
    }
    best
}

/// dB of an amplitude ratio.
pub fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// Checks that `decoded` carries each of `parts` (frequency Hz, dBFS) at the right frequency
/// (within 1 %) and level (within 1 dB). Returns a description for the log.
pub fn check_tones(what: &str, decoded: &[i16], rate: u32, parts: &[(f64, f64)]) -> String {
    let mut report = String::new();
    for &(f, level) in parts {
        let peak = peak_near(decoded, rate, f);
        let amp = amplitude_at(decoded, rate, peak);
        let expected = 32767.0 * 10f64.powf(level / 20.0);
        let err_db = db(amp / expected);
        report += &format!("{what}: {f} Hz → {peak:.1} Hz, level error {err_db:+.2} dB; ");
        assert!(
            (peak - f).abs() <= f * 0.01,
            "{what}: {f} Hz came out at {peak:.1} Hz"
        );
        assert!(
            err_db.abs() <= 1.0,
            "{what}: {f} Hz level off by {err_db:+.2} dB"
        );
    }
    report
}
