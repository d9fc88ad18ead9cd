//! Reactions on a message: one emoji per user per message, added and taken back.

use axum::{extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    extract::{Json, Path},
    messages::message_id,
    threads::thread_id,
};
use crate::{
    chat::Reacted, domain::Actor, error::Result, http::error::ErrorBody, state::AppState,
    views::ReactionView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add, remove))
}

/// The message's reactions after the change: the payload of `reaction:updated` too.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Reactions {
    thread_id: String,
    message_id: String,
    reactions: Vec<ReactionView>,
}

impl From<Reacted> for Reactions {
    fn from(r: Reacted) -> Self {
        Self {
            thread_id: r.thread.to_string(),
            message_id: r.message.to_string(),
            reactions: r.reactions,
        }
    }
}

/// `PUT /api/threads/:threadId/messages/:messageId/reactions/:emoji` → 201 `{threadId,
/// messageId, reactions}` when the caller's reaction is new (the room gets `reaction:updated`),
/// 200 when it was there already. `emoji` (percent-encoded in the path) is one grapheme or a
/// `:short_code:` of at most 32 bytes; a message holds at most 20 distinct emoji.
#[utoipa::path(put, path = "/api/threads/{thread_id}/messages/{message_id}/reactions/{emoji}", tag = "reactions",
    params(("thread_id" = String, Path, description = "The thread's id"), ("message_id" = String, Path, description = "The message's id"), ("emoji" = String, Path, description = "One grapheme (`👍`, percent-encoded) or a `:short_code:`")),
    responses(
        (status = 201, description = "Added, and broadcast as `reaction:updated`", body = Reactions),
        (status = 200, description = "The caller had this reaction already", body = Reactions),
        (status = 400, description = "`invalid_emoji`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`, `message_not_found`", body = ErrorBody),
        (status = 409, description = "`message_deleted`, `too_many_reactions`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (reactions count as posts), with `Retry-After`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn add(
    State(state): State<AppState>,
    actor: Actor,
    Path((thread, message, emoji)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<Reactions>)> {
    let (thread, message) = (thread_id(&thread)?, message_id(&message)?);
    let reacted = state
        .chat
        .react(&actor, &thread, &message, &emoji, true)
        .await?;
    Ok((
        super::created_or_found(reacted.changed),
        Json(reacted.into()),
    ))
}

/// `DELETE /api/threads/:threadId/messages/:messageId/reactions/:emoji` → 204: the caller's
/// reaction is gone (the room gets `reaction:updated` when there was one).
#[utoipa::path(delete, path = "/api/threads/{thread_id}/messages/{message_id}/reactions/{emoji}", tag = "reactions",
    params(("thread_id" = String, Path, description = "The thread's id"), ("message_id" = String, Path, description = "The message's id"), ("emoji" = String, Path, description = "One grapheme (`👍`, percent-encoded) or a `:short_code:`")),
    responses(
        (status = 204, description = "The caller's reaction is not on the message (any more)"),
        (status = 400, description = "`invalid_emoji`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`, `message_not_found`", body = ErrorBody),
        (status = 409, description = "`message_deleted`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (reactions count as posts), with `Retry-After`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    actor: Actor,
    Path((thread, message, emoji)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    let (thread, message) = (thread_id(&thread)?, message_id(&message)?);
    state
        .chat
        .react(&actor, &thread, &message, &emoji, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
