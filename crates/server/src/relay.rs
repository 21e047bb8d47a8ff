//! The RTP relay for SIP calls: the tokio shell around `strowger_media::relay::RelaySession`.
//!
//! [`Relay`] is a cheap-clone handle shared by call control. [`Relay::allocate`] binds, for each
//! leg of a call, an even RTP port and the odd RTCP port above it from the configured range,
//! and spawns one task per call that owns the four sockets and the sans-IO session. The returned
//! [`RelayHandle`] gives the local addresses to write into each leg's SDP and sends commands to
//! the task through a bounded queue. Dropping the handle (or [`RelayHandle::close`]) stops the
//! task and frees the ports.
//!
//! Logs carry the call tag in every line; latch changes, SSRC changes and timeouts are logged at
//! info. Per-packet drops are never logged, only counted (session stats and [`RelayMetrics`]).
//!
//! This file depends on nothing else in the server crate, so the relay load generator
//! (`bench/relayload`) can compile it as is.

// The SIP task drives sessions with the non-waiting `*_now` calls; the async API (`set_remote`,
// `set_hold`, `set_clock_rate`, `stats`, `inactive`) serves the tests and `bench/relayload`, which
// compiles this file on its own.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strowger_media::relay::{
    DropReason, Flow, Leg, RelayConfig, RelayEvent, RelaySession, RelayStats,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

/// Receive buffer: larger than `strowger_media::relay::MAX_PACKET_LEN`, so a datagram that fills it is known to be
/// too large (the kernel truncates it) and is dropped as oversize.
const RECV_BUF: usize = 2048;
/// Datagrams read from one socket per wake-up before the others get a turn.
const RECV_BATCH: usize = 32;
/// Failed binds (ports taken by other processes) before an allocation gives up.
const MAX_BIND_FAILURES: usize = 256;
/// Commands queued to one session's task.
const CMD_QUEUE: usize = 16;

/// What the relay needs from the configuration (`[relay]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOptions {
    /// Address the media sockets bind to.
    pub bind: IpAddr,
    /// Address written into SDP; `None`: the bind address (the B2BUA substitutes its SIP-facing
    /// local address when that is unspecified, see [`RelayHandle::sdp_addr`]).
    pub public_ip: Option<IpAddr>,
    /// Lowest port used.
    pub port_min: u16,
    /// Highest port used.
    pub port_max: u16,
    /// No RTP either way for this long: the call is reported inactive.
    pub rtp_timeout: Duration,
    /// The same while on hold.
    pub hold_timeout: Duration,
    /// Sessions at once.
    pub max_sessions: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            bind: IpAddr::from([0, 0, 0, 0]),
            public_ip: None,
            port_min: 40000,
            port_max: 49999,
            rtp_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(3600),
            max_sessions: 10_000,
        }
    }
}

/// Why a session could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Every port pair of the range is taken (the B2BUA answers 503).
    #[error("no free RTP port pair in {min}-{max}")]
    PortsExhausted {
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
    /// `relay.max_sessions` reached (503).
    #[error("relay full: {0} sessions")]
    TooManySessions(usize),
    /// A socket could not be set up.
    #[error("relay socket: {0}")]
    Io(#[from] std::io::Error),
    /// The session's task has ended.
    #[error("relay session closed")]
    Closed,
}

/// Labels of the dropped-packet counter: the core's reasons, then the shell's own.
pub const DROP_LABELS: [&str; DropReason::ALL.len() + 1] = [
    DropReason::ALL[0].as_str(),
    DropReason::ALL[1].as_str(),
    DropReason::ALL[2].as_str(),
    DropReason::ALL[3].as_str(),
    DropReason::ALL[4].as_str(),
    "send_error",
];
const SEND_ERROR: usize = DropReason::ALL.len();

/// Relay counters for `/metrics` (rendered by `metrics.rs`), written by the session tasks.
#[derive(Debug, Default)]
pub struct RelayMetrics {
    /// Sessions open.
    pub sessions: AtomicI64,
    /// UDP ports held (4 per session).
    pub ports: AtomicI64,
    /// Datagrams relayed: [RTP, RTCP].
    pub packets: [AtomicU64; 2],
    /// Bytes relayed: [RTP, RTCP].
    pub bytes: [AtomicU64; 2],
    /// Datagrams dropped, by [`DROP_LABELS`].
    pub dropped: [AtomicU64; DROP_LABELS.len()],
    /// First latches.
    pub latches: AtomicU64,
    /// Re-latches (after a re-INVITE or a source change).
    pub relatches: AtomicU64,
    /// Sessions that went inactive.
    pub timeouts: AtomicU64,
    /// Allocations refused (ports exhausted or too many sessions).
    pub refused: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The port range and which ports this process holds.
struct Pool {
    opts: RelayOptions,
    state: Mutex<PoolState>,
    metrics: Arc<RelayMetrics>,
}

struct PoolState {
    /// Pairs held, by pair index (`port = first + 2 * index`).
    used: Vec<bool>,
    /// Where the next search starts, so ports are reused as late as possible.
    cursor: usize,
    sessions: usize,
}

/// The relay: a handle to the port pool, cheap to clone.
#[derive(Clone)]
pub struct Relay {
    pool: Arc<Pool>,
}

impl Relay {
    /// A relay over `opts.port_min..=opts.port_max` (validated by the configuration).
    pub fn new(opts: RelayOptions, metrics: Arc<RelayMetrics>) -> Relay {
        let pairs = pair_count(opts.port_min, opts.port_max);
        Relay {
            pool: Arc::new(Pool {
                opts,
                state: Mutex::new(PoolState {
                    used: vec![false; pairs],
                    cursor: 0,
                    sessions: 0,
                }),
                metrics,
            }),
        }
    }

    /// The options it runs with.
    pub fn options(&self) -> &RelayOptions {
        &self.pool.opts
    }

    /// Sets up the relay of one call: binds four ports (RTP even, RTCP odd above it, per leg),
    /// spawns the session's task and returns its handle. Must be called within the tokio runtime.
    /// `call_tag` names the call in every log line (the SIP Call-ID or the B2BUA's own tag).
    pub fn allocate(&self, call_tag: &str) -> Result<RelayHandle, RelayError> {
        let pool = &self.pool;
        let result = self.bind_session(call_tag);
        if result.is_err() {
            add(&pool.metrics.refused, 1);
        }
        result
    }

    fn bind_session(&self, call_tag: &str) -> Result<RelayHandle, RelayError> {
        let pool = &self.pool;
        {
            let mut st = pool.state.lock().expect("relay pool lock");
            if st.sessions >= pool.opts.max_sessions {
                tracing::warn!(call = %call_tag, max = pool.opts.max_sessions, "relay full: session refused");
                return Err(RelayError::TooManySessions(pool.opts.max_sessions));
            }
            st.sessions += 1;
        }
        let mut lease = Lease {
            pool: self.pool.clone(),
            pairs: Vec::with_capacity(2),
            counted: false,
        };
        let mut socks = Vec::with_capacity(4);
        for _ in 0..2 {
            let (idx, rtp, rtcp) = pool.bind_pair().inspect_err(|e| {
                tracing::warn!(call = %call_tag, error = %e, "relay: cannot allocate ports");
            })?;
            lease.pairs.push(idx);
            socks.push(UdpSocket::from_std(rtp)?);
            socks.push(UdpSocket::from_std(rtcp)?);
        }
        pool.metrics.sessions.fetch_add(1, Ordering::Relaxed);
        pool.metrics.ports.fetch_add(4, Ordering::Relaxed);
        lease.counted = true;
        let ip = pool.opts.public_ip.unwrap_or(pool.opts.bind);
        let local = [
            SocketAddr::new(ip, socks[0].local_addr()?.port()),
            SocketAddr::new(ip, socks[2].local_addr()?.port()),
        ];
        let mut it = socks.into_iter();
        let mut next = || it.next().expect("four sockets");
        let socks = [[next(), next()], [next(), next()]];

        let now = Instant::now();
        let session = RelaySession::new(
            now,
            RelayConfig {
                rtp_timeout: pool.opts.rtp_timeout,
                hold_timeout: pool.opts.hold_timeout,
                ..RelayConfig::default()
            },
        );
        let (tx, rx) = mpsc::channel(CMD_QUEUE);
        let (inactive_tx, inactive_rx) = watch::channel(false);
        let tag: Arc<str> = Arc::from(call_tag);
        tracing::info!(call = %tag, a = %local[0], b = %local[1], "relay session allocated");
        let task = Task {
            tag: tag.clone(),
            socks,
            session,
            metrics: pool.metrics.clone(),
            inactive: inactive_tx,
            _lease: lease,
        };
        tokio::spawn(task.run(rx));
        Ok(RelayHandle {
            tag,
            local,
            tx,
            inactive: inactive_rx,
        })
    }
}

fn first_even(min: u16) -> u32 {
    u32::from(min) + u32::from(min & 1)
}

fn pair_count(min: u16, max: u16) -> usize {
    let first = first_even(min);
    if u32::from(max) < first + 1 {
        0
    } else {
        ((u32::from(max) - first - 1) / 2 + 1) as usize
    }
}

impl Pool {
    /// Binds the next free even/odd pair, walking the range from the rotating cursor.
    fn bind_pair(&self) -> Result<(usize, std::net::UdpSocket, std::net::UdpSocket), RelayError> {
        let first = first_even(self.opts.port_min);
        let mut st = self.state.lock().expect("relay pool lock");
        let n = st.used.len();
        let mut failures = 0;
        for i in 0..n {
            let idx = (st.cursor + i) % n;
            if st.used[idx] {
                continue;
            }
            let port = (first + 2 * idx as u32) as u16;
            let Ok(rtp) = std::net::UdpSocket::bind((self.opts.bind, port)) else {
                failures += 1;
                if failures >= MAX_BIND_FAILURES {
                    break;
                }
                continue;
            };
            let Ok(rtcp) = std::net::UdpSocket::bind((self.opts.bind, port + 1)) else {
                failures += 1;
                if failures >= MAX_BIND_FAILURES {
                    break;
                }
                continue;
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            st.used[idx] = true;
            st.cursor = (idx + 1) % n;
            return Ok((idx, rtp, rtcp));
        }
        Err(RelayError::PortsExhausted {
            min: self.opts.port_min,
            max: self.opts.port_max,
        })
    }
}

/// The ports and the session slot of one call, given back when dropped (with the sockets, by
/// the task that owns both).
struct Lease {
    pool: Arc<Pool>,
    pairs: Vec<usize>,
    /// Counted in the sessions and ports gauges.
    counted: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.pool.state.lock().expect("relay pool lock");
        for &i in &self.pairs {
            st.used[i] = false;
        }
        st.sessions -= 1;
        drop(st);
        if self.counted {
            self.pool.metrics.sessions.fetch_sub(1, Ordering::Relaxed);
            self.pool.metrics.ports.fetch_sub(4, Ordering::Relaxed);
        }
    }
}

enum Cmd {
    SetRemote {
        leg: Leg,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    },
    SetHold(bool),
    SetClockRate(u32),
    Stats(oneshot::Sender<RelayStats>),
    Close(oneshot::Sender<RelayStats>),
}

/// One call's relay. Dropping it stops the session and frees its ports.
pub struct RelayHandle {
    tag: Arc<str>,
    local: [SocketAddr; 2],
    tx: mpsc::Sender<Cmd>,
    inactive: watch::Receiver<bool>,
}

impl RelayHandle {
    /// The call tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The RTP address to put into `leg`'s SDP (RTCP is its port + 1). Its IP is
    /// `relay.public_ip`, else the bind address, which may be unspecified: see
    /// [`RelayHandle::sdp_addr`].
    pub fn local(&self, leg: Leg) -> SocketAddr {
        self.local[leg.index()]
    }

    /// [`RelayHandle::local`], with `sip_local` (the local address the leg's SIP traffic uses)
    /// standing in for an unspecified IP.
    pub fn sdp_addr(&self, leg: Leg, sip_local: IpAddr) -> SocketAddr {
        let l = self.local(leg);
        if l.ip().is_unspecified() {
            SocketAddr::new(sip_local, l.port())
        } else {
            l
        }
    }

    async fn send(&self, cmd: Cmd) -> Result<(), RelayError> {
        self.tx.send(cmd).await.map_err(|_| RelayError::Closed)
    }

    /// The remote addresses from `leg`'s SDP, again after each re-INVITE (`rtcp`: `a=rtcp`, or
    /// `Some(rtp)` with `a=rtcp-mux`, or `None` for RTP port + 1). Releases the leg's latches.
    pub async fn set_remote(
        &self,
        leg: Leg,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    ) -> Result<(), RelayError> {
        self.send(Cmd::SetRemote { leg, rtp, rtcp }).await
    }

    /// [`RelayHandle::set_remote`] from synchronous code (the SIP task): never waits; a command
    /// queue that is full (the session task is stuck) drops the update, logged. `rtp: None`
    /// (hold with `c=0.0.0.0`) keeps the current remote.
    pub fn set_remote_now(&self, leg: Leg, rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>) {
        let Some(rtp) = rtp else { return };
        if self.tx.try_send(Cmd::SetRemote { leg, rtp, rtcp }).is_err() {
            tracing::warn!(call = %self.tag, "relay: command queue full, remote address update dropped");
        }
    }

    /// [`RelayHandle::set_hold`] from synchronous code.
    pub fn set_hold_now(&self, on_hold: bool) {
        if self.tx.try_send(Cmd::SetHold(on_hold)).is_err() {
            tracing::warn!(call = %self.tag, "relay: command queue full, hold update dropped");
        }
    }

    /// Hold (`sendonly`/`inactive`) or resume: switches between the two inactivity timeouts.
    pub async fn set_hold(&self, on_hold: bool) -> Result<(), RelayError> {
        self.send(Cmd::SetHold(on_hold)).await
    }

    /// The negotiated codec's RTP clock rate (8000 until told).
    pub async fn set_clock_rate(&self, rate: u32) -> Result<(), RelayError> {
        self.send(Cmd::SetClockRate(rate)).await
    }

    /// A snapshot of the session's counters and addresses.
    pub async fn stats(&self) -> Result<RelayStats, RelayError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Stats(tx)).await?;
        rx.await.map_err(|_| RelayError::Closed)
    }

    /// Resolves when no RTP has flowed for the timeout (or the session's task has ended). The
    /// session keeps relaying until closed: the B2BUA decides to hang up.
    pub async fn inactive(&self) {
        let mut rx = self.inactive.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// The same as a watch, for a `select!` loop.
    pub fn inactive_watch(&self) -> watch::Receiver<bool> {
        self.inactive.clone()
    }

    /// Stops the session and returns its final stats (for the CDR); ports are free when it
    /// returns.
    pub async fn close(self) -> Result<RelayStats, RelayError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Close(tx)).await?;
        rx.await.map_err(|_| RelayError::Closed)
    }
}

struct Task {
    tag: Arc<str>,
    /// `[leg][flow]`: `[A, B][RTP, RTCP]`.
    socks: [[UdpSocket; 2]; 2],
    session: RelaySession,
    metrics: Arc<RelayMetrics>,
    inactive: watch::Sender<bool>,
    _lease: Lease,
}

fn flow_index(f: Flow) -> usize {
    match f {
        Flow::Rtp => 0,
        Flow::Rtcp => 1,
    }
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            self.log_events();
            let deadline = self.session.poll_timeout();
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let ready = tokio::select! {
                r = self.socks[0][0].readable() => r.map(|_| (Leg::A, Flow::Rtp)),
                r = self.socks[0][1].readable() => r.map(|_| (Leg::A, Flow::Rtcp)),
                r = self.socks[1][0].readable() => r.map(|_| (Leg::B, Flow::Rtp)),
                r = self.socks[1][1].readable() => r.map(|_| (Leg::B, Flow::Rtcp)),
                cmd = rx.recv() => {
                    match cmd {
                        None => break,
                        Some(Cmd::Close(reply)) => {
                            let _ = reply.send(self.session.stats());
                            break;
                        }
                        Some(cmd) => self.command(cmd),
                    }
                    continue;
                }
                _ = sleep => {
                    self.session.handle_timeout(Instant::now());
                    continue;
                }
            };
            match ready {
                Ok((leg, flow)) => self.receive(leg, flow, &mut buf),
                Err(e) => {
                    tracing::warn!(call = %self.tag, error = %e, "relay socket failed; session ends");
                    break;
                }
            }
        }
        self.log_events();
        let s = self.session.stats();
        tracing::info!(
            call = %self.tag,
            a_to_b = s.a_to_b.rtp_packets,
            b_to_a = s.b_to_a.rtp_packets,
            dropped = s.dropped.iter().sum::<u64>(),
            "relay session closed"
        );
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::SetRemote { leg, rtp, rtcp } => {
                tracing::info!(call = %self.tag, leg = leg.as_str(), rtp = %rtp, rtcp = ?rtcp, "relay remote set from SDP");
                self.session.set_remote(leg, rtp, rtcp);
            }
            Cmd::SetHold(h) => {
                tracing::info!(call = %self.tag, on_hold = h, "relay hold");
                self.session.set_hold(Instant::now(), h);
            }
            Cmd::SetClockRate(r) => self.session.set_clock_rate(r),
            Cmd::Stats(reply) => {
                let _ = reply.send(self.session.stats());
            }
            Cmd::Close(_) => unreachable!("handled by the loop"),
        }
    }

    /// Reads what is queued on one socket (up to a batch) and relays it.
    fn receive(&mut self, leg: Leg, flow: Flow, buf: &mut [u8]) {
        let m = &*self.metrics;
        for _ in 0..RECV_BATCH {
            let sock = &self.socks[leg.index()][flow_index(flow)];
            let (n, src) = match sock.try_recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // ICMP errors of earlier sends (port unreachable) surface here: not fatal.
                Err(_) => continue,
            };
            let now = Instant::now();
            let pkt = &mut buf[..n];
            let r = match flow {
                Flow::Rtp => self.session.handle_rtp(now, leg, src, pkt),
                Flow::Rtcp => self.session.handle_rtcp(now, leg, src, pkt),
            };
            match r {
                Ok(t) => {
                    let out = &self.socks[t.leg.index()][flow_index(t.flow)];
                    match out.try_send_to(pkt, t.destination) {
                        Ok(_) => {
                            let k = usize::from(t.rtcp);
                            add(&m.packets[k], 1);
                            add(&m.bytes[k], n as u64);
                        }
                        Err(_) => add(&m.dropped[SEND_ERROR], 1),
                    }
                }
                Err(reason) => add(&m.dropped[reason.index()], 1),
            }
        }
    }

    fn log_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            let tag = &*self.tag;
            match ev {
                RelayEvent::Latched {
                    leg,
                    flow,
                    sdp,
                    addr,
                } => {
                    add(&self.metrics.latches, 1);
                    if sdp.is_some_and(|s| s != addr) {
                        tracing::info!(call = %tag, leg = leg.as_str(), flow = flow.as_str(), sdp = ?sdp, latched = %addr, "relay latched to a source other than the SDP address (NAT)");
                    } else {
                        tracing::info!(call = %tag, leg = leg.as_str(), flow = flow.as_str(), latched = %addr, "relay latched");
                    }
                }
                RelayEvent::Relatched {
                    leg,
                    flow,
                    from,
                    to,
                    after_set_remote,
                } => {
                    add(&self.metrics.relatches, 1);
                    tracing::info!(call = %tag, leg = leg.as_str(), flow = flow.as_str(), from = %from, to = %to, after_set_remote, "relay re-latched");
                }
                RelayEvent::RtcpMux { leg } => {
                    tracing::info!(call = %tag, leg = leg.as_str(), "relay: remote multiplexes RTCP on its RTP port");
                }
                RelayEvent::SsrcChanged {
                    from_leg,
                    old,
                    new,
                    outgoing,
                } => {
                    tracing::info!(call = %tag, from_leg = from_leg.as_str(), old = format_args!("{old:#010x}"), new = format_args!("{new:#010x}"), outgoing = format_args!("{outgoing:#010x}"), "relay: SSRC changed, rewriting to keep the stream continuous");
                }
                RelayEvent::StreamRestarted { from_leg, ssrc } => {
                    tracing::info!(call = %tag, from_leg = from_leg.as_str(), ssrc = format_args!("{ssrc:#010x}"), "relay: stream restarted with the same SSRC after re-INVITE, rewriting to keep it continuous");
                }
                RelayEvent::Inactive { idle, on_hold } => {
                    add(&self.metrics.timeouts, 1);
                    tracing::info!(call = %tag, idle_secs = idle.as_secs(), on_hold, "relay: no RTP, session inactive");
                    let _ = self.inactive.send(true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strowger_media::rtp::{RtpBuilder, RtpPacket};

    const WAIT: Duration = Duration::from_secs(2);

    fn opts(min: u16, max: u16) -> RelayOptions {
        RelayOptions {
            bind: IpAddr::from([127, 0, 0, 1]),
            port_min: min,
            port_max: max,
            ..Default::default()
        }
    }

    /// A port range nobody else in this test binary uses (tests run in parallel).
    fn range(k: u16) -> (u16, u16) {
        let base = 41000 + (std::process::id() % 500) as u16 * 16 + k * 1000;
        (base, base + 15)
    }

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        RtpBuilder {
            payload_type: 0,
            sequence_number: seq,
            timestamp: u32::from(seq) * 160,
            ssrc,
            payload: vec![0xD5; 160],
            ..Default::default()
        }
        .to_vec()
        .unwrap()
    }

    async fn phone() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    async fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut b = vec![0u8; 2048];
        let (n, from) = tokio::time::timeout(WAIT, s.recv_from(&mut b))
            .await
            .expect("datagram within the timeout")
            .unwrap();
        b.truncate(n);
        (b, from)
    }

    #[tokio::test]
    async fn two_phones_talk_both_ways_and_nat_is_latched() {
        let (min, max) = range(0);
        let m = Arc::new(RelayMetrics::default());
        let relay = Relay::new(opts(min, max), m.clone());
        let h = relay.allocate("call-1").unwrap();
        let (la, lb) = (h.local(Leg::A), h.local(Leg::B));
        assert_eq!(la.port() % 2, 0);
        assert!((min..=max).contains(&la.port()) && (min..=max).contains(&lb.port()));
        let alice = phone().await;
        let bob = phone().await;
        // Alice's SDP is wrong (she is behind NAT: her SDP says a private address).
        h.set_remote(Leg::A, "127.0.0.1:9".parse().unwrap(), None)
            .await
            .unwrap();
        h.set_remote(Leg::B, bob.local_addr().unwrap(), None)
            .await
            .unwrap();
        // Alice speaks first: Bob hears her, from the relay's B address.
        let p = rtp(0xA11CE, 1);
        alice.send_to(&p, la).await.unwrap();
        let (got, from) = recv(&bob).await;
        assert_eq!(got, p);
        assert_eq!(from.port(), lb.port());
        // Bob answers: it reaches Alice's real address (latched), not her SDP address.
        for seq in 1..=5 {
            let q = rtp(0xB0B, seq);
            bob.send_to(&q, lb).await.unwrap();
            let (got, from) = recv(&alice).await;
            assert_eq!(got, q);
            assert_eq!(from.port(), la.port());
        }
        let s = h.stats().await.unwrap();
        assert_eq!(s.leg_a.latched_rtp, Some(alice.local_addr().unwrap()));
        assert_eq!((s.a_to_b.rtp_packets, s.b_to_a.rtp_packets), (1, 5));
        assert_eq!(m.packets[0].load(Ordering::Relaxed), 6);
        assert_eq!(m.latches.load(Ordering::Relaxed), 2);
        assert_eq!(m.sessions.load(Ordering::Relaxed), 1);
        assert_eq!(m.ports.load(Ordering::Relaxed), 4);
        // A third party cannot inject towards Bob.
        let eve = phone().await;
        eve.send_to(&rtp(0xE5E, 1), la).await.unwrap();
        let mut b = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(200), bob.recv_from(&mut b))
                .await
                .is_err()
        );
        let s = h.close().await.unwrap();
        assert_eq!(s.dropped(DropReason::UnlatchedSource), 1);
        assert_eq!(m.sessions.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn rtcp_is_forwarded_and_ssrc_change_is_continuous() {
        let (min, max) = range(1);
        let relay = Relay::new(opts(min, max), Arc::default());
        let h = relay.allocate("call-2").unwrap();
        let (la, lb) = (h.local(Leg::A), h.local(Leg::B));
        let alice = phone().await;
        let bob_rtp = phone().await;
        let bob_rtcp = phone().await;
        h.set_remote(Leg::A, alice.local_addr().unwrap(), None)
            .await
            .unwrap();
        h.set_remote(
            Leg::B,
            bob_rtp.local_addr().unwrap(),
            Some(bob_rtcp.local_addr().unwrap()),
        )
        .await
        .unwrap();
        // An RR from Alice, sent to A's RTCP port, reaches Bob's RTCP address from B's RTCP port.
        let rr = [0x80u8, 201, 0, 1, 0, 0x0A, 0x11, 0xCE];
        let a_rtcp = SocketAddr::new(la.ip(), la.port() + 1);
        alice.send_to(&rr, a_rtcp).await.unwrap();
        let (got, from) = recv(&bob_rtcp).await;
        assert_eq!(got, rr);
        assert_eq!(from.port(), lb.port() + 1);
        // Alice's phone restarts its stream with a new SSRC: Bob sees one continuous stream.
        alice.send_to(&rtp(1, 100), la).await.unwrap();
        recv(&bob_rtp).await;
        alice.send_to(&rtp(2, 7), la).await.unwrap();
        let (got, _) = recv(&bob_rtp).await;
        let p = RtpPacket::parse(&got).unwrap();
        assert_eq!((p.ssrc, p.sequence_number), (1, 101));
        h.close().await.unwrap();
    }

    #[tokio::test]
    async fn ports_are_freed_on_drop_and_exhaustion_is_an_error() {
        let (min, _) = range(2);
        // Room for exactly one session: two pairs.
        let relay = Relay::new(opts(min, min + 3), Arc::default());
        let h = relay.allocate("call-3").unwrap();
        let ports = [h.local(Leg::A).port(), h.local(Leg::B).port()];
        let e = relay.allocate("call-4").err().expect("range exhausted");
        assert!(matches!(e, RelayError::PortsExhausted { .. }), "{e}");
        assert!(e.to_string().contains(&min.to_string()));
        drop(h);
        // The task ends soon after the handle is gone; then all four ports bind again.
        let deadline = Instant::now() + WAIT;
        loop {
            let all = ports.iter().all(|&p| {
                std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
                    && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            });
            if all {
                break;
            }
            assert!(Instant::now() < deadline, "ports not released");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // And the relay can use them again.
        let deadline = Instant::now() + WAIT;
        loop {
            match relay.allocate("call-5") {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn oversize_and_malformed_datagrams_are_counted_not_relayed() {
        let (min, max) = range(5);
        let m = Arc::new(RelayMetrics::default());
        let relay = Relay::new(opts(min, max), m.clone());
        let h = relay.allocate("call-9").unwrap();
        let alice = phone().await;
        let bob = phone().await;
        h.set_remote(Leg::A, alice.local_addr().unwrap(), None)
            .await
            .unwrap();
        h.set_remote(Leg::B, bob.local_addr().unwrap(), None)
            .await
            .unwrap();
        let la = h.local(Leg::A);
        let mut big = rtp(1, 1);
        big.resize(4000, 0);
        alice.send_to(&big, la).await.unwrap();
        alice.send_to(&[0x40, 0, 0, 1], la).await.unwrap();
        // A good packet after them still goes through.
        let good = rtp(1, 2);
        alice.send_to(&good, la).await.unwrap();
        assert_eq!(recv(&bob).await.0, good);
        let s = h.stats().await.unwrap();
        assert_eq!(s.dropped(DropReason::Oversize), 1);
        assert_eq!(s.dropped(DropReason::MalformedRtp), 1);
        assert_eq!(
            m.dropped[DropReason::Oversize.index()].load(Ordering::Relaxed),
            1
        );
        assert_eq!(s.a_to_b.rtp_packets, 1);
    }

    #[tokio::test]
    async fn max_sessions_is_enforced() {
        let (min, max) = range(3);
        let relay = Relay::new(
            RelayOptions {
                max_sessions: 1,
                ..opts(min, max)
            },
            Arc::default(),
        );
        let _h = relay.allocate("call-6").unwrap();
        assert!(matches!(
            relay.allocate("call-7"),
            Err(RelayError::TooManySessions(1))
        ));
    }

    #[tokio::test]
    async fn inactivity_is_notified() {
        let (min, max) = range(4);
        let relay = Relay::new(
            RelayOptions {
                rtp_timeout: Duration::from_millis(100),
                ..opts(min, max)
            },
            Arc::default(),
        );
        let h = relay.allocate("call-8").unwrap();
        tokio::time::timeout(WAIT, h.inactive())
            .await
            .expect("inactive within the timeout");
        assert!(h.stats().await.unwrap().inactive);
    }
}
