//! The stub's threads API: create/resolve a thread by its member set, and read it.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path};
use crate::{
    domain::{
        Actor, MemberSet, Thread, ThreadId, Timestamp, UserId,
        thread::{MAX_MEMBERS, MAX_TITLE_CHARS, MemberSetError},
    },
    error::{ApiError, Result},
    state::AppState,
    store::Store,
    views::ThreadView,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/threads", post(create_or_resolve))
        .route("/api/threads/{thread_id}", get(show))
        .route("/api/threads/{thread_id}/presence", get(presence))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateThread {
    title: Option<String>,
    member_ids: Vec<String>,
}

/// A path id that is not even well-formed names no thread.
pub fn thread_id(raw: &str) -> Result<ThreadId> {
    ThreadId::parse(raw).map_err(|_| ApiError::NotFound("thread_not_found"))
}

/// `POST /api/threads {title?, memberIds}` → 201 with a new thread, or 200 with the existing
/// thread that has the same members (order and duplicates ignored).
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
    let (thread, created) = state.store.create_or_resolve_thread(thread).await?;
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

/// `GET /api/threads/:id` → the thread with the caller's `unreadCount`, or 404
/// `thread_not_found`.
async fn show(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ThreadView>> {
    let thread = state.chat.thread(&actor, &thread_id(&id)?).await?;
    let mut view = thread_view(state.store.as_ref(), &thread).await?;
    view.unread_count = Some(state.store.unread_count(&thread.id, &actor.user).await?);
    Ok(Json(view))
}

#[derive(Serialize)]
struct Presence {
    online: Vec<UserId>,
}

/// `GET /api/threads/:id/presence` → `{online: [userId...]}`: the users with a socket in the
/// thread's room, on any node.
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
