//! The SIP transaction layer (RFC 3261 §17, as corrected by RFC 6026), sans-IO.
//!
//! One [`TransactionLayer`] owns every client and server transaction of an endpoint. Messages and
//! the current time come in ([`TransactionLayer::handle_request`],
//! [`TransactionLayer::handle_response`], [`TransactionLayer::handle_timeout`],
//! [`TransactionLayer::send_request`], [`TransactionLayer::respond`]); datagrams to send, events
//! for the transaction user (TU) and the next deadline go out ([`TransactionLayer::poll_output`],
//! [`TransactionLayer::poll_timeout`]). No clock is read: every call takes `now`.
//!
//! Choices made here:
//! - An INVITE server transaction sends `100 Trying` itself when the TU has not answered within
//!   [`Config::trying_delay`] (200 ms by default, as RFC 3261 §17.2.1 suggests); `Some(0)` sends
//!   it at once, `None` never.
//! - Responses from a server transaction go back to the address the request came from
//!   (symmetric routing, like RFC 3581); a transport can re-route per §18.2.2 if it must.
//! - ACKs that match no transaction (the ACK for a 2xx, RFC 3261 §17.2.3 / RFC 6026) are passed
//!   to the TU as [`Output::Ack`] with no id; so are ACKs reaching an INVITE server transaction in
//!   the RFC 6026 `Accepted` state (with its id). Responses matching no client transaction are
//!   passed up as [`Output::StrayResponse`] (a proxy may forward a stray 2xx, RFC 6026 §7.2).
//! - The output queue: every input call queues at most a handful of outputs (at most three per
//!   transaction touched), so the queue stays small as long as the driver drains
//!   [`TransactionLayer::poll_output`] after each call. The number of transactions is capped
//!   by [`Config::max_transactions`]: beyond it, new requests are answered `503` statelessly and
//!   [`TransactionLayer::send_request`] fails.

use crate::message::{
    CSeq, HeaderName, Message, Method, NameAddr, ParseError, Request, Response, Via,
};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Timer values (RFC 3261 §17.1.1.1, table 4) and limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum time a message remains in the network (default 5 s).
    pub t4: Duration,
    /// Timer B / F / H / L / M and non-INVITE J (all 64·T1 by default); `None` means 64·T1.
    pub timeout: Option<Duration>,
    /// Timer D on unreliable transports (default 32 s).
    pub timer_d: Duration,
    /// Delay before an INVITE server transaction sends `100 Trying` on its own (default 200 ms).
    pub trying_delay: Option<Duration>,
    /// Most live transactions (default 100 000).
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timeout: None,
            timer_d: Duration::from_secs(32),
            trying_delay: Some(Duration::from_millis(200)),
            max_transactions: 100_000,
        }
    }
}

impl Config {
    /// 64·T1 unless overridden.
    fn long(&self) -> Duration {
        self.timeout.unwrap_or(self.t1 * 64)
    }
}

/// A transaction's id, unique within one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Which of the four state machines a transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// INVITE client transaction (§17.1.1).
    InviteClient,
    /// Non-INVITE client transaction (§17.1.2).
    NonInviteClient,
    /// INVITE server transaction (§17.2.1).
    InviteServer,
    /// Non-INVITE server transaction (§17.2.2).
    NonInviteServer,
}

/// Transaction states (RFC 3261 figures 5–8, RFC 6026 `Accepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// INVITE client, request sent, nothing heard.
    Calling,
    /// Non-INVITE client or server before any response.
    Trying,
    /// Provisional response received / sent.
    Proceeding,
    /// RFC 6026: INVITE 2xx received / sent.
    Accepted,
    /// Final (non-2xx for INVITE) response received / sent.
    Completed,
    /// INVITE server: ACK received.
    Confirmed,
}

/// A message to put on the wire.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// The transaction that sends it (`None` for stateless sends).
    pub tx: Option<TxId>,
    /// Where to.
    pub dest: SocketAddr,
    /// Over a reliable (stream) transport.
    pub reliable: bool,
    /// The message (serialize with [`Message::to_bytes`]).
    pub msg: Message,
}

/// What the layer asks of its driver and tells its TU.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this.
    Transmit(Transmit),
    /// A new server transaction: the TU must answer with [`TransactionLayer::respond`].
    Request {
        id: TxId,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    },
    /// A response for a client transaction (provisional, final, and in the INVITE `Accepted`
    /// state every 2xx including retransmissions and 2xx from other forks).
    Response { id: TxId, resp: Response },
    /// An ACK for a 2xx: `id` is the INVITE server transaction when it matched one in `Accepted`.
    Ack {
        id: Option<TxId>,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    },
    /// A response that matches no client transaction.
    StrayResponse { resp: Response, from: SocketAddr },
    /// Timer B, F or H fired: no (final response / ACK) in time.
    Timeout { id: TxId },
    /// The driver reported a transport failure for this transaction.
    TransportError { id: TxId },
    /// The transaction is gone (always the last output about an id).
    Terminated { id: TxId },
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// A header the transaction layer needs is missing or malformed.
    #[error("malformed message: {0}")]
    Malformed(#[from] ParseError),
    /// The top Via has no branch (client side: we always need one).
    #[error("top Via has no branch")]
    NoBranch,
    /// ACK is not sent through a client transaction; use [`TransactionLayer::send_stateless`].
    #[error("ACK has no client transaction")]
    AckNotTransaction,
    /// A client transaction with this branch and method already exists.
    #[error("duplicate transaction")]
    Duplicate,
    /// No such (live) transaction.
    #[error("unknown transaction")]
    UnknownTransaction,
    /// The transaction cannot do this in its state (e.g. a second final response).
    #[error("not allowed in this state")]
    InvalidState,
    /// [`Config::max_transactions`] reached.
    #[error("too many transactions")]
    Full,
}

/// The key under which a transaction is found (§17.1.3, §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client {
        branch: String,
        method: Method,
    },
    Server {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 requests (branch without the magic cookie).
    Legacy {
        uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        method: Method,
        via: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A, E, G.
    Retransmit = 0,
    /// B, F, H.
    Timeout = 1,
    /// D, I, J, K, L, M.
    Linger = 2,
    /// The 100 Trying delay of an INVITE server transaction.
    Trying = 3,
}

#[derive(Debug)]
struct Tx {
    kind: TxKind,
    state: TxState,
    request: Request,
    peer: SocketAddr,
    reliable: bool,
    /// Server: the last response sent.
    last_response: Option<Response>,
    /// INVITE client: the ACK for a non-2xx final response.
    ack: Option<Request>,
    interval: Duration,
    timers: [Option<Instant>; 4],
    key: Key,
}

/// All transactions of one endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    /// Requests answered 503 because the layer was full.
    refused: u64,
    config: Config,
    txs: HashMap<TxId, Tx>,
    keys: HashMap<Key, TxId>,
    timers: BTreeSet<(Instant, TxId, Timer)>,
    out: VecDeque<Output>,
    next_id: u64,
    branch_state: u64,
}

fn is_final(status: u16) -> bool {
    status >= 200
}

fn tag_of(na: &NameAddr) -> Option<String> {
    na.tag().map(|t| t.to_string())
}

/// The key of a server transaction for a request; ACK maps to INVITE.
fn server_key(req: &Request, method: Method) -> Result<Key, TxError> {
    let via = req.via_top()?;
    match via.branch() {
        Some(b) if b.starts_with(MAGIC_COOKIE) => Ok(Key::Server {
            branch: b.to_string(),
            sent_by: via.sent_by().to_ascii_lowercase(),
            method,
        }),
        _ => legacy_key(req, &via, method, tag_of(&req.to()?)),
    }
}

fn legacy_key(
    req: &Request,
    via: &Via,
    method: Method,
    to_tag: Option<String>,
) -> Result<Key, TxError> {
    Ok(Key::Legacy {
        uri: req.uri.to_string(),
        to_tag,
        from_tag: tag_of(&req.from()?),
        call_id: req.call_id()?.to_string(),
        cseq: req.cseq()?.seq,
        method,
        via: via.to_string(),
    })
}

/// The CANCEL for an INVITE we sent (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, CSeq
/// number and top Via (so the same branch), Route headers copied, CSeq method CANCEL.
pub fn cancel_for(invite: &Request) -> Result<Request, ParseError> {
    let via = invite.via_top()?;
    let cseq = invite.cseq()?;
    let mut req = Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers: Default::default(),
        body: Default::default(),
    };
    req.headers.push(HeaderName::Via, via.to_string());
    copy_headers(invite, &mut req, &[HeaderName::Route]);
    req.headers.push(HeaderName::MaxForwards, "70");
    copy_headers(
        invite,
        &mut req,
        &[HeaderName::From, HeaderName::To, HeaderName::CallId],
    );
    req.headers.push(
        HeaderName::CSeq,
        CSeq {
            seq: cseq.seq,
            method: Method::Cancel,
        }
        .to_string(),
    );
    Ok(req)
}

/// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): Request-URI, Call-ID,
/// From, top Via and Route of the INVITE, To of the response, CSeq number with method ACK.
pub fn ack_for_non2xx(invite: &Request, resp: &Response) -> Result<Request, ParseError> {
    let via = invite.via_top()?;
    let cseq = invite.cseq()?;
    let mut req = Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers: Default::default(),
        body: Default::default(),
    };
    req.headers.push(HeaderName::Via, via.to_string());
    copy_headers(invite, &mut req, &[HeaderName::Route]);
    req.headers.push(HeaderName::MaxForwards, "70");
    copy_headers(invite, &mut req, &[HeaderName::From]);
    match resp.headers.get(&HeaderName::To) {
        Some(to) => req.headers.push(HeaderName::To, to.clone()),
        None => copy_headers(invite, &mut req, &[HeaderName::To]),
    }
    copy_headers(invite, &mut req, &[HeaderName::CallId]);
    req.headers.push(
        HeaderName::CSeq,
        CSeq {
            seq: cseq.seq,
            method: Method::Ack,
        }
        .to_string(),
    );
    Ok(req)
}

fn copy_headers(from: &Request, to: &mut Request, names: &[HeaderName]) {
    for n in names {
        for v in from.headers.get_all(n) {
            to.headers.push(n.clone(), v.clone());
        }
    }
}

impl TransactionLayer {
    /// An empty layer. `branch_seed` makes the branches of [`Self::new_branch`] unique across
    /// restarts and hosts (give it some randomness).
    pub fn new(config: Config, branch_seed: u64) -> Self {
        TransactionLayer {
            config,
            txs: HashMap::new(),
            keys: HashMap::new(),
            timers: BTreeSet::new(),
            out: VecDeque::new(),
            next_id: 1,
            branch_state: branch_seed,
            refused: 0,
        }
    }

    /// Requests answered `503` so far because the layer was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Whether `req` would exceed the limit. Requests within a dialog (a To tag) and CANCELs
    /// may use a quarter more: they end calls that exist (a BYE refused under load would leave
    /// a call up), while new work is refused first.
    fn full(&self, req: &Request) -> bool {
        let max = self.config.max_transactions;
        let ends_something =
            req.method == Method::Cancel || req.to().ok().is_some_and(|t| t.tag().is_some());
        let limit = if ends_something { max + max / 4 } else { max };
        self.txs.len() >= limit
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A fresh branch parameter: the magic cookie and 16 hex digits.
    pub fn new_branch(&mut self) -> String {
        // splitmix64: distinct for every call, not guessable from the previous one without the seed.
        self.branch_state = self.branch_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.branch_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        format!("{MAGIC_COOKIE}{z:016x}")
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The state of a live transaction.
    pub fn state(&self, id: TxId) -> Option<TxState> {
        self.txs.get(&id).map(|t| t.state)
    }

    /// The kind of a live transaction.
    pub fn kind(&self, id: TxId) -> Option<TxKind> {
        self.txs.get(&id).map(|t| t.kind)
    }

    /// The request that created a live transaction.
    pub fn request(&self, id: TxId) -> Option<&Request> {
        self.txs.get(&id).map(|t| &t.request)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().next().map(|t| t.0)
    }

    /// Queues a message outside any transaction (the ACK for a 2xx, 2xx retransmissions by a
    /// UAS core, stateless proxying).
    pub fn send_stateless(&mut self, msg: Message, dest: SocketAddr, reliable: bool) {
        self.out.push_back(Output::Transmit(Transmit {
            tx: None,
            dest,
            reliable,
            msg,
        }));
    }

    // ---- timers ------------------------------------------------------------------------------

    fn set_timer(&mut self, id: TxId, timer: Timer, at: Instant) {
        if let Some(tx) = self.txs.get_mut(&id) {
            if let Some(old) = tx.timers[timer as usize].replace(at) {
                self.timers.remove(&(old, id, timer));
            }
            self.timers.insert((at, id, timer));
        }
    }

    fn clear_timer(&mut self, id: TxId, timer: Timer) {
        if let Some(tx) = self.txs.get_mut(&id) {
            if let Some(old) = tx.timers[timer as usize].take() {
                self.timers.remove(&(old, id, timer));
            }
        }
    }

    /// Removes a transaction and its key and timers; queues `Terminated`.
    fn terminate(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            for (i, t) in tx.timers.iter().enumerate() {
                if let Some(at) = t {
                    let timer = match i {
                        0 => Timer::Retransmit,
                        1 => Timer::Timeout,
                        2 => Timer::Linger,
                        _ => Timer::Trying,
                    };
                    self.timers.remove(&(*at, id, timer));
                }
            }
            if self.keys.get(&tx.key) == Some(&id) {
                self.keys.remove(&tx.key);
            }
            self.out.push_back(Output::Terminated { id });
        }
    }

    /// Enters a lingering state for `d` (terminates at once when `d` is zero). A lingering
    /// transaction only matches retransmissions (by its key) and resends its last response, so
    /// the request's headers and body are dropped, and so is a 2xx (RFC 6026: the TU resends
    /// those): at thousands of requests per second most transactions are lingering ones.
    fn linger(&mut self, id: TxId, now: Instant, d: Duration) {
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.request.headers = Default::default();
            tx.request.body = Default::default();
            if tx.state == TxState::Accepted {
                tx.last_response = None;
            }
        }
        self.clear_timer(id, Timer::Retransmit);
        self.clear_timer(id, Timer::Timeout);
        if d.is_zero() {
            self.terminate(id);
        } else {
            self.set_timer(id, Timer::Linger, now + d);
        }
    }

    fn transmit(&mut self, id: TxId, msg: Message) {
        if let Some(tx) = self.txs.get(&id) {
            self.out.push_back(Output::Transmit(Transmit {
                tx: Some(id),
                dest: tx.peer,
                reliable: tx.reliable,
                msg,
            }));
        }
    }

    fn alloc(&mut self, tx: Tx) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        self.keys.insert(tx.key.clone(), id);
        self.txs.insert(id, tx);
        id
    }

    // ---- client side -------------------------------------------------------------------------

    /// Starts a client transaction for `req` (which carries its top Via with a branch) towards
    /// `dest`, and queues its first transmission.
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Request,
        dest: SocketAddr,
        reliable: bool,
    ) -> Result<TxId, TxError> {
        if req.method == Method::Ack {
            return Err(TxError::AckNotTransaction);
        }
        if self.full(&req) {
            return Err(TxError::Full);
        }
        let via = req.via_top()?;
        let branch = via.branch().ok_or(TxError::NoBranch)?.to_string();
        req.cseq()?;
        let key = Key::Client {
            branch,
            method: req.method.clone(),
        };
        if self.keys.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let invite = req.method == Method::Invite;
        let msg = Message::Request(req.clone());
        let id = self.alloc(Tx {
            kind: if invite {
                TxKind::InviteClient
            } else {
                TxKind::NonInviteClient
            },
            state: if invite {
                TxState::Calling
            } else {
                TxState::Trying
            },
            request: req,
            peer: dest,
            reliable,
            last_response: None,
            ack: None,
            interval: self.config.t1,
            timers: [None; 4],
            key,
        });
        self.transmit(id, msg);
        if !reliable {
            self.set_timer(id, Timer::Retransmit, now + self.config.t1);
        }
        self.set_timer(id, Timer::Timeout, now + self.config.long());
        Ok(id)
    }

    /// The CANCEL for a client INVITE transaction (§9.1). Send it with [`Self::send_request`] to
    /// the same destination, once a provisional response has arrived.
    pub fn cancel_request(&self, id: TxId) -> Result<Request, TxError> {
        let tx = self.txs.get(&id).ok_or(TxError::UnknownTransaction)?;
        if tx.kind != TxKind::InviteClient {
            return Err(TxError::InvalidState);
        }
        Ok(cancel_for(&tx.request)?)
    }

    /// The destination of a live client transaction (or the peer of a server one).
    pub fn peer(&self, id: TxId) -> Option<(SocketAddr, bool)> {
        self.txs.get(&id).map(|t| (t.peer, t.reliable))
    }

    /// A response arrived.
    pub fn handle_response(
        &mut self,
        now: Instant,
        resp: Response,
        from: SocketAddr,
        _reliable: bool,
    ) -> Result<(), TxError> {
        let via = resp.via_top()?;
        let cseq = resp.cseq()?;
        let id = via
            .branch()
            .map(|b| Key::Client {
                branch: b.to_string(),
                method: cseq.method.clone(),
            })
            .and_then(|k| self.keys.get(&k).copied());
        let Some(id) = id else {
            self.out.push_back(Output::StrayResponse { resp, from });
            return Ok(());
        };
        let tx = self.txs.get_mut(&id).expect("key without transaction");
        let status = resp.status;
        match (tx.kind, tx.state) {
            (TxKind::InviteClient, TxState::Calling | TxState::Proceeding) => {
                if status < 200 {
                    tx.state = TxState::Proceeding;
                    self.clear_timer(id, Timer::Retransmit);
                    self.clear_timer(id, Timer::Timeout);
                    self.out.push_back(Output::Response { id, resp });
                } else if status < 300 {
                    tx.state = TxState::Accepted;
                    self.out.push_back(Output::Response { id, resp });
                    let d = self.config.long();
                    self.linger(id, now, d);
                } else {
                    let ack = ack_for_non2xx(&tx.request, &resp)?;
                    tx.state = TxState::Completed;
                    tx.ack = Some(ack.clone());
                    let reliable = tx.reliable;
                    self.transmit(id, Message::Request(ack));
                    self.out.push_back(Output::Response { id, resp });
                    let d = if reliable {
                        Duration::ZERO
                    } else {
                        self.config.timer_d
                    };
                    self.linger(id, now, d);
                }
            }
            (TxKind::InviteClient, TxState::Accepted) if (200..300).contains(&status) => {
                self.out.push_back(Output::Response { id, resp });
            }
            (TxKind::InviteClient, TxState::Completed) if status >= 300 => {
                if let Some(ack) = tx.ack.clone() {
                    self.transmit(id, Message::Request(ack));
                }
            }
            (TxKind::NonInviteClient, TxState::Trying | TxState::Proceeding) => {
                if status < 200 {
                    tx.state = TxState::Proceeding;
                    self.out.push_back(Output::Response { id, resp });
                } else {
                    tx.state = TxState::Completed;
                    let reliable = tx.reliable;
                    self.out.push_back(Output::Response { id, resp });
                    let d = if reliable {
                        Duration::ZERO
                    } else {
                        self.config.t4
                    };
                    self.linger(id, now, d);
                }
            }
            _ => {} // Completed non-INVITE: absorb retransmissions.
        }
        Ok(())
    }

    // ---- server side -------------------------------------------------------------------------

    /// A request arrived from `from`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    ) -> Result<(), TxError> {
        req.cseq()?;
        req.call_id()?;
        req.from()?;
        let to = req.to()?;
        let is_ack = req.method == Method::Ack;
        let method = if is_ack {
            Method::Invite
        } else {
            req.method.clone()
        };
        let key = server_key(&req, method)?;
        let mut found = self.keys.get(&key).copied();
        if is_ack {
            if let Key::Legacy { .. } = key {
                // §17.2.3: the ACK's To tag is the tag of our response, not the INVITE's.
                found = self.find_legacy_ack(&req, &to)?;
            }
        }
        match found {
            Some(id) => self.server_retransmission(now, id, req),
            None if is_ack => self.out.push_back(Output::Ack {
                id: None,
                req,
                from,
                reliable,
            }),
            None => {
                if self.full(&req) {
                    self.refused += 1;
                    let resp = req.response(503, "Service Unavailable", None);
                    self.send_stateless(Message::Response(resp), from, reliable);
                    return Ok(());
                }
                let invite = req.method == Method::Invite;
                let id = self.alloc(Tx {
                    kind: if invite {
                        TxKind::InviteServer
                    } else {
                        TxKind::NonInviteServer
                    },
                    state: if invite {
                        TxState::Proceeding
                    } else {
                        TxState::Trying
                    },
                    request: req.clone(),
                    peer: from,
                    reliable,
                    last_response: None,
                    ack: None,
                    interval: self.config.t1,
                    timers: [None; 4],
                    key,
                });
                self.out.push_back(Output::Request {
                    id,
                    req,
                    from,
                    reliable,
                });
                if invite {
                    match self.config.trying_delay {
                        Some(d) if d.is_zero() => self.send_trying(id),
                        Some(d) => self.set_timer(id, Timer::Trying, now + d),
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn find_legacy_ack(&self, ack: &Request, to: &NameAddr) -> Result<Option<TxId>, TxError> {
        let via = ack.via_top()?;
        let ack_tag = tag_of(to);
        // Initial INVITE (no To tag): the ACK carries the tag of our response.
        let k = legacy_key(ack, &via, Method::Invite, None)?;
        if let Some(&id) = self.keys.get(&k) {
            let resp_tag = self.txs[&id]
                .last_response
                .as_ref()
                .and_then(|r| r.to().ok())
                .and_then(|t| tag_of(&t));
            if resp_tag == ack_tag {
                return Ok(Some(id));
            }
        }
        // Re-INVITE: the INVITE already had the tag.
        let k = legacy_key(ack, &via, Method::Invite, ack_tag)?;
        Ok(self.keys.get(&k).copied())
    }

    fn send_trying(&mut self, id: TxId) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if tx.last_response.is_none() && tx.state == TxState::Proceeding {
            let r = tx.request.response(100, "Trying", None);
            tx.last_response = Some(r.clone());
            self.transmit(id, Message::Response(r));
        }
    }

    fn server_retransmission(&mut self, now: Instant, id: TxId, req: Request) {
        let tx = self.txs.get_mut(&id).expect("key without transaction");
        let is_ack = req.method == Method::Ack;
        match (tx.kind, tx.state, is_ack) {
            (TxKind::InviteServer, TxState::Completed, true) => {
                tx.state = TxState::Confirmed;
                let d = if tx.reliable {
                    Duration::ZERO
                } else {
                    self.config.t4
                };
                self.linger(id, now, d);
            }
            (TxKind::InviteServer, TxState::Accepted, true) => {
                let (from, reliable) = (tx.peer, tx.reliable);
                self.out.push_back(Output::Ack {
                    id: Some(id),
                    req,
                    from,
                    reliable,
                });
            }
            (_, _, true) => {} // ACK in Proceeding / Confirmed: absorbed.
            (TxKind::InviteServer, TxState::Proceeding | TxState::Completed, false)
            | (TxKind::NonInviteServer, TxState::Proceeding | TxState::Completed, false) => {
                if let Some(r) = tx.last_response.clone() {
                    self.transmit(id, Message::Response(r));
                }
            }
            _ => {} // Trying, Accepted, Confirmed: absorbed.
        }
    }

    /// The INVITE server transaction a received CANCEL applies to (§9.2), if still live.
    pub fn find_invite_for_cancel(&self, cancel: &Request) -> Option<TxId> {
        let key = server_key(cancel, Method::Invite).ok()?;
        let id = *self.keys.get(&key)?;
        (self.txs.get(&id)?.kind == TxKind::InviteServer).then_some(id)
    }

    /// The TU answers server transaction `id`.
    pub fn respond(&mut self, now: Instant, id: TxId, resp: Response) -> Result<(), TxError> {
        let tx = self.txs.get_mut(&id).ok_or(TxError::UnknownTransaction)?;
        let status = resp.status;
        match (tx.kind, tx.state) {
            (TxKind::InviteServer, TxState::Proceeding) => {
                tx.last_response = Some(resp.clone());
                let reliable = tx.reliable;
                self.clear_timer(id, Timer::Trying);
                self.transmit(id, Message::Response(resp));
                if (200..300).contains(&status) {
                    self.txs.get_mut(&id).expect("live").state = TxState::Accepted;
                    let d = self.config.long();
                    self.linger(id, now, d);
                } else if is_final(status) {
                    self.txs.get_mut(&id).expect("live").state = TxState::Completed;
                    if !reliable {
                        self.set_timer(id, Timer::Retransmit, now + self.config.t1);
                    }
                    self.set_timer(id, Timer::Timeout, now + self.config.long());
                }
            }
            (TxKind::InviteServer, TxState::Accepted) if (200..300).contains(&status) => {
                // RFC 6026: the TU retransmits its 2xx through the transaction.
                self.transmit(id, Message::Response(resp));
            }
            (TxKind::NonInviteServer, TxState::Trying | TxState::Proceeding) => {
                tx.last_response = Some(resp.clone());
                let reliable = tx.reliable;
                self.transmit(id, Message::Response(resp));
                if is_final(status) {
                    self.txs.get_mut(&id).expect("live").state = TxState::Completed;
                    let d = if reliable {
                        Duration::ZERO
                    } else {
                        self.config.long()
                    };
                    self.linger(id, now, d);
                } else {
                    self.txs.get_mut(&id).expect("live").state = TxState::Proceeding;
                }
            }
            _ => return Err(TxError::InvalidState),
        }
        Ok(())
    }

    /// Answers a server transaction with a final response and ends it at once, keeping no state
    /// (RFC 3261 §8.2.7 stateless UAS behaviour). For answers whose loss costs nothing but a
    /// retransmitted request answered the same way again, such as a digest challenge (401/407)
    /// or a 503: they need no Completed state absorbing retransmissions for 64·T1, which at
    /// thousands of REGISTERs per second would hold hundreds of thousands of transactions. An
    /// ACK to a stateless non-2xx answer to an INVITE then matches no transaction and comes out
    /// as [`Output::Ack`] with `id: None`.
    pub fn respond_statelessly(
        &mut self,
        now: Instant,
        id: TxId,
        resp: Response,
    ) -> Result<(), TxError> {
        let _ = now;
        let tx = self.txs.get(&id).ok_or(TxError::UnknownTransaction)?;
        if !matches!(tx.kind, TxKind::InviteServer | TxKind::NonInviteServer)
            || !matches!(tx.state, TxState::Trying | TxState::Proceeding)
            || !(300..700).contains(&resp.status)
        {
            return Err(TxError::InvalidState);
        }
        self.transmit(id, Message::Response(resp));
        self.terminate(id);
        Ok(())
    }

    /// The driver could not send for transaction `id` (§17.1.4, §17.2.4): the TU is told and the
    /// transaction ends.
    pub fn transport_error(&mut self, id: TxId) {
        if self.txs.contains_key(&id) {
            self.out.push_back(Output::TransportError { id });
            self.terminate(id);
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id, timer)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id, timer));
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            tx.timers[timer as usize] = None;
            match timer {
                Timer::Trying => self.send_trying(id),
                Timer::Linger => self.terminate(id),
                Timer::Timeout => {
                    self.out.push_back(Output::Timeout { id });
                    self.terminate(id);
                }
                Timer::Retransmit => self.retransmit(at, id),
            }
        }
    }

    fn retransmit(&mut self, at: Instant, id: TxId) {
        let t2 = self.config.t2;
        let tx = self.txs.get_mut(&id).expect("live");
        let (msg, next) = match (tx.kind, tx.state) {
            // Timer A: doubles without cap.
            (TxKind::InviteClient, TxState::Calling) => {
                (Message::Request(tx.request.clone()), tx.interval * 2)
            }
            // Timer E: doubles up to T2; in Proceeding, every T2.
            (TxKind::NonInviteClient, TxState::Trying) => (
                Message::Request(tx.request.clone()),
                (tx.interval * 2).min(t2),
            ),
            (TxKind::NonInviteClient, TxState::Proceeding) => {
                (Message::Request(tx.request.clone()), t2)
            }
            // Timer G: doubles up to T2.
            (TxKind::InviteServer, TxState::Completed) => match &tx.last_response {
                Some(r) => (Message::Response(r.clone()), (tx.interval * 2).min(t2)),
                None => return,
            },
            _ => return,
        };
        tx.interval = next;
        self.transmit(id, msg);
        self.set_timer(id, Timer::Retransmit, at + next);
    }
}
