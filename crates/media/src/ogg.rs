//! The Ogg container (RFC 3533) and the Ogg Opus mapping (RFC 7845): a page writer, a bounded
//! page reader that reassembles packets, and the `OpusHead` / `OpusTags` headers. Enough to
//! record calls to `.opus` files and to read files other tools wrote.
//!
//! The reader follows the first logical stream (the serial number of the first page) and skips
//! pages of any other; it checks every page's CRC and never allocates more than the limits in
//! [`ReadLimits`].

/// Why an Ogg stream or an Ogg Opus header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OggError {
    /// A page does not start with `OggS`, has an unknown version or is cut short.
    #[error("bad ogg page at byte {0}")]
    BadPage(usize),
    /// A page's CRC does not match its contents.
    #[error("ogg page CRC mismatch at byte {0}")]
    Crc(usize),
    /// A packet continues a packet that never started, or the sequence numbers skip.
    #[error("ogg packet continuity broken at byte {0}")]
    Continuity(usize),
    /// A packet or the whole stream is larger than the limits allow.
    #[error("ogg stream over the limit: {0}")]
    TooLarge(&'static str),
    /// An `OpusHead` or `OpusTags` header is malformed.
    #[error("bad opus header: {0}")]
    BadHeader(&'static str),
}

/// CRC-32 as Ogg uses it: polynomial 0x04C11DB7, not reflected, initial value 0, no final XOR.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut r = (i as u32) << 24;
            let mut bit = 0;
            while bit < 8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04C1_1DB7
                } else {
                    r << 1
                };
                bit += 1;
            }
            table[i] = r;
            i += 1;
        }
        table
    };
    data.iter().fold(crc, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

const HEADER_CONTINUED: u8 = 0x01;
const HEADER_BOS: u8 = 0x02;
const HEADER_EOS: u8 = 0x04;
/// Granule position of a page on which no packet ends.
const NO_GRANULE: u64 = u64::MAX;

/// Writes one logical Ogg stream, one packet at a time; each packet gets its own page(s), so a
/// recording can be flushed to disk after every packet.
#[derive(Debug, Clone)]
pub struct OggWriter {
    serial: u32,
    sequence: u32,
    started: bool,
}

impl OggWriter {
    /// A stream with this serial number.
    pub fn new(serial: u32) -> Self {
        OggWriter {
            serial,
            sequence: 0,
            started: false,
        }
    }

    /// Appends to `out` the page(s) carrying `packet`; the last of them gets `granule` (for
    /// Opus: 48 kHz samples per channel up to the end of this packet, pre-skip included). The
    /// first page of the stream is marked BOS; pass `end` for the last packet (EOS).
    pub fn write_packet(&mut self, packet: &[u8], granule: u64, end: bool, out: &mut Vec<u8>) {
        // Lacing: 255-byte segments then one < 255 (possibly 0) ending the packet; a page
        // holds at most 255 segments.
        let mut rest = packet;
        let mut continued = false;
        loop {
            let mut lacing = Vec::with_capacity(255);
            let mut body = 0usize;
            let mut finished = false;
            while lacing.len() < 255 {
                let seg = rest.len().saturating_sub(body).min(255);
                lacing.push(seg as u8);
                body += seg;
                if seg < 255 {
                    finished = true;
                    break;
                }
            }
            let mut flags = 0;
            if continued {
                flags |= HEADER_CONTINUED;
            }
            if !self.started {
                flags |= HEADER_BOS;
                self.started = true;
            }
            if finished && end {
                flags |= HEADER_EOS;
            }
            let page_granule = if finished { granule } else { NO_GRANULE };
            self.page(flags, page_granule, &lacing, &rest[..body], out);
            rest = &rest[body..];
            if finished {
                return;
            }
            continued = true;
        }
    }

    fn page(&mut self, flags: u8, granule: u64, lacing: &[u8], body: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(b"OggS");
        out.push(0); // version
        out.push(flags);
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // CRC, filled in below
        out.push(lacing.len() as u8);
        out.extend_from_slice(lacing);
        out.extend_from_slice(body);
        let crc = crc32(&out[start..]);
        out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
        self.sequence = self.sequence.wrapping_add(1);
    }
}

/// One packet read back from an Ogg stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OggPacket {
    /// The packet's bytes.
    pub data: Vec<u8>,
    /// The granule position of the page on which the packet ends, if it is the last packet
    /// ending there (other packets have no granule of their own).
    pub granule: Option<u64>,
}

/// Bounds on what [`read_packets`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest single packet, in bytes.
    pub max_packet: usize,
    /// Most packets in the stream.
    pub max_packets: usize,
}

impl Default for ReadLimits {
    /// 1 MiB packets, a million packets (over five hours of 20 ms Opus).
    fn default() -> Self {
        ReadLimits {
            max_packet: 1 << 20,
            max_packets: 1_000_000,
        }
    }
}

/// Reads the packets of the first logical stream in `data` (a whole Ogg file), checking CRCs,
/// sequence numbers and packet continuity. A packet left unfinished at the end is dropped.
pub fn read_packets(data: &[u8], limits: ReadLimits) -> Result<Vec<OggPacket>, OggError> {
    let mut packets = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    let mut serial = None;
    let mut next_sequence = 0u32;
    let mut pos = 0;
    while pos < data.len() {
        let at = pos;
        let header = data.get(pos..pos + 27).ok_or(OggError::BadPage(at))?;
        if &header[..4] != b"OggS" || header[4] != 0 {
            return Err(OggError::BadPage(at));
        }
        let flags = header[5];
        let granule = u64::from_le_bytes(header[6..14].try_into().expect("8 bytes"));
        let page_serial = u32::from_le_bytes(header[14..18].try_into().expect("4 bytes"));
        let sequence = u32::from_le_bytes(header[18..22].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[22..26].try_into().expect("4 bytes"));
        let nsegs = usize::from(header[26]);
        let lacing = data
            .get(pos + 27..pos + 27 + nsegs)
            .ok_or(OggError::BadPage(at))?;
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let end = pos + 27 + nsegs + body_len;
        let page = data.get(pos..end).ok_or(OggError::BadPage(at))?;
        // The CRC covers the page with its own CRC field taken as zero.
        let computed = crc32_update(crc32_update(crc32(&page[..22]), &[0; 4]), &page[26..]);
        if computed != crc {
            return Err(OggError::Crc(at));
        }
        pos = end;
        match serial {
            None => serial = Some(page_serial),
            Some(s) if s != page_serial => continue,
            Some(_) => {
                if sequence != next_sequence {
                    return Err(OggError::Continuity(at));
                }
            }
        }
        next_sequence = sequence.wrapping_add(1);

        let body = &page[27 + nsegs..];
        let continued = flags & HEADER_CONTINUED != 0;
        if continued != partial.is_some() {
            // A continuation flag without a packet to continue, or a new packet while one is
            // unfinished.
            return Err(OggError::Continuity(at));
        }
        // The index of the last segment that ends a packet: that packet gets the granule.
        let last_end = lacing.iter().rposition(|&l| l < 255);
        let mut offset = 0;
        for (i, &l) in lacing.iter().enumerate() {
            let seg = &body[offset..offset + usize::from(l)];
            offset += usize::from(l);
            let buf = partial.get_or_insert_with(Vec::new);
            if buf.len() + seg.len() > limits.max_packet {
                return Err(OggError::TooLarge("packet"));
            }
            buf.extend_from_slice(seg);
            if l < 255 {
                if packets.len() >= limits.max_packets {
                    return Err(OggError::TooLarge("packet count"));
                }
                packets.push(OggPacket {
                    data: partial.take().unwrap_or_default(),
                    granule: (Some(i) == last_end && granule != NO_GRANULE).then_some(granule),
                });
            }
        }
    }
    Ok(packets)
}

/// The Ogg Opus identification header (RFC 7845 §5.1), channel mapping family 0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// 1 or 2.
    pub channels: u8,
    /// 48 kHz samples per channel to drop from the start of the decoded stream.
    pub pre_skip: u16,
    /// Sample rate of the original input (informational).
    pub input_sample_rate: u32,
    /// Gain to apply on output, Q7.8 dB.
    pub output_gain: i16,
}

impl OpusHead {
    /// The 19-byte header packet.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(19);
        b.extend_from_slice(b"OpusHead");
        b.push(1); // version
        b.push(self.channels);
        b.extend_from_slice(&self.pre_skip.to_le_bytes());
        b.extend_from_slice(&self.input_sample_rate.to_le_bytes());
        b.extend_from_slice(&self.output_gain.to_le_bytes());
        b.push(0); // channel mapping family 0: mono or stereo, no table
        b
    }

    /// Parses an `OpusHead` packet; refuses other mapping families and versions ≥ 16.
    pub fn parse(p: &[u8]) -> Result<Self, OggError> {
        if p.len() < 19 || &p[..8] != b"OpusHead" {
            return Err(OggError::BadHeader("not an OpusHead"));
        }
        if p[8] >= 16 {
            return Err(OggError::BadHeader("OpusHead version"));
        }
        let channels = p[9];
        if p[18] != 0 || !(1..=2).contains(&channels) {
            return Err(OggError::BadHeader("only mono or stereo, mapping family 0"));
        }
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([p[10], p[11]]),
            input_sample_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
            output_gain: i16::from_le_bytes([p[16], p[17]]),
        })
    }
}

/// An `OpusTags` comment header (RFC 7845 §5.2) with a vendor string and no comments.
pub fn opus_tags(vendor: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + vendor.len());
    b.extend_from_slice(b"OpusTags");
    b.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    b.extend_from_slice(vendor.as_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// Builds a whole Ogg Opus file from Opus packets (each `samples` per channel at 48 kHz, as
/// [`crate::codec::opus::packet_samples`] tells), with `head` and an `OpusTags` header.
///
/// Granule positions count decoded samples including the pre-skip, so a player drops
/// `head.pre_skip` samples at the start: to keep the whole input, feed the encoder that much
/// more (e.g. silence) at the end, and pass the input's real length per channel as `length`,
/// which trims the end (the last page's granule becomes `pre_skip + length`).
pub fn write_opus_file(
    serial: u32,
    head: OpusHead,
    packets: &[(&[u8], usize)],
    length: Option<u64>,
) -> Vec<u8> {
    let mut w = OggWriter::new(serial);
    let mut out = Vec::new();
    w.write_packet(&head.to_bytes(), 0, false, &mut out);
    w.write_packet(&opus_tags("strowger"), 0, packets.is_empty(), &mut out);
    let mut granule = 0u64;
    for (i, &(p, samples)) in packets.iter().enumerate() {
        granule += samples as u64;
        let last = i + 1 == packets.len();
        if let (true, Some(len)) = (last, length) {
            granule = granule.min(u64::from(head.pre_skip) + len);
        }
        w.write_packet(p, granule, last, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_known_string() {
        // CRC-32/MPEG-2 differs (init 0xFFFFFFFF); Ogg's variant (init 0) of "123456789".
        assert_eq!(crc32(b"123456789"), 0x89A1_897F);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn packets_round_trip_across_pages() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let packets: Vec<Vec<u8>> = vec![vec![], vec![1, 2, 3], vec![9; 255], big, vec![4; 510]];
        let mut w = OggWriter::new(0x1234);
        let mut file = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            w.write_packet(p, i as u64 * 10, i + 1 == packets.len(), &mut file);
        }
        let back = read_packets(&file, ReadLimits::default()).unwrap();
        assert_eq!(back.len(), packets.len());
        for (i, (b, p)) in back.iter().zip(&packets).enumerate() {
            assert_eq!(&b.data, p);
            assert_eq!(b.granule, Some(i as u64 * 10));
        }
        // Limits hold.
        let tight = ReadLimits {
            max_packet: 100_000,
            max_packets: 10,
        };
        assert_eq!(
            read_packets(&file, tight),
            Err(OggError::TooLarge("packet"))
        );
        // A flipped bit fails the CRC.
        let mut bad = file.clone();
        bad[40] ^= 1;
        assert!(matches!(
            read_packets(&bad, ReadLimits::default()),
            Err(OggError::Crc(28))
        ));
        // Truncation anywhere is an error, never a panic.
        for cut in [1, 26, 27, 30, file.len() - 1] {
            assert!(read_packets(&file[..cut], ReadLimits::default()).is_err());
        }
    }

    #[test]
    fn other_streams_are_skipped() {
        let (mut a, mut b) = (OggWriter::new(1), OggWriter::new(2));
        let mut file = Vec::new();
        for i in 0..5u8 {
            a.write_packet(&[i; 300], u64::from(i), i == 4, &mut file);
            b.write_packet(&[0xEE; 10], u64::from(i), i == 4, &mut file);
        }
        let back = read_packets(&file, ReadLimits::default()).unwrap();
        assert_eq!(back.len(), 5);
        for (i, p) in back.iter().enumerate() {
            assert_eq!(p.data, vec![i as u8; 300]);
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert!(read_packets(
            b"not an ogg file at all, just some words",
            ReadLimits::default()
        )
        .is_err());
        let mut x = 0x1234_5678u32;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = read_packets(&junk, ReadLimits::default());
        }
    }

    #[test]
    fn opus_head_round_trip() {
        let head = OpusHead {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: -256,
        };
        let b = head.to_bytes();
        assert_eq!(b.len(), 19);
        assert_eq!(OpusHead::parse(&b), Ok(head));
        assert!(OpusHead::parse(&b[..18]).is_err());
        assert!(OpusHead::parse(&opus_tags("x")).is_err());
    }
}
