//! WebSocket signalling (docs/protocol.md): message parsing, connections, and the hub that owns
//! sessions, presence and 1:1 calls.

pub mod hub;
pub mod proto;
pub mod ws;
