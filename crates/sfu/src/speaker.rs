//! Active-speaker detection from the RFC 6464 audio-level header extension.
//!
//! The SFU never decodes audio: each packet's header already says how loud it is (0 dBov loudest,
//! -127 silence). Per participant we keep an exponentially smoothed loudness over the last few
//! hundred milliseconds; a participant speaks while it stays above a threshold. The ordered list of
//! speakers is only announced when it changes, at most every `interval`, so a room of chatty
//! people does not flood its signalling.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Loudness (dBov, as sent: 0 loudest, -127 silent) above which a participant counts as speaking.
pub const SPEAKING_THRESHOLD_DBOV: f32 = -50.0;

/// How fast the smoothed level follows a new packet (per packet, 50 packets/s for 20 ms audio).
const ALPHA: f32 = 0.1;

/// Time without audio after which a participant stops counting as speaking.
const SILENCE_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Level {
    smoothed: f32,
    last: Instant,
}

/// Speaker detector for one room, keyed by participant.
#[derive(Debug)]
pub struct SpeakerDetector<K> {
    levels: HashMap<K, Level>,
    announced: Vec<K>,
    last_announce: Option<Instant>,
    interval: Duration,
}

impl<K: Copy + Eq + Hash + Ord> SpeakerDetector<K> {
    /// A detector that announces at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        SpeakerDetector {
            levels: HashMap::new(),
            announced: Vec::new(),
            last_announce: None,
            interval,
        }
    }

    /// One audio packet's level (RFC 6464 `-level`, so 0 is loudest and -127 silent).
    pub fn on_level(&mut self, who: K, dbov: i8, now: Instant) {
        let v = f32::from(dbov.clamp(-127, 0));
        let e = self.levels.entry(who).or_insert(Level {
            smoothed: -127.0,
            last: now,
        });
        e.smoothed += ALPHA * (v - e.smoothed);
        e.last = now;
    }

    /// Forgets a participant (it left).
    pub fn remove(&mut self, who: K) {
        self.levels.remove(&who);
    }

    /// The current speakers, loudest first, if they changed since the last announcement and the
    /// interval has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<K>> {
        if let Some(t) = self.last_announce {
            if now.saturating_duration_since(t) < self.interval {
                return None;
            }
        }
        let mut speaking: Vec<(K, f32)> = self
            .levels
            .iter()
            .filter(|(_, l)| {
                l.smoothed > SPEAKING_THRESHOLD_DBOV
                    && now.saturating_duration_since(l.last) < SILENCE_AFTER
            })
            .map(|(k, l)| (*k, l.smoothed))
            .collect();
        // Loudest first; ties by key so the order is deterministic.
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let list: Vec<K> = speaking.into_iter().map(|(k, _)| k).collect();
        if list == self.announced {
            return None;
        }
        self.announced = list.clone();
        self.last_announce = Some(now);
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loudest_first_and_silence_ends_speaking() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(Duration::from_millis(250));
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for i in 0..50 {
            d.on_level(1u32, -20, ms(i * 20));
            d.on_level(2u32, -35, ms(i * 20));
            d.on_level(3u32, -100, ms(i * 20));
        }
        assert_eq!(d.poll(ms(1000)), Some(vec![1, 2]));
        // Unchanged: nothing to announce.
        assert_eq!(d.poll(ms(1300)), None);
        // Participant 1 goes silent (no packets: DTX); after SILENCE_AFTER it drops out.
        for i in 50..100 {
            d.on_level(2u32, -35, ms(i * 20));
        }
        assert_eq!(d.poll(ms(2000)), Some(vec![2]));
    }

    #[test]
    fn announcements_are_rate_limited() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::new(Duration::from_millis(250));
        for i in 0..30 {
            d.on_level(7u32, -10, t0 + Duration::from_millis(i * 20));
        }
        assert_eq!(d.poll(t0 + Duration::from_millis(600)), Some(vec![7]));
        d.remove(7);
        assert_eq!(d.poll(t0 + Duration::from_millis(700)), None, "too soon");
        assert_eq!(d.poll(t0 + Duration::from_millis(900)), Some(vec![]));
    }
}
