//! SIP transports: one UDP socket, TCP connections (accepted and opened), TLS connections
//! (accepted only), WebSocket connections handed over by the HTTP server. Every datagram or
//! framed message becomes an [`Inbound`] on one bounded queue to the SIP task; the SIP task sends
//! with [`Transports::send`], which never blocks it (a full socket or connection queue drops the
//! message and counts it: transactions retransmit over UDP, and a stream peer that cannot keep up
//! is closed). TCP and TLS share the framing code ([`stream_conn`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use strowger_sip::{frame_len, Limits, ParseError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::stats::SipStats;

/// A transport protocol, as written in Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
}

impl Transport {
    /// Reliable transports get no retransmissions (RFC 3261 §17).
    pub fn reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
    /// The Via token.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
        }
    }
    /// From a Via token or a `transport=` URI parameter.
    pub fn from_token(s: &str) -> Option<Transport> {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
            "TLS" => Some(Transport::Tls),
            "WS" | "WSS" => Some(Transport::Ws),
            _ => None,
        }
    }
}

/// A stream connection's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A message received.
#[derive(Debug)]
pub struct Inbound {
    pub data: Bytes,
    pub src: SocketAddr,
    pub transport: Transport,
    /// The stream connection it came on (None for UDP).
    pub conn: Option<ConnId>,
}

struct Conn {
    peer: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct ConnTable {
    by_id: HashMap<ConnId, Conn>,
    by_peer: HashMap<(SocketAddr, Transport), ConnId>,
}

/// Handle to every transport, shared by the SIP task and the socket tasks.
#[derive(Clone)]
pub struct Transports {
    udp: Option<Arc<UdpSocket>>,
    local: Option<SocketAddr>,
    tls_local: Option<SocketAddr>,
    conns: Arc<Mutex<ConnTable>>,
    next_conn: Arc<AtomicU64>,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    max_conns: usize,
    idle: Duration,
    stats: Arc<SipStats>,
}

/// Frames queued per stream connection before it counts as stuck.
const CONN_QUEUE: usize = 256;
/// A TLS client must finish its handshake within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// TLS handshakes in progress at once; connections beyond are closed at once (a handshake costs
/// CPU, and a connection that never sends one holds a slot for the whole timeout).
const MAX_TLS_HANDSHAKES: usize = 1024;

/// The TLS listener to start: its address and server configuration.
pub struct TlsListen {
    pub addr: SocketAddr,
    pub config: Arc<rustls::ServerConfig>,
}

impl Transports {
    /// Binds UDP and TCP on `listen` (None when SIP is off) and TLS on `tls` (None when TLS is
    /// off; ignored when SIP is), and starts their tasks. Errors name what could not be bound.
    pub async fn start(
        listen: Option<SocketAddr>,
        tls: Option<TlsListen>,
        inbound: mpsc::Sender<Inbound>,
        limits: Limits,
        max_conns: usize,
        idle: Duration,
        stats: Arc<SipStats>,
    ) -> Result<Transports, String> {
        let mut t = Transports {
            udp: None,
            local: None,
            tls_local: None,
            conns: Arc::new(Mutex::new(ConnTable::default())),
            next_conn: Arc::new(AtomicU64::new(1)),
            inbound,
            limits,
            max_conns,
            idle,
            stats,
        };
        let Some(addr) = listen else { return Ok(t) };
        let bind_udp = || -> std::io::Result<UdpSocket> {
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            // Big buffers: a burst of REGISTERs must queue in the kernel, not be dropped.
            let _ = sock.set_recv_buffer_size(8 << 20);
            let _ = sock.set_send_buffer_size(8 << 20);
            sock.set_nonblocking(true)?;
            sock.bind(&addr.into())?;
            UdpSocket::from_std(sock.into())
        };
        let udp = Arc::new(bind_udp().map_err(|e| format!("cannot bind SIP UDP {addr}: {e}"))?);
        let local = udp
            .local_addr()
            .map_err(|e| format!("cannot bind SIP UDP {addr}: {e}"))?;
        let tcp = TcpListener::bind(local)
            .await
            .map_err(|e| format!("cannot bind SIP TCP {local}: {e}"))?;
        let tls = match tls {
            Some(tls) => {
                let l = TcpListener::bind(tls.addr)
                    .await
                    .map_err(|e| format!("cannot bind SIP TLS {}: {e}", tls.addr))?;
                t.tls_local = Some(
                    l.local_addr()
                        .map_err(|e| format!("cannot bind SIP TLS {}: {e}", tls.addr))?,
                );
                Some((l, TlsAcceptor::from(tls.config)))
            }
            None => None,
        };
        t.udp = Some(udp.clone());
        t.local = Some(local);
        tokio::spawn(udp_loop(udp, t.clone()));
        tokio::spawn(accept_loop(tcp, t.clone()));
        if let Some((l, acceptor)) = tls {
            tokio::spawn(tls_accept_loop(l, acceptor, t.clone()));
        }
        Ok(t)
    }

    /// Idle time after which a stream connection is closed.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Largest message accepted.
    pub fn max_message(&self) -> usize {
        self.limits.max_message
    }

    /// The bound UDP/TCP address.
    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The bound TLS address (None: TLS is off).
    pub fn tls_local(&self) -> Option<SocketAddr> {
        self.tls_local
    }

    /// Sends a message. Over a stream, `conn` is used when still open, else an open connection
    /// to `dest` is reused, else (TCP) a new one is opened in the background.
    ///
    /// TLS and WebSocket never open connections: a phone on TLS is reached over the connection it
    /// registered (and keeps alive) on. When that connection is gone the message is dropped and
    /// counted in `send_dropped` (the phone re-registers, normally within its keep-alive
    /// interval; until then the request times out like one to an unreachable UDP phone).
    pub fn send(&self, data: Bytes, dest: SocketAddr, transport: Transport, conn: Option<ConnId>) {
        match transport {
            Transport::Udp => {
                let Some(udp) = &self.udp else { return };
                match udp.try_send_to(&data, dest) {
                    Ok(_) => self.stats.sent.inc(),
                    Err(_) => self.stats.send_dropped.inc(),
                }
            }
            Transport::Tcp | Transport::Tls | Transport::Ws => {
                let tx = {
                    let table = self.conns.lock().expect("conn table");
                    conn.and_then(|c| table.by_id.get(&c))
                        .or_else(|| {
                            table
                                .by_peer
                                .get(&(dest, transport))
                                .and_then(|c| table.by_id.get(c))
                        })
                        .map(|c| c.tx.clone())
                };
                match tx {
                    Some(tx) => match tx.try_send(data) {
                        Ok(()) => self.stats.sent.inc(),
                        Err(_) => self.stats.send_dropped.inc(),
                    },
                    None if transport == Transport::Tcp => {
                        let me = self.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(
                                Duration::from_secs(5),
                                TcpStream::connect(dest),
                            )
                            .await
                            {
                                Ok(Ok(s)) => {
                                    if let Some(id) = me.adopt_tcp(s, dest) {
                                        me.send(data, dest, Transport::Tcp, Some(id));
                                    }
                                }
                                _ => {
                                    me.stats.send_dropped.inc();
                                    tracing::info!(%dest, "SIP: cannot open a TCP connection");
                                }
                            }
                        });
                    }
                    None => {
                        tracing::debug!(
                            %dest,
                            transport = transport.via(),
                            "SIP: no open connection to send over: dropped"
                        );
                        self.stats.send_dropped.inc();
                    }
                }
            }
        }
    }

    /// Sends over whichever stream connection is open to `dest` (TCP, TLS or WebSocket), else
    /// opens a TCP connection.
    pub fn send_reliable(&self, data: Bytes, dest: SocketAddr) {
        let t = self.stream_kind(dest);
        self.send(data, dest, t, None);
    }

    /// The kind of the stream connection open to `peer` (TCP when none is).
    pub fn stream_kind(&self, peer: SocketAddr) -> Transport {
        let table = self.conns.lock().expect("conn table");
        [Transport::Tls, Transport::Ws, Transport::Tcp]
            .into_iter()
            .find(|t| table.by_peer.contains_key(&(peer, *t)))
            .unwrap_or(Transport::Tcp)
    }

    /// Registers a stream connection; returns its id and the receiver of what to write to it.
    /// `None` when the connection limit is reached.
    pub fn register_conn(
        &self,
        peer: SocketAddr,
        transport: Transport,
    ) -> Option<(ConnId, mpsc::Receiver<Bytes>)> {
        let mut table = self.conns.lock().expect("conn table");
        if table.by_id.len() >= self.max_conns {
            self.stats.conn_refused.inc();
            return None;
        }
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        table.by_id.insert(
            id,
            Conn {
                peer,
                transport,
                tx,
            },
        );
        table.by_peer.insert((peer, transport), id);
        self.stats.connections.inc();
        Some((id, rx))
    }

    /// Forgets a closed connection.
    pub fn unregister_conn(&self, id: ConnId) {
        let mut table = self.conns.lock().expect("conn table");
        if let Some(c) = table.by_id.remove(&id) {
            if table.by_peer.get(&(c.peer, c.transport)) == Some(&id) {
                table.by_peer.remove(&(c.peer, c.transport));
            }
            self.stats.connections.dec();
        }
    }

    /// Hands a received message to the SIP task; drops it (counted) when the queue is full.
    pub fn deliver(&self, msg: Inbound) {
        self.stats.received.inc();
        if self.inbound.try_send(msg).is_err() {
            self.stats.recv_dropped.inc();
        }
    }

    fn adopt_tcp(&self, s: TcpStream, peer: SocketAddr) -> Option<ConnId> {
        let _ = s.set_nodelay(true);
        let (id, rx) = self.register_conn(peer, Transport::Tcp)?;
        tokio::spawn(stream_conn(s, peer, Transport::Tcp, id, rx, self.clone()));
        Some(id)
    }
}

async fn udp_loop(udp: Arc<UdpSocket>, t: Transports) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match udp.recv_from(&mut buf).await {
            Ok((n, src)) => {
                if n > t.limits.max_message {
                    t.stats.too_large.inc();
                    continue;
                }
                // RFC 5626 keep-alives over UDP are STUN; a lone CRLF(s) is a NAT ping: ignore.
                if buf[..n]
                    .iter()
                    .all(|b| *b == b'\r' || *b == b'\n' || *b == 0)
                {
                    continue;
                }
                t.deliver(Inbound {
                    data: Bytes::copy_from_slice(&buf[..n]),
                    src,
                    transport: Transport::Udp,
                    conn: None,
                });
            }
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux; not fatal.
                tracing::debug!("SIP UDP receive: {e}");
            }
        }
    }
}

async fn accept_loop(l: TcpListener, t: Transports) {
    loop {
        match l.accept().await {
            Ok((s, peer)) => {
                t.adopt_tcp(s, peer);
            }
            Err(e) => {
                tracing::warn!("SIP TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tls_accept_loop(l: TcpListener, acceptor: TlsAcceptor, t: Transports) {
    let handshakes = Arc::new(Semaphore::new(MAX_TLS_HANDSHAKES));
    loop {
        let (s, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("SIP TLS accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "SIP TLS: too many handshakes in progress: closing");
            t.stats.conn_refused.inc();
            continue;
        };
        let acceptor = acceptor.clone();
        let t = t.clone();
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                Ok(Ok(tls)) => tls,
                // Scanners and port probes: routine, so debug only.
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "SIP TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "SIP TLS handshake timed out");
                    return;
                }
            };
            drop(permit);
            let Some((id, rx)) = t.register_conn(peer, Transport::Tls) else {
                tracing::debug!(%peer, "SIP TLS: connection limit reached: closing");
                return;
            };
            tracing::debug!(%peer, "SIP TLS connection open");
            stream_conn(tls, peer, Transport::Tls, id, rx, t).await;
        });
    }
}

/// Reads frames off a stream connection (TCP or TLS) and writes what the SIP task sends to it.
async fn stream_conn<S>(
    s: S,
    peer: SocketAddr,
    transport: Transport,
    id: ConnId,
    mut rx: mpsc::Receiver<Bytes>,
    t: Transports,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            // Flush: TLS buffers records until flushed; for TCP it is a no-op.
            if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(8192);
    let why = loop {
        match tokio::time::timeout(t.idle, rd.read_buf(&mut buf)).await {
            Err(_) => break "idle",
            Ok(Ok(0)) => break "closed by peer",
            Ok(Err(_)) => break "read error",
            Ok(Ok(_)) => {}
        }
        let mut bad = None;
        loop {
            match frame_len(&buf, &t.limits) {
                Ok(Some(n)) => {
                    let frame = buf.split_to(n).freeze();
                    if frame.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        // RFC 5626 §3.5.1: a double-CRLF ping gets a single-CRLF pong.
                        if frame.len() >= 4 {
                            t.send(Bytes::from_static(b"\r\n"), peer, transport, Some(id));
                        }
                        continue;
                    }
                    t.deliver(Inbound {
                        data: frame,
                        src: peer,
                        transport,
                        conn: Some(id),
                    });
                }
                Ok(None) => {
                    if buf.len() > t.limits.max_message {
                        bad = Some(ParseError::TooLarge(buf.len()));
                    }
                    break;
                }
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = bad {
            // A stream that cannot be framed cannot be resynchronised: close it.
            t.stats.stream_errors.inc();
            tracing::info!(%peer, transport = transport.via(), "SIP: closing connection: {e}");
            buf.advance(buf.len());
            break "framing error";
        }
    };
    tracing::debug!(%peer, transport = transport.via(), "SIP connection ended: {why}");
    t.unregister_conn(id);
    writer.abort();
}
