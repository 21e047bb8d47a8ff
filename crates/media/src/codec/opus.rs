//! Opus (RFC 6716) through the pure-Rust `ropus` port of libopus, mono or stereo, RTP payload
//! format per RFC 7587 (one Opus packet per RTP payload, RTP clock 48000 whatever the PCM rate).
//!
//! The PCM ("API") rate of the encoder and decoder is 48 kHz by default and may be 8, 12, 16 or
//! 24 kHz instead: a leg bridged to G.711 can then feed the encoder 8 kHz PCM and take 8 kHz PCM
//! from the decoder, with no resampler. The packets are the same Opus packets either way (an
//! encoder at 8 kHz codes narrowband audio; any decoder plays them at any rate).
//!
//! [`OpusOptions::default`] runs the encoder at complexity 10 (the quality reference);
//! telephony legs use less (see `pipeline::OpusSettings`).

use ropus::{Application, Bandwidth, Bitrate, Channels, DecodeMode, InbandFec};

use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind};

/// The default PCM rate of Opus here (also the RTP clock rate of Opus).
pub const SAMPLE_RATE: u32 = 48_000;
/// PCM rates Opus encoders and decoders can run at.
pub const API_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Samples per channel in 120 ms at 48 kHz, the longest Opus packet.
const MAX_PACKET_SAMPLES: usize = SAMPLE_RATE as usize * 6 / 50;

/// Highest audio bandwidth the encoder may code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpusBandwidth {
    /// 4 kHz audio (SILK at 8 kHz internally): all G.711 carries.
    Narrowband,
    /// 6 kHz audio.
    Mediumband,
    /// 8 kHz audio (SILK at 16 kHz internally): all G.722 carries.
    Wideband,
    /// 12 kHz audio.
    Superwideband,
    /// 20 kHz audio: no limit.
    Fullband,
}

impl OpusBandwidth {
    fn to_ropus(self) -> Bandwidth {
        match self {
            OpusBandwidth::Narrowband => Bandwidth::Narrowband,
            OpusBandwidth::Mediumband => Bandwidth::Mediumband,
            OpusBandwidth::Wideband => Bandwidth::Wideband,
            OpusBandwidth::Superwideband => Bandwidth::Superwideband,
            OpusBandwidth::Fullband => Bandwidth::Fullband,
        }
    }

    /// The narrowest bandwidth that carries all of the audio of PCM at `rate` Hz (its Nyquist).
    pub fn for_rate(rate: u32) -> Self {
        match rate {
            0..=8_000 => OpusBandwidth::Narrowband,
            8_001..=12_000 => OpusBandwidth::Mediumband,
            12_001..=16_000 => OpusBandwidth::Wideband,
            16_001..=24_000 => OpusBandwidth::Superwideband,
            _ => OpusBandwidth::Fullband,
        }
    }
}
/// Largest payload the encoder may produce (RFC 6716 caps a frame at 1275 bytes; a 120 ms
/// packet carries up to 6 of them plus framing).
const MAX_PAYLOAD: usize = 4000;

/// How an Opus encoder is set up; [`Default`] is what [`super::new_encoder`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusOptions {
    /// 1 (mono) or 2 (stereo, interleaved).
    pub channels: u16,
    /// Target bit rate in bit/s (500..=512000).
    pub bitrate: u32,
    /// In-band forward error correction (LBRR): each packet also carries a coarse copy of the
    /// previous frame, which [`OpusDecoder::decode_fec`] rebuilds a lost frame from.
    pub fec: bool,
    /// Packet loss the encoder should expect, in percent (0..=100); FEC only spends bits on
    /// redundancy when this is above zero.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission: during silence the encoder emits tiny packets (1–2 bytes)
    /// that the caller need not send.
    pub dtx: bool,
    /// PCM rate of the encoder's input, one of [`API_RATES`]. At 8 kHz the encoder codes
    /// narrowband audio only, at 16 kHz up to wideband.
    pub sample_rate: u32,
    /// Encoder complexity, 0..=10: CPU against quality (libopus's own default is 10 on desktop
    /// CPUs; SILK's delayed-decision quantiser, the biggest cost, gets fewer states below 8).
    pub complexity: u8,
    /// Highest bandwidth coded; the encoder picks less by itself at low bit rates.
    pub max_bandwidth: OpusBandwidth,
}

impl Default for OpusOptions {
    /// 48 kHz mono, 32 kbit/s, complexity 10, fullband, FEC on for 10 % expected loss, DTX off.
    fn default() -> Self {
        OpusOptions {
            channels: 1,
            bitrate: 32_000,
            fec: true,
            expected_loss_percent: 10,
            dtx: false,
            sample_rate: SAMPLE_RATE,
            complexity: 10,
            max_bandwidth: OpusBandwidth::Fullband,
        }
    }
}

fn ropus_channels(channels: u16) -> Result<Channels, CodecError> {
    match channels {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        _ => Err(CodecError::Unsupported("opus takes 1 or 2 channels")),
    }
}

/// Samples per channel in one Opus packet, from its TOC byte and frame count (RFC 6716 §3.1),
/// at 48 kHz. Errors on an empty or malformed payload.
pub fn packet_samples(payload: &[u8]) -> Result<usize, CodecError> {
    let toc = *payload
        .first()
        .ok_or(CodecError::InvalidPayload("empty opus packet"))?;
    let config = toc >> 3;
    let per_frame = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => usize::from(
            *payload.get(1).ok_or(CodecError::InvalidPayload(
                "opus code 3 packet without count",
            ))? & 0x3f,
        ),
    };
    let total = per_frame * frames;
    if frames == 0 || total > MAX_PACKET_SAMPLES {
        return Err(CodecError::InvalidPayload("opus packet frame count"));
    }
    Ok(total)
}

/// Opus encoder: interleaved 16-bit PCM at its API rate (48 kHz by default) in frames of 2.5, 5,
/// 10, 20, 40, 60, 80, 100 or 120 ms, one Opus packet per call.
pub struct OpusEncoder {
    inner: ropus::Encoder,
    options: OpusOptions,
    scratch: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder for VoIP (speech-tuned) with `options`.
    pub fn new(options: OpusOptions) -> Result<Self, CodecError> {
        let channels = ropus_channels(options.channels)?;
        if !(500..=512_000).contains(&options.bitrate) {
            return Err(CodecError::Unsupported(
                "opus bit rate outside 500..=512000",
            ));
        }
        if options.expected_loss_percent > 100 {
            return Err(CodecError::Unsupported("opus expected loss above 100 %"));
        }
        if !API_RATES.contains(&options.sample_rate) {
            return Err(CodecError::Unsupported(
                "opus sample rate not 8, 12, 16, 24 or 48 kHz",
            ));
        }
        if options.complexity > 10 {
            return Err(CodecError::Unsupported("opus complexity above 10"));
        }
        let inner = ropus::Encoder::builder(options.sample_rate, channels, Application::Voip)
            .bitrate(Bitrate::Bits(options.bitrate))
            .complexity(options.complexity)
            .max_bandwidth(options.max_bandwidth.to_ropus())
            .inband_fec(if options.fec {
                InbandFec::Enabled
            } else {
                InbandFec::Disabled
            })
            .packet_loss_perc(options.expected_loss_percent)
            .dtx(options.dtx)
            .build()
            .map_err(|_| CodecError::Unsupported("opus encoder parameters"))?;
        Ok(OpusEncoder {
            inner,
            options,
            scratch: vec![0; MAX_PAYLOAD],
        })
    }

    /// The options it was built with, with the expected loss and FEC last set.
    pub fn options(&self) -> OpusOptions {
        self.options
    }

    /// Changes the packet loss the encoder expects (0..=100 %, clamped) and with it in-band FEC:
    /// on while the loss is above zero, off at zero (LBRR data only helps a receiver that loses
    /// packets, and costs encoder work and bits). Call it with the loss the receiver reports
    /// (RTCP fraction lost, smoothed).
    pub fn set_expected_loss(&mut self, percent: u8) {
        let percent = percent.min(100);
        let fec = percent > 0;
        if percent == self.options.expected_loss_percent && fec == self.options.fec {
            return;
        }
        let fec_mode = if fec {
            InbandFec::Enabled
        } else {
            InbandFec::Disabled
        };
        if self.inner.set_packet_loss_perc(percent).is_ok()
            && self.inner.set_inband_fec(fec_mode).is_ok()
        {
            self.options.expected_loss_percent = percent;
            self.options.fec = fec;
        }
    }

    /// Encoder look-ahead in samples per channel: the decoder's output lags the input by this
    /// much (the `pre_skip` of an Ogg Opus file).
    pub fn lookahead(&self) -> u32 {
        self.inner.lookahead()
    }
}

impl AudioEncoder for OpusEncoder {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn sample_rate(&self) -> u32 {
        self.options.sample_rate
    }

    fn channels(&self) -> u16 {
        self.options.channels
    }

    fn set_expected_loss(&mut self, percent: u8) {
        OpusEncoder::set_expected_loss(self, percent);
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let ch = usize::from(self.options.channels);
        if !pcm.len().is_multiple_of(ch)
            || !self.inner.valid_frame_sizes().contains(&(pcm.len() / ch))
        {
            return Err(CodecError::FrameSize(pcm.len()));
        }
        let n = self
            .inner
            .encode(pcm, &mut self.scratch)
            .map_err(|e| match e {
                ropus::EncodeError::BadArg => CodecError::FrameSize(pcm.len()),
                _ => CodecError::Unsupported("opus encoder failed"),
            })?;
        out.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }
}

/// Opus decoder: any Opus packet (up to 120 ms) to interleaved 16-bit PCM at its API rate
/// (48 kHz by default), with Opus's own packet-loss concealment and FEC recovery.
pub struct OpusDecoder {
    inner: ropus::Decoder,
    channels: u16,
    rate: u32,
    /// Samples per channel in 2.5 ms, the smallest Opus frame.
    quantum: usize,
    /// Samples per channel in 120 ms, the longest Opus packet.
    max_packet: usize,
    scratch: Vec<i16>,
}

fn decode_error(e: ropus::DecodeError) -> CodecError {
    match e {
        ropus::DecodeError::InvalidPacket => CodecError::InvalidPayload("malformed opus packet"),
        ropus::DecodeError::BufferTooSmall => {
            CodecError::InvalidPayload("opus packet longer than 120 ms")
        }
        _ => CodecError::InvalidPayload("opus decoder failed"),
    }
}

impl OpusDecoder {
    /// A decoder producing `channels` (1 or 2) interleaved channels, whatever the packets carry
    /// (Opus down- or up-mixes).
    pub fn new(channels: u16) -> Result<Self, CodecError> {
        Self::with_rate(SAMPLE_RATE, channels)
    }

    /// A decoder producing PCM at `rate` Hz (one of [`API_RATES`]): Opus decodes straight to
    /// that rate (band-limiting wider packets), so a G.711 leg needs no resampler.
    pub fn with_rate(rate: u32, channels: u16) -> Result<Self, CodecError> {
        if !API_RATES.contains(&rate) {
            return Err(CodecError::Unsupported(
                "opus sample rate not 8, 12, 16, 24 or 48 kHz",
            ));
        }
        let inner = ropus::Decoder::new(rate, ropus_channels(channels)?)
            .map_err(|_| CodecError::Unsupported("opus decoder parameters"))?;
        let max_packet = rate as usize * 6 / 50;
        Ok(OpusDecoder {
            inner,
            channels,
            rate,
            quantum: rate as usize / 400,
            max_packet,
            scratch: vec![0; max_packet * usize::from(channels)],
        })
    }

    /// Rebuilds a lost frame of `samples` samples per channel from the in-band FEC data of the
    /// packet that followed it (`next_payload`), and appends it to `out`. Call it in place of
    /// [`AudioDecoder::conceal`] for the lost frame, then decode `next_payload` normally. If
    /// `next_payload` carries no FEC data, Opus conceals instead. `samples` must be a multiple
    /// of 2.5 ms up to 120 ms at the decoder's rate; usually it is [`packet_samples`] of
    /// `next_payload` (scaled to the decoder's rate).
    pub fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), CodecError> {
        if samples == 0 || !samples.is_multiple_of(self.quantum) || samples > self.max_packet {
            return Err(CodecError::FrameSize(samples));
        }
        if next_payload.is_empty() {
            return Err(CodecError::InvalidPayload("empty opus packet"));
        }
        let ch = usize::from(self.channels);
        let buf = &mut self.scratch[..samples * ch];
        let n = self
            .inner
            .decode(next_payload, buf, DecodeMode::Fec)
            .map_err(decode_error)?;
        out.extend_from_slice(&buf[..n * ch]);
        Ok(())
    }
}

impl AudioDecoder for OpusDecoder {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        // An empty payload would mean "lost" to Opus; here it is an error, `conceal` is for loss.
        packet_samples(payload)?;
        let n = self
            .inner
            .decode(payload, &mut self.scratch, DecodeMode::Normal)
            .map_err(decode_error)?;
        out.extend_from_slice(&self.scratch[..n * usize::from(self.channels)]);
        Ok(())
    }

    /// Opus concealment works in steps of 2.5 ms: a `samples` count that is not a multiple of
    /// 2.5 ms is concealed rounded up and the surplus dropped.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let ch = usize::from(self.channels);
        let mut left = samples;
        while left > 0 {
            let q = self.quantum;
            let step = left.div_ceil(q).min(self.max_packet / q) * q;
            let take = step.min(left);
            let buf = &mut self.scratch[..step * ch];
            match self.inner.decode(&[], buf, DecodeMode::Normal) {
                Ok(n) if n >= take => out.extend_from_slice(&buf[..take * ch]),
                _ => out.resize(out.len() + take * ch, 0),
            }
            left -= take;
        }
    }
}
