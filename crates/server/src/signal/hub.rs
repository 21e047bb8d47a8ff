//! The hub: one task that owns every signalling session, presence and 1:1 call.
//!
//! WebSocket tasks are thin: they read frames, enforce size and rate limits, verify the token of
//! `hello` and hand parsed messages here. The hub decides, answers through each connection's
//! bounded outbound queue (a client that does not read is cut off, never buffered without end),
//! and sends room commands to the media task without ever waiting for it; the media task's
//! replies and events come back as messages.
//!
//! A session outlives its WebSocket by `signal.resume_window_secs`, so that a client whose
//! network drops can resume it (its calls and room membership intact, others seeing no leave).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strowger_sfu::{
    LeaveReason, Notice, ParticipantId, ParticipantInfo, RoomOptions, SfuEvent, Source, TrackLabel,
};
use tokio::sync::mpsc;

use super::proto::{error_json, ClientMsg, ProtoError, ReqId, Resume};
use crate::auth::{random_id, valid_identity, Claims, Grants};
use crate::config::Config;
use crate::media::{kind_str, participant_json, track_json, MediaHandle, SfuCmd};
use crate::metrics::Metrics;

pub type SessionId = String;
pub type ConnId = u64;

/// What the hub sends to a WebSocket task.
#[derive(Debug, Clone)]
pub enum WsOut {
    Text(Arc<str>),
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// Messages to the hub.
#[derive(Debug)]
pub enum HubMsg {
    /// A connection presented a valid token.
    Connect {
        conn: ConnId,
        out: mpsc::Sender<WsOut>,
        claims: Box<Claims>,
        resume: Option<Resume>,
        req: ReqId,
    },
    /// A parsed message from a connected client.
    Client { conn: ConnId, msg: ClientMsg },
    /// The WebSocket ended; `clean` when the client closed it on purpose (code 1000).
    Disconnected { conn: ConnId, clean: bool },
    /// An event of the media task.
    Sfu(SfuEvent),
    /// The media task's answer to a join.
    Joined {
        session: SessionId,
        req: ReqId,
        room: String,
        result: Result<(ParticipantId, Value), ProtoError>,
    },
    /// The media task's answer to another request.
    Reply {
        session: SessionId,
        req: ReqId,
        result: Result<Value, ProtoError>,
    },
    /// Who is online (REST API).
    Presence {
        reply: tokio::sync::oneshot::Sender<Value>,
    },
}

struct Session {
    identity: String,
    name: String,
    grants: Grants,
    resume_key: String,
    conn: Option<(ConnId, mpsc::Sender<WsOut>)>,
    detached_at: Option<Instant>,
    participant: Option<ParticipantId>,
    room: Option<String>,
    joining: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CallState {
    Ringing { deadline: Instant },
    Active { callee: SessionId },
}

struct Call {
    caller: SessionId,
    callee_identity: String,
    ringing: Vec<SessionId>,
    state: CallState,
}

const CALL_ROOM_PREFIX: &str = "call:";
/// Presence lists longer than this are truncated.
const PRESENCE_CAP: usize = 500;

pub struct Hub {
    cfg: Arc<Config>,
    media: MediaHandle,
    metrics: Arc<Metrics>,
    sessions: HashMap<SessionId, Session>,
    conns: HashMap<ConnId, SessionId>,
    by_identity: HashMap<String, BTreeSet<SessionId>>,
    by_pid: HashMap<ParticipantId, SessionId>,
    calls: HashMap<String, Call>,
    presence_dirty: bool,
}

/// Starts the hub task; returns its inbox.
pub fn start(
    cfg: Arc<Config>,
    media_slot: tokio::sync::oneshot::Receiver<MediaHandle>,
    metrics: Arc<Metrics>,
) -> mpsc::Sender<HubMsg> {
    let (tx, rx) = mpsc::channel(8192);
    tokio::spawn(async move {
        let Ok(media) = media_slot.await else {
            return;
        };
        let hub = Hub {
            cfg,
            media,
            metrics,
            sessions: HashMap::new(),
            conns: HashMap::new(),
            by_identity: HashMap::new(),
            by_pid: HashMap::new(),
            calls: HashMap::new(),
            presence_dirty: false,
        };
        hub.run(rx).await;
    });
    tx
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => self.handle(m),
                    None => return,
                },
                _ = tick.tick() => self.tick(Instant::now()),
            }
        }
    }

    fn handle(&mut self, m: HubMsg) {
        match m {
            HubMsg::Connect {
                conn,
                out,
                claims,
                resume,
                req,
            } => self.on_connect(conn, out, *claims, resume, req),
            HubMsg::Client { conn, msg } => {
                let Some(sid) = self.conns.get(&conn).cloned() else {
                    return;
                };
                if let Err((req, e)) = self.on_client(&sid, msg) {
                    self.metrics.signal_error(e.code);
                    self.send_error(&sid, &req, &e);
                }
            }
            HubMsg::Disconnected { conn, clean } => self.on_disconnect(conn, clean),
            HubMsg::Sfu(ev) => self.on_sfu(ev),
            HubMsg::Joined {
                session,
                req,
                room,
                result,
            } => self.on_joined(session, req, room, result),
            HubMsg::Reply {
                session,
                req,
                result,
            } => match result {
                Ok(mut v) => {
                    if let (Some(id), Value::Object(o)) = (req, &mut v) {
                        o.insert("id".into(), id);
                    }
                    self.send_json(&session, &v);
                }
                Err(e) => {
                    self.metrics.signal_error(e.code);
                    self.send_error(&session, &req, &e);
                }
            },
            HubMsg::Presence { reply } => {
                let _ = reply.send(self.presence_json());
            }
        }
    }

    // ------------------------------------------------------------- sessions

    fn on_connect(
        &mut self,
        conn: ConnId,
        out: mpsc::Sender<WsOut>,
        claims: Claims,
        resume: Option<Resume>,
        req: ReqId,
    ) {
        // Resume: same identity, right key, still within the window.
        if let Some(r) = resume {
            let ok = self.sessions.get(&r.session_id).is_some_and(|s| {
                s.identity == claims.sub
                    && crate::auth::ApiKey::new(String::new(), s.resume_key.clone())
                        .secret_matches(&r.resume_key)
            });
            if ok {
                let sid = r.session_id;
                let s = self.sessions.get_mut(&sid).expect("checked");
                if let Some((old, old_out)) = s.conn.take() {
                    let _ = old_out.try_send(WsOut::Close(4409, "session resumed elsewhere"));
                    self.conns.remove(&old);
                }
                s.conn = Some((conn, out));
                s.detached_at = None;
                // The token may have been refreshed: take its name and grants.
                s.name = claims.name.clone();
                s.grants = claims.grants.clone();
                self.conns.insert(conn, sid.clone());
                tracing::info!(session = %sid, conn, identity = %claims.sub, "session resumed");
                self.metrics.resumes.inc();
                self.send_welcome(&sid, req, true);
                if let Some(pid) = self.sessions.get(&sid).and_then(|s| s.participant) {
                    let _ = self.media.send(SfuCmd::Resync {
                        session: sid.clone(),
                        pid,
                    });
                }
                self.presence_dirty = true;
                return;
            }
        }
        if self.sessions.len() >= self.cfg.signal.max_sessions {
            let e = ProtoError::new("unavailable", "too many sessions on this server");
            let _ = out.try_send(WsOut::Text(error_json(&req, &e).into()));
            let _ = out.try_send(WsOut::Close(1013, "try again later"));
            return;
        }
        let sid = random_id("s_", 12);
        let name = if claims.name.is_empty() {
            claims.sub.clone()
        } else {
            claims.name.clone()
        };
        self.sessions.insert(
            sid.clone(),
            Session {
                identity: claims.sub.clone(),
                name,
                grants: claims.grants.clone(),
                resume_key: random_id("", 16),
                conn: Some((conn, out)),
                detached_at: None,
                participant: None,
                room: None,
                joining: false,
            },
        );
        self.conns.insert(conn, sid.clone());
        self.by_identity
            .entry(claims.sub.clone())
            .or_default()
            .insert(sid.clone());
        self.metrics.sessions.set(self.sessions.len() as i64);
        tracing::info!(session = %sid, conn, identity = %claims.sub, "session started");
        self.send_welcome(&sid, req, false);
        self.presence_dirty = true;
    }

    fn send_welcome(&mut self, sid: &str, req: ReqId, resumed: bool) {
        let Some(s) = self.sessions.get(sid) else {
            return;
        };
        let mut v = json!({
            "type": "welcome",
            "sessionId": sid,
            "resumeKey": s.resume_key,
            "resumed": resumed,
            "identity": s.identity,
            "name": s.name,
            "grants": s.grants,
            "iceServers": [],
        });
        if resumed {
            if let (Some(room), Some(pid)) = (&s.room, s.participant) {
                v["room"] = json!({"name": room, "participantId": pid.to_string()});
            }
        }
        if let Some(id) = req {
            v["id"] = id;
        }
        self.send_json(sid, &v);
        let p = self.presence_json();
        self.send_json(sid, &p);
    }

    fn on_disconnect(&mut self, conn: ConnId, clean: bool) {
        let Some(sid) = self.conns.remove(&conn) else {
            return;
        };
        if clean {
            tracing::info!(session = %sid, "client closed the session");
            self.end_session(&sid);
            return;
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            if s.conn.as_ref().is_some_and(|(c, _)| *c == conn) {
                s.conn = None;
                s.detached_at = Some(Instant::now());
                tracing::info!(session = %sid, window_secs = self.cfg.signal.resume_window_secs, "connection lost; session kept for resume");
            }
        }
    }

    /// Ends a session for good: leaves its room, ends its calls, updates presence.
    fn end_session(&mut self, sid: &str) {
        let Some(s) = self.sessions.remove(sid) else {
            return;
        };
        if let Some((c, _)) = &s.conn {
            self.conns.remove(c);
        }
        if let Some(pid) = s.participant {
            self.by_pid.remove(&pid);
            let _ = self.media.send(SfuCmd::Leave { pid });
        }
        if let Some(set) = self.by_identity.get_mut(&s.identity) {
            set.remove(sid);
            if set.is_empty() {
                self.by_identity.remove(&s.identity);
            }
        }
        let involved: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.caller == sid
                    || c.ringing.iter().any(|r| r == sid)
                    || c.state
                        == CallState::Active {
                            callee: sid.to_string(),
                        }
            })
            .map(|(id, _)| id.clone())
            .collect();
        for cid in involved {
            self.session_gone_from_call(&cid, sid);
        }
        self.metrics.sessions.set(self.sessions.len() as i64);
        self.presence_dirty = true;
        tracing::info!(session = %sid, identity = %s.identity, "session ended");
    }

    fn tick(&mut self, now: Instant) {
        let window = Duration::from_secs(self.cfg.signal.resume_window_secs);
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.detached_at
                    .is_some_and(|t| now.saturating_duration_since(t) >= window)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for sid in expired {
            tracing::info!(session = %sid, "resume window passed");
            self.end_session(&sid);
        }
        let timed_out: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.state, CallState::Ringing { deadline } if deadline <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for cid in timed_out {
            self.end_call(&cid, "no_answer", None);
        }
        if self.presence_dirty {
            self.presence_dirty = false;
            let p: Arc<str> = serde_json::to_string(&self.presence_json())
                .expect("serializes")
                .into();
            let ids: Vec<SessionId> = self.sessions.keys().cloned().collect();
            for sid in ids {
                self.send_raw(&sid, WsOut::Text(p.clone()));
            }
        }
    }

    fn presence_json(&self) -> Value {
        let mut users: Vec<Value> = Vec::new();
        for (identity, sids) in &self.by_identity {
            if users.len() >= PRESENCE_CAP {
                break;
            }
            let name = sids
                .iter()
                .find_map(|s| self.sessions.get(s))
                .map(|s| s.name.clone())
                .unwrap_or_default();
            users.push(json!({"identity": identity, "name": name, "devices": sids.len()}));
        }
        users.sort_by(|a, b| a["identity"].as_str().cmp(&b["identity"].as_str()));
        json!({"type": "presence", "users": users, "truncated": self.by_identity.len() > PRESENCE_CAP})
    }

    // ---------------------------------------------------------------- sending

    fn send_raw(&mut self, sid: &str, m: WsOut) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some((conn, out)) = &s.conn else {
            // Detached: messages are lost; the client resyncs from `welcome` on resume.
            return;
        };
        if let Err(e) = out.try_send(m) {
            let conn = *conn;
            match e {
                mpsc::error::TrySendError::Full(_) => {
                    tracing::warn!(session = %sid, "client too slow to read; connection dropped");
                    self.metrics.slow_clients.inc();
                }
                mpsc::error::TrySendError::Closed(_) => {}
            }
            // Dropping our sender makes the WebSocket task close; the session may resume.
            s.conn = None;
            s.detached_at = Some(Instant::now());
            self.conns.remove(&conn);
        }
    }

    fn send_json(&mut self, sid: &str, v: &Value) {
        let text = serde_json::to_string(v).expect("serializes");
        self.send_raw(sid, WsOut::Text(text.into()));
    }

    fn send_error(&mut self, sid: &str, req: &ReqId, e: &ProtoError) {
        let text = error_json(req, e);
        self.send_raw(sid, WsOut::Text(text.into()));
    }

    // --------------------------------------------------------------- messages

    fn on_client(&mut self, sid: &str, msg: ClientMsg) -> Result<(), (ReqId, ProtoError)> {
        match msg {
            ClientMsg::Hello { id, .. } => {
                Err((id, ProtoError::new("out_of_order", "already signed in")))
            }
            ClientMsg::Ping { id } => {
                let mut v = json!({"type": "pong"});
                if let Some(id) = id {
                    v["id"] = id;
                }
                self.send_json(sid, &v);
                Ok(())
            }
            ClientMsg::Pong { .. } | ClientMsg::IceCandidate { .. } => Ok(()),
            ClientMsg::Call { id, to, video } => self
                .on_call(sid, id.clone(), to, video)
                .map_err(|e| (id, e)),
            ClientMsg::Accept { id, call_id } => self.on_accept(sid, &call_id).map_err(|e| (id, e)),
            ClientMsg::Reject { id, call_id } => self.on_reject(sid, &call_id).map_err(|e| (id, e)),
            ClientMsg::Cancel { id, call_id } => self.on_cancel(sid, &call_id).map_err(|e| (id, e)),
            ClientMsg::Hangup { id, call_id } => self.on_hangup(sid, &call_id).map_err(|e| (id, e)),
            ClientMsg::Join { id, room } => {
                self.on_join(sid, id.clone(), room).map_err(|e| (id, e))
            }
            ClientMsg::Leave { id } => {
                let room = self.on_leave(sid).map_err(|e| (id.clone(), e))?;
                let mut v = json!({"type": "left", "room": room, "reason": "left"});
                if let Some(id) = id {
                    v["id"] = id;
                }
                self.send_json(sid, &v);
                Ok(())
            }
            ClientMsg::PublishOffer { id, sdp, tracks } => {
                let pid = self.participant(sid).map_err(|e| (id.clone(), e))?;
                let mut labels = Vec::with_capacity(tracks.len());
                for t in tracks {
                    let source = Source::parse(&t.source).ok_or_else(|| {
                        (
                            id.clone(),
                            ProtoError::new(
                                "bad_request",
                                format!(
                                    "unknown source '{}'",
                                    t.source.chars().take(32).collect::<String>()
                                ),
                            ),
                        )
                    })?;
                    labels.push(TrackLabel {
                        mid: t.mid,
                        source,
                        width: t.width,
                    });
                }
                self.media
                    .send(SfuCmd::PublishOffer {
                        session: sid.to_string(),
                        req: id.clone(),
                        pid,
                        sdp,
                        labels,
                    })
                    .map_err(|e| (id, e))
            }
            ClientMsg::SubscribeAnswer { id, sdp } => {
                let pid = self.participant(sid).map_err(|e| (id.clone(), e))?;
                self.media
                    .send(SfuCmd::SubscribeAnswer {
                        session: sid.to_string(),
                        req: id.clone(),
                        pid,
                        sdp,
                    })
                    .map_err(|e| (id, e))
            }
            ClientMsg::SetSubscription {
                id,
                track_id,
                max_width,
                max_height,
                paused,
            } => {
                let pid = self.participant(sid).map_err(|e| (id.clone(), e))?;
                let track = track_id
                    .parse()
                    .map_err(|_| (id.clone(), ProtoError::new("not_found", "no such track")))?;
                // A height limit becomes a width limit at 16:9 (the common camera aspect).
                let w_from_h = max_height.map(|h| h.saturating_mul(16) / 9);
                let max_width = match (max_width, w_from_h) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.media
                    .send(SfuCmd::SetSubscription {
                        session: sid.to_string(),
                        req: id.clone(),
                        pid,
                        track,
                        max_width,
                        paused,
                    })
                    .map_err(|e| (id, e))
            }
            ClientMsg::Mute { id, source, muted } => {
                let pid = self.participant(sid).map_err(|e| (id.clone(), e))?;
                let source = Source::parse(&source).ok_or_else(|| {
                    (id.clone(), ProtoError::new("bad_request", "unknown source"))
                })?;
                self.media
                    .send(SfuCmd::Mute {
                        session: sid.to_string(),
                        req: id.clone(),
                        pid,
                        source,
                        muted,
                    })
                    .map_err(|e| (id, e))
            }
        }
    }

    fn participant(&self, sid: &str) -> Result<ParticipantId, ProtoError> {
        self.sessions
            .get(sid)
            .and_then(|s| s.participant)
            .ok_or_else(|| ProtoError::new("out_of_order", "join a room first"))
    }

    // ------------------------------------------------------------------ rooms

    fn on_join(&mut self, sid: &str, req: ReqId, room: String) -> Result<(), ProtoError> {
        strowger_sfu::validate_room_name(&room).map_err(ProtoError::from)?;
        let s = self
            .sessions
            .get(sid)
            .ok_or_else(|| ProtoError::new("internal", "no session"))?;
        if s.participant.is_some() || s.joining {
            return Err(ProtoError::new(
                "out_of_order",
                "already in a room; leave it first",
            ));
        }
        let mut create = None;
        if let Some(call_id) = room.strip_prefix(CALL_ROOM_PREFIX) {
            let call = self
                .calls
                .get(call_id)
                .ok_or_else(|| ProtoError::new("not_found", "no such call"))?;
            let party = match &call.state {
                CallState::Active { callee } => callee == sid || call.caller == sid,
                CallState::Ringing { .. } => false,
            };
            if !party {
                return Err(ProtoError::new("forbidden", "not a party of this call"));
            }
            create = Some(RoomOptions {
                max_participants: 2,
                empty_timeout: Duration::from_secs(60),
            });
        } else if !s.grants.allows_room(&room) {
            return Err(ProtoError::new(
                "forbidden",
                format!("token does not grant room '{room}'"),
            ));
        }
        // In a call room both sides may always publish and subscribe; screenshare follows the token.
        let call_room = create.is_some();
        let info = ParticipantInfo {
            identity: s.identity.clone(),
            name: s.name.clone(),
            can_publish: s.grants.publish || call_room,
            can_subscribe: s.grants.subscribe || call_room,
            can_screenshare: s.grants.screenshare || (call_room && s.grants.call),
        };
        self.media.send(SfuCmd::Join {
            session: sid.to_string(),
            req,
            room,
            info,
            create,
        })?;
        if let Some(s) = self.sessions.get_mut(sid) {
            s.joining = true;
        }
        Ok(())
    }

    fn on_joined(
        &mut self,
        sid: SessionId,
        req: ReqId,
        room: String,
        result: Result<(ParticipantId, Value), ProtoError>,
    ) {
        let alive = self.sessions.contains_key(&sid);
        match result {
            Ok((pid, others)) => {
                if !alive {
                    // The session ended while the join was in flight.
                    let _ = self.media.send(SfuCmd::Leave { pid });
                    return;
                }
                let s = self.sessions.get_mut(&sid).expect("alive");
                s.joining = false;
                s.participant = Some(pid);
                s.room = Some(room.clone());
                self.by_pid.insert(pid, sid.clone());
                tracing::info!(session = %sid, participant = %pid, room = %room, "joined room");
                let mut v = json!({"type": "joined", "room": room, "participantId": pid.to_string(), "participants": others});
                if let Some(id) = req {
                    v["id"] = id;
                }
                self.send_json(&sid, &v);
            }
            Err(e) => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.joining = false;
                }
                self.metrics.signal_error(e.code);
                self.send_error(&sid, &req, &e);
            }
        }
    }

    /// Leaves the session's room; returns its name.
    fn on_leave(&mut self, sid: &str) -> Result<Option<String>, ProtoError> {
        let s = self
            .sessions
            .get_mut(sid)
            .ok_or_else(|| ProtoError::new("internal", "no session"))?;
        let pid = s
            .participant
            .take()
            .ok_or_else(|| ProtoError::new("out_of_order", "not in a room"))?;
        let room = s.room.take();
        self.by_pid.remove(&pid);
        self.media.send(SfuCmd::Leave { pid })?;
        Ok(room)
    }

    fn on_sfu(&mut self, ev: SfuEvent) {
        match ev {
            SfuEvent::Notify(pid, n) => {
                let Some(sid) = self.by_pid.get(&pid).cloned() else {
                    return;
                };
                let v = notice_json(&n);
                self.send_json(&sid, &v);
            }
            SfuEvent::Removed(pid, reason) => {
                let Some(sid) = self.by_pid.remove(&pid) else {
                    return;
                };
                let room = self.sessions.get_mut(&sid).and_then(|s| {
                    s.participant = None;
                    s.room.take()
                });
                let reason = match reason {
                    LeaveReason::Left => "left",
                    LeaveReason::MediaFailed => "media_failed",
                    LeaveReason::RoomClosed => "room_closed",
                };
                tracing::info!(session = %sid, participant = %pid, reason, "removed from room");
                self.send_json(
                    &sid,
                    &json!({"type": "left", "room": room, "reason": reason}),
                );
            }
            SfuEvent::RoomCreated(name) => {
                tracing::info!(room = %name, "room created");
                self.metrics.rooms_created.inc();
            }
            SfuEvent::RoomClosed(name) => {
                tracing::info!(room = %name, "room closed");
                // A call whose room closed (emptied, or deleted through the API) is over.
                if let Some(call_id) = name.strip_prefix(CALL_ROOM_PREFIX) {
                    let active = self
                        .calls
                        .get(call_id)
                        .is_some_and(|c| matches!(c.state, CallState::Active { .. }));
                    if active {
                        self.end_call(call_id, "hangup", None);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ calls

    fn on_call(
        &mut self,
        sid: &str,
        req: ReqId,
        to: String,
        video: bool,
    ) -> Result<(), ProtoError> {
        let s = self
            .sessions
            .get(sid)
            .ok_or_else(|| ProtoError::new("internal", "no session"))?;
        if !s.grants.call {
            return Err(ProtoError::new("forbidden", "token does not grant calls"));
        }
        if !valid_identity(&to) {
            return Err(ProtoError::new(
                "bad_request",
                "'to' is not a valid identity",
            ));
        }
        if to == s.identity {
            return Err(ProtoError::new("bad_request", "cannot call yourself"));
        }
        let caller_identity = s.identity.clone();
        let caller_name = s.name.clone();
        let ringing_now = self
            .calls
            .values()
            .filter(|c| {
                matches!(c.state, CallState::Ringing { .. })
                    && self
                        .sessions
                        .get(&c.caller)
                        .is_some_and(|x| x.identity == caller_identity)
            })
            .count();
        if ringing_now >= self.cfg.calls.max_ringing_per_user {
            return Err(ProtoError::new(
                "rate_limited",
                "too many calls ringing at once",
            ));
        }
        let call_id = random_id("c_", 10);
        self.metrics.calls_started.inc();
        let callee_sessions: Vec<SessionId> = self
            .by_identity
            .get(&to)
            .map(|set| {
                set.iter()
                    .filter(|x| self.sessions.get(*x).is_some_and(|s| s.grants.call))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut ringing_msg = json!({"type": "call_ringing", "callId": call_id, "to": to});
        if let Some(id) = req.clone() {
            ringing_msg["id"] = id;
        }
        if callee_sessions.is_empty() {
            self.reply_call_ended(sid, &call_id, "offline", req);
            return Ok(());
        }
        let busy = self.calls.values().any(|c| match &c.state {
            CallState::Active { callee } => {
                callee_sessions.contains(callee) || callee_sessions.contains(&c.caller)
            }
            CallState::Ringing { .. } => false,
        });
        if busy {
            self.reply_call_ended(sid, &call_id, "busy", req);
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(self.cfg.calls.ring_timeout_secs);
        self.calls.insert(
            call_id.clone(),
            Call {
                caller: sid.to_string(),
                callee_identity: to.clone(),
                ringing: callee_sessions.clone(),
                state: CallState::Ringing { deadline },
            },
        );
        tracing::info!(call = %call_id, from = %caller_identity, to = %to, devices = callee_sessions.len(), "call ringing");
        self.send_json(sid, &ringing_msg);
        let incoming = json!({
            "type": "incoming_call",
            "callId": call_id,
            "from": {"identity": caller_identity, "name": caller_name},
            "video": video,
        });
        for c in callee_sessions {
            self.send_json(&c, &incoming);
        }
        Ok(())
    }

    fn reply_call_ended(&mut self, sid: &str, call_id: &str, reason: &str, req: ReqId) {
        self.metrics.call_ended(reason);
        let mut v = json!({"type": "call_ended", "callId": call_id, "reason": reason});
        if let Some(id) = req {
            v["id"] = id;
        }
        self.send_json(sid, &v);
    }

    fn on_accept(&mut self, sid: &str, call_id: &str) -> Result<(), ProtoError> {
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| ProtoError::new("not_found", "no such call"))?;
        if !call.ringing.iter().any(|s| s == sid) {
            return Err(ProtoError::new(
                "forbidden",
                "this call is not ringing here",
            ));
        }
        if !matches!(call.state, CallState::Ringing { .. }) {
            return Err(ProtoError::new("out_of_order", "call already answered"));
        }
        call.state = CallState::Active {
            callee: sid.to_string(),
        };
        let others: Vec<SessionId> = call.ringing.drain(..).filter(|s| s != sid).collect();
        let caller = call.caller.clone();
        let room = format!("{CALL_ROOM_PREFIX}{call_id}");
        tracing::info!(call = %call_id, session = %sid, "call accepted");
        let peer_of = |hub: &Hub, s: &str| {
            hub.sessions
                .get(s)
                .map(|x| json!({"identity": x.identity, "name": x.name}))
                .unwrap_or(Value::Null)
        };
        let to_caller = json!({"type": "call_accepted", "callId": call_id, "room": room, "peer": peer_of(self, sid)});
        let to_callee = json!({"type": "call_accepted", "callId": call_id, "room": room, "peer": peer_of(self, &caller)});
        self.send_json(&caller, &to_caller);
        self.send_json(sid, &to_callee);
        let elsewhere =
            json!({"type": "call_ended", "callId": call_id, "reason": "answered_elsewhere"});
        for o in others {
            self.send_json(&o, &elsewhere);
        }
        Ok(())
    }

    fn on_reject(&mut self, sid: &str, call_id: &str) -> Result<(), ProtoError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| ProtoError::new("not_found", "no such call"))?;
        if !call.ringing.iter().any(|s| s == sid)
            || !matches!(call.state, CallState::Ringing { .. })
        {
            return Err(ProtoError::new(
                "out_of_order",
                "this call is not ringing here",
            ));
        }
        self.end_call(call_id, "rejected", None);
        Ok(())
    }

    fn on_cancel(&mut self, sid: &str, call_id: &str) -> Result<(), ProtoError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| ProtoError::new("not_found", "no such call"))?;
        if call.caller != sid {
            return Err(ProtoError::new("forbidden", "only the caller may cancel"));
        }
        if !matches!(call.state, CallState::Ringing { .. }) {
            return Err(ProtoError::new(
                "out_of_order",
                "call already answered; hang up instead",
            ));
        }
        self.end_call(call_id, "cancelled", None);
        Ok(())
    }

    fn on_hangup(&mut self, sid: &str, call_id: &str) -> Result<(), ProtoError> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| ProtoError::new("not_found", "no such call"))?;
        match &call.state {
            CallState::Active { callee } if callee == sid || call.caller == sid => {
                self.end_call(call_id, "hangup", None);
                Ok(())
            }
            CallState::Ringing { .. } if call.caller == sid => {
                self.end_call(call_id, "cancelled", None);
                Ok(())
            }
            CallState::Ringing { .. } if call.ringing.iter().any(|s| s == sid) => {
                self.end_call(call_id, "rejected", None);
                Ok(())
            }
            _ => Err(ProtoError::new("forbidden", "not a party of this call")),
        }
    }

    /// A party's session ended.
    fn session_gone_from_call(&mut self, call_id: &str, sid: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        match &call.state {
            CallState::Ringing { .. } if call.caller != sid => {
                call.ringing.retain(|s| s != sid);
                if call.ringing.is_empty() {
                    self.end_call(call_id, "offline", Some(sid));
                }
            }
            _ => self.end_call(call_id, "disconnected", Some(sid)),
        }
    }

    /// Ends a call and tells every remaining party why; closes its room.
    fn end_call(&mut self, call_id: &str, reason: &str, skip: Option<&str>) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.metrics.call_ended(reason);
        tracing::info!(call = %call_id, reason, callee = %call.callee_identity, "call ended");
        let v = json!({"type": "call_ended", "callId": call_id, "reason": reason});
        let mut parties = vec![call.caller.clone()];
        parties.extend(call.ringing.iter().cloned());
        if let CallState::Active { callee } = &call.state {
            parties.push(callee.clone());
            let _ = self.media.send(SfuCmd::CloseRoom {
                name: format!("{CALL_ROOM_PREFIX}{call_id}"),
                reply: None,
            });
        }
        for p in parties {
            if Some(p.as_str()) != skip {
                self.send_json(&p, &v);
            }
        }
    }
}

/// The protocol form of a room notice.
fn notice_json(n: &Notice) -> Value {
    match n {
        Notice::ParticipantJoined(p) => {
            json!({"type": "participant_joined", "participant": participant_json(p)})
        }
        Notice::ParticipantLeft(id) => {
            json!({"type": "participant_left", "participantId": id.to_string()})
        }
        Notice::TrackPublished(p, t) => {
            json!({"type": "track_published", "participantId": p.to_string(), "track": track_json(t)})
        }
        Notice::TrackUnpublished(p, t) => {
            json!({"type": "track_unpublished", "participantId": p.to_string(), "trackId": t.to_string()})
        }
        Notice::TrackMuted(p, t, m) => {
            json!({"type": "track_muted", "participantId": p.to_string(), "trackId": t.to_string(), "muted": m})
        }
        Notice::ActiveSpeakers(list) => {
            json!({"type": "active_speakers", "speakers": list.iter().map(|p| p.to_string()).collect::<Vec<_>>()})
        }
        Notice::SubscribeOffer { sdp, tracks } => json!({
            "type": "subscribe_offer",
            "sdp": sdp,
            "tracks": tracks.iter().map(|t| json!({
                "mid": t.mid,
                "trackId": t.track.to_string(),
                "participantId": t.participant.to_string(),
                "kind": kind_str(t.kind),
                "source": t.source.as_str(),
            })).collect::<Vec<_>>(),
        }),
        Notice::RoomClosed(room) => {
            json!({"type": "room_closed", "room": room, "reason": "closed"})
        }
    }
}
