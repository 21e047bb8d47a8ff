//! Audio mixer for conferences: every participant hears everyone but themselves.
//!
//! All participants share one sample rate and frame size. Each frame the mixer picks the K
//! loudest talkers (by the RFC 6464 level of the current frame, with hysteresis so the set does
//! not flap between two similar voices), sums them once into a wide (`i32`) total and gives
//! each of them `total − own contribution`; everybody else hears the plain total. So a room of
//! N costs N level measurements plus K + 1 mixes, not N mixes, and a big room stays intelligible.
//! Gain and mute apply to what a participant sends. Nothing wraps around: the wide sum goes
//! through a soft limiter (transparent below a knee, saturating smoothly towards full scale).

use std::collections::HashMap;
use std::hash::Hash;

use crate::level;

/// Why the mixer refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MixerError {
    /// No participant with that id.
    #[error("unknown participant")]
    UnknownParticipant,
    /// The participant is already in the mix.
    #[error("participant already present")]
    Duplicate,
    /// The frame does not have the mixer's frame size.
    #[error("bad frame size: {got} samples, expected {expected}")]
    FrameSize {
        /// Samples passed.
        got: usize,
        /// The mixer's frame size.
        expected: usize,
    },
}

/// Default number of simultaneous talkers mixed.
pub const DEFAULT_MAX_SPEAKERS: usize = 3;
/// Default hysteresis: a current talker keeps its place against a newcomer up to this many dB
/// louder.
pub const DEFAULT_HYSTERESIS_DB: u8 = 6;
/// Limiter knee: samples up to this magnitude pass unchanged.
pub const LIMITER_KNEE: i32 = 24_576;
/// Largest gain accepted by [`Mixer::set_gain`].
pub const MAX_GAIN: f32 = 16.0;

/// Gain in Q16 fixed point (65536 = 1.0).
const UNITY: i64 = 1 << 16;

#[derive(Debug)]
struct Participant<Id> {
    id: Id,
    gain_q16: i64,
    muted: bool,
    input: Vec<i16>,
    has_input: bool,
    /// Gained input of the current frame, only filled for selected talkers.
    contribution: Vec<i32>,
    level: u8,
    selected: bool,
    /// What this participant hears, only used while selected (others share `common`).
    output: Vec<i16>,
}

/// An N-party mixer at one sample rate and frame size.
///
/// Each frame: [`push`](Self::push) each participant's input (missing input is silence), then
/// [`mix`](Self::mix) and read every participant's output from the iterator.
#[derive(Debug)]
pub struct Mixer<Id> {
    frame: usize,
    max_speakers: usize,
    hysteresis: u8,
    participants: Vec<Participant<Id>>,
    index: HashMap<Id, usize>,
    total: Vec<i32>,
    /// What every non-talker hears: the limited total.
    common: Vec<i16>,
    order: Vec<usize>,
}

/// Soft limiter: identity up to [`LIMITER_KNEE`], then a smooth curve that approaches but never
/// reaches full scale (slope 1 at the knee, so there is no kink).
pub fn soft_limit(x: i32) -> i16 {
    let mag = i64::from(x).abs();
    let knee = i64::from(LIMITER_KNEE);
    let out = if mag <= knee {
        mag
    } else {
        let room = i64::from(i16::MAX) - knee;
        let over = mag - knee;
        knee + over * room / (over + room)
    };
    let out = out.min(i64::from(i16::MAX)) as i16;
    if x < 0 {
        -out
    } else {
        out
    }
}

impl<Id: Copy + Eq + Hash> Mixer<Id> {
    /// A mixer for frames of `frame_samples` samples, mixing up to [`DEFAULT_MAX_SPEAKERS`].
    pub fn new(frame_samples: usize) -> Self {
        Self {
            frame: frame_samples,
            max_speakers: DEFAULT_MAX_SPEAKERS,
            hysteresis: DEFAULT_HYSTERESIS_DB,
            participants: Vec::new(),
            index: HashMap::new(),
            total: vec![0; frame_samples],
            common: vec![0; frame_samples],
            order: Vec::new(),
        }
    }

    /// Sets how many talkers are mixed at once (at least 1).
    pub fn set_max_speakers(&mut self, k: usize) {
        self.max_speakers = k.max(1);
    }

    /// Sets the hysteresis in dB that protects current talkers from being displaced.
    pub fn set_hysteresis_db(&mut self, db: u8) {
        self.hysteresis = db;
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is in the mix.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Adds a participant (unity gain, not muted).
    pub fn add_participant(&mut self, id: Id) -> Result<(), MixerError> {
        if self.index.contains_key(&id) {
            return Err(MixerError::Duplicate);
        }
        self.index.insert(id, self.participants.len());
        self.participants.push(Participant {
            id,
            gain_q16: UNITY,
            muted: false,
            input: vec![0; self.frame],
            has_input: false,
            contribution: vec![0; self.frame],
            level: level::SILENCE,
            selected: false,
            output: vec![0; self.frame],
        });
        Ok(())
    }

    /// Removes a participant.
    pub fn remove(&mut self, id: Id) -> Result<(), MixerError> {
        let i = self
            .index
            .remove(&id)
            .ok_or(MixerError::UnknownParticipant)?;
        self.participants.swap_remove(i);
        if let Some(moved) = self.participants.get(i) {
            self.index.insert(moved.id, i);
        }
        Ok(())
    }

    fn get_mut(&mut self, id: Id) -> Result<&mut Participant<Id>, MixerError> {
        let i = *self.index.get(&id).ok_or(MixerError::UnknownParticipant)?;
        Ok(&mut self.participants[i])
    }

    /// Sets the linear gain applied to what `id` sends (clamped to `0..=MAX_GAIN`).
    pub fn set_gain(&mut self, id: Id, gain: f32) -> Result<(), MixerError> {
        let gain = if gain.is_nan() {
            1.0
        } else {
            gain.clamp(0.0, MAX_GAIN)
        };
        self.get_mut(id)?.gain_q16 = (f64::from(gain) * UNITY as f64).round() as i64;
        Ok(())
    }

    /// Mutes or unmutes what `id` sends; a muted participant still hears the others.
    pub fn set_muted(&mut self, id: Id, muted: bool) -> Result<(), MixerError> {
        self.get_mut(id)?.muted = muted;
        Ok(())
    }

    /// Whether `id` was among the talkers mixed in the last frame.
    pub fn is_speaking(&self, id: Id) -> bool {
        self.index
            .get(&id)
            .is_some_and(|&i| self.participants[i].selected)
    }

    /// Level (RFC 6464, after gain) of `id`'s input in the last mixed frame.
    pub fn level(&self, id: Id) -> Option<u8> {
        self.index.get(&id).map(|&i| self.participants[i].level)
    }

    /// Queues `id`'s input for the next frame. It must be exactly one frame long.
    pub fn push(&mut self, id: Id, pcm: &[i16]) -> Result<(), MixerError> {
        let expected = self.frame;
        if pcm.len() != expected {
            return Err(MixerError::FrameSize {
                got: pcm.len(),
                expected,
            });
        }
        let p = self.get_mut(id)?;
        p.input.copy_from_slice(pcm);
        p.has_input = true;
        Ok(())
    }

    /// Mixes one frame and returns what each participant hears. Inputs are consumed: whoever
    /// does not push before the next call is silent in it.
    pub fn mix(&mut self) -> impl Iterator<Item = (Id, &[i16])> + '_ {
        self.mix_frame();
        let common = &self.common;
        self.participants.iter().map(move |p| {
            (
                p.id,
                if p.selected {
                    &p.output[..]
                } else {
                    &common[..]
                },
            )
        })
    }

    /// Like [`mix`](Self::mix), but hands each output to `f` instead of returning an iterator.
    pub fn mix_into(&mut self, mut f: impl FnMut(Id, &[i16])) {
        for (id, out) in self.mix() {
            f(id, out);
        }
    }

    fn mix_frame(&mut self) {
        // 1. Levels after gain; muted or silent participants are no candidates.
        // `selected` still holds last frame's choice here; the ranking below uses it.
        for p in &mut self.participants {
            p.level = level::SILENCE;
            if p.has_input && !p.muted && p.gain_q16 > 0 {
                let db = level::dbov(&p.input) + 20.0 * (p.gain_q16 as f64 / UNITY as f64).log10();
                p.level = level::level_from_dbov(db);
            }
        }
        // 2. Rank: louder first; current talkers get the hysteresis bonus; ties keep talkers.
        self.order.clear();
        self.order.extend(
            (0..self.participants.len()).filter(|&i| self.participants[i].level < level::SILENCE),
        );
        let parts = &self.participants;
        let hyst = self.hysteresis;
        let key = |i: usize| {
            let p = &parts[i];
            let bonus = if p.selected { hyst } else { 0 };
            (p.level.saturating_sub(bonus), !p.selected, i)
        };
        self.order.sort_unstable_by_key(|&i| key(i));
        self.order.truncate(self.max_speakers);
        for p in &mut self.participants {
            p.selected = false;
        }
        // 3. Wide total of the talkers.
        self.total.iter_mut().for_each(|t| *t = 0);
        for &i in &self.order {
            let p = &mut self.participants[i];
            p.selected = true;
            let g = p.gain_q16;
            for ((c, &s), t) in p.contribution.iter_mut().zip(&p.input).zip(&mut self.total) {
                *c = if g == UNITY {
                    i32::from(s)
                } else {
                    ((i64::from(s) * g) >> 16) as i32
                };
                *t += *c;
            }
        }
        // 4. Outputs: listeners share the total; each talker gets total minus itself.
        for (o, &t) in self.common.iter_mut().zip(&self.total) {
            *o = soft_limit(t);
        }
        for p in &mut self.participants {
            if p.selected {
                for ((o, &t), &c) in p.output.iter_mut().zip(&self.total).zip(&p.contribution) {
                    *o = soft_limit(t - c);
                }
            }
            p.has_input = false;
            p.input.iter_mut().for_each(|s| *s = 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 160;

    fn tone(amplitude: f64, freq: f64) -> Vec<i16> {
        (0..N)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()).round()
                    as i16
            })
            .collect()
    }

    fn outputs(m: &mut Mixer<u32>) -> HashMap<u32, Vec<i16>> {
        m.mix().map(|(id, s)| (id, s.to_vec())).collect()
    }

    #[test]
    fn everyone_hears_everyone_but_themselves() {
        let mut m = Mixer::new(N);
        for id in 1..=3 {
            m.add_participant(id).unwrap();
        }
        // Small distinct amplitudes: sums stay far below the limiter knee, so the check is exact.
        let inputs: HashMap<u32, Vec<i16>> = (1..=3)
            .map(|id| {
                (
                    id,
                    (0..N)
                        .map(|i| (i as i16 % 7 - 3) * id as i16 * 10)
                        .collect(),
                )
            })
            .collect();
        for (&id, pcm) in &inputs {
            m.push(id, pcm).unwrap();
        }
        let out = outputs(&mut m);
        assert_eq!(out.len(), 3);
        for id in 1..=3u32 {
            for s in 0..N {
                let expected: i16 = (1..=3u32).filter(|&o| o != id).map(|o| inputs[&o][s]).sum();
                assert_eq!(out[&id][s], expected, "participant {id} sample {s}");
            }
        }
        // Next frame nobody pushed: silence for all.
        let out = outputs(&mut m);
        assert!(out.values().all(|o| o.iter().all(|&s| s == 0)));
    }

    #[test]
    fn only_the_k_loudest_are_mixed() {
        let mut m = Mixer::new(N);
        for id in 1..=5 {
            m.add_participant(id).unwrap();
        }
        let amps = [(1, 4000.0), (2, 2000.0), (3, 1000.0), (4, 100.0)];
        for &(id, a) in &amps {
            m.push(id, &tone(a, 300.0 + 100.0 * id as f64)).unwrap();
        }
        let out = outputs(&mut m);
        assert!(m.is_speaking(1) && m.is_speaking(2) && m.is_speaking(3));
        assert!(!m.is_speaking(4) && !m.is_speaking(5));
        let sum_of = |ids: &[u32]| -> Vec<i16> {
            let mut v = vec![0i16; N];
            for &id in ids {
                let t = tone(amps[id as usize - 1].1, 300.0 + 100.0 * id as f64);
                v.iter_mut().zip(t).for_each(|(a, b)| *a += b);
            }
            v
        };
        // The quietest (4) is heard by nobody, and 4 and 5 hear the three talkers.
        assert_eq!(out[&1], sum_of(&[2, 3]));
        assert_eq!(out[&2], sum_of(&[1, 3]));
        assert_eq!(out[&3], sum_of(&[1, 2]));
        assert_eq!(out[&4], sum_of(&[1, 2, 3]));
        assert_eq!(out[&5], sum_of(&[1, 2, 3]));
    }

    #[test]
    fn big_room_mixes_three() {
        let mut m = Mixer::new(N);
        for id in 0..100 {
            m.add_participant(id).unwrap();
        }
        // Everybody makes some noise; 17, 42 and 99 are clearly louder.
        for id in 0..100 {
            let a = if [17, 42, 99].contains(&id) {
                3000.0
            } else {
                50.0 + id as f64
            };
            m.push(id, &tone(a, 200.0 + 10.0 * id as f64)).unwrap();
        }
        let out = outputs(&mut m);
        let speaking: Vec<u32> = (0..100).filter(|&id| m.is_speaking(id)).collect();
        assert_eq!(speaking, [17, 42, 99]);
        assert_eq!(out[&0], out[&50], "listeners share one mix");
        assert_ne!(out[&17], out[&0]);
        assert_eq!(m.level(17), Some(level::audio_level(&tone(3000.0, 370.0))));
    }

    #[test]
    fn hysteresis_keeps_current_talkers() {
        let mut m = Mixer::new(N);
        m.set_max_speakers(1);
        m.add_participant(1).unwrap();
        m.add_participant(2).unwrap();
        m.push(1, &tone(1000.0, 400.0)).unwrap();
        m.push(2, &tone(100.0, 500.0)).unwrap();
        let _ = outputs(&mut m);
        assert!(m.is_speaking(1));
        // 2 becomes slightly (3 dB) louder than 1: 1 keeps the floor.
        m.push(1, &tone(1000.0, 400.0)).unwrap();
        m.push(2, &tone(1413.0, 500.0)).unwrap();
        let _ = outputs(&mut m);
        assert!(m.is_speaking(1) && !m.is_speaking(2));
        // 12 dB louder: 2 takes over.
        m.push(1, &tone(1000.0, 400.0)).unwrap();
        m.push(2, &tone(4000.0, 500.0)).unwrap();
        let _ = outputs(&mut m);
        assert!(m.is_speaking(2) && !m.is_speaking(1));
    }

    #[test]
    fn gain_and_mute() {
        let mut m = Mixer::new(N);
        for id in 1..=3 {
            m.add_participant(id).unwrap();
        }
        let a: Vec<i16> = (0..N).map(|i| (i as i16 % 11 - 5) * 40).collect();
        let b: Vec<i16> = (0..N).map(|i| (i as i16 % 5 - 2) * 30).collect();
        m.set_gain(1, 0.5).unwrap();
        m.set_muted(2, true).unwrap();
        m.push(1, &a).unwrap();
        m.push(2, &b).unwrap();
        let out = outputs(&mut m);
        let half: Vec<i16> = a
            .iter()
            .map(|&s| ((i64::from(s) * UNITY / 2) >> 16) as i16)
            .collect();
        assert_eq!(out[&3], half);
        assert_eq!(out[&2], half, "a muted participant still hears");
        assert!(
            out[&1].iter().all(|&s| s == 0),
            "1 hears nobody (2 is muted)"
        );
        m.set_muted(2, false).unwrap();
        m.set_gain(1, 2.0).unwrap();
        m.push(1, &a).unwrap();
        m.push(2, &b).unwrap();
        let out = outputs(&mut m);
        let expect: Vec<i16> = a.iter().zip(&b).map(|(&x, &y)| 2 * x + y).collect();
        assert_eq!(out[&3], expect);
        assert_eq!(out[&1], b);
        assert_eq!(m.set_gain(9, 1.0), Err(MixerError::UnknownParticipant));
        assert_eq!(
            m.push(1, &a[..10]),
            Err(MixerError::FrameSize {
                got: 10,
                expected: N
            })
        );
    }

    #[test]
    fn ten_full_scale_participants_do_not_clip() {
        let mut m = Mixer::new(N);
        m.set_max_speakers(10);
        for id in 0..10 {
            m.add_participant(id).unwrap();
        }
        m.add_participant(100).unwrap();
        let full = tone(32767.0, 1000.0);
        for id in 0..10 {
            m.push(id, &full).unwrap();
        }
        let out = outputs(&mut m);
        for (id, o) in &out {
            let heard = if *id == 100 { 10 } else { 9 };
            for (s, (&y, &x)) in o.iter().zip(&full).enumerate() {
                let sum = i32::from(x) * heard;
                // Same sign as the true sum (no wraparound), limited not wrapped.
                assert_eq!(y.signum(), (sum.signum()) as i16, "id {id} sample {s}");
                assert!(i32::from(y).abs() <= sum.abs());
                if sum.abs() > 100_000 {
                    assert!(i32::from(y).abs() > 31_000, "loud sum stays loud: {y}");
                }
            }
        }
        // The limiter is monotonic and bounded.
        let mut prev = soft_limit(i32::MIN);
        assert!(prev > i16::MIN);
        for x in (i32::MIN / 2..i32::MAX / 2).step_by(9973) {
            let y = soft_limit(x);
            assert!(y >= prev);
            prev = y;
        }
        assert_eq!(soft_limit(LIMITER_KNEE), LIMITER_KNEE as i16);
        assert_eq!(soft_limit(-1234), -1234);
    }

    #[test]
    fn remove_and_readd() {
        let mut m = Mixer::new(N);
        for id in 1..=3 {
            m.add_participant(id).unwrap();
        }
        assert_eq!(m.add_participant(2), Err(MixerError::Duplicate));
        m.remove(1).unwrap();
        assert_eq!(m.remove(1), Err(MixerError::UnknownParticipant));
        m.push(3, &[7; N]).unwrap();
        let out = outputs(&mut m);
        assert_eq!(out.len(), 2);
        assert_eq!(out[&2], vec![7; N]);
        assert_eq!(out[&3], vec![0; N]);
        let mut n = 0;
        m.mix_into(|_, o| {
            n += 1;
            assert_eq!(o.len(), N);
        });
        assert_eq!(n, 2);
    }
}
