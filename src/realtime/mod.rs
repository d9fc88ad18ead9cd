//! Socket.IO at path `/ws`: the handler table, and the broadcast of new messages.
//!
//! Handlers are generic over socketioxide's adapter, so the same code runs with the in-process
//! adapter (one node) and the Redis adapter (several nodes).

pub mod events;
pub mod rooms;
pub mod transport;

use async_trait::async_trait;
use dashmap::DashMap;
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, SocketRef, State, TryData},
    handler::ConnectHandler,
    socket::Sid,
};

use crate::{
    domain::{NewMessage, UserId, message::ClientMessageId},
    error::ApiError,
    state::AppState,
    views::{MessageEnvelope, MessageView},
};

/// Who each identified socket speaks for. Only sockets that named a user have an entry, so
/// anonymous connections (the stub's only kind) cost nothing here.
#[derive(Default)]
pub struct Identities(DashMap<Sid, UserId>);

impl Identities {
    fn of(&self, sid: Sid) -> UserId {
        self.0
            .get(&sid)
            .map(|u| u.clone())
            .unwrap_or_else(UserId::anonymous)
    }
}

/// Why a handshake is refused (socket.io-client's `connect_error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(&'static str);
use events::{Ack, MESSAGE_NEW, MESSAGE_SEND, THREAD_JOIN, THREAD_LEAVE};

/// What the rest of the product needs from the Socket.IO server, whatever its adapter.
#[async_trait]
pub trait Realtime: Send + Sync + 'static {
    /// Sends `message:new {message}` to the message's thread room, on every node.
    async fn broadcast_new_message(&self, message: &MessageView);
    /// Closes every session (clients see a clean disconnect).
    async fn close(&self);
}

#[async_trait]
impl<A: Adapter> Realtime for SocketIo<A> {
    async fn broadcast_new_message(&self, message: &MessageView) {
        // Serialized once by socketioxide; the same packet goes to every socket in the room.
        let room = rooms::thread_room(&message.thread_id);
        if let Err(e) = self
            .to(room)
            .emit(MESSAGE_NEW, &MessageEnvelope { message })
            .await
        {
            tracing::warn!(error = %e, "message:new broadcast failed");
        }
    }

    async fn close(&self) {
        SocketIo::close(self).await;
    }
}

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
async fn register_handlers<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
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
    if let Some(user) = user {
        state.identities.0.insert(socket.id, user);
        socket.on_disconnect(forget_identity::<A>);
    }
    socket.on(THREAD_JOIN, on_thread_join::<A>);
    socket.on(THREAD_LEAVE, on_thread_leave::<A>);
    socket.on(MESSAGE_SEND, on_message_send::<A>);
    Ok(())
}

async fn forget_identity<A: Adapter>(socket: SocketRef<A>, State(state): State<AppState>) {
    state.identities.0.remove(&socket.id);
}

/// `token` from a handshake query string (`io(url, {query: {token}})`).
fn query_token(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .find_map(|(key, value)| (key == "token").then_some(value))
}

/// In `jwt` mode only members of a thread join its room or post to it.
fn require_member(
    state: &AppState,
    sid: Sid,
    thread: &crate::domain::Thread,
) -> Result<(), &'static str> {
    if state.auth.is_some() && !thread.has_member(&state.identities.of(sid)) {
        return Err("not_a_member");
    }
    Ok(())
}

async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    tracing::debug!(sid = %socket.id, "socket connected");
}

/// `thread:join {threadId}` → joins room `thread:<threadId>`; ack `{ok}` or `{error}`.
async fn on_thread_join<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    let result = async {
        let thread = events::thread_id(&payload.map_err(|_| "invalid_payload")?)?;
        let thread = state
            .store
            .thread(&thread)
            .await
            .map_err(|e| crate::error::ApiError::from(e).code())?;
        require_member(&state, socket.id, &thread)?;
        socket.join(rooms::thread_room(&thread.id));
        Ok(())
    }
    .await;
    reply(ack, result);
}

/// `thread:leave {threadId}` → leaves room `thread:<threadId>`; ack `{ok}` or `{error}`.
async fn on_thread_leave<A: Adapter>(
    socket: SocketRef<A>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    let result = payload
        .map_err(|_| "invalid_payload")
        .and_then(|p| events::thread_id(&p))
        .map(|thread| socket.leave(rooms::thread_room(&thread)));
    reply(ack, result);
}

/// `message:send {threadId, body, fileIds?, clientMessageId?}` → the same validation,
/// idempotency, storage and broadcast as `POST /api/threads/:id/messages` (through `Chat::post`);
/// ack `{ok: true, message}` or `{error}`.
async fn on_message_send<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(payload): TryData<events::SendMessage>,
    ack: AckSender<A>,
) {
    let result: Result<MessageView, &'static str> = async {
        let req = payload.map_err(|_| "invalid_payload")?;
        let thread =
            crate::domain::ThreadId::parse(&req.thread_id).map_err(|_| "invalid_thread_id")?;
        let stored = state
            .store
            .thread(&thread)
            .await
            .map_err(|e| ApiError::from(e).code())?;
        require_member(&state, socket.id, &stored)?;
        let key = match req.client_message_id.as_deref() {
            None => None,
            Some(raw) => Some(ClientMessageId::parse(raw).ok_or("invalid_client_message_id")?),
        };
        let new = NewMessage::new(
            state.identities.of(socket.id),
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

fn reply<A: Adapter>(ack: AckSender<A>, result: Result<(), &'static str>) {
    let ack_body = match result {
        Ok(()) => Ack::ok(),
        Err(code) => Ack::error(code),
    };
    // Fails only when the socket is already gone; nothing to tell anyone then.
    let _ = ack.send(&ack_body);
}
