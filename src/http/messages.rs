//! The stub's messages API: a thread's history, paged oldest to newest, and posting.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, patch, post},
};
use serde::{Deserialize, Serialize};

use super::{
    extract::{IdempotencyKey, Json, Path, Query, client_message_id},
    threads::thread_id,
};
use crate::{
    domain::{Actor, MessageId, NewMessage},
    error::{ApiError, Result},
    state::AppState,
    store::Anchor,
    views::MessageView,
};

/// Page size when `limit` is absent, and the most a page may hold (the stub's numbers).
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/threads/{thread_id}/messages", get(list).post(create))
        .route(
            "/api/threads/{thread_id}/messages/{message_id}",
            patch(edit).delete(remove),
        )
        .route("/api/threads/{thread_id}/read", post(mark_read))
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagePage {
    messages: Vec<MessageView>,
    next_cursor: Option<String>,
}

/// `GET /api/threads/:threadId/messages?limit=&cursor=` → `{messages, nextCursor}`, oldest
/// first. `nextCursor` is the id of the page's last message while more follow, else `null`.
async fn list(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<MessagePage>> {
    let thread = state.chat.gate(&actor, &thread_id(&id)?).await?;
    let limit = parse_limit(params.limit.as_deref())?;
    let anchor = match params.cursor.as_deref() {
        None | Some("") => Anchor::Oldest,
        Some(raw) => Anchor::After(MessageId::parse(raw).map_err(|_| invalid_cursor())?),
    };
    let window = state.store.messages(&thread, anchor, limit).await?;
    let next_cursor = window
        .more_after
        .then(|| window.items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(MessagePage {
        messages: state.chat.views(&window.items).await?,
        next_cursor,
    }))
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "cursor is not a message of this thread")
}

/// `limit`: a positive integer, default 50, capped at 200.
fn parse_limit(raw: Option<&str>) -> Result<usize> {
    match raw {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(0) | Err(_) => Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be a positive integer",
            )),
            Ok(n) => Ok((n.min(MAX_LIMIT as u64)) as usize),
        },
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostMessage {
    body: Option<String>,
    file_ids: Option<Vec<String>>,
    client_message_id: Option<String>,
}

#[derive(Serialize)]
struct Created {
    message: MessageView,
}

/// `POST /api/threads/:threadId/messages {body, fileIds, clientMessageId?}` → 201 `{message}`,
/// broadcast to the thread's room as `message:new`. A retry with the same `clientMessageId` (or
/// `Idempotency-Key` header) answers 200 with the original message and broadcasts nothing.
async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    idempotency: IdempotencyKey,
    Json(req): Json<PostMessage>,
) -> Result<(StatusCode, Json<Created>)> {
    let thread = thread_id(&id)?;
    let posted = state
        .chat
        .post(&actor, &thread, |author| {
            let key = client_message_id(req.client_message_id.as_deref(), idempotency)?;
            let files = req.file_ids.unwrap_or_default();
            Ok(NewMessage::new(author.clone(), req.body.as_deref(), &files)?.with_client_id(key))
        })
        .await?;
    Ok((
        super::created_or_found(posted.created),
        Json(Created {
            message: posted.view,
        }),
    ))
}

#[derive(Deserialize)]
struct EditMessage {
    body: Option<String>,
}

/// A message id in a path: malformed ones name no message.
fn message_id(raw: &str) -> Result<MessageId> {
    MessageId::parse(raw).map_err(|_| ApiError::NotFound("message_not_found"))
}

/// `PATCH /api/threads/:threadId/messages/:messageId {body}` → 200 `{message}` with `editedAt`;
/// the room gets `message:updated {message}`. Only the author edits (403 `not_author`); a
/// deleted message cannot be edited (409 `message_deleted`).
async fn edit(
    State(state): State<AppState>,
    Path((thread, message)): Path<(String, String)>,
    actor: Actor,
    Json(req): Json<EditMessage>,
) -> Result<Json<Created>> {
    let (thread, message) = (thread_id(&thread)?, message_id(&message)?);
    let view = state
        .chat
        .edit(&actor, &thread, &message, req.body.as_deref())
        .await?;
    Ok(Json(Created { message: view }))
}

/// `DELETE /api/threads/:threadId/messages/:messageId` → 204; the message becomes a tombstone
/// (empty `body` and `fileIds`, `deletedAt` set) and the room gets `message:deleted
/// {threadId, messageId}`. Only the author deletes (403 `not_author`); deleting again is a 204.
async fn remove(
    State(state): State<AppState>,
    Path((thread, message)): Path<(String, String)>,
    actor: Actor,
) -> Result<StatusCode> {
    let (thread, message) = (thread_id(&thread)?, message_id(&message)?);
    state.chat.delete(&actor, &thread, &message).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadRequest {
    message_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadPosition {
    message_id: MessageId,
}

/// `POST /api/threads/:threadId/read {messageId}` → 200 `{messageId}`: the REST twin of the
/// socket's `thread:read`. The caller's read position moves forward to the message (never
/// back; the answer is the position afterwards), and the room gets `receipt` when it moved.
async fn mark_read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    Json(req): Json<ReadRequest>,
) -> Result<Json<ReadPosition>> {
    let (thread, message) = (thread_id(&id)?, message_id(&req.message_id)?);
    let position = state.chat.mark_read(&actor, &thread, &message).await?;
    Ok(Json(ReadPosition {
        message_id: position,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), 50);
        assert_eq!(parse_limit(Some("10")).unwrap(), 10);
        assert_eq!(parse_limit(Some("1000")).unwrap(), 200);
        assert!(parse_limit(Some("abc")).is_err());
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("-3")).is_err());
    }
}
