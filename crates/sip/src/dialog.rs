//! Dialogs (RFC 3261 §12): the state two user agents share after an INVITE (or SUBSCRIBE…)
//! succeeds, the in-dialog requests built from it, and forking of an INVITE into several early
//! dialogs ([`UacInvite`]).
//!
//! Sans-IO like the rest of the crate: a dialog only builds and checks messages. The Via of a
//! request built here is left to the caller (it carries the transaction's branch).

use crate::message::{
    CSeq, HeaderName, Method, NameAddr, ParseError, Request, Response, Scheme, Uri,
};
use crate::text::Text;
use std::time::{Duration, Instant};

/// Identifies a dialog (§12): Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an incoming request belongs to (local tag = To tag, remote = From
    /// tag); `None` if the request has no To tag (not in a dialog).
    pub fn for_incoming_request(req: &Request) -> Result<Option<DialogId>, ParseError> {
        let to = req.to()?;
        let Some(local) = to.tag() else {
            return Ok(None);
        };
        Ok(Some(DialogId {
            call_id: req.call_id()?.to_string(),
            local_tag: local.to_string(),
            remote_tag: req.from()?.tag().map(|t| t.to_string()).unwrap_or_default(),
        }))
    }

    /// The id of the dialog an incoming response belongs to (local tag = From tag, remote = To
    /// tag); `None` if the response has no To tag.
    pub fn for_incoming_response(resp: &Response) -> Result<Option<DialogId>, ParseError> {
        let to = resp.to()?;
        let Some(remote) = to.tag() else {
            return Ok(None);
        };
        Ok(Some(DialogId {
            call_id: resp.call_id()?.to_string(),
            local_tag: resp
                .from()?
                .tag()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            remote_tag: remote.to_string(),
        }))
    }
}

/// Early (from a provisional response) or confirmed (from a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
}

/// Why a dialog could not be made or a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header is missing or malformed.
    #[error("malformed message: {0}")]
    Malformed(#[from] ParseError),
    /// The response does not create a dialog (not 101–299, or no To tag).
    #[error("response does not create a dialog")]
    NotDialogCreating,
    /// The request does not belong to this dialog.
    #[error("not in this dialog")]
    Mismatch,
    /// §12.2.2: CSeq lower than the last one seen: answer 500.
    #[error("CSeq out of order")]
    OutOfOrder,
}

impl DialogError {
    /// The status to answer a request refused with this error.
    pub fn status(&self) -> u16 {
        match self {
            DialogError::OutOfOrder => 500,
            DialogError::Mismatch => 481,
            _ => 400,
        }
    }
}

/// The state of one dialog (§12.1).
#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our URI (From of our requests), without tag.
    pub local_uri: NameAddr,
    /// The peer's URI (To of our requests), without tag.
    pub remote_uri: NameAddr,
    /// Last CSeq number we used (`None`: none yet, UAS side).
    pub local_seq: Option<u32>,
    /// Last CSeq number the peer used (`None`: none yet, UAC side).
    pub remote_seq: Option<u32>,
    /// Where our in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Our Contact, put in the target refresh requests we build.
    pub local_contact: Option<NameAddr>,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<NameAddr>,
    /// SIPS dialog (§12.1.1).
    pub secure: bool,
    /// We sent the dialog-creating request.
    pub is_uac: bool,
}

fn without_tag(mut na: NameAddr) -> NameAddr {
    na.params.remove("tag");
    na
}

fn with_tag(na: &NameAddr, tag: &str) -> NameAddr {
    let mut na = na.clone();
    if !tag.is_empty() {
        na.params.set("tag", Some(Text::from(tag.to_owned())));
    }
    na
}

/// Methods whose requests (and 2xx) refresh the remote target (RFC 3261 §12.2, RFC 3311, RFC
/// 6665, RFC 3515).
pub fn is_target_refresh(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

impl Dialog {
    /// The UAC's dialog from the request it sent and a 101–299 response with a To tag (§12.1.2).
    /// Route set: Record-Route of the response, reversed. Remote target: its Contact (a
    /// provisional response without Contact falls back to the Request-URI).
    pub fn uac(req: &Request, resp: &Response) -> Result<Dialog, DialogError> {
        if !(101..300).contains(&resp.status) {
            return Err(DialogError::NotDialogCreating);
        }
        let to = resp.to()?;
        let remote_tag = to.tag().ok_or(DialogError::NotDialogCreating)?.to_string();
        let from = req.from()?;
        let mut route_set = resp.record_routes()?;
        route_set.reverse();
        let remote_target = match resp.contacts()?.into_iter().next() {
            Some(c) => c.uri,
            None if resp.status < 200 => req.uri.clone(),
            None => return Err(DialogError::Malformed(ParseError::Malformed("Contact"))),
        };
        Ok(Dialog {
            id: DialogId {
                call_id: req.call_id()?.to_string(),
                local_tag: from.tag().map(|t| t.to_string()).unwrap_or_default(),
                remote_tag,
            },
            state: if resp.status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            local_seq: Some(req.cseq()?.seq),
            remote_seq: None,
            remote_target,
            local_contact: req.contacts()?.into_iter().next(),
            route_set,
            secure: req.uri.scheme == Scheme::Sips,
            is_uac: true,
        })
    }

    /// The UAS's dialog from the request received and the 101–299 response it sends, which has
    /// our To tag (§12.1.1). Route set: Record-Route of the request, in order. Remote target: the
    /// request's Contact.
    pub fn uas(req: &Request, resp: &Response) -> Result<Dialog, DialogError> {
        if !(101..300).contains(&resp.status) {
            return Err(DialogError::NotDialogCreating);
        }
        let to = resp.to()?;
        let local_tag = to.tag().ok_or(DialogError::NotDialogCreating)?.to_string();
        let from = req.from()?;
        let remote_target = req
            .contacts()?
            .into_iter()
            .next()
            .map(|c| c.uri)
            .ok_or(DialogError::Malformed(ParseError::Malformed("Contact")))?;
        Ok(Dialog {
            id: DialogId {
                call_id: req.call_id()?.to_string(),
                local_tag,
                remote_tag: from.tag().map(|t| t.to_string()).unwrap_or_default(),
            },
            state: if resp.status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            local_seq: None,
            remote_seq: Some(req.cseq()?.seq),
            remote_target,
            local_contact: resp.contacts()?.into_iter().next(),
            route_set: req.record_routes()?,
            secure: req.uri.scheme == Scheme::Sips,
            is_uac: false,
        })
    }

    /// An incoming request belongs to this dialog.
    pub fn matches_request(&self, req: &Request) -> bool {
        matches!(DialogId::for_incoming_request(req), Ok(Some(id)) if id == self.id)
    }

    /// An incoming response belongs to this dialog.
    pub fn matches_response(&self, resp: &Response) -> bool {
        matches!(DialogId::for_incoming_response(resp), Ok(Some(id)) if id == self.id)
    }

    /// A response to a request we sent in this dialog (UAC side of the dialog-creating INVITE
    /// included): a 2xx confirms an early dialog (route set recomputed from it, §13.2.2.4 — only
    /// for the UAC of the dialog); a 1xx/2xx to a target refresh request updates the remote target.
    pub fn on_response(&mut self, resp: &Response) -> Result<(), DialogError> {
        if !self.matches_response(resp) {
            return Err(DialogError::Mismatch);
        }
        let cseq = resp.cseq()?;
        if (200..300).contains(&resp.status) && self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
            if self.is_uac && cseq.method == Method::Invite {
                let mut rs = resp.record_routes()?;
                rs.reverse();
                self.route_set = rs;
            }
        }
        if is_target_refresh(&cseq.method) && (101..300).contains(&resp.status) {
            if let Some(c) = resp.contacts()?.into_iter().next() {
                self.remote_target = c.uri;
            }
        }
        Ok(())
    }

    /// An incoming in-dialog request (§12.2.2): checks the dialog id and CSeq order (lower than
    /// the last one: [`DialogError::OutOfOrder`], answer 500), records the CSeq, and applies a
    /// target refresh (re-INVITE, UPDATE…) from its Contact. ACK and CANCEL carry the CSeq number
    /// of their INVITE and are not ordered. (RFC 6141 would defer the refresh of a re-INVITE
    /// to its 2xx: call this when accepting.)
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if !self.matches_request(req) {
            return Err(DialogError::Mismatch);
        }
        let seq = req.cseq()?.seq;
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq {
                if seq < last {
                    return Err(DialogError::OutOfOrder);
                }
            }
            self.remote_seq = Some(seq);
        }
        if is_target_refresh(&req.method) {
            if let Some(c) = req.contacts()?.into_iter().next() {
                self.remote_target = c.uri;
            }
        }
        if req.method == Method::Ack && self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
        Ok(())
    }

    /// Builds an in-dialog request (§12.2.1.1): Request-URI and Route from the remote target and
    /// route set (loose routing; a strict first route becomes the Request-URI and the remote target
    /// goes last in Route), To/From with tags, Call-ID, a new CSeq (ACK and CANCEL reuse the last
    /// one: see [`Self::ack_for_2xx`]), Max-Forwards 70, our Contact for target refresh methods.
    /// The caller adds the top Via (with a fresh branch), a body, and anything else.
    pub fn create_request(&mut self, method: Method) -> Request {
        let seq = match method {
            Method::Ack | Method::Cancel => self.local_seq.unwrap_or(1),
            _ => {
                let s = self.local_seq.map_or(1, |s| s.wrapping_add(1));
                self.local_seq = Some(s);
                s
            }
        };
        self.build(method, seq)
    }

    /// The ACK for a 2xx to the INVITE whose CSeq number is `invite_seq` (§13.2.2.4): built like any
    /// in-dialog request, with that CSeq number and method ACK. The caller adds a Via with a new
    /// branch, plus the offer's answer and credentials if the INVITE carried them.
    pub fn ack_for_2xx(&self, invite_seq: u32) -> Request {
        self.build(Method::Ack, invite_seq)
    }

    fn build(&self, method: Method, seq: u32) -> Request {
        let strict = self
            .route_set
            .first()
            .is_some_and(|r| !r.uri.params.has("lr"));
        let (uri, routes): (Uri, Vec<NameAddr>) = if strict {
            let mut uri = self.route_set[0].uri.clone();
            uri.headers.clear();
            let mut routes: Vec<NameAddr> = self.route_set[1..].to_vec();
            routes.push(NameAddr {
                display: None,
                uri: self.remote_target.clone(),
                params: Default::default(),
            });
            (uri, routes)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let mut req = Request {
            method: method.clone(),
            uri,
            headers: Default::default(),
            body: Default::default(),
        };
        for r in routes {
            req.headers.push(HeaderName::Route, r.to_string());
        }
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers.push(
            HeaderName::From,
            with_tag(&self.local_uri, &self.id.local_tag).to_string(),
        );
        req.headers.push(
            HeaderName::To,
            with_tag(&self.remote_uri, &self.id.remote_tag).to_string(),
        );
        req.headers
            .push(HeaderName::CallId, self.id.call_id.clone());
        req.headers.push(
            HeaderName::CSeq,
            CSeq {
                seq,
                method: method.clone(),
            }
            .to_string(),
        );
        if is_target_refresh(&method) {
            if let Some(c) = &self.local_contact {
                req.headers.push(HeaderName::Contact, c.to_string());
            }
        }
        req
    }
}

/// What a response to a forked INVITE did ([`UacInvite::on_response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkEvent {
    /// A provisional response created or updated an early dialog.
    Early(DialogId),
    /// The first 2xx: this dialog is confirmed.
    Confirmed(DialogId),
    /// A 2xx from another fork after the first (or its retransmission): a dialog of its own;
    /// RFC 3261 §13.2.2.4: ACK it, and usually BYE it.
    AdditionalConfirmed(DialogId),
    /// A retransmitted 2xx for a dialog already confirmed: send the ACK again.
    Retransmission(DialogId),
    /// Non-2xx final response: every early dialog ends.
    Failed(u16),
    /// Nothing dialog-related (1xx without To tag, 100…).
    None,
}

/// The dialogs of one INVITE we sent: several early dialogs when it forks, the first 2xx
/// confirming one of them (or creating it), later 2xx creating more.
#[derive(Debug, Clone)]
pub struct UacInvite {
    /// The INVITE as sent.
    pub invite: Request,
    /// Every dialog made so far, early or confirmed.
    pub dialogs: Vec<Dialog>,
    /// The dialog of the first 2xx.
    pub confirmed: Option<DialogId>,
}

impl UacInvite {
    /// Starts tracking an INVITE we sent.
    pub fn new(invite: Request) -> Self {
        UacInvite {
            invite,
            dialogs: Vec::new(),
            confirmed: None,
        }
    }

    /// The dialog with this id.
    pub fn dialog(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.iter().find(|d| &d.id == id)
    }

    /// A response to the INVITE (each from the client transaction, including 2xx in `Accepted`).
    pub fn on_response(&mut self, resp: &Response) -> Result<ForkEvent, DialogError> {
        if resp.status >= 300 {
            self.dialogs.retain(|d| d.state == DialogState::Confirmed);
            return Ok(ForkEvent::Failed(resp.status));
        }
        if resp.status <= 100 {
            return Ok(ForkEvent::None);
        }
        let Some(id) = DialogId::for_incoming_response(resp)? else {
            return Ok(ForkEvent::None);
        };
        let ok = resp.status >= 200;
        if let Some(d) = self.dialogs.iter_mut().find(|d| d.id == id) {
            let was_confirmed = d.state == DialogState::Confirmed;
            d.on_response(resp)?;
            if !ok {
                return Ok(ForkEvent::Early(id));
            }
            if was_confirmed {
                return Ok(ForkEvent::Retransmission(id));
            }
        } else {
            self.dialogs.push(Dialog::uac(&self.invite, resp)?);
            if !ok {
                return Ok(ForkEvent::Early(id));
            }
        }
        if self.confirmed.is_none() {
            self.confirmed = Some(id.clone());
            Ok(ForkEvent::Confirmed(id))
        } else {
            Ok(ForkEvent::AdditionalConfirmed(id))
        }
    }

    /// The INVITE transaction ended: early dialogs that never got a 2xx end with it; the
    /// confirmed dialogs are returned.
    pub fn finish(self) -> Vec<Dialog> {
        self.dialogs
            .into_iter()
            .filter(|d| d.state == DialogState::Confirmed)
            .collect()
    }
}

/// What [`Retransmit2xx::handle_timeout`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmit2xxAction {
    /// Nothing due yet (or already done).
    Wait,
    /// Send the 2xx again (through the INVITE server transaction, which is in `Accepted`).
    Resend,
    /// 64·T1 without an ACK (§13.3.1.4): the UAS should end the dialog with a BYE.
    GiveUp,
}

/// The UAS core's retransmission of a 2xx to INVITE on an unreliable transport (RFC 3261
/// §13.3.1.4): T1, doubling up to T2, until the ACK arrives or 64·T1 have passed. Sans-IO: the
/// owner calls [`Self::handle_timeout`] at [`Self::poll_timeout`].
#[derive(Debug, Clone)]
pub struct Retransmit2xx {
    next: Option<Instant>,
    interval: Duration,
    t2: Duration,
    give_up: Instant,
}

impl Retransmit2xx {
    /// Starts when the 2xx is first sent at `now`.
    pub fn new(now: Instant, t1: Duration, t2: Duration) -> Self {
        Retransmit2xx {
            next: Some(now + t1),
            interval: t1,
            t2,
            give_up: now + t1 * 64,
        }
    }

    /// The ACK arrived: stop.
    pub fn ack_received(&mut self) {
        self.next = None;
    }

    /// Still waiting for the ACK.
    pub fn is_active(&self) -> bool {
        self.next.is_some()
    }

    /// The next instant to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next.map(|n| n.min(self.give_up))
    }

    /// Runs the timer.
    pub fn handle_timeout(&mut self, now: Instant) -> Retransmit2xxAction {
        let Some(next) = self.next else {
            return Retransmit2xxAction::Wait;
        };
        if now >= self.give_up {
            self.next = None;
            return Retransmit2xxAction::GiveUp;
        }
        if now < next {
            return Retransmit2xxAction::Wait;
        }
        self.interval = (self.interval * 2).min(self.t2);
        self.next = Some(next + self.interval);
        Retransmit2xxAction::Resend
    }
}
