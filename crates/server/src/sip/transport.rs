//! SIP transports: one UDP socket, TCP connections (accepted and opened), WebSocket connections
//! handed over by the HTTP server. Every datagram or framed message becomes an [`Inbound`] on
//! one bounded queue to the SIP task; the SIP task sends with [`Transports::send`], which never
//! blocks it (a full socket or connection queue drops the message and counts it: transactions
//! retransmit over UDP, and a stream peer that cannot keep up is closed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use strowger_sip::{frame_len, Limits, ParseError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::stats::SipStats;

/// A transport protocol, as written in Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
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
            Transport::Ws => "WS",
        }
    }
    /// From a Via token or a `transport=` URI parameter.
    pub fn from_token(s: &str) -> Option<Transport> {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
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

impl Transports {
    /// Binds UDP and TCP on `listen` (either may be None when SIP is off) and starts their tasks.
    pub async fn start(
        listen: Option<SocketAddr>,
        inbound: mpsc::Sender<Inbound>,
        limits: Limits,
        max_conns: usize,
        idle: Duration,
        stats: Arc<SipStats>,
    ) -> std::io::Result<Transports> {
        let mut t = Transports {
            udp: None,
            local: None,
            conns: Arc::new(Mutex::new(ConnTable::default())),
            next_conn: Arc::new(AtomicU64::new(1)),
            inbound,
            limits,
            max_conns,
            idle,
            stats,
        };
        let Some(addr) = listen else { return Ok(t) };
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
        let udp = Arc::new(UdpSocket::from_std(sock.into())?);
        let local = udp.local_addr()?;
        let tcp = TcpListener::bind(local).await?;
        t.udp = Some(udp.clone());
        t.local = Some(local);
        tokio::spawn(udp_loop(udp, t.clone()));
        tokio::spawn(accept_loop(tcp, t.clone()));
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

    /// Sends a message. Over a stream, `conn` is used when still open, else an open connection
    /// to `dest` is reused, else (TCP) a new one is opened in the background.
    pub fn send(&self, data: Bytes, dest: SocketAddr, transport: Transport, conn: Option<ConnId>) {
        match transport {
            Transport::Udp => {
                let Some(udp) = &self.udp else { return };
                match udp.try_send_to(&data, dest) {
                    Ok(_) => self.stats.sent.inc(),
                    Err(_) => self.stats.send_dropped.inc(),
                }
            }
            Transport::Tcp | Transport::Ws => {
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
                    None => self.stats.send_dropped.inc(),
                }
            }
        }
    }

    /// Sends over whichever stream connection is open to `dest` (TCP or WebSocket), else opens
    /// a TCP connection.
    pub fn send_reliable(&self, data: Bytes, dest: SocketAddr) {
        let t = self.stream_kind(dest);
        self.send(data, dest, t, None);
    }

    /// The kind of the stream connection open to `peer` (TCP when none is).
    pub fn stream_kind(&self, peer: SocketAddr) -> Transport {
        let table = self.conns.lock().expect("conn table");
        if table.by_peer.contains_key(&(peer, Transport::Ws)) {
            Transport::Ws
        } else {
            Transport::Tcp
        }
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
        tokio::spawn(tcp_conn(s, peer, id, rx, self.clone()));
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

/// Reads frames off a TCP connection and writes what the SIP task sends to it.
async fn tcp_conn(
    s: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    mut rx: mpsc::Receiver<Bytes>,
    t: Transports,
) {
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
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
                            t.send(Bytes::from_static(b"\r\n"), peer, Transport::Tcp, Some(id));
                        }
                        continue;
                    }
                    t.deliver(Inbound {
                        data: frame,
                        src: peer,
                        transport: Transport::Tcp,
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
            tracing::info!(%peer, "SIP TCP: closing connection: {e}");
            buf.advance(buf.len());
            break "framing error";
        }
    };
    tracing::debug!(%peer, "SIP TCP connection ended: {why}");
    t.unregister_conn(id);
    writer.abort();
}
