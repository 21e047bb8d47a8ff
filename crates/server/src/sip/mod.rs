//! SIP: transports, the registrar, and calls through a B2BUA with an RTP relay.
//!
//! One task owns the sans-IO cores (transactions, dialogs, digest verifier, location service,
//! calls) and is driven by the transports' inbound queue, its own timer, and completions of the
//! few async jobs it starts (user lookups in the store). Call control never parses bytes: the
//! transports hand over datagrams or framed messages; `strowger-sip` parses them.

mod b2bua;
mod core;
pub mod protect;
pub mod registrar;
mod sdp;
pub mod stats;
pub mod tls;
pub mod transport;
pub mod ws;

pub use self::core::{start, SipHandle};
