//! The media task: owns the one WebRTC UDP socket and the sans-IO SFU core, and drives it.
//!
//! One task, one socket, one `Sfu`: every packet of every participant is handled here through
//! `&mut`, with no lock. Signalling reaches it through a bounded command queue; its events go to
//! the hub (signalling) through another. The hub never waits for this task, and this task waits
//! only for room in the hub's queue, so the two cannot deadlock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strowger_sfu::{
    Output, ParticipantId, ParticipantInfo, ParticipantSummary, RoomOptions, RoomSnapshot, Sfu,
    SfuError, Source, TrackId, TrackLabel,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::signal::hub::{HubMsg, SessionId};
use crate::signal::proto::{ProtoError, ReqId};

/// Commands to the media task.
#[derive(Debug)]
pub enum SfuCmd {
    Join {
        session: SessionId,
        req: ReqId,
        room: String,
        info: ParticipantInfo,
        /// Create the room with these options first if it does not exist (1:1 call rooms).
        create: Option<RoomOptions>,
    },
    PublishOffer {
        session: SessionId,
        req: ReqId,
        pid: ParticipantId,
        sdp: String,
        labels: Vec<TrackLabel>,
    },
    SubscribeAnswer {
        session: SessionId,
        req: ReqId,
        pid: ParticipantId,
        sdp: String,
    },
    SetSubscription {
        session: SessionId,
        req: ReqId,
        pid: ParticipantId,
        track: TrackId,
        max_width: Option<u32>,
        paused: bool,
    },
    Mute {
        session: SessionId,
        req: ReqId,
        pid: ParticipantId,
        source: Source,
        muted: bool,
    },
    Leave {
        pid: ParticipantId,
    },
    /// A session resumed: send it the room as it is and any unanswered subscriber offer.
    Resync {
        session: SessionId,
        pid: ParticipantId,
    },
    CreateRoom {
        name: String,
        options: RoomOptions,
        reply: oneshot::Sender<Result<RoomSnapshot, SfuError>>,
    },
    CloseRoom {
        name: String,
        reply: Option<oneshot::Sender<Result<(), SfuError>>>,
    },
    GetRoom {
        name: String,
        reply: oneshot::Sender<Option<RoomSnapshot>>,
    },
    ListRooms {
        reply: oneshot::Sender<Vec<RoomSnapshot>>,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
}

/// A snapshot for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SfuStats {
    pub rooms: usize,
    pub participants: usize,
    pub tracks: usize,
    pub counters: strowger_sfu::Counters,
    pub room_sizes: Vec<(String, usize)>,
}

/// Handle used by the hub and the HTTP API.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::Sender<SfuCmd>,
}

impl MediaHandle {
    /// Queues a command; refuses at once when the media task is overloaded.
    pub fn send(&self, cmd: SfuCmd) -> Result<(), ProtoError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                ProtoError::new("unavailable", "media server busy, try again")
            }
            mpsc::error::TrySendError::Closed(_) => {
                ProtoError::new("unavailable", "media server stopped")
            }
        })
    }

    /// Sends a command and waits for its reply (for the HTTP API).
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> SfuCmd,
    ) -> Result<T, ProtoError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .map_err(|_| ProtoError::new("unavailable", "media server did not answer"))?
            .map_err(|_| ProtoError::new("internal", "media server dropped the request"))
    }
}

/// Binds the shared WebRTC socket with large buffers (bursts of video keyframes to many
/// subscribers must not be dropped by the kernel).
pub fn bind_udp(listen: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&listen.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Starts the media task on a bound socket.
pub fn start(
    socket: std::net::UdpSocket,
    cfg: strowger_sfu::SfuConfig,
    hub: mpsc::Sender<HubMsg>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(MediaHandle, SocketAddr)> {
    let socket = UdpSocket::from_std(socket)?;
    let local = socket.local_addr()?;
    let (tx, rx) = mpsc::channel(4096);
    let sfu = Sfu::new(cfg);
    tokio::spawn(run(socket, local, sfu, rx, hub, metrics));
    Ok((MediaHandle { tx }, local))
}

async fn run(
    socket: UdpSocket,
    local: SocketAddr,
    mut sfu: Sfu,
    mut rx: mpsc::Receiver<SfuCmd>,
    hub: mpsc::Sender<HubMsg>,
    metrics: Arc<Metrics>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let deadline = match drain(&mut sfu, &socket, &hub).await {
            Some(t) => t,
            None => return,
        };
        metrics.set_sfu_gauges(sfu.gauges());
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, src)) => {
                    let now = Instant::now();
                    sfu.handle_receive(now, src, local, &buf[..n]);
                    // Take what else is already queued before polling, up to a bound.
                    for _ in 0..64 {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, src)) => sfu.handle_receive(Instant::now(), src, local, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => {
                    // ICMP port unreachable surfaces here on Linux; it is not fatal.
                    tracing::debug!(error = %e, "udp receive error");
                }
            },
            cmd = rx.recv() => match cmd {
                Some(cmd) => {
                    if let Some(reply) = handle_cmd(&mut sfu, cmd) {
                        if hub.send(reply).await.is_err() { return; }
                    }
                }
                None => return,
            },
            _ = sleep => sfu.handle_timeout(Instant::now()),
        }
    }
}

/// Sends every pending datagram and event; returns the next deadline, or `None` if the hub is gone.
async fn drain(sfu: &mut Sfu, socket: &UdpSocket, hub: &mpsc::Sender<HubMsg>) -> Option<Instant> {
    loop {
        match sfu.poll_output() {
            Output::Transmit(t) => {
                if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                    tracing::debug!(dest = %t.destination, error = %e, "udp send failed");
                }
            }
            Output::Event(ev) => {
                if hub.send(HubMsg::Sfu(ev)).await.is_err() {
                    return None;
                }
            }
            Output::Timeout(t) => return Some(t),
        }
    }
}

fn reply(session: SessionId, req: ReqId, result: Result<Value, ProtoError>) -> HubMsg {
    HubMsg::Reply {
        session,
        req,
        result,
    }
}

/// Runs one command. A reply for a session is returned, to be sent to the hub by the async caller.
fn handle_cmd(sfu: &mut Sfu, cmd: SfuCmd) -> Option<HubMsg> {
    let now = Instant::now();
    match cmd {
        SfuCmd::Join {
            session,
            req,
            room,
            info,
            create,
        } => {
            if let Some(options) = create {
                if sfu.room(&room).is_none() {
                    if let Err(e) = sfu.create_room(now, &room, options) {
                        return Some(HubMsg::Joined {
                            session,
                            req,
                            room,
                            result: Err(e.into()),
                        });
                    }
                }
            }
            let result = sfu
                .join(now, &room, info)
                .map(|(pid, others)| (pid, participants_json(&others)))
                .map_err(ProtoError::from);
            Some(HubMsg::Joined {
                session,
                req,
                room,
                result,
            })
        }
        SfuCmd::PublishOffer {
            session,
            req,
            pid,
            sdp,
            labels,
        } => {
            let r = sfu
                .publish_offer(now, pid, &sdp, labels)
                .map(|(answer, tracks)| {
                    let tracks: Vec<Value> = tracks
                        .iter()
                        .map(|(mid, t)| {
                            let mut v = track_json(t);
                            v["mid"] = json!(mid);
                            v
                        })
                        .collect();
                    json!({"type": "publish_answer", "sdp": answer, "tracks": tracks})
                })
                .map_err(ProtoError::from);
            Some(reply(session, req, r))
        }
        SfuCmd::SubscribeAnswer {
            session,
            req,
            pid,
            sdp,
        } => match sfu.subscribe_answer(now, pid, &sdp) {
            Ok(()) => None,
            Err(e) => Some(reply(session, req, Err(e.into()))),
        },
        SfuCmd::SetSubscription {
            session,
            req,
            pid,
            track,
            max_width,
            paused,
        } => match sfu.set_subscription(now, pid, track, max_width, paused) {
            Ok(()) => None,
            Err(e) => Some(reply(session, req, Err(e.into()))),
        },
        SfuCmd::Mute {
            session,
            req,
            pid,
            source,
            muted,
        } => match sfu.set_muted(pid, source, muted) {
            Ok(()) => None,
            Err(e) => Some(reply(session, req, Err(e.into()))),
        },
        SfuCmd::Leave { pid } => {
            // Already gone is fine: leave is idempotent.
            let _ = sfu.leave(now, pid);
            None
        }
        SfuCmd::Resync { session, pid } => {
            let r = sfu
                .resync(pid)
                .map(|others| json!({"type": "room_state", "participantId": pid.to_string(), "participants": participants_json(&others)}))
                .map_err(ProtoError::from);
            // The snapshot must reach the client before the offer sent again, so the hub gets
            // it first: the offer is queued behind it in this task's output.
            Some(reply(session, None, r))
        }
        SfuCmd::CreateRoom {
            name,
            options,
            reply,
        } => {
            let r = sfu
                .create_room(now, &name, options)
                .map(|()| sfu.room(&name).expect("just created"));
            let _ = reply.send(r);
            None
        }
        SfuCmd::CloseRoom { name, reply } => {
            let r = sfu.close_room(now, &name);
            if let Some(tx) = reply {
                let _ = tx.send(r);
            }
            None
        }
        SfuCmd::GetRoom { name, reply } => {
            let _ = reply.send(sfu.room(&name));
            None
        }
        SfuCmd::ListRooms { reply } => {
            let rooms = sfu
                .room_names()
                .iter()
                .filter_map(|n| sfu.room(n))
                .collect();
            let _ = reply.send(rooms);
            None
        }
        SfuCmd::Stats { reply } => {
            let (rooms, participants, tracks) = sfu.gauges();
            let _ = reply.send(SfuStats {
                rooms,
                participants,
                tracks,
                counters: sfu.counters().clone(),
                room_sizes: sfu.room_sizes(),
            });
            None
        }
    }
}

/// JSON of a track (protocol TRACK).
pub fn track_json(t: &strowger_sfu::TrackSummary) -> Value {
    json!({
        "id": t.id.to_string(),
        "kind": kind_str(t.kind),
        "source": t.source.as_str(),
        "muted": t.muted,
        "simulcast": t.simulcast,
    })
}

pub fn kind_str(k: strowger_sfu::str0m::media::MediaKind) -> &'static str {
    match k {
        strowger_sfu::str0m::media::MediaKind::Audio => "audio",
        strowger_sfu::str0m::media::MediaKind::Video => "video",
    }
}

pub fn participant_json(p: &ParticipantSummary) -> Value {
    json!({
        "id": p.id.to_string(),
        "identity": p.identity,
        "name": p.name,
        "tracks": p.tracks.iter().map(track_json).collect::<Vec<_>>(),
    })
}

fn participants_json(ps: &[ParticipantSummary]) -> Value {
    Value::Array(ps.iter().map(participant_json).collect())
}

pub fn room_json(r: &RoomSnapshot) -> Value {
    json!({
        "name": r.name,
        "maxParticipants": r.options.max_participants,
        "emptyTimeoutSecs": r.options.empty_timeout.as_secs(),
        "numParticipants": r.participants.len(),
        "participants": participants_json(&r.participants),
    })
}
