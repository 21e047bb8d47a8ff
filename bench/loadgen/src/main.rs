//! Headless load generator and forwarding benchmark for Strowger. The clients are str0m `Rtc`s
//! (no browser). See bench/README.md.
//!
//! - `inproc`: the SFU core linked in, a virtual network and clock in memory; measures the time
//!   spent inside `Sfu` calls per forwarded packet (and runs under callgrind for a repeatable
//!   instruction count).
//! - `udp`: a running server over WebSocket signalling and real UDP on 127.0.0.1; measures loss,
//!   latency and the server's CPU per forwarded packet.

#![forbid(unsafe_code)]

mod common;
mod inproc;
mod udp;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Strowger forwarding benchmark (str0m clients)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// The SFU core in process, virtual network and clock (deterministic counts).
    Inproc(inproc::InprocArgs),
    /// A running server: WebSocket signalling, real UDP on loopback.
    Udp(udp::UdpArgs),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.mode {
        Mode::Inproc(a) => inproc::run(a),
        Mode::Udp(a) => udp::run(a),
    };
    if let Err(e) = r {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
