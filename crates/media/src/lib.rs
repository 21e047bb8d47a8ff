//! The sans-IO media engine of Strowger: everything between an RTP packet and a PCM sample for
//! the legs that are not WebRTC (SIP phones, trunks), and for mixing, recording and quality.
//!
//! No sockets, no tokio, no clock of its own: packets and the current time come in, packets,
//! samples and events go out. Every parser is bounded and returns an error instead of panicking.

#![forbid(unsafe_code)]

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod ogg;
pub mod pipeline;
pub mod quality;
pub mod relay;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod stats;
pub mod wav;
