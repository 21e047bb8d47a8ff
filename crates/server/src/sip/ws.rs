//! SIP over WebSocket (RFC 7118) on the HTTP port: `GET /sip` with the `sip` subprotocol. Each
//! WebSocket message carries one SIP message; the connection is a stream transport like TCP
//! (requests for a registered WebSocket client go back over its connection).

use std::net::SocketAddr;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;

use super::transport::{Inbound, Transport, Transports};

/// Serves one upgraded connection until it closes.
pub async fn serve(mut sock: WebSocket, peer: SocketAddr, tp: Transports) {
    let Some((id, mut rx)) = tp.register_conn(peer, Transport::Ws) else {
        let _ = sock.send(WsMessage::Close(None)).await;
        return;
    };
    tracing::debug!(%peer, "SIP WebSocket connection open");
    let idle = tp.idle();
    let max = tp.max_message();
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                // A lone CRLF is a keep-alive pong on TCP; WebSocket has its own pings.
                if out.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    continue;
                }
                let text = match String::from_utf8(out.to_vec()) {
                    Ok(t) => WsMessage::Text(t.into()),
                    Err(e) => WsMessage::Binary(e.into_bytes().into()),
                };
                if sock.send(text).await.is_err() {
                    break;
                }
            }
            m = tokio::time::timeout(idle, sock.recv()) => {
                let data: Bytes = match m {
                    Err(_) => break,
                    Ok(None) | Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(WsMessage::Text(t)))) => Bytes::copy_from_slice(t.as_bytes()),
                    Ok(Some(Ok(WsMessage::Binary(b)))) => b,
                    Ok(Some(Ok(WsMessage::Close(_)))) => break,
                    Ok(Some(Ok(_))) => continue,
                };
                if data.len() > max {
                    tracing::info!(%peer, "SIP WebSocket: message over the size limit: closing");
                    break;
                }
                if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    continue;
                }
                tp.deliver(Inbound { data, src: peer, transport: Transport::Ws, conn: Some(id) });
            }
        }
    }
    tp.unregister_conn(id);
    tracing::debug!(%peer, "SIP WebSocket connection closed");
}
