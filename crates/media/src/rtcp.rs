//! RTCP packets (RFC 3550 §6): sender and receiver reports, source descriptions, BYE, APP, and
//! extended reports (RFC 3611: receiver reference time, DLRR, VoIP metrics), parsed from and
//! written to compound packets.
//!
//! Parsing follows the validity checks of RFC 3550 Appendix A.2 that still hold with RFC 5506
//! (reduced-size RTCP): version 2, padding only in the last packet of a compound, and each
//! packet's length field within the datagram. It does not insist that a compound starts with
//! SR or RR; [`RtcpPacket::is_report`] lets a caller that wants that check it. Packet types
//! this module does not model (feedback, RFC 4585) are kept as [`RtcpPacket::Unknown`] so they
//! can be forwarded. Every length is checked before use; any input gives packets or an
//! [`RtcpError`], never a panic.

/// RTCP packet types (RFC 3550 §12.1, RFC 3611 §5).
pub mod packet_type {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
    /// Extended report.
    pub const XR: u8 = 207;
}

/// Why bytes are not RTCP, or a packet cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header or a length field says.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Version field is not 2.
    #[error("bad RTCP version {0}")]
    Version(u8),
    /// Padding in a packet that is not the last of its compound, or a bad padding count.
    #[error("bad padding")]
    Padding,
    /// The body does not match what the header's count and type say.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The packet holds a value the wire format cannot carry.
    #[error("cannot serialize: {0}")]
    Unrepresentable(&'static str),
}

/// One reception report block (RFC 3550 §6.4.1), 24 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a signed 24-bit value (duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// Sender's SSRC.
    pub ssrc: u32,
    /// NTP timestamp (64-bit fixed point, seconds since 1900).
    pub ntp_time: u64,
    /// RTP timestamp corresponding to `ntp_time`.
    pub rtp_time: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    /// Reception reports, at most 31.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension (a multiple of 4 bytes).
    pub extension: Vec<u8>,
}

/// Receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// Reporter's SSRC.
    pub ssrc: u32,
    /// Reception reports, at most 31.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension (a multiple of 4 bytes).
    pub extension: Vec<u8>,
}

/// SDES item types (RFC 3550 §6.5).
pub mod sdes_type {
    /// Canonical end-point name.
    pub const CNAME: u8 = 1;
    /// User name.
    pub const NAME: u8 = 2;
    /// E-mail address.
    pub const EMAIL: u8 = 3;
    /// Phone number.
    pub const PHONE: u8 = 4;
    /// Location.
    pub const LOC: u8 = 5;
    /// Application or tool name.
    pub const TOOL: u8 = 6;
    /// Notice/status.
    pub const NOTE: u8 = 7;
    /// Private extension.
    pub const PRIV: u8 = 8;
}

/// One SDES item: a type from [`sdes_type`] (never 0, which ends a chunk) and up to 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    /// Item type.
    pub kind: u8,
    /// Value (UTF-8 by the RFC, kept as bytes).
    pub value: Vec<u8>,
}

/// The items describing one source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    /// The source (SSRC or CSRC).
    pub ssrc: u32,
    /// Its items.
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// The CNAME item's value, if present.
    pub fn cname(&self) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|i| i.kind == sdes_type::CNAME)
            .map(|i| i.value.as_slice())
    }
}

/// Goodbye (RFC 3550 §6.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    /// Sources leaving, at most 31.
    pub sources: Vec<u32>,
    /// Reason for leaving, up to 255 bytes.
    pub reason: Option<Vec<u8>>,
}

/// Application-defined packet (RFC 3550 §6.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct App {
    /// Subtype, 0–31.
    pub subtype: u8,
    /// Source.
    pub ssrc: u32,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application data, a multiple of 4 bytes.
    pub data: Vec<u8>,
}

/// One DLRR sub-block (RFC 3611 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DlrrItem {
    /// The receiver this sub-block answers.
    pub ssrc: u32,
    /// Middle 32 bits of the NTP time of its last RRTR.
    pub last_rr: u32,
    /// Delay since that RRTR, in 1/65536 s.
    pub delay_since_last_rr: u32,
}

/// VoIP Metrics report block (RFC 3611 §4.7): quality of one received stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoipMetrics {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost, in 1/256.
    pub loss_rate: u8,
    /// Fraction discarded (late, early), in 1/256.
    pub discard_rate: u8,
    /// Fraction lost or discarded within bursts, in 1/256.
    pub burst_density: u8,
    /// Fraction lost or discarded within gaps, in 1/256.
    pub gap_density: u8,
    /// Mean burst duration, ms.
    pub burst_duration: u16,
    /// Mean gap duration, ms.
    pub gap_duration: u16,
    /// Most recent round-trip delay, ms.
    pub round_trip_delay: u16,
    /// End system delay, ms.
    pub end_system_delay: u16,
    /// Signal level, dBm0 (127 = unavailable).
    pub signal_level: i8,
    /// Noise level, dBm0 (127 = unavailable).
    pub noise_level: i8,
    /// Residual echo return loss, dB (127 = unavailable).
    pub rerl: u8,
    /// Gap threshold (usually 16).
    pub gmin: u8,
    /// R factor (127 = unavailable).
    pub r_factor: u8,
    /// External R factor (127 = unavailable).
    pub ext_r_factor: u8,
    /// MOS listening quality ×10 (127 = unavailable).
    pub mos_lq: u8,
    /// MOS conversational quality ×10 (127 = unavailable).
    pub mos_cq: u8,
    /// Receiver configuration byte (PLC, jitter buffer adaptivity and rate).
    pub rx_config: u8,
    /// Jitter buffer nominal delay, ms.
    pub jb_nominal: u16,
    /// Jitter buffer maximum delay, ms.
    pub jb_maximum: u16,
    /// Jitter buffer absolute maximum delay, ms.
    pub jb_abs_max: u16,
}

/// One XR report block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XrBlock {
    /// Receiver Reference Time (BT=4, RFC 3611 §4.4): lets a receiver measure RTT.
    ReceiverReferenceTime {
        /// NTP timestamp.
        ntp_time: u64,
    },
    /// DLRR (BT=5, RFC 3611 §4.5): the answer to RRTR.
    Dlrr(Vec<DlrrItem>),
    /// VoIP Metrics (BT=7).
    VoipMetrics(VoipMetrics),
    /// Any other block type, kept as is.
    Unknown {
        /// Block type.
        block_type: u8,
        /// The type-specific byte.
        type_specific: u8,
        /// Contents after the 4-byte block header, a multiple of 4 bytes.
        data: Vec<u8>,
    },
}

/// Extended report (RFC 3611 §2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedReport {
    /// Sender of the XR.
    pub ssrc: u32,
    /// Report blocks.
    pub blocks: Vec<XrBlock>,
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report.
    SenderReport(SenderReport),
    /// Receiver report.
    ReceiverReport(ReceiverReport),
    /// Source description chunks, at most 31.
    SourceDescription(Vec<SdesChunk>),
    /// Goodbye.
    Bye(Bye),
    /// Application-defined.
    App(App),
    /// Extended report.
    ExtendedReport(ExtendedReport),
    /// A type not modelled here (e.g. RTPFB/PSFB feedback), kept for forwarding.
    Unknown {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/format field.
        count: u8,
        /// Body after the 4-byte header, without padding.
        body: Vec<u8>,
    },
}

impl RtcpPacket {
    /// Whether this is an SR or RR, which RFC 3550 §6.1 wants first in a full compound.
    pub fn is_report(&self) -> bool {
        matches!(
            self,
            RtcpPacket::SenderReport(_) | RtcpPacket::ReceiverReport(_)
        )
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

fn need(b: &[u8], n: usize) -> Result<(), RtcpError> {
    if b.len() < n {
        Err(RtcpError::Truncated {
            need: n,
            have: b.len(),
        })
    } else {
        Ok(())
    }
}

/// Iterates over the packets of a compound RTCP datagram. After the first error it yields
/// nothing more.
#[derive(Debug, Clone)]
pub struct CompoundIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Iterates over the packets of a compound RTCP datagram.
pub fn iter_compound(buf: &[u8]) -> CompoundIter<'_> {
    CompoundIter {
        buf,
        pos: 0,
        failed: false,
    }
}

/// Parses a whole compound RTCP datagram; fails if any packet is invalid or it is empty.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Truncated { need: 4, have: 0 });
    }
    iter_compound(buf).collect()
}

impl Iterator for CompoundIter<'_> {
    type Item = Result<RtcpPacket, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_packet();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl CompoundIter<'_> {
    fn next_packet(&mut self) -> Result<RtcpPacket, RtcpError> {
        let rest = &self.buf[self.pos..];
        need(rest, 4)?;
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let padded = rest[0] & 0x20 != 0;
        let count = rest[0] & 0x1F;
        let packet_type = rest[1];
        let len = (usize::from(be16(rest, 2)) + 1) * 4;
        need(rest, len)?;
        let mut body = &rest[4..len];
        self.pos += len;
        if padded {
            // Only the last packet of a compound may be padded (RFC 3550 §6.4.1, A.2).
            if self.pos != self.buf.len() {
                return Err(RtcpError::Padding);
            }
            let n = usize::from(rest[len - 1]);
            if n == 0 || n > body.len() {
                return Err(RtcpError::Padding);
            }
            body = &body[..body.len() - n];
        }
        parse_packet(packet_type, count, body)
    }
}

fn parse_report_blocks(body: &[u8], count: u8) -> Result<(Vec<ReportBlock>, Vec<u8>), RtcpError> {
    let n = usize::from(count) * 24;
    if body.len() < n {
        return Err(RtcpError::Malformed("report blocks past the packet"));
    }
    if !(body.len() - n).is_multiple_of(4) {
        return Err(RtcpError::Malformed("report extension not 32-bit aligned"));
    }
    let reports = body[..n]
        .chunks_exact(24)
        .map(|b| ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            // Sign-extend the 24-bit field.
            cumulative_lost: (be32(b, 4) << 8) as i32 >> 8,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        })
        .collect();
    Ok((reports, body[n..].to_vec()))
}

fn parse_packet(packet_type: u8, count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    use packet_type::*;
    Ok(match packet_type {
        SR => {
            if body.len() < 24 {
                return Err(RtcpError::Malformed("SR shorter than its sender info"));
            }
            let (reports, extension) = parse_report_blocks(&body[24..], count)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 0),
                ntp_time: be64(body, 4),
                rtp_time: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
                reports,
                extension,
            })
        }
        RR => {
            if body.len() < 4 {
                return Err(RtcpError::Malformed("RR without SSRC"));
            }
            let (reports, extension) = parse_report_blocks(&body[4..], count)?;
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: be32(body, 0),
                reports,
                extension,
            })
        }
        SDES => RtcpPacket::SourceDescription(parse_sdes(body, count)?),
        BYE => {
            let n = usize::from(count) * 4;
            if body.len() < n {
                return Err(RtcpError::Malformed("BYE sources past the packet"));
            }
            let sources = body[..n].chunks_exact(4).map(|c| be32(c, 0)).collect();
            let rest = &body[n..];
            let reason = match rest.first() {
                None => None,
                Some(&l) => {
                    let text = rest
                        .get(1..1 + usize::from(l))
                        .ok_or(RtcpError::Malformed("BYE reason past the packet"))?;
                    Some(text.to_vec())
                }
            };
            RtcpPacket::Bye(Bye { sources, reason })
        }
        APP => {
            if body.len() < 8 || !body.len().is_multiple_of(4) {
                return Err(RtcpError::Malformed("APP length"));
            }
            RtcpPacket::App(App {
                subtype: count,
                ssrc: be32(body, 0),
                name: [body[4], body[5], body[6], body[7]],
                data: body[8..].to_vec(),
            })
        }
        XR => RtcpPacket::ExtendedReport(parse_xr(body)?),
        _ if !body.len().is_multiple_of(4) => {
            return Err(RtcpError::Malformed("body not 32-bit aligned"));
        }
        _ => RtcpPacket::Unknown {
            packet_type,
            count,
            body: body.to_vec(),
        },
    })
}

fn parse_sdes(body: &[u8], count: u8) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::with_capacity(usize::from(count));
    let mut pos = 0;
    for _ in 0..count {
        need(&body[pos.min(body.len())..], 4)
            .map_err(|_| RtcpError::Malformed("SDES chunk past the packet"))?;
        let mut chunk = SdesChunk {
            ssrc: be32(body, pos),
            items: Vec::new(),
        };
        pos += 4;
        loop {
            let kind = *body
                .get(pos)
                .ok_or(RtcpError::Malformed("SDES chunk without end"))?;
            if kind == 0 {
                // The null item ends the chunk; pad to the next 32-bit boundary (§6.5).
                pos += 1;
                pos = pos.next_multiple_of(4);
                break;
            }
            let len = usize::from(
                *body
                    .get(pos + 1)
                    .ok_or(RtcpError::Malformed("SDES item past the packet"))?,
            );
            let value = body
                .get(pos + 2..pos + 2 + len)
                .ok_or(RtcpError::Malformed("SDES item past the packet"))?;
            chunk.items.push(SdesItem {
                kind,
                value: value.to_vec(),
            });
            pos += 2 + len;
        }
        chunks.push(chunk);
    }
    Ok(chunks)
}

fn parse_xr(body: &[u8]) -> Result<ExtendedReport, RtcpError> {
    if body.len() < 4 {
        return Err(RtcpError::Malformed("XR without SSRC"));
    }
    let mut xr = ExtendedReport {
        ssrc: be32(body, 0),
        blocks: Vec::new(),
    };
    let mut pos = 4;
    while pos < body.len() {
        let h = body
            .get(pos..pos + 4)
            .ok_or(RtcpError::Malformed("XR block header past the packet"))?;
        let (block_type, type_specific) = (h[0], h[1]);
        let len = usize::from(be16(h, 2)) * 4;
        let data = body
            .get(pos + 4..pos + 4 + len)
            .ok_or(RtcpError::Malformed("XR block past the packet"))?;
        pos += 4 + len;
        xr.blocks.push(match block_type {
            4 => {
                if data.len() != 8 {
                    return Err(RtcpError::Malformed("RRTR block length"));
                }
                XrBlock::ReceiverReferenceTime {
                    ntp_time: be64(data, 0),
                }
            }
            5 => {
                if data.len() % 12 != 0 {
                    return Err(RtcpError::Malformed("DLRR block length"));
                }
                XrBlock::Dlrr(
                    data.chunks_exact(12)
                        .map(|c| DlrrItem {
                            ssrc: be32(c, 0),
                            last_rr: be32(c, 4),
                            delay_since_last_rr: be32(c, 8),
                        })
                        .collect(),
                )
            }
            7 => {
                if data.len() != 32 {
                    return Err(RtcpError::Malformed("VoIP Metrics block length"));
                }
                let d = data;
                XrBlock::VoipMetrics(VoipMetrics {
                    ssrc: be32(d, 0),
                    loss_rate: d[4],
                    discard_rate: d[5],
                    burst_density: d[6],
                    gap_density: d[7],
                    burst_duration: be16(d, 8),
                    gap_duration: be16(d, 10),
                    round_trip_delay: be16(d, 12),
                    end_system_delay: be16(d, 14),
                    signal_level: d[16] as i8,
                    noise_level: d[17] as i8,
                    rerl: d[18],
                    gmin: d[19],
                    r_factor: d[20],
                    ext_r_factor: d[21],
                    mos_lq: d[22],
                    mos_cq: d[23],
                    rx_config: d[24],
                    // d[25] is reserved.
                    jb_nominal: be16(d, 26),
                    jb_maximum: be16(d, 28),
                    jb_abs_max: be16(d, 30),
                })
            }
            _ => XrBlock::Unknown {
                block_type,
                type_specific,
                data: data.to_vec(),
            },
        });
    }
    Ok(xr)
}

fn count5(n: usize, what: &'static str) -> Result<u8, RtcpError> {
    if n > 31 {
        Err(RtcpError::Unrepresentable(what))
    } else {
        Ok(n as u8)
    }
}

fn aligned(data: &[u8], what: &'static str) -> Result<(), RtcpError> {
    if !data.len().is_multiple_of(4) {
        Err(RtcpError::Unrepresentable(what))
    } else {
        Ok(())
    }
}

fn put_block(out: &mut Vec<u8>, b: &ReportBlock) -> Result<(), RtcpError> {
    if !(-0x80_0000..=0x7F_FFFF).contains(&b.cumulative_lost) {
        return Err(RtcpError::Unrepresentable(
            "cumulative lost outside 24 bits",
        ));
    }
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    out.push(b.fraction_lost);
    out.extend_from_slice(&b.cumulative_lost.to_be_bytes()[1..]);
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.last_sr.to_be_bytes());
    out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    Ok(())
}

impl RtcpPacket {
    /// Appends this packet (never padded) to `out`. On error nothing is appended.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let start = out.len();
        let r = self.write_inner(out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn write_inner(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        use packet_type::*;
        let start = out.len();
        // Header with a placeholder length, fixed below.
        let (count, pt) = match self {
            RtcpPacket::SenderReport(sr) => (count5(sr.reports.len(), "over 31 reports")?, SR),
            RtcpPacket::ReceiverReport(rr) => (count5(rr.reports.len(), "over 31 reports")?, RR),
            RtcpPacket::SourceDescription(c) => (count5(c.len(), "over 31 SDES chunks")?, SDES),
            RtcpPacket::Bye(b) => (count5(b.sources.len(), "over 31 BYE sources")?, BYE),
            RtcpPacket::App(a) => (count5(usize::from(a.subtype), "APP subtype over 31")?, APP),
            RtcpPacket::ExtendedReport(_) => (0, XR),
            RtcpPacket::Unknown {
                packet_type, count, ..
            } => (count5(usize::from(*count), "count over 31")?, *packet_type),
        };
        out.extend_from_slice(&[0x80 | count, pt, 0, 0]);
        match self {
            RtcpPacket::SenderReport(sr) => {
                aligned(&sr.extension, "SR extension not 32-bit aligned")?;
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.ntp_time.to_be_bytes());
                out.extend_from_slice(&sr.rtp_time.to_be_bytes());
                out.extend_from_slice(&sr.packet_count.to_be_bytes());
                out.extend_from_slice(&sr.octet_count.to_be_bytes());
                for b in &sr.reports {
                    put_block(out, b)?;
                }
                out.extend_from_slice(&sr.extension);
            }
            RtcpPacket::ReceiverReport(rr) => {
                aligned(&rr.extension, "RR extension not 32-bit aligned")?;
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                for b in &rr.reports {
                    put_block(out, b)?;
                }
                out.extend_from_slice(&rr.extension);
            }
            RtcpPacket::SourceDescription(chunks) => {
                for c in chunks {
                    out.extend_from_slice(&c.ssrc.to_be_bytes());
                    for i in &c.items {
                        if i.kind == 0 {
                            return Err(RtcpError::Unrepresentable("SDES item type 0"));
                        }
                        let len = u8::try_from(i.value.len())
                            .map_err(|_| RtcpError::Unrepresentable("SDES item over 255 bytes"))?;
                        out.push(i.kind);
                        out.push(len);
                        out.extend_from_slice(&i.value);
                    }
                    // At least one null octet, then to the 32-bit boundary (§6.5).
                    out.push(0);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
            }
            RtcpPacket::Bye(b) => {
                for s in &b.sources {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(reason) = &b.reason {
                    let len = u8::try_from(reason.len())
                        .map_err(|_| RtcpError::Unrepresentable("BYE reason over 255 bytes"))?;
                    out.push(len);
                    out.extend_from_slice(reason);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
            }
            RtcpPacket::App(a) => {
                aligned(&a.data, "APP data not 32-bit aligned")?;
                out.extend_from_slice(&a.ssrc.to_be_bytes());
                out.extend_from_slice(&a.name);
                out.extend_from_slice(&a.data);
            }
            RtcpPacket::ExtendedReport(xr) => {
                out.extend_from_slice(&xr.ssrc.to_be_bytes());
                for b in &xr.blocks {
                    write_xr_block(out, b)?;
                }
            }
            RtcpPacket::Unknown { body, .. } => {
                aligned(body, "body not 32-bit aligned")?;
                out.extend_from_slice(body);
            }
        }
        let words = u16::try_from((out.len() - start) / 4 - 1)
            .map_err(|_| RtcpError::Unrepresentable("packet over 256 KiB"))?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }
}

fn write_xr_block(out: &mut Vec<u8>, b: &XrBlock) -> Result<(), RtcpError> {
    let header = |out: &mut Vec<u8>, bt: u8, ts: u8, bytes: usize| -> Result<(), RtcpError> {
        let words = u16::try_from(bytes / 4)
            .map_err(|_| RtcpError::Unrepresentable("XR block too long"))?;
        out.extend_from_slice(&[bt, ts]);
        out.extend_from_slice(&words.to_be_bytes());
        Ok(())
    };
    match b {
        XrBlock::ReceiverReferenceTime { ntp_time } => {
            header(out, 4, 0, 8)?;
            out.extend_from_slice(&ntp_time.to_be_bytes());
        }
        XrBlock::Dlrr(items) => {
            header(out, 5, 0, items.len() * 12)?;
            for i in items {
                out.extend_from_slice(&i.ssrc.to_be_bytes());
                out.extend_from_slice(&i.last_rr.to_be_bytes());
                out.extend_from_slice(&i.delay_since_last_rr.to_be_bytes());
            }
        }
        XrBlock::VoipMetrics(m) => {
            header(out, 7, 0, 32)?;
            out.extend_from_slice(&m.ssrc.to_be_bytes());
            out.extend_from_slice(&[m.loss_rate, m.discard_rate, m.burst_density, m.gap_density]);
            for v in [
                m.burst_duration,
                m.gap_duration,
                m.round_trip_delay,
                m.end_system_delay,
            ] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&[
                m.signal_level as u8,
                m.noise_level as u8,
                m.rerl,
                m.gmin,
                m.r_factor,
                m.ext_r_factor,
                m.mos_lq,
                m.mos_cq,
                m.rx_config,
                0,
            ]);
            for v in [m.jb_nominal, m.jb_maximum, m.jb_abs_max] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        XrBlock::Unknown {
            block_type,
            type_specific,
            data,
        } => {
            aligned(data, "XR block not 32-bit aligned")?;
            header(out, *block_type, *type_specific, data.len())?;
            out.extend_from_slice(data);
        }
    }
    Ok(())
}

/// Writes packets as one compound datagram. On error nothing is appended.
pub fn write_compound(packets: &[RtcpPacket], out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let start = out.len();
    for p in packets {
        if let Err(e) = p.write(out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

/// The middle 32 bits of a 64-bit NTP timestamp, as carried in LSR and LRR fields.
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: lost,
            highest_seq: 0x0001_0005,
            jitter: 80,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    fn all() -> Vec<RtcpPacket> {
        vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                ntp_time: 0xE000_0000_8000_0000,
                rtp_time: 160,
                packet_count: 10,
                octet_count: 1600,
                reports: vec![block(2, 3), block(3, -2)],
                extension: vec![],
            }),
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 4,
                reports: vec![block(1, 0x7F_FFFF)],
                extension: vec![1, 2, 3, 4],
            }),
            RtcpPacket::SourceDescription(vec![
                SdesChunk {
                    ssrc: 1,
                    items: vec![SdesItem {
                        kind: sdes_type::CNAME,
                        value: b"alice@example.org".to_vec(),
                    }],
                },
                SdesChunk {
                    ssrc: 9,
                    items: vec![
                        SdesItem {
                            kind: sdes_type::TOOL,
                            value: b"strowger".to_vec(),
                        },
                        SdesItem {
                            kind: sdes_type::NOTE,
                            value: vec![],
                        },
                    ],
                },
            ]),
            RtcpPacket::Bye(Bye {
                sources: vec![1, 9],
                reason: Some(b"hung up".to_vec()),
            }),
            RtcpPacket::App(App {
                subtype: 3,
                ssrc: 1,
                name: *b"STRW",
                data: vec![0, 0, 0, 1],
            }),
            RtcpPacket::ExtendedReport(ExtendedReport {
                ssrc: 1,
                blocks: vec![
                    XrBlock::ReceiverReferenceTime {
                        ntp_time: 0x0102_0304_0506_0708,
                    },
                    XrBlock::Dlrr(vec![DlrrItem {
                        ssrc: 2,
                        last_rr: 3,
                        delay_since_last_rr: 4,
                    }]),
                    XrBlock::VoipMetrics(VoipMetrics {
                        ssrc: 2,
                        loss_rate: 12,
                        discard_rate: 3,
                        burst_density: 100,
                        gap_density: 2,
                        burst_duration: 60,
                        gap_duration: 5000,
                        round_trip_delay: 80,
                        end_system_delay: 40,
                        signal_level: -20,
                        noise_level: -60,
                        rerl: 127,
                        gmin: 16,
                        r_factor: 85,
                        ext_r_factor: 127,
                        mos_lq: 41,
                        mos_cq: 40,
                        rx_config: 0b1100_0000,
                        jb_nominal: 40,
                        jb_maximum: 80,
                        jb_abs_max: 200,
                    }),
                    XrBlock::Unknown {
                        block_type: 42,
                        type_specific: 1,
                        data: vec![9, 9, 9, 9],
                    },
                ],
            }),
            RtcpPacket::Unknown {
                packet_type: 205,
                count: 1,
                body: vec![0, 0, 0, 1, 0, 0, 0, 2],
            },
        ]
    }

    #[test]
    fn compound_round_trip() {
        let packets = all();
        let mut buf = Vec::new();
        write_compound(&packets, &mut buf).unwrap();
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(parse_compound(&buf).unwrap(), packets);
    }

    #[test]
    fn known_wire_bytes() {
        // RR with one block, by hand from RFC 3550 §6.4.2: length = 7 words after the first.
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 0xAABB_CCDD,
            reports: vec![block(1, -1)],
            extension: vec![],
        });
        let mut b = Vec::new();
        rr.write(&mut b).unwrap();
        assert_eq!(&b[..8], &[0x81, 201, 0, 7, 0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!(&b[12..16], &[25, 0xFF, 0xFF, 0xFF]);
        // SDES CNAME "ab": 4 header + 4 ssrc + 2 + 2 + null + pad to 16.
        let sdes = RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 1,
            items: vec![SdesItem {
                kind: 1,
                value: b"ab".to_vec(),
            }],
        }]);
        let mut s = Vec::new();
        sdes.write(&mut s).unwrap();
        assert_eq!(
            s,
            [0x81, 202, 0, 3, 0, 0, 0, 1, 1, 2, b'a', b'b', 0, 0, 0, 0]
        );
        // SDES item filling the chunk to a boundary still gets a whole word of nulls.
        let sdes = RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 1,
            items: vec![SdesItem {
                kind: 1,
                value: b"abcdef".to_vec(),
            }],
        }]);
        let mut s = Vec::new();
        sdes.write(&mut s).unwrap();
        assert_eq!(s.len(), 20);
        assert_eq!(&s[16..], &[0, 0, 0, 0]);
        assert_eq!(parse_compound(&s).unwrap(), vec![sdes]);
    }

    #[test]
    fn padding_only_in_last_packet() {
        let bye = RtcpPacket::Bye(Bye {
            sources: vec![7],
            reason: None,
        });
        let mut one = Vec::new();
        bye.write(&mut one).unwrap();
        // Pad it by 4 bytes.
        let mut padded = one.clone();
        padded[0] |= 0x20;
        padded[3] += 1;
        padded.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(parse_compound(&padded).unwrap(), vec![bye.clone()]);
        let mut two = padded.clone();
        two.extend_from_slice(&one);
        assert_eq!(parse_compound(&two), Err(RtcpError::Padding));
        let mut zero = padded.clone();
        *zero.last_mut().unwrap() = 0;
        assert_eq!(parse_compound(&zero), Err(RtcpError::Padding));
        let mut big = padded;
        *big.last_mut().unwrap() = 9;
        assert_eq!(parse_compound(&big), Err(RtcpError::Padding));
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse_compound(&[]).is_err());
        assert_eq!(
            parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Version(1))
        );
        // Length beyond the datagram.
        assert!(matches!(
            parse_compound(&[0x80, 201, 0, 2, 0, 0, 0, 0]),
            Err(RtcpError::Truncated { .. })
        ));
        // RR claiming one block with none present.
        assert!(matches!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Malformed(_))
        ));
        // SDES chunk with no terminating null.
        assert!(matches!(
            parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b']),
            Err(RtcpError::Malformed(_))
        ));
        // XR VoIP block of the wrong length.
        assert!(matches!(
            parse_compound(&[0x80, 207, 0, 2, 0, 0, 0, 1, 7, 0, 0, 0]),
            Err(RtcpError::Malformed(_))
        ));
        // A good packet then garbage: the iterator yields the good one, then the error, then stops.
        let mut b = Vec::new();
        all()[3].write(&mut b).unwrap();
        b.extend_from_slice(&[0x80, 200]);
        let v: Vec<_> = iter_compound(&b).collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok() && v[1].is_err());
    }

    #[test]
    fn write_refuses_unrepresentable() {
        let bad = [
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 1,
                reports: vec![ReportBlock::default(); 32],
                extension: vec![],
            }),
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 1,
                reports: vec![block(1, 0x80_0000)],
                extension: vec![],
            }),
            RtcpPacket::App(App {
                subtype: 1,
                data: vec![1],
                ..Default::default()
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: 1,
                items: vec![SdesItem {
                    kind: 1,
                    value: vec![0; 256],
                }],
            }]),
        ];
        for p in &bad {
            let mut out = vec![1, 2];
            assert!(matches!(
                p.write(&mut out),
                Err(RtcpError::Unrepresentable(_))
            ));
            assert_eq!(out, vec![1, 2]);
        }
    }

    #[test]
    fn ntp_middle() {
        assert_eq!(ntp_middle32(0x1122_3344_5566_7788), 0x3344_5566);
    }
}
