//! Socket.IO at path `/ws`: the handshake ([`handshake`]), who each socket speaks for
//! ([`identities`]), the event table ([`handlers`]), typing and presence, and the two ways
//! events leave: this node's sockets ([`Broadcaster`], the fan-out's sink) and the other nodes
//! ([`peers`]).
//!
//! Handlers are generic over socketioxide's adapter, so the same code runs with the in-process
//! adapter (one node) and the Redis adapter (several nodes).

pub mod events;
mod handlers;
mod handshake;
mod identities;
pub mod peers;
mod presence;
pub mod redis;
pub mod rooms;
pub mod transport;
mod typing;

use async_trait::async_trait;
use socketioxide::{SocketIo, adapter::Adapter};

pub use handlers::EventRate;
pub use handshake::{admit_session, connect_handler};
pub use identities::Identities;
pub use presence::Presence;
pub use typing::Typing;

use crate::{
    domain::{ThreadId, UserId},
    fanout::{Payload, Sink},
};

/// What the server's lifecycle needs from the Socket.IO server, whatever its adapter.
#[async_trait]
pub trait Realtime: Send + Sync + 'static {
    /// Closes every session (clients see a clean disconnect).
    async fn close(&self);
}

/// The Socket.IO server: the fan-out's way to this node's sockets.
pub struct Broadcaster<A: Adapter> {
    pub io: SocketIo<A>,
}

#[async_trait]
impl<A: Adapter> Sink for Broadcaster<A> {
    async fn emit_local(&self, thread: &ThreadId, event: &str, payload: &Payload<'_>) {
        // socketioxide serializes once; the same packet goes to every socket in the room.
        let room = self.io.local().to(rooms::thread_room(thread));
        if let Err(e) = room.emit(event, payload).await {
            tracing::warn!(error = %e, event, "delivering a thread event failed");
        }
    }

    async fn emit_everywhere(&self, thread: &ThreadId, event: &str, payload: &Payload<'_>) {
        // The adapter reaches every node.
        if let Err(e) = self
            .io
            .to(rooms::thread_room(thread))
            .emit(event, payload)
            .await
        {
            tracing::warn!(error = %e, event, "broadcast failed");
        }
    }

    fn has_local(&self, thread: &ThreadId) -> bool {
        !self
            .io
            .local()
            .to(rooms::thread_room(thread))
            .sockets()
            .is_empty()
    }

    async fn online(&self, thread: &ThreadId) -> Vec<UserId> {
        match self.io.to(rooms::thread_room(thread)).rooms().await {
            Ok(rooms) => presence::users_in(rooms),
            Err(e) => {
                tracing::warn!(error = %e, "presence: listing rooms failed");
                Vec::new()
            }
        }
    }
}

#[async_trait]
impl<A: Adapter> Realtime for Broadcaster<A> {
    async fn close(&self) {
        self.io.close().await;
    }
}
