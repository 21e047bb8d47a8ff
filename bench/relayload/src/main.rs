//! Load generator for the RTP relay of SIP calls (`crates/server/src/relay.rs`). See
//! bench/relay/README.md.
//!
//! `relayload run --calls N` runs the relay in this process, through its real API
//! (`Relay::allocate`, `RelayHandle::set_remote`), on 127.0.0.1, and starts a second process
//! (`relayload phones`, the same binary) that plays 2 × N phones: each sends 50 packets/s of
//! 172-byte RTP (PCMA-sized: 12-byte header + 160 bytes) to its leg of the call and counts what
//! the other phone sent. So the CPU measured here is the relay's alone (its tokio tasks, its
//! syscalls), not the phones'.

#![forbid(unsafe_code)]

// The relay shell, compiled from the server's source as is: the server crate is a binary only,
// and the file depends on nothing else in it.
#[path = "../../../crates/server/src/relay.rs"]
mod relay;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use strowger_media::relay::Leg;

use crate::relay::{Relay, RelayMetrics, RelayOptions, DROP_LABELS};

#[derive(Parser)]
#[command(name = "relayload", about = "Load generator for Strowger's RTP relay")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the relay here and the phones in a child process; print the report.
    Run(Load),
    /// The phones (started by `run`; talks to it over stdin/stdout).
    Phones(Load),
}

#[derive(Args, Clone)]
struct Load {
    /// Calls (relay sessions); 2 phones each.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Seconds before measuring (latching, start-up).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Packets per second per direction per call.
    #[arg(long, default_value_t = 50)]
    pps: u32,
    /// RTP datagram size, bytes.
    #[arg(long, default_value_t = 172)]
    size: usize,
    /// Threads playing the phones (each drives whole calls).
    #[arg(long, default_value_t = 4)]
    phone_threads: usize,
    /// First port of the relay's range.
    #[arg(long, default_value_t = 20000)]
    port_min: u16,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.mode {
        Mode::Run(a) => run(a),
        Mode::Phones(a) => phones(a),
    };
    if let Err(e) = r {
        eprintln!("relayload: {e}");
        std::process::exit(1);
    }
}

/// utime + stime of this process, seconds (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let tick = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(14) + tick(15)) as f64 / 100.0
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

fn run(a: Load) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args([
            "phones",
            "--calls",
            &a.calls.to_string(),
            "--warmup",
            &a.warmup.to_string(),
            "--seconds",
            &a.seconds.to_string(),
            "--pps",
            &a.pps.to_string(),
            "--size",
            &a.size.to_string(),
            "--phone-threads",
            &a.phone_threads.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the phones: {e}"))?;
    let mut to_child = child.stdin.take().expect("piped");
    let mut from_child = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next_line = || -> Result<String, String> {
        from_child
            .next()
            .ok_or("phones exited early")?
            .map_err(|e| e.to_string())
    };
    // The phones' addresses (their SDP).
    let mut phones = Vec::with_capacity(a.calls);
    for _ in 0..a.calls {
        let l = next_line()?;
        let (x, y) = l.split_once(' ').ok_or("bad phone line")?;
        let x: SocketAddr = x.parse().map_err(|_| "bad phone address")?;
        let y: SocketAddr = y.parse().map_err(|_| "bad phone address")?;
        phones.push((x, y));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let metrics = Arc::new(RelayMetrics::default());
    let opts = RelayOptions {
        bind: [127, 0, 0, 1].into(),
        port_min: a.port_min,
        port_max: a.port_min.saturating_add(9999),
        max_sessions: a.calls,
        ..Default::default()
    };
    let rss0 = rss_kib();
    let relay = Relay::new(opts, metrics.clone());
    let handles = rt.block_on(async {
        let mut hs = Vec::with_capacity(a.calls);
        for (i, (pa, pb)) in phones.iter().enumerate() {
            let h = relay
                .allocate(&format!("bench-{i}"))
                .map_err(|e| e.to_string())?;
            h.set_remote(Leg::A, *pa, None)
                .await
                .map_err(|e| e.to_string())?;
            h.set_remote(Leg::B, *pb, None)
                .await
                .map_err(|e| e.to_string())?;
            hs.push(h);
        }
        Ok::<_, String>(hs)
    })?;
    let rss_alloc = rss_kib();
    for h in &handles {
        writeln!(to_child, "{} {}", h.local(Leg::A), h.local(Leg::B)).map_err(|e| e.to_string())?;
    }
    to_child.flush().map_err(|e| e.to_string())?;
    if next_line()? != "START" {
        return Err("phones did not start".into());
    }
    let load_start = load1();
    std::thread::sleep(Duration::from_secs(a.warmup));
    let (c0, t0) = (cpu_secs(), Instant::now());
    let p0 = metrics.packets[0].load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(a.seconds));
    let (c1, t1) = (cpu_secs(), Instant::now());
    let p1 = metrics.packets[0].load(Ordering::Relaxed);
    let rss_run = rss_kib();
    let load_end = load1();
    let result = next_line()?;
    let _ = child.wait();

    let wall = (t1 - t0).as_secs_f64();
    let cpu = c1 - c0;
    let core_pct = 100.0 * cpu / wall;
    let per_call = core_pct / a.calls as f64;
    let relayed_pps = (p1 - p0) as f64 / wall;
    let us_per_pkt = 1e6 * cpu / (p1 - p0).max(1) as f64;
    let field = |k: &str| -> u64 {
        result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (expected, received) = (field("expected"), field("received"));
    let loss = 100.0 * (1.0 - received as f64 / expected.max(1) as f64);
    let drops: Vec<String> = DROP_LABELS
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{l}={}", metrics.dropped[i].load(Ordering::Relaxed)))
        .collect();
    println!(
        "calls={} pps/dir={} size={} warmup={}s measured={:.1}s load1={}..{}",
        a.calls, a.pps, a.size, a.warmup, wall, load_start, load_end
    );
    let offered = 2 * a.calls as u64 * u64::from(a.pps);
    // Per call at the nominal rate (2 × pps packets/s), from the measured cost per packet: the
    // honest figure when the phones could not keep up their schedule on a busy box.
    let per_call_nominal = us_per_pkt * 2.0 * f64::from(a.pps) / 1e4;
    println!(
        "relay process CPU {:.1} % of one core = {:.3} % per call; {:.1} µs per relayed packet; relayed {:.0} pps (offered {})",
        core_pct, per_call, us_per_pkt, relayed_pps, offered
    );
    println!(
        "CPU per call at the nominal {} pps each way: {:.3} % of one core",
        a.pps, per_call_nominal
    );
    if relayed_pps < 0.95 * offered as f64 {
        println!(
            "NOTE: the phones sent only {:.0} % of the offered rate in the window (they fell behind their schedule); the per-packet and nominal per-call figures still hold",
            100.0 * relayed_pps / offered as f64
        );
    }
    println!(
        "RSS {} KiB before, {} KiB after allocate, {} KiB running: {:.1} KiB per session (running)",
        rss0,
        rss_alloc,
        rss_run,
        (rss_run.saturating_sub(rss0)) as f64 / a.calls as f64
    );
    println!(
        "loss {:.3} % ({} of {} packets in the window); phones: {}",
        loss,
        expected.saturating_sub(received),
        expected,
        result
    );
    println!("relay drops: {}", drops.join(" "));
    println!(
        "RESULT {{\"calls\":{},\"cpu_core_pct\":{:.2},\"cpu_pct_per_call\":{:.4},\"cpu_pct_per_call_nominal\":{:.4},\"us_per_packet\":{:.2},\"relayed_pps\":{:.0},\"rss_kib_per_session\":{:.1},\"loss_pct\":{:.4}}}",
        a.calls,
        core_pct,
        per_call,
        per_call_nominal,
        us_per_pkt,
        relayed_pps,
        (rss_run.saturating_sub(rss0)) as f64 / a.calls as f64,
        loss
    );
    rt.block_on(async {
        for h in handles {
            let _ = h.close().await;
        }
    });
    Ok(())
}

/// The phones: `--phone-threads` threads, non-blocking std sockets, a 20 ms tick (at 50 pps).
fn phones(a: Load) -> Result<(), String> {
    let mut socks = Vec::with_capacity(2 * a.calls);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for _ in 0..a.calls {
        let x = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let y = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        x.set_nonblocking(true).map_err(|e| e.to_string())?;
        y.set_nonblocking(true).map_err(|e| e.to_string())?;
        writeln!(
            out,
            "{} {}",
            x.local_addr().map_err(|e| e.to_string())?,
            y.local_addr().map_err(|e| e.to_string())?
        )
        .map_err(|e| e.to_string())?;
        socks.push(x);
        socks.push(y);
    }
    out.flush().map_err(|e| e.to_string())?;
    // The relay's addresses: phone 2i talks to leg A of call i, phone 2i+1 to leg B.
    let mut dests = Vec::with_capacity(2 * a.calls);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for _ in 0..a.calls {
        let l = lines
            .next()
            .ok_or("relay closed")?
            .map_err(|e| e.to_string())?;
        let (x, y) = l.split_once(' ').ok_or("bad relay line")?;
        dests.push(x.parse::<SocketAddr>().map_err(|_| "bad relay address")?);
        dests.push(y.parse::<SocketAddr>().map_err(|_| "bad relay address")?);
    }
    writeln!(out, "START").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;

    let tick = Duration::from_secs(1) / a.pps.max(1);
    let warm = a.warmup * u64::from(a.pps);
    let meas = a.seconds * u64::from(a.pps);
    let total = warm + meas + u64::from(a.pps) / 2;
    let start = Instant::now();
    let c0 = cpu_secs();
    // Each thread drives whole calls (both phones of a call), so every packet it sends comes
    // back to one of its own sockets.
    let threads = a.phone_threads.clamp(1, a.calls.max(1));
    let per = a.calls.div_ceil(threads) * 2;
    let size = a.size.max(12);
    let mut workers = Vec::new();
    let mut base = 0usize;
    while !socks.is_empty() {
        let n = per.min(socks.len());
        let my_socks: Vec<UdpSocket> = socks.drain(..n).collect();
        let my_dests: Vec<SocketAddr> = dests.drain(..n).collect();
        let first_ssrc = base as u32 + 1;
        base += n;
        workers.push(std::thread::spawn(move || {
            phone_loop(
                &my_socks, &my_dests, first_ssrc, size, start, tick, warm, meas, total,
            )
        }));
    }
    let (mut sent_total, mut received, mut received_total) = (0u64, 0u64, 0u64);
    for w in workers {
        let (s, r, rt) = w.join().map_err(|_| "phone thread panicked")?;
        sent_total += s;
        received += r;
        received_total += rt;
    }
    let cpu = cpu_secs() - c0;
    let wall = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "expected={} received={} sent_total={} received_total={} phones_cpu_pct={:.0}",
        2 * a.calls as u64 * meas,
        received,
        sent_total,
        received_total,
        100.0 * cpu / wall
    )
    .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    Ok(())
}

/// One phone thread: sends on every socket each tick, then drains them all; returns (sent,
/// received in the window, received in all).
#[allow(clippy::too_many_arguments)]
fn phone_loop(
    socks: &[UdpSocket],
    dests: &[SocketAddr],
    first_ssrc: u32,
    size: usize,
    start: Instant,
    tick: Duration,
    warm: u64,
    meas: u64,
    total: u64,
) -> (u64, u64, u64) {
    let mut pkt = vec![0u8; size];
    pkt[0] = 0x80;
    pkt[1] = 8; // PCMA
    let mut buf = [0u8; 2048];
    let (mut sent, mut received, mut received_total) = (0u64, 0u64, 0u64);
    let mut sweep = |received: &mut u64, received_total: &mut u64| {
        for s in socks {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                if n >= 12 {
                    *received_total += 1;
                    let seq = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
                    if (warm..warm + meas).contains(&seq) {
                        *received += 1;
                    }
                }
            }
        }
    };
    for t in 0..total {
        let due = start + tick * t as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let seq = (t as u16).to_be_bytes();
        let ts = (t as u32 * 160).to_be_bytes();
        for (i, s) in socks.iter().enumerate() {
            pkt[2..4].copy_from_slice(&seq);
            pkt[4..8].copy_from_slice(&ts);
            pkt[8..12].copy_from_slice(&(first_ssrc + i as u32).to_be_bytes());
            if s.send_to(&pkt, dests[i]).is_ok() {
                sent += 1;
            }
        }
        sweep(&mut received, &mut received_total);
    }
    std::thread::sleep(Duration::from_millis(500));
    sweep(&mut received, &mut received_total);
    (sent, received, received_total)
}
