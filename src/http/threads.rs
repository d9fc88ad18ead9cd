//! The stub's threads API: create/resolve a thread by its member set, and read it.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{Json, Path};
use crate::{
    domain::{
        Actor, MemberSet, Thread, ThreadId, Timestamp, UserId,
        thread::{MAX_MEMBERS, MAX_TITLE_CHARS, MemberSetError},
    },
    error::{ApiError, Result},
    http::error::ErrorBody,
    state::AppState,
    store::Store,
    views::ThreadView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_or_resolve))
        .routes(routes!(show))
        .routes(routes!(presence))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreateThread {
    /// At most 200 characters, no control characters.
    #[schema(max_length = 200)]
    title: Option<String>,
    /// The members (the caller among them in `jwt` mode); order and repeats are ignored.
    #[schema(min_items = 1, max_items = 1000, inline, value_type = Vec<MemberId>)]
    member_ids: Vec<String>,
}

/// A user id: 1 to 128 URL-safe characters.
#[derive(ToSchema)]
#[schema(pattern = r"^[A-Za-z0-9._~:@-]{1,128}$")]
#[allow(dead_code)]
struct MemberId(String);

/// A path id that is not even well-formed names no thread.
pub fn thread_id(raw: &str) -> Result<ThreadId> {
    ThreadId::parse(raw).map_err(|_| ApiError::NotFound("thread_not_found"))
}

/// `POST /api/threads {title?, memberIds}` → 201 with a new thread, or 200 with the existing
/// thread that has the same members (order and duplicates ignored).
#[utoipa::path(post, path = "/api/threads", tag = "threads",
    request_body = CreateThread,
    responses(
        (status = 201, description = "A new thread", body = ThreadView),
        (status = 200, description = "The thread with the same members", body = ThreadView),
        (status = 400, description = "`invalid_json`, `invalid_member_id`, `invalid_members`, `too_many_members`, `invalid_title`", body = ErrorBody),
        (status = 403, description = "`not_a_member`: in `jwt` mode the caller must be among the members", body = ErrorBody),
        (status = 429, description = "`rate_limited` (threads per user and per address), with `Retry-After`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn create_or_resolve(
    State(state): State<AppState>,
    actor: Actor,
    Json(req): Json<CreateThread>,
) -> Result<(StatusCode, Json<ThreadView>)> {
    state.limits.threads.check_actor(&actor)?;
    // Refused before any work: a list far longer than a thread may be (repeats are allowed,
    // and fold into one member each).
    if req.member_ids.len() > 2 * MAX_MEMBERS {
        return Err(too_many_members());
    }
    let members = req
        .member_ids
        .iter()
        .map(|raw| UserId::parse(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::bad_request("invalid_member_id", "a memberId is not a valid id"))?;
    let members = MemberSet::new(members).map_err(|e| match e {
        MemberSetError::Empty => ApiError::bad_request("invalid_members", "memberIds is empty"),
        MemberSetError::TooMany => too_many_members(),
    })?;
    if actor.verified && !members.listed().contains(&actor.user) {
        // Nobody creates threads for others to be in without them.
        return Err(ApiError::Forbidden("not_a_member"));
    }
    let title = match req.title.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) if t.chars().any(char::is_control) => {
            return Err(ApiError::bad_request(
                "invalid_title",
                "title contains control characters",
            ));
        }
        Some(t) if t.chars().count() > MAX_TITLE_CHARS => {
            return Err(ApiError::bad_request(
                "invalid_title",
                format!("title is longer than {MAX_TITLE_CHARS} characters"),
            ));
        }
        Some(t) => Some(t.to_owned()),
    };
    let now = Timestamp::now();
    let thread = Thread {
        id: ThreadId::generate(),
        title,
        member_ids: members.listed().to_vec(),
        created_at: now,
        updated_at: now,
    };
    let (thread, created) = state.chat.create_thread(thread).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(thread_view(state.store.as_ref(), &thread).await?),
    ))
}

fn too_many_members() -> ApiError {
    ApiError::bad_request(
        "too_many_members",
        format!("a thread has at most {MAX_MEMBERS} members"),
    )
}

/// `GET /api/threads/:id` → the thread with the caller's `unreadCount` and `unreadMentions`,
/// or 404 `thread_not_found`.
#[utoipa::path(get, path = "/api/threads/{thread_id}", tag = "threads",
    params(("thread_id" = String, Path, description = "The thread's id")),
    responses(
        (status = 200, description = "The thread, with the caller's `unreadCount` and `unreadMentions`", body = ThreadView),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ThreadView>> {
    let thread = state.chat.thread(&actor, &thread_id(&id)?).await?;
    let mut view = thread_view(state.store.as_ref(), &thread).await?;
    view.unread_count = Some(state.store.unread_count(&thread.id, &actor.user).await?);
    view.unread_mentions = Some(state.store.unread_mentions(&thread.id, &actor.user).await?);
    Ok(Json(view))
}

#[derive(Serialize, ToSchema)]
struct Presence {
    #[schema(value_type = Vec<String>)]
    online: Vec<UserId>,
}

/// `GET /api/threads/:id/presence` → `{online: [userId...]}`: the users with a socket in the
/// thread's room, on any node.
#[utoipa::path(get, path = "/api/threads/{thread_id}/presence", tag = "threads",
    params(("thread_id" = String, Path, description = "The thread's id")),
    responses(
        (status = 200, description = "Who has a socket in the thread's room, on any node", body = Presence),
        (status = 403, description = "`not_a_member` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`thread_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn presence(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Presence>> {
    Ok(Json(Presence {
        online: state.chat.online(&actor, &thread_id(&id)?).await?,
    }))
}

async fn thread_view(store: &dyn Store, thread: &Thread) -> Result<ThreadView> {
    let names = store.account_names(&thread.member_ids).await?;
    Ok(ThreadView::new(thread, &names))
}
