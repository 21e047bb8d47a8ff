//! Audio level of PCM frames (RFC 6464 client-to-mixer audio level) and a simple energy-based
//! voice activity detector.
//!
//! The level is the RMS of the frame relative to the overload point of 16-bit PCM, in dBov,
//! reported as its negation in `0..=127` (0 = as loud as it gets, 127 = silence or below
//! -127 dBov), the encoding of the RFC 6464 header extension. A full-scale square wave is
//! 0 dBov, so a full-scale sine is about -3 dBov.

/// RFC 6464 level of digital silence (and anything at or below -127 dBov).
pub const SILENCE: u8 = 127;

/// The RMS of `pcm` in dBov (0 = full-scale square wave). `-inf` for silence or an empty frame.
pub fn dbov(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return f64::NEG_INFINITY;
    }
    let energy: u64 = pcm
        .iter()
        .map(|&s| (i64::from(s) * i64::from(s)) as u64)
        .sum();
    if energy == 0 {
        return f64::NEG_INFINITY;
    }
    let mean = energy as f64 / pcm.len() as f64;
    // 20·log10(rms / 32768) = 10·log10(mean / 32768²)
    10.0 * (mean / (32768.0 * 32768.0)).log10()
}

/// The RFC 6464 audio level of `pcm`: `-dBov` rounded and clamped to `0..=127`.
pub fn audio_level(pcm: &[i16]) -> u8 {
    level_from_dbov(dbov(pcm))
}

/// Converts a level in dBov to the RFC 6464 `0..=127` encoding.
pub fn level_from_dbov(dbov: f64) -> u8 {
    if dbov.is_nan() || dbov <= -127.0 {
        SILENCE
    } else if dbov >= 0.0 {
        0
    } else {
        (-dbov).round() as u8
    }
}

/// Energy-based voice activity detector with hangover.
///
/// A frame is speech when its level is above an absolute threshold and a margin above a tracked
/// noise floor (which falls fast and rises slowly, so steady background noise is not speech).
/// After the last speech frame the detector stays active for `hangover` more frames, so
/// the gaps between words do not cut the talker off.
#[derive(Debug, Clone)]
pub struct VoiceActivityDetector {
    /// Frames quieter than this `-dBov` (numerically larger) are never speech.
    threshold: u8,
    /// How far above the noise floor, in dB, a frame must be to count as speech.
    margin_db: f64,
    hangover: u32,
    /// `None` until the first frame, which seeds it.
    noise_floor_db: Option<f64>,
    remaining: u32,
    active: bool,
}

impl Default for VoiceActivityDetector {
    /// -50 dBov threshold, 9 dB over the noise floor, 15 frames (300 ms at 20 ms) hangover.
    fn default() -> Self {
        Self::new(50, 9.0, 15)
    }
}

impl VoiceActivityDetector {
    /// A detector with an absolute `threshold` (as `-dBov`, e.g. 50 for -50 dBov), a `margin_db`
    /// above the noise floor and `hangover` frames.
    pub fn new(threshold: u8, margin_db: f64, hangover: u32) -> Self {
        Self {
            threshold: threshold.min(SILENCE),
            margin_db: margin_db.max(0.0),
            hangover,
            noise_floor_db: None,
            remaining: 0,
            active: false,
        }
    }

    /// Feeds one frame; returns whether the talker is active (speech or within the hangover).
    pub fn process(&mut self, pcm: &[i16]) -> bool {
        let db = dbov(pcm).max(-127.0);
        self.process_dbov(db)
    }

    /// Like [`process`](Self::process) for a frame whose level in dBov is already known.
    pub fn process_dbov(&mut self, db: f64) -> bool {
        let db = if db.is_nan() {
            -127.0
        } else {
            db.clamp(-127.0, 0.0)
        };
        let floor = *self.noise_floor_db.get_or_insert(db);
        let speech = db > -f64::from(self.threshold) && db > floor + self.margin_db;
        // Noise floor: follows drops at once, creeps up slowly (at most 0.5 dB per frame, and
        // far slower during speech so a long talker does not become "noise").
        self.noise_floor_db = Some(if db < floor {
            db
        } else if !speech {
            floor + ((db - floor) * 0.05).min(0.5)
        } else {
            floor + 0.02
        });
        if speech {
            self.remaining = self.hangover;
            self.active = true;
        } else if self.remaining > 0 {
            self.remaining -= 1;
        } else {
            self.active = false;
        }
        self.active
    }

    /// Whether the last frame left the detector active.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The tracked noise floor in dBov.
    pub fn noise_floor_dbov(&self) -> f64 {
        self.noise_floor_db.unwrap_or(-127.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f64, freq: f64, rate: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()).round()
                    as i16
            })
            .collect()
    }

    #[test]
    fn full_scale_sine_is_3_dbov() {
        let s = sine(32767.0, 1000.0, 8000.0, 160);
        assert_eq!(audio_level(&s), 3);
        assert!((dbov(&s) + 3.01).abs() < 0.05, "{}", dbov(&s));
    }

    #[test]
    fn known_amplitudes() {
        // -20 dB below full-scale sine → 23; -40 dB → 43.
        assert_eq!(audio_level(&sine(3276.7, 1000.0, 8000.0, 160)), 23);
        assert_eq!(audio_level(&sine(327.67, 1000.0, 8000.0, 160)), 43);
        // Full-scale square wave is 0 dBov.
        let sq: Vec<i16> = (0..160)
            .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        assert_eq!(audio_level(&sq), 0);
    }

    #[test]
    fn silence_is_127() {
        assert_eq!(audio_level(&[0; 160]), SILENCE);
        assert_eq!(audio_level(&[]), SILENCE);
        // A single LSB of noise is about -93 dBov: still representable.
        let lsb: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { 1 } else { -1 }).collect();
        assert_eq!(audio_level(&lsb), 90);
    }

    #[test]
    fn vad_with_hangover() {
        let mut vad = VoiceActivityDetector::new(50, 9.0, 3);
        let quiet = sine(10.0, 300.0, 8000.0, 160); // about -73 dBov
        let loud = sine(8000.0, 300.0, 8000.0, 160); // about -15 dBov
        for _ in 0..10 {
            assert!(!vad.process(&quiet));
        }
        assert!(vad.process(&loud));
        // Hangover: three more frames active after speech stops, then inactive.
        assert!(vad.process(&quiet));
        assert!(vad.process(&quiet));
        assert!(vad.process(&quiet));
        assert!(!vad.process(&quiet));
        assert!(!vad.is_active());
    }

    #[test]
    fn vad_ignores_steady_noise_above_threshold() {
        let mut vad = VoiceActivityDetector::new(60, 9.0, 0);
        let hum = sine(300.0, 100.0, 8000.0, 160); // about -43 dBov, above the threshold
        let mut active = 0;
        for _ in 0..200 {
            if vad.process(&hum) {
                active += 1;
            }
        }
        assert_eq!(active, 0);
        assert!(!vad.process(&hum));
        // Speech well above the hum is detected.
        assert!(vad.process(&sine(10000.0, 300.0, 8000.0, 160)));
    }
}
