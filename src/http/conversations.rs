//! Conversations of the messenger API. A conversation *is* a thread: both APIs and every
//! Socket.IO client see the same threads, messages and rooms.
//!
//! Every route is served under the README's long paths (`/api/account/:account_id/...`) and its
//! short ones (`/api/:account_id/conversation...`).

use std::collections::HashMap;

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    accounts::{account, require_own},
    extract::{IdempotencyKey, Json, Path, Query, client_message_id},
};
use crate::{
    domain::{Account, Actor, MemberSet, MessageId, NewMessage, Thread, ThreadId, UserId},
    error::{ApiError, Result},
    http::error::ErrorBody,
    pagination::{PageRequest, Paginated},
    state::AppState,
    store::StoreError,
    views::{AccountView, ChatMessageView, ConversationView},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(list_short, create_short))
        .routes(routes!(show_short))
        .routes(routes!(list_messages_short, post_message_short))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// Rows per page, 1 to 100 (default 10).
    #[param(value_type = Option<u32>)]
    page_size: Option<String>,
    /// A `cursor_next` or `cursor_prev` of an earlier page.
    cursor: Option<String>,
}

/// The account and the conversation it asks for: 404 for unknown ones, 403 when the account
/// does not take part.
async fn conversation(
    state: &AppState,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> Result<(Account, Thread)> {
    let account = account(state, account_id).await?;
    require_own(actor, &account.id)?;
    let not_found = || ApiError::NotFound("conversation_not_found");
    let id = ThreadId::parse(id).map_err(|_| not_found())?;
    let thread = match state.store.thread(&id).await {
        Err(StoreError::ThreadNotFound) => return Err(not_found()),
        other => other?,
    };
    if !thread.has_member(&account.id) {
        return Err(ApiError::Forbidden("not_a_participant"));
    }
    Ok((account, thread))
}

/// Who reads on behalf of `account` (for unread counts): the caller when identified, else the
/// account the path names.
fn reader_for(actor: &Actor, account: &UserId) -> UserId {
    if actor.is_identified() {
        actor.user.clone()
    } else {
        account.clone()
    }
}

/// Conversations as `reader` sees them (their unread counts), in the order given: a fixed
/// number of store queries for the whole page, not a few per conversation.
async fn conversation_views(
    state: &AppState,
    threads: &[Thread],
    reader: &UserId,
) -> Result<Vec<ConversationView>> {
    let ids: Vec<ThreadId> = threads.iter().map(|t| t.id.clone()).collect();
    let mut summaries = state.store.summaries(&ids, reader).await?;
    let mut people: Vec<UserId> = threads
        .iter()
        .flat_map(|t| t.member_ids.iter().cloned())
        .chain(
            summaries
                .values()
                .filter_map(|s| s.last_message.as_ref().map(|m| m.author_id.clone())),
        )
        .collect();
    people.sort_unstable();
    people.dedup();
    let names = state.store.account_names(&people).await?;
    Ok(threads
        .iter()
        .map(|thread| {
            let summary = summaries.remove(&thread.id).unwrap_or_default();
            ConversationView {
                id: thread.id.to_string(),
                participants: thread
                    .member_ids
                    .iter()
                    .map(|id| AccountView::of(id, &names))
                    .collect(),
                last_message: summary
                    .last_message
                    .as_ref()
                    .map(|m| ChatMessageView::new(m, &names)),
                unread_count: summary.unread_count,
                unread_mentions: summary.unread_mentions,
            }
        })
        .collect())
}

async fn conversation_view(
    state: &AppState,
    thread: &Thread,
    reader: &UserId,
) -> Result<ConversationView> {
    let mut views = conversation_views(state, std::slice::from_ref(thread), reader).await?;
    views
        .pop()
        .ok_or_else(|| ApiError::Internal("no view for a conversation".into()))
}

/// `GET /api/account/:account_id/conversations?pageSize=&cursor=` → `Paginated<Conversation>`,
/// most recently active first.
#[utoipa::path(get, path = "/api/account/{account_id}/conversations", tag = "conversations", 
    params(("account_id" = String, Path, description = "The account's id"), PageParams),
    responses(
        (status = 200, description = "The account's conversations, most recently active first", body = Paginated<ConversationView>),
        (status = 400, description = "`invalid_page_size`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_your_account` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    actor: Actor,
    Path(account_id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<ConversationView>>> {
    let account = account(&state, &account_id).await?;
    require_own(&actor, &account.id)?;
    let request = PageRequest::parse(
        params.page_size.as_deref(),
        params.cursor.as_deref(),
        |raw| ThreadId::parse(raw).ok(),
    )?;
    let window = state
        .store
        .threads_of(&account.id, request.anchor.clone(), request.limit)
        .await?;
    let reader = reader_for(&actor, &account.id);
    let views = conversation_views(&state, &window.items, &reader).await?;
    let mut views: HashMap<String, ConversationView> =
        views.into_iter().map(|v| (v.id.clone(), v)).collect();
    Ok(Json(Paginated::new(
        window,
        &request,
        |t| t.id.as_str(),
        |t| views.remove(t.id.as_str()).expect("a view for every row"),
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WithParams {
    /// The other account's id.
    with: Option<String>,
}

/// `POST /api/account/:account_id/conversations?with=<account_id>` → 201 with a new
/// conversation, or 200 with the existing one between the two.
#[utoipa::path(post, path = "/api/account/{account_id}/conversations", tag = "conversations", 
    params(("account_id" = String, Path, description = "The account's id"), WithParams),
    responses(
        (status = 201, description = "A new conversation", body = ConversationView),
        (status = 200, description = "The existing conversation between the two", body = ConversationView),
        (status = 400, description = "`missing_with`, `invalid_with`", body = ErrorBody),
        (status = 403, description = "`not_your_account` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (threads per user and per address)", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    Path(account_id): Path<String>,
    Query(params): Query<WithParams>,
) -> Result<(StatusCode, Json<ConversationView>)> {
    let account = account(&state, &account_id).await?;
    require_own(&actor, &account.id)?;
    state.limits.threads.check_actor(&actor)?;
    let with = match params.with.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(ApiError::bad_request(
                "missing_with",
                "name the other account with ?with=<account_id>",
            ));
        }
        Some(raw) => super::accounts::account(&state, raw).await?,
    };
    if with.id == account.id {
        return Err(ApiError::bad_request(
            "invalid_with",
            "a conversation needs another account",
        ));
    }
    let members = MemberSet::new([account.id.clone(), with.id.clone()])
        .map_err(|_| ApiError::Internal("two distinct members form a member set".into()))?;
    let (thread, created) = state
        .chat
        .create_thread(Thread::new(None, &members))
        .await?;
    Ok((
        super::created_or_found(created),
        Json(conversation_view(&state, &thread, &reader_for(&actor, &account.id)).await?),
    ))
}

/// `GET /api/account/:account_id/conversation/:conversation_id` → Conversation.
#[utoipa::path(get, path = "/api/account/{account_id}/conversation/{conversation_id}", tag = "conversations", 
    params(("account_id" = String, Path, description = "The account's id"), ("conversation_id" = String, Path, description = "The conversation's (thread's) id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 403, description = "`not_your_account`, `not_a_participant`", body = ErrorBody),
        (status = 404, description = "`account_not_found`, `conversation_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    actor: Actor,
    Path((account_id, id)): Path<(String, String)>,
) -> Result<Json<ConversationView>> {
    let (account, thread) = conversation(&state, &actor, &account_id, &id).await?;
    let reader = reader_for(&actor, &account.id);
    Ok(Json(conversation_view(&state, &thread, &reader).await?))
}

/// `GET /api/account/:account_id/conversation/:conversation_id/messages?pageSize=&cursor=` →
/// `Paginated<Message>`.
#[utoipa::path(get, path = "/api/account/{account_id}/conversation/{conversation_id}/messages", tag = "conversations", 
    params(("account_id" = String, Path, description = "The account's id"), ("conversation_id" = String, Path, description = "The conversation's (thread's) id"), PageParams),
    responses(
        (status = 200, description = "A page of the conversation's messages", body = Paginated<ChatMessageView>),
        (status = 400, description = "`invalid_page_size`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_your_account`, `not_a_participant`", body = ErrorBody),
        (status = 404, description = "`account_not_found`, `conversation_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    actor: Actor,
    Path((account_id, id)): Path<(String, String)>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<ChatMessageView>>> {
    let (_, thread) = conversation(&state, &actor, &account_id, &id).await?;
    let request = PageRequest::parse(
        params.page_size.as_deref(),
        params.cursor.as_deref(),
        |raw| MessageId::parse(raw).ok(),
    )?;
    let window = state
        .store
        .messages(&thread.id, request.anchor.clone(), request.limit)
        .await?;
    let authors: Vec<UserId> = window.items.iter().map(|m| m.author_id.clone()).collect();
    let names = state.store.account_names(&authors).await?;
    Ok(Json(Paginated::new(
        window,
        &request,
        |m| m.id.as_str(),
        |m| ChatMessageView::new(m, &names),
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PostText {
    text: String,
    client_message_id: Option<String>,
    /// The id of a message of this conversation that this one replies to.
    reply_to: Option<String>,
    /// Participants to mention (at most 50); each gets a `mention` event.
    #[schema(max_items = 50)]
    mentions: Option<Vec<String>>,
}

/// `POST /api/account/:account_id/conversation/:conversation_id/messages {text, clientMessageId?,
/// replyTo?, mentions?}`
/// → 201 Message (200 with the original for an idempotent retry),
/// sent by the account and broadcast as `message:new` (threads-API shape) to the thread's room.
#[utoipa::path(post, path = "/api/account/{account_id}/conversation/{conversation_id}/messages", tag = "conversations", 
    params(("account_id" = String, Path, description = "The account's id"), ("conversation_id" = String, Path, description = "The conversation's (thread's) id"), ("Idempotency-Key" = Option<String>, Header, description = "Same as `clientMessageId`")),
    request_body = PostText,
    responses(
        (status = 201, description = "Sent, and broadcast as `message:new`", body = ChatMessageView),
        (status = 200, description = "A retry: the original message", body = ChatMessageView),
        (status = 400, description = "`invalid_json`, `invalid_text`, `empty_message`, `message_too_long`, `invalid_client_message_id`, `invalid_reply_to`, `invalid_mention`", body = ErrorBody),
        (status = 403, description = "`not_your_account`, `not_a_participant`", body = ErrorBody),
        (status = 404, description = "`account_not_found`, `conversation_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (posts per user and per address)", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn post_message(
    State(state): State<AppState>,
    actor: Actor,
    Path((account_id, id)): Path<(String, String)>,
    idempotency: IdempotencyKey,
    Json(req): Json<PostText>,
) -> Result<(StatusCode, Json<ChatMessageView>)> {
    // The account the path names posts: in jwt mode only the caller's own (checked below), so
    // the caller's bucket pays even for a refused attempt.
    let poster = Actor {
        user: match UserId::parse(&account_id) {
            Ok(named) if !actor.verified => named,
            _ => actor.user.clone(),
        },
        ..actor.clone()
    };
    let mut account = None;
    let lookup = async {
        let (found, thread) = conversation(&state, &actor, &account_id, &id).await?;
        account = Some(found);
        Ok(thread)
    };
    let posted = state
        .chat
        .post_in(&poster, lookup, |author| {
            let key = client_message_id(req.client_message_id.as_deref(), idempotency)?;
            let mentions = req.mentions.unwrap_or_default();
            Ok(
                NewMessage::new(author.clone(), Some(&req.text), &[] as &[&str])?
                    .with_client_id(key)
                    .replying_to(req.reply_to.as_deref())?
                    .mentioning(&mentions)?,
            )
        })
        .await?;
    let account = account.ok_or_else(|| ApiError::Internal("the conversation's account".into()))?;
    let names = HashMap::from([(account.id.clone(), account.name.clone())]);
    Ok((
        super::created_or_found(posted.created),
        Json(ChatMessageView::new(&posted.message, &names)),
    ))
}

// The README's short forms (`/api/:account_id/conversation...`): the same handlers.

#[utoipa::path(get, path = "/api/{account_id}/conversation", tag = "conversations", operation_id = "list_short", 
    params(("account_id" = String, Path, description = "The account's id"), PageParams),
    responses(
        (status = 200, description = "The account's conversations, most recently active first", body = Paginated<ConversationView>),
        (status = 400, description = "`invalid_page_size`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_your_account` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn list_short(
    state: State<AppState>,
    actor: Actor,
    path: Path<String>,
    query: Query<PageParams>,
) -> Result<Json<Paginated<ConversationView>>> {
    list(state, actor, path, query).await
}

#[utoipa::path(post, path = "/api/{account_id}/conversation", tag = "conversations", operation_id = "create_short", 
    params(("account_id" = String, Path, description = "The account's id"), WithParams),
    responses(
        (status = 201, description = "A new conversation", body = ConversationView),
        (status = 200, description = "The existing conversation between the two", body = ConversationView),
        (status = 400, description = "`missing_with`, `invalid_with`", body = ErrorBody),
        (status = 403, description = "`not_your_account` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (threads per user and per address)", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn create_short(
    state: State<AppState>,
    actor: Actor,
    path: Path<String>,
    query: Query<WithParams>,
) -> Result<(StatusCode, Json<ConversationView>)> {
    create(state, actor, path, query).await
}

#[utoipa::path(get, path = "/api/{account_id}/conversation/{conversation_id}", tag = "conversations", operation_id = "show_short", 
    params(("account_id" = String, Path, description = "The account's id"), ("conversation_id" = String, Path, description = "The conversation's (thread's) id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 403, description = "`not_your_account`, `not_a_participant`", body = ErrorBody),
        (status = 404, description = "`account_not_found`, `conversation_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn show_short(
    state: State<AppState>,
    actor: Actor,
    path: Path<(String, String)>,
) -> Result<Json<ConversationView>> {
    show(state, actor, path).await
}

#[utoipa::path(get, path = "/api/{account_id}/conversation/{conversation_id}/messages", tag = "conversations", operation_id = "list_messages_short", 
    params(("account_id" = String, Path, description = "The account's id"), ("conversation_id" = String, Path, description = "The conversation's (thread's) id"), PageParams),
    responses(
        (status = 200, description = "A page of the conversation's messages", body = Paginated<ChatMessageView>),
        (status = 400, description = "`invalid_page_size`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`not_your_account`, `not_a_participant`", body = ErrorBody),
        (status = 404, description = "`account_not_found`, `conversation_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn list_messages_short(
    state: State<AppState>,
    actor: Actor,
    path: Path<(String, String)>,
    query: Query<PageParams>,
) -> Result<Json<Paginated<ChatMessageView>>> {
    list_messages(state, actor, path, query).await
}

#[utoipa::path(post, path = "/api/{account_id}/conversation/{conversation_id}/messages", tag = "conversations", operation_id = "post_message_short", 
    params(("account_id" = String, Path, description = "The account's id"), ("conversation_id" = String, Path, description = "The conversation's (thread's) id"), ("Idempotency-Key" = Option<String>, Header, description = "Same as `clientMessageId`")),
    request_body = PostText,
    responses(
        (status = 201, description = "Sent, and broadcast as `message:new`", body = ChatMessageView),
        (status = 200, description = "A retry: the original message", body = ChatMessageView),
        (status = 400, description = "`invalid_json`, `invalid_text`, `empty_message`, `message_too_long`, `invalid_client_message_id`", body = ErrorBody),
        (status = 403, description = "`not_your_account`, `not_a_participant`", body = ErrorBody),
        (status = 404, description = "`account_not_found`, `conversation_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (posts per user and per address)", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn post_message_short(
    state: State<AppState>,
    actor: Actor,
    path: Path<(String, String)>,
    idempotency: IdempotencyKey,
    body: Json<PostText>,
) -> Result<(StatusCode, Json<ChatMessageView>)> {
    post_message(state, actor, path, idempotency, body).await
}
