//! RTP packets (RFC 3550 §5.1): a zero-copy view for parsing, an owned builder for writing, and a
//! rewriter that keeps an outgoing stream continuous when its source changes.
//!
//! Header extensions are understood in the two general forms of RFC 8285 (one-byte, profile
//! `0xBEDE`, §4.2; two-byte, profile `0x100X`, §4.3) and kept raw otherwise. Parsing is bounded by
//! the input: every length is checked before it is used, and any input gives either a packet or an
//! [`RtpError`], never a panic.

use std::time::{Duration, Instant};

/// Size of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
/// Profile value of the RFC 8285 one-byte header form (§4.2).
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Profile value of the RFC 8285 two-byte header form (§4.3), with the four "appbits" clear.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;

/// Why bytes are not an RTP packet, or a builder cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the header says it is.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header requires.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Version field is not 2.
    #[error("bad RTP version {0}")]
    Version(u8),
    /// The padding count is zero or larger than what follows the header (RFC 3550 §5.1).
    #[error("bad padding count {0}")]
    Padding(u8),
    /// An RFC 8285 extension element runs past the extension block.
    #[error("malformed header extension element")]
    ExtensionElement,
    /// The builder holds a value the wire format cannot carry.
    #[error("cannot serialize: {0}")]
    Unrepresentable(&'static str),
}

/// The header extension of a parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The 16-bit "defined by profile" field.
    pub profile: u16,
    /// The extension data (a multiple of 4 bytes), without its 4-byte header.
    pub data: &'a [u8],
}

/// Which RFC 8285 form an extension profile value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionForm {
    /// One-byte headers (`0xBEDE`).
    OneByte,
    /// Two-byte headers (`0x100X`), with the four application bits.
    TwoByte {
        /// The low four bits of the profile value.
        appbits: u8,
    },
    /// Not an RFC 8285 form: the data is opaque.
    Other,
}

impl ExtensionForm {
    /// Classifies a profile value.
    pub fn of(profile: u16) -> Self {
        if profile == ONE_BYTE_PROFILE {
            ExtensionForm::OneByte
        } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            ExtensionForm::TwoByte {
                appbits: (profile & 0xF) as u8,
            }
        } else {
            ExtensionForm::Other
        }
    }
}

impl<'a> Extension<'a> {
    /// The RFC 8285 form of this extension.
    pub fn form(&self) -> ExtensionForm {
        ExtensionForm::of(self.profile)
    }

    /// The `(id, data)` elements of an RFC 8285 extension; empty for other profiles.
    ///
    /// Padding bytes (ID 0) are skipped. In the one-byte form, ID 15 ends processing of the whole
    /// block (RFC 8285 §4.2).
    pub fn elements(&self) -> ExtensionElements<'a> {
        ExtensionElements {
            form: self.form(),
            data: self.data,
            pos: 0,
        }
    }

    /// The data of the first element with `id`, if any.
    pub fn get(&self, id: u8) -> Option<&'a [u8]> {
        self.elements().find(|(i, _)| *i == id).map(|(_, d)| d)
    }
}

/// Iterator over RFC 8285 extension elements. Parsing has already validated them, so a malformed
/// block cannot reach here; should one, iteration simply stops.
#[derive(Debug, Clone)]
pub struct ExtensionElements<'a> {
    form: ExtensionForm,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ExtensionElements<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match next_element(self.form, self.data, &mut self.pos) {
            Ok(item) => item,
            Err(_) => {
                self.pos = self.data.len();
                None
            }
        }
    }
}

/// Reads the element at `*pos`, skipping padding. `Ok(None)` at the end of the block.
fn next_element<'a>(
    form: ExtensionForm,
    data: &'a [u8],
    pos: &mut usize,
) -> Result<Option<(u8, &'a [u8])>, RtpError> {
    loop {
        let Some(&first) = data.get(*pos) else {
            return Ok(None);
        };
        match form {
            ExtensionForm::Other => return Ok(None),
            ExtensionForm::OneByte => {
                let id = first >> 4;
                if id == 0 {
                    // Padding byte (its length nibble is 0 by §4.2; ignored either way).
                    *pos += 1;
                    continue;
                }
                if id == 15 {
                    // Reserved: stop processing the block, ignoring the length (§4.2).
                    *pos = data.len();
                    return Ok(None);
                }
                let len = usize::from(first & 0xF) + 1;
                let start = *pos + 1;
                let body = data
                    .get(start..start + len)
                    .ok_or(RtpError::ExtensionElement)?;
                *pos = start + len;
                return Ok(Some((id, body)));
            }
            ExtensionForm::TwoByte { .. } => {
                if first == 0 {
                    *pos += 1;
                    continue;
                }
                let len = usize::from(*data.get(*pos + 1).ok_or(RtpError::ExtensionElement)?);
                let start = *pos + 2;
                let body = data
                    .get(start..start + len)
                    .ok_or(RtpError::ExtensionElement)?;
                *pos = start + len;
                return Ok(Some((first, body)));
            }
        }
    }
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    csrc: &'a [u8],
    /// The header extension, if the X bit was set.
    pub extension: Option<Extension<'a>>,
    /// The payload, without padding.
    pub payload: &'a [u8],
    /// Number of padding bytes at the end (including the count byte); 0 when P was clear.
    pub padding: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn need(buf: &[u8], n: usize) -> Result<(), RtpError> {
    if buf.len() < n {
        Err(RtpError::Truncated {
            need: n,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        need(buf, FIXED_HEADER_LEN)?;
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_extension = buf[0] & 0x10 != 0;
        let cc = usize::from(buf[0] & 0x0F);
        let mut pos = FIXED_HEADER_LEN + 4 * cc;
        need(buf, pos)?;
        let csrc = &buf[FIXED_HEADER_LEN..pos];

        let extension = if has_extension {
            need(buf, pos + 4)?;
            let profile = be16(buf, pos);
            let words = usize::from(be16(buf, pos + 2));
            let start = pos + 4;
            let end = start + 4 * words;
            need(buf, end)?;
            let ext = Extension {
                profile,
                data: &buf[start..end],
            };
            // Validate once so the element iterator never meets a malformed block.
            let mut p = 0;
            while next_element(ext.form(), ext.data, &mut p)?.is_some() {}
            pos = end;
            Some(ext)
        } else {
            None
        };

        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            // The last octet counts the padding, itself included (§5.1).
            let count = buf[buf.len() - 1];
            if count == 0 || usize::from(count) > buf.len() - pos {
                return Err(RtpError::Padding(count));
            }
            padding = count;
            end -= usize::from(count);
        }

        Ok(RtpPacket {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            sequence_number: be16(buf, 2),
            timestamp: be32(buf, 4),
            ssrc: be32(buf, 8),
            csrc,
            extension,
            payload: &buf[pos..end],
            padding,
        })
    }

    /// The contributing sources.
    pub fn csrc(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// An owned copy that can be changed and written again. RFC 8285 extensions are carried as
    /// elements (their padding is dropped), others as raw data; packet padding keeps its length
    /// but not its content.
    pub fn to_builder(&self) -> RtpBuilder {
        RtpBuilder {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence_number: self.sequence_number,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrc: self.csrc().collect(),
            extension: self.extension.map(|e| match e.form() {
                ExtensionForm::OneByte => {
                    OwnedExtension::OneByte(e.elements().map(|(id, d)| (id, d.to_vec())).collect())
                }
                ExtensionForm::TwoByte { appbits } => OwnedExtension::TwoByte {
                    appbits,
                    elements: e.elements().map(|(id, d)| (id, d.to_vec())).collect(),
                },
                ExtensionForm::Other => OwnedExtension::Raw {
                    profile: e.profile,
                    data: e.data.to_vec(),
                },
            }),
            payload: self.payload.to_vec(),
            padding: self.padding,
        }
    }
}

/// An owned header extension for [`RtpBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedExtension {
    /// RFC 8285 one-byte form: IDs 1–14, 1–16 bytes of data each.
    OneByte(Vec<(u8, Vec<u8>)>),
    /// RFC 8285 two-byte form: IDs 1–255, 0–255 bytes of data each.
    TwoByte {
        /// Low four bits of the profile value (0 unless a profile defines them).
        appbits: u8,
        /// The elements.
        elements: Vec<(u8, Vec<u8>)>,
    },
    /// Any other profile: data written as is (a multiple of 4 bytes).
    Raw {
        /// The "defined by profile" field.
        profile: u16,
        /// The data.
        data: Vec<u8>,
    },
}

/// An RTP packet to be written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpBuilder {
    /// The marker bit.
    pub marker: bool,
    /// Payload type, 0–127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources, at most 15.
    pub csrc: Vec<u32>,
    /// Header extension.
    pub extension: Option<OwnedExtension>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Padding bytes to append, count byte included; 0 for none.
    pub padding: u8,
}

impl RtpBuilder {
    /// Appends the packet to `out`. On error nothing is appended.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        if self.payload_type > 127 {
            return Err(RtpError::Unrepresentable("payload type above 127"));
        }
        if self.csrc.len() > 15 {
            return Err(RtpError::Unrepresentable("more than 15 CSRCs"));
        }
        let mut ext = Vec::new();
        let profile = match &self.extension {
            None => None,
            Some(OwnedExtension::OneByte(elements)) => {
                for (id, data) in elements {
                    if !(1..=14).contains(id) {
                        return Err(RtpError::Unrepresentable("one-byte extension id not 1-14"));
                    }
                    if data.is_empty() || data.len() > 16 {
                        return Err(RtpError::Unrepresentable(
                            "one-byte extension data not 1-16 bytes",
                        ));
                    }
                    ext.push((id << 4) | (data.len() - 1) as u8);
                    ext.extend_from_slice(data);
                }
                Some(ONE_BYTE_PROFILE)
            }
            Some(OwnedExtension::TwoByte { appbits, elements }) => {
                if *appbits > 0xF {
                    return Err(RtpError::Unrepresentable("appbits above 15"));
                }
                for (id, data) in elements {
                    if *id == 0 {
                        return Err(RtpError::Unrepresentable("two-byte extension id 0"));
                    }
                    let len = u8::try_from(data.len()).map_err(|_| {
                        RtpError::Unrepresentable("two-byte extension data above 255 bytes")
                    })?;
                    ext.push(*id);
                    ext.push(len);
                    ext.extend_from_slice(data);
                }
                Some(TWO_BYTE_PROFILE | u16::from(*appbits))
            }
            Some(OwnedExtension::Raw { profile, data }) => {
                if data.len() % 4 != 0 {
                    return Err(RtpError::Unrepresentable(
                        "raw extension not a multiple of 4 bytes",
                    ));
                }
                ext.extend_from_slice(data);
                Some(*profile)
            }
        };
        // Pad RFC 8285 blocks to a 32-bit boundary with padding bytes (ID 0).
        while ext.len() % 4 != 0 {
            ext.push(0);
        }
        let ext_words = u16::try_from(ext.len() / 4)
            .map_err(|_| RtpError::Unrepresentable("header extension too long"))?;

        out.reserve(
            FIXED_HEADER_LEN
                + 4 * self.csrc.len()
                + 4
                + ext.len()
                + self.payload.len()
                + usize::from(self.padding),
        );
        out.push(
            0x80 | if self.padding > 0 { 0x20 } else { 0 }
                | if profile.is_some() { 0x10 } else { 0 }
                | self.csrc.len() as u8,
        );
        out.push(if self.marker { 0x80 } else { 0 } | self.payload_type);
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrc {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(profile) = profile {
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&ext_words.to_be_bytes());
            out.extend_from_slice(&ext);
        }
        out.extend_from_slice(&self.payload);
        if self.padding > 0 {
            out.resize(out.len() + usize::from(self.padding) - 1, 0);
            out.push(self.padding);
        }
        Ok(())
    }

    /// The packet as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, RtpError> {
        let mut v = Vec::new();
        self.write(&mut v)?;
        Ok(v)
    }
}

/// How far behind the last packet of the previous source a packet of it may arrive after a switch
/// and still be taken as late rather than as a switch back (RFC 3550 A.1's `MAX_MISORDER`).
const MAX_LATE: u16 = 100;

/// How far the timestamp advances across a change of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampGap {
    /// By the wallclock time since the last packet sent, at the stream's clock rate (at least
    /// one tick), so a receiver's jitter and playout stay right across a pause.
    Wallclock,
    /// By a fixed number of ticks, normally one frame (160 for 20 ms at 8 kHz).
    Frame(u32),
}

/// The numbers a packet goes out with after [`StreamRewriter::rewrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Outgoing SSRC (always the rewriter's own).
    pub ssrc: u32,
    /// Outgoing sequence number.
    pub sequence_number: u16,
    /// Outgoing timestamp.
    pub timestamp: u32,
    /// This packet is the first of a new source: an audio sender would set the marker bit
    /// (RFC 3551 §4.1) and a receiver's jitter buffer may resynchronise.
    pub switched: bool,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u16,
    ts: u32,
    at: Instant,
}

/// Keeps one outgoing RTP stream continuous while the packets that feed it come from changing
/// sources (a re-INVITE that restarts the far end's stream, a switch between callers, music on
/// hold): the outgoing SSRC stays the same, the sequence number goes on by one, and the timestamp
/// goes on by the [`TimestampGap`]. Within one source, offsets are constant, so reordering and
/// loss pass through unchanged; packets of the previous source still in flight at a switch keep
/// their old numbers instead of switching back.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    ssrc: u32,
    clock_rate: u32,
    gap: TimestampGap,
    source: Option<Source>,
    /// The source before the current one, and the last sequence number sent from it, so that
    /// its packets still in flight at a switch are placed behind it instead of switching back.
    previous: Option<(Source, u16)>,
    force_switch: bool,
    /// The highest (in RFC 1982 order) packet sent; a switch continues from it.
    last: Option<Sent>,
}

impl StreamRewriter {
    /// A rewriter for an outgoing stream with `ssrc` and an RTP clock of `clock_rate` Hz. The
    /// first packet keeps its sequence number and timestamp.
    pub fn new(ssrc: u32, clock_rate: u32, gap: TimestampGap) -> Self {
        StreamRewriter {
            ssrc,
            clock_rate,
            gap,
            source: None,
            previous: None,
            force_switch: false,
            last: None,
        }
    }

    /// Treat the next packet as coming from a new source even if its SSRC is unchanged (a
    /// re-INVITE towards a new media server may keep the SSRC but restart sequence and timestamp).
    pub fn reset_source(&mut self) {
        self.force_switch = true;
    }

    /// The outgoing SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Maps one incoming packet's numbers, received at `now`, to outgoing ones.
    pub fn rewrite(&mut self, now: Instant, ssrc: u32, seq: u16, ts: u32) -> Rewritten {
        if let (Some((prev, end)), Some(cur)) = (self.previous, self.source) {
            if prev.ssrc == ssrc && cur.ssrc != ssrc && !self.force_switch {
                let out_seq = seq.wrapping_add(prev.seq_offset);
                let behind = end.wrapping_sub(out_seq);
                if behind < MAX_LATE {
                    // A straggler of the previous source: its old numbers, nothing changes.
                    return Rewritten {
                        ssrc: self.ssrc,
                        sequence_number: out_seq,
                        timestamp: ts.wrapping_add(prev.ts_offset),
                        switched: false,
                    };
                }
            }
        }
        let switched = match self.source {
            Some(s) => s.ssrc != ssrc || self.force_switch,
            None => true,
        };
        let src = match self.source {
            Some(s) if !switched => s,
            _ => {
                self.force_switch = false;
                let (next_seq, next_ts) = match self.last {
                    None => (seq, ts),
                    Some(last) => {
                        let ticks = match self.gap {
                            TimestampGap::Frame(t) => t,
                            TimestampGap::Wallclock => {
                                ticks(now.saturating_duration_since(last.at), self.clock_rate)
                                    .max(1)
                            }
                        };
                        (last.seq.wrapping_add(1), last.ts.wrapping_add(ticks))
                    }
                };
                let s = Source {
                    ssrc,
                    seq_offset: next_seq.wrapping_sub(seq),
                    ts_offset: next_ts.wrapping_sub(ts),
                };
                if let (Some(old), Some(last)) = (self.source, self.last) {
                    self.previous = Some((old, last.seq));
                }
                self.source = Some(s);
                s
            }
        };
        let out_seq = seq.wrapping_add(src.seq_offset);
        let out_ts = ts.wrapping_add(src.ts_offset);
        let newer = match self.last {
            None => true,
            Some(l) => switched || (out_seq.wrapping_sub(l.seq) as i16) > 0,
        };
        if newer {
            self.last = Some(Sent {
                seq: out_seq,
                ts: out_ts,
                at: now,
            });
        }
        Rewritten {
            ssrc: self.ssrc,
            sequence_number: out_seq,
            timestamp: out_ts,
            switched,
        }
    }

    /// Rewrites an RTP packet in place: SSRC, sequence number and timestamp (and the marker bit
    /// on the first packet of a new source when `mark_switch`).
    pub fn rewrite_packet(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        mark_switch: bool,
    ) -> Result<Rewritten, RtpError> {
        let p = RtpPacket::parse(buf)?;
        let r = self.rewrite(now, p.ssrc, p.sequence_number, p.timestamp);
        buf[2..4].copy_from_slice(&r.sequence_number.to_be_bytes());
        buf[4..8].copy_from_slice(&r.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&r.ssrc.to_be_bytes());
        if r.switched && mark_switch {
            buf[1] |= 0x80;
        }
        Ok(r)
    }
}

/// `d` in ticks of a `rate` Hz clock, rounded to nearest, wrapping like an RTP timestamp.
fn ticks(d: Duration, rate: u32) -> u32 {
    ((d.as_nanos() * u128::from(rate) + 500_000_000) / 1_000_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RtpBuilder {
        RtpBuilder {
            marker: true,
            payload_type: 111,
            sequence_number: 0xFFFE,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            csrc: vec![1, 2],
            extension: Some(OwnedExtension::OneByte(vec![
                (1, vec![0xAA]),
                (
                    3,
                    vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
                ),
            ])),
            payload: vec![9; 20],
            padding: 3,
        }
    }

    #[test]
    fn round_trip_one_byte_extension_and_padding() {
        let b = sample();
        let bytes = b.to_vec().unwrap();
        // 12 + 8 csrc + 4 ext header + 20 ext (2 + 17 = 19, padded) + 20 payload + 3 padding.
        assert_eq!(bytes.len(), 12 + 8 + 4 + 20 + 20 + 3);
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 111);
        assert_eq!(p.sequence_number, 0xFFFE);
        assert_eq!(p.timestamp, 0xDEAD_BEEF);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.csrc().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(p.payload, &[9; 20][..]);
        assert_eq!(p.padding, 3);
        let ext = p.extension.unwrap();
        assert_eq!(ext.form(), ExtensionForm::OneByte);
        assert_eq!(ext.get(1), Some(&[0xAA][..]));
        assert_eq!(ext.get(3).map(<[u8]>::len), Some(16));
        assert_eq!(ext.get(2), None);
        assert_eq!(p.to_builder(), b);
    }

    #[test]
    fn two_byte_extension_with_empty_element() {
        let b = RtpBuilder {
            payload_type: 96,
            extension: Some(OwnedExtension::TwoByte {
                appbits: 5,
                elements: vec![(200, vec![]), (7, vec![0x55; 30])],
            }),
            ..Default::default()
        };
        let bytes = b.to_vec().unwrap();
        let p = RtpPacket::parse(&bytes).unwrap();
        let ext = p.extension.unwrap();
        assert_eq!(ext.profile, 0x1005);
        assert_eq!(ext.form(), ExtensionForm::TwoByte { appbits: 5 });
        let els: Vec<_> = ext.elements().collect();
        assert_eq!(els, vec![(200, &[][..]), (7, &[0x55; 30][..])]);
        assert_eq!(p.to_builder(), b);
    }

    #[test]
    fn one_byte_padding_and_id_15() {
        // Profile BEDE, 2 words: padding, id 2 len 1 (2 bytes), padding, id 15 (stop), junk.
        let mut bytes = vec![0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend_from_slice(&[0xBE, 0xDE, 0, 2]);
        bytes.extend_from_slice(&[0x00, 0x21, 0xAB, 0xCD, 0x00, 0xFF, 0xEE, 0xEE]);
        bytes.push(0x42);
        let p = RtpPacket::parse(&bytes).unwrap();
        let els: Vec<_> = p.extension.unwrap().elements().collect();
        assert_eq!(els, vec![(2, &[0xAB, 0xCD][..])]);
        assert_eq!(p.payload, &[0x42]);
    }

    #[test]
    fn raw_extension_is_kept() {
        let b = RtpBuilder {
            extension: Some(OwnedExtension::Raw {
                profile: 0x0001,
                data: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }),
            payload: vec![1],
            ..Default::default()
        };
        let bytes = b.to_vec().unwrap();
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(p.extension.unwrap().elements().count(), 0);
        assert_eq!(p.to_builder(), b);
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::Truncated { need: 12, have: 11 })
        ));
        let mut v1 = sample().to_vec().unwrap();
        v1[0] = (v1[0] & 0x3F) | 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Version(1)));
        // CSRC count beyond the buffer.
        let mut cc = vec![0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        cc.extend_from_slice(&[0; 8]);
        assert!(matches!(
            RtpPacket::parse(&cc),
            Err(RtpError::Truncated { .. })
        ));
        // Padding count zero, and larger than the packet body.
        let mut pad = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0];
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding(0)));
        *pad.last_mut().unwrap() = 4;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding(4)));
        *pad.last_mut().unwrap() = 3;
        assert_eq!(RtpPacket::parse(&pad).unwrap().payload, &[] as &[u8]);
        // Extension length beyond the buffer.
        let ext = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 0x10,
        ];
        assert!(matches!(
            RtpPacket::parse(&ext),
            Err(RtpError::Truncated { .. })
        ));
        // One-byte element longer than its block.
        let ext = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0,
        ];
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::ExtensionElement));
        // Two-byte element whose length byte is missing.
        let ext = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 1, 0, 0, 0, 9,
        ];
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::ExtensionElement));
    }

    #[test]
    fn builder_refuses_unrepresentable() {
        let bad = [
            RtpBuilder {
                payload_type: 128,
                ..Default::default()
            },
            RtpBuilder {
                csrc: vec![0; 16],
                ..Default::default()
            },
            RtpBuilder {
                extension: Some(OwnedExtension::OneByte(vec![(15, vec![1])])),
                ..Default::default()
            },
            RtpBuilder {
                extension: Some(OwnedExtension::OneByte(vec![(1, vec![])])),
                ..Default::default()
            },
            RtpBuilder {
                extension: Some(OwnedExtension::TwoByte {
                    appbits: 0,
                    elements: vec![(1, vec![0; 256])],
                }),
                ..Default::default()
            },
            RtpBuilder {
                extension: Some(OwnedExtension::Raw {
                    profile: 1,
                    data: vec![0; 3],
                }),
                ..Default::default()
            },
        ];
        for b in bad {
            let mut out = vec![7];
            assert!(matches!(
                b.write(&mut out),
                Err(RtpError::Unrepresentable(_))
            ));
            assert_eq!(out, vec![7], "nothing appended on error");
        }
    }

    #[test]
    fn rewriter_passes_first_source_through_and_keeps_reordering() {
        let t0 = Instant::now();
        let mut rw = StreamRewriter::new(0xABCD, 8000, TimestampGap::Frame(160));
        let a = rw.rewrite(t0, 1, 100, 1000);
        assert_eq!(
            (a.ssrc, a.sequence_number, a.timestamp, a.switched),
            (0xABCD, 100, 1000, true)
        );
        let b = rw.rewrite(t0, 1, 102, 1320);
        assert_eq!(
            (b.sequence_number, b.timestamp, b.switched),
            (102, 1320, false)
        );
        // A late packet keeps its place.
        let c = rw.rewrite(t0, 1, 101, 1160);
        assert_eq!((c.sequence_number, c.timestamp), (101, 1160));
    }

    #[test]
    fn rewriter_continues_across_ssrc_change_by_frame() {
        let t0 = Instant::now();
        let mut rw = StreamRewriter::new(7, 8000, TimestampGap::Frame(160));
        rw.rewrite(t0, 1, 65534, 4_294_967_000);
        rw.rewrite(t0, 1, 65535, 4_294_967_160);
        // New source with unrelated numbers.
        let n = rw.rewrite(t0, 2, 5000, 12345);
        assert!(n.switched);
        assert_eq!(n.sequence_number, 0);
        assert_eq!(n.timestamp, 4_294_967_160u32.wrapping_add(160));
        let n2 = rw.rewrite(t0, 2, 5001, 12345 + 160);
        assert!(!n2.switched);
        assert_eq!(n2.sequence_number, 1);
        assert_eq!(n2.timestamp, 4_294_967_160u32.wrapping_add(320));
        // Back to the first source: continues again, no jump back.
        let o = rw.rewrite(t0, 1, 0, 24);
        assert!(o.switched);
        assert_eq!(o.sequence_number, 2);
        assert_eq!(o.timestamp, 4_294_967_160u32.wrapping_add(480));
    }

    #[test]
    fn rewriter_continues_by_wallclock_after_reset() {
        let t0 = Instant::now();
        let mut rw = StreamRewriter::new(7, 48000, TimestampGap::Wallclock);
        rw.rewrite(t0, 9, 10, 960);
        rw.rewrite(t0 + Duration::from_millis(20), 9, 11, 1920);
        // Re-INVITE: same SSRC, restarted numbers, 500 ms of silence.
        rw.reset_source();
        let r = rw.rewrite(t0 + Duration::from_millis(520), 9, 1, 0);
        assert!(r.switched);
        assert_eq!(r.sequence_number, 12);
        assert_eq!(r.timestamp, 1920 + 24_000);
        let r2 = rw.rewrite(t0 + Duration::from_millis(540), 9, 2, 960);
        assert_eq!(
            (r2.sequence_number, r2.timestamp, r2.switched),
            (13, 1920 + 24_960, false)
        );
    }

    #[test]
    fn rewriter_places_late_packets_of_previous_source() {
        let t0 = Instant::now();
        let mut rw = StreamRewriter::new(7, 8000, TimestampGap::Frame(160));
        rw.rewrite(t0, 1, 10, 1600);
        rw.rewrite(t0, 1, 12, 1920);
        let n = rw.rewrite(t0, 2, 500, 0);
        assert_eq!(
            (n.sequence_number, n.timestamp, n.switched),
            (13, 2080, true)
        );
        // Packet 11 of the first source arrives late: it keeps its old place.
        let late = rw.rewrite(t0, 1, 11, 1760);
        assert_eq!(
            (late.sequence_number, late.timestamp, late.switched),
            (11, 1760, false)
        );
        let n2 = rw.rewrite(t0, 2, 501, 160);
        assert_eq!((n2.sequence_number, n2.switched), (14, false));
        // A packet of the first source that was never sent before the switch is a switch back.
        let back = rw.rewrite(t0, 1, 13, 2080);
        assert_eq!(
            (back.sequence_number, back.timestamp, back.switched),
            (15, 2400, true)
        );
    }

    #[test]
    fn rewrite_packet_in_place() {
        let t0 = Instant::now();
        let mut rw = StreamRewriter::new(0x0102_0304, 8000, TimestampGap::Frame(160));
        let mut buf = RtpBuilder {
            sequence_number: 5,
            timestamp: 800,
            ssrc: 99,
            payload: vec![1, 2, 3],
            ..Default::default()
        }
        .to_vec()
        .unwrap();
        let r = rw.rewrite_packet(t0, &mut buf, true).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker && r.switched);
        assert_eq!(
            (p.ssrc, p.sequence_number, p.timestamp),
            (0x0102_0304, 5, 800)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
        assert!(rw.rewrite_packet(t0, &mut [0u8; 3], true).is_err());
    }
}
