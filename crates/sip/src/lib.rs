//! The sans-IO SIP protocol core of Strowger.
//!
//! Messages (parse and serialize, RFC 3261 §7, §20, §25), URIs, typed views of the headers that
//! routing needs, transactions (§17 with RFC 6026), dialogs, digest authentication (RFC 2617 /
//! RFC 7616) and SDP offer/answer (RFC 3264, RFC 4566).
//!
//! Message parsing follows the RFC 3261 §25 grammar (folding, compact names, quoted strings,
//! %-escapes, IPv6 references per RFC 5118) and is checked against the RFC 4475 torture messages
//! (`tests/torture.rs`), 100,000 seeded mutations (`tests/mutate.rs`) and cargo-fuzz
//! (`FUZZING.md`). [`ParseError::status`] gives the answer for a rejected message (400, 416,
//! 505, 513); [`Message::parse_headers`] and [`Response::answering`] let a server send it;
//! [`Request::validate`] checks the mandatory headers. [`multipart`] splits multipart bodies.
//!
//! No sockets, no tokio, no clock of its own: bytes and the current time come in; messages to
//! send, events and the next deadline go out. Every parser is bounded and returns an error, never
//! panics.

#![forbid(unsafe_code)]

pub mod dialog;
pub mod digest;
mod fields;
mod grammar;
pub mod message;
pub mod multipart;
mod parse;
pub mod sdp;
pub mod text;
pub mod transaction;
mod uri;

pub use message::{
    frame_len, CSeq, Header, HeaderName, Headers, Host, Limits, Message, Method, NameAddr, Params,
    ParseError, Request, Response, Scheme, Uri, Via,
};
pub use text::Text;
