//! The default namespace: who a socket speaks for, and its event handlers.
//!
//! Every event with an ack callback gets `{ok: true, ...}` or `{error: "<code>"}`; a malformed
//! payload gets an error ack (or nothing, without a callback) and never disconnects anyone.

use std::{net::IpAddr, sync::Arc};

use dashmap::DashMap;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef, State, TryData},
    handler::ConnectHandler,
    socket::Sid,
};

use super::{
    ThreadEvent,
    events::{
        self, Ack, MESSAGE_SEND, THREAD_JOIN, THREAD_LEAVE, THREAD_READ, TYPING, TypingPayload,
    },
    presence, rooms,
    typing::TYPING_TIMEOUT,
};
use crate::{
    chat::{Change, Replay},
    domain::{MessageId, NewMessage, Thread, ThreadId, UserId, message::ClientMessageId},
    error::ApiError,
    state::AppState,
    views::MessageView,
};

/// Who each identified socket speaks for. Only sockets that named a user have an entry, so
/// anonymous connections (the stub's only kind) cost nothing here.
#[derive(Default)]
pub struct Identities(DashMap<Sid, Identified>);

/// An identified socket's user, and the threads it joined (for presence when it goes away:
/// socketioxide may already have taken a closing socket out of its rooms by then).
struct Identified {
    user: UserId,
    threads: Vec<ThreadId>,
}

impl Identities {
    fn get(&self, sid: Sid) -> Option<UserId> {
        self.0.get(&sid).map(|i| i.user.clone())
    }

    fn joined(&self, sid: Sid, thread: &ThreadId) {
        if let Some(mut identified) = self.0.get_mut(&sid)
            && !identified.threads.contains(thread)
        {
            identified.threads.push(thread.clone());
        }
    }

    fn left(&self, sid: Sid, thread: &ThreadId) {
        if let Some(mut identified) = self.0.get_mut(&sid) {
            identified.threads.retain(|t| t != thread);
        }
    }

    /// The author of what the socket posts: its user, or the stub's `"me"`.
    fn author(&self, sid: Sid) -> UserId {
        self.get(sid).unwrap_or_else(UserId::anonymous)
    }
}

/// Why a handshake is refused (socket.io-client's `connect_error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(&'static str);

/// The default namespace's connect handler, with its event handlers registered by a middleware.
pub fn connect_handler<A: Adapter>() -> impl ConnectHandler<A, (SocketRef<A>,)> {
    on_connect::<A>.with(register_handlers::<A>)
}

/// Event handlers are registered in a connect *middleware*, which runs before the CONNECT
/// acknowledgement is sent. Registering them in the connect handler instead (which socketioxide
/// runs as its own task after the acknowledgement) loses events a client emits right after
/// connecting, which is exactly what chat pages do with `thread:join`.
///
/// In `open` mode a socket may name its user in the handshake (`io(url, {path: "/ws", auth:
/// {userId}})`); without one it stays anonymous, as in the stub, and posts as `"me"`. In `jwt`
/// mode the handshake must carry a valid token (`auth: {token}` or `?token=`), else the
/// connection is refused (`connect_error`) before the socket exists.
///
/// The limits on new connections apply here too: the address's rate before the token is even
/// checked, then the user's rate, then the caps on connections held (`rate_limited`,
/// `server_full`, `too_many_connections`).
async fn register_handlers<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let limits = &state.limits;
    limits
        .connects
        .check(None, client_ip(&state, &socket))
        .map_err(|_| Refused("rate_limited"))?;
    let auth = auth.ok();
    let user = match &state.auth {
        // jwt mode: the token, from the auth payload or the `token` query parameter, is checked
        // before the socket exists.
        Some(verifier) => {
            let token = auth
                .as_ref()
                .and_then(|a| a.get("token"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| query_token(socket.req_parts().uri.query()))
                .ok_or(Refused("unauthorized"))?;
            Some(verifier.verify(&token).map_err(|e| Refused(e.code()))?)
        }
        None => match auth.as_ref().and_then(|a| a.get("userId")) {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => {
                Some(UserId::parse(raw).map_err(|_| Refused("invalid_user_id"))?)
            }
            Some(_) => return Err(Refused("invalid_user_id")),
        },
    };
    if let Some(user) = &user {
        limits
            .connects
            .check(Some(user), None)
            .map_err(|_| Refused("rate_limited"))?;
    }
    // The place is given back when the socket, and with it this handler, is dropped: whether
    // or not the handler ever runs.
    let slot = match limits.connections.counts(user.as_ref()) {
        true => Some(Arc::new(
            limits
                .connections
                .acquire(user.as_ref())
                .map_err(|e| Refused(e.code()))?,
        )),
        false => None,
    };
    let identified = user.is_some();
    if let Some(user) = user {
        socket.join(rooms::user_room(&user));
        state.identities.0.insert(
            socket.id,
            Identified {
                user,
                threads: Vec::new(),
            },
        );
    }
    if identified || slot.is_some() {
        socket.on_disconnect(
            move |socket: SocketRef<A>, state: State<AppState>| async move {
                on_disconnect(socket, state).await;
                drop(slot);
            },
        );
    }
    socket.on_fallback(on_event::<A>);
    Ok(())
}

/// The event table: every client event goes through this one dispatch, registered as the
/// socket's fallback handler. Registering each event with `socket.on` would build the same
/// five-entry map in every socket (~350 bytes per held connection); a `match` costs nothing
/// per socket. Events not listed are ignored, as they would be with no handler.
async fn on_event<A: Adapter>(
    socket: SocketRef<A>,
    Event(event): Event,
    state: State<AppState>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    let payload = payload.ok();
    match event.as_str() {
        THREAD_JOIN => on_thread_join(socket, state, payload, ack).await,
        THREAD_LEAVE => on_thread_leave(socket, state, payload, ack).await,
        MESSAGE_SEND => on_message_send(socket, state, typed(payload), ack).await,
        TYPING => on_typing(socket, state, typed(payload), ack).await,
        THREAD_READ => on_thread_read(socket, state, typed(payload), ack).await,
        _ => tracing::debug!(sid = %socket.id, event, "event without a handler"),
    }
}

/// An event's payload as the handler's type; `None` when it does not fit.
fn typed<T: DeserializeOwned>(payload: Option<Value>) -> Option<T> {
    serde_json::from_value(payload?).ok()
}

/// The client's address, when a limit keys on it.
fn client_ip<A: Adapter>(state: &AppState, socket: &SocketRef<A>) -> Option<IpAddr> {
    let parts = socket.req_parts();
    state.limits.client_ip(&parts.headers, &parts.extensions)
}

/// An identified socket went away: its typing stops and its user may go offline in each of its
/// threads. Then it is forgotten.
async fn on_disconnect<A: Adapter>(socket: SocketRef<A>, State(state): State<AppState>) {
    let Some((_, Identified { user, threads })) = state.identities.0.remove(&socket.id) else {
        return;
    };
    for thread in threads {
        if state.typing.stop(&thread, &user) {
            send_typing(&socket, &thread, &user, false).await;
        }
        presence::announce(&socket, &thread, &user, false).await;
    }
}

/// `token` from a handshake query string (`io(url, {query: {token}})`).
fn query_token(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .find_map(|(key, value)| (key == "token").then_some(value))
}

/// The stored thread, and in `jwt` mode only if the socket's user is a member.
async fn readable_thread(
    state: &AppState,
    sid: Sid,
    thread: &ThreadId,
) -> Result<Thread, &'static str> {
    let thread = state
        .store
        .thread(thread)
        .await
        .map_err(|e| ApiError::from(e).code())?;
    if state.auth.is_some() && !thread.has_member(&state.identities.author(sid)) {
        return Err("not_a_member");
    }
    Ok(thread)
}

async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    tracing::debug!(sid = %socket.id, "socket connected");
}

/// `thread:join {threadId, since?}` → joins room `thread:<threadId>`. With `since` (the last
/// message id the client saw), first replays what it missed: edits and deletions of what it
/// had seen (`message:updated` / `message:deleted`), then every message created after it
/// (`message:new`), oldest first, at most `--replay-limit`. The ack is `{ok: true, replayed}`
/// (plus `truncated: true` past the limit), or `{error}`.
async fn on_thread_join<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    payload: Option<Value>,
    ack: AckSender<A>,
) {
    let result = async {
        let payload = payload.ok_or("invalid_payload")?;
        let thread = events::thread_id(&payload)?;
        let since = events::since(&payload)?;
        let thread = readable_thread(&state, socket.id, &thread).await?;
        let room = rooms::thread_room(&thread.id);
        let ack = match since {
            None => {
                state
                    .chat
                    .join(&thread.id, || socket.join(room))
                    .await
                    .map_err(|e| e.code())?;
                Ack::ok()
            }
            Some(since) => {
                let replay = state
                    .chat
                    .rejoin(&thread.id, &since, state.config.replay_limit, |replay| {
                        socket.join(room);
                        replay_to(&socket, replay);
                    })
                    .await
                    .map_err(|e| e.code())?;
                Ack::joined(replay.len(), replay.truncated)
            }
        };
        Ok((thread.id, ack))
    }
    .await;
    match result {
        Ok((thread, body)) => {
            let _ = ack.send(&body);
            if let Some(user) = state.identities.get(socket.id) {
                state.identities.joined(socket.id, &thread);
                presence::announce(&socket, &thread, &user, true).await;
            }
        }
        Err(code) => {
            let _ = ack.send(&Ack::error(code));
        }
    }
}

/// Emits a replay to one socket, in order: changes first, then new messages.
fn replay_to<A: Adapter>(socket: &SocketRef<A>, replay: &Replay) {
    let changes = replay.changed.iter().map(|change| match change {
        Change::Updated(view) => ThreadEvent::Updated(view),
        Change::Deleted(thread, message) => ThreadEvent::Deleted { thread, message },
    });
    for event in changes.chain(replay.new.iter().map(ThreadEvent::New)) {
        if let Err(e) = socket.emit(event.name(), &event.payload()) {
            // Its queue is full: it is not reading. Close it rather than leave a hole in what
            // it received; it rejoins with the same `since` when it reads again.
            tracing::info!(sid = %socket.id, error = %e, "replay did not fit: disconnecting");
            let _ = socket.clone().disconnect();
            return;
        }
    }
}

/// `thread:leave {threadId}` → leaves room `thread:<threadId>`; ack `{ok}` or `{error}`.
async fn on_thread_leave<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    payload: Option<Value>,
    ack: AckSender<A>,
) {
    let result = payload
        .ok_or("invalid_payload")
        .and_then(|p| events::thread_id(&p));
    let _ = ack.send(&match &result {
        Ok(_) => Ack::ok(),
        Err(code) => Ack::error(code),
    });
    let Ok(thread) = result else { return };
    let room = rooms::thread_room(&thread);
    let was_in = socket.rooms().iter().any(|r| *r == room);
    socket.leave(room);
    if was_in && let Some(user) = state.identities.get(socket.id) {
        state.identities.left(socket.id, &thread);
        if state.typing.stop(&thread, &user) {
            send_typing(&socket, &thread, &user, false).await;
        }
        presence::announce(&socket, &thread, &user, false).await;
    }
}

/// `message:send {threadId, body, fileIds?, clientMessageId?}` → the same validation,
/// idempotency, storage and broadcast as `POST /api/threads/:id/messages` (through `Chat::post`);
/// ack `{ok: true, message}` or `{error}`.
async fn on_message_send<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    payload: Option<events::SendMessage>,
    ack: AckSender<A>,
) {
    let user = state.identities.get(socket.id);
    if let Err(limited) = state
        .limits
        .posts
        .check(user.as_ref(), client_ip(&state, &socket))
    {
        let _ = ack.send(&Ack::limited(limited));
        return;
    }
    let result: Result<MessageView, &'static str> = async {
        let req = payload.ok_or("invalid_payload")?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| "invalid_thread_id")?;
        readable_thread(&state, socket.id, &thread).await?;
        let key = match req.client_message_id.as_deref() {
            None => None,
            Some(raw) => Some(ClientMessageId::parse(raw).ok_or("invalid_client_message_id")?),
        };
        let new = NewMessage::new(
            user.unwrap_or_else(UserId::anonymous),
            req.body.as_deref(),
            &req.file_ids.unwrap_or_default(),
        )
        .map_err(|e| ApiError::from(e).code())?
        .with_client_id(key);
        let posted = state.chat.post(&thread, new).await.map_err(|e| e.code())?;
        Ok(posted.view)
    }
    .await;
    let _ = match &result {
        Ok(message) => ack.send(&Ack::sent(message)),
        Err(code) => ack.send(&Ack::error(code)),
    };
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypingEvent<'a> {
    thread_id: &'a ThreadId,
    user_id: &'a UserId,
    typing: bool,
}

/// Tells the others in the thread's room (not this user's own sockets) whether `user` types.
async fn send_typing<A: Adapter>(
    socket: &SocketRef<A>,
    thread: &ThreadId,
    user: &UserId,
    typing: bool,
) {
    let event = TypingEvent {
        thread_id: thread,
        user_id: user,
        typing,
    };
    let _ = socket
        .to(rooms::thread_room(thread))
        .except(rooms::user_room(user))
        .volatile()
        .emit(TYPING, &event)
        .await;
}

/// `typing {threadId, typing}` → the others in the room get `typing {threadId, userId,
/// typing}`. A `true` not renewed within 5 s turns into `false` by itself. Needs a user.
async fn on_typing<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    payload: Option<TypingPayload>,
    ack: AckSender<A>,
) {
    let result: Result<(ThreadId, UserId, bool), &'static str> = async {
        let req = payload.ok_or("invalid_payload")?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| "invalid_thread_id")?;
        let user = state.identities.get(socket.id).ok_or("identity_required")?;
        readable_thread(&state, socket.id, &thread).await?;
        Ok((thread, user, req.typing))
    }
    .await;
    let _ = ack.send(&match &result {
        Ok(_) => Ack::ok(),
        Err(code) => Ack::error(code),
    });
    let Ok((thread, user, typing)) = result else {
        return;
    };
    if !typing {
        if state.typing.stop(&thread, &user) {
            send_typing(&socket, &thread, &user, false).await;
        }
        return;
    }
    let generation = state.typing.start(&thread, &user);
    send_typing(&socket, &thread, &user, true).await;
    tokio::spawn(async move {
        tokio::time::sleep(TYPING_TIMEOUT).await;
        if state.typing.expire(&thread, &user, generation) {
            send_typing(&socket, &thread, &user, false).await;
        }
    });
}

/// `thread:read {threadId, messageId}` → moves the user's read position forward (never back)
/// and, when it moved, sends `receipt {threadId, userId, messageId}` to the room. Ack
/// `{ok: true, messageId}` with the position afterwards. Needs a user.
async fn on_thread_read<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    payload: Option<events::Read>,
    ack: AckSender<A>,
) {
    let result: Result<MessageId, &'static str> = async {
        let req = payload.ok_or("invalid_payload")?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| "invalid_thread_id")?;
        let message = MessageId::parse(&req.message_id).map_err(|_| "invalid_message_id")?;
        let user = state.identities.get(socket.id).ok_or("identity_required")?;
        readable_thread(&state, socket.id, &thread).await?;
        state
            .chat
            .mark_read(&thread, &user, &message)
            .await
            .map_err(|e| e.code())
    }
    .await;
    let _ = match &result {
        Ok(position) => ack.send(&Ack::read(position)),
        Err(code) => ack.send(&Ack::error(code)),
    };
}
