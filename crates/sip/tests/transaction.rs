//! Transaction layer tests in virtual time: a client layer and a server layer connected in
//! memory, with a filter that can drop datagrams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use strowger_sip::transaction::{
    cancel_for, Config, Output, TransactionLayer, TxError, TxId, TxKind, TxState,
};
use strowger_sip::{HeaderName, Headers, Host, Message, Method, Params, Request, Scheme, Uri};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

type DropFn = Box<dyn FnMut(Dir, &Message) -> bool>;

struct Net {
    t0: Instant,
    now: Instant,
    c: TransactionLayer,
    s: TransactionLayer,
    caddr: SocketAddr,
    saddr: SocketAddr,
    reliable: bool,
    drop: DropFn,
    /// Every datagram put on the wire: time since start, direction, message, dropped.
    wire: Vec<(Duration, Dir, Message, bool)>,
    /// Client events (outputs other than Transmit), with time.
    c_ev: Vec<(Duration, Output)>,
    /// Server events.
    s_ev: Vec<(Duration, Output)>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Net {
    fn new(reliable: bool) -> Net {
        Net::with_config(reliable, Config::default())
    }

    fn with_config(reliable: bool, config: Config) -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            c: TransactionLayer::new(config, 1),
            s: TransactionLayer::new(config, 2),
            caddr: addr("192.0.2.1:5060"),
            saddr: addr("192.0.2.2:5060"),
            reliable,
            drop: Box::new(|_, _| false),
            wire: Vec::new(),
            c_ev: Vec::new(),
            s_ev: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Delivers every queued output until both layers are quiet.
    fn pump(&mut self) {
        loop {
            let mut any = false;
            while let Some(o) = self.c.poll_output() {
                any = true;
                match o {
                    Output::Transmit(t) => {
                        assert_eq!(t.dest, self.saddr);
                        assert_eq!(t.reliable, self.reliable);
                        let dropped = (self.drop)(Dir::ToServer, &t.msg);
                        self.wire
                            .push((self.elapsed(), Dir::ToServer, t.msg.clone(), dropped));
                        if !dropped {
                            match wire(&t.msg) {
                                Message::Request(r) => self
                                    .s
                                    .handle_request(self.now, r, self.caddr, self.reliable)
                                    .unwrap(),
                                Message::Response(r) => self
                                    .s
                                    .handle_response(self.now, r, self.caddr, self.reliable)
                                    .unwrap(),
                            }
                        }
                    }
                    o => self.c_ev.push((self.elapsed(), o)),
                }
            }
            while let Some(o) = self.s.poll_output() {
                any = true;
                match o {
                    Output::Transmit(t) => {
                        assert_eq!(t.dest, self.caddr);
                        let dropped = (self.drop)(Dir::ToClient, &t.msg);
                        self.wire
                            .push((self.elapsed(), Dir::ToClient, t.msg.clone(), dropped));
                        if !dropped {
                            match wire(&t.msg) {
                                Message::Request(r) => self
                                    .c
                                    .handle_request(self.now, r, self.saddr, self.reliable)
                                    .unwrap(),
                                Message::Response(r) => self
                                    .c
                                    .handle_response(self.now, r, self.saddr, self.reliable)
                                    .unwrap(),
                            }
                        }
                    }
                    o => self.s_ev.push((self.elapsed(), o)),
                }
            }
            if !any {
                break;
            }
        }
    }

    /// Advances virtual time to `t` after start, firing timers on the way at their exact instants.
    fn run_until(&mut self, t: Duration) {
        let end = self.t0 + t;
        loop {
            self.pump();
            let next = [self.c.poll_timeout(), self.s.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= end => {
                    assert!(n >= self.now, "deadline in the past");
                    self.now = n;
                    self.c.handle_timeout(n);
                    self.s.handle_timeout(n);
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    fn send(&mut self, req: Request) -> TxId {
        let id = self
            .c
            .send_request(self.now, req, self.saddr, self.reliable)
            .unwrap();
        self.pump();
        id
    }

    /// Times (ms since start) at which messages matching `what` went `dir`.
    fn times(&self, dir: Dir, what: &str) -> Vec<u128> {
        self.wire
            .iter()
            .filter(|(_, d, m, _)| *d == dir && summary(m) == what)
            .map(|(t, ..)| t.as_millis())
            .collect()
    }

    /// The server transaction ids of requests passed up, in order.
    fn server_requests(&self) -> Vec<(TxId, Request)> {
        self.s_ev
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Request { id, req, .. } => Some((*id, req.clone())),
                _ => None,
            })
            .collect()
    }

    fn client_responses(&self) -> Vec<(TxId, u16)> {
        self.c_ev
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Response { id, resp } => Some((*id, resp.status)),
                _ => None,
            })
            .collect()
    }

    fn respond(&mut self, id: TxId, status: u16, reason: &str) {
        let req = self.s.request(id).unwrap().clone();
        let tag = if status > 100 { Some("srvtag") } else { None };
        let resp = req.response(status, reason, tag);
        self.s.respond(self.now, id, resp).unwrap();
        self.pump();
    }
}

/// Every delivered message goes through the wire format: serialized and parsed again.
fn wire(m: &Message) -> Message {
    let bytes = bytes::Bytes::from(m.to_bytes());
    Message::parse(bytes, &strowger_sip::Limits::default()).expect("reparse")
}

fn summary(m: &Message) -> String {
    match m {
        Message::Request(r) => r.method.as_str().to_owned(),
        Message::Response(r) => r.status.to_string(),
    }
}

fn events(ev: &[(Duration, Output)], f: impl Fn(&Output) -> bool) -> Vec<u128> {
    ev.iter()
        .filter(|(_, o)| f(o))
        .map(|(t, _)| t.as_millis())
        .collect()
}

fn uri(user: &str, host: &str) -> Uri {
    Uri {
        scheme: Scheme::Sip,
        user: Some(user.to_owned().into()),
        password: None,
        host: Host::Domain(host.to_owned().into()),
        port: None,
        params: Params::default(),
        headers: vec![],
    }
}

fn request(method: Method, branch: Option<&str>, seq: u32) -> Request {
    let mut h = Headers::default();
    let via = match branch {
        Some(b) => format!("SIP/2.0/UDP 192.0.2.1:5060;branch={b}"),
        None => "SIP/2.0/UDP 192.0.2.1:5060".to_owned(),
    };
    h.push(HeaderName::Via, via);
    h.push(HeaderName::MaxForwards, "70");
    h.push(HeaderName::From, "Alice <sip:alice@example.com>;tag=a1");
    h.push(HeaderName::To, "<sip:bob@example.com>");
    h.push(HeaderName::CallId, "call-1@192.0.2.1");
    h.push(HeaderName::CSeq, format!("{seq} {method}"));
    h.push(HeaderName::Contact, "<sip:alice@192.0.2.1:5060>");
    Request {
        method,
        uri: uri("bob", "example.com"),
        headers: h,
        body: Default::default(),
    }
}

fn invite(branch: &str) -> Request {
    request(Method::Invite, Some(branch), 1)
}

fn ms(v: &[u64]) -> Vec<u128> {
    v.iter().map(|&x| x as u128).collect()
}

fn drop_all_to_server() -> DropFn {
    Box::new(|d, _| d == Dir::ToServer)
}

// ---------------------------------------------------------------------------------------------
// Client timers
// ---------------------------------------------------------------------------------------------

#[test]
fn timer_a_doubles_and_timer_b_times_out() {
    let mut n = Net::new(false);
    n.drop = drop_all_to_server();
    let id = n.send(invite("z9hG4bKa"));
    assert_eq!(n.c.state(id), Some(TxState::Calling));
    n.run_until(Duration::from_secs(40));
    assert_eq!(
        n.times(Dir::ToServer, "INVITE"),
        ms(&[0, 500, 1500, 3500, 7500, 15500, 31500])
    );
    assert_eq!(
        events(
            &n.c_ev,
            |o| matches!(o, Output::Timeout { id: i } if *i == id)
        ),
        ms(&[32000])
    );
    assert!(matches!(n.c_ev.last(), Some((_, Output::Terminated { id: i })) if *i == id));
    assert!(n.c.is_empty());
    assert_eq!(n.c.poll_timeout(), None);
}

#[test]
fn timer_e_capped_at_t2_and_timer_f() {
    let mut n = Net::new(false);
    n.drop = drop_all_to_server();
    let id = n.send(request(Method::Options, Some("z9hG4bKo"), 1));
    assert_eq!(n.c.state(id), Some(TxState::Trying));
    n.run_until(Duration::from_secs(40));
    assert_eq!(
        n.times(Dir::ToServer, "OPTIONS"),
        ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
    );
    assert_eq!(
        events(&n.c_ev, |o| matches!(o, Output::Timeout { .. })),
        ms(&[32000])
    );
    assert!(n.c.is_empty());
}

#[test]
fn configurable_timers() {
    let cfg = Config {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        ..Config::default()
    };
    let mut n = Net::with_config(false, cfg);
    n.drop = drop_all_to_server();
    n.send(request(Method::Options, Some("z9hG4bKo"), 1));
    n.run_until(Duration::from_secs(10));
    assert_eq!(
        n.times(Dir::ToServer, "OPTIONS"),
        ms(&[
            0, 100, 300, 700, 1100, 1500, 1900, 2300, 2700, 3100, 3500, 3900, 4300, 4700, 5100,
            5500, 5900, 6300
        ])
    );
    assert_eq!(
        events(&n.c_ev, |o| matches!(o, Output::Timeout { .. })),
        ms(&[6400])
    );
}

#[test]
fn timer_e_every_t2_in_proceeding() {
    let mut n = Net::new(false);
    let id = n.send(request(Method::Register, Some("z9hG4bKr"), 1));
    let (sid, _) = n.server_requests()[0].clone();
    n.respond(sid, 100, "Trying");
    assert_eq!(n.c.state(id), Some(TxState::Proceeding));
    n.run_until(Duration::from_secs(10));
    // E keeps its schedule up to T2 then every T2; server absorbs each and resends 100.
    // E fires at T1 as scheduled, then every T2 (17.1.2.2); the server resends its 100.
    assert_eq!(
        n.times(Dir::ToServer, "REGISTER"),
        ms(&[0, 500, 4500, 8500])
    );
    assert_eq!(n.times(Dir::ToClient, "100"), ms(&[0, 500, 4500, 8500]));
    assert_eq!(n.server_requests().len(), 1);
    // §17.1.2.2: every provisional response in Proceeding is passed to the TU.
    assert_eq!(n.client_responses(), vec![(id, 100); 4]);
}

// ---------------------------------------------------------------------------------------------
// INVITE: non-2xx, ACK, Timer D / G / H / I
// ---------------------------------------------------------------------------------------------

#[test]
fn non_2xx_is_acked_by_the_transaction_and_absorbed() {
    let mut n = Net::new(false);
    let id = n.send(invite("z9hG4bKi1"));
    let (sid, _) = n.server_requests()[0].clone();
    n.run_until(Duration::from_millis(300));
    // 100 Trying sent by the server transaction after 200 ms.
    assert_eq!(n.times(Dir::ToClient, "100"), ms(&[200]));
    assert_eq!(n.c.state(id), Some(TxState::Proceeding));
    n.respond(sid, 486, "Busy Here");
    assert_eq!(n.c.state(id), Some(TxState::Completed));
    assert_eq!(n.s.state(sid), Some(TxState::Confirmed));
    let acks: Vec<_> = n
        .wire
        .iter()
        .filter(|(_, _, m, _)| summary(m) == "ACK")
        .collect();
    assert_eq!(acks.len(), 1);
    let Message::Request(ack) = &acks[0].2 else {
        panic!()
    };
    assert_eq!(ack.via_top().unwrap().branch().unwrap(), "z9hG4bKi1");
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.to().unwrap().tag().unwrap(), "srvtag");
    assert_eq!(ack.from().unwrap().tag().unwrap(), "a1");
    assert_eq!(ack.uri, uri("bob", "example.com"));
    // The ACK is not passed up at the server.
    assert!(!n.s_ev.iter().any(|(_, o)| matches!(o, Output::Ack { .. })));
    assert_eq!(n.client_responses(), vec![(id, 100), (id, 486)]);
    // No retransmission of the INVITE after the 100 (Timer A stopped).
    assert_eq!(n.times(Dir::ToServer, "INVITE"), ms(&[0]));
    n.run_until(Duration::from_secs(60));
    // Timer I = T4 after the ACK, Timer D = 32 s after the 486.
    assert_eq!(
        events(&n.s_ev, |o| matches!(o, Output::Terminated { .. })),
        ms(&[5300])
    );
    assert_eq!(
        events(&n.c_ev, |o| matches!(o, Output::Terminated { .. })),
        ms(&[32300])
    );
    assert!(n.c.is_empty() && n.s.is_empty());
}

#[test]
fn lost_ack_is_resent_on_final_retransmission_timer_g() {
    let mut n = Net::new(false);
    // Drop the first ACK.
    let mut acks = 0;
    n.drop = Box::new(move |_, m| {
        if summary(m) == "ACK" {
            acks += 1;
            acks == 1
        } else {
            false
        }
    });
    let id = n.send(invite("z9hG4bKi2"));
    let (sid, _) = n.server_requests()[0].clone();
    n.respond(sid, 603, "Decline");
    n.run_until(Duration::from_secs(60));
    assert_eq!(n.times(Dir::ToClient, "603"), ms(&[0, 500]));
    assert_eq!(n.times(Dir::ToServer, "ACK"), ms(&[0, 500]));
    // The retransmitted 603 is not passed up again.
    assert_eq!(n.client_responses(), vec![(id, 603)]);
    assert!(n.c.is_empty() && n.s.is_empty());
}

#[test]
fn timer_g_capped_and_timer_h_times_out() {
    let mut n = Net::new(false);
    n.drop = Box::new(|d, m| d == Dir::ToServer && summary(m) == "ACK");
    n.send(invite("z9hG4bKi3"));
    let (sid, _) = n.server_requests()[0].clone();
    n.respond(sid, 500, "Server Error");
    n.run_until(Duration::from_secs(60));
    assert_eq!(
        n.times(Dir::ToClient, "500"),
        ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
    );
    assert_eq!(
        events(
            &n.s_ev,
            |o| matches!(o, Output::Timeout { id } if *id == sid)
        ),
        ms(&[32000])
    );
    assert!(n.s.is_empty());
}

#[test]
fn invite_retransmission_before_answer_gets_the_provisional() {
    let mut n = Net::new(false);
    // Lose every server->client message until 1 s.
    n.drop = Box::new(|d, _| d == Dir::ToClient);
    n.send(invite("z9hG4bKi4"));
    let (sid, _) = n.server_requests()[0].clone();
    n.respond(sid, 180, "Ringing");
    n.run_until(Duration::from_millis(1600));
    // INVITE retransmitted at 0.5 and 1.5: each answered with the 180, none passed up.
    assert_eq!(n.times(Dir::ToClient, "180"), ms(&[0, 500, 1500]));
    assert_eq!(n.server_requests().len(), 1);
    // The TU answered before 200 ms: no 100 Trying.
    assert!(n.times(Dir::ToClient, "100").is_empty());
}

#[test]
fn trying_immediately_or_never() {
    for (delay, expect) in [(Some(Duration::ZERO), ms(&[0])), (None, vec![])] {
        let cfg = Config {
            trying_delay: delay,
            ..Config::default()
        };
        let mut n = Net::with_config(false, cfg);
        n.send(invite("z9hG4bKt"));
        n.run_until(Duration::from_millis(400));
        assert_eq!(n.times(Dir::ToClient, "100"), expect);
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 6026: Accepted
// ---------------------------------------------------------------------------------------------

#[test]
fn accepted_passes_every_2xx_up_and_server_absorbs() {
    let mut n = Net::new(false);
    let id = n.send(invite("z9hG4bKacc"));
    let (sid, req) = n.server_requests()[0].clone();
    n.respond(sid, 200, "OK");
    assert_eq!(n.c.state(id), Some(TxState::Accepted));
    assert_eq!(n.s.state(sid), Some(TxState::Accepted));
    // The TU retransmits its 2xx through the transaction (13.3.1.4): passed up again.
    n.run_until(Duration::from_millis(500));
    let ok = req.response(200, "OK", Some("srvtag"));
    n.s.respond(n.now, sid, ok.clone()).unwrap();
    n.pump();
    // A 2xx from another fork (different To tag) is passed up too.
    n.run_until(Duration::from_millis(700));
    let fork = req.response(200, "OK", Some("othertag"));
    n.s.respond(n.now, sid, fork).unwrap();
    n.pump();
    assert_eq!(n.client_responses(), vec![(id, 200), (id, 200), (id, 200)]);
    // A retransmitted INVITE is absorbed in Accepted: not passed up, no response resent.
    let before = n.wire.len();
    n.s.handle_request(n.now, req.clone(), n.caddr, false)
        .unwrap();
    n.pump();
    assert_eq!(n.wire.len(), before);
    assert_eq!(n.server_requests().len(), 1);
    // Non-2xx is refused in Accepted.
    assert_eq!(
        n.s.respond(n.now, sid, req.response(500, "x", None)),
        Err(TxError::InvalidState)
    );
    // The ACK for the 2xx (its own branch) goes to the TU, outside the transaction.
    let mut ack = request(Method::Ack, Some("z9hG4bKack2xx"), 1);
    ack.headers
        .set(HeaderName::To, "<sip:bob@example.com>;tag=srvtag");
    n.c.send_stateless(Message::Request(ack), n.saddr, false);
    n.pump();
    assert!(n
        .s_ev
        .iter()
        .any(|(_, o)| matches!(o, Output::Ack { id: None, .. })));
    // ACK with the INVITE's branch while Accepted: passed up with the transaction's id.
    let mut ack = request(Method::Ack, Some("z9hG4bKacc"), 1);
    ack.headers
        .set(HeaderName::To, "<sip:bob@example.com>;tag=srvtag");
    n.s.handle_request(n.now, ack, n.caddr, false).unwrap();
    n.pump();
    assert!(n
        .s_ev
        .iter()
        .any(|(_, o)| matches!(o, Output::Ack { id: Some(i), .. } if *i == sid)));
    // Timers L and M: 64*T1 after the first 2xx.
    n.run_until(Duration::from_secs(40));
    assert_eq!(
        events(&n.c_ev, |o| matches!(o, Output::Terminated { .. })),
        ms(&[32000])
    );
    assert_eq!(
        events(&n.s_ev, |o| matches!(o, Output::Terminated { .. })),
        ms(&[32000])
    );
    assert!(n.c.is_empty() && n.s.is_empty());
    // After M, a late 2xx is a stray response (the TU may still ACK it).
    n.s.send_stateless(Message::Response(ok), n.caddr, false);
    n.pump();
    assert!(matches!(
        n.c_ev.last(),
        Some((_, Output::StrayResponse { .. }))
    ));
    assert!(!n
        .c_ev
        .iter()
        .any(|(_, o)| matches!(o, Output::Timeout { .. })));
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE server: absorption, Timer J / K
// ---------------------------------------------------------------------------------------------

#[test]
fn request_retransmission_absorbed_and_last_response_resent() {
    let mut n = Net::new(false);
    // Drop the first 200.
    let mut oks = 0;
    n.drop = Box::new(move |_, m| {
        if summary(m) == "200" {
            oks += 1;
            oks == 1
        } else {
            false
        }
    });
    let id = n.send(request(Method::Bye, Some("z9hG4bKbye"), 2));
    // Retransmission at 0.5 s while the TU has not answered: absorbed silently.
    n.run_until(Duration::from_millis(600));
    assert_eq!(n.server_requests().len(), 1);
    assert!(n.times(Dir::ToClient, "200").is_empty());
    let (sid, _) = n.server_requests()[0].clone();
    assert_eq!(n.s.state(sid), Some(TxState::Trying));
    n.respond(sid, 200, "OK"); // lost
    assert_eq!(n.s.state(sid), Some(TxState::Completed));
    // Client retransmits at 1.5 s; the server resends the 200.
    n.run_until(Duration::from_secs(2));
    assert_eq!(n.times(Dir::ToServer, "BYE"), ms(&[0, 500, 1500]));
    assert_eq!(n.times(Dir::ToClient, "200"), ms(&[600, 1500]));
    assert_eq!(n.server_requests().len(), 1);
    assert_eq!(n.client_responses(), vec![(id, 200)]);
    assert_eq!(n.c.state(id), Some(TxState::Completed));
    assert_eq!(
        n.s.respond(
            n.now,
            sid,
            n.s.request(sid).unwrap().response(200, "OK", None)
        ),
        Err(TxError::InvalidState)
    );
    n.run_until(Duration::from_secs(60));
    // Timer K = T4 after the 200 arrived; Timer J = 64*T1 after the 200 was sent.
    assert_eq!(
        events(&n.c_ev, |o| matches!(o, Output::Terminated { .. })),
        ms(&[6500])
    );
    assert_eq!(
        events(&n.s_ev, |o| matches!(o, Output::Terminated { .. })),
        ms(&[32600])
    );
    assert!(n.c.is_empty() && n.s.is_empty());
}

#[test]
fn non_invite_provisional_then_final() {
    let mut n = Net::new(false);
    let id = n.send(request(Method::Message, Some("z9hG4bKm"), 5));
    let (sid, _) = n.server_requests()[0].clone();
    n.respond(sid, 100, "Trying");
    assert_eq!(n.s.state(sid), Some(TxState::Proceeding));
    n.run_until(Duration::from_millis(600));
    // Retransmission in Proceeding gets the 100 again.
    assert_eq!(n.times(Dir::ToClient, "100"), ms(&[0, 500]));
    n.respond(sid, 202, "Accepted");
    assert_eq!(n.client_responses(), vec![(id, 100), (id, 100), (id, 202)]);
}

// ---------------------------------------------------------------------------------------------
// Reliable transports
// ---------------------------------------------------------------------------------------------

#[test]
fn reliable_transport_sends_nothing_twice() {
    let mut n = Net::new(true);
    n.drop = drop_all_to_server();
    n.send(invite("z9hG4bKr1"));
    n.send(request(Method::Options, Some("z9hG4bKr2"), 2));
    n.run_until(Duration::from_secs(40));
    assert_eq!(n.times(Dir::ToServer, "INVITE"), ms(&[0]));
    assert_eq!(n.times(Dir::ToServer, "OPTIONS"), ms(&[0]));
    assert_eq!(
        events(&n.c_ev, |o| matches!(o, Output::Timeout { .. })),
        ms(&[32000, 32000])
    );
    assert!(n.c.is_empty());
}

#[test]
fn reliable_transport_zero_linger() {
    let mut n = Net::new(true);
    let inv = n.send(invite("z9hG4bKr3"));
    let opt = n.send(request(Method::Options, Some("z9hG4bKr4"), 2));
    let reqs = n.server_requests();
    assert_eq!(reqs.len(), 2);
    n.respond(reqs[0].0, 486, "Busy Here");
    n.respond(reqs[1].0, 200, "OK");
    // D, I, J, K are zero: everything ends at once.
    assert!(n.c.is_empty(), "{:?}", n.c.state(inv));
    assert!(n.s.is_empty());
    assert_eq!(n.c.state(opt), None);
    n.run_until(Duration::from_secs(40));
    assert_eq!(n.times(Dir::ToClient, "486"), ms(&[0]));
    assert_eq!(n.times(Dir::ToServer, "ACK"), ms(&[0]));
    assert_eq!(n.times(Dir::ToClient, "200"), ms(&[0]));
    assert_eq!(n.wire.len(), 5);
}

// ---------------------------------------------------------------------------------------------
// CANCEL
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_is_built_matched_and_its_own_transaction() {
    let mut n = Net::new(false);
    let id = n.send(invite("z9hG4bKc1"));
    let (sid, _) = n.server_requests()[0].clone();
    n.respond(sid, 180, "Ringing");
    let cancel = n.c.cancel_request(id).unwrap();
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.via_top().unwrap().branch().unwrap(), "z9hG4bKc1");
    assert_eq!(cancel.cseq().unwrap().seq, 1);
    assert_eq!(cancel.cseq().unwrap().method, Method::Cancel);
    assert_eq!(cancel.to().unwrap().tag(), None);
    assert_eq!(cancel.call_id().unwrap(), "call-1@192.0.2.1");
    assert_eq!(cancel.uri, uri("bob", "example.com"));
    assert_eq!(cancel, cancel_for(n.c.request(id).unwrap()).unwrap());
    let cid = n.send(cancel);
    assert_ne!(cid, id);
    let reqs = n.server_requests();
    assert_eq!(reqs.len(), 2);
    let (scid, creq) = reqs[1].clone();
    assert_ne!(scid, sid);
    assert_eq!(n.s.kind(scid), Some(TxKind::NonInviteServer));
    assert_eq!(n.s.find_invite_for_cancel(&creq), Some(sid));
    n.respond(scid, 200, "OK");
    n.respond(sid, 487, "Request Terminated");
    assert_eq!(n.client_responses(), vec![(id, 180), (cid, 200), (id, 487)]);
    assert_eq!(n.times(Dir::ToServer, "ACK").len(), 1);
    n.run_until(Duration::from_secs(60));
    assert!(n.c.is_empty() && n.s.is_empty());
    // Gone: nothing to cancel any more.
    assert_eq!(n.s.find_invite_for_cancel(&creq), None);
    assert_eq!(n.c.cancel_request(id), Err(TxError::UnknownTransaction));
}

#[test]
fn cancel_of_a_non_invite_does_not_match() {
    let mut n = Net::new(false);
    n.send(request(Method::Options, Some("z9hG4bKc2"), 1));
    let cancel = request(Method::Cancel, Some("z9hG4bKc2"), 1);
    assert_eq!(n.s.find_invite_for_cancel(&cancel), None);
}

// ---------------------------------------------------------------------------------------------
// RFC 2543 fallback matching
// ---------------------------------------------------------------------------------------------

fn server_only() -> (TransactionLayer, Instant, SocketAddr) {
    (
        TransactionLayer::new(Config::default(), 7),
        Instant::now(),
        addr("198.51.100.9:5060"),
    )
}

fn drain(l: &mut TransactionLayer) -> Vec<Output> {
    std::iter::from_fn(|| l.poll_output()).collect()
}

#[test]
fn rfc2543_fallback_matching() {
    let (mut s, t0, from) = server_only();
    let old = request(Method::Invite, Some("1234"), 1); // branch without the magic cookie
    s.handle_request(t0, old.clone(), from, false).unwrap();
    let out = drain(&mut s);
    let Some(Output::Request { id, .. }) = out.first() else {
        panic!("{out:?}")
    };
    let id = *id;
    // The same request again is a retransmission.
    s.handle_request(t0, old.clone(), from, false).unwrap();
    assert!(drain(&mut s).is_empty());
    // No branch at all: also RFC 2543 matching, and the Via differs: a new transaction.
    let nobranch = request(Method::Invite, None, 1);
    s.handle_request(t0, nobranch.clone(), from, false).unwrap();
    assert!(matches!(
        drain(&mut s).first(),
        Some(Output::Request { .. })
    ));
    // A different CSeq: another transaction.
    let other = request(Method::Invite, Some("1234"), 2);
    s.handle_request(t0, other, from, false).unwrap();
    assert!(matches!(
        drain(&mut s).first(),
        Some(Output::Request { .. })
    ));
    assert_eq!(s.len(), 3);
    // CANCEL matches the INVITE by the RFC 2543 rules.
    let cancel = request(Method::Cancel, Some("1234"), 1);
    assert_eq!(s.find_invite_for_cancel(&cancel), Some(id));
    // Reject; the retransmission gets the 486 again.
    let resp = old.response(486, "Busy Here", Some("t9"));
    s.respond(t0, id, resp).unwrap();
    drain(&mut s);
    s.handle_request(t0, old.clone(), from, false).unwrap();
    let out = drain(&mut s);
    assert!(
        matches!(&out[..], [Output::Transmit(t)] if summary(&t.msg) == "486"),
        "{out:?}"
    );
    // An ACK with the wrong To tag does not match (goes to the TU as a stray ACK).
    let mut ack = request(Method::Ack, Some("1234"), 1);
    ack.headers
        .set(HeaderName::To, "<sip:bob@example.com>;tag=zz");
    s.handle_request(t0, ack.clone(), from, false).unwrap();
    assert!(matches!(
        drain(&mut s).first(),
        Some(Output::Ack { id: None, .. })
    ));
    assert_eq!(s.state(id), Some(TxState::Completed));
    // The ACK with our To tag matches: Confirmed, absorbed.
    ack.headers
        .set(HeaderName::To, "<sip:bob@example.com>;tag=t9");
    s.handle_request(t0, ack, from, false).unwrap();
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.state(id), Some(TxState::Confirmed));
}

// ---------------------------------------------------------------------------------------------
// Misc: stray responses, transport errors, limits, errors, no leak
// ---------------------------------------------------------------------------------------------

#[test]
fn stray_response_and_transport_error() {
    let (mut l, t0, peer) = server_only();
    let req = invite("z9hG4bKs1");
    l.handle_response(t0, req.response(200, "OK", Some("x")), peer, false)
        .unwrap();
    assert!(matches!(drain(&mut l)[..], [Output::StrayResponse { .. }]));
    let id = l.send_request(t0, req, peer, false).unwrap();
    drain(&mut l);
    l.transport_error(id);
    let out = drain(&mut l);
    assert!(
        matches!(out[..], [Output::TransportError { id: a }, Output::Terminated { id: b }] if a == id && b == id)
    );
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn send_request_errors() {
    let (mut l, t0, peer) = server_only();
    assert_eq!(
        l.send_request(t0, request(Method::Ack, Some("z9hG4bKe"), 1), peer, false),
        Err(TxError::AckNotTransaction)
    );
    assert_eq!(
        l.send_request(t0, request(Method::Options, None, 1), peer, false),
        Err(TxError::NoBranch)
    );
    l.send_request(t0, invite("z9hG4bKd"), peer, false).unwrap();
    assert_eq!(
        l.send_request(t0, invite("z9hG4bKd"), peer, false),
        Err(TxError::Duplicate)
    );
    assert_eq!(
        l.respond(t0, TxId(999), invite("z9hG4bKd").response(200, "OK", None)),
        Err(TxError::UnknownTransaction)
    );
    let b1 = l.new_branch();
    let b2 = l.new_branch();
    assert!(b1.starts_with("z9hG4bK") && b1 != b2);
}

#[test]
fn max_transactions_answers_503() {
    let cfg = Config {
        max_transactions: 1,
        ..Config::default()
    };
    let mut l = TransactionLayer::new(cfg, 3);
    let (t0, peer) = (Instant::now(), addr("198.51.100.1:5060"));
    l.handle_request(
        t0,
        request(Method::Options, Some("z9hG4bK1"), 1),
        peer,
        false,
    )
    .unwrap();
    drain(&mut l);
    l.handle_request(
        t0,
        request(Method::Options, Some("z9hG4bK2"), 2),
        peer,
        false,
    )
    .unwrap();
    let out = drain(&mut l);
    assert!(
        matches!(&out[..], [Output::Transmit(t)] if summary(&t.msg) == "503" && t.tx.is_none()),
        "{out:?}"
    );
    assert_eq!(l.len(), 1);
    assert_eq!(
        l.send_request(t0, invite("z9hG4bKx"), peer, false),
        Err(TxError::Full)
    );
}

#[test]
fn same_branch_different_sent_by_are_different_transactions() {
    let (mut s, t0, from) = server_only();
    let a = request(Method::Options, Some("z9hG4bKsame"), 1);
    let mut b = a.clone();
    b.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKsame",
    );
    s.handle_request(t0, a, from, false).unwrap();
    s.handle_request(t0, b, from, false).unwrap();
    let n = drain(&mut s)
        .iter()
        .filter(|o| matches!(o, Output::Request { .. }))
        .count();
    assert_eq!(n, 2);
}

#[test]
fn many_transactions_leave_nothing_behind() {
    let mut n = Net::new(false);
    // Lose 30% of datagrams deterministically.
    let mut k = 0u32;
    n.drop = Box::new(move |_, _| {
        k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (k >> 16) % 10 < 3
    });
    for i in 0..50u32 {
        let m = if i % 2 == 0 {
            Method::Invite
        } else {
            Method::Options
        };
        n.send(request(m, Some(&format!("z9hG4bKleak{i}")), i + 1));
    }
    // The server TU answers every new request within a second.
    let mut answered = std::collections::HashSet::new();
    for sec in 1..=120 {
        n.run_until(Duration::from_secs(sec));
        for (sid, req) in n.server_requests() {
            let status = if req.method == Method::Invite {
                480
            } else {
                200
            };
            if answered.insert(sid) {
                n.respond(sid, status, "x");
            }
        }
    }
    assert!(n.c.is_empty(), "client left {}", n.c.len());
    assert!(n.s.is_empty(), "server left {}", n.s.len());
    assert_eq!(n.c.poll_timeout(), None);
    assert_eq!(n.s.poll_timeout(), None);
    // Every client transaction ended exactly once.
    let ended = n
        .c_ev
        .iter()
        .filter(|(_, o)| matches!(o, Output::Terminated { .. }))
        .count();
    assert_eq!(ended, 50);
}

#[test]
fn malformed_requests_are_refused_and_poll_timeout_is_exact() {
    let (mut s, t0, from) = server_only();
    let mut bad = request(Method::Options, Some("z9hG4bKbad"), 1);
    bad.headers.remove(&HeaderName::CallId);
    assert!(matches!(
        s.handle_request(t0, bad, from, false),
        Err(TxError::Malformed(_))
    ));
    assert!(s.is_empty() && s.poll_output().is_none());
    // Deadlines: first retransmission at T1; a server INVITE schedules its 100 at 200 ms.
    s.send_request(t0, invite("z9hG4bKpt"), from, false)
        .unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    s.handle_request(t0, invite("z9hG4bKpt2"), from, false)
        .unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(200)));
    // Nothing fires early.
    drain(&mut s);
    s.handle_timeout(t0 + Duration::from_millis(199));
    assert!(s.poll_output().is_none());
}

#[test]
fn stateless_answers_keep_no_transaction() {
    let now = Instant::now();
    let mut s = TransactionLayer::new(Config::default(), 7);
    let from = addr("192.0.2.1:5060");
    let reg = request(Method::Register, Some("z9hG4bK-st1"), 1);
    let new_tx = |s: &mut TransactionLayer| -> TxId {
        let mut id = None;
        while let Some(o) = s.poll_output() {
            if let Output::Request { id: i, .. } = o {
                id = Some(i);
            }
        }
        id.expect("a new server transaction")
    };
    s.handle_request(now, reg.clone(), from, false).unwrap();
    let id = new_tx(&mut s);
    // A 2xx (or a provisional) cannot be sent statelessly.
    let ok = reg.response(200, "OK", Some("t"));
    assert_eq!(
        s.respond_statelessly(now, id, ok),
        Err(TxError::InvalidState)
    );
    s.respond_statelessly(now, id, reg.response(401, "Unauthorized", Some("t")))
        .unwrap();
    let out: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(
        matches!(&out[0], Output::Transmit(t) if t.dest == from && matches!(&t.msg, Message::Response(r) if r.status == 401))
    );
    assert!(matches!(out[1], Output::Terminated { id: t } if t == id));
    assert!(s.is_empty(), "nothing kept");
    assert_eq!(s.poll_timeout(), None, "no timer left");
    // A retransmission of the request is a new request again (answered the same way by the TU).
    s.handle_request(now + Duration::from_millis(500), reg, from, false)
        .unwrap();
    let again = new_tx(&mut s);
    assert_ne!(again, id);
}

#[test]
fn requests_ending_calls_get_room_beyond_the_limit_and_lingering_state_is_slim() {
    let cfg = Config {
        max_transactions: 4,
        ..Config::default()
    };
    let mut l = TransactionLayer::new(cfg, 3);
    let (t0, peer) = (Instant::now(), addr("198.51.100.1:5060"));
    let mut ids = Vec::new();
    for i in 0..4 {
        l.handle_request(
            t0,
            request(Method::Options, Some(&format!("z9hG4bKf{i}")), 1),
            peer,
            false,
        )
        .unwrap();
        for o in drain(&mut l) {
            if let Output::Request { id, .. } = o {
                ids.push(id);
            }
        }
    }
    assert_eq!(l.len(), 4);
    // A new request is refused...
    l.handle_request(
        t0,
        request(Method::Options, Some("z9hG4bKnew"), 1),
        peer,
        false,
    )
    .unwrap();
    assert!(matches!(&drain(&mut l)[..], [Output::Transmit(t)] if summary(&t.msg) == "503"));
    assert_eq!(l.refused(), 1);
    // ...but a BYE within a dialog (To tag) still gets a transaction.
    let mut bye = request(Method::Bye, Some("z9hG4bKbye"), 2);
    bye.headers
        .set(HeaderName::To, "<sip:bob@example.com>;tag=b1");
    l.handle_request(t0, bye, peer, false).unwrap();
    assert!(drain(&mut l)
        .iter()
        .any(|o| matches!(o, Output::Request { req, .. } if req.method == Method::Bye)));
    assert_eq!(l.len(), 5);
    // Answered, a transaction lingers (Timer J) with its request stripped to the start line.
    let id = ids[0];
    let req = l.request(id).unwrap().clone();
    assert!(!req.headers.is_empty());
    l.respond(t0, id, req.response(200, "OK", Some("t")))
        .unwrap();
    drain(&mut l);
    assert_eq!(l.state(id), Some(TxState::Completed));
    let kept = l.request(id).unwrap();
    assert!(kept.headers.is_empty() && kept.body.is_empty());
    assert_eq!(kept.method, Method::Options);
}
