//! Socket.IO at path `/ws`: the handler table, and the broadcast of new messages.

pub mod events;
pub mod rooms;
pub mod transport;

use std::convert::Infallible;

use serde_json::Value;
use socketioxide::{
    SocketIo,
    extract::{AckSender, SocketRef, State, TryData},
    handler::ConnectHandler,
};

use crate::{
    state::AppState,
    views::{MessageEnvelope, MessageView},
};
use events::{Ack, MESSAGE_NEW, THREAD_JOIN, THREAD_LEAVE};

/// Registers the default namespace.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(register_handlers));
}

/// Event handlers are registered in a connect *middleware*, which runs before the CONNECT
/// acknowledgement is sent. Registering them in the connect handler instead (which socketioxide
/// runs as its own task after the acknowledgement) loses events a client emits right after
/// connecting, which is exactly what chat pages do with `thread:join`.
async fn register_handlers(socket: SocketRef) -> Result<(), Infallible> {
    socket.on(THREAD_JOIN, on_thread_join);
    socket.on(THREAD_LEAVE, on_thread_leave);
    Ok(())
}

async fn on_connect(socket: SocketRef) {
    tracing::debug!(sid = %socket.id, "socket connected");
}

/// `thread:join {threadId}` → joins room `thread:<threadId>`; ack `{ok}` or `{error}`.
async fn on_thread_join(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(payload): TryData<Value>,
    ack: AckSender,
) {
    let result = async {
        let thread = events::thread_id(&payload.map_err(|_| "invalid_payload")?)?;
        state
            .store
            .thread(&thread)
            .await
            .map_err(|e| crate::error::ApiError::from(e).code())?;
        socket.join(rooms::thread_room(&thread));
        Ok(())
    }
    .await;
    reply(ack, result);
}

/// `thread:leave {threadId}` → leaves room `thread:<threadId>`; ack `{ok}` or `{error}`.
async fn on_thread_leave(socket: SocketRef, TryData(payload): TryData<Value>, ack: AckSender) {
    let result = payload
        .map_err(|_| "invalid_payload")
        .and_then(|p| events::thread_id(&p))
        .map(|thread| socket.leave(rooms::thread_room(&thread)));
    reply(ack, result);
}

fn reply(ack: AckSender, result: Result<(), &'static str>) {
    let ack_body = match result {
        Ok(()) => Ack::ok(),
        Err(code) => Ack::error(code),
    };
    // Fails only when the socket is already gone; nothing to tell anyone then.
    let _ = ack.send(&ack_body);
}

/// Sends `message:new {message}` to the message's thread room.
///
/// The payload is serialized once by socketioxide and the same packet goes to every socket in
/// the room.
pub async fn broadcast_new_message(io: &SocketIo, message: &MessageView) {
    let room = rooms::thread_room(&message.thread_id);
    if let Err(e) = io
        .to(room)
        .emit(MESSAGE_NEW, &MessageEnvelope { message })
        .await
    {
        tracing::warn!(error = %e, "message:new broadcast failed");
    }
}
