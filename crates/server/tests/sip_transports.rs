//! SIP transports end to end with the real `strowger` binary: a REGISTER with digest
//! authentication over UDP, TCP, TLS and WebSocket; OPTIONS, CRLF keep-alives and an unframeable
//! stream over TCP; TLS start-up errors. Loopback only; every wait is bounded.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use strowger_sip::digest::{self, Challenge};
use strowger_sip::{frame_len, HeaderName, Limits, Message, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite;

/// Longest wait for any one answer.
const WAIT: Duration = Duration::from_secs(5);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "strowger-siptp-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server {
    child: Child,
    sip: SocketAddr,
    tls: SocketAddr,
    http: SocketAddr,
    /// The certificate the server presents (DER).
    cert: rustls::pki_types::CertificateDer<'static>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both UDP and TCP (SIP binds both on it).
fn free_udp_tcp_port() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free UDP+TCP port");
}

fn strowger() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strowger"));
    c.env_remove("STROWGER_CONFIG")
        .env_remove("STROWGER_SIP_REALM")
        .env_remove("STROWGER_STORE_URL");
    c
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM into `dir`.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate generated");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().clone())
}

fn serve_args(
    dir: &Path,
    sip: SocketAddr,
    tls: SocketAddr,
    http: SocketAddr,
    extra: &[String],
) -> Vec<String> {
    let rtc = format!("127.0.0.1:{}", free_port());
    let mut v = vec!["serve".to_string(), "--log".into(), "warn".into()];
    for s in [
        format!("sip.listen={sip}"),
        format!("sip.tls_listen={tls}"),
        format!("sip.tls_cert={}", dir.join("cert.pem").display()),
        format!("sip.tls_key={}", dir.join("key.pem").display()),
        format!("http.listen={http}"),
        format!("rtc.listen={rtc}"),
        format!("data_dir={}", dir.display()),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    {
        v.push("--set".into());
        v.push(s);
    }
    v
}

/// Starts a server with SIP on UDP/TCP, TLS and WebSocket, and the users alice (password
/// `secret`) and bob (`bobpw`).
fn start(tag: &str) -> Server {
    start_with(tag, false)
}

/// `https`: the HTTP port speaks TLS too (`http.tls_cert`, the same certificate).
fn start_with(tag: &str, https: bool) -> Server {
    let dir = TempDir::new(tag);
    let (_, _, cert) = make_cert(&dir.0);
    let o = strowger()
        .args(["user", "add", "alice", "--password", "secret", "--set"])
        .arg(format!("data_dir={}", dir.0.display()))
        .output()
        .expect("strowger runs");
    assert!(
        o.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = strowger()
        .args(["user", "add", "bob", "--password", "bobpw", "--set"])
        .arg(format!("data_dir={}", dir.0.display()))
        .output()
        .expect("strowger runs");
    assert!(o.status.success());
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_tcp_port())
        .parse()
        .unwrap();
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = strowger()
        .args(serve_args(&dir.0, sip, tls, http, &{
            let mut extra = Vec::new();
            if https {
                extra.push(format!(
                    "http.tls_cert={}",
                    dir.0.join("cert.pem").display()
                ));
                extra.push(format!("http.tls_key={}", dir.0.join("key.pem").display()));
            }
            extra
        }))
        .env("STROWGER_API_KEY", "it")
        .env(
            "STROWGER_API_SECRET",
            "sip-transports-secret-0123456789-abcdef",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server starts");
    let mut s = Server {
        child,
        sip,
        tls,
        http,
        cert,
        _dir: dir,
    };
    // HTTP listens last: once it does, SIP (all transports) is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(http).is_err() {
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!("server exited: {st}");
        }
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

// ---- clients ----------------------------------------------------------------------------------

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// One SIP client connection (or UDP socket).
enum Client {
    Udp(UdpSocket, SocketAddr),
    Stream(Box<dyn Io>, BytesMut),
    Ws(Box<Ws>),
}

impl Client {
    async fn udp(server: SocketAddr) -> Client {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Client::Udp(s, server)
    }

    async fn tcp(server: SocketAddr) -> Client {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(server))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        Client::Stream(Box::new(s), BytesMut::new())
    }

    /// A TLS client, and its local address.
    async fn tls(
        server: SocketAddr,
        cert: &rustls::pki_types::CertificateDer<'static>,
    ) -> (Client, SocketAddr) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        // SO_REUSEADDR: a test may listen on this port once the connection is closed.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        let tcp = tokio::time::timeout(WAIT, sock.connect(server))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        let local = tcp.local_addr().unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
        let s = tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake (the server's certificate is trusted)");
        (Client::Stream(Box::new(s), BytesMut::new()), local)
    }

    async fn ws(http: SocketAddr) -> Client {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(http))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        Client::ws_over(format!("ws://{http}/sip"), Box::new(tcp)).await
    }

    /// SIP over secure WebSocket: TLS to the HTTP port (`http.tls_cert`), then the upgrade.
    async fn wss(http: SocketAddr, cert: &rustls::pki_types::CertificateDer<'static>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(http))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        let name = rustls::pki_types::ServerName::IpAddress(http.ip().into());
        let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake with the HTTP port");
        Client::ws_over(format!("wss://{http}/sip"), Box::new(tls)).await
    }

    async fn ws_over(url: String, io: Box<dyn Io>) -> Client {
        use tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, io))
            .await
            .expect("WebSocket upgrade in time")
            .expect("WebSocket upgrade");
        assert_eq!(
            resp.headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok()),
            Some("sip"),
            "the server must accept the sip subprotocol"
        );
        Client::Ws(Box::new(ws))
    }

    async fn send_raw(&mut self, data: &[u8]) {
        match self {
            Client::Udp(s, to) => {
                s.send_to(data, *to).await.unwrap();
            }
            Client::Stream(s, _) => {
                s.write_all(data).await.unwrap();
                s.flush().await.unwrap();
            }
            Client::Ws(ws) => {
                let text = String::from_utf8(data.to_vec()).unwrap();
                ws.send(tungstenite::Message::Text(text.into()))
                    .await
                    .unwrap();
            }
        }
    }

    /// The next SIP message the server sends (panics after [`WAIT`]).
    async fn recv(&mut self) -> Message {
        let data: Bytes = tokio::time::timeout(WAIT, async {
            match self {
                Client::Udp(s, _) => {
                    let mut buf = vec![0u8; 65_536];
                    let (n, _) = s.recv_from(&mut buf).await.unwrap();
                    buf.truncate(n);
                    Bytes::from(buf)
                }
                Client::Stream(s, buf) => loop {
                    match frame_len(buf, &Limits::default()).expect("server frames well") {
                        Some(n) if buf[..n].iter().all(|b| *b == b'\r' || *b == b'\n') => {
                            let _ = buf.split_to(n);
                        }
                        Some(n) => break buf.split_to(n).freeze(),
                        None => {
                            let n = s.read_buf(buf).await.unwrap();
                            assert!(n > 0, "server closed the connection");
                        }
                    }
                },
                Client::Ws(ws) => loop {
                    match ws.next().await.expect("WebSocket open").unwrap() {
                        tungstenite::Message::Text(t) => break Bytes::from(t.as_str().to_owned()),
                        tungstenite::Message::Binary(b) => break b,
                        _ => continue,
                    }
                },
            }
        })
        .await
        .expect("an answer in time");
        Message::parse(data.clone(), &Limits::default())
            .unwrap_or_else(|e| panic!("unparseable answer ({e}): {data:?}"))
    }

    async fn recv_response(&mut self) -> Response {
        match self.recv().await {
            Message::Response(r) => r,
            Message::Request(r) => panic!("expected a response, got {} request", r.method),
        }
    }
}

fn rand_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Via transport token, Via sent-by and Contact for a client on `transport`.
fn addressing(c: &Client, transport: &str) -> (String, String) {
    match c {
        Client::Udp(s, _) => (s.local_addr().unwrap().to_string(), String::new()),
        Client::Ws(_) => ("df7jal23ls0d.invalid".into(), ";transport=ws".into()),
        Client::Stream(..) => (
            "127.0.0.1:5999".into(),
            format!(";transport={}", transport.to_ascii_lowercase()),
        ),
    }
}

fn register(
    c: &Client,
    transport: &str,
    server: SocketAddr,
    call_id: &str,
    cseq: u32,
    auth: Option<&str>,
) -> String {
    let (sent_by, tparam) = addressing(c, transport);
    let mut m = format!(
        "REGISTER sip:{ip} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {sent_by};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{ip}>;tag={tag}\r\n\
         To: <sip:alice@{ip}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:alice@{sent_by}{tparam}>\r\n\
         Expires: 600\r\n\
         User-Agent: sip-transports-test\r\n",
        ip = server.ip(),
        b = rand_tag(),
        tag = rand_tag(),
    );
    if let Some(a) = auth {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// REGISTER alice: 401 with a Digest challenge, then 200 with the Contact and its expiry.
async fn register_with_digest(c: &mut Client, transport: &str, server: SocketAddr) {
    let call_id = format!("{}@test", rand_tag());
    c.send_raw(register(c, transport, server, &call_id, 1, None).as_bytes())
        .await;
    let r = c.recv_response().await;
    assert_eq!(r.status, 401, "{transport}: first REGISTER: {r:?}");
    let challenges: Vec<String> = r
        .headers
        .get_all(&HeaderName::WwwAuthenticate)
        .map(|v| v.to_string())
        .collect();
    assert!(
        !challenges.is_empty() && challenges.iter().all(|c| c.starts_with("Digest ")),
        "{transport}: WWW-Authenticate: Digest expected: {challenges:?}"
    );
    let ch = challenges
        .iter()
        .filter_map(|v| Challenge::parse(v).ok())
        .find(|c| c.algorithm().is_ok())
        .expect("a challenge with a known algorithm");
    let uri = format!("sip:{}", server.ip());
    let creds = digest::respond(&ch, "REGISTER", &uri, "alice", "secret", &rand_tag(), 1)
        .expect("digest response");
    let auth = creds.to_string();
    c.send_raw(register(c, transport, server, &call_id, 2, Some(&auth)).as_bytes())
        .await;
    let r = c.recv_response().await;
    assert_eq!(r.status, 200, "{transport}: authenticated REGISTER: {r:?}");
    let contacts: Vec<String> = r
        .headers
        .get_all(&HeaderName::Contact)
        .map(|v| v.to_string())
        .collect();
    assert!(
        contacts
            .iter()
            .any(|c| c.contains("sip:alice@") && c.contains("expires=")),
        "{transport}: Contact with expires= expected: {contacts:?}"
    );
}

/// A metric's value from `/metrics` (0 when absent).
async fn metric(http: SocketAddr, name: &str) -> f64 {
    let mut c = TcpStream::connect(http).await.unwrap();
    c.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, c.read_to_string(&mut out))
        .await
        .expect("metrics in time")
        .unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// bob, over UDP from `c`, sends an INVITE to alice and authenticates it (407, ACK, INVITE
/// with credentials). Returns once the authenticated INVITE is sent.
async fn bob_invites_alice(c: &mut Client, server: SocketAddr) {
    let Client::Udp(sock, _) = &*c else {
        unreachable!()
    };
    let me = sock.local_addr().unwrap();
    let ip = server.ip();
    let call_id = format!("{}@bob", rand_tag());
    let from_tag = rand_tag();
    let sdp = format!(
        "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        me.port() + 2
    );
    let invite = |cseq: u32, branch: &str, auth: Option<&str>| {
        let mut m = format!(
            "INVITE sip:alice@{ip} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bob@{ip}>;tag={from_tag}\r\n\
             To: <sip:alice@{ip}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:bob@{me}>\r\n\
             Content-Type: application/sdp\r\n"
        );
        if let Some(a) = auth {
            m.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
        m
    };
    let b1 = rand_tag();
    c.send_raw(invite(1, &b1, None).as_bytes()).await;
    let r = loop {
        let r = c.recv_response().await;
        if r.status >= 200 {
            break r;
        }
    };
    assert_eq!(r.status, 407, "unauthenticated INVITE: {r:?}");
    let to = r.headers.get(&HeaderName::To).unwrap().to_string();
    let ack = format!(
        "ACK sip:alice@{ip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{b1};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bob@{ip}>;tag={from_tag}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    c.send_raw(ack.as_bytes()).await;
    let ch = r
        .headers
        .get_all(&HeaderName::ProxyAuthenticate)
        .filter_map(|v| Challenge::parse(v).ok())
        .find(|c| c.algorithm().is_ok())
        .expect("a Proxy-Authenticate challenge");
    let uri = format!("sip:alice@{ip}");
    let creds = digest::respond(&ch, "INVITE", &uri, "bob", "bobpw", &rand_tag(), 1).unwrap();
    c.send_raw(invite(2, &rand_tag(), Some(&creds.to_string())).as_bytes())
        .await;
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test]
async fn register_with_digest_over_udp() {
    let s = start("udp");
    let mut c = Client::udp(s.sip).await;
    register_with_digest(&mut c, "UDP", s.sip).await;
}

#[tokio::test]
async fn register_with_digest_over_tcp() {
    let s = start("tcp");
    let mut c = Client::tcp(s.sip).await;
    register_with_digest(&mut c, "TCP", s.sip).await;
}

#[tokio::test]
async fn register_with_digest_over_tls() {
    let s = start("tls");
    // A client speaking plain SIP to the TLS port fails its handshake and is closed; the
    // listener keeps serving.
    let mut plain = TcpStream::connect(s.tls).await.unwrap();
    plain
        .write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), plain.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "a failed handshake must close the connection"
    );

    let (mut c, _) = Client::tls(s.tls, &s.cert).await;
    register_with_digest(&mut c, "TLS", s.sip).await;

    // TLS shares TCP's framing: a double-CRLF ping gets a CRLF pong.
    let Client::Stream(mut st, _) = c else {
        unreachable!()
    };
    st.write_all(b"\r\n\r\n").await.unwrap();
    st.flush().await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, st.read_exact(&mut pong))
        .await
        .expect("a pong in time")
        .unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[tokio::test]
async fn calls_reach_a_tls_phone_over_its_connection_or_are_dropped() {
    let s = start("tlscall");
    let (mut alice, alice_addr) = Client::tls(s.tls, &s.cert).await;
    register_with_digest(&mut alice, "TLS", s.sip).await;

    // bob calls alice: the INVITE comes over alice's TLS connection, with our TLS Via and a
    // Contact saying transport=tls on the TLS port.
    let mut bob = Client::udp(s.sip).await;
    bob_invites_alice(&mut bob, s.sip).await;
    let inv = match alice.recv().await {
        Message::Request(r) => r,
        Message::Response(r) => panic!("expected the INVITE, got {}", r.status),
    };
    assert_eq!(inv.method.to_string(), "INVITE");
    let via = inv.headers.get(&HeaderName::Via).unwrap().to_string();
    assert!(
        via.starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{}", s.tls.port())),
        "{via}"
    );
    let contact = inv.headers.get(&HeaderName::Contact).unwrap().to_string();
    assert!(
        contact.contains("transport=tls") && contact.contains(&format!(":{}", s.tls.port())),
        "{contact}"
    );

    // alice's connection goes away (her binding stays): the next call to her is not sent over
    // a new plain TCP connection to her TLS port but dropped, and counted.
    drop(alice);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Listen where alice's connection came from: a plain TCP connection there would be caught.
    let trap = {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(alice_addr)
            .expect("alice's old port is free again (TIME_WAIT only)");
        sock.listen(16).unwrap()
    };
    let before = metric(s.http, "strowger_sip_send_dropped_total").await;
    let mut bob2 = Client::udp(s.sip).await;
    bob_invites_alice(&mut bob2, s.sip).await;
    let deadline = Instant::now() + WAIT;
    while metric(s.http, "strowger_sip_send_dropped_total").await <= before {
        assert!(
            Instant::now() < deadline,
            "the INVITE to a closed TLS connection must be dropped and counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), trap.accept())
            .await
            .is_err(),
        "no plain TCP connection may be opened toward a TLS phone"
    );
}

#[tokio::test]
async fn register_with_digest_over_websocket() {
    let s = start("ws");
    let mut c = Client::ws(s.http).await;
    register_with_digest(&mut c, "WS", s.sip).await;
}

#[tokio::test]
async fn register_with_digest_over_secure_websocket() {
    // http.tls_cert: the HTTP port speaks HTTPS, so SIP over WebSocket is wss:// (RFC 7118).
    let s = start_with("wss", true);
    let mut c = Client::wss(s.http, &s.cert).await;
    register_with_digest(&mut c, "WS", s.sip).await;
    // Plain HTTP to the HTTPS port gets nothing (the handshake fails and the connection closes).
    let mut plain = TcpStream::connect(s.http).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(12), plain.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "closed in time");
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "no plain HTTP on the TLS port"
    );
}

#[tokio::test]
async fn tcp_options_keepalive_and_garbage() {
    let s = start("tcpmisc");
    let options = |cseq: u32| {
        format!(
            "OPTIONS sip:{ip} SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@127.0.0.1>;tag={tag}\r\n\
             To: <sip:{ip}>\r\n\
             Call-ID: {b}@test\r\n\
             CSeq: {cseq} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            ip = s.sip.ip(),
            b = rand_tag(),
            tag = rand_tag(),
        )
    };

    // OPTIONS: 200 with Allow.
    let mut c = Client::tcp(s.sip).await;
    c.send_raw(options(1).as_bytes()).await;
    let r = c.recv_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    let allow = r
        .headers
        .get(&HeaderName::Allow)
        .expect("Allow header")
        .to_string();
    assert!(
        allow.contains("REGISTER") && allow.contains("INVITE"),
        "{allow}"
    );

    // RFC 5626 keep-alive: a double-CRLF ping gets a single-CRLF pong on the same connection.
    let Client::Stream(mut st, _) = c else {
        unreachable!()
    };
    st.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, st.read_exact(&mut pong))
        .await
        .expect("a pong in time")
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    // Nothing else follows the pong, and the connection still carries SIP.
    let mut c = Client::Stream(st, BytesMut::new());
    c.send_raw(options(2).as_bytes()).await;
    assert_eq!(c.recv_response().await.status, 200);

    // A stream that cannot be framed (no Content-Length) is closed.
    let mut g = TcpStream::connect(s.sip).await.unwrap();
    g.write_all(b"THIS IS NOT SIP\r\nX: y\r\n\r\nmore garbage")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let r = tokio::time::timeout(WAIT, g.read_to_end(&mut sink))
        .await
        .expect("the server closes an unframeable stream");
    assert!(r.is_err() || sink.is_empty(), "nothing answered: {sink:?}");

    // The server still answers a new connection.
    let mut c = Client::tcp(s.sip).await;
    c.send_raw(options(1).as_bytes()).await;
    assert_eq!(c.recv_response().await.status, 200);
}

#[test]
fn tls_configuration_errors_name_the_option_and_file() {
    let dir = TempDir::new("tlscfg");
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_tcp_port())
        .parse()
        .unwrap();
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let run = || {
        let mut child = strowger()
            .args(serve_args(&dir.0, sip, tls, http, &[]))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strowger runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break child.wait_with_output().unwrap();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server must refuse to start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // No certificate file.
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sip.tls_cert") && err.contains("cert.pem"),
        "{err}"
    );

    // A certificate but a key file that is not a key.
    make_cert(&dir.0);
    std::fs::write(dir.0.join("key.pem"), "not a key\n").unwrap();
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sip.tls_key") && err.contains("key.pem"),
        "{err}"
    );

    // Missing option: refused at configuration time (exit 2), naming the key.
    let o = strowger()
        .args(["serve", "--set", "sip.tls_listen=127.0.0.1:5061"])
        .arg("--set")
        .arg(format!("data_dir={}", dir.0.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("sip.tls_cert"), "{err}");
}
