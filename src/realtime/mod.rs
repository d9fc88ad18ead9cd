//! Socket.IO at path `/ws`: the handler table, and the broadcast of new messages.
//!
//! Handlers are generic over socketioxide's adapter, so the same code runs with the in-process
//! adapter (one node) and the Redis adapter (several nodes).

pub mod events;
pub mod rooms;
pub mod transport;

use std::convert::Infallible;

use async_trait::async_trait;
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, SocketRef, State, TryData},
    handler::ConnectHandler,
};

use crate::{
    state::AppState,
    views::{MessageEnvelope, MessageView},
};
use events::{Ack, MESSAGE_NEW, THREAD_JOIN, THREAD_LEAVE};

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
async fn register_handlers<A: Adapter>(socket: SocketRef<A>) -> Result<(), Infallible> {
    socket.on(THREAD_JOIN, on_thread_join::<A>);
    socket.on(THREAD_LEAVE, on_thread_leave::<A>);
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

fn reply<A: Adapter>(ack: AckSender<A>, result: Result<(), &'static str>) {
    let ack_body = match result {
        Ok(()) => Ack::ok(),
        Err(code) => Ack::error(code),
    };
    // Fails only when the socket is already gone; nothing to tell anyone then.
    let _ = ack.send(&ack_body);
}
