//! Calls through the B2BUA: the caller's leg (A, we are its UAS) and the callee's leg (B, we
//! are its UAC, forked to every registered contact), with media anchored in the RTP relay.
//!
//! Each leg is a dialog of its own (own Call-ID, tags, CSeq), so the two sides never see each
//! other's addresses (topology hiding) and every call passes here to be billed and recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strowger_media::relay::Leg;
use strowger_sip::dialog::{Dialog, DialogId, ForkEvent, UacInvite};
use strowger_sip::transaction::TxId;
use strowger_sip::{HeaderName, Headers, Message, Method, NameAddr, Request, Response, Uri};

use super::core::{new_tag, Core, Internal, ALLOW, SUPPORTED};
use super::sdp::{self, Origin};
use super::transport::Transport;
use crate::relay::RelayHandle;

/// A side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn leg(self) -> Leg {
        match self {
            Side::A => Leg::A,
            Side::B => Leg::B,
        }
    }
}

/// What a transaction is to a call.
#[derive(Debug, Clone)]
enum Role {
    /// The caller's INVITE (server).
    AInvite,
    /// A forked INVITE to one contact (client).
    Branch(usize),
    /// A request forwarded from `from` to the other side (client); `server` is the request it
    /// answers.
    Forward {
        server: TxId,
        from: Side,
        method: Method,
    },
    /// Our own request whose answer only matters for logging (BYE, CANCEL, PRACK, ACK-less).
    Own,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    Answered,
    Ended,
}

struct Branch {
    tx: TxId,
    dest: SocketAddr,
    reliable: bool,
    transport: Transport,
    uac: UacInvite,
    provisional: bool,
    cancel_wanted: bool,
    done: bool,
}

struct BLeg {
    dialog: Dialog,
    dest: SocketAddr,
    reliable: bool,
    transport: Transport,
}

/// A 2xx we keep sending until its ACK arrives (RFC 6026: the TU's job over UDP).
struct Retrans {
    cseq: u32,
    /// A reliable provisional response (RFC 3262): resent until its PRACK, by RSeq.
    rseq: Option<u32>,
    msg: Message,
    dest: SocketAddr,
    next: Instant,
    interval: Duration,
    until: Instant,
}

struct Call {
    log: String,
    caller: String,
    callee: String,
    a_invite: Request,
    a_tx: Option<TxId>,
    a_from: SocketAddr,
    a_reliable: bool,
    a_tag: String,
    a_dialog: Option<Dialog>,
    a_origin: Origin,
    b_origin: Origin,
    b_tag: String,
    b_call_id: String,
    branches: Vec<Branch>,
    b: Option<BLeg>,
    relay: Option<RelayHandle>,
    state: State,
    no_answer_at: Option<Instant>,
    retrans: Vec<Retrans>,
    /// Session timer (RFC 4028): A refreshes; we hang up if it stops.
    session_interval: Option<Duration>,
    session_deadline: Option<Instant>,
    reinvite_pending: bool,
    failures: Vec<u16>,
    started: Instant,
    answered: Option<Instant>,
    live_tx: usize,
    /// Delayed offer: the caller's INVITE had no SDP.
    late_offer: bool,
    /// The caller requires reliable provisional responses (RFC 3262): the last RSeq used.
    a_rseq: Option<u32>,
    /// Delayed offer: the callee's 2xx (branch, dialog) waits for the caller's ACK, whose SDP
    /// answer our ACK to the callee carries.
    b_ack_pending: Option<(usize, DialogId)>,
    /// Every dialog id mapped to this call (for cleanup).
    dialogs: Vec<DialogId>,
}

/// Every call.
#[derive(Default)]
pub(super) struct Calls {
    next: u64,
    calls: HashMap<u64, Call>,
    by_tx: HashMap<TxId, (u64, Role)>,
    by_dialog: HashMap<DialogId, (u64, Side)>,
    /// When each call wants its timers looked at (lazy: a stale entry only causes a check).
    timers: std::collections::BTreeSet<(Instant, u64)>,
}

impl Calls {
    pub fn new() -> Self {
        Calls::default()
    }

    /// The earliest call timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Asks for call `cid`'s timers to be checked at `at`.
    fn wake(&mut self, cid: u64, at: Instant) {
        self.timers.insert((at, cid));
    }
}

impl Call {
    /// This call's earliest timer.
    fn next_timer(&self) -> Option<Instant> {
        [self.no_answer_at, self.session_deadline]
            .into_iter()
            .flatten()
            .chain(self.retrans.iter().map(|r| r.next.min(r.until)))
            .min()
    }
}

/// Early dialogs one forked INVITE may create (distinct To tags in provisional responses).
const MAX_EARLY_DIALOGS: usize = 16;
/// Reliable provisional responses resent to a caller at once, awaiting PRACK.
const MAX_RELIABLE_PENDING: usize = 4;

/// Headers copied from one leg's request to the other's.
const PASS_HEADERS: &[&str] = &[
    "Content-Type",
    "Subject",
    "Reason",
    "Event",
    "Subscription-State",
    "Info-Package",
    "Content-Disposition",
    "Priority",
    "Accept",
];

fn passes(name: &HeaderName) -> bool {
    PASS_HEADERS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name.as_str()))
}

fn is_sdp(req_ct: Option<&str>, body: &Bytes) -> bool {
    !body.is_empty() && req_ct.is_some_and(|c| c.eq_ignore_ascii_case("application/sdp"))
}

/// SDP from `sender` on its way to the other side: the relay learns where `sender` wants media,
/// and the description is pointed at the relay's port for the receiver (our own o= per leg).
/// With direct media (no relay) it passes unchanged. `None`: not usable SDP.
fn relay_sdp(
    c: &mut Call,
    body: &Bytes,
    sender: Side,
    receiver_sip_ip: std::net::IpAddr,
    offer: bool,
) -> Option<Bytes> {
    let Some(relay) = &c.relay else {
        return Some(body.clone());
    };
    let t = sdp::media_target(body)?;
    relay.set_remote_now(sender.leg(), t.rtp, t.rtcp);
    if offer {
        relay.set_hold_now(t.hold);
    }
    let receiver = sender.other();
    let addr = relay.sdp_addr(receiver.leg(), receiver_sip_ip);
    let origin = match receiver {
        Side::A => &mut c.a_origin,
        Side::B => &mut c.b_origin,
    };
    sdp::rewrite(body, addr, origin)
}

impl Core {
    fn call_mut(&mut self, id: u64) -> Option<&mut Call> {
        self.calls.calls.get_mut(&id)
    }

    fn track(&mut self, call: u64, tx: TxId, role: Role) {
        self.calls.by_tx.insert(tx, (call, role));
        if let Some(c) = self.calls.calls.get_mut(&call) {
            c.live_tx += 1;
        }
    }

    /// A request from a phone that belongs to calls: a new INVITE, or anything in a dialog.
    pub(super) fn on_call_request(
        &mut self,
        now: Instant,
        id: TxId,
        req: Request,
        from: SocketAddr,
        reliable: bool,
    ) {
        match DialogId::for_incoming_request(&req) {
            Ok(Some(did)) => self.in_dialog(now, id, req, did),
            Ok(None) if req.method == Method::Invite => self.new_call(now, id, req, from, reliable),
            Ok(None) => self.reply(now, id, &req, 481, "Call/Transaction Does Not Exist", None),
            Err(_) => self.reply(now, id, &req, 400, "Bad Request", None),
        }
    }

    fn new_call(&mut self, now: Instant, id: TxId, req: Request, from: SocketAddr, reliable: bool) {
        if !self.is_local_host(&req.uri.host) {
            return self.reply(now, id, &req, 403, "Relaying Forbidden", None);
        }
        let callee = req.uri.user.as_deref().unwrap_or("").to_string();
        if callee.is_empty() {
            return self.reply(now, id, &req, 404, "Not Found", None);
        }
        // The callee first: its lookup may hold the request, and verifying the caller's
        // credentials must happen once only (nonce counts).
        let Some(target) = self.user_for_routing(now, &callee, id, &req, from, reliable) else {
            return;
        };
        let trusted = self.cfg.trusted_ips.contains(&from.ip());
        let caller = if trusted {
            req.from()
                .ok()
                .and_then(|f| f.uri.user.map(|u| u.to_string()))
                .unwrap_or_default()
        } else {
            let Some(user) = self.authenticate(now, id, &req, from, reliable, true) else {
                return;
            };
            let from_user = req
                .from()
                .ok()
                .and_then(|f| f.uri.user.map(|u| u.to_string()))
                .unwrap_or_default();
            if !from_user.eq_ignore_ascii_case(&user) {
                tracing::info!(src = %from, "SIP: {user} sent an INVITE as {from_user}: 403");
                return self.reply(now, id, &req, 403, "From Does Not Match Credentials", None);
            }
            user
        };
        let (callee, bindings) = match target.filter(|u| !u.disabled) {
            Some(t) => {
                let b = self.lookup(now, &t.username);
                (t.username, b)
            }
            None => match self.default_route_binding(&callee) {
                // Not one of ours: the default route (a gateway or trunk) takes it.
                Some(b) => (callee, vec![b]),
                None => {
                    tracing::info!(src = %from, "SIP: call from {caller} to unknown user {callee}: 404");
                    return self.reply(now, id, &req, 404, "Not Found", None);
                }
            },
        };
        if bindings.is_empty() {
            tracing::info!(src = %from, "SIP: call from {caller} to {callee}: not registered, 480");
            return self.reply(now, id, &req, 480, "Temporarily Unavailable", None);
        }
        // An INVITE without SDP (delayed offer, as Cisco trunks send by default): the callee
        // makes the offer in its 200 and the caller answers in its ACK.
        let late_offer = req.body.is_empty();
        let offer = if late_offer {
            sdp::Target {
                rtp: None,
                rtcp: None,
                hold: false,
            }
        } else {
            match is_sdp(req.content_type(), &req.body)
                .then(|| sdp::media_target(&req.body))
                .flatten()
            {
                Some(o) => o,
                None => {
                    let h = vec![(
                        HeaderName::Other("Warning".into()),
                        "399 strowger \"SDP with an audio stream expected\"".to_string(),
                    )];
                    return self.reply(now, id, &req, 488, "Not Acceptable Here", Some(h));
                }
            }
        };
        // RFC 4028: a session interval below our minimum gets 422.
        let mut session_interval = None;
        if let Some(se) = req.headers.get(&HeaderName::SessionExpires) {
            let secs: u32 = se
                .split(';')
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if secs < self.cfg.min_se_secs {
                let h = vec![(HeaderName::MinSe, self.cfg.min_se_secs.to_string())];
                return self.reply(now, id, &req, 422, "Session Interval Too Small", Some(h));
            }
            session_interval = Some(Duration::from_secs(u64::from(secs)));
        } else if self.cfg.session_expires_secs > 0
            && lists_tag(&req.headers, &HeaderName::Supported, "timer")
        {
            session_interval = Some(Duration::from_secs(u64::from(
                self.cfg.session_expires_secs,
            )));
        }
        if self.stats.calls_active.get() >= self.cfg.max_calls as i64 {
            tracing::warn!("SIP: sip.max_calls ({}) reached: 503", self.cfg.max_calls);
            return self.reply(now, id, &req, 503, "Service Unavailable", None);
        }
        self.calls.next += 1;
        let cid = self.calls.next;
        let log = format!("call-{cid}");
        // Direct media only when allowed and nobody is behind NAT: the caller's media address is
        // the address its SIP came from, and each callee contact is the address it registered from.
        let direct = self.cfg.direct_media
            && !late_offer
            && offer.rtp.is_some_and(|a| a.ip() == from.ip())
            && bindings
                .iter()
                .all(|b| super::core::ip_of(&b.contact.host) == Some(b.source.ip()));
        let relay = if direct {
            None
        } else {
            match self.relay.allocate(&log) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("SIP: {log}: no media ports: {e}: 503");
                    return self.reply(now, id, &req, 503, "Service Unavailable", None);
                }
            }
        };
        if let Some(relay) = &relay {
            relay.set_remote_now(Leg::A, offer.rtp, offer.rtcp);
            relay.set_hold_now(offer.hold);
            // No RTP for the relay's timeout ends the call (an orphan: a phone that vanished).
            let mut w = relay.inactive_watch();
            let tx = self.internal.clone();
            tokio::spawn(async move {
                if w.wait_for(|v| *v).await.is_ok() {
                    let _ = tx.send(Internal::RelayInactive { call: cid }).await;
                }
            });
        }
        self.stats.calls_started.inc();
        self.stats.calls_active.inc();
        // Ringing starts: 100 Trying now, so the caller stops retransmitting.
        let trying = req.response(100, "Trying", None);
        let _ = self.txl.respond(now, id, trying);
        let a_tag = new_tag();
        let a_rseq = lists_tag(&req.headers, &HeaderName::Require, "100rel")
            .then(|| rand::random::<u32>() >> 2);
        let a_did = DialogId {
            call_id: req.call_id().map(|c| c.to_string()).unwrap_or_default(),
            local_tag: a_tag.clone(),
            remote_tag: req
                .from()
                .ok()
                .and_then(|f| f.tag().map(|t| t.to_string()))
                .unwrap_or_default(),
        };
        let display = req
            .from()
            .ok()
            .and_then(|f| f.display.map(|d| d.to_string()));
        let call = Call {
            log: log.clone(),
            caller: caller.clone(),
            callee: callee.clone(),
            a_invite: req,
            a_tx: Some(id),
            a_from: from,
            a_reliable: reliable,
            a_tag,
            a_dialog: None,
            a_origin: Origin::new(),
            b_origin: Origin::new(),
            b_tag: new_tag(),
            b_call_id: format!("{:032x}", rand::random::<u128>()),
            branches: Vec::new(),
            b: None,
            relay,
            state: State::Ringing,
            no_answer_at: Some(now + Duration::from_secs(self.cfg.no_answer_timeout_secs)),
            retrans: Vec::new(),
            session_interval,
            session_deadline: None,
            reinvite_pending: false,
            failures: Vec::new(),
            started: now,
            answered: None,
            live_tx: 0,
            late_offer,
            a_rseq,
            b_ack_pending: None,
            dialogs: Vec::new(),
        };
        let first = call.next_timer();
        self.calls.calls.insert(cid, call);
        if let Some(t) = first {
            self.calls.wake(cid, t);
        }
        self.bind_dialog(cid, a_did, Side::A);
        self.track(cid, id, Role::AInvite);
        tracing::info!(
            "SIP: {log}: {caller} -> {callee} ({} contact(s){})",
            bindings.len(),
            if direct { ", direct media" } else { "" }
        );
        let _ = display;
        for b in bindings {
            self.fork(now, cid, &b);
        }
        let all_failed = self
            .calls
            .calls
            .get(&cid)
            .is_some_and(|c| c.branches.is_empty());
        if all_failed {
            self.fail_call(now, cid, 480, "Temporarily Unavailable");
        }
    }

    /// Sends the INVITE to one contact of the callee.
    fn fork(&mut self, now: Instant, cid: u64, b: &super::registrar::Binding) {
        let transport = b.transport;
        let dest = b.source;
        let via = self.our_via(dest, transport);
        let contact = self.our_contact(dest, transport);
        let sip_ip = self.local_ip_for(dest.ip());
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let offer = c.a_invite.body.clone();
        let body = if c.late_offer {
            Bytes::new()
        } else {
            match relay_sdp(c, &offer, Side::A, sip_ip, true) {
                Some(b) => b,
                None => return,
            }
        };
        let late_offer = c.late_offer;
        let from_display = c
            .a_invite
            .from()
            .ok()
            .and_then(|f| f.display.map(|d| d.to_string()));
        let from = NameAddr {
            display: from_display.map(Into::into),
            uri: Uri {
                scheme: strowger_sip::Scheme::Sip,
                user: Some(c.caller.clone().into()),
                password: None,
                host: super::core::host_of(sip_ip),
                port: None,
                params: Default::default(),
                headers: Vec::new(),
            },
            params: Default::default(),
        };
        let mut from_tagged = from.clone();
        from_tagged.params.set("tag", Some(c.b_tag.clone().into()));
        let to = NameAddr {
            display: None,
            uri: Uri {
                user: Some(c.callee.clone().into()),
                port: None,
                params: Default::default(),
                headers: Vec::new(),
                ..from.uri.clone()
            },
            params: Default::default(),
        };
        let mf = c
            .a_invite
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1)
            .min(70);
        let mut req = Request {
            method: Method::Invite,
            uri: b.contact.clone(),
            headers: Default::default(),
            body,
        };
        let h = &mut req.headers;
        h.push(HeaderName::Via, via);
        // RFC 3327: through the proxies the phone registered by.
        for p in &b.path {
            h.push(HeaderName::Route, p.clone());
        }
        h.push(HeaderName::MaxForwards, mf.to_string());
        h.push(HeaderName::From, from_tagged.to_string());
        h.push(HeaderName::To, to.to_string());
        h.push(HeaderName::CallId, c.b_call_id.clone());
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(HeaderName::Contact, contact.to_string());
        h.push(HeaderName::Allow, ALLOW);
        h.push(HeaderName::Supported, "100rel, timer");
        h.push(HeaderName::UserAgent, "Strowger");
        for hdr in c.a_invite.headers.0.iter() {
            if matches!(hdr.name, HeaderName::Subject)
                || hdr.name.as_str().eq_ignore_ascii_case("Priority")
            {
                h.push(hdr.name.clone(), hdr.value.clone());
            }
        }
        if !late_offer {
            h.push(HeaderName::ContentType, "application/sdp");
        }
        let uac = UacInvite::new(req.clone());
        let reliable = transport.reliable();
        match self.txl.send_request(now, req, dest, reliable) {
            Ok(tx) => {
                let Some(c) = self.calls.calls.get_mut(&cid) else {
                    return;
                };
                let idx = c.branches.len();
                c.branches.push(Branch {
                    tx,
                    dest,
                    reliable,
                    transport,
                    uac,
                    provisional: false,
                    cancel_wanted: false,
                    done: false,
                });
                self.track(cid, tx, Role::Branch(idx));
            }
            Err(e) => tracing::warn!("SIP: call-{cid}: cannot send INVITE to {dest}: {e}"),
        }
    }

    /// A response to one of our client transactions.
    pub(super) fn on_response(&mut self, now: Instant, id: TxId, resp: Response) {
        let Some((cid, role)) = self.calls.by_tx.get(&id).cloned() else {
            return;
        };
        match role {
            Role::Branch(i) => self.branch_response(now, cid, i, resp),
            Role::Forward {
                server,
                from,
                method,
            } => self.forward_response(now, cid, server, from, method, resp),
            Role::AInvite | Role::Own => {}
        }
    }

    fn branch_response(&mut self, now: Instant, cid: u64, i: usize, resp: Response) {
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let Some(br) = c.branches.get_mut(i) else {
            return;
        };
        // A callee answering with ever new To tags would grow the early dialogs without
        // bound: past MAX_EARLY_DIALOGS, provisional responses of new ones are ignored.
        if resp.status < 200
            && br.uac.dialogs.len() >= MAX_EARLY_DIALOGS
            && DialogId::for_incoming_response(&resp)
                .ok()
                .flatten()
                .is_some_and(|d| br.uac.dialog(&d).is_none())
        {
            return;
        }
        let ev = match br.uac.on_response(&resp) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!("SIP: {}: bad response on a branch: {e}", c.log);
                return;
            }
        };
        let status = resp.status;
        if (101..200).contains(&status) {
            let first = !br.provisional;
            br.provisional = true;
            if br.cancel_wanted && first {
                self.cancel_branch(now, cid, i);
                return;
            }
            // Reliable provisional (RFC 3262): PRACK it in its early dialog.
            if lists_tag(&resp.headers, &HeaderName::Require, "100rel") {
                self.prack(now, cid, i, &resp);
            }
            if let ForkEvent::Early(did) = &ev {
                self.bind_dialog(cid, did.clone(), Side::B);
            }
            self.relay_provisional(now, cid, &resp);
            return;
        }
        if (200..300).contains(&status) {
            match ev {
                ForkEvent::Confirmed(did) => self.answered(now, cid, i, did, resp),
                ForkEvent::AdditionalConfirmed(did) => {
                    // A second phone answered too: ACK and hang it up.
                    self.ack_and_bye(now, cid, i, &did);
                }
                ForkEvent::Retransmission(did) => {
                    let pending = self
                        .calls
                        .calls
                        .get(&cid)
                        .is_some_and(|c| c.b_ack_pending.is_some());
                    if !pending {
                        self.resend_ack(now, cid, i, &did);
                    }
                }
                _ => {}
            }
            return;
        }
        if status >= 300 {
            br.done = true;
            c.failures.push(status);
            self.maybe_all_failed(now, cid);
        }
    }

    /// A 1xx from a callee: ringing (180), early media (183 with SDP) go to the caller.
    fn relay_provisional(&mut self, now: Instant, cid: u64, resp: &Response) {
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        if c.state != State::Ringing {
            return;
        }
        let Some(a_tx) = c.a_tx else { return };
        let a_from = c.a_from;
        let sip_ip = self.local_ip_for(a_from.ip());
        let t = self.a_transport(cid);
        let contact = self.our_contact(a_from, t);
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let mut r = c
            .a_invite
            .response(resp.status, &resp.reason, Some(&c.a_tag));
        r.headers.push(HeaderName::Contact, contact.to_string());
        copy_record_route(&c.a_invite, &mut r);
        if is_sdp(resp.content_type(), &resp.body) {
            if let Some(body) = relay_sdp(c, &resp.body, Side::B, sip_ip, false) {
                r.body = body;
                r.headers.push(HeaderName::ContentType, "application/sdp");
            }
        }
        // RFC 3262: a caller that requires 100rel gets reliable provisionals, resent (over UDP)
        // until it PRACKs them.
        if let Some(rseq) = c.a_rseq.as_mut() {
            *rseq = rseq.wrapping_add(1);
            let rseq = *rseq;
            r.headers.push(HeaderName::Require, "100rel");
            r.headers.push(HeaderName::RSeq, rseq.to_string());
            if !c.a_reliable {
                // Bounded: a callee sending provisionals in a loop keeps only the newest few
                // being resent.
                if c.retrans.iter().filter(|r| r.rseq.is_some()).count() >= MAX_RELIABLE_PENDING {
                    if let Some(k) = c.retrans.iter().position(|r| r.rseq.is_some()) {
                        c.retrans.remove(k);
                    }
                }
                let t1 = Duration::from_millis(self.cfg.t1_ms);
                c.retrans.push(Retrans {
                    rseq: Some(rseq),
                    cseq: c.a_invite.cseq().map(|s| s.seq).unwrap_or(1),
                    msg: Message::Response(r.clone()),
                    dest: a_from,
                    next: now + t1,
                    interval: t1,
                    until: now + t1 * 64,
                });
            }
        }
        let _ = self.txl.respond(now, a_tx, r);
        self.rearm(cid);
    }

    fn a_transport(&self, cid: u64) -> Transport {
        match self.calls.calls.get(&cid) {
            Some(c) if c.a_reliable => self.tp.stream_kind(c.a_from),
            _ => Transport::Udp,
        }
    }

    /// The first 2xx: the call is answered on branch `i`.
    fn answered(&mut self, now: Instant, cid: u64, i: usize, did: DialogId, resp: Response) {
        let a_transport = self.a_transport(cid);
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        if c.state != State::Ringing {
            // Answered after a CANCEL or the no-answer timeout: ACK and hang up.
            return self.ack_and_bye(now, cid, i, &did);
        }
        let a_from = c.a_from;
        let sip_ip = self.local_ip_for(a_from.ip());
        let contact = self.our_contact(a_from, a_transport);
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let br = &mut c.branches[i];
        br.done = true;
        let Some(dialog) = br.uac.dialog(&did).cloned() else {
            return;
        };
        let (dest, reliable, transport) = (br.dest, br.reliable, br.transport);
        c.b = Some(BLeg {
            dialog,
            dest,
            reliable,
            transport,
        });
        c.state = State::Answered;
        c.answered = Some(now);
        c.no_answer_at = None;
        self.bind_dialog(cid, did.clone(), Side::B);
        // ACK the callee at once (we are its UAC), unless its 2xx carried the offer of a
        // delayed-offer call: then our ACK carries the caller's answer, when it comes.
        let late = self.calls.calls.get(&cid).is_some_and(|c| c.late_offer);
        if late {
            if let Some(c) = self.calls.calls.get_mut(&cid) {
                c.b_ack_pending = Some((i, did.clone()));
            }
        } else {
            self.resend_ack(now, cid, i, &did);
        }
        // Cancel the other phones.
        let others: Vec<usize> = (0..self.calls.calls[&cid].branches.len())
            .filter(|j| *j != i)
            .collect();
        for j in others {
            self.cancel_branch(now, cid, j);
        }
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        // 200 to the caller, with the relay's address toward it.
        let mut r = c.a_invite.response(200, "OK", Some(&c.a_tag));
        r.headers.push(HeaderName::Contact, contact.to_string());
        copy_record_route(&c.a_invite, &mut r);
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
        if let Some(si) = c.session_interval {
            r.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher=uac", si.as_secs()),
            );
            r.headers.push(HeaderName::Require, "timer");
            c.session_deadline = Some(now + si);
        }
        if is_sdp(resp.content_type(), &resp.body) {
            let offer = c.late_offer;
            if let Some(body) = relay_sdp(c, &resp.body, Side::B, sip_ip, offer) {
                r.body = body;
                r.headers.push(HeaderName::ContentType, "application/sdp");
            }
        }
        c.retrans.retain(|r| r.rseq.is_none());
        c.a_dialog = Dialog::uas(&c.a_invite, &r).ok();
        if let Some(d) = &mut c.a_dialog {
            d.local_contact = Some(contact);
        }
        let a_seq = c.a_invite.cseq().map(|s| s.seq).unwrap_or(1);
        if !c.a_reliable {
            let t1 = Duration::from_millis(self.cfg.t1_ms);
            c.retrans.push(Retrans {
                rseq: None,
                cseq: a_seq,
                msg: Message::Response(r.clone()),
                dest: c.a_from,
                next: now + t1,
                interval: t1,
                until: now + t1 * 64,
            });
        }
        let a_tx = c.a_tx.take();
        let log = c.log.clone();
        if let Some(a_tx) = a_tx {
            let _ = self.txl.respond(now, a_tx, r);
        }
        self.stats.calls_answered.inc();
        tracing::info!("SIP: {log}: answered");
        self.rearm(cid);
    }

    fn resend_ack(&mut self, _now: Instant, cid: u64, i: usize, did: &DialogId) {
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        let br = &c.branches[i];
        let Some(d) = br.uac.dialog(did) else { return };
        let (dest, reliable, transport) = (br.dest, br.reliable, br.transport);
        let mut ack = d.ack_for_2xx(1);
        let via = self.our_via(dest, transport);
        ack.headers.push_front(HeaderName::Via, via);
        self.send_msg(Message::Request(ack), dest, reliable);
    }

    /// ACK a 2xx we do not want and end that dialog with BYE.
    fn ack_and_bye(&mut self, now: Instant, cid: u64, i: usize, did: &DialogId) {
        self.resend_ack(now, cid, i, did);
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let br = &mut c.branches[i];
        br.done = true;
        let Some(mut d) = br.uac.dialog(did).cloned() else {
            return;
        };
        let (dest, reliable, transport) = (br.dest, br.reliable, br.transport);
        let mut bye = d.create_request(Method::Bye);
        let via = self.our_via(dest, transport);
        bye.headers.push_front(HeaderName::Via, via);
        if let Ok(tx) = self.txl.send_request(now, bye, dest, reliable) {
            self.track(cid, tx, Role::Own);
        }
    }

    fn prack(&mut self, now: Instant, cid: u64, i: usize, resp: &Response) {
        let Ok(Some(did)) = DialogId::for_incoming_response(resp) else {
            return;
        };
        let rseq = resp
            .headers
            .get(&HeaderName::RSeq)
            .and_then(|v| v.trim().parse::<u32>().ok());
        let Some(rseq) = rseq else { return };
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let br = &mut c.branches[i];
        let Some(d) = br.uac.dialogs.iter_mut().find(|d| d.id == did) else {
            return;
        };
        let (dest, reliable, transport) = (br.dest, br.reliable, br.transport);
        let mut prack = d.create_request(Method::Prack);
        prack
            .headers
            .push(HeaderName::RAck, format!("{rseq} 1 INVITE"));
        let via = self.our_via(dest, transport);
        prack.headers.push_front(HeaderName::Via, via);
        if let Ok(tx) = self.txl.send_request(now, prack, dest, reliable) {
            self.track(cid, tx, Role::Own);
        }
    }

    /// CANCEL one forked INVITE (once it has had a provisional response, RFC 3261 §9.1).
    fn cancel_branch(&mut self, now: Instant, cid: u64, i: usize) {
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let Some(br) = c.branches.get_mut(i) else {
            return;
        };
        if br.done {
            return;
        }
        if !br.provisional {
            br.cancel_wanted = true;
            return;
        }
        br.done = true;
        let (tx, dest, reliable) = (br.tx, br.dest, br.reliable);
        match self.txl.cancel_request(tx) {
            Ok(mut cancel) => {
                cancel.headers.push(
                    HeaderName::Other("Reason".into()),
                    "SIP;cause=200;text=\"Call completed elsewhere\"",
                );
                if let Ok(t) = self.txl.send_request(now, cancel, dest, reliable) {
                    self.track(cid, t, Role::Own);
                }
            }
            Err(e) => tracing::debug!("SIP: call-{cid}: cannot CANCEL: {e}"),
        }
    }

    fn maybe_all_failed(&mut self, now: Instant, cid: u64) {
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        if c.state != State::Ringing || !c.branches.iter().all(|b| b.done) {
            return;
        }
        let (status, reason) = best_failure(&c.failures);
        self.fail_call(now, cid, status, reason);
    }

    /// Ends a call that was not answered: `status` to the caller, CANCEL to every phone.
    fn fail_call(&mut self, now: Instant, cid: u64, status: u16, reason: &str) {
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        if c.state != State::Ringing {
            return;
        }
        let n = c.branches.len();
        let a_tx = c.a_tx.take();
        c.retrans.retain(|r| r.rseq.is_none());
        let mut r = c.a_invite.response(status, reason, Some(&c.a_tag));
        r.headers.push(HeaderName::Server, "Strowger");
        tracing::info!("SIP: {}: not answered: {status} {reason}", c.log);
        if let Some(a_tx) = a_tx {
            let _ = self.txl.respond(now, a_tx, r);
        }
        for j in 0..n {
            self.cancel_branch(now, cid, j);
        }
        self.stats.calls_failed.inc();
        self.end(cid);
    }

    /// The caller's CANCEL.
    pub(super) fn on_cancel(&mut self, now: Instant, id: TxId, req: Request) {
        let Some(inv) = self.txl.find_invite_for_cancel(&req) else {
            return self.reply(now, id, &req, 481, "Call/Transaction Does Not Exist", None);
        };
        self.reply(now, id, &req, 200, "OK", None);
        let Some((cid, Role::AInvite)) = self.calls.by_tx.get(&inv).cloned() else {
            return;
        };
        let ringing = self
            .calls
            .calls
            .get(&cid)
            .is_some_and(|c| c.state == State::Ringing);
        if ringing {
            self.fail_call(now, cid, 487, "Request Terminated");
        }
    }

    /// An ACK for a 2xx (ours to the caller, or a re-INVITE's).
    pub(super) fn on_ack(&mut self, _now: Instant, req: Request) {
        let Ok(Some(did)) = DialogId::for_incoming_request(&req) else {
            return;
        };
        let Some((cid, _side)) = self.calls.by_dialog.get(&did).cloned() else {
            return;
        };
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let pending = match self.call_mut(cid) {
            Some(c) => {
                c.retrans.retain(|r| r.cseq != seq || r.rseq.is_some());
                if _side == Side::A {
                    c.b_ack_pending.take()
                } else {
                    None
                }
            }
            None => None,
        };
        // Delayed offer: the caller's ACK carries the answer; our ACK takes it to the callee.
        if let Some((i, bdid)) = pending {
            let Some(c) = self.calls.calls.get(&cid) else {
                return;
            };
            let Some(br) = c.branches.get(i) else { return };
            let Some(d) = br.uac.dialog(&bdid) else {
                return;
            };
            let (dest, reliable, transport) = (br.dest, br.reliable, br.transport);
            let mut ack = d.ack_for_2xx(1);
            let sip_ip = self.local_ip_for(dest.ip());
            let via = self.our_via(dest, transport);
            ack.headers.push_front(HeaderName::Via, via);
            if is_sdp(req.content_type(), &req.body) {
                if let Some(c) = self.calls.calls.get_mut(&cid) {
                    if let Some(body) = relay_sdp(c, &req.body, Side::A, sip_ip, false) {
                        ack.body = body;
                        ack.headers.push(HeaderName::ContentType, "application/sdp");
                    }
                }
            }
            self.send_msg(Message::Request(ack), dest, reliable);
        }
    }

    pub(super) fn on_stray_response(&mut self, _now: Instant, resp: Response, from: SocketAddr) {
        // A retransmitted 2xx after its transaction ended (our ACK was lost): ACK again.
        if !(200..300).contains(&resp.status) || resp.cseq().map(|c| c.method) != Ok(Method::Invite)
        {
            return;
        }
        let Ok(Some(did)) = DialogId::for_incoming_response(&resp) else {
            return;
        };
        let Some((cid, Side::B)) = self.calls.by_dialog.get(&did).cloned() else {
            return;
        };
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        let Some(b) = &c.b else { return };
        if b.dialog.id != did {
            return;
        }
        let seq = resp.cseq().map(|c| c.seq).unwrap_or(1);
        let (dest, reliable, transport) = (b.dest, b.reliable, b.transport);
        let mut ack = b.dialog.ack_for_2xx(seq);
        let via = self.our_via(dest, transport);
        ack.headers.push_front(HeaderName::Via, via);
        let _ = from;
        self.send_msg(Message::Request(ack), dest, reliable);
    }

    pub(super) fn on_tx_timeout(&mut self, now: Instant, id: TxId, status: u16) {
        let Some((cid, role)) = self.calls.by_tx.get(&id).cloned() else {
            return;
        };
        match role {
            Role::Branch(i) => {
                if let Some(c) = self.call_mut(cid) {
                    if let Some(b) = c.branches.get_mut(i) {
                        if !b.done {
                            b.done = true;
                            c.failures.push(status);
                        }
                    }
                }
                self.maybe_all_failed(now, cid);
            }
            Role::Forward {
                server,
                from,
                method,
            } => {
                let _ = method;
                if let Some(req) = self.txl.request(server).cloned() {
                    let reason = if status == 408 {
                        "Request Timeout"
                    } else {
                        "Service Unavailable"
                    };
                    let r = req.response(status, reason, None);
                    let _ = self.txl.respond(now, server, r);
                }
                if let Some(c) = self.call_mut(cid) {
                    c.reinvite_pending = false;
                }
                // The other side is gone: end the call.
                if status == 408 || status == 503 {
                    let log = self
                        .calls
                        .calls
                        .get(&cid)
                        .map(|c| c.log.clone())
                        .unwrap_or_default();
                    tracing::info!(
                        "SIP: {log}: {} side did not answer an in-dialog request: hanging up",
                        match from.other() {
                            Side::A => "caller",
                            Side::B => "callee",
                        }
                    );
                    self.hangup(
                        now,
                        cid,
                        Some(from.other()),
                        "SIP;cause=408;text=\"Peer unreachable\"",
                    );
                }
            }
            Role::AInvite | Role::Own => {}
        }
    }

    pub(super) fn on_tx_terminated(&mut self, id: TxId) {
        let Some((cid, _)) = self.calls.by_tx.remove(&id) else {
            return;
        };
        let gone = match self.calls.calls.get_mut(&cid) {
            Some(c) => {
                c.live_tx = c.live_tx.saturating_sub(1);
                c.state == State::Ended && c.live_tx == 0 && c.retrans.is_empty()
            }
            None => false,
        };
        if gone {
            self.forget(cid);
        }
    }

    fn forget(&mut self, cid: u64) {
        if let Some(c) = self.calls.calls.remove(&cid) {
            for d in c.dialogs {
                self.calls.by_dialog.remove(&d);
            }
        }
    }

    /// Maps in-dialog traffic with this id to the call's side.
    fn bind_dialog(&mut self, cid: u64, did: DialogId, side: Side) {
        if let Some(c) = self.calls.calls.get_mut(&cid) {
            if !c.dialogs.contains(&did) {
                c.dialogs.push(did.clone());
            }
            self.calls.by_dialog.insert(did, (cid, side));
        }
    }

    /// Marks a call ended: media released, counted. Its record stays until its transactions end.
    fn end(&mut self, cid: u64) {
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        if c.state == State::Ended {
            return;
        }
        c.state = State::Ended;
        c.no_answer_at = None;
        c.session_deadline = None;
        let talk = c.answered.map(|a| a.elapsed().as_secs()).unwrap_or(0);
        let total = c.started.elapsed().as_secs();
        let log = c.log.clone();
        let (caller, callee) = (c.caller.clone(), c.callee.clone());
        let relay = c.relay.take();
        let idle = c.live_tx == 0 && c.retrans.is_empty();
        self.stats.calls_active.dec();
        tracing::info!("SIP: {log}: {caller} -> {callee} ended: {talk} s talk, {total} s total");
        if let Some(r) = relay {
            tokio::spawn(async move {
                let _ = r.close().await;
            });
        }
        if idle {
            self.forget(cid);
        }
    }

    /// Ends an answered call: BYE to each side except `except` (which hung up already).
    fn hangup(&mut self, now: Instant, cid: u64, except: Option<Side>, reason: &str) {
        for side in [Side::A, Side::B] {
            if Some(side) == except {
                continue;
            }
            let Some(c) = self.calls.calls.get_mut(&cid) else {
                return;
            };
            let target = match side {
                Side::A => c
                    .a_dialog
                    .as_mut()
                    .map(|d| (d.create_request(Method::Bye), c.a_from, c.a_reliable)),
                Side::B => {
                    c.b.as_mut()
                        .map(|b| (b.dialog.create_request(Method::Bye), b.dest, b.reliable))
                }
            };
            let Some((mut bye, dest, reliable)) = target else {
                continue;
            };
            bye.headers
                .push(HeaderName::Other("Reason".into()), reason.to_string());
            let transport = if reliable {
                self.tp.stream_kind(dest)
            } else {
                Transport::Udp
            };
            let via = self.our_via(dest, transport);
            bye.headers.push_front(HeaderName::Via, via);
            if let Ok(tx) = self.txl.send_request(now, bye, dest, reliable) {
                self.track(cid, tx, Role::Own);
            }
        }
        self.end(cid);
    }

    /// An in-dialog request from either side.
    fn in_dialog(&mut self, now: Instant, id: TxId, req: Request, did: DialogId) {
        let Some((cid, side)) = self.calls.by_dialog.get(&did).cloned() else {
            return self.reply(now, id, &req, 481, "Call/Transaction Does Not Exist", None);
        };
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return self.reply(now, id, &req, 481, "Call/Transaction Does Not Exist", None);
        };
        if c.state == State::Ended {
            return self.reply(now, id, &req, 481, "Call/Transaction Does Not Exist", None);
        }
        // CSeq order and target refresh on the dialog of that side.
        let dialog = match side {
            Side::A => c.a_dialog.as_mut(),
            Side::B => c.b.as_mut().map(|b| &mut b.dialog),
        };
        let checked = dialog.map(|d| d.on_request(&req));
        let log = c.log.clone();
        let busy = c.reinvite_pending;
        match checked {
            None => {
                // Early-dialog requests (UPDATE before answer, PRACK from the caller) are not
                // relayed.
                return match req.method {
                    Method::Prack => {
                        let rack = req
                            .headers
                            .get(&HeaderName::RAck)
                            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
                        if let (Some(rseq), Some(c)) = (rack, self.calls.calls.get_mut(&cid)) {
                            c.retrans.retain(|r| r.rseq != Some(rseq));
                        }
                        self.reply(now, id, &req, 200, "OK", None)
                    }
                    _ => self.reply(now, id, &req, 491, "Request Pending", None),
                };
            }
            Some(Err(e)) => return self.reply(now, id, &req, e.status(), "Bad Request", None),
            Some(Ok(())) => {}
        }
        match req.method {
            Method::Bye => {
                self.reply(now, id, &req, 200, "OK", None);
                tracing::info!(
                    "SIP: {log}: {} hung up",
                    if side == Side::A { "caller" } else { "callee" }
                );
                self.hangup(
                    now,
                    cid,
                    Some(side),
                    "SIP;cause=200;text=\"Call completed\"",
                );
            }
            Method::Prack => self.reply(now, id, &req, 200, "OK", None),
            Method::Invite | Method::Update => {
                if busy && req.method == Method::Invite {
                    let h = vec![(HeaderName::Other("Retry-After".into()), "1".to_string())];
                    return self.reply(now, id, &req, 491, "Request Pending", Some(h));
                }
                if let Some(c) = self.calls.calls.get_mut(&cid) {
                    if side == Side::A {
                        if let Some(si) = c.session_interval {
                            c.session_deadline = Some(now + si);
                        }
                    }
                    if req.method == Method::Invite {
                        c.reinvite_pending = true;
                    }
                }
                self.rearm(cid);
                self.forward(now, cid, side, id, req)
            }
            _ => self.forward(now, cid, side, id, req),
        }
    }

    /// Relays an in-dialog request from `from` to the other side.
    fn forward(&mut self, now: Instant, cid: u64, from: Side, server: TxId, req: Request) {
        let to = from.other();
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let (dest, reliable) = match to {
            Side::A => (c.a_from, c.a_reliable),
            Side::B => match &c.b {
                Some(b) => (b.dest, b.reliable),
                None => return,
            },
        };
        let transport = if reliable {
            self.tp.stream_kind(dest)
        } else {
            Transport::Udp
        };
        let sip_ip = self.local_ip_for(dest.ip());
        let via = self.our_via(dest, transport);
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let dialog = match to {
            Side::A => c.a_dialog.as_mut(),
            Side::B => c.b.as_mut().map(|b| &mut b.dialog),
        };
        let Some(dialog) = dialog else { return };
        let mut out = dialog.create_request(req.method.clone());
        out.headers.push_front(HeaderName::Via, via);
        for h in req.headers.0.iter().filter(|h| passes(&h.name)) {
            out.headers.push(h.name.clone(), h.value.clone());
        }
        if is_sdp(req.content_type(), &req.body) {
            match relay_sdp(c, &req.body, from, sip_ip, true) {
                Some(b) => out.body = b,
                None => {
                    c.reinvite_pending = false;
                    let r = req.response(488, "Not Acceptable Here", None);
                    let _ = self.txl.respond(now, server, r);
                    return;
                }
            }
        } else {
            out.body = req.body.clone();
        }
        let method = req.method.clone();
        match self.txl.send_request(now, out, dest, reliable) {
            Ok(tx) => self.track(
                cid,
                tx,
                Role::Forward {
                    server,
                    from,
                    method,
                },
            ),
            Err(e) => {
                tracing::debug!("SIP: call-{cid}: cannot forward {method}: {e}");
                let r = req.response(500, "Server Internal Error", None);
                let _ = self.txl.respond(now, server, r);
            }
        }
    }

    /// The answer to a relayed in-dialog request goes back to the side that sent it.
    fn forward_response(
        &mut self,
        now: Instant,
        cid: u64,
        server: TxId,
        from: Side,
        method: Method,
        resp: Response,
    ) {
        if resp.status < 200 {
            return;
        }
        let Some(req) = self.txl.request(server).cloned() else {
            return;
        };
        let to = from.other();
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        let peer = match from {
            Side::A => c.a_from,
            Side::B => c.b.as_ref().map(|b| b.dest).unwrap_or(c.a_from),
        };
        let sip_ip = self.local_ip_for(peer.ip());
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        if method == Method::Invite {
            c.reinvite_pending = false;
        }
        let mut r = req.response(resp.status, &resp.reason, None);
        for h in resp.headers.0.iter().filter(|h| passes(&h.name)) {
            r.headers.push(h.name.clone(), h.value.clone());
        }
        if matches!(method, Method::Invite | Method::Update) && (200..300).contains(&resp.status) {
            if let Some(d) = match from {
                Side::A => c.a_dialog.as_ref(),
                Side::B => c.b.as_ref().map(|b| &b.dialog),
            } {
                if let Some(lc) = &d.local_contact {
                    r.headers.push(HeaderName::Contact, lc.to_string());
                }
            }
            if from == Side::A {
                if let Some(si) = c.session_interval {
                    r.headers.push(
                        HeaderName::SessionExpires,
                        format!("{};refresher=uac", si.as_secs()),
                    );
                    r.headers.push(HeaderName::Require, "timer");
                }
            }
        }
        if is_sdp(resp.content_type(), &resp.body) {
            // Content-Type was copied from the response headers.
            r.body = relay_sdp(c, &resp.body, to, sip_ip, false).unwrap_or_default();
        } else {
            r.body = resp.body.clone();
        }
        // A 2xx to our re-INVITE: ACK it on that leg now.
        if method == Method::Invite && (200..300).contains(&resp.status) {
            let seq = resp.cseq().map(|s| s.seq).unwrap_or(1);
            let target = match to {
                Side::A => c
                    .a_dialog
                    .as_ref()
                    .map(|d| (d.ack_for_2xx(seq), c.a_from, c.a_reliable)),
                Side::B => {
                    c.b.as_ref()
                        .map(|b| (b.dialog.ack_for_2xx(seq), b.dest, b.reliable))
                }
            };
            // The 2xx we send back needs retransmitting until its ACK.
            let back_seq = req.cseq().map(|s| s.seq).unwrap_or(1);
            let back_dest = match from {
                Side::A => Some((c.a_from, c.a_reliable)),
                Side::B => c.b.as_ref().map(|b| (b.dest, b.reliable)),
            };
            if let Some((d, false)) = back_dest {
                let t1 = Duration::from_millis(self.cfg.t1_ms);
                c.retrans.push(Retrans {
                    rseq: None,
                    cseq: back_seq,
                    msg: Message::Response(r.clone()),
                    dest: d,
                    next: now + t1,
                    interval: t1,
                    until: now + t1 * 64,
                });
            }
            if let Some((mut ack, dest, reliable)) = target {
                let transport = if reliable {
                    self.tp.stream_kind(dest)
                } else {
                    Transport::Udp
                };
                let via = self.our_via(dest, transport);
                ack.headers.push_front(HeaderName::Via, via);
                self.send_msg(Message::Request(ack), dest, reliable);
            }
        }
        let _ = self.txl.respond(now, server, r);
        self.rearm(cid);
    }

    /// Call timers: no answer, session expiry, 2xx retransmissions. Only the calls whose timer is
    /// due are looked at.
    pub(super) fn calls_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&(t, cid)) = self.calls.timers.first() {
            if t > now {
                break;
            }
            self.calls.timers.pop_first();
            if due.last() != Some(&cid) {
                due.push(cid);
            }
        }
        due.sort_unstable();
        due.dedup();
        for cid in due {
            self.call_timers(now, cid);
        }
    }

    fn call_timers(&mut self, now: Instant, cid: u64) {
        let Some(c) = self.calls.calls.get_mut(&cid) else {
            return;
        };
        let no_answer = c.no_answer_at.is_some_and(|t| t <= now);
        if no_answer {
            c.no_answer_at = None;
        }
        let expired = c.session_deadline.is_some_and(|t| t <= now);
        if expired {
            c.session_deadline = None;
        }
        let mut sends = Vec::new();
        c.retrans.retain_mut(|r| {
            if now >= r.until {
                return false;
            }
            if now >= r.next {
                sends.push((r.msg.clone(), r.dest));
                r.interval = (r.interval * 2).min(Duration::from_secs(4));
                r.next = now + r.interval;
            }
            true
        });
        let log = c.log.clone();
        for (m, d) in sends {
            self.send_msg(m, d, false);
        }
        if no_answer {
            tracing::info!(
                "SIP: {log}: no answer after {} s",
                self.cfg.no_answer_timeout_secs
            );
            self.fail_call(now, cid, 480, "No Answer");
        }
        if expired {
            tracing::info!("SIP: {log}: session timer expired (no refresh): hanging up");
            self.hangup(
                now,
                cid,
                None,
                "SIP;cause=408;text=\"Session timer expired\"",
            );
        }
        self.rearm(cid);
    }

    /// Re-registers a call's next timer after it changed; forgets an ended call with nothing left.
    fn rearm(&mut self, cid: u64) {
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        if c.state == State::Ended && c.live_tx == 0 && c.retrans.is_empty() {
            self.forget(cid);
            return;
        }
        if let Some(t) = c.next_timer() {
            self.calls.wake(cid, t);
        }
    }

    /// No RTP for the relay's timeout: an orphaned call.
    pub(super) fn call_media_timeout(&mut self, now: Instant, cid: u64) {
        let Some(c) = self.calls.calls.get(&cid) else {
            return;
        };
        match c.state {
            State::Answered => {
                tracing::info!("SIP: {}: no RTP for the media timeout: hanging up", c.log);
                self.hangup(now, cid, None, "SIP;cause=408;text=\"RTP timeout\"");
            }
            State::Ringing | State::Ended => {}
        }
    }
}

/// RFC 3261 §12.1.1: a dialog-creating response carries the request's Record-Route, so the
/// proxies on the caller's side stay in the dialog.
fn copy_record_route(req: &Request, resp: &mut Response) {
    for v in req.headers.get_all(&HeaderName::RecordRoute) {
        resp.headers.push(HeaderName::RecordRoute, v.clone());
    }
}

/// Does an option-tag header (Supported, Require) of a message list `tag`?
fn lists_tag(headers: &Headers, name: &HeaderName, tag: &str) -> bool {
    headers
        .get_all(name)
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(tag)))
}

/// The answer the caller gets when no phone took the call (RFC 3261 §16.7, simplified): a 6xx
/// wins, then busy, then other 4xx; authentication demands of a phone and timeouts become 480.
fn best_failure(failures: &[u16]) -> (u16, &'static str) {
    if let Some(s) = failures.iter().find(|s| **s >= 600) {
        return (*s, reason_for(*s));
    }
    if failures.contains(&486) {
        return (486, "Busy Here");
    }
    if failures.contains(&487) {
        return (487, "Request Terminated");
    }
    if let Some(s) = failures
        .iter()
        .find(|s| (400..500).contains(*s) && !matches!(**s, 401 | 407 | 408 | 480))
    {
        return (*s, reason_for(*s));
    }
    if failures.iter().any(|s| (500..600).contains(s)) && !failures.contains(&408) {
        return (500, "Server Internal Error");
    }
    (480, "Temporarily Unavailable")
}

fn reason_for(s: u16) -> &'static str {
    match s {
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        410 => "Gone",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        484 => "Address Incomplete",
        488 => "Not Acceptable Here",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Call Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_failure_prefers_decline_then_busy() {
        assert_eq!(best_failure(&[480, 603, 486]).0, 603);
        assert_eq!(best_failure(&[480, 486]).0, 486);
        assert_eq!(best_failure(&[408, 503]).0, 480);
        assert_eq!(best_failure(&[407]).0, 480);
        assert_eq!(best_failure(&[503]).0, 500);
        assert_eq!(best_failure(&[404, 480]).0, 404);
        assert_eq!(best_failure(&[]).0, 480);
    }
}
