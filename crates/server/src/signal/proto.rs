//! The WebSocket JSON messages of docs/protocol.md, parsed with their limits, and the one table
//! from internal errors to protocol error codes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request id as the client sent it (string or number), echoed in replies.
pub type ReqId = Option<Value>;

/// Messages from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Hello {
        #[serde(default)]
        id: ReqId,
        token: String,
        #[serde(default)]
        resume: Option<Resume>,
    },
    Ping {
        #[serde(default)]
        id: ReqId,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        id: ReqId,
    },
    Call {
        #[serde(default)]
        id: ReqId,
        to: String,
        #[serde(default)]
        video: bool,
    },
    Accept {
        #[serde(default)]
        id: ReqId,
        #[serde(rename = "callId")]
        call_id: String,
    },
    Reject {
        #[serde(default)]
        id: ReqId,
        #[serde(rename = "callId")]
        call_id: String,
    },
    Cancel {
        #[serde(default)]
        id: ReqId,
        #[serde(rename = "callId")]
        call_id: String,
    },
    Hangup {
        #[serde(default)]
        id: ReqId,
        #[serde(rename = "callId")]
        call_id: String,
    },
    Join {
        #[serde(default)]
        id: ReqId,
        room: String,
    },
    Leave {
        #[serde(default)]
        id: ReqId,
    },
    PublishOffer {
        #[serde(default)]
        id: ReqId,
        sdp: String,
        #[serde(default)]
        tracks: Vec<TrackLabelMsg>,
    },
    SubscribeAnswer {
        #[serde(default)]
        id: ReqId,
        sdp: String,
    },
    SetSubscription {
        #[serde(default)]
        id: ReqId,
        #[serde(rename = "trackId")]
        track_id: String,
        #[serde(default, rename = "maxWidth")]
        max_width: Option<u32>,
        #[serde(default, rename = "maxHeight")]
        max_height: Option<u32>,
        #[serde(default)]
        paused: bool,
    },
    Mute {
        #[serde(default)]
        id: ReqId,
        source: String,
        muted: bool,
    },
    /// Accepted and ignored: the server is ICE-lite and learns addresses from STUN checks.
    #[allow(dead_code)]
    IceCandidate {
        #[serde(default)]
        id: ReqId,
        #[serde(default)]
        target: Option<String>,
        #[serde(default)]
        candidate: Value,
    },
}

/// Every `type` a client may send (to tell `unknown_type` from `bad_request`).
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "ping",
    "pong",
    "call",
    "accept",
    "reject",
    "cancel",
    "hangup",
    "join",
    "leave",
    "publish_offer",
    "subscribe_answer",
    "set_subscription",
    "mute",
    "ice_candidate",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    #[serde(rename = "sessionId")]
    pub session_id: String,
    #[serde(rename = "resumeKey")]
    pub resume_key: String,
}

#[derive(Debug, Deserialize)]
pub struct TrackLabelMsg {
    pub mid: String,
    pub source: String,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    #[allow(dead_code)]
    pub height: Option<u32>,
}

/// A protocol error: code and human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    pub code: &'static str,
    pub message: String,
}

impl ProtoError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ProtoError {
            code,
            message: message.into(),
        }
    }
}

impl From<strowger_sfu::SfuError> for ProtoError {
    fn from(e: strowger_sfu::SfuError) -> Self {
        ProtoError::new(e.code(), e.to_string())
    }
}

/// Largest SDP accepted.
pub const MAX_SDP: usize = 32 * 1024;

/// Parses one text frame. Errors carry the request id when it could be read.
pub fn parse(text: &str) -> Result<ClientMsg, (ReqId, ProtoError)> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        (
            None,
            ProtoError::new("bad_request", format!("not JSON: {e}")),
        )
    })?;
    let Value::Object(obj) = &v else {
        return Err((
            None,
            ProtoError::new("bad_request", "a message must be a JSON object"),
        ));
    };
    let id = obj.get("id").cloned().filter(valid_req_id);
    if obj.get("id").is_some() && id.is_none() {
        return Err((
            None,
            ProtoError::new(
                "bad_request",
                "id must be a string of at most 64 characters or a number",
            ),
        ));
    }
    let Some(Value::String(t)) = obj.get("type") else {
        return Err((
            id,
            ProtoError::new("bad_request", "missing string field 'type'"),
        ));
    };
    if !CLIENT_TYPES.contains(&t.as_str()) {
        let shown: String = t.chars().take(40).collect();
        return Err((
            id,
            ProtoError::new("unknown_type", format!("unknown message type '{shown}'")),
        ));
    }
    let msg: ClientMsg = serde_json::from_value(v.clone())
        .map_err(|e| (id.clone(), ProtoError::new("bad_request", e.to_string())))?;
    match &msg {
        ClientMsg::PublishOffer { sdp, tracks, .. } => {
            if sdp.len() > MAX_SDP {
                return Err((id, ProtoError::new("invalid_sdp", "SDP too large")));
            }
            if tracks.len() > 16 {
                return Err((id, ProtoError::new("bad_request", "too many track labels")));
            }
        }
        ClientMsg::SubscribeAnswer { sdp, .. } if sdp.len() > MAX_SDP => {
            return Err((id, ProtoError::new("invalid_sdp", "SDP too large")));
        }
        _ => {}
    }
    Ok(msg)
}

fn valid_req_id(v: &Value) -> bool {
    match v {
        Value::String(s) => s.len() <= 64,
        Value::Number(_) => true,
        _ => false,
    }
}

/// Messages from the server. Built with `serde_json::json!` where a shape is used once; these are
/// the ones built in several places.
#[derive(Debug, Serialize, Clone)]
pub struct ErrorMsg<'a> {
    #[serde(rename = "type")]
    pub typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
    pub code: &'a str,
    pub message: &'a str,
}

pub fn error_json(id: &ReqId, e: &ProtoError) -> String {
    serde_json::to_string(&ErrorMsg {
        typ: "error",
        id: id.as_ref(),
        code: e.code,
        message: &e.message,
    })
    .expect("serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_messages_parse() {
        assert!(matches!(
            parse(r#"{"type":"hello","token":"t"}"#),
            Ok(ClientMsg::Hello { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"join","id":3,"room":"x"}"#),
            Ok(ClientMsg::Join { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"set_subscription","trackId":"t_1","maxWidth":320}"#),
            Ok(ClientMsg::SetSubscription {
                max_width: Some(320),
                ..
            })
        ));
    }

    #[test]
    fn bad_messages_get_typed_errors() {
        let code = |s: &str| parse(s).unwrap_err().1.code;
        assert_eq!(code("nope"), "bad_request");
        assert_eq!(code("[1,2]"), "bad_request");
        assert_eq!(code(r#"{"id":1}"#), "bad_request");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"join"}"#), "bad_request");
        assert_eq!(code(r#"{"type":"join","room":5}"#), "bad_request");
        assert_eq!(
            code(r#"{"type":"join","room":"a","extra":1}"#),
            "bad_request"
        );
        assert_eq!(
            code(r#"{"type":"join","room":"a","id":{"x":1}}"#),
            "bad_request"
        );
        let big = format!(
            r#"{{"type":"subscribe_answer","sdp":"{}"}}"#,
            "a".repeat(MAX_SDP + 1)
        );
        assert_eq!(code(&big), "invalid_sdp");
        // The request id is echoed when readable.
        let (id, _) = parse(r#"{"type":"dance","id":"r1"}"#).unwrap_err();
        assert_eq!(id, Some(Value::String("r1".into())));
    }

    #[test]
    fn error_json_shape() {
        let s = error_json(&Some(Value::from(7)), &ProtoError::new("room_full", "full"));
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["id"], 7);
        assert_eq!(v["code"], "room_full");
    }
}
