//! Dialog tests: creation on both sides, in-dialog requests, CSeq ordering, route sets, target
//! refresh, forking.

use strowger_sip::dialog::{Dialog, DialogError, DialogId, DialogState, ForkEvent, UacInvite};
use strowger_sip::{HeaderName, Limits, Message, Method, Request, Response, Uri};

fn parse(s: &str) -> Message {
    let s = s.replace('\n', "\r\n");
    Message::parse(bytes::Bytes::from(s), &Limits::default()).expect("parse")
}

fn req(s: &str) -> Request {
    match parse(s) {
        Message::Request(r) => r,
        _ => panic!("not a request"),
    }
}

fn resp(s: &str) -> Response {
    match parse(s) {
        Message::Response(r) => r,
        _ => panic!("not a response"),
    }
}

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
Max-Forwards: 70
From: Alice <sip:alice@example.com>;tag=atag
To: Bob <sip:bob@example.com>
Call-ID: c1@192.0.2.1
CSeq: 10 INVITE
Record-Route: <sip:p1.example.com;lr>
Record-Route: <sip:p2.example.com;lr>
Contact: <sip:alice@192.0.2.1:5060>
Content-Length: 0

";

fn invite() -> Request {
    req(INVITE)
}

/// A response to INVITE from `tag` with `contact`, status `status`.
fn answer(status: u16, tag: &str, contact: &str) -> Response {
    resp(&format!(
        "SIP/2.0 {status} Whatever
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
From: Alice <sip:alice@example.com>;tag=atag
To: Bob <sip:bob@example.com>;tag={tag}
Call-ID: c1@192.0.2.1
CSeq: 10 INVITE
Record-Route: <sip:p1.example.com;lr>
Record-Route: <sip:p2.example.com;lr>
Contact: <{contact}>
Content-Length: 0

"
    ))
}

fn routes(r: &Request) -> Vec<String> {
    r.routes()
        .unwrap()
        .iter()
        .map(|n| n.uri.to_string())
        .collect()
}

#[test]
fn uac_dialog_from_2xx() {
    let d = Dialog::uac(&invite(), &answer(200, "btag", "sip:bob@192.0.2.2:5070")).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(
        d.id,
        DialogId {
            call_id: "c1@192.0.2.1".into(),
            local_tag: "atag".into(),
            remote_tag: "btag".into()
        }
    );
    assert_eq!(
        d.remote_target,
        Uri::parse("sip:bob@192.0.2.2:5070").unwrap()
    );
    // UAC: route set is Record-Route reversed.
    let rs: Vec<String> = d.route_set.iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(rs, ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]);
    assert_eq!(d.local_seq, Some(10));
    assert_eq!(d.remote_seq, None);
    assert!(!d.secure);
    assert!(d.local_uri.tag().is_none() && d.remote_uri.tag().is_none());
}

#[test]
fn uac_in_dialog_request_loose_routing() {
    let mut d = Dialog::uac(&invite(), &answer(200, "btag", "sip:bob@192.0.2.2:5070")).unwrap();
    let bye = d.create_request(Method::Bye);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, Uri::parse("sip:bob@192.0.2.2:5070").unwrap());
    assert_eq!(
        routes(&bye),
        ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    );
    assert_eq!(bye.cseq().unwrap().seq, 11);
    assert_eq!(bye.cseq().unwrap().method, Method::Bye);
    assert_eq!(bye.from().unwrap().tag().unwrap(), "atag");
    assert_eq!(bye.to().unwrap().tag().unwrap(), "btag");
    assert_eq!(bye.call_id().unwrap(), "c1@192.0.2.1");
    assert_eq!(bye.max_forwards().unwrap(), Some(70));
    // BYE is not a target refresh: no Contact.
    assert!(bye.contacts().unwrap().is_empty());
    // A re-INVITE carries our Contact and the next CSeq.
    let reinv = d.create_request(Method::Invite);
    assert_eq!(reinv.cseq().unwrap().seq, 12);
    assert_eq!(
        reinv.contacts().unwrap()[0].uri,
        Uri::parse("sip:alice@192.0.2.1:5060").unwrap()
    );
    // Round trip through the wire format.
    let mut m = reinv.clone();
    m.headers.push_front(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKre",
    );
    let back = Message::parse(
        bytes::Bytes::from(Message::Request(m).to_bytes()),
        &Limits::default(),
    )
    .unwrap();
    assert!(matches!(back, Message::Request(r) if r.cseq().unwrap().seq == 12));
}

#[test]
fn ack_for_2xx_reuses_the_invite_cseq() {
    let mut d = Dialog::uac(&invite(), &answer(200, "btag", "sip:bob@192.0.2.2")).unwrap();
    let ack = d.ack_for_2xx(10);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.cseq().unwrap().seq, 10);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.uri, Uri::parse("sip:bob@192.0.2.2").unwrap());
    assert_eq!(routes(&ack).len(), 2);
    // create_request(ACK) after a re-INVITE: the re-INVITE's number.
    let reinv = d.create_request(Method::Invite);
    let ack = d.create_request(Method::Ack);
    assert_eq!(ack.cseq().unwrap().seq, reinv.cseq().unwrap().seq);
    assert_eq!(d.local_seq, Some(11));
}

#[test]
fn strict_route_goes_into_the_request_uri() {
    let inv = invite();
    let mut ok = answer(200, "btag", "sip:bob@192.0.2.2");
    ok.headers.remove(&HeaderName::RecordRoute);
    ok.headers
        .push(HeaderName::RecordRoute, "<sip:loose.example.com;lr>");
    ok.headers
        .push(HeaderName::RecordRoute, "<sip:strict.example.com>");
    let mut d = Dialog::uac(&inv, &ok).unwrap();
    // Route set (reversed): strict first.
    let bye = d.create_request(Method::Bye);
    assert_eq!(bye.uri, Uri::parse("sip:strict.example.com").unwrap());
    assert_eq!(
        routes(&bye),
        ["sip:loose.example.com;lr", "sip:bob@192.0.2.2"]
    );
}

#[test]
fn uas_dialog_and_cseq_ordering() {
    let inv = invite();
    let mut ok = inv.response(200, "OK", Some("btag"));
    ok.headers
        .push(HeaderName::Contact, "<sip:bob@192.0.2.2:5070>");
    let mut d = Dialog::uas(&inv, &ok).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.id.local_tag, "btag");
    assert_eq!(d.id.remote_tag, "atag");
    assert_eq!(
        d.remote_target,
        Uri::parse("sip:alice@192.0.2.1:5060").unwrap()
    );
    // UAS: route set in Record-Route order.
    let rs: Vec<String> = d.route_set.iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(rs, ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]);
    assert_eq!(d.remote_seq, Some(10));
    // Our first request: local CSeq starts at 1; From is our URI with our tag.
    let bye = d.create_request(Method::Bye);
    assert_eq!(bye.cseq().unwrap().seq, 1);
    assert_eq!(bye.from().unwrap().tag().unwrap(), "btag");
    assert_eq!(
        bye.from().unwrap().uri,
        Uri::parse("sip:bob@example.com").unwrap()
    );
    assert_eq!(bye.to().unwrap().tag().unwrap(), "atag");
    assert_eq!(
        routes(&bye),
        ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );

    // Incoming in-dialog requests from Alice.
    let mk = |method: &str, seq: u32| {
        req(&format!(
            "{method} sip:bob@192.0.2.2:5070 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{method}{seq}
From: Alice <sip:alice@example.com>;tag=atag
To: Bob <sip:bob@example.com>;tag=btag
Call-ID: c1@192.0.2.1
CSeq: {seq} {method}
Content-Length: 0

"
        ))
    };
    assert_eq!(d.on_request(&mk("INFO", 11)), Ok(()));
    assert_eq!(d.remote_seq, Some(11));
    let err = d.on_request(&mk("INFO", 9)).unwrap_err();
    assert_eq!(err, DialogError::OutOfOrder);
    assert_eq!(err.status(), 500);
    assert_eq!(d.remote_seq, Some(11));
    // ACK carries the INVITE's (lower) number: not ordered.
    assert_eq!(d.on_request(&mk("ACK", 10)), Ok(()));
    assert_eq!(d.on_request(&mk("BYE", 12)), Ok(()));
    assert_eq!(d.remote_seq, Some(12));
    // Another dialog's request.
    let mut other = mk("BYE", 13);
    other.headers.set(HeaderName::CallId, "other");
    assert!(!d.matches_request(&other));
    assert_eq!(d.on_request(&other), Err(DialogError::Mismatch));
    assert_eq!(DialogError::Mismatch.status(), 481);
    assert!(d.matches_request(&mk("BYE", 14)));
}

#[test]
fn target_refresh() {
    let inv = invite();
    let mut ok = inv.response(200, "OK", Some("btag"));
    ok.headers.push(HeaderName::Contact, "<sip:bob@192.0.2.2>");
    let mut d = Dialog::uas(&inv, &ok).unwrap();
    let mk = |method: &str, seq: u32, contact: &str| {
        req(&format!(
            "{method} sip:bob@192.0.2.2 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx{seq}
From: <sip:alice@example.com>;tag=atag
To: <sip:bob@example.com>;tag=btag
Call-ID: c1@192.0.2.1
CSeq: {seq} {method}
Contact: <{contact}>
Content-Length: 0

"
        ))
    };
    // INFO is not a target refresh.
    d.on_request(&mk("INFO", 11, "sip:alice@203.0.113.5"))
        .unwrap();
    assert_eq!(
        d.remote_target,
        Uri::parse("sip:alice@192.0.2.1:5060").unwrap()
    );
    // re-INVITE and UPDATE are.
    d.on_request(&mk("INVITE", 12, "sip:alice@203.0.113.5"))
        .unwrap();
    assert_eq!(
        d.remote_target,
        Uri::parse("sip:alice@203.0.113.5").unwrap()
    );
    d.on_request(&mk("UPDATE", 13, "sip:alice@203.0.113.6:5080"))
        .unwrap();
    assert_eq!(
        d.remote_target,
        Uri::parse("sip:alice@203.0.113.6:5080").unwrap()
    );
    assert_eq!(
        d.create_request(Method::Bye).uri,
        Uri::parse("sip:alice@203.0.113.6:5080").unwrap()
    );

    // UAC side: the 2xx to our re-INVITE refreshes the target.
    let mut uac = Dialog::uac(&invite(), &answer(200, "btag", "sip:bob@192.0.2.2")).unwrap();
    let _reinv = uac.create_request(Method::Invite);
    let mut ok2 = answer(200, "btag", "sip:bob@198.51.100.7");
    ok2.headers.set(HeaderName::CSeq, "11 INVITE");
    uac.on_response(&ok2).unwrap();
    assert_eq!(
        uac.remote_target,
        Uri::parse("sip:bob@198.51.100.7").unwrap()
    );
    // A response from another dialog is refused.
    assert_eq!(
        uac.on_response(&answer(200, "zzz", "sip:x@y")),
        Err(DialogError::Mismatch)
    );
}

#[test]
fn early_dialog_confirmed_by_2xx_recomputes_route_set() {
    let inv = invite();
    let mut ringing = answer(180, "btag", "sip:bob@192.0.2.2");
    ringing.headers.remove(&HeaderName::RecordRoute);
    ringing
        .headers
        .push(HeaderName::RecordRoute, "<sip:early.example.com;lr>");
    let mut d = Dialog::uac(&inv, &ringing).unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert_eq!(d.route_set.len(), 1);
    d.on_response(&answer(200, "btag", "sip:bob@192.0.2.3"))
        .unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.route_set.len(), 2);
    assert_eq!(d.remote_target, Uri::parse("sip:bob@192.0.2.3").unwrap());
}

#[test]
fn responses_that_make_no_dialog() {
    let inv = invite();
    assert_eq!(
        Dialog::uac(&inv, &answer(486, "btag", "sip:b@x")).unwrap_err(),
        DialogError::NotDialogCreating
    );
    let mut no_tag = answer(180, "btag", "sip:b@x");
    no_tag
        .headers
        .set(HeaderName::To, "Bob <sip:bob@example.com>");
    assert_eq!(
        Dialog::uac(&inv, &no_tag).unwrap_err(),
        DialogError::NotDialogCreating
    );
    // 1xx without Contact: remote target falls back to the Request-URI.
    let mut no_contact = answer(183, "btag", "sip:b@x");
    no_contact.headers.remove(&HeaderName::Contact);
    let d = Dialog::uac(&inv, &no_contact).unwrap();
    assert_eq!(d.remote_target, inv.uri);
}

#[test]
fn dialog_ids_of_incoming_messages() {
    let ok = answer(200, "btag", "sip:b@x");
    let id = DialogId::for_incoming_response(&ok).unwrap().unwrap();
    assert_eq!(
        (id.local_tag.as_str(), id.remote_tag.as_str()),
        ("atag", "btag")
    );
    assert_eq!(DialogId::for_incoming_request(&invite()).unwrap(), None);
    let d = Dialog::uac(&invite(), &ok).unwrap();
    assert!(d.matches_response(&ok));
}

#[test]
fn sips_dialog_is_secure() {
    let inv = req(&INVITE.replace("INVITE sip:bob", "INVITE sips:bob"));
    let d = Dialog::uac(&inv, &answer(200, "btag", "sips:bob@192.0.2.2")).unwrap();
    assert!(d.secure);
}

#[test]
fn forking_early_dialogs_and_first_2xx() {
    let mut f = UacInvite::new(invite());
    assert_eq!(
        f.on_response(&invite().response(100, "Trying", None))
            .unwrap(),
        ForkEvent::None
    );
    let a = f
        .on_response(&answer(180, "fa", "sip:bob@10.0.0.1"))
        .unwrap();
    let b = f
        .on_response(&answer(183, "fb", "sip:bob@10.0.0.2"))
        .unwrap();
    let (ForkEvent::Early(ida), ForkEvent::Early(idb)) = (a, b) else {
        panic!()
    };
    assert_ne!(ida, idb);
    assert_eq!(f.dialogs.len(), 2);
    // A second provisional from fork a updates it, no new dialog.
    assert_eq!(
        f.on_response(&answer(180, "fa", "sip:bob@10.0.0.1"))
            .unwrap(),
        ForkEvent::Early(ida.clone())
    );
    assert_eq!(f.dialogs.len(), 2);
    // Fork b answers first: confirmed.
    assert_eq!(
        f.on_response(&answer(200, "fb", "sip:bob@10.0.0.2"))
            .unwrap(),
        ForkEvent::Confirmed(idb.clone())
    );
    assert_eq!(f.confirmed, Some(idb.clone()));
    assert_eq!(f.dialog(&idb).unwrap().state, DialogState::Confirmed);
    assert_eq!(f.dialog(&ida).unwrap().state, DialogState::Early);
    // Its retransmission.
    assert_eq!(
        f.on_response(&answer(200, "fb", "sip:bob@10.0.0.2"))
            .unwrap(),
        ForkEvent::Retransmission(idb.clone())
    );
    // A 2xx from a third fork: a dialog of its own, to ACK and BYE.
    let ev = f
        .on_response(&answer(200, "fc", "sip:bob@10.0.0.3"))
        .unwrap();
    let ForkEvent::AdditionalConfirmed(idc) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(f.dialogs.len(), 3);
    // The transaction ends: early dialog a is gone.
    let done = f.finish();
    let ids: Vec<_> = done.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, vec![idb, idc]);
}

#[test]
fn forking_failure_ends_early_dialogs() {
    let mut f = UacInvite::new(invite());
    f.on_response(&answer(180, "fa", "sip:bob@10.0.0.1"))
        .unwrap();
    assert_eq!(
        f.on_response(&answer(486, "fa", "sip:bob@10.0.0.1"))
            .unwrap(),
        ForkEvent::Failed(486)
    );
    assert!(f.dialogs.is_empty());
    assert!(f.finish().is_empty());
}

#[test]
fn uas_2xx_retransmission_schedule() {
    use std::time::{Duration, Instant};
    use strowger_sip::dialog::{Retransmit2xx, Retransmit2xxAction};
    let t0 = Instant::now();
    let mut r = Retransmit2xx::new(t0, Duration::from_millis(500), Duration::from_secs(4));
    let mut sent = vec![];
    let end = loop {
        let at = r.poll_timeout().unwrap();
        match r.handle_timeout(at) {
            Retransmit2xxAction::Resend => sent.push((at - t0).as_millis()),
            Retransmit2xxAction::GiveUp => break (at - t0).as_millis(),
            Retransmit2xxAction::Wait => panic!("woken for nothing"),
        }
    };
    assert_eq!(
        sent,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(end, 32000);
    assert!(!r.is_active());
    // An ACK stops it.
    let mut r = Retransmit2xx::new(t0, Duration::from_millis(500), Duration::from_secs(4));
    assert_eq!(
        r.handle_timeout(t0 + Duration::from_millis(100)),
        Retransmit2xxAction::Wait
    );
    r.ack_received();
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(
        r.handle_timeout(t0 + Duration::from_secs(60)),
        Retransmit2xxAction::Wait
    );
}
