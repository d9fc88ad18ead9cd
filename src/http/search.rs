//! Message search across the threads the caller may read.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    extract::{Json, Query},
    messages::parse_limit,
    threads::thread_id,
};
use crate::{
    domain::Actor,
    error::{ApiError, Result},
    http::error::ErrorBody,
    state::AppState,
    views::MessageView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct SearchParams {
    /// Words that must all appear, the last one as a prefix; case and accents do not matter.
    /// At most 8 words and 256 bytes.
    q: Option<String>,
    /// Only this thread's messages.
    thread_id: Option<String>,
    /// Results per page: a positive integer, default 50, at most 200.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// The previous page's `nextCursor`.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SearchPage {
    /// Newest first, in the threads API's shape (each with its `threadId`).
    messages: Vec<MessageView>,
    next_cursor: Option<String>,
}

/// `GET /api/search/messages?q=&threadId=&limit=&cursor=` → `{messages, nextCursor}`: the
/// messages that contain every word of `q` (the last as a prefix), newest first, in the threads
/// the caller may read (in `jwt` mode, those it is a member of), deleted ones never.
#[utoipa::path(get, path = "/api/search/messages", tag = "messages",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of matching messages, newest first", body = SearchPage),
        (status = 400, description = "`invalid_query`, `invalid_limit`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_a_member` (`threadId` of a thread the caller is not in, `jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (searches per user and per address), with `Retry-After`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 503 `store_unavailable` with `Retry-After`", body = ErrorBody),
    ))]
async fn search(
    State(state): State<AppState>,
    actor: Actor,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchPage>> {
    let limit = parse_limit(params.limit.as_deref())?;
    let thread = match params.thread_id.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(thread_id(raw)?),
    };
    let before = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "cursor is not a nextCursor of a search")
        })?),
    };
    let results = state
        .chat
        .search(
            &actor,
            params.q.as_deref().unwrap_or_default(),
            thread.as_ref(),
            before,
            limit,
        )
        .await?;
    Ok(Json(SearchPage {
        messages: results.messages,
        next_cursor: results.next.map(|n| n.to_string()),
    }))
}
