//! The stub's messages API: a thread's history, paged oldest to newest, and posting.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    extract::{IdempotencyKey, Json, Path, Query, client_message_id},
    threads::thread_id,
};
use crate::{
    domain::{Actor, MessageId, NewMessage},
    error::{ApiError, Result},
    http::error::ErrorBody,
    state::AppState,
    store::Anchor,
    views::MessageView,
};

/// Page size when `limit` is absent, and the most a page may hold (the stub's numbers).
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(edit, remove))
        .routes(routes!(mark_read))
        .routes(routes!(replies))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Messages per page: a positive integer, default 50, at most 200.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// The previous page's `nextCursor`.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessagePage {
    messages: Vec<MessageView>,
    next_cursor: Option<String>,
}

/// `GET /api/threads/:threadId/messages?limit=&cursor=` → `{messages, nextCursor}`, oldest
/// first. `nextCursor` is the id of the page's last message while more follow, else `null`.
#[utoipa::path(get, path = "/api/threads/{thread_id}/messages", tag = "messages",
    params(("thread_id" = String, Path, description = "The thread's id"), ListParams),
    responses(
        (status = 200, description = "A page of the thread's messages, oldest first", body = MessagePage),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
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
pub(super) fn parse_limit(raw: Option<&str>) -> Result<usize> {
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PostMessage {
    /// The text, at most 16 KiB of UTF-8; may be empty when files are attached.
    #[schema(max_length = 16384)]
    body: Option<String>,
    /// Ids from `POST /api/files` (uploaded by the caller, or already visible to it), at most 20.
    #[schema(max_items = 20)]
    file_ids: Option<Vec<String>>,
    /// A retry with the same id answers 200 with the original message.
    #[schema(max_length = 128)]
    client_message_id: Option<String>,
    /// The id of a message of this thread that this one replies to.
    reply_to: Option<String>,
    /// Members of the thread to mention (at most 50); each gets a `mention` event.
    #[schema(max_items = 50)]
    mentions: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = MessageEnvelope)]
struct Created {
    message: MessageView,
}

/// `POST /api/threads/:threadId/messages {body, fileIds, clientMessageId?, replyTo?, mentions?}`
/// → 201 `{message}`, broadcast to the thread's room as `message:new`; a reply's parent is
/// broadcast as `message:updated` with its new `replyCount`, and each mentioned member gets
/// `mention {threadId, message}`. A retry with the same `clientMessageId` (or
/// `Idempotency-Key` header) answers 200 with the original message and broadcasts nothing.
#[utoipa::path(post, path = "/api/threads/{thread_id}/messages", tag = "messages",
    params(("thread_id" = String, Path, description = "The thread's id"), ("Idempotency-Key" = Option<String>, Header, description = "Same as `clientMessageId`")),
    request_body = PostMessage,
    responses(
        (status = 201, description = "Stored and broadcast as `message:new`", body = Created),
        (status = 200, description = "A retry: the original message", body = Created),
        (status = 400, description = "`invalid_json`, `empty_message`, `message_too_long`, `too_many_files`, `unknown_file`, `invalid_client_message_id`, `invalid_idempotency_key`, `invalid_reply_to`, `invalid_mention`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (posts per user and per address), with `Retry-After`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
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
            let mentions = req.mentions.unwrap_or_default();
            Ok(
                NewMessage::new(author.clone(), req.body.as_deref(), &files)?
                    .with_client_id(key)
                    .replying_to(req.reply_to.as_deref())?
                    .mentioning(&mentions)?,
            )
        })
        .await?;
    Ok((
        super::created_or_found(posted.created),
        Json(Created {
            message: posted.view,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
struct EditMessage {
    body: Option<String>,
}

/// `GET /api/threads/:threadId/messages/:messageId/replies?limit=&cursor=` → `{messages,
/// nextCursor}`: the message's replies, oldest first, paged like the history.
#[utoipa::path(get, path = "/api/threads/{thread_id}/messages/{message_id}/replies", tag = "messages",
    params(("thread_id" = String, Path, description = "The thread's id"), ("message_id" = String, Path, description = "The message replied to"), ListParams),
    responses(
        (status = 200, description = "A page of the message's replies, oldest first", body = MessagePage),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`, `message_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn replies(
    State(state): State<AppState>,
    actor: Actor,
    Path((thread, message)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<Json<MessagePage>> {
    let (thread, parent) = (thread_id(&thread)?, message_id(&message)?);
    let limit = parse_limit(params.limit.as_deref())?;
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(MessageId::parse(raw).map_err(|_| invalid_cursor())?),
    };
    let (messages, window) = state
        .chat
        .replies(&actor, &thread, &parent, after.as_ref(), limit)
        .await?;
    let next_cursor = window
        .more_after
        .then(|| window.items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(MessagePage {
        messages,
        next_cursor,
    }))
}

/// A message id in a path: malformed ones name no message.
pub(super) fn message_id(raw: &str) -> Result<MessageId> {
    MessageId::parse(raw).map_err(|_| ApiError::NotFound("message_not_found"))
}

/// `PATCH /api/threads/:threadId/messages/:messageId {body}` → 200 `{message}` with `editedAt`;
/// the room gets `message:updated {message}`. Only the author edits (403 `not_author`); a
/// deleted message cannot be edited (409 `message_deleted`).
#[utoipa::path(patch, path = "/api/threads/{thread_id}/messages/{message_id}", tag = "messages",
    params(("thread_id" = String, Path, description = "The thread's id"), ("message_id" = String, Path, description = "The message's id")),
    request_body = EditMessage,
    responses(
        (status = 200, description = "The edited message, broadcast as `message:updated`", body = Created),
        (status = 400, description = "`invalid_json`, `empty_message`, `message_too_long`", body = ErrorBody),
        (status = 403, description = "`not_author`, `not_a_member`", body = ErrorBody),
        (status = 404, description = "`thread_not_found`, `message_not_found`", body = ErrorBody),
        (status = 409, description = "`message_deleted`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
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
#[utoipa::path(delete, path = "/api/threads/{thread_id}/messages/{message_id}", tag = "messages",
    params(("thread_id" = String, Path, description = "The thread's id"), ("message_id" = String, Path, description = "The message's id")),
    responses(
        (status = 204, description = "Deleted (a tombstone), broadcast as `message:deleted`"),
        (status = 403, description = "`not_author`, `not_a_member`", body = ErrorBody),
        (status = 404, description = "`thread_not_found`, `message_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    Path((thread, message)): Path<(String, String)>,
    actor: Actor,
) -> Result<StatusCode> {
    let (thread, message) = (thread_id(&thread)?, message_id(&message)?);
    state.chat.delete(&actor, &thread, &message).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReadRequest {
    message_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReadPosition {
    #[schema(value_type = String)]
    message_id: MessageId,
}

/// `POST /api/threads/:threadId/read {messageId}` → 200 `{messageId}`: the REST twin of the
/// socket's `thread:read`. The caller's read position moves forward to the message (never
/// back; the answer is the position afterwards), and the room gets `receipt` when it moved.
#[utoipa::path(post, path = "/api/threads/{thread_id}/read", tag = "messages",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = ReadRequest,
    responses(
        (status = 200, description = "The caller's read position afterwards", body = ReadPosition),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`, `message_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
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
