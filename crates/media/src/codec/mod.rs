//! Audio codecs behind one small pair of traits.
//!
//! An encoder takes interleaved 16-bit PCM at its own sample rate, one frame at a time, and
//! appends the payload of one RTP packet; a decoder does the reverse and can conceal a lost frame.
//! Frame sizes are whatever the caller passes (any multiple of the codec's minimum), so reframing
//! (10–60 ms ptime) is the pipeline's job, not the codec's.

use std::fmt;

/// The codecs the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law (PCMU, static payload type 0).
    Pcmu,
    /// G.711 A-law (PCMA, static payload type 8).
    Pcma,
    /// G.722 at 64 kbit/s (payload type 9; RTP clock 8000 although it samples at 16000).
    G722,
    /// Opus (dynamic payload type; RTP clock 48000).
    Opus,
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
        })
    }
}

/// Why a codec refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The PCM frame is not a size the codec can encode.
    #[error("bad frame size: {0} samples")]
    FrameSize(usize),
    /// The payload is corrupt or truncated.
    #[error("invalid payload: {0}")]
    InvalidPayload(&'static str),
    /// Unsupported parameters (rate, channels, bitrate).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Encodes PCM into RTP payloads.
pub trait AudioEncoder: Send {
    /// Which codec.
    fn kind(&self) -> CodecKind;
    /// PCM sample rate the encoder takes, in Hz.
    fn sample_rate(&self) -> u32;
    /// Interleaved channels.
    fn channels(&self) -> u16;
    /// Encodes one frame of interleaved PCM and appends the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Tells the encoder how much packet loss (percent) the receiver reports, for codecs that
    /// can protect against it (Opus: in-band FEC while it is above zero). Others ignore it.
    fn set_expected_loss(&mut self, _percent: u8) {}
}

/// Decodes RTP payloads into PCM.
pub trait AudioDecoder: Send {
    /// Which codec.
    fn kind(&self) -> CodecKind;
    /// PCM sample rate the decoder produces, in Hz.
    fn sample_rate(&self) -> u32;
    /// Interleaved channels.
    fn channels(&self) -> u16;
    /// Decodes one payload and appends interleaved PCM to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Appends `samples` samples per channel standing in for a lost frame (packet-loss
    /// concealment). Codecs without their own concealment fade the last frame out.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
}

pub mod cn;
pub mod g711;
pub mod g722;
pub mod opus;

/// A new encoder for `kind` with its default settings (Opus: [`opus::OpusOptions::default`]).
pub fn new_encoder(kind: CodecKind) -> Result<Box<dyn AudioEncoder>, CodecError> {
    match kind {
        CodecKind::Pcmu => Ok(Box::new(g711::G711Encoder::new(g711::Law::Mu))),
        CodecKind::Pcma => Ok(Box::new(g711::G711Encoder::new(g711::Law::A))),
        CodecKind::G722 => Ok(Box::new(g722::G722Encoder::new())),
        CodecKind::Opus => Ok(Box::new(opus::OpusEncoder::new(
            opus::OpusOptions::default(),
        )?)),
    }
}

/// A new decoder for `kind` (Opus: 48 kHz mono).
pub fn new_decoder(kind: CodecKind) -> Result<Box<dyn AudioDecoder>, CodecError> {
    match kind {
        CodecKind::Pcmu => Ok(Box::new(g711::G711Decoder::new(g711::Law::Mu))),
        CodecKind::Pcma => Ok(Box::new(g711::G711Decoder::new(g711::Law::A))),
        CodecKind::G722 => Ok(Box::new(g722::G722Decoder::new())),
        CodecKind::Opus => Ok(Box::new(opus::OpusDecoder::new(1)?)),
    }
}
