//! Event names, payloads and the one acknowledgement envelope.

use serde::Serialize;
use serde_json::Value;

use crate::{
    chat::Since,
    domain::{MessageId, ThreadId},
    error::ApiError,
    views::{MessageView, ReactionView},
};

pub use crate::fanout::{
    MENTION, MESSAGE_DELETED, MESSAGE_NEW, MESSAGE_UPDATED, REACTION_UPDATED, RECEIPT,
};

/// `message:send`'s payload. Wrong types are refused by the parser (`invalid_payload`); the
/// values go through the same validation as the REST post.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    pub thread_id: String,
    pub body: Option<String>,
    pub file_ids: Option<Vec<String>>,
    pub client_message_id: Option<String>,
    pub reply_to: Option<String>,
    pub mentions: Option<Vec<String>>,
}

/// `reaction:add` / `reaction:remove`'s payload.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct React {
    pub thread_id: String,
    pub message_id: String,
    pub emoji: String,
}

/// Client → server: join a thread's room. Payload `{threadId, after?, since?}`.
pub const THREAD_JOIN: &str = "thread:join";
/// Client → server: leave a thread's room. Payload `{threadId}`.
pub const THREAD_LEAVE: &str = "thread:leave";
/// Client → server: post a message. Payload `{threadId, body, fileIds?, clientMessageId?,
/// replyTo?, mentions?}`; ack `{ok: true, message}` or `{error}`.
pub const MESSAGE_SEND: &str = "message:send";
/// Client → server: `{threadId, typing}`; server → the room's other users:
/// `{threadId, userId, typing}`.
pub const TYPING: &str = "typing";
/// Server → room: `{threadId, online: [userId...]}` whenever that set changes.
pub const PRESENCE: &str = "presence";
/// Client → server: `{threadId, messageId}` moves the reader's position forward; ack
/// `{ok: true, messageId}` (the position afterwards).
pub const THREAD_READ: &str = "thread:read";
/// Client → server: `{threadId, messageId, emoji}` adds the user's reaction; ack `{ok: true,
/// messageId, reactions}`. The room gets `reaction:updated` when it is new.
pub const REACTION_ADD: &str = "reaction:add";
/// Client → server: `{threadId, messageId, emoji}` takes the user's reaction back; ack as
/// `reaction:add`.
pub const REACTION_REMOVE: &str = "reaction:remove";

/// Whether `event` is one the product sends its clients: nobody else may send it to them.
pub fn is_product_event(event: &str) -> bool {
    [
        MESSAGE_NEW,
        MESSAGE_UPDATED,
        MESSAGE_DELETED,
        RECEIPT,
        REACTION_UPDATED,
        MENTION,
        TYPING,
        PRESENCE,
    ]
    .contains(&event)
}

/// `typing`'s payload.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingPayload {
    pub thread_id: String,
    pub typing: bool,
}

/// `thread:read`'s payload.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    pub thread_id: String,
    pub message_id: String,
}

/// Every acknowledgement is `{ok: true, ...}` or `{error: "<code>"}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Ack {
    Ok {
        ok: bool,
    },
    Sent {
        ok: bool,
        message: Box<MessageView>,
    },
    /// `thread:join`: the newest position at joining; with `since`/`after`, what was replayed.
    Joined {
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        replayed: Option<usize>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        seq: u64,
    },
    Read {
        ok: bool,
        #[serde(rename = "messageId")]
        message_id: MessageId,
    },
    Reacted {
        ok: bool,
        #[serde(rename = "messageId")]
        message_id: MessageId,
        reactions: Vec<ReactionView>,
    },
    Error {
        error: &'static str,
    },
    /// `{error: "rate_limited", retryAfter: <seconds>}`.
    Limited {
        error: &'static str,
        #[serde(rename = "retryAfter")]
        retry_after: u64,
    },
}

impl Ack {
    pub fn ok() -> Self {
        Self::Ok { ok: true }
    }

    pub fn sent(message: MessageView) -> Self {
        Self::Sent {
            ok: true,
            message: Box::new(message),
        }
    }

    pub fn entered(seq: u64) -> Self {
        Self::Joined {
            ok: true,
            replayed: None,
            truncated: false,
            seq,
        }
    }

    pub fn rejoined(replayed: usize, truncated: bool, seq: u64) -> Self {
        Self::Joined {
            ok: true,
            replayed: Some(replayed),
            truncated,
            seq,
        }
    }

    pub fn read(message_id: MessageId) -> Self {
        Self::Read {
            ok: true,
            message_id,
        }
    }

    pub fn reacted(message_id: MessageId, reactions: Vec<ReactionView>) -> Self {
        Self::Reacted {
            ok: true,
            message_id,
            reactions,
        }
    }

    pub fn error(code: &'static str) -> Self {
        Self::Error { error: code }
    }
}

/// A failed event's ack: its code, and how long to wait when it was rate limited.
impl From<&ApiError> for Ack {
    fn from(e: &ApiError) -> Self {
        match e {
            ApiError::RateLimited(limited) => Self::Limited {
                error: e.code(),
                retry_after: limited.retry_after_secs(),
            },
            ApiError::Unavailable {
                retry_after_secs, ..
            } => Self::Limited {
                error: e.code(),
                retry_after: *retry_after_secs,
            },
            _ => Self::Error { error: e.code() },
        }
    }
}

/// Reads `{threadId: "<id>"}`; anything else is `invalid_payload` or `invalid_thread_id`.
///
/// Payloads are parsed by hand from a `Value` (not a typed extractor) so that a malformed one
/// still gets an error ack instead of silently not reaching the handler.
pub fn thread_id(payload: &Value) -> Result<ThreadId, &'static str> {
    let raw = payload
        .as_object()
        .and_then(|o| o.get("threadId"))
        .ok_or("invalid_payload")?;
    let raw = raw.as_str().ok_or("invalid_thread_id")?;
    ThreadId::parse(raw).map_err(|_| "invalid_thread_id")
}

/// Where `thread:join {threadId, after?, since?}` resumes: `after` (a position, 0 or more)
/// first, else `since` (a message id); neither, absent or `null`: a plain join.
pub fn since(payload: &Value) -> Result<Option<Since>, &'static str> {
    match payload.get("after") {
        None | Some(Value::Null) => {}
        Some(after) => {
            return after
                .as_u64()
                .map(|seq| Some(Since::Position(seq)))
                .ok_or("invalid_after");
        }
    }
    match payload.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) => MessageId::parse(raw)
            .map(|id| Some(Since::Message(id)))
            .map_err(|_| "invalid_since"),
        Some(_) => Err("invalid_since"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thread_id_payloads() {
        assert_eq!(
            thread_id(&json!({"threadId": "t1"})).unwrap().as_str(),
            "t1"
        );
        assert_eq!(thread_id(&json!("t1")), Err("invalid_payload"));
        assert_eq!(thread_id(&json!({})), Err("invalid_payload"));
        assert_eq!(thread_id(&json!({"threadId": 5})), Err("invalid_thread_id"));
        assert_eq!(
            thread_id(&json!({"threadId": ""})),
            Err("invalid_thread_id")
        );
    }

    #[test]
    fn acks_serialize_to_the_envelope() {
        assert_eq!(
            serde_json::to_value(Ack::ok()).unwrap(),
            json!({"ok": true})
        );
        assert_eq!(
            serde_json::to_value(Ack::error("x")).unwrap(),
            json!({"error": "x"})
        );
    }
}
