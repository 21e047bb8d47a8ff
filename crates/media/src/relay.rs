//! The RTP relay of one call (media anchoring for SIP): two legs, A (faces the caller) and B
//! (faces the callee), each with an RTP and an RTCP flow, and packets relayed between them.
//!
//! Sans-IO: the caller owns the four sockets and the clock. It hands every datagram received to
//! [`RelaySession::handle_rtp`] or [`RelaySession::handle_rtcp`] with the leg whose socket it came
//! in on, and sends the (possibly rewritten in place) bytes where the returned [`Transmit`] says.
//!
//! What the session does:
//! - **Symmetric RTP latching** (NAT traversal, as rtpengine and every SBC do): a leg's
//!   destination is the address from its SDP until a valid packet arrives on that leg's socket;
//!   from then on the source of that packet is *latched* and replies go there. Packets from any
//!   other source are dropped, which also stops injection by a third party. A leg re-latches only
//!   after [`RelaySession::set_remote`] (a re-INVITE), or when its latched source has been silent
//!   for [`RelayConfig::relatch_after`] and another source sends a valid packet (the phone
//!   changed address). RTP and RTCP latch independently, except that a latched RTCP flow moves
//!   only to the host its leg's RTP is latched to (RTCP is normally silent for seconds).
//! - **RTCP**: to the SDP's RTCP address, else RTP port + 1; or on the RTP port when the remote
//!   multiplexes (RFC 5761): RTCP that arrives on the RTP socket is recognised by its packet type
//!   (the second byte is 200–207, i.e. 72–79 once the "marker" bit is masked) and forwarded as
//!   RTCP, and RTCP towards that leg then goes to its RTP address.
//! - **Validation**: RTP version 2 with a header that parses ([`RtpPacket::parse`]), RTCP version
//!   2 with every length field inside the datagram, and at most [`MAX_PACKET_LEN`] bytes; anything
//!   else is dropped and counted, never a panic.
//! - **Continuity**: per direction, the outgoing stream keeps the SSRC, sequence numbers and
//!   timestamps of the first source. While that source never changes packets go out untouched;
//!   after the SSRC changes (a phone restarting its stream after a re-INVITE, another source), the
//!   header is rewritten in place by a [`StreamRewriter`] so the receiver sees one continuous
//!   stream. Within the first packets after a `set_remote` (re-INVITE), a stream that keeps its
//!   SSRC but restarts its sequence numbers (a jump beyond RFC 3550 A.1's limits) is treated the
//!   same way. RTCP from that side then has its SR/RR sender SSRC (and the SR's RTP timestamp)
//!   mapped the same way. Report blocks, SDES, BYE and feedback are left as they are: they name
//!   SSRCs of the *other* direction or the source's own, which a receiver tolerates.
//! - **Telephone events** (RFC 4733) are RTP and are relayed like audio.
//! - **Inactivity**: no RTP in either direction for [`RelayConfig::rtp_timeout`] (on hold:
//!   [`RelayConfig::hold_timeout`]) makes the session inactive.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rtp::{RtpPacket, StreamRewriter, TimestampGap};

/// Largest datagram relayed; larger ones are dropped ([`DropReason::Oversize`]).
pub const MAX_PACKET_LEN: usize = 1500;

/// A leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Faces the caller.
    A,
    /// Faces the callee.
    B,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    /// 0 for A, 1 for B.
    pub fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }

    /// `"a"` or `"b"`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::A => "a",
            Leg::B => "b",
        }
    }
}

/// Which of a leg's two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// The RTP socket (also RTCP when the remote multiplexes).
    Rtp,
    /// The RTCP socket (RTP port + 1).
    Rtcp,
}

impl Flow {
    /// `"rtp"` or `"rtcp"`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Rtp => "rtp",
            Flow::Rtcp => "rtcp",
        }
    }
}

/// Why a datagram was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a valid RTP packet (version, length, header).
    MalformedRtp,
    /// Not a valid RTCP compound (version, length fields).
    MalformedRtcp,
    /// Larger than [`MAX_PACKET_LEN`].
    Oversize,
    /// From a source other than the one latched on that flow (a third party, or the old
    /// address of a phone that moved less than [`RelayConfig::relatch_after`] ago).
    UnlatchedSource,
    /// The other leg has no address yet (no SDP, nothing received).
    NoDestination,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 5] = [
        DropReason::MalformedRtp,
        DropReason::MalformedRtcp,
        DropReason::Oversize,
        DropReason::UnlatchedSource,
        DropReason::NoDestination,
    ];

    /// Position in [`DropReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable label (metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::MalformedRtp => "malformed_rtp",
            DropReason::MalformedRtcp => "malformed_rtcp",
            DropReason::Oversize => "oversize",
            DropReason::UnlatchedSource => "unlatched_source",
            DropReason::NoDestination => "no_destination",
        }
    }
}

/// Where to send a datagram that was accepted. The bytes are the caller's buffer, rewritten in
/// place if needed, with the same length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Send from this leg's socket...
    pub leg: Leg,
    /// ...this one of its two...
    pub flow: Flow,
    /// ...to this address.
    pub destination: SocketAddr,
    /// The datagram is RTCP (possibly received or sent on an RTP socket, RFC 5761).
    pub rtcp: bool,
}

/// Something worth a log line at info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEvent {
    /// A flow latched onto its first source (`previous` = the SDP address it replaced, if any).
    Latched {
        /// Leg.
        leg: Leg,
        /// Flow (RTCP latched on the RTP socket counts as [`Flow::Rtp`]).
        flow: Flow,
        /// The SDP address, if one was known.
        sdp: Option<SocketAddr>,
        /// The latched source.
        addr: SocketAddr,
    },
    /// A flow moved from one source to another.
    Relatched {
        /// Leg.
        leg: Leg,
        /// Flow.
        flow: Flow,
        /// The old source.
        from: SocketAddr,
        /// The new source.
        to: SocketAddr,
        /// Because of `set_remote` (true) or because the old one fell silent (false).
        after_set_remote: bool,
    },
    /// RTCP arrived on a leg's RTP socket: that leg multiplexes RTP and RTCP.
    RtcpMux {
        /// Leg.
        leg: Leg,
    },
    /// The SSRC arriving on a leg changed; the outgoing stream is rewritten from now on.
    SsrcChanged {
        /// Leg the packets arrive on.
        from_leg: Leg,
        /// Previous incoming SSRC.
        old: u32,
        /// New incoming SSRC.
        new: u32,
        /// The SSRC the other leg keeps seeing.
        outgoing: u32,
    },
    /// After a re-INVITE, the stream arriving on a leg restarted its sequence numbers with the
    /// same SSRC; it is rewritten from now on like after an SSRC change.
    StreamRestarted {
        /// Leg the packets arrive on.
        from_leg: Leg,
        /// The (unchanged) SSRC.
        ssrc: u32,
    },
    /// No RTP for the timeout.
    Inactive {
        /// Time since the last RTP packet (or since creation).
        idle: Duration,
        /// The session was on hold.
        on_hold: bool,
    },
}

/// Tunables of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// No RTP in either direction for this long: inactive.
    pub rtp_timeout: Duration,
    /// The same while on hold.
    pub hold_timeout: Duration,
    /// A latched source silent for this long may be replaced by a new one.
    pub relatch_after: Duration,
    /// RTP clock rate used to advance timestamps across a change of source (by wallclock).
    pub clock_rate: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            rtp_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(3600),
            relatch_after: Duration::from_secs(2),
            clock_rate: 8000,
        }
    }
}

/// Counters of one direction (packets arriving on `from` and sent towards the other leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// RTP packets relayed.
    pub rtp_packets: u64,
    /// RTP bytes relayed (whole datagrams).
    pub rtp_bytes: u64,
    /// RTCP datagrams relayed.
    pub rtcp_packets: u64,
    /// RTCP bytes relayed.
    pub rtcp_bytes: u64,
    /// RTP packets whose header was rewritten (after an SSRC change).
    pub rewritten: u64,
    /// Times the incoming stream changed: a new SSRC, or (within the first packets after a
    /// re-INVITE) the same SSRC with restarted sequence numbers.
    pub ssrc_changes: u32,
    /// Last incoming SSRC.
    pub ssrc_in: Option<u32>,
    /// The SSRC the receiver sees.
    pub ssrc_out: Option<u32>,
    /// When the last RTP packet was relayed.
    pub last_rtp: Option<Instant>,
}

/// The addresses of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    /// RTP address from SDP.
    pub sdp_rtp: Option<SocketAddr>,
    /// RTCP address from SDP (`None`: RTP port + 1).
    pub sdp_rtcp: Option<SocketAddr>,
    /// Latched RTP source.
    pub latched_rtp: Option<SocketAddr>,
    /// Latched RTCP source.
    pub latched_rtcp: Option<SocketAddr>,
    /// The remote multiplexes RTCP on its RTP port.
    pub rtcp_mux: bool,
    /// First latches (RTP and RTCP).
    pub latches: u32,
    /// Re-latches (RTP and RTCP).
    pub relatches: u32,
}

/// Everything a CDR or a quality view needs from the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// When the session was created.
    pub created: Instant,
    /// Packets arriving on leg A, sent to B.
    pub a_to_b: DirectionStats,
    /// Packets arriving on leg B, sent to A.
    pub b_to_a: DirectionStats,
    /// Leg A's addresses.
    pub leg_a: LegStats,
    /// Leg B's addresses.
    pub leg_b: LegStats,
    /// Datagrams dropped, by [`DropReason::index`].
    pub dropped: [u64; DropReason::ALL.len()],
    /// On hold.
    pub on_hold: bool,
    /// Inactive (timed out).
    pub inactive: bool,
}

impl RelayStats {
    /// Dropped datagrams for one reason.
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r.index()]
    }

    /// The stats of the direction whose packets arrive on `from`.
    pub fn direction(&self, from: Leg) -> &DirectionStats {
        match from {
            Leg::A => &self.a_to_b,
            Leg::B => &self.b_to_a,
        }
    }

    /// One leg's addresses.
    pub fn leg(&self, leg: Leg) -> &LegStats {
        match leg {
            Leg::A => &self.leg_a,
            Leg::B => &self.leg_b,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    addr: Option<SocketAddr>,
    last: Option<Instant>,
    /// `set_remote` cleared it: the next latch is a re-latch after a re-INVITE.
    reset: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default)]
struct LegState {
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    rtp: Latch,
    rtcp: Latch,
    rtcp_mux: bool,
    latches: u32,
    relatches: u32,
}

/// Per direction: the rewriter that keeps the outgoing stream continuous.
#[derive(Debug, Clone, Default)]
struct Direction {
    stats: DirectionStats,
    rewriter: Option<StreamRewriter>,
    /// Incoming SSRC → (outgoing timestamp − incoming timestamp), for the SR's RTP time; only
    /// set once the stream is being rewritten.
    ts_offset: Option<(u32, u32)>,
    /// Last sequence number of the current incoming source.
    last_seq: Option<u16>,
    /// Packets left during which a jump of the sequence number with an unchanged SSRC is taken
    /// as a restarted stream (armed by `set_remote`, i.e. a re-INVITE).
    restart_watch: u8,
}

/// The relay state of one call. See the module documentation.
#[derive(Debug, Clone)]
pub struct RelaySession {
    cfg: RelayConfig,
    created: Instant,
    legs: [LegState; 2],
    dirs: [Direction; 2],
    dropped: [u64; DropReason::ALL.len()],
    on_hold: bool,
    inactive: bool,
    /// Last RTP relayed in either direction, or creation, or the last `set_hold`.
    last_activity: Instant,
    events: Vec<RelayEvent>,
}

/// RFC 3550 A.1: a forward jump beyond this, or a backward one beyond [`MAX_MISORDER`], is not
/// the same stream going on.
const MAX_DROPOUT: u16 = 3000;
/// See [`MAX_DROPOUT`].
const MAX_MISORDER: u16 = 100;
/// Packets after `set_remote` during which a restarted stream with the same SSRC is detected.
const RESTART_WATCH: u8 = 50;

/// Events kept when nobody polls them: the oldest are dropped beyond this.
const MAX_EVENTS: usize = 64;

impl RelaySession {
    /// A session created at `now`, with no remote addresses yet.
    pub fn new(now: Instant, cfg: RelayConfig) -> Self {
        RelaySession {
            cfg,
            created: now,
            legs: Default::default(),
            dirs: Default::default(),
            dropped: [0; DropReason::ALL.len()],
            on_hold: false,
            inactive: false,
            last_activity: now,
            events: Vec::new(),
        }
    }

    /// The addresses from a leg's SDP (`c=`/`m=` and `a=rtcp`; `rtcp` `None` means RTP port + 1,
    /// and `Some(rtp)` means the remote multiplexes). Called again after a re-INVITE: the leg's
    /// latches are released so the next valid packet latches again.
    pub fn set_remote(&mut self, leg: Leg, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        let l = &mut self.legs[leg.index()];
        l.sdp_rtp = Some(rtp);
        l.sdp_rtcp = rtcp;
        l.rtcp_mux = rtcp == Some(rtp);
        for latch in [&mut l.rtp, &mut l.rtcp] {
            if let Some(a) = latch.addr.take() {
                latch.reset = Some(a);
            }
            latch.last = None;
        }
        self.dirs[leg.index()].restart_watch = RESTART_WATCH;
    }

    /// Hold (re-INVITE with `sendonly`/`inactive`): the longer inactivity timeout applies. The
    /// idle clock restarts at `now`.
    pub fn set_hold(&mut self, now: Instant, on_hold: bool) {
        self.on_hold = on_hold;
        self.last_activity = self.last_activity.max(now);
    }

    /// The RTP clock rate of the call's codec, once the SDP is negotiated (used only to advance
    /// timestamps by wallclock across a change of source).
    pub fn set_clock_rate(&mut self, rate: u32) {
        self.cfg.clock_rate = rate.max(1);
    }

    /// A datagram received on `leg`'s RTP socket from `src`. Returns where to send `buf` (which
    /// may have been rewritten in place) or why it was dropped. RTCP multiplexed on the RTP
    /// socket (RFC 5761) is recognised and relayed as RTCP.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        leg: Leg,
        src: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        let r = self.rtp_inner(now, leg, src, buf);
        self.count(r)
    }

    /// A datagram received on `leg`'s RTCP socket from `src`.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        leg: Leg,
        src: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        let r = self.rtcp_inner(now, leg, Flow::Rtcp, src, buf);
        self.count(r)
    }

    fn count(&mut self, r: Result<Transmit, DropReason>) -> Result<Transmit, DropReason> {
        if let Err(reason) = r {
            self.dropped[reason.index()] += 1;
        }
        r
    }

    fn rtp_inner(
        &mut self,
        now: Instant,
        leg: Leg,
        src: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        if buf.len() > MAX_PACKET_LEN {
            return Err(DropReason::Oversize);
        }
        if is_muxed_rtcp(buf) {
            return self.rtcp_inner(now, leg, Flow::Rtp, src, buf);
        }
        let p = RtpPacket::parse(buf).map_err(|_| DropReason::MalformedRtp)?;
        let (ssrc, seq, ts) = (p.ssrc, p.sequence_number, p.timestamp);
        self.latch(now, leg, Flow::Rtp, src)?;
        let out = self.rtp_destination(leg.other())?;

        let clock_rate = self.cfg.clock_rate;
        let d = &mut self.dirs[leg.index()];
        let rw = d
            .rewriter
            .get_or_insert_with(|| StreamRewriter::new(ssrc, clock_rate, TimestampGap::Wallclock));
        if d.restart_watch > 0 {
            d.restart_watch -= 1;
            if let (Some(old), Some(last)) = (d.stats.ssrc_in, d.last_seq) {
                let ahead = seq.wrapping_sub(last);
                let behind = last.wrapping_sub(seq);
                if old == ssrc && ahead > MAX_DROPOUT && behind > MAX_MISORDER {
                    // Same SSRC, numbers from elsewhere: the phone restarted its stream.
                    rw.reset_source();
                    d.restart_watch = 0;
                    d.stats.ssrc_changes += 1;
                    push_event(
                        &mut self.events,
                        RelayEvent::StreamRestarted {
                            from_leg: leg,
                            ssrc,
                        },
                    );
                }
            }
        }
        let r = rw.rewrite(now, ssrc, seq, ts);
        let first = d.stats.ssrc_in.is_none();
        if let Some(old) = d.stats.ssrc_in {
            if old != ssrc && r.switched {
                d.stats.ssrc_changes += 1;
                let ev = RelayEvent::SsrcChanged {
                    from_leg: leg,
                    old,
                    new: ssrc,
                    outgoing: r.ssrc,
                };
                push_event(&mut self.events, ev);
            }
        }
        if r.switched || first {
            d.stats.ssrc_in = Some(ssrc);
        }
        if d.stats.ssrc_in == Some(ssrc) {
            d.last_seq = Some(seq);
        }
        d.stats.ssrc_out = Some(r.ssrc);
        if (r.ssrc, r.sequence_number, r.timestamp) != (ssrc, seq, ts) {
            buf[2..4].copy_from_slice(&r.sequence_number.to_be_bytes());
            buf[4..8].copy_from_slice(&r.timestamp.to_be_bytes());
            buf[8..12].copy_from_slice(&r.ssrc.to_be_bytes());
            if r.switched && !first {
                // First packet of a new source: a new talkspurt (RFC 3551 §4.1), which lets
                // the receiver's jitter buffer resynchronise.
                buf[1] |= 0x80;
            }
            d.stats.rewritten += 1;
            d.ts_offset = Some((ssrc, r.timestamp.wrapping_sub(ts)));
        } else {
            d.ts_offset = None;
        }
        d.stats.rtp_packets += 1;
        d.stats.rtp_bytes += buf.len() as u64;
        d.stats.last_rtp = Some(now);
        self.last_activity = self.last_activity.max(now);
        Ok(Transmit {
            leg: leg.other(),
            flow: Flow::Rtp,
            destination: out,
            rtcp: false,
        })
    }

    fn rtcp_inner(
        &mut self,
        now: Instant,
        leg: Leg,
        flow: Flow,
        src: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        if buf.len() > MAX_PACKET_LEN {
            return Err(DropReason::Oversize);
        }
        if !valid_rtcp(buf) {
            return Err(DropReason::MalformedRtcp);
        }
        self.latch(now, leg, flow, src)?;
        if flow == Flow::Rtp && !self.legs[leg.index()].rtcp_mux {
            self.legs[leg.index()].rtcp_mux = true;
            push_event(&mut self.events, RelayEvent::RtcpMux { leg });
        }
        let (out_flow, dest) = self.rtcp_destination(leg.other())?;
        let d = &self.dirs[leg.index()];
        if let (Some(rw), Some((in_ssrc, ts_off))) = (&d.rewriter, d.ts_offset) {
            rewrite_rtcp_sender(buf, in_ssrc, rw.ssrc(), ts_off);
        }
        let d = &mut self.dirs[leg.index()];
        d.stats.rtcp_packets += 1;
        d.stats.rtcp_bytes += buf.len() as u64;
        Ok(Transmit {
            leg: leg.other(),
            flow: out_flow,
            destination: dest,
            rtcp: true,
        })
    }

    /// Applies the latching rule to a valid packet; `Err` if it must be dropped.
    fn latch(
        &mut self,
        now: Instant,
        leg: Leg,
        flow: Flow,
        src: SocketAddr,
    ) -> Result<(), DropReason> {
        let relatch_after = self.cfg.relatch_after;
        let l = &mut self.legs[leg.index()];
        let sdp = match flow {
            Flow::Rtp => l.sdp_rtp,
            Flow::Rtcp => l.sdp_rtcp.or(l.sdp_rtp.map(plus_one)),
        };
        let rtp_ip = l.rtp.addr.map(|a| a.ip());
        let latch = match flow {
            Flow::Rtp => &mut l.rtp,
            Flow::Rtcp => &mut l.rtcp,
        };
        match latch.addr {
            Some(a) if a == src => {
                latch.last = Some(now);
                Ok(())
            }
            Some(a) => {
                let silent = latch
                    .last
                    .is_none_or(|t| now.saturating_duration_since(t) >= relatch_after);
                // RTCP comes every few seconds, so "silent for 2 s" is its normal state: it may
                // move only to the host RTP is latched to (the phone moved, RTP followed).
                let trusted = flow == Flow::Rtp || rtp_ip.is_none_or(|ip| ip == src.ip());
                if !silent || !trusted {
                    return Err(DropReason::UnlatchedSource);
                }
                latch.addr = Some(src);
                latch.last = Some(now);
                l.relatches += 1;
                push_event(
                    &mut self.events,
                    RelayEvent::Relatched {
                        leg,
                        flow,
                        from: a,
                        to: src,
                        after_set_remote: false,
                    },
                );
                Ok(())
            }
            None => {
                latch.addr = Some(src);
                latch.last = Some(now);
                let ev = match latch.reset.take() {
                    Some(from) => {
                        l.relatches += 1;
                        RelayEvent::Relatched {
                            leg,
                            flow,
                            from,
                            to: src,
                            after_set_remote: true,
                        }
                    }
                    None => {
                        l.latches += 1;
                        RelayEvent::Latched {
                            leg,
                            flow,
                            sdp,
                            addr: src,
                        }
                    }
                };
                push_event(&mut self.events, ev);
                Ok(())
            }
        }
    }

    fn rtp_destination(&self, leg: Leg) -> Result<SocketAddr, DropReason> {
        let l = &self.legs[leg.index()];
        l.rtp.addr.or(l.sdp_rtp).ok_or(DropReason::NoDestination)
    }

    fn rtcp_destination(&self, leg: Leg) -> Result<(Flow, SocketAddr), DropReason> {
        let l = &self.legs[leg.index()];
        if l.rtcp_mux {
            return Ok((Flow::Rtp, self.rtp_destination(leg)?));
        }
        l.rtcp
            .addr
            .or(l.sdp_rtcp)
            .or(l.sdp_rtp.map(plus_one))
            .or(l.rtp.addr.map(plus_one))
            .map(|a| (Flow::Rtcp, a))
            .ok_or(DropReason::NoDestination)
    }

    /// When [`RelaySession::handle_timeout`] should next be called (the inactivity deadline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.inactive {
            None
        } else {
            Some(self.last_activity + self.timeout())
        }
    }

    fn timeout(&self) -> Duration {
        if self.on_hold {
            self.cfg.hold_timeout
        } else {
            self.cfg.rtp_timeout
        }
    }

    /// Advances time: marks the session inactive once the timeout has passed (an
    /// [`RelayEvent::Inactive`] is queued once).
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.inactive && self.inactive_at(now) {
            self.inactive = true;
            push_event(
                &mut self.events,
                RelayEvent::Inactive {
                    idle: now.saturating_duration_since(self.last_activity),
                    on_hold: self.on_hold,
                },
            );
        }
    }

    fn inactive_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_activity) >= self.timeout()
    }

    /// Whether no RTP has been relayed in either direction for the applicable timeout.
    pub fn inactive(&self, now: Instant) -> bool {
        self.inactive || self.inactive_at(now)
    }

    /// The next log-worthy event, oldest first.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// A snapshot of the counters and addresses.
    pub fn stats(&self) -> RelayStats {
        let leg = |l: &LegState| LegStats {
            sdp_rtp: l.sdp_rtp,
            sdp_rtcp: l.sdp_rtcp,
            latched_rtp: l.rtp.addr,
            latched_rtcp: l.rtcp.addr,
            rtcp_mux: l.rtcp_mux,
            latches: l.latches,
            relatches: l.relatches,
        };
        RelayStats {
            created: self.created,
            a_to_b: self.dirs[0].stats,
            b_to_a: self.dirs[1].stats,
            leg_a: leg(&self.legs[0]),
            leg_b: leg(&self.legs[1]),
            dropped: self.dropped,
            on_hold: self.on_hold,
            inactive: self.inactive,
        }
    }
}

fn push_event(events: &mut Vec<RelayEvent>, ev: RelayEvent) {
    if events.len() >= MAX_EVENTS {
        events.remove(0);
    }
    events.push(ev);
}

fn plus_one(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

/// RFC 5761 §4: on a multiplexed port, RTCP is told from RTP by the second byte, which is an
/// RTCP packet type (200 SR … 207 XR) where RTP has marker + payload type (72–79 masked).
fn is_muxed_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (200..=207).contains(&buf[1])
}

/// A cheap structural check of a compound RTCP datagram without allocating: at least one packet,
/// version 2 everywhere, a first packet type in 192–223 (RFC 5761), every length field inside the
/// datagram and the lengths adding up to it exactly.
fn valid_rtcp(buf: &[u8]) -> bool {
    if buf.len() < 8 || !(192..=223).contains(&buf[1]) {
        return false;
    }
    let mut pos = 0;
    while pos < buf.len() {
        if buf.len() - pos < 4 || buf[pos] >> 6 != 2 {
            return false;
        }
        let len = (usize::from(u16::from_be_bytes([buf[pos + 2], buf[pos + 3]])) + 1) * 4;
        if len > buf.len() - pos {
            return false;
        }
        pos += len;
    }
    true
}

/// In each SR and RR of the compound whose sender SSRC is `from`, writes `to` (and shifts an SR's
/// RTP timestamp by `ts_offset`). The compound was validated by [`valid_rtcp`].
fn rewrite_rtcp_sender(buf: &mut [u8], from: u32, to: u32, ts_offset: u32) {
    let mut pos = 0;
    while pos + 8 <= buf.len() {
        let len = (usize::from(u16::from_be_bytes([buf[pos + 2], buf[pos + 3]])) + 1) * 4;
        let pt = buf[pos + 1];
        if (pt == 200 || pt == 201)
            && u32::from_be_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]) == from
        {
            buf[pos + 4..pos + 8].copy_from_slice(&to.to_be_bytes());
            if pt == 200 && len >= 20 {
                let at = pos + 16;
                let ts = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                buf[at..at + 4].copy_from_slice(&ts.wrapping_add(ts_offset).to_be_bytes());
            }
        }
        pos += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{self, ReceiverReport, RtcpPacket, SenderReport};
    use crate::rtp::RtpBuilder;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rtp(ssrc: u32, seq: u16, ts: u32, pt: u8) -> Vec<u8> {
        RtpBuilder {
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            payload: vec![0xD5; 160],
            ..Default::default()
        }
        .to_vec()
        .unwrap()
    }

    fn sr(ssrc: u32, rtp_time: u32) -> Vec<u8> {
        let mut v = Vec::new();
        rtcp::write_compound(
            &[
                RtcpPacket::SenderReport(SenderReport {
                    ssrc,
                    ntp_time: 1 << 32,
                    rtp_time,
                    packet_count: 1,
                    octet_count: 160,
                    ..Default::default()
                }),
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 77,
                    ..Default::default()
                }),
            ],
            &mut v,
        )
        .unwrap();
        v
    }

    const A_SDP: &str = "10.0.0.1:4000";
    const B_SDP: &str = "10.0.0.2:6000";

    fn session(t0: Instant) -> RelaySession {
        let mut s = RelaySession::new(t0, RelayConfig::default());
        s.set_remote(Leg::A, addr(A_SDP), None);
        s.set_remote(Leg::B, addr(B_SDP), None);
        s
    }

    fn events(s: &mut RelaySession) -> Vec<RelayEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn relays_both_ways_untouched_to_sdp_then_latched() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let nat_a = addr("203.0.113.5:31000");
        // Before anything arrives on B, A's packets go to B's SDP address.
        let mut p = rtp(1, 10, 1000, 0);
        let orig = p.clone();
        let t = s.handle_rtp(t0, Leg::A, nat_a, &mut p).unwrap();
        assert_eq!(
            t,
            Transmit {
                leg: Leg::B,
                flow: Flow::Rtp,
                destination: addr(B_SDP),
                rtcp: false
            }
        );
        assert_eq!(p, orig, "zero-copy path leaves the packet untouched");
        // B answers from its SDP address; it goes to A's NATed source, not A's SDP address.
        let mut q = rtp(2, 500, 9000, 8);
        let t = s.handle_rtp(t0, Leg::B, addr(B_SDP), &mut q).unwrap();
        assert_eq!(t.destination, nat_a);
        assert_eq!(t.leg, Leg::A);
        let st = s.stats();
        assert_eq!(st.leg_a.latched_rtp, Some(nat_a));
        assert_eq!(st.leg_b.latched_rtp, Some(addr(B_SDP)));
        assert_eq!((st.a_to_b.rtp_packets, st.b_to_a.rtp_packets), (1, 1));
        assert_eq!(st.a_to_b.rtp_bytes, orig.len() as u64);
        assert_eq!(st.leg_a.latches, 1);
        let ev = events(&mut s);
        assert!(ev.contains(&RelayEvent::Latched {
            leg: Leg::A,
            flow: Flow::Rtp,
            sdp: Some(addr(A_SDP)),
            addr: nat_a
        }));
    }

    #[test]
    fn third_party_is_dropped_then_relatch_after_silence() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let phone = addr("203.0.113.5:31000");
        let evil = addr("198.51.100.9:5555");
        s.handle_rtp(t0, Leg::A, phone, &mut rtp(1, 1, 0, 0))
            .unwrap();
        let t1 = t0 + Duration::from_millis(20);
        assert_eq!(
            s.handle_rtp(t1, Leg::A, evil, &mut rtp(9, 1, 0, 0)),
            Err(DropReason::UnlatchedSource)
        );
        // Same for RTCP on its own flow once latched.
        s.handle_rtcp(t1, Leg::A, plus_one(phone), &mut sr(1, 0))
            .unwrap();
        assert_eq!(
            s.handle_rtcp(t1, Leg::A, evil, &mut sr(9, 0)),
            Err(DropReason::UnlatchedSource)
        );
        assert_eq!(s.stats().dropped(DropReason::UnlatchedSource), 2);
        // The phone keeps talking: the third party never gets in.
        let t2 = t0 + Duration::from_millis(1900);
        s.handle_rtp(t2, Leg::A, phone, &mut rtp(1, 2, 160, 0))
            .unwrap();
        let t3 = t0 + Duration::from_millis(3000);
        assert!(s
            .handle_rtp(t3, Leg::A, evil, &mut rtp(9, 2, 0, 0))
            .is_err());
        // Phone silent for 2 s, then a new source: the phone moved (new NAT binding).
        let moved = addr("203.0.113.5:31002");
        let t4 = t2 + Duration::from_secs(2);
        s.handle_rtp(t4, Leg::A, moved, &mut rtp(1, 3, 320, 0))
            .unwrap();
        assert_eq!(s.stats().leg_a.latched_rtp, Some(moved));
        assert_eq!(s.stats().leg_a.relatches, 1);
        // Replies follow it.
        let t = s
            .handle_rtp(t4, Leg::B, addr(B_SDP), &mut rtp(2, 1, 0, 0))
            .unwrap();
        assert_eq!(t.destination, moved);
        assert!(events(&mut s).contains(&RelayEvent::Relatched {
            leg: Leg::A,
            flow: Flow::Rtp,
            from: phone,
            to: moved,
            after_set_remote: false
        }));
        // RTCP, silent for seconds as usual, is not taken over by the third party...
        let t5 = t4 + Duration::from_secs(5);
        assert_eq!(
            s.handle_rtcp(t5, Leg::A, evil, &mut sr(9, 0)),
            Err(DropReason::UnlatchedSource)
        );
        // ...but follows the phone to its new address.
        s.handle_rtcp(t5, Leg::A, plus_one(moved), &mut sr(1, 0))
            .unwrap();
        assert_eq!(s.stats().leg_a.latched_rtcp, Some(plus_one(moved)));
    }

    #[test]
    fn relatch_after_set_remote() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let old = addr("203.0.113.5:31000");
        let new = addr("203.0.113.77:40000");
        s.handle_rtp(t0, Leg::B, old, &mut rtp(1, 1, 0, 0)).unwrap();
        let t1 = t0 + Duration::from_millis(100);
        assert!(s.handle_rtp(t1, Leg::B, new, &mut rtp(1, 2, 0, 0)).is_err());
        // Re-INVITE: new SDP address; until a packet arrives, it is the destination.
        s.set_remote(Leg::B, addr("203.0.113.77:40000"), None);
        let t = s
            .handle_rtp(t1, Leg::A, addr(A_SDP), &mut rtp(5, 1, 0, 0))
            .unwrap();
        assert_eq!(t.destination, new);
        // The new source latches at once, without waiting for the old one to fall silent.
        s.handle_rtp(t1, Leg::B, new, &mut rtp(1, 3, 0, 0)).unwrap();
        assert_eq!(s.stats().leg_b.latched_rtp, Some(new));
        assert!(events(&mut s).contains(&RelayEvent::Relatched {
            leg: Leg::B,
            flow: Flow::Rtp,
            from: old,
            to: new,
            after_set_remote: true
        }));
        // And the old address is now the stranger.
        assert_eq!(
            s.handle_rtp(t1, Leg::B, old, &mut rtp(1, 4, 0, 0)),
            Err(DropReason::UnlatchedSource)
        );
    }

    #[test]
    fn rtcp_goes_to_port_plus_one_or_explicit_address() {
        let t0 = Instant::now();
        let mut s = RelaySession::new(t0, RelayConfig::default());
        s.set_remote(Leg::A, addr(A_SDP), None);
        s.set_remote(Leg::B, addr(B_SDP), Some(addr("10.0.0.2:7777")));
        let t = s
            .handle_rtcp(t0, Leg::A, addr("10.0.0.1:4001"), &mut sr(1, 0))
            .unwrap();
        assert_eq!(
            (t.leg, t.flow, t.destination, t.rtcp),
            (Leg::B, Flow::Rtcp, addr("10.0.0.2:7777"), true)
        );
        let t = s
            .handle_rtcp(t0, Leg::B, addr("10.0.0.2:7777"), &mut sr(2, 0))
            .unwrap();
        assert_eq!((t.flow, t.destination), (Flow::Rtcp, addr("10.0.0.1:4001")));
        assert_eq!(s.stats().a_to_b.rtcp_packets, 1);
    }

    #[test]
    fn rtcp_mux_is_detected_on_the_rtp_socket() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let a = addr("203.0.113.5:31000");
        s.handle_rtp(t0, Leg::A, a, &mut rtp(1, 1, 0, 0)).unwrap();
        // RTCP arrives on A's RTP socket: forwarded as RTCP to B's RTCP address.
        let mut r = sr(1, 0);
        let t = s.handle_rtp(t0, Leg::A, a, &mut r).unwrap();
        assert_eq!(
            (t.leg, t.flow, t.destination, t.rtcp),
            (Leg::B, Flow::Rtcp, addr("10.0.0.2:6001"), true)
        );
        assert!(s.stats().leg_a.rtcp_mux);
        assert!(events(&mut s).contains(&RelayEvent::RtcpMux { leg: Leg::A }));
        // B's RTCP to A now goes to A's RTP address, from A's RTP socket.
        let t = s
            .handle_rtcp(t0, Leg::B, addr("10.0.0.2:6001"), &mut sr(2, 0))
            .unwrap();
        assert_eq!((t.leg, t.flow, t.destination), (Leg::A, Flow::Rtp, a));
        // An RTP packet with marker set and PT 72..79 range does not exist on a muxed port;
        // ordinary marker + PT 0 (0x80) is RTP.
        let mut m = rtp(1, 2, 160, 0);
        m[1] |= 0x80;
        assert!(!s.handle_rtp(t0, Leg::A, a, &mut m).unwrap().rtcp);
        // SDP a=rtcp-mux: rtcp == rtp.
        let mut s2 = RelaySession::new(t0, RelayConfig::default());
        s2.set_remote(Leg::B, addr(B_SDP), Some(addr(B_SDP)));
        let t = s2.handle_rtcp(t0, Leg::A, a, &mut sr(1, 0)).unwrap();
        assert_eq!((t.flow, t.destination), (Flow::Rtp, addr(B_SDP)));
    }

    #[test]
    fn ssrc_change_keeps_the_output_continuous() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let a = addr(A_SDP);
        let mut last = None;
        for i in 0..5u16 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            let mut p = rtp(0x1111, 100 + i, 8000 + 160 * u32::from(i), 0);
            let orig = p.clone();
            s.handle_rtp(now, Leg::A, a, &mut p).unwrap();
            assert_eq!(p, orig);
            last = Some(RtpPacket::parse(&p).unwrap().timestamp);
        }
        // The phone restarts its stream (re-INVITE): new SSRC, unrelated numbers, 20 ms later.
        let now = t0 + Duration::from_millis(100);
        let mut p = rtp(0x2222, 7, 123_456, 0);
        s.handle_rtp(now, Leg::A, a, &mut p).unwrap();
        let q = RtpPacket::parse(&p).unwrap();
        assert_eq!(q.ssrc, 0x1111);
        assert_eq!(q.sequence_number, 105);
        assert_eq!(q.timestamp, last.unwrap() + 160);
        assert!(q.marker, "new talkspurt marked");
        assert_eq!(q.payload, &[0xD5; 160][..]);
        // Next packet of the new source: +1, +160.
        let mut p2 = rtp(0x2222, 8, 123_616, 0);
        s.handle_rtp(now + Duration::from_millis(20), Leg::A, a, &mut p2)
            .unwrap();
        let q2 = RtpPacket::parse(&p2).unwrap();
        assert_eq!(
            (q2.ssrc, q2.sequence_number, q2.timestamp, q2.marker),
            (0x1111, 106, last.unwrap() + 320, false)
        );
        let st = s.stats();
        assert_eq!(st.a_to_b.ssrc_changes, 1);
        assert_eq!(st.a_to_b.ssrc_in, Some(0x2222));
        assert_eq!(st.a_to_b.ssrc_out, Some(0x1111));
        assert_eq!(st.a_to_b.rewritten, 2);
        assert!(events(&mut s).contains(&RelayEvent::SsrcChanged {
            from_leg: Leg::A,
            old: 0x1111,
            new: 0x2222,
            outgoing: 0x1111
        }));
        // RTCP of the new source: SR sender SSRC and RTP time follow; the RR of another SSRC
        // in the compound is left alone.
        let mut r = sr(0x2222, 123_616);
        s.handle_rtcp(now, Leg::A, addr("10.0.0.1:4001"), &mut r)
            .unwrap();
        let pk = rtcp::parse_compound(&r).unwrap();
        match &pk[0] {
            RtcpPacket::SenderReport(x) => {
                assert_eq!(x.ssrc, 0x1111);
                assert_eq!(x.rtp_time, last.unwrap() + 320);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&pk[1], RtcpPacket::ReceiverReport(x) if x.ssrc == 77));
        // The other direction was never touched.
        let mut b = rtp(0x3333, 1, 1, 0);
        let orig = b.clone();
        s.handle_rtp(now, Leg::B, addr(B_SDP), &mut b).unwrap();
        assert_eq!(b, orig);
    }

    #[test]
    fn restart_with_the_same_ssrc_after_reinvite_is_continuous() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let a = addr(A_SDP);
        for i in 0..3u16 {
            s.handle_rtp(t0, Leg::A, a, &mut rtp(5, 1000 + i, 160 * u32::from(i), 0))
                .unwrap();
        }
        // Without a re-INVITE, a jump is just loss: passed through.
        let mut p = rtp(5, 1500, 80_000, 0);
        let orig = p.clone();
        s.handle_rtp(t0, Leg::A, a, &mut p).unwrap();
        assert_eq!(p, orig);
        // Re-INVITE; the phone restarts at seq 1 with the same SSRC, 20 ms later.
        s.set_remote(Leg::A, a, None);
        let t1 = t0 + Duration::from_millis(20);
        let mut p = rtp(5, 1, 0, 0);
        s.handle_rtp(t1, Leg::A, a, &mut p).unwrap();
        let q = RtpPacket::parse(&p).unwrap();
        assert_eq!(
            (q.ssrc, q.sequence_number, q.timestamp, q.marker),
            (5, 1501, 80_160, true)
        );
        let mut p = rtp(5, 2, 160, 0);
        s.handle_rtp(t1 + Duration::from_millis(20), Leg::A, a, &mut p)
            .unwrap();
        let q = RtpPacket::parse(&p).unwrap();
        assert_eq!((q.sequence_number, q.timestamp), (1502, 80_320));
        assert!(events(&mut s).contains(&RelayEvent::StreamRestarted {
            from_leg: Leg::A,
            ssrc: 5
        }));
        assert_eq!(s.stats().a_to_b.ssrc_changes, 1);
    }

    #[test]
    fn telephone_events_are_relayed_like_audio() {
        let t0 = Instant::now();
        let mut s = session(t0);
        // RFC 4733 event "5", end bit, three retransmissions with the same timestamp.
        for seq in 1..=3 {
            let mut p = RtpBuilder {
                payload_type: 101,
                sequence_number: seq,
                timestamp: 4000,
                ssrc: 1,
                payload: vec![5, 0x8A, 0x03, 0x20],
                ..Default::default()
            }
            .to_vec()
            .unwrap();
            let orig = p.clone();
            s.handle_rtp(t0, Leg::A, addr(A_SDP), &mut p).unwrap();
            assert_eq!(p, orig);
        }
        assert_eq!(s.stats().a_to_b.rtp_packets, 3);
    }

    #[test]
    fn malformed_and_oversize_are_dropped_and_counted() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let a = addr(A_SDP);
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x80],
            vec![0x80; 11],
            // Version 1.
            {
                let mut p = rtp(1, 1, 1, 0);
                p[0] = 0x40;
                p
            },
            // CSRC count past the end.
            vec![0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
            // Padding count past the body.
            vec![0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 200],
        ];
        for c in &mut cases {
            assert_eq!(
                s.handle_rtp(t0, Leg::A, a, c),
                Err(DropReason::MalformedRtp)
            );
        }
        // Malformed RTCP: bad version, length past the end, not an RTCP type, too short.
        let mut bad_rtcp: Vec<Vec<u8>> = vec![
            vec![0x40, 200, 0, 1, 0, 0, 0, 0],
            vec![0x80, 201, 0, 9, 0, 0, 0, 0],
            vec![0x80, 96, 0, 1, 0, 0, 0, 0],
            vec![0x80, 201, 0],
            {
                let mut v = sr(1, 0);
                v.extend_from_slice(&[0x80, 201]);
                v
            },
        ];
        for c in &mut bad_rtcp {
            assert_eq!(
                s.handle_rtcp(t0, Leg::A, a, c),
                Err(DropReason::MalformedRtcp)
            );
        }
        let mut big = rtp(1, 1, 1, 0);
        big.resize(MAX_PACKET_LEN + 1, 0);
        assert_eq!(
            s.handle_rtp(t0, Leg::A, a, &mut big),
            Err(DropReason::Oversize)
        );
        let st = s.stats();
        assert_eq!(st.dropped(DropReason::MalformedRtp), 6);
        assert_eq!(st.dropped(DropReason::MalformedRtcp), 5);
        assert_eq!(st.dropped(DropReason::Oversize), 1);
        assert_eq!(st.leg_a.latched_rtp, None, "garbage does not latch");
        // Every byte pattern of a short length: never a panic.
        for len in 0..40usize {
            for seed in 0..64u32 {
                let mut v: Vec<u8> = (0..len)
                    .map(|i| (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32) >> 7) as u8)
                    .collect();
                let _ = s.handle_rtp(t0, Leg::B, addr(B_SDP), &mut v);
                let _ = s.handle_rtcp(t0, Leg::B, addr(B_SDP), &mut v);
            }
        }
    }

    #[test]
    fn no_destination_until_the_other_leg_is_known() {
        let t0 = Instant::now();
        let mut s = RelaySession::new(t0, RelayConfig::default());
        s.set_remote(Leg::A, addr(A_SDP), None);
        assert_eq!(
            s.handle_rtp(t0, Leg::A, addr(A_SDP), &mut rtp(1, 1, 1, 0)),
            Err(DropReason::NoDestination)
        );
        // Early media from B (no SDP yet for B... but B sends): B is latched, A's packets go there.
        let b = addr("10.9.9.9:5000");
        s.handle_rtp(t0, Leg::B, b, &mut rtp(2, 1, 1, 0)).unwrap();
        let t = s
            .handle_rtp(t0, Leg::A, addr(A_SDP), &mut rtp(1, 2, 161, 0))
            .unwrap();
        assert_eq!(t.destination, b);
        assert_eq!(s.stats().dropped(DropReason::NoDestination), 1);
    }

    #[test]
    fn inactivity_timeout() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(30);
        s.handle_rtp(t1, Leg::A, addr(A_SDP), &mut rtp(1, 1, 1, 0))
            .unwrap();
        // RTCP alone does not keep the call alive.
        s.handle_rtcp(
            t1 + Duration::from_secs(50),
            Leg::A,
            addr("10.0.0.1:4001"),
            &mut sr(1, 0),
        )
        .unwrap();
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
        s.handle_timeout(t1 + Duration::from_secs(59));
        assert!(!s.inactive(t1 + Duration::from_secs(59)));
        assert!(events(&mut s)
            .iter()
            .all(|e| !matches!(e, RelayEvent::Inactive { .. })));
        s.handle_timeout(t1 + Duration::from_secs(60));
        assert!(s.inactive(t1 + Duration::from_secs(60)));
        assert!(s.stats().inactive);
        assert_eq!(s.poll_timeout(), None);
        assert!(events(&mut s).contains(&RelayEvent::Inactive {
            idle: Duration::from_secs(60),
            on_hold: false
        }));
        // Once only.
        s.handle_timeout(t1 + Duration::from_secs(120));
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn hold_uses_the_hold_timeout() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.handle_rtp(t0, Leg::A, addr(A_SDP), &mut rtp(1, 1, 1, 0))
            .unwrap();
        let t1 = t0 + Duration::from_secs(10);
        s.set_hold(t1, true);
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(3600)));
        s.handle_timeout(t1 + Duration::from_secs(600));
        assert!(!s.inactive(t1 + Duration::from_secs(600)));
        s.handle_timeout(t1 + Duration::from_secs(3600));
        assert!(s.inactive(t1 + Duration::from_secs(3600)));
        assert!(events(&mut s).contains(&RelayEvent::Inactive {
            idle: Duration::from_secs(3600),
            on_hold: true
        }));
        // Off hold: the normal timeout again, counted from the resume.
        let mut s = session(t0);
        s.set_hold(t0, true);
        let t2 = t0 + Duration::from_secs(1000);
        s.set_hold(t2, false);
        assert!(!s.inactive(t2 + Duration::from_secs(59)));
        assert!(s.inactive(t2 + Duration::from_secs(60)));
    }
}
