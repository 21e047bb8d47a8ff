//! `udp`: drives a running Strowger server the way browsers do, with str0m clients: WebSocket
//! signalling (`hello`, `join`, `publish_offer`, answers to `subscribe_offer`), then media over
//! real UDP, one socket per client on 127.0.0.1. One process holds every client, so the send
//! timestamp a publisher puts in each video frame and the receive time a subscriber takes are on
//! the same monotonic clock.
//!
//! Measured over a window after warmup: per-subscriber loss (missing video sequence numbers) and
//! latency (receive − send), the server's CPU (`/proc/<pid>/stat`) and its datagrams sent
//! (`strowger_rtc_tx_packets_total` from `/metrics`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output as RtcOutput, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, PubMedia};

/// Options of the `udp` mode.
#[derive(Debug, Clone, clap::Args)]
pub struct UdpArgs {
    /// The server's HTTP address (WebSocket at /ws, metrics at /metrics).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub http: SocketAddr,
    /// API key id (the tokens' `iss`).
    #[arg(long, env = "STROWGER_API_KEY")]
    pub api_key: String,
    /// API secret the tokens are signed with (HS256).
    #[arg(long, env = "STROWGER_API_SECRET", hide_env_values = true)]
    pub api_secret: String,
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publishers per room (audio + video each; they subscribe to nothing).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscribers per room (receive every publisher of the room; publish nothing).
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds between "every client is up" and the window.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Seconds allowed for every client to join and connect (the run goes on with those that did).
    #[arg(long, default_value_t = 60.0)]
    pub setup_timeout: f64,
    /// The server's process id, for its CPU time.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server's WebRTC UDP port, for its socket's kernel drop counter.
    #[arg(long)]
    pub rtc_port: Option<u16>,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Clients joining at once.
    #[arg(long, default_value_t = 8)]
    pub connect_concurrency: usize,
    /// Bytes per video frame.
    #[arg(long, default_value_t = 1000)]
    pub video_bytes: usize,
    /// Bytes per Opus packet.
    #[arg(long, default_value_t = 80)]
    pub audio_bytes: usize,
    /// Prefix of room names and identities (default: unique per run).
    #[arg(long)]
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Window { start: Instant, end: Instant },
    Stop,
}

struct Shared {
    a: UdpArgs,
    run_id: String,
    base: Instant,
    ready: AtomicUsize,
    failed: AtomicUsize,
    setup: Semaphore,
    cert: Option<str0m::config::DtlsCert>,
}

impl Shared {
    fn clock_ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }
}

#[derive(Debug)]
enum Report {
    Pub {
        index: u32,
        room: usize,
        /// First and last video seq written inside the window.
        first: Option<u64>,
        last: Option<u64>,
        sent_video: u64,
        sent_audio: u64,
        errors: u64,
        ready: bool,
    },
    Sub {
        room: usize,
        /// (publisher, seq, latency µs) of every video frame received.
        frames: Vec<(u32, u64, u64)>,
        audio: u64,
        ready: bool,
    },
}

/// Most frames one subscriber records (bounds memory).
const MAX_FRAMES_PER_SUB: usize = 2_000_000;

fn mint(a: &UdpArgs, identity: &str, room: &str, publish: bool) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = json!({
        "iss": a.api_key,
        "sub": identity,
        "name": identity,
        "iat": now,
        "nbf": now.saturating_sub(5),
        "exp": now + 3600,
        "grants": {
            "room": room,
            "publish": publish,
            "subscribe": !publish,
            "screenshare": false,
            "record": false,
            "admin": false,
            "call": false,
        },
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(a.api_secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;
type WsTx = futures_util::stream::SplitSink<WsStream, Message>;
type WsRx = futures_util::stream::SplitStream<WsStream>;

async fn send_json(tx: &mut WsTx, v: Value) -> Result<(), String> {
    tx.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| format!("ws send: {e}"))
}

/// Reads frames until one of type `want` (answering pings, keeping subscribe offers for later).
async fn wait_for(
    tx: &mut WsTx,
    rx: &mut WsRx,
    want: &str,
    offers: &mut Vec<String>,
) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for _ in 0..10_000 {
        let msg = tokio::time::timeout_at(deadline, rx.next())
            .await
            .map_err(|_| format!("timed out waiting for {want}"))?;
        let Some(msg) = msg else {
            return Err(format!("socket closed waiting for {want}"));
        };
        let msg = msg.map_err(|e| format!("ws: {e}"))?;
        let Message::Text(text) = msg else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("bad json: {e}"))?;
        match v["type"].as_str() {
            Some(t) if t == want => return Ok(v),
            Some("error") => return Err(format!("server error waiting for {want}: {v}")),
            Some("ping") => send_json(tx, json!({"type": "pong"})).await?,
            Some("subscribe_offer") => {
                if let Some(s) = v["sdp"].as_str() {
                    offers.push(s.to_string());
                }
            }
            _ => {}
        }
    }
    Err(format!("no {want} in 10000 frames"))
}

struct ClientState {
    connected: bool,
    media: Option<PubMedia>,
    /// Publishers of the room (subscribers are ready once they got video from each).
    want_from: usize,
    got_from: HashSet<u32>,
    frames: Vec<(u32, u64, u64)>,
    audio: u64,
    ready: bool,
    dead: bool,
    send_errors: u64,
}

/// Polls the `Rtc` until its next timeout: datagrams out, events handled.
fn drive(sh: &Shared, rtc: &mut Rtc, sock: &UdpSocket, st: &mut ClientState) -> Instant {
    for _ in 0..100_000 {
        match rtc.poll_output() {
            Ok(RtcOutput::Transmit(t)) => {
                if sock.try_send_to(&t.contents, t.destination).is_err() {
                    st.send_errors += 1;
                }
            }
            Ok(RtcOutput::Timeout(t)) => return t,
            Ok(RtcOutput::Event(e)) => match e {
                Event::Connected => {
                    st.connected = true;
                    if let Some(m) = &mut st.media {
                        m.start(rtc, Instant::now());
                    }
                }
                Event::KeyframeRequest(_) => {
                    if let Some(m) = &mut st.media {
                        m.request_keyframe();
                    }
                }
                Event::MediaData(d) => {
                    if d.params.spec().codec.is_audio() {
                        st.audio += 1;
                    } else if let Some((p, seq, sent)) = common::parse_video(&d.data) {
                        let lat_us = sh.clock_ns(Instant::now()).saturating_sub(sent) / 1000;
                        st.got_from.insert(p);
                        if st.frames.len() < MAX_FRAMES_PER_SUB {
                            st.frames.push((p, seq, lat_us));
                        }
                    }
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    st.dead = true;
                }
                _ => {}
            },
            Err(e) => {
                eprintln!("warning: client rtc error: {e}");
                st.dead = true;
                return Instant::now() + Duration::from_millis(100);
            }
        }
    }
    Instant::now()
}

fn feed(rtc: &mut Rtc, now: Instant, src: SocketAddr, local: SocketAddr, buf: &[u8]) {
    let Ok(contents) = buf.try_into() else {
        return;
    };
    let input = Input::Receive(
        now,
        Receive {
            proto: Protocol::Udp,
            source: src,
            destination: local,
            contents,
        },
    );
    let _ = rtc.handle_input(input);
}

fn answer_offer(rtc: &mut Rtc, sdp: &str) -> Result<String, String> {
    let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("offer: {e}"))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("accept_offer: {e}"))?;
    Ok(answer.to_sdp_string())
}

async fn client(
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    room_idx: usize,
    n: usize,
    pub_index: Option<u32>,
) -> Result<Report, String> {
    let a = &sh.a;
    let publish = pub_index.is_some();
    let room = format!("{}-{room_idx}", sh.run_id);
    let identity = format!(
        "{}-{}{room_idx}-{n}",
        sh.run_id,
        if publish { "p" } else { "s" }
    );
    let token = mint(a, &identity, &room, publish)?;
    let permit = sh.setup.acquire().await.map_err(|e| e.to_string())?;
    let url = format!("ws://{}/ws", a.http);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| "ws connect timed out".to_string())?
    .map_err(|e| format!("ws connect: {e}"))?;
    let (mut tx, mut rx) = ws.split();
    let mut offers = Vec::new();
    send_json(&mut tx, json!({"type": "hello", "token": token})).await?;
    wait_for(&mut tx, &mut rx, "welcome", &mut offers).await?;
    send_json(&mut tx, json!({"type": "join", "id": 1, "room": room})).await?;
    wait_for(&mut tx, &mut rx, "joined", &mut offers).await?;

    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("udp bind: {e}"))?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let mut b = Rtc::builder();
    if let Some(c) = &sh.cert {
        b = b.set_dtls_cert(c.clone());
    }
    let mut rtc = b.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| format!("{e:?}"))?);
    let mut st = ClientState {
        connected: false,
        media: None,
        want_from: a.publishers,
        got_from: HashSet::new(),
        frames: Vec::new(),
        audio: 0,
        ready: false,
        dead: false,
        send_errors: 0,
    };
    if let Some(index) = pub_index {
        let (sdp, pending, amid, vmid) = common::publisher_offer(&mut rtc, &identity);
        let tracks = json!([
            {"mid": amid.to_string(), "source": "microphone"},
            {"mid": vmid.to_string(), "source": "camera", "width": 640, "height": 360},
        ]);
        send_json(
            &mut tx,
            json!({"type": "publish_offer", "id": 2, "sdp": sdp, "tracks": tracks}),
        )
        .await?;
        let ans = wait_for(&mut tx, &mut rx, "publish_answer", &mut offers).await?;
        let sdp = ans["sdp"].as_str().ok_or("publish_answer without sdp")?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("answer: {e}"))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("accept_answer: {e}"))?;
        st.media = Some(PubMedia::new(
            index,
            amid,
            vmid,
            a.audio_bytes,
            a.video_bytes,
        ));
    }
    for sdp in offers.drain(..) {
        let ans = answer_offer(&mut rtc, &sdp)?;
        send_json(&mut tx, json!({"type": "subscribe_answer", "sdp": ans})).await?;
    }
    drop(permit);

    let (mut first, mut last) = (None, None);
    let mut buf = vec![0u8; 2048];
    let hard_end =
        Instant::now() + Duration::from_secs_f64(a.setup_timeout + a.warmup + a.duration + 30.0);
    // Bounded: each pass handles at least one wakeup; the run time bound ends it.
    for _ in 0..100_000_000u64 {
        let next = drive(&sh, &mut rtc, &sock, &mut st);
        if !st.ready {
            let up = if publish {
                st.media.as_ref().is_some_and(|m| m.started())
            } else {
                st.connected && st.got_from.len() >= st.want_from
            };
            if up {
                st.ready = true;
                sh.ready.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut wake = next.min(hard_end);
        if let Some(t) = st.media.as_ref().and_then(|m| m.next_due()) {
            wake = wake.min(t);
        }
        tokio::select! {
            r = phase.changed() => {
                if r.is_err() || *phase.borrow() == Phase::Stop {
                    break;
                }
            }
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, src)) = r {
                    feed(&mut rtc, Instant::now(), src, local, &buf[..n]);
                    // Take what else is queued, draining after each datagram.
                    for _ in 0..64 {
                        let _ = drive(&sh, &mut rtc, &sock, &mut st);
                        match sock.try_recv_from(&mut buf) {
                            Ok((n, src)) => feed(&mut rtc, Instant::now(), src, local, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
            }
            m = rx.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("subscribe_offer") => {
                            if let Some(sdp) = v["sdp"].as_str() {
                                let ans = answer_offer(&mut rtc, sdp)?;
                                send_json(&mut tx, json!({"type": "subscribe_answer", "sdp": ans})).await?;
                            }
                        }
                        Some("ping") => send_json(&mut tx, json!({"type": "pong"})).await?,
                        Some("error") => eprintln!("warning: {identity}: {v}"),
                        Some("left") => {
                            eprintln!("warning: {identity} left the room: {v}");
                            st.dead = true;
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("ws: {e}")),
                None => return Err("ws closed by server".into()),
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let _ = rtc.handle_input(Input::Timeout(now));
                if let Some(m) = &mut st.media {
                    let ph = *phase.borrow();
                    let clock = |t: Instant| sh.clock_ns(t);
                    let _ = m.send_due(&mut rtc, now, clock, |seq| {
                        if let Phase::Window { start, end } = ph {
                            if now >= start && now < end {
                                first.get_or_insert(seq);
                                last = Some(seq);
                            }
                        }
                    });
                }
                if now >= hard_end {
                    break;
                }
            }
        }
    }
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    if st.send_errors > 0 {
        eprintln!("warning: {identity}: {} UDP send errors", st.send_errors);
    }
    if st.dead {
        sh.failed.fetch_add(1, Ordering::SeqCst);
    }
    Ok(match st.media {
        Some(m) => Report::Pub {
            index: m.index,
            room: room_idx,
            first,
            last,
            sent_video: m.sent_video,
            sent_audio: m.sent_audio,
            errors: m.errors,
            ready: st.ready,
        },
        None => Report::Sub {
            room: room_idx,
            frames: st.frames,
            audio: st.audio,
            ready: st.ready,
        },
    })
}

/// GET /metrics; the samples by name (labels kept in the name).
async fn scrape(http: SocketAddr) -> Result<HashMap<String, f64>, String> {
    let fut = async {
        let mut s = TcpStream::connect(http)
            .await
            .map_err(|e| format!("metrics connect: {e}"))?;
        s.write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        s.take(16 << 20)
            .read_to_end(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "metrics timed out".to_string())??;
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.rsplit_once(' ') {
            if let Ok(v) = v.trim().parse::<f64>() {
                out.insert(k.trim().to_string(), v);
            }
        }
    }
    if !out.contains_key("strowger_rtc_tx_packets_total") {
        return Err("metrics have no strowger_rtc_tx_packets_total".into());
    }
    Ok(out)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let u: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some(u + st)
}

/// Per thread of a process (schedstat, ns): (time on CPU, time runnable but waiting for a CPU).
fn thread_cpu_ns(pid: u32) -> HashMap<String, (u64, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten().take(4096) {
        let tid = e.file_name().to_string_lossy().into_owned();
        if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
            let mut f = s.split_whitespace().map(|x| x.parse::<u64>().ok());
            if let (Some(Some(run)), Some(Some(wait))) = (f.next(), f.next()) {
                out.insert(tid, (run, wait));
            }
        }
    }
    out
}

fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Kernel UDP counters (/proc/net/snmp): (RcvbufErrors, SndbufErrors, InErrors).
fn udp_errors() -> (u64, u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/net/snmp") else {
        return (0, 0, 0);
    };
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
    if lines.len() < 2 {
        return (0, 0, 0);
    }
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let vals: Vec<&str> = lines[1].split_whitespace().collect();
    let get = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("RcvbufErrors"), get("SndbufErrors"), get("InErrors"))
}

/// Drops counted on the UDP socket bound to `port` (/proc/net/udp, last column).
fn socket_drops(port: u16) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/udp").ok()?;
    let want = format!(":{port:04X}");
    s.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1)?.ends_with(&want) {
            f.last()?.parse().ok()
        } else {
            None
        }
    })
}

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    metrics: HashMap<String, f64>,
    server_ticks: Option<u64>,
    server_threads: HashMap<String, (u64, u64)>,
    self_ticks: Option<u64>,
    self_threads: HashMap<String, (u64, u64)>,
    udp: (u64, u64, u64),
    drops: Option<u64>,
    load1: String,
}

async fn sample(a: &UdpArgs) -> Result<Sample, String> {
    let metrics = scrape(a.http).await?;
    Ok(Sample {
        at: Instant::now(),
        metrics,
        server_ticks: a.server_pid.and_then(cpu_ticks),
        server_threads: a.server_pid.map(thread_cpu_ns).unwrap_or_default(),
        self_ticks: cpu_ticks(std::process::id()),
        self_threads: thread_cpu_ns(std::process::id()),
        udp: udp_errors(),
        drops: a.rtc_port.and_then(socket_drops),
        load1: common::load1(),
    })
}

/// Runs the `udp` benchmark against a server already listening; prints a report and a
/// `RESULT {json}` line.
pub fn run(a: UdpArgs) -> Result<(), String> {
    if a.rooms == 0 || a.publishers == 0 || a.subscribers == 0 {
        return Err("rooms, publishers and subscribers must be at least 1".into());
    }
    if a.rooms * (a.publishers + a.subscribers) > 5000 {
        return Err("at most 5000 clients".into());
    }
    if !(a.duration > 0.0 && a.duration <= 3600.0 && a.warmup >= 0.0 && a.setup_timeout > 0.0) {
        return Err("--duration must be in (0, 3600], --warmup >= 0, --setup-timeout > 0".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_async(a))
}

async fn run_async(a: UdpArgs) -> Result<(), String> {
    let run_id = a.run_id.clone().unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("lg{}x{}", std::process::id(), t % 100_000)
    });
    // Reachable and exporting what we need, before anything else.
    scrape(a.http).await?;
    let total = a.rooms * (a.publishers + a.subscribers);
    let sh = Arc::new(Shared {
        a: a.clone(),
        run_id,
        base: Instant::now(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        setup: Semaphore::new(a.connect_concurrency.max(1)),
        cert: common::shared_cert(),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let mut handles = Vec::with_capacity(total);
    // Publishers first: each subscriber then gets one offer with every track of its room.
    let mut pub_index = 0u32;
    for r in 0..a.rooms {
        for p in 0..a.publishers {
            handles.push(tokio::spawn(client(
                sh.clone(),
                phase_rx.clone(),
                r,
                p,
                Some(pub_index),
            )));
            pub_index += 1;
        }
    }
    for r in 0..a.rooms {
        for s in 0..a.subscribers {
            handles.push(tokio::spawn(client(
                sh.clone(),
                phase_rx.clone(),
                r,
                s,
                None,
            )));
        }
    }
    let setup_start = Instant::now();
    let setup_deadline = setup_start + Duration::from_secs_f64(a.setup_timeout);
    while sh.ready.load(Ordering::SeqCst) < total && Instant::now() < setup_deadline {
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = sh.ready.load(Ordering::SeqCst);
    let setup_secs = setup_start.elapsed().as_secs_f64();
    if ready < total {
        eprintln!("warning: {ready}/{total} clients up after {setup_secs:.1} s; measuring anyway");
    }
    let start = Instant::now() + Duration::from_secs_f64(a.warmup);
    let end = start + Duration::from_secs_f64(a.duration);
    let _ = phase_tx.send(Phase::Window { start, end });
    tokio::time::sleep_until(start.into()).await;
    let s0 = sample(&a).await?;
    tokio::time::sleep_until(end.into()).await;
    let s1 = sample(&a).await?;
    // In-flight frames may still arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = phase_tx.send(Phase::Stop);

    let mut reports = Vec::new();
    let mut errors = 0usize;
    let join_deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for h in handles {
        match tokio::time::timeout_at(join_deadline, h).await {
            Ok(Ok(Ok(r))) => reports.push(r),
            Ok(Ok(Err(e))) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("warning: client failed: {e}");
                }
            }
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("warning: client task: {e}");
            }
            Err(_) => {
                errors += 1;
            }
        }
    }
    report(
        &a, &sh, total, ready, setup_secs, errors, &reports, &s0, &s1,
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    a: &UdpArgs,
    sh: &Shared,
    total: usize,
    ready: usize,
    setup_secs: f64,
    errors: usize,
    reports: &[Report],
    s0: &Sample,
    s1: &Sample,
) {
    let window = s1.at.saturating_duration_since(s0.at).as_secs_f64();
    let d = |k: &str| {
        s1.metrics.get(k).copied().unwrap_or(0.0) - s0.metrics.get(k).copied().unwrap_or(0.0)
    };
    let tx = d("strowger_rtc_tx_packets_total");
    let rx = d("strowger_rtc_rx_packets_total");
    let frames = d("strowger_forwarded_frames_total");
    let kf = d("strowger_keyframe_requests_total");

    // Publishers' in-window sequence ranges.
    let mut ranges: HashMap<u32, (usize, u64, u64)> = HashMap::new();
    let (mut pubs_ready, mut sent_video, mut sent_audio, mut pub_errors) = (0, 0, 0, 0);
    for r in reports {
        if let Report::Pub {
            index,
            room,
            first,
            last,
            sent_video: v,
            sent_audio: au,
            errors: e,
            ready: up,
        } = r
        {
            if let (Some(f), Some(l)) = (first, last) {
                ranges.insert(*index, (*room, *f, *l));
            }
            pubs_ready += usize::from(*up);
            sent_video += v;
            sent_audio += au;
            pub_errors += e;
        }
    }
    // Per subscriber: loss over every publisher of its room, and latency of in-window frames.
    let mut losses: Vec<f64> = Vec::new();
    let mut lat: Vec<u64> = Vec::new();
    let mut sub_p99: Vec<u64> = Vec::new();
    let (mut missing_total, mut expected_total, mut subs_ready, mut audio_total) =
        (0u64, 0u64, 0, 0u64);
    for r in reports {
        let Report::Sub {
            room,
            frames,
            audio,
            ready: up,
        } = r
        else {
            continue;
        };
        subs_ready += usize::from(*up);
        audio_total += audio;
        let mut expected = 0u64;
        let mut got: HashSet<(u32, u64)> = HashSet::new();
        let mut mine = Vec::new();
        for (p, (proom, f, l)) in &ranges {
            if proom == room {
                expected += l - f + 1;
                for &(fp, seq, us) in frames {
                    if fp == *p && seq >= *f && seq <= *l && got.insert((fp, seq)) {
                        mine.push(us);
                    }
                }
            }
        }
        let missing = expected.saturating_sub(got.len() as u64);
        missing_total += missing;
        expected_total += expected;
        losses.push(if expected > 0 {
            missing as f64 / expected as f64
        } else {
            1.0
        });
        mine.sort_unstable();
        if let Some(p) = common::quantile(&mine, 0.99) {
            sub_p99.push(p);
        }
        lat.extend(mine);
    }
    lat.sort_unstable();
    sub_p99.sort_unstable();
    let subs = losses.len().max(1);
    let mean_loss = losses.iter().sum::<f64>() / subs as f64;
    let max_loss = losses.iter().copied().fold(0.0, f64::max);
    let subs_over_1pct = losses.iter().filter(|l| **l >= 0.01).count();
    let q = |v: &[u64], x: f64| common::quantile(v, x).map(|u| u as f64 / 1000.0);
    let ms = |o: Option<f64>| o.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());

    let tck = clk_tck() as f64;
    let server_cpu = match (s0.server_ticks, s1.server_ticks) {
        (Some(x), Some(y)) => Some((y - x) as f64 / tck),
        _ => None,
    };
    // Per server thread over the window (schedstat ns): the sum is a finer-grained cross-check of
    // utime+stime; the busiest thread shows whether one thread is pegged.
    let delta = |a: &HashMap<String, (u64, u64)>, b: &HashMap<String, (u64, u64)>| {
        b.iter()
            .map(|(tid, (run, wait))| {
                let (r0, w0) = a.get(tid).copied().unwrap_or((0, 0));
                (
                    run.saturating_sub(r0) as f64 / 1e9,
                    wait.saturating_sub(w0) as f64 / 1e9,
                )
            })
            .collect::<Vec<(f64, f64)>>()
    };
    let server_threads = delta(&s0.server_threads, &s1.server_threads);
    let thread_secs: Vec<f64> = server_threads.iter().map(|t| t.0).collect();
    // Run-queue wait: how long threads were ready to run but had no CPU (others' load).
    let server_wait = (!server_threads.is_empty())
        .then(|| server_threads.iter().map(|t| t.1).sum::<f64>() / window);
    let self_wait = {
        let t = delta(&s0.self_threads, &s1.self_threads);
        (!t.is_empty()).then(|| t.iter().map(|t| t.1).sum::<f64>() / window)
    };
    let busiest = thread_secs.iter().copied().reduce(f64::max);
    let sched_total = (!thread_secs.is_empty()).then(|| thread_secs.iter().sum::<f64>());
    let self_cpu = match (s0.self_ticks, s1.self_ticks) {
        (Some(x), Some(y)) => Some((y - x) as f64 / tck),
        _ => None,
    };
    let per_pkt_us = server_cpu.filter(|_| tx > 0.0).map(|c| c * 1e6 / tx);
    let pps_per_core = server_cpu.filter(|c| *c > 0.0).map(|c| tx / c);
    let udp_d = (
        s1.udp.0 - s0.udp.0,
        s1.udp.1 - s0.udp.1,
        s1.udp.2 - s0.udp.2,
    );
    let drops = match (s0.drops, s1.drops) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x)),
        _ => None,
    };
    let per_sub_pps = (1.0 / common::AUDIO_INTERVAL.as_secs_f64()) + common::VIDEO_FPS as f64;
    let offered = (a.rooms * a.publishers * a.subscribers) as f64 * per_sub_pps;
    let f1 = |o: Option<f64>, k: f64| {
        o.map(|v| format!("{:.1}", v * k))
            .unwrap_or_else(|| "-".into())
    };

    println!("strowger loadgen udp ({})", sh.run_id);
    println!(
        "  workload        {} room(s) x ({} publisher(s) [Opus 50 pps + VP8 {} fps x {} B], {} subscriber(s)) = {} clients, {} loadgen thread(s)",
        a.rooms, a.publishers, common::VIDEO_FPS, a.video_bytes, a.subscribers, total, a.threads
    );
    println!(
        "  setup           {ready}/{total} up in {setup_secs:.1} s ({pubs_ready} publishers, {subs_ready} subscribers ready at the end); {errors} client errors, {} ICE/DTLS failures",
        sh.failed.load(Ordering::SeqCst)
    );
    println!(
        "  window          {window:.2} s; publishers sent {sent_video} video + {sent_audio} audio frames in the whole run ({pub_errors} write errors)"
    );
    println!(
        "  server          tx {tx:.0} datagrams ({:.0}/s; {:.0} besides forwarded frames), rx {rx:.0}, forwarded {frames:.0} frames ({:.0}/s; offered {offered:.0}/s), {kf:.0} keyframe requests",
        tx / window, tx - frames, frames / window
    );
    println!(
        "  server CPU      {} s (schedstat {} s) = {}% of one core (busiest thread {}%); {} us CPU per datagram sent; {} datagrams/s per core",
        server_cpu.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
        sched_total.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()),
        f1(server_cpu.map(|c| c / window), 100.0),
        f1(busiest.map(|c| c / window), 100.0),
        per_pkt_us.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
        pps_per_core.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
    );
    println!(
        "  loss            mean {:.3}% , max {:.3}% , {subs_over_1pct}/{} subscribers >= 1%; {missing_total}/{expected_total} video frames missing",
        mean_loss * 100.0, max_loss * 100.0, losses.len()
    );
    println!(
        "  latency (video) p50 {} ms, p99 {} ms, max {} ms; worst subscriber p99 {} ms ({} samples); audio frames received {audio_total}",
        ms(q(&lat, 0.5)), ms(q(&lat, 0.99)), ms(q(&lat, 1.0)), ms(q(&sub_p99, 1.0)), lat.len()
    );
    println!(
        "  loadgen         {}% of one core; kernel UDP RcvbufErrors +{}, SndbufErrors +{}, InErrors +{}; server socket drops +{}",
        f1(self_cpu.map(|c| c / window), 100.0),
        udp_d.0, udp_d.1, udp_d.2,
        drops.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
    );
    println!(
        "  contention      run-queue wait (ready, no CPU) server {}% , loadgen {}% of the window; load1 {} at window start, {} at end",
        f1(server_wait, 100.0),
        f1(self_wait, 100.0),
        s0.load1,
        s1.load1
    );
    let j = json!({
        "mode": "udp", "run_id": sh.run_id,
        "rooms": a.rooms, "publishers": a.publishers, "subscribers": a.subscribers,
        "clients": total, "ready": ready, "client_errors": errors, "threads": a.threads,
        "window_secs": window, "server_tx": tx, "server_rx": rx, "forwarded_frames": frames,
        "offered_fwd_pps": offered, "keyframe_requests": kf,
        "server_cpu_secs": server_cpu, "server_sched_secs": sched_total,
        "server_busiest_thread_secs": busiest,
        "cpu_us_per_tx": per_pkt_us, "tx_per_core_sec": pps_per_core,
        "loss_mean": mean_loss, "loss_max": max_loss, "subs_over_1pct": subs_over_1pct,
        "missing": missing_total, "expected": expected_total,
        "lat_p50_ms": q(&lat, 0.5), "lat_p99_ms": q(&lat, 0.99), "lat_max_ms": q(&lat, 1.0),
        "worst_sub_p99_ms": q(&sub_p99, 1.0),
        "loadgen_cpu_secs": self_cpu,
        "udp_rcvbuf_errors": udp_d.0, "udp_sndbuf_errors": udp_d.1, "server_socket_drops": drops,
        "load1_start": s0.load1, "load1_end": s1.load1,
        "server_runq_wait": server_wait, "loadgen_runq_wait": self_wait,
    });
    println!("RESULT {j}");
}
