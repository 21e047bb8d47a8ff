//! The SIP task: parses what the transports deliver, applies protection, drives the transaction
//! layer, and dispatches requests to the registrar and the B2BUA.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strowger_sip::digest::{self, Algorithm, Verifier, VerifierConfig};
use strowger_sip::transaction::{self, Output, TransactionLayer, TxId};
use strowger_sip::{HeaderName, Host, Limits, Message, Method, NameAddr, Request, Scheme, Uri};
use strowger_store::{DigestAlgorithm, Store, User};
use tokio::sync::mpsc;

use super::b2bua::Calls;
use super::protect::{Protect, ProtectConfig, Verdict as Guard};
use super::registrar::{ContactUpdate, Flow, Location};
use super::stats::SipStats;
use super::transport::{Inbound, TlsListen, Transport, Transports};
use crate::config::SipConfig;
use crate::relay::Relay;

/// Methods we implement (Allow header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, PRACK, NOTIFY";
/// Option tags we support (Supported header; a Require outside this list gets 420).
pub const SUPPORTED: &[&str] = &["100rel", "timer", "path", "outbound"];
/// How long a looked-up user stays cached. Changes through the REST API take effect at once
/// (`SipHandle::forget_user`); changes by `strowger user …` on the command line within this.
const USER_CACHE_TTL: Duration = Duration::from_secs(30);
/// Users cached at once.
const USER_CACHE_MAX: usize = 50_000;
/// Requests waiting for a user lookup at once; more get 503.
const MAX_PENDING_LOOKUPS: usize = 10_000;
/// Peers remembered as TLS or WebSocket clients at once (see [`Core::stream_peers`]).
const MAX_STREAM_PEERS: usize = 200_000;

/// What the rest of the server sees of SIP.
#[derive(Clone)]
pub struct SipHandle {
    /// The UDP/TCP address SIP is bound to (None: SIP is off).
    pub local: Option<SocketAddr>,
    /// The TLS address SIP is bound to (None: SIP or TLS is off).
    pub tls_local: Option<SocketAddr>,
    /// For SIP over WebSocket connections accepted by the HTTP server.
    pub transports: Option<Transports>,
    /// Questions to the SIP task (None: SIP is off).
    pub cmd: Option<mpsc::Sender<SipCmd>>,
}

/// A registered SIP device, as the REST API shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub contact: String,
    pub transport: &'static str,
    /// Where its requests come from (its NAT's public address).
    pub source: String,
    pub expires_in: u64,
    pub q: f32,
    pub user_agent: String,
    pub registered_secs_ago: u64,
}

/// Questions the rest of the server asks the SIP task.
pub enum SipCmd {
    /// A user was changed or removed: drop it from the cache.
    ForgetUser(String),
    /// The registered devices of a user.
    Devices {
        user: String,
        reply: tokio::sync::oneshot::Sender<Vec<Device>>,
    },
}

impl SipHandle {
    /// Makes the SIP task look `user` up again on its next request (after a change).
    pub fn forget_user(&self, user: &str) {
        if let Some(cmd) = &self.cmd {
            // A full queue only delays the change until the cache entry expires.
            let _ = cmd.try_send(SipCmd::ForgetUser(user.to_string()));
        }
    }

    /// The registered SIP devices of `user` (empty when SIP is off).
    pub async fn devices(&self, user: &str) -> Result<Vec<Device>, &'static str> {
        let Some(cmd) = &self.cmd else {
            return Ok(Vec::new());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        cmd.try_send(SipCmd::Devices {
            user: user.to_string(),
            reply: tx,
        })
        .map_err(|_| "SIP task busy")?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .map_err(|_| "SIP task did not answer")?
            .map_err(|_| "SIP task stopped")
    }
}

/// Completions of async work started by the SIP task.
pub(super) enum Internal {
    UserLoaded {
        name: String,
        user: Result<Option<User>, String>,
    },
    RelayInactive {
        call: u64,
    },
}

/// A request held while its user is looked up.
pub(super) struct Held {
    pub id: TxId,
    pub req: Request,
    pub from: SocketAddr,
    pub reliable: bool,
}

struct CachedUser {
    user: Option<User>,
    at: Instant,
}

/// Everything the SIP task owns.
pub(super) struct Core {
    pub cfg: SipConfig,
    pub stats: Arc<SipStats>,
    pub tp: Transports,
    pub txl: TransactionLayer,
    pub loc: Location,
    pub protect: Protect,
    pub verifier: Verifier,
    pub store: Store,
    pub relay: Relay,
    pub calls: Calls,
    pub internal: mpsc::Sender<Internal>,
    users: HashMap<String, CachedUser>,
    held: HashMap<String, Vec<Held>>,
    held_count: usize,
    local_ips: Vec<IpAddr>,
    route_cache: HashMap<IpAddr, IpAddr>,
    /// Peers that reached us over TLS or WebSocket, and when last. The transaction layer only
    /// knows "reliable"; without this, a message to such a peer whose connection has closed
    /// would go out over a new plain TCP connection. With it, the send is dropped (we never
    /// connect out over TLS or WebSocket). Forgotten after the longest registration.
    stream_peers: HashMap<SocketAddr, (Transport, Instant)>,
    pub listen: SocketAddr,
    epoch: Instant,
    limits: Limits,
    next_housekeeping: Instant,
}

/// Starts SIP (when `cfg.listen` is set): loads the TLS certificate (when `cfg.tls_listen` is
/// set), binds the transports and spawns the SIP task. Errors are for the operator: they name the
/// option, file or address at fault.
pub async fn start(
    cfg: SipConfig,
    store: Store,
    relay: Relay,
    stats: Arc<SipStats>,
) -> Result<SipHandle, String> {
    let listen: Option<SocketAddr> = if cfg.listen.is_empty() {
        None
    } else {
        cfg.listen.parse().ok()
    };
    let limits = Limits {
        max_message: cfg.max_message_bytes,
        ..Limits::default()
    };
    let tls = match (listen, super::tls::server_config(&cfg)?) {
        (Some(_), Some(config)) => Some(TlsListen {
            addr: cfg
                .tls_listen
                .parse()
                .map_err(|_| format!("sip.tls_listen: not an address: {}", cfg.tls_listen))?,
            config,
        }),
        _ => None,
    };
    let (in_tx, in_rx) = mpsc::channel(16_384);
    let tp = Transports::start(
        listen,
        tls,
        in_tx,
        limits,
        cfg.max_connections,
        Duration::from_secs(cfg.connection_idle_secs),
        stats.clone(),
    )
    .await?;
    let local = tp.local();
    let tls_local = tp.tls_local();
    let Some(bound) = local else {
        return Ok(SipHandle {
            local,
            tls_local,
            transports: None,
            cmd: None,
        });
    };
    let (int_tx, int_rx) = mpsc::channel(4096);
    let mut local_ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    local_ips.push(bound.ip());
    if let Ok(ip) = cfg.public_ip.parse::<IpAddr>() {
        local_ips.push(ip);
    }
    let txc = transaction::Config {
        t1: Duration::from_millis(cfg.t1_ms),
        t2: Duration::from_millis(cfg.t2_ms),
        t4: Duration::from_millis(cfg.t4_ms),
        max_transactions: cfg.max_transactions,
        ..transaction::Config::default()
    };
    let mut vc = VerifierConfig::new(cfg.realm.clone());
    vc.algorithms = vec![Algorithm::Md5, Algorithm::Sha256];
    vc.max_tracked_nonces = 100_000;
    let protect = Protect::new(ProtectConfig {
        rate_per_sec: cfg.rate_per_sec,
        burst: cfg.rate_burst,
        ban_after_failures: cfg.ban_after_failures,
        ban_window: Duration::from_secs(cfg.ban_window_secs),
        ban_for: Duration::from_secs(cfg.ban_secs),
        trusted: cfg.trusted_ips.clone(),
    });
    let now = Instant::now();
    let core = Core {
        loc: Location::new(cfg.max_contacts_per_user),
        calls: Calls::new(),
        txl: TransactionLayer::new(txc, rand::random()),
        verifier: Verifier::new(vc),
        cfg,
        stats: stats.clone(),
        tp,
        protect,
        store,
        relay,
        internal: int_tx,
        users: HashMap::new(),
        held: HashMap::new(),
        held_count: 0,
        local_ips,
        route_cache: HashMap::new(),
        stream_peers: HashMap::new(),
        listen: bound,
        epoch: now,
        limits,
        next_housekeeping: now + Duration::from_secs(1),
    };
    match tls_local {
        Some(tls) => tracing::info!(
            "SIP listening on udp/tcp {bound}, tls {tls}, realm \"{}\"",
            core.cfg.realm
        ),
        None => tracing::info!(
            "SIP listening on udp/tcp {bound}, realm \"{}\"",
            core.cfg.realm
        ),
    }
    let transports = Some(core.tp.clone());
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    tokio::spawn(core.run(in_rx, int_rx, cmd_rx));
    Ok(SipHandle {
        local,
        tls_local,
        transports,
        cmd: Some(cmd_tx),
    })
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut internal: mpsc::Receiver<Internal>,
        mut cmds: mpsc::Receiver<SipCmd>,
    ) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                m = inbound.recv() => {
                    let Some(m) = m else { break };
                    self.on_inbound(Instant::now(), m);
                    // Drain what is already queued before looking at timers again.
                    for _ in 0..256 {
                        match inbound.try_recv() {
                            Ok(m) => self.on_inbound(Instant::now(), m),
                            Err(_) => break,
                        }
                    }
                }
                i = internal.recv() => {
                    let Some(i) = i else { break };
                    self.on_internal(Instant::now(), i);
                }
                Some(c) = cmds.recv() => self.on_cmd(Instant::now(), c),
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            let now = Instant::now();
            self.txl.handle_timeout(now);
            self.drain(now);
            self.calls_timeout(now);
            self.drain(now);
            if now >= self.next_housekeeping {
                self.housekeeping(now);
            }
        }
        tracing::warn!("SIP task stopped");
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self.next_housekeeping;
        if let Some(t) = self.txl.poll_timeout() {
            d = d.min(t);
        }
        if let Some(t) = self.calls.next_deadline() {
            d = d.min(t);
        }
        d
    }

    fn housekeeping(&mut self, now: Instant) {
        self.next_housekeeping = now + Duration::from_secs(1);
        self.loc.expire(now);
        self.stats.bindings.set(self.loc.bindings() as i64);
        self.stats.transactions.set(self.txl.len() as i64);
        self.stats.overload_refused.set(self.txl.refused());
        self.stats
            .banned_ips
            .set(self.protect.banned_count(now) as i64);
        self.users
            .retain(|_, u| now.duration_since(u.at) < USER_CACHE_TTL);
        let keep = Duration::from_secs(u64::from(self.cfg.max_expires_secs) + 60);
        self.stream_peers
            .retain(|_, (_, seen)| now.duration_since(*seen) < keep);
    }

    /// Seconds since start, the clock of digest nonces.
    fn secs(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_secs()
    }

    fn on_inbound(&mut self, now: Instant, m: Inbound) {
        let msg = match Message::parse(m.data.clone(), &self.limits) {
            Ok(msg) => msg,
            Err(e) => {
                self.stats.parse_errors.inc();
                self.answer_unparseable(now, &m, &e);
                return;
            }
        };
        let reliable = m.transport.reliable();
        match msg {
            Message::Request(mut req) => {
                match self.protect.check(now, m.src.ip()) {
                    Guard::Accept => {}
                    Guard::RateLimited => {
                        self.stats.rate_limited.inc();
                        return;
                    }
                    Guard::Banned => {
                        self.stats.banned_drops.inc();
                        return;
                    }
                }
                if let Err((status, reason)) = req.validate() {
                    // Answerable only when the headers a response needs are there.
                    if req.method != Method::Ack
                        && req.via_top().is_ok()
                        && req.from().is_ok()
                        && req.to().is_ok()
                        && req.call_id().is_ok()
                        && req.cseq().is_ok()
                    {
                        let r = req.response(status, reason, None);
                        self.send_back(Message::Response(r), &m);
                    } else {
                        self.stats.parse_errors.inc();
                    }
                    return;
                }
                stamp_received(&mut req, m.src);
                self.remember_flow(m.src, m.transport);
                if let Err(e) = self.txl.handle_request(now, req, m.src, reliable) {
                    tracing::debug!(src = %m.src, "SIP: request refused by the transaction layer: {e}");
                }
            }
            Message::Response(resp) => {
                if let Err(e) = self.txl.handle_response(now, resp, m.src, reliable) {
                    tracing::debug!(src = %m.src, "SIP: response refused: {e}");
                }
            }
        }
        self.drain(now);
    }

    fn remember_flow(&mut self, src: SocketAddr, t: Transport) {
        if !matches!(t, Transport::Tls | Transport::Ws) {
            return;
        }
        let now = Instant::now();
        if let Some(e) = self.stream_peers.get_mut(&src) {
            *e = (t, now);
        } else if self.stream_peers.len() < MAX_STREAM_PEERS {
            self.stream_peers.insert(src, (t, now));
        }
    }

    /// A request whose start line or headers do not parse: answered (400, 416, 505, 513) when its
    /// Via, From, To, Call-ID and CSeq can be read, so the sender stops retransmitting; dropped
    /// otherwise. Responses that do not parse are dropped.
    fn answer_unparseable(&mut self, now: Instant, m: &Inbound, e: &strowger_sip::ParseError) {
        if m.data.starts_with(b"SIP/") || self.protect.check(now, m.src.ip()) != Guard::Accept {
            tracing::debug!(src = %m.src, "SIP: unparseable message dropped: {e}");
            return;
        }
        let Ok(headers) = Message::parse_headers(m.data.clone(), &self.limits) else {
            tracing::debug!(src = %m.src, "SIP: unparseable message dropped: {e}");
            return;
        };
        let status = e.status();
        let reason = match status {
            416 => "Unsupported URI Scheme",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            _ => "Bad Request",
        };
        let mut r = strowger_sip::Response::answering(&headers, status, reason, Some(&new_tag()));
        // No CSeq ACK method check here: an ACK is never answered.
        if r.cseq().map(|c| c.method == Method::Ack).unwrap_or(true)
            || r.via_top().is_err()
            || r.call_id().is_err()
        {
            return;
        }
        r.headers.push(HeaderName::Server, "Strowger");
        tracing::debug!(src = %m.src, "SIP: bad request answered {status}: {e}");
        self.send_back(Message::Response(r), m);
    }

    fn on_cmd(&mut self, now: Instant, c: SipCmd) {
        match c {
            SipCmd::ForgetUser(u) => {
                self.users.remove(&u);
            }
            SipCmd::Devices { user, reply } => {
                let v = self
                    .loc
                    .lookup(now, &user)
                    .into_iter()
                    .map(|b| Device {
                        contact: b.contact.to_string(),
                        transport: b.transport.via(),
                        source: b.source.to_string(),
                        expires_in: b.expires_in(now),
                        q: b.q,
                        user_agent: b.user_agent,
                        registered_secs_ago: now.duration_since(b.registered_at).as_secs(),
                    })
                    .collect();
                let _ = reply.send(v);
            }
        }
    }

    fn on_internal(&mut self, now: Instant, i: Internal) {
        match i {
            Internal::UserLoaded { name, user } => {
                let user = match user {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::error!("SIP: user store lookup for {name:?} failed: {e}");
                        for h in self.held.remove(&name).unwrap_or_default() {
                            self.held_count -= 1;
                            self.reply(now, h.id, &h.req, 500, "Server Internal Error", None);
                        }
                        self.drain(now);
                        return;
                    }
                };
                if self.users.len() >= USER_CACHE_MAX {
                    self.users.clear();
                }
                self.users
                    .insert(name.clone(), CachedUser { user, at: now });
                for h in self.held.remove(&name).unwrap_or_default() {
                    self.held_count -= 1;
                    self.on_request(now, h.id, h.req, h.from, h.reliable);
                }
            }
            Internal::RelayInactive { call } => self.call_media_timeout(now, call),
        }
        self.drain(now);
    }

    /// Works through everything the transaction layer has to say.
    pub(super) fn drain(&mut self, now: Instant) {
        while let Some(o) = self.txl.poll_output() {
            match o {
                Output::Transmit(t) => self.send_msg(t.msg, t.dest, t.reliable),
                Output::Request {
                    id,
                    req,
                    from,
                    reliable,
                } => self.on_request(now, id, req, from, reliable),
                Output::Response { id, resp } => self.on_response(now, id, resp),
                Output::Ack {
                    id: _,
                    req,
                    from: _,
                    reliable: _,
                } => self.on_ack(now, req),
                Output::StrayResponse { resp, from } => self.on_stray_response(now, resp, from),
                Output::Timeout { id } => self.on_tx_timeout(now, id, 408),
                Output::TransportError { id } => self.on_tx_timeout(now, id, 503),
                Output::Terminated { id } => self.on_tx_terminated(id),
            }
        }
    }

    /// Answers a message outside any transaction over exactly the transport and connection it
    /// came on.
    fn send_back(&mut self, msg: Message, to: &Inbound) {
        let data = Bytes::from(msg.to_bytes());
        self.tp.send(data, to.src, to.transport, to.conn);
    }

    pub(super) fn send_msg(&mut self, msg: Message, dest: SocketAddr, reliable: bool) {
        let data = Bytes::from(msg.to_bytes());
        if reliable {
            match self.stream_peers.get(&dest) {
                // Over the peer's TLS or WebSocket connection, or dropped when it has closed.
                Some(&(t, _)) => self.tp.send(data, dest, t, None),
                None => self.tp.send_reliable(data, dest),
            }
        } else {
            self.tp.send(data, dest, Transport::Udp, None);
        }
    }

    /// Answers a server transaction.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        id: TxId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: Option<Vec<(HeaderName, String)>>,
    ) {
        let mut r = req.response(status, reason, Some(&new_tag()));
        r.headers.push(HeaderName::Server, "Strowger");
        for (n, v) in extra.unwrap_or_default() {
            r.headers.push(n, v);
        }
        if let Err(e) = self.txl.respond(now, id, r) {
            tracing::debug!("SIP: cannot respond {status}: {e}");
        }
    }

    /// Answers without keeping the transaction (a challenge, a 503): a retransmitted request is
    /// simply answered again. Kamailio sends these statelessly too; keeping each for 64·T1 would
    /// hold one transaction per REGISTER for 32 s.
    pub(super) fn reply_statelessly(
        &mut self,
        now: Instant,
        id: TxId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: Vec<(HeaderName, String)>,
    ) {
        let mut r = req.response(status, reason, Some(&new_tag()));
        r.headers.push(HeaderName::Server, "Strowger");
        for (n, v) in extra {
            r.headers.push(n, v);
        }
        if let Err(e) = self.txl.respond_statelessly(now, id, r) {
            tracing::debug!("SIP: cannot respond {status}: {e}");
        }
    }

    /// A new server transaction (or an in-dialog request).
    fn on_request(
        &mut self,
        now: Instant,
        id: TxId,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    ) {
        // Loop detection: a request carrying our own Via came back to us.
        if let Ok(vias) = req.vias() {
            let me = self.listen.port();
            let me_tls = self.tp.tls_local().map(|a| a.port());
            if vias.iter().skip(1).any(|v| {
                let tls = Transport::from_token(&v.transport) == Some(Transport::Tls);
                let port = v.port.unwrap_or(if tls { 5061 } else { 5060 });
                (port == me || Some(port) == me_tls)
                    && self.is_local_host(&v.host)
                    && v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
            }) {
                self.stats.loops_detected.inc();
                return self.reply(now, id, &req, 482, "Loop Detected", None);
            }
        }
        if matches!(req.max_forwards(), Ok(Some(0))) && req.method != Method::Cancel {
            self.stats.loops_detected.inc();
            return self.reply(now, id, &req, 483, "Too Many Hops", None);
        }
        if let Method::Other(m) = &req.method {
            self.stats.unknown_methods.inc();
            tracing::debug!(%from, "SIP: unknown method {m}: 501");
            let allow = vec![(HeaderName::Allow, ALLOW.to_string())];
            return self.reply(now, id, &req, 501, "Not Implemented", Some(allow));
        }
        if req.method != Method::Cancel {
            let unsupported = unsupported_requires(&req);
            if !unsupported.is_empty() {
                let h = vec![(HeaderName::Unsupported, unsupported.join(", "))];
                return self.reply(now, id, &req, 420, "Bad Extension", Some(h));
            }
        }
        if !matches!(req.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
            return self.reply(now, id, &req, 416, "Unsupported URI Scheme", None);
        }
        let in_dialog = req.to().ok().and_then(|t| t.tag().cloned()).is_some();
        match req.method {
            Method::Register => self.on_register(now, id, req, from, reliable),
            Method::Cancel => self.on_cancel(now, id, req),
            Method::Invite | Method::Bye | Method::Update | Method::Info | Method::Prack
                if in_dialog || req.method == Method::Invite =>
            {
                self.on_call_request(now, id, req, from, reliable)
            }
            Method::Options | Method::Notify | Method::Message | Method::Refer if in_dialog => {
                self.on_call_request(now, id, req, from, reliable)
            }
            Method::Options => {
                let h = vec![
                    (HeaderName::Allow, ALLOW.to_string()),
                    (HeaderName::Other("Accept".into()), "application/sdp".into()),
                    (HeaderName::Supported, SUPPORTED.join(", ")),
                ];
                self.reply(now, id, &req, 200, "OK", Some(h))
            }
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                self.reply(now, id, &req, 481, "Call/Transaction Does Not Exist", None)
            }
            _ => {
                let allow = vec![(HeaderName::Allow, ALLOW.to_string())];
                self.reply(now, id, &req, 405, "Method Not Allowed", Some(allow))
            }
        }
    }

    /// Is `host` one of ours (an address of this machine, a configured domain, localhost)?
    pub(super) fn is_local_host(&self, host: &Host) -> bool {
        match host {
            Host::V4(a) => self.local_ips.contains(&IpAddr::V4(*a)),
            Host::V6(a) => self.local_ips.contains(&IpAddr::V6(*a)),
            Host::Domain(d) => {
                d.eq_ignore_ascii_case("localhost")
                    || self.cfg.domains.iter().any(|x| x.eq_ignore_ascii_case(d))
            }
        }
    }

    /// The address we write into Via, Contact and SDP for a peer at `dest`.
    pub(super) fn local_ip_for(&mut self, dest: IpAddr) -> IpAddr {
        if let Ok(ip) = self.cfg.public_ip.parse::<IpAddr>() {
            return ip;
        }
        if !self.listen.ip().is_unspecified() {
            return self.listen.ip();
        }
        if let Some(ip) = self.route_cache.get(&dest) {
            return *ip;
        }
        let ip = std::net::UdpSocket::bind(match dest {
            IpAddr::V4(_) => "0.0.0.0:0",
            IpAddr::V6(_) => "[::]:0",
        })
        .and_then(|s| {
            s.connect(SocketAddr::new(dest, 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(self.listen.ip());
        if self.route_cache.len() > 10_000 {
            self.route_cache.clear();
        }
        self.route_cache.insert(dest, ip);
        ip
    }

    /// Our port for `transport`: the TLS listener's for TLS, else the UDP/TCP one (WebSocket
    /// clients never connect back to what Via or Contact say).
    fn our_port(&self, transport: Transport) -> u16 {
        match (transport, self.tp.tls_local()) {
            (Transport::Tls, Some(a)) => a.port(),
            _ => self.listen.port(),
        }
    }

    /// A Via for a request we send to `dest` over `transport`, with a fresh branch.
    pub(super) fn our_via(&mut self, dest: SocketAddr, transport: Transport) -> String {
        let ip = self.local_ip_for(dest.ip());
        let host = host_of(ip);
        let branch = format!("{BRANCH_PREFIX}{:016x}", rand::random::<u64>());
        format!(
            "SIP/2.0/{} {}:{};branch={branch};rport",
            transport.via(),
            host,
            self.our_port(transport)
        )
    }

    /// Our Contact toward `dest`.
    pub(super) fn our_contact(&mut self, dest: SocketAddr, transport: Transport) -> NameAddr {
        let ip = self.local_ip_for(dest.ip());
        let mut uri = Uri {
            scheme: Scheme::Sip,
            user: Some("strowger".into()),
            password: None,
            host: host_of(ip),
            port: Some(self.our_port(transport)),
            params: Default::default(),
            headers: Vec::new(),
        };
        // `transport=tcp`, `transport=tls` or `transport=ws` (RFC 3261 §19.1.1, RFC 7118).
        if transport != Transport::Udp {
            uri.params.set(
                "transport",
                Some(transport.via().to_ascii_lowercase().into()),
            );
        }
        NameAddr {
            display: None,
            uri,
            params: Default::default(),
        }
    }

    // ---- authentication ------------------------------------------------------------------------

    /// Authenticates a request with the given credentials header (Authorization for REGISTER,
    /// Proxy-Authorization otherwise). `Ok(Some(user))` authenticated; `Ok(None)` the request was
    /// answered (challenge, 403) or is held for a user lookup.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        id: TxId,
        req: &Request,
        from: SocketAddr,
        reliable: bool,
        proxy: bool,
    ) -> Option<String> {
        let hname = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        // The credentials for our realm (a request may carry several).
        let creds = req
            .headers
            .get_all(&hname)
            .filter_map(|v| digest::Credentials::parse(v).ok())
            .find(|c| c.realm == self.cfg.realm);
        let Some(creds) = creds else {
            self.challenge(now, id, req, proxy, false);
            return None;
        };
        let name = creds.username.clone();
        let cached = match self.users.get(&name) {
            Some(c) if now.duration_since(c.at) < USER_CACHE_TTL => c.user.clone(),
            _ => {
                self.hold_for_lookup(now, name, id, req.clone(), from, reliable);
                return None;
            }
        };
        let realm = self.cfg.realm.clone();
        let secs = self.secs(now);
        let uri = creds.uri.clone();
        let verdict = self.verifier.verify_credentials(
            &creds,
            req.method.as_str(),
            &uri,
            secs,
            |user, alg| {
                let u = cached
                    .as_ref()
                    .filter(|u| u.username == user && !u.disabled)?;
                let a = match alg {
                    Algorithm::Sha256 | Algorithm::Sha256Sess => DigestAlgorithm::Sha256,
                    _ => DigestAlgorithm::Md5,
                };
                u.ha1(a, &realm).map(str::to_string)
            },
        );
        match verdict {
            digest::Verdict::Ok(user) => Some(user),
            digest::Verdict::Stale => {
                self.challenge(now, id, req, proxy, true);
                None
            }
            digest::Verdict::Failed(why) => {
                self.stats.auth_failures.inc();
                let banned = self.protect.auth_failed(now, from.ip());
                if banned {
                    self.stats.bans.inc();
                    tracing::warn!(src = %from, "SIP: {} banned for {} s after repeated authentication failures", from.ip(), self.cfg.ban_secs);
                }
                tracing::info!(src = %from, user = %name, "SIP: authentication failed ({why:?}): 403");
                self.reply(now, id, req, 403, "Forbidden", None);
                None
            }
            digest::Verdict::Malformed => {
                self.reply(now, id, req, 400, "Bad Authorization Header", None);
                None
            }
        }
    }

    fn challenge(&mut self, now: Instant, id: TxId, req: &Request, proxy: bool, stale: bool) {
        self.stats.auth_challenges.inc();
        let secs = self.secs(now);
        let ch = self.verifier.challenge(secs, stale).to_string();
        let (status, reason, h) = if proxy {
            (
                407,
                "Proxy Authentication Required",
                HeaderName::ProxyAuthenticate,
            )
        } else {
            (401, "Unauthorized", HeaderName::WwwAuthenticate)
        };
        self.reply_statelessly(now, id, req, status, reason, vec![(h, ch)]);
    }

    fn hold_for_lookup(
        &mut self,
        now: Instant,
        name: String,
        id: TxId,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    ) {
        if self.held_count >= MAX_PENDING_LOOKUPS || name.len() > 128 {
            let h = vec![(HeaderName::Other("Retry-After".into()), "5".to_string())];
            return self.reply_statelessly(now, id, &req, 503, "Service Unavailable", h);
        }
        let first = !self.held.contains_key(&name);
        self.held.entry(name.clone()).or_default().push(Held {
            id,
            req,
            from,
            reliable,
        });
        self.held_count += 1;
        if first {
            let store = self.store.clone();
            let tx = self.internal.clone();
            tokio::spawn(async move {
                let user = store.get_user(&name).await.map_err(|e| e.to_string());
                let _ = tx.send(Internal::UserLoaded { name, user }).await;
            });
        }
    }

    /// Looks up a user for routing (no authentication): `None` while the lookup runs (the
    /// request is held and comes back through `on_request`).
    pub(super) fn user_for_routing(
        &mut self,
        now: Instant,
        name: &str,
        id: TxId,
        req: &Request,
        from: SocketAddr,
        reliable: bool,
    ) -> Option<Option<User>> {
        match self.users.get(name) {
            Some(c) if now.duration_since(c.at) < USER_CACHE_TTL => Some(c.user.clone()),
            _ => {
                self.hold_for_lookup(now, name.to_string(), id, req.clone(), from, reliable);
                None
            }
        }
    }

    // ---- registrar (RFC 3261 §10.3) --------------------------------------------------------------

    fn on_register(
        &mut self,
        now: Instant,
        id: TxId,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    ) {
        if !self.is_local_host(&req.uri.host) {
            return self.reply(now, id, &req, 403, "Domain Not Served", None);
        }
        let Some(user) = self.authenticate(now, id, &req, from, reliable, false) else {
            return;
        };
        let to = match req.to() {
            Ok(t) => t,
            Err(_) => return self.reply(now, id, &req, 400, "Bad To", None),
        };
        let aor = to.uri.user.as_deref().unwrap_or("").to_string();
        if !aor.eq_ignore_ascii_case(&user) {
            self.stats.registration_failures.inc();
            tracing::info!(src = %from, "SIP: {user} tried to register {aor}: 403");
            return self.reply(
                now,
                id,
                &req,
                403,
                "Registration Of Another User Forbidden",
                None,
            );
        }
        let star = req.contact_star();
        let contacts = match req.contacts() {
            Ok(c) => c,
            Err(_) if star => Vec::new(),
            Err(_) => return self.reply(now, id, &req, 400, "Bad Contact", None),
        };
        let header_expires = match req.expires() {
            Ok(e) => e,
            Err(_) => return self.reply(now, id, &req, 400, "Bad Expires", None),
        };
        if star && (header_expires != Some(0) || !contacts.is_empty()) {
            self.stats.registration_failures.inc();
            return self.reply(now, id, &req, 400, "Invalid Contact *", None);
        }
        let mut updates = Vec::new();
        for c in contacts {
            let expires = match c.params.value("expires") {
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(v) => v.min(u64::from(u32::MAX)) as u32,
                    Err(_) => return self.reply(now, id, &req, 400, "Bad Contact Expires", None),
                },
                None => header_expires.unwrap_or(self.cfg.default_expires_secs),
            };
            if expires != 0 && expires < self.cfg.min_expires_secs {
                self.stats.registration_failures.inc();
                let h = vec![(
                    HeaderName::MinExpires,
                    self.cfg.min_expires_secs.to_string(),
                )];
                return self.reply(now, id, &req, 423, "Interval Too Brief", Some(h));
            }
            let q = c
                .params
                .value("q")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            let instance = c
                .params
                .value("+sip.instance")
                .map(|s| s.trim_matches('"').to_string());
            let mut uri_only = c.clone();
            uri_only.params = Default::default();
            updates.push(ContactUpdate {
                contact_text: uri_only.to_string(),
                contact: c.uri,
                q,
                expires: expires.min(self.cfg.max_expires_secs),
                instance,
            });
        }
        let (Ok(call_id), Ok(cseq)) = (req.call_id(), req.cseq()) else {
            return self.reply(now, id, &req, 400, "Bad Request", None);
        };
        let call_id = call_id.to_string();
        let mut flow = Flow {
            source: from,
            transport: if reliable {
                self.tp.stream_kind(from)
            } else {
                Transport::Udp
            },
            user_agent: req
                .headers
                .get(&HeaderName::UserAgent)
                .map(|u| u.chars().take(128).collect())
                .unwrap_or_default(),
            path: Vec::new(),
        };
        // RFC 3327: the proxies between us and the phone, kept as its route and echoed.
        for v in req.headers.get_all(&HeaderName::Path) {
            match NameAddr::parse_list(v) {
                Ok(list) => flow.path.extend(list.iter().map(|n| n.to_string())),
                Err(_) => return self.reply(now, id, &req, 400, "Bad Path", None),
            }
        }
        flow.path.truncate(8);
        let path_echo: Vec<(HeaderName, String)> = if flow.path.is_empty() {
            Vec::new()
        } else {
            vec![(HeaderName::Path, flow.path.join(", "))]
        };
        match self
            .loc
            .register(now, &aor, &call_id, cseq.seq, star, updates, &flow)
        {
            Ok(bindings) => {
                self.stats.registrations.inc();
                let mut h: Vec<(HeaderName, String)> = bindings
                    .iter()
                    .map(|b| {
                        (
                            HeaderName::Contact,
                            format!("{};expires={}", b.contact_text, b.expires_in(now)),
                        )
                    })
                    .collect();
                h.push((
                    HeaderName::Other("Date".into()),
                    httpdate(std::time::SystemTime::now()),
                ));
                h.extend(path_echo);
                tracing::debug!(src = %from, "SIP: {aor} registered, {} contact(s)", bindings.len());
                self.reply(now, id, &req, 200, "OK", Some(h));
            }
            Err(e) => {
                self.stats.registration_failures.inc();
                self.reply(now, id, &req, 500, &e.to_string(), None);
            }
        }
    }

    /// `sip.default_route` as a contact for `user`: where calls to numbers and names that are not
    /// our users go (a PSTN gateway, a trunk, another PBX). `None` when not set.
    pub(super) fn default_route_binding(&self, user: &str) -> Option<super::registrar::Binding> {
        let route = Uri::parse(&self.cfg.default_route).ok()?;
        let ip = ip_of(&route.host)?;
        let transport = route
            .params
            .value("transport")
            .and_then(|t| Transport::from_token(t))
            .unwrap_or(Transport::Udp);
        let mut contact = route.clone();
        contact.user = Some(user.to_string().into());
        let now = Instant::now();
        Some(super::registrar::Binding {
            contact_text: format!("<{contact}>"),
            contact,
            q: 1.0,
            expires_at: now + Duration::from_secs(60),
            call_id: String::new(),
            cseq: 0,
            source: SocketAddr::new(ip, route.port.unwrap_or(5060)),
            transport,
            user_agent: String::new(),
            instance: None,
            path: Vec::new(),
            registered_at: now,
        })
    }

    /// The registered contacts of a user.
    pub(super) fn lookup(&self, now: Instant, user: &str) -> Vec<super::registrar::Binding> {
        self.loc.lookup(now, user)
    }
}

/// Our branch prefix: the RFC 3261 magic cookie plus a marker for loop detection.
pub const BRANCH_PREFIX: &str = "z9hG4bK-stw-";

/// A random tag.
pub(super) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// RFC 3581 / RFC 3261 §18.2.1: note where a request really came from in its top Via.
fn stamp_received(req: &mut Request, src: SocketAddr) {
    let Some(i) = req.headers.0.iter().position(|h| h.name == HeaderName::Via) else {
        return;
    };
    let Ok(mut vias) = strowger_sip::Via::parse_all(&req.headers.0[i].value) else {
        return;
    };
    let Some(top) = vias.first_mut() else { return };
    let sent_ip = match &top.host {
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    };
    let mut changed = false;
    if sent_ip != Some(src.ip()) {
        top.params
            .set("received", Some(src.ip().to_string().into()));
        changed = true;
    }
    if top.params.get("rport") == Some(None) {
        top.params.set("rport", Some(src.port().to_string().into()));
        changed = true;
    }
    if changed {
        let first = top.to_string();
        let rest: Vec<String> = vias.iter().skip(1).map(|v| v.to_string()).collect();
        let mut v = first;
        for r in rest {
            v.push_str(", ");
            v.push_str(&r);
        }
        req.headers.0[i].value = v.into();
    }
}

/// Option tags in Require / Proxy-Require that we do not support.
fn unsupported_requires(req: &Request) -> Vec<String> {
    let mut out = Vec::new();
    for name in [HeaderName::Require, HeaderName::ProxyRequire] {
        for v in req.headers.get_all(&name) {
            for tag in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
                    out.push(tag.chars().take(64).collect());
                }
            }
        }
    }
    out.truncate(16);
    out
}

/// An RFC 1123 date for the Date header.
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {h:02}:{m:02}:{s:02} GMT")
}

/// The IP address of a host, if it is one.
pub(super) fn ip_of(h: &Host) -> Option<IpAddr> {
    match h {
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    }
}

/// The SIP host for an IP address.
pub(super) fn host_of(ip: IpAddr) -> Host {
    match ip {
        IpAddr::V4(a) => Host::V4(a),
        IpAddr::V6(a) => Host::V6(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_header_format() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_764_028_800);
        assert_eq!(httpdate(t), "Tue, 25 Nov 2025 00:00:00 GMT");
    }
}
