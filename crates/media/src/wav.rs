//! Minimal RIFF/WAVE writing and reading: 16-bit PCM, G.711 µ-law and A-law.
//!
//! Enough for recordings and tests; the reader is bounded and returns an error on anything it
//! does not understand instead of panicking.

/// The sample format of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavFormat {
    /// Little-endian signed 16-bit PCM (format tag 1).
    Pcm16,
    /// G.711 A-law, 8 bits a sample (format tag 6).
    Alaw,
    /// G.711 µ-law, 8 bits a sample (format tag 7).
    Ulaw,
}

impl WavFormat {
    fn tag(self) -> u16 {
        match self {
            WavFormat::Pcm16 => 1,
            WavFormat::Alaw => 6,
            WavFormat::Ulaw => 7,
        }
    }
    fn bits(self) -> u16 {
        match self {
            WavFormat::Pcm16 => 16,
            WavFormat::Alaw | WavFormat::Ulaw => 8,
        }
    }
}

/// The header fields of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavSpec {
    /// Sample format.
    pub format: WavFormat,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// Why a WAV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file, or truncated.
    #[error("malformed WAV: {0}")]
    Malformed(&'static str),
    /// A format tag or sample size this reader does not handle.
    #[error("unsupported WAV format tag {0} with {1} bits")]
    Unsupported(u16, u16),
}

/// Builds a complete WAV file around `data` (already in `spec.format`).
pub fn write(spec: WavSpec, data: &[u8]) -> Vec<u8> {
    let pcm = spec.format == WavFormat::Pcm16;
    let fmt_len: u32 = if pcm { 16 } else { 18 };
    let fact_len: u32 = if pcm { 0 } else { 12 };
    let pad = data.len() % 2;
    let riff_len = 4 + (8 + fmt_len) + fact_len + 8 + data.len() as u32 + pad as u32;
    let block_align = spec.channels * spec.format.bits() / 8;
    let mut out = Vec::with_capacity(riff_len as usize + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_len.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&fmt_len.to_le_bytes());
    out.extend_from_slice(&spec.format.tag().to_le_bytes());
    out.extend_from_slice(&spec.channels.to_le_bytes());
    out.extend_from_slice(&spec.sample_rate.to_le_bytes());
    out.extend_from_slice(&(spec.sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&spec.format.bits().to_le_bytes());
    if !pcm {
        out.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        let frames = data.len() as u32 / u32::from(block_align.max(1));
        out.extend_from_slice(&frames.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if pad == 1 {
        out.push(0);
    }
    out
}

/// Builds a 16-bit PCM WAV file from samples.
pub fn write_pcm16(sample_rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let spec = WavSpec {
        format: WavFormat::Pcm16,
        sample_rate,
        channels,
    };
    write(spec, &data)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a WAV file: its spec and the bytes of its data chunk. Handles the extensible format
/// (tag 0xFFFE) by its sub-format tag. A data chunk longer than the file (streamed writers put
/// 0 or 0xFFFFFFFF there) is cut at the end of the file.
pub fn read(file: &[u8]) -> Result<(WavSpec, &[u8]), WavError> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(WavError::Malformed("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut spec = None;
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let len = u32_at(file, at + 4).ok_or(WavError::Malformed("chunk header"))? as usize;
        let body = at + 8;
        if id == b"fmt " {
            let mut tag = u16_at(file, body).ok_or(WavError::Malformed("short fmt"))?;
            let channels = u16_at(file, body + 2).ok_or(WavError::Malformed("short fmt"))?;
            let sample_rate = u32_at(file, body + 4).ok_or(WavError::Malformed("short fmt"))?;
            let bits = u16_at(file, body + 14).ok_or(WavError::Malformed("short fmt"))?;
            if tag == 0xFFFE {
                tag = u16_at(file, body + 24).ok_or(WavError::Malformed("short fmt"))?;
            }
            let format = match (tag, bits) {
                (1, 16) => WavFormat::Pcm16,
                (6, 8) => WavFormat::Alaw,
                (7, 8) => WavFormat::Ulaw,
                _ => return Err(WavError::Unsupported(tag, bits)),
            };
            if channels == 0 {
                return Err(WavError::Malformed("zero channels"));
            }
            spec = Some(WavSpec {
                format,
                sample_rate,
                channels,
            });
        } else if id == b"data" {
            let spec = spec.ok_or(WavError::Malformed("data before fmt"))?;
            let end = body.saturating_add(len).min(file.len());
            return Ok((spec, &file[body..end]));
        }
        at = body.saturating_add(len).saturating_add(len % 2);
    }
    Err(WavError::Malformed("no data chunk"))
}

/// Little-endian 16-bit PCM bytes → samples (a trailing odd byte is ignored).
pub fn pcm16_samples(data: &[u8]) -> Vec<i16> {
    data.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN];
        let file = write_pcm16(16000, 1, &samples);
        assert_eq!(file.len(), 44 + 10);
        let (spec, data) = read(&file).unwrap();
        assert_eq!(spec.format, WavFormat::Pcm16);
        assert_eq!(spec.sample_rate, 16000);
        assert_eq!(pcm16_samples(data), samples);

        let spec = WavSpec {
            format: WavFormat::Ulaw,
            sample_rate: 8000,
            channels: 1,
        };
        let file = write(spec, &[1, 2, 3]);
        assert_eq!(read(&file).unwrap(), (spec, &[1u8, 2, 3][..]));
    }

    #[test]
    fn rejects_garbage() {
        assert!(read(b"").is_err());
        assert!(read(b"RIFF\0\0\0\0WAVE").is_err());
        assert!(read(b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff").is_err());
        let mut file = write_pcm16(8000, 1, &[1, 2]);
        file.truncate(30);
        assert!(read(&file).is_err());
    }
}
