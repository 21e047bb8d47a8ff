//! Receiver statistics for one RTP source, computed as RFC 3550 Appendix A prescribes, and the
//! reception report block (§6.4.1) they produce; round-trip time from a report's LSR and DLSR.
//!
//! - A.1: sequence number validation with probation (`MIN_SEQUENTIAL` in-order packets before a
//!   source counts), `MAX_DROPOUT`/`MAX_MISORDER`, and resynchronisation after two sequential
//!   packets past a large jump (a restarted sender).
//! - A.3: extended highest sequence number, cumulative loss (duplicates count as received, so it
//!   can go negative), and the fraction lost over each reporting interval.
//! - A.8: interarrival jitter in timestamp units, in the RFC's integer form (scaled by 16).
//!
//! One deliberate difference from the C of A.1: its probation test `seq == max_seq + 1` is done in
//! `int`, so a source whose probation straddles 65535→0 is restarted once; here it wraps.

use std::time::{Duration, Instant};

use crate::rtcp::{ntp_middle32, ReportBlock};

/// Packets in sequence before a new source is valid (RFC 3550 A.1).
pub const MIN_SEQUENTIAL: u32 = 2;
/// Largest forward jump still taken as loss rather than a restart (A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// Largest backward step still taken as reordering (A.1).
pub const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Reception statistics of one source as seen by one receiver.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    clock_rate: u32,
    started: bool,
    // The `source` struct of A.1.
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    // A.8.
    transit: Option<u32>,
    jitter_q4: u64,
    /// Arrival time origin for converting instants to timestamp units.
    epoch: Option<Instant>,
    /// Middle 32 bits of the last SR's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Statistics for source `ssrc` whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceiverStats {
            ssrc,
            clock_rate,
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            epoch: None,
            last_sr: None,
        }
    }

    /// `init_seq` of A.1.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// `update_seq` of A.1: whether the packet is valid (and counted).
    fn update_seq(&mut self, seq: u16) -> bool {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // Packets must be in sequence during probation.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                // Sequence number wrapped: count another 64K cycle.
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted without telling us.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        } else {
            // Duplicate or reordered packet: counted, as A.1 does.
        }
        self.received = self.received.wrapping_add(1);
        true
    }

    /// Records a packet with sequence number `seq` and RTP timestamp `ts` arriving at `now`.
    /// Returns whether it is valid by A.1 (packets on probation or past a large jump are not).
    pub fn on_packet(&mut self, now: Instant, seq: u16, ts: u32) -> bool {
        let epoch = *self.epoch.get_or_insert(now);
        let d = now.saturating_duration_since(epoch);
        let arrival = (d.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        self.on_packet_at(arrival, seq, ts)
    }

    /// As [`on_packet`](Self::on_packet), with the arrival time already in timestamp units (any
    /// origin, wrapping).
    pub fn on_packet_at(&mut self, arrival: u32, seq: u16, ts: u32) -> bool {
        if !self.update_seq(seq) {
            return false;
        }
        // A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16.
        let transit = arrival.wrapping_sub(ts);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
        true
    }

    /// Records a sender report from this source, with the NTP time it carries, arriving at `now`
    /// (for LSR and DLSR in the next report block).
    pub fn on_sender_report(&mut self, now: Instant, ntp_time: u64) {
        self.last_sr = Some((ntp_middle32(ntp_time), now));
    }

    /// The source.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Valid packets received (A.1 `received`, duplicates included).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Extended highest sequence number received (A.3).
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected since the source became valid (A.3); 0 while on probation.
    pub fn expected(&self) -> u32 {
        if !self.started || self.probation > 0 {
            return 0;
        }
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (A.3), not yet clamped to 24 bits.
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Interarrival jitter in timestamp units (A.8).
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }

    /// The reception report block for this source at `now`. Starts a new interval for the
    /// fraction lost (A.3), so call it once per report sent.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // At most 255: lost_interval <= expected_interval, and = only if none received.
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            None => (0, 0),
            Some((lsr, at)) => (lsr, to_ntp_short(now.saturating_duration_since(at))),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            // Clamp to the 24-bit signed field (A.3).
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// A duration in 1/65536 s (the unit of DLSR and DLRR), saturating.
pub fn to_ntp_short(d: Duration) -> u32 {
    u32::try_from(d.as_nanos() * 65536 / 1_000_000_000).unwrap_or(u32::MAX)
}

/// Round-trip time from a report block received at NTP time `arrival_ntp` (RFC 3550 §6.4.1:
/// A − LSR − DLSR, in the middle 32 bits). `None` if the block carries no LSR, or the result is
/// negative (clocks or a forged block).
pub fn round_trip_time(block: &ReportBlock, arrival_ntp: u64) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = ntp_middle32(arrival_ntp)
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    if rtt > 0x8000_0000 {
        return None;
    }
    Some(Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds sequence numbers with the timestamp following at 160 per packet and ideal arrival.
    fn feed(s: &mut ReceiverStats, seqs: impl IntoIterator<Item = u16>) {
        for seq in seqs {
            let ts = u32::from(seq) * 160;
            s.on_packet_at(ts, seq, ts);
        }
    }

    #[test]
    fn probation_then_counting() {
        let mut s = ReceiverStats::new(1, 8000);
        assert!(!s.on_packet_at(0, 10, 0));
        assert_eq!(s.expected(), 0);
        // Out of sequence during probation restarts it.
        assert!(!s.on_packet_at(0, 20, 0));
        assert!(s.on_packet_at(0, 21, 0));
        assert_eq!((s.expected(), s.received(), s.cumulative_lost()), (1, 1, 0));
        assert_eq!(s.extended_highest_seq(), 21);
    }

    #[test]
    fn wraps_at_65535() {
        let mut s = ReceiverStats::new(1, 8000);
        feed(&mut s, (65530..=65535).chain(0..=5));
        // Base is the second packet (65531).
        assert_eq!(s.extended_highest_seq(), 65536 + 5);
        assert_eq!(s.expected(), 11);
        assert_eq!(s.received(), 11);
        assert_eq!(s.cumulative_lost(), 0);
        // Probation that straddles the wrap (65535 then 0) is not restarted.
        let mut s = ReceiverStats::new(1, 8000);
        assert!(!s.on_packet_at(0, 65535, 0));
        assert!(s.on_packet_at(0, 0, 0));
        assert!(s.on_packet_at(0, 1, 0));
        assert_eq!((s.expected(), s.extended_highest_seq()), (2, 1));
    }

    #[test]
    fn reordering_and_duplicates() {
        let mut s = ReceiverStats::new(1, 8000);
        feed(&mut s, [10, 11, 13, 12, 14]);
        assert_eq!(s.extended_highest_seq(), 14);
        assert_eq!((s.expected(), s.received(), s.cumulative_lost()), (4, 4, 0));
        // A duplicate counts as received, so loss goes negative (A.3).
        feed(&mut s, [14, 15]);
        assert_eq!(
            (s.expected(), s.received(), s.cumulative_lost()),
            (5, 6, -1)
        );
        // Reordering across the wrap does not add a cycle.
        let mut s = ReceiverStats::new(1, 8000);
        feed(&mut s, [65533, 65534, 0, 65535, 1]);
        assert_eq!(s.extended_highest_seq(), 65537);
        assert_eq!((s.expected(), s.received()), (4, 4));
        let b = s.report_block(Instant::now());
        assert_eq!(b.cumulative_lost, 0);
        assert_eq!(b.highest_seq, 65537);
    }

    #[test]
    fn loss_burst_and_fraction_per_interval() {
        let now = Instant::now();
        let mut s = ReceiverStats::new(7, 8000);
        feed(&mut s, (100..=110).chain(121..=130));
        // Base 101, highest 130: 30 expected, 20 received.
        let b = s.report_block(now);
        assert_eq!(b.ssrc, 7);
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.fraction_lost, ((10 << 8) / 30) as u8); // 85
        assert_eq!(b.highest_seq, 130);
        feed(&mut s, 131..=140);
        let b = s.report_block(now);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
        feed(&mut s, (141..=150).filter(|&q| q != 145));
        let b = s.report_block(now);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (25, 11)); // 256 / 10
                                                                    // An empty interval reports no loss.
        assert_eq!(s.report_block(now).fraction_lost, 0);
        // Everything lost in an interval: 255, not a wrap to 0.
        s.on_packet_at(0, 151, 0);
        s.report_block(now);
        s.on_packet_at(0, 200, 0);
        s.received = s.received_prior; // pretend 200 itself was lost too
        assert_eq!(s.report_block(now).fraction_lost, 255);
    }

    #[test]
    fn large_jump_needs_two_packets_then_restarts() {
        let mut s = ReceiverStats::new(1, 8000);
        feed(&mut s, 1000..=1010);
        assert!(!s.on_packet_at(0, 30000, 0));
        assert_eq!(s.extended_highest_seq(), 1010);
        // An unrelated packet does not confirm the jump.
        assert!(!s.on_packet_at(0, 40000, 0));
        assert!(s.on_packet_at(0, 40001, 0));
        assert_eq!(
            (s.expected(), s.received(), s.extended_highest_seq()),
            (1, 1, 40001)
        );
        // A jump of less than MAX_DROPOUT is loss, not a restart.
        assert!(s.on_packet_at(0, 40001 + 2999, 0));
        assert_eq!(s.cumulative_lost(), 2998);
        // Less than MAX_MISORDER behind is reordering; from there on it is a jump.
        assert!(s.on_packet_at(0, 43000 - 99, 0));
        assert!(!s.on_packet_at(0, 43000 - 100, 0));
    }

    #[test]
    fn jitter_on_known_arrivals() {
        // 20 ms packets at 8 kHz (160 ticks). Transit times, after the probation packet and the
        // first valid one: 1000, 1160, 1000, 1000, 1320, so |D| = 160, 160, 0, 320.
        // By hand, J += (|D| - J) / 16:
        //   10, 10 + 150/16 = 19.375, 19.375 - 19.375/16 = 18.164, 18.164 + 301.836/16 = 37.029
        // and the integer form of A.8 (J16 += |D| - ((J16 + 8) >> 4)) gives
        //   160, 310, 291, 593, reported as J16 >> 4 = 10, 19, 18, 37.
        let mut s = ReceiverStats::new(1, 8000);
        let transits = [1000u32, 1000, 1160, 1000, 1000, 1320];
        let mut reported = Vec::new();
        for (i, transit) in transits.iter().enumerate() {
            let ts = i as u32 * 160;
            s.on_packet_at(ts + transit, i as u16, ts);
            reported.push(s.jitter());
        }
        assert_eq!(reported, vec![0, 0, 10, 19, 18, 37]);
        assert_eq!(s.jitter_q4, 593);
    }

    #[test]
    fn jitter_from_instants_and_wrapping_timestamps() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        let ts0 = u32::MAX - 320;
        // Perfectly paced across a timestamp wrap: no jitter.
        for i in 0..10u32 {
            s.on_packet(
                t0 + Duration::from_millis(20 * u64::from(i)),
                i as u16,
                ts0.wrapping_add(160 * i),
            );
        }
        assert_eq!(s.jitter(), 0);
        // Constant |D| of 80 ticks (10 ms) converges to 80.
        for i in 10..400u32 {
            let late = if i % 2 == 0 { 10 } else { 0 };
            s.on_packet(
                t0 + Duration::from_millis(20 * u64::from(i) + late),
                i as u16,
                ts0.wrapping_add(160 * i),
            );
        }
        assert!((79..=81).contains(&s.jitter()), "{}", s.jitter());
    }

    #[test]
    fn rtt_example_from_rfc3550() {
        // §6.4.1, Figure 2: A = 0xb710_8000 (46864.500 s), LSR = 0xb705_2000 (46853.125 s),
        // DLSR = 0x0005_4000 (5.250 s): RTT = 0x0006_2000 = 6.125 s.
        let block = ReportBlock {
            last_sr: 0xb705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..Default::default()
        };
        let arrival = 0xb710_8000u64 << 16;
        assert_eq!(
            round_trip_time(&block, arrival),
            Some(Duration::from_millis(6125))
        );
        assert_eq!(round_trip_time(&ReportBlock::default(), arrival), None);
        // DLSR larger than the elapsed time: negative, refused.
        let bad = ReportBlock {
            last_sr: 0xb710_8000,
            delay_since_last_sr: 1,
            ..Default::default()
        };
        assert_eq!(round_trip_time(&bad, arrival), None);
    }

    #[test]
    fn lsr_and_dlsr_in_report_block() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        let b = s.report_block(t0);
        assert_eq!((b.last_sr, b.delay_since_last_sr), (0, 0));
        s.on_sender_report(t0, 0x1122_3344_5566_7788);
        let b = s.report_block(t0 + Duration::from_millis(1500));
        assert_eq!(b.last_sr, 0x3344_5566);
        assert_eq!(b.delay_since_last_sr, 0x0001_8000);
        // The sender, receiving this block 1.5 s + 40 ms after its SR, measures 40 ms.
        let arrival = 0x1122_3344_5566_7788u64 + ((1540u64 << 32) / 1000);
        let rtt = round_trip_time(&b, arrival).unwrap();
        assert!(
            rtt.abs_diff(Duration::from_millis(40)) < Duration::from_micros(100),
            "{rtt:?}"
        );
    }
}
