//! SIP calls through the real binary, with two phones written here on top of `strowger-sip`:
//! a call whose media never flows is ended by the relay's inactivity timeout (BYE to both sides
//! with a Reason), and the counters say so.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strowger_sip::digest::{respond, Challenge};
use strowger_sip::{HeaderName, Limits, Message, Method, Request, Response};

struct Server {
    child: Child,
    dir: std::path::PathBuf,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(sip_port: u16, sets: &[&str]) -> Server {
    let dir = std::env::temp_dir().join(format!(
        "strowger-sipcall-{}-{}",
        std::process::id(),
        sip_port
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_strowger");
    for u in ["alice", "bob"] {
        let st = Command::new(bin)
            .args(["user", "add", u, "--password", "secret", "--set"])
            .arg(format!("data_dir={}", dir.display()))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "user add {u}");
    }
    let http = format!("127.0.0.1:{}", free_tcp());
    let relay = 20_000 + (std::process::id() % 2000) as u16 * 10;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .args(["--set", &format!("data_dir={}", dir.display())])
        .args(["--set", &format!("sip.listen=127.0.0.1:{sip_port}")])
        .args(["--set", &format!("http.listen={http}")])
        .args(["--set", &format!("rtc.listen=127.0.0.1:{}", free_udp())])
        .args(["--set", &format!("relay.port_min={relay}")])
        .args(["--set", &format!("relay.port_max={}", relay + 9)])
        .args(["--set", "log=warn"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let child = cmd
        .env("STROWGER_API_KEY", "it")
        .env("STROWGER_API_SECRET", "0123456789abcdef0123456789abcdef")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&http).is_err() {
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, dir, http }
}

/// A minimal phone: one UDP socket, messages built as text.
struct Phone {
    sock: UdpSocket,
    user: &'static str,
    server: SocketAddr,
    tag: String,
}

impl Phone {
    fn new(user: &'static str, server: SocketAddr) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Phone {
            sock,
            user,
            server,
            tag: format!("{user}-tag"),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn send(&self, text: &str, to: SocketAddr) {
        let text = text.replace('\n', "\r\n");
        self.sock.send_to(text.as_bytes(), to).unwrap();
    }

    fn send_msg(&self, m: Message) {
        self.sock.send_to(&m.to_bytes(), self.server).unwrap();
    }

    /// The next message (skipping 100 Trying), within `secs`.
    fn recv(&self, secs: u64) -> Message {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = vec![0u8; 65536];
        loop {
            assert!(
                Instant::now() < deadline,
                "{}: nothing received in {secs} s",
                self.user
            );
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let m = Message::parse(Bytes::copy_from_slice(&buf[..n]), &Limits::default())
                .expect("the server sends valid SIP");
            if matches!(&m, Message::Response(r) if r.status == 100) {
                continue;
            }
            return m;
        }
    }

    fn recv_response(&self, secs: u64) -> Response {
        match self.recv(secs) {
            Message::Response(r) => r,
            Message::Request(r) => panic!("{}: expected a response, got {}", self.user, r.method),
        }
    }

    fn recv_request(&self, secs: u64) -> Request {
        match self.recv(secs) {
            Message::Request(r) => r,
            Message::Response(r) => panic!("{}: expected a request, got {}", self.user, r.status),
        }
    }

    fn auth(&self, resp: &Response, header: HeaderName, method: &str, uri: &str) -> String {
        let ch = Challenge::parse(resp.headers.get(&header).expect("challenge")).unwrap();
        respond(&ch, method, uri, self.user, "secret", "c0ffee", 1)
            .unwrap()
            .to_string()
    }

    fn register(&self) {
        let uri = format!("sip:{}", self.server);
        let req = |cseq: u32, auth: &str| {
            format!(
                "REGISTER {uri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-reg{cseq};rport\nFrom: <sip:{u}@{s}>;tag={t}\nTo: <sip:{u}@{s}>\nCall-ID: reg-{u}\nCSeq: {cseq} REGISTER\nContact: <sip:{u}@{a}>\nExpires: 300\nMax-Forwards: 70\n{auth}Content-Length: 0\n\n",
                a = self.addr(),
                u = self.user,
                s = self.server.ip(),
                t = self.tag,
            )
        };
        self.send(&req(1, ""), self.server);
        let r = self.recv_response(5);
        assert_eq!(r.status, 401);
        let a = self.auth(&r, HeaderName::WwwAuthenticate, "REGISTER", &uri);
        self.send(&req(2, &format!("Authorization: {a}\n")), self.server);
        assert_eq!(self.recv_response(5).status, 200);
    }
}

fn sdp(port: u16) -> String {
    format!("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\na=sendrecv\n")
}

fn metrics(http: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(-1)
}

#[test]
fn a_call_without_media_is_ended_by_the_relay_timeout() {
    let sip_port = free_udp();
    let srv = start(
        sip_port,
        &["relay.rtp_timeout_secs=2", "relay.hold_timeout_secs=2"],
    );
    let server: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let alice = Phone::new("alice", server);
    let bob = Phone::new("bob", server);
    bob.register();

    // alice calls bob: 407, ACK, INVITE with credentials.
    let ruri = format!("sip:bob@{}", server.ip());
    let body = sdp(alice.addr().port() + 2);
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-inv{cseq};rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: <sip:bob@{s}>\nCall-ID: call-1\nCSeq: {cseq} INVITE\nContact: <sip:alice@{a}>\nMax-Forwards: 70\n{auth}Content-Type: application/sdp\nContent-Length: {len}\n\n{body}",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
            len = body.replace('\n', "\r\n").len(),
        )
    };
    alice.send(&invite(1, ""), server);
    let r = alice.recv_response(5);
    assert_eq!(r.status, 407);
    alice.send(
        &format!(
            "ACK {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-inv1;rport\nFrom: <sip:alice@{s}>;tag={t}\n{to}\nCall-ID: call-1\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
            to = format_args!("To: {}", r.headers.get(&HeaderName::To).unwrap()),
        ),
        server,
    );
    let a = alice.auth(&r, HeaderName::ProxyAuthenticate, "INVITE", &ruri);
    alice.send(&invite(2, &format!("Proxy-Authorization: {a}\n")), server);

    // bob's phone rings, answers.
    let inv = bob.recv_request(5);
    assert_eq!(inv.method, Method::Invite);
    let offer = String::from_utf8_lossy(&inv.body).to_string();
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(
        !offer.contains(&format!("m=audio {} ", alice.addr().port() + 2)),
        "bob must see the relay's port, not alice's: {offer}"
    );
    let mut ok = inv.response(200, "OK", Some("bob-tag"));
    ok.headers
        .push(HeaderName::Contact, format!("<sip:bob@{}>", bob.addr()));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(sdp(bob.addr().port() + 2).replace('\n', "\r\n"));
    bob.send_msg(Message::Response(ok));

    // alice gets the 200 and ACKs it.
    let mut resp = alice.recv_response(5);
    while resp.status < 200 {
        resp = alice.recv_response(5);
    }
    assert_eq!(resp.status, 200);
    let to = resp.headers.get(&HeaderName::To).unwrap().to_string();
    alice.send(
        &format!(
            "ACK {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-ack2;rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: {to}\nCall-ID: call-1\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
        ),
        server,
    );
    // bob gets the server's ACK.
    assert_eq!(bob.recv_request(5).method, Method::Ack);

    // DTMF by SIP INFO (application/dtmf-relay) is relayed within the call, and so is its answer.
    // (`send` turns every \n into CRLF, the body's too.)
    let dtmf = "Signal=5\nDuration=160\n";
    alice.send(
        &format!(
            "INFO {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-info3;rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: {to}\nCall-ID: call-1\nCSeq: 3 INFO\nMax-Forwards: 70\nContent-Type: application/dtmf-relay\nContent-Length: {len}\n\n{dtmf}",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
            len = dtmf.len() + 2,
        ),
        server,
    );
    let info = bob.recv_request(5);
    assert_eq!(info.method, Method::Info);
    assert_eq!(info.content_type(), Some("application/dtmf-relay"));
    assert_eq!(&info.body[..], b"Signal=5\r\nDuration=160\r\n");
    bob.send_msg(Message::Response(info.response(200, "OK", None)));
    let r = alice.recv_response(5);
    assert_eq!((r.status, r.cseq().unwrap().method), (200, Method::Info));
    let m = metrics(&srv.http);
    assert_eq!(metric(&m, "strowger_sip_calls_active "), 1, "{m}");

    // No RTP at all: after the 2 s relay timeout both sides get BYE with a Reason.
    for phone in [&alice, &bob] {
        let bye = phone.recv_request(10);
        assert_eq!(bye.method, Method::Bye, "{}", phone.user);
        let reason = bye
            .headers
            .get(&HeaderName::Other("Reason".into()))
            .map(|r| r.to_string())
            .unwrap_or_default();
        assert!(reason.contains("RTP timeout"), "{}: {reason}", phone.user);
        phone.send_msg(Message::Response(bye.response(200, "OK", None)));
    }
    std::thread::sleep(Duration::from_millis(300));
    let m = metrics(&srv.http);
    assert_eq!(metric(&m, "strowger_sip_calls_active "), 0, "{m}");
    assert_eq!(metric(&m, "strowger_relay_timeouts_total "), 1, "{m}");
    assert_eq!(metric(&m, "strowger_sip_calls_answered_total "), 1, "{m}");
}

impl Phone {
    /// Sends a request and returns the first answer, or None within `ms` milliseconds.
    fn ask(&self, text: &str, ms: u64) -> Option<Response> {
        self.send(text, self.server);
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if let Ok(Message::Response(r)) =
                    Message::parse(Bytes::copy_from_slice(&buf[..n]), &Limits::default())
                {
                    if r.status != 100 {
                        return Some(r);
                    }
                }
            }
        }
        None
    }

    fn options(&self, n: u32) -> String {
        format!(
            "OPTIONS sip:{s} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-opt{n};rport\nFrom: <sip:{u}@{s}>;tag={t}\nTo: <sip:{s}>\nCall-ID: opt-{n}-{u}\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
            a = self.addr(),
            s = self.server,
            u = self.user,
            t = self.tag,
        )
    }
}

#[test]
fn repeated_wrong_passwords_ban_the_source_and_floods_are_limited() {
    let sip_port = free_udp();
    let srv = start(
        sip_port,
        &[
            "sip.ban_after_failures=3",
            "sip.ban_secs=60",
            "sip.rate_per_sec=5",
            "sip.rate_burst=10",
        ],
    );
    let server: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let p = Phone::new("alice", server);
    // A flood of OPTIONS: the burst is answered, the rest dropped silently.
    let mut answered = 0;
    for i in 0..40 {
        p.send(&p.options(i), server);
    }
    let mut buf = vec![0u8; 65536];
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if p.sock.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    assert!(
        (10..=20).contains(&answered),
        "burst 10 at 5/s: {answered} of 40 answered"
    );
    let m = metrics(&srv.http);
    assert!(metric(&m, "strowger_sip_rate_limited_total ") >= 20, "{m}");
    // Let the bucket refill.
    std::thread::sleep(Duration::from_secs(3));

    // Wrong passwords: challenged, then refused; the third failure bans the IP.
    let uri = format!("sip:{server}");
    for i in 0..3u32 {
        let reg = |cseq: u32, auth: &str| {
            format!(
                "REGISTER {uri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-bad{i}-{cseq};rport\nFrom: <sip:alice@{s}>;tag=x{i}\nTo: <sip:alice@{s}>\nCall-ID: bad-{i}\nCSeq: {cseq} REGISTER\nContact: <sip:alice@{a}>\nMax-Forwards: 70\n{auth}Content-Length: 0\n\n",
                a = p.addr(),
                s = server.ip(),
            )
        };
        let r = p.ask(&reg(1, ""), 3000).expect("challenge");
        assert_eq!(r.status, 401);
        let ch = Challenge::parse(r.headers.get(&HeaderName::WwwAuthenticate).unwrap()).unwrap();
        let creds = respond(&ch, "REGISTER", &uri, "alice", "wrong", "abc", 1).unwrap();
        let r = p
            .ask(&reg(2, &format!("Authorization: {creds}\n")), 3000)
            .expect("an answer to a wrong password");
        assert_eq!(r.status, 403, "attempt {i}");
    }
    // Banned: even a harmless OPTIONS gets no answer now.
    assert!(
        p.ask(&p.options(99), 1000).is_none(),
        "a banned IP is ignored"
    );
    let m = metrics(&srv.http);
    assert_eq!(metric(&m, "strowger_sip_bans_total "), 1, "{m}");
    assert_eq!(metric(&m, "strowger_sip_auth_failures_total "), 3, "{m}");
    assert!(metric(&m, "strowger_sip_banned_drops_total ") >= 1, "{m}");
}

#[test]
fn a_delayed_offer_call_carries_the_answer_in_the_ack() {
    let sip_port = free_udp();
    let _srv = start(sip_port, &[]);
    let server: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let alice = Phone::new("alice", server);
    let bob = Phone::new("bob", server);
    bob.register();
    let ruri = format!("sip:bob@{}", server.ip());
    // An INVITE without SDP (as Cisco trunks send by default).
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-dinv{cseq};rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: <sip:bob@{s}>\nCall-ID: call-late\nCSeq: {cseq} INVITE\nContact: <sip:alice@{a}>\nMax-Forwards: 70\n{auth}Content-Length: 0\n\n",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
        )
    };
    alice.send(&invite(1, ""), server);
    let r = alice.recv_response(5);
    assert_eq!(r.status, 407);
    let a = alice.auth(&r, HeaderName::ProxyAuthenticate, "INVITE", &ruri);
    alice.send(&invite(2, &format!("Proxy-Authorization: {a}\n")), server);

    // bob gets an INVITE without SDP too, and offers in his 200.
    let inv = bob.recv_request(5);
    assert_eq!(inv.method, Method::Invite);
    assert!(inv.body.is_empty(), "the callee makes the offer");
    let bob_rtp = bob.addr().port() + 2;
    let mut ok = inv.response(200, "OK", Some("bob-tag"));
    ok.headers
        .push(HeaderName::Contact, format!("<sip:bob@{}>", bob.addr()));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(sdp(bob_rtp).replace('\n', "\r\n"));
    bob.send_msg(Message::Response(ok));

    // alice gets bob's offer pointed at the relay.
    let mut resp = alice.recv_response(5);
    while resp.status < 200 {
        resp = alice.recv_response(5);
    }
    assert_eq!(resp.status, 200);
    let offer = String::from_utf8_lossy(&resp.body).to_string();
    assert!(offer.contains("m=audio "), "{offer}");
    assert!(
        !offer.contains(&format!("m=audio {bob_rtp} ")),
        "alice must see the relay's port: {offer}"
    );
    // No ACK reaches bob before alice answers.
    bob.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    assert!(
        bob.sock.recv_from(&mut buf).is_err(),
        "the callee's ACK waits for the caller's answer"
    );
    // alice's ACK carries her answer; bob's ACK carries it, pointed at the relay.
    let to = resp.headers.get(&HeaderName::To).unwrap().to_string();
    let answer = sdp(alice.addr().port() + 2).replace('\n', "\r\n");
    alice.send(
        &format!(
            "ACK {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-dack2;rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: {to}\nCall-ID: call-late\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: {len}\n\n{body}",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
            len = answer.len(),
            body = answer.replace("\r\n", "\n"),
        ),
        server,
    );
    let ack = bob.recv_request(5);
    assert_eq!(ack.method, Method::Ack);
    let got = String::from_utf8_lossy(&ack.body).to_string();
    assert!(
        got.contains("m=audio "),
        "bob's ACK carries the answer: {got}"
    );
    assert!(
        !got.contains(&format!("m=audio {} ", alice.addr().port() + 2)),
        "bob must see the relay's port: {got}"
    );
}

#[test]
fn a_caller_requiring_100rel_gets_reliable_ringing_until_it_pracks() {
    let sip_port = free_udp();
    let _srv = start(sip_port, &[]);
    let server: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let alice = Phone::new("alice", server);
    let bob = Phone::new("bob", server);
    bob.register();
    let ruri = format!("sip:bob@{}", server.ip());
    let body = sdp(alice.addr().port() + 2);
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-rinv{cseq};rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: <sip:bob@{s}>\nCall-ID: call-100rel\nCSeq: {cseq} INVITE\nContact: <sip:alice@{a}>\nRequire: 100rel\nMax-Forwards: 70\n{auth}Content-Type: application/sdp\nContent-Length: {len}\n\n{body}",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
            len = body.replace('\n', "\r\n").len(),
        )
    };
    alice.send(&invite(1, ""), server);
    let r = alice.recv_response(5);
    assert_eq!(r.status, 407);
    let a = alice.auth(&r, HeaderName::ProxyAuthenticate, "INVITE", &ruri);
    alice.send(&invite(2, &format!("Proxy-Authorization: {a}\n")), server);
    let inv = bob.recv_request(5);
    // bob rings (an ordinary 180).
    let mut ringing = inv.response(180, "Ringing", Some("bob-tag"));
    ringing
        .headers
        .push(HeaderName::Contact, format!("<sip:bob@{}>", bob.addr()));
    bob.send_msg(Message::Response(ringing));
    // alice's 180 is reliable, and comes again while she does not PRACK.
    let first = alice.recv_response(5);
    assert_eq!(first.status, 180);
    assert_eq!(
        first
            .headers
            .get(&HeaderName::Require)
            .map(|v| v.to_string()),
        Some("100rel".to_string())
    );
    let rseq: u32 = first
        .headers
        .get(&HeaderName::RSeq)
        .expect("RSeq")
        .trim()
        .parse()
        .unwrap();
    let again = alice.recv_response(3);
    assert_eq!(again.status, 180, "resent until PRACKed");
    assert_eq!(
        again
            .headers
            .get(&HeaderName::RSeq)
            .map(|v| v.trim().to_string()),
        Some(rseq.to_string())
    );
    // PRACK: 200, and no more 180s.
    let to = first.headers.get(&HeaderName::To).unwrap().to_string();
    alice.send(
        &format!(
            "PRACK {ruri} SIP/2.0\nVia: SIP/2.0/UDP {a};branch=z9hG4bK-prack;rport\nFrom: <sip:alice@{s}>;tag={t}\nTo: {to}\nCall-ID: call-100rel\nCSeq: 3 PRACK\nRAck: {rseq} 2 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n",
            a = alice.addr(),
            s = server.ip(),
            t = alice.tag,
        ),
        server,
    );
    let mut prack_ok = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 65536];
    alice
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut late_180 = 0;
    while Instant::now() < deadline {
        if let Ok((n, _)) = alice.sock.recv_from(&mut buf) {
            if let Ok(Message::Response(r)) =
                Message::parse(Bytes::copy_from_slice(&buf[..n]), &Limits::default())
            {
                match (r.status, r.cseq().map(|c| c.method)) {
                    (200, Ok(Method::Prack)) => prack_ok = true,
                    (180, _) if prack_ok => late_180 += 1,
                    _ => {}
                }
            }
        }
    }
    assert!(prack_ok, "the PRACK is answered");
    assert_eq!(late_180, 0, "no 180 after the PRACK");
}
