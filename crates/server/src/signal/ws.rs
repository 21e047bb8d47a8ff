//! One WebSocket connection: size and rate limits, `hello` with token verification, keepalive,
//! and relaying parsed messages to the hub and the hub's messages to the socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::mpsc;

use super::hub::{HubMsg, WsOut};
use super::proto::{error_json, parse, ClientMsg, ProtoError, ReqId};
use crate::http::AppState;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(15);
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Outbound messages queued per connection before the client counts as too slow.
const OUT_QUEUE: usize = 512;

/// A token bucket: `rate` per second, `burst` deep.
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
    strikes: u32,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let el = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + el * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn send_text(ws: &mut WebSocket, s: &str) -> bool {
    ws.send(Message::Text(Utf8Bytes::from(s))).await.is_ok()
}

async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

pub async fn serve(mut ws: WebSocket, state: AppState) {
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let metrics = state.metrics.clone();
    metrics.ws_connections.inc();
    let max = state.cfg.signal.max_message_bytes;
    let mut bucket = Bucket {
        tokens: f64::from(state.cfg.signal.rate_burst),
        rate: f64::from(state.cfg.signal.rate_per_sec),
        burst: f64::from(state.cfg.signal.rate_burst),
        at: Instant::now(),
        strikes: 0,
    };

    // 1. hello, within HELLO_TIMEOUT.
    let hello = tokio::time::timeout(HELLO_TIMEOUT, next_text(&mut ws, max)).await;
    let text = match hello {
        Ok(Ok(Incoming::Text(t))) => t,
        Ok(Err(e)) => {
            let _ = send_text(&mut ws, &error_json(&None, &e)).await;
            close(
                &mut ws,
                if e.code == "too_large" { 1009 } else { 1008 },
                "bad first message",
            )
            .await;
            metrics.ws_connections.dec();
            return;
        }
        Ok(Ok(Incoming::Closed(_))) => {
            metrics.ws_connections.dec();
            return;
        }
        Err(_) => {
            close(&mut ws, 4001, "hello expected").await;
            metrics.ws_connections.dec();
            return;
        }
    };
    let (req, token, resume) = match parse(&text) {
        Ok(ClientMsg::Hello { id, token, resume }) => (id, token, resume),
        Ok(_) => {
            let e = ProtoError::new("out_of_order", "the first message must be hello");
            let _ = send_text(&mut ws, &error_json(&None, &e)).await;
            close(&mut ws, 4001, "hello expected").await;
            metrics.ws_connections.dec();
            return;
        }
        Err((id, e)) => {
            let _ = send_text(&mut ws, &error_json(&id, &e)).await;
            close(&mut ws, 4001, "hello expected").await;
            metrics.ws_connections.dec();
            return;
        }
    };
    let claims = match state.key.verify(&token) {
        Ok(c) => c,
        Err(e) => {
            // The reason is logged, never the token.
            tracing::info!(conn, reason = %e, "token refused");
            metrics.auth_failures.inc();
            let pe = ProtoError::new("unauthorized", "invalid or expired token");
            let _ = send_text(&mut ws, &error_json(&req, &pe)).await;
            close(&mut ws, 4401, "unauthorized").await;
            metrics.ws_connections.dec();
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<WsOut>(OUT_QUEUE);
    if state
        .hub
        .send(HubMsg::Connect {
            conn,
            out: out_tx,
            claims: Box::new(claims),
            resume,
            req,
        })
        .await
        .is_err()
    {
        close(&mut ws, 1011, "server shutting down").await;
        metrics.ws_connections.dec();
        return;
    }

    // 2. the session.
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut clean = false;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(WsOut::Text(t)) => {
                    if !send_text(&mut ws, &t).await { break; }
                }
                Some(WsOut::Close(code, reason)) => {
                    close(&mut ws, code, reason).await;
                    clean = code == 4409;
                    break;
                }
                None => {
                    // The hub dropped us (too slow, or the session ended).
                    close(&mut ws, 1011, "connection dropped by server").await;
                    break;
                }
            },
            msg = next_text(&mut ws, max) => {
                last_heard = Instant::now();
                match msg {
                    Ok(Incoming::Text(text)) => {
                        if bucket.take(Instant::now()) {
                            bucket.strikes = 0;
                        } else {
                            bucket.strikes += 1;
                            metrics.signal_error("rate_limited");
                            let e = ProtoError::new("rate_limited", "too many messages");
                            let _ = send_text(&mut ws, &error_json(&None, &e)).await;
                            // Twenty refused frames in a row: the client is not backing off.
                            if bucket.strikes > 20 {
                                close(&mut ws, 1008, "rate limit").await;
                                break;
                            }
                            continue;
                        }
                        match parse(&text) {
                            Ok(ClientMsg::Ping { id }) => {
                                if !send_text(&mut ws, &pong(&id)).await { break; }
                            }
                            Ok(msg) => {
                                if state.hub.send(HubMsg::Client { conn, msg }).await.is_err() { break; }
                            }
                            Err((id, e)) => {
                                metrics.signal_error(e.code);
                                if !send_text(&mut ws, &error_json(&id, &e)).await { break; }
                            }
                        }
                    }
                    Ok(Incoming::Closed(c)) => { clean = c; break; }
                    Err(e) => {
                        metrics.signal_error(e.code);
                        let _ = send_text(&mut ws, &error_json(&None, &e)).await;
                        close(&mut ws, if e.code == "too_large" { 1009 } else { 1008 }, "protocol error").await;
                        break;
                    }
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::info!(conn, "client silent too long; connection closed");
                    break;
                }
                if !send_text(&mut ws, r#"{"type":"ping"}"#).await { break; }
            }
        }
    }
    // Completes the closing handshake when the client started it; harmless otherwise.
    let _ = ws.send(Message::Close(None)).await;
    let _ = state.hub.send(HubMsg::Disconnected { conn, clean }).await;
    metrics.ws_connections.dec();
}

fn pong(id: &ReqId) -> String {
    match id {
        Some(id) => serde_json::json!({"type": "pong", "id": id}).to_string(),
        None => r#"{"type":"pong"}"#.to_string(),
    }
}

/// What the socket gave.
enum Incoming {
    Text(String),
    /// The socket closed; `true` when the client closed it on purpose (code 1000).
    Closed(bool),
}

/// The next text frame. Binary frames are refused.
async fn next_text(ws: &mut WebSocket, max: usize) -> Result<Incoming, ProtoError> {
    loop {
        let Some(msg) = ws.recv().await else {
            return Ok(Incoming::Closed(false));
        };
        match msg {
            Ok(Message::Text(t)) => {
                if t.len() > max {
                    return Err(ProtoError::new(
                        "too_large",
                        format!("message over {max} bytes"),
                    ));
                }
                return Ok(Incoming::Text(t.to_string()));
            }
            Ok(Message::Binary(_)) => {
                return Err(ProtoError::new(
                    "bad_request",
                    "binary frames are not supported",
                ))
            }
            Ok(Message::Close(frame)) => {
                return Ok(Incoming::Closed(
                    frame.as_ref().is_some_and(|f| f.code == 1000),
                ));
            }
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "websocket read error");
                return Ok(Incoming::Closed(false));
            }
        }
    }
}
