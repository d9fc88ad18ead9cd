//! Socket.IO at path `/ws`: what the rest of the product may ask of it ([`Realtime`]), the
//! events it sends to rooms ([`ThreadEvent`]), and, in submodules, the socket's event handlers,
//! typing, presence and the fan-out between nodes.
//!
//! Handlers are generic over socketioxide's adapter, so the same code runs with the in-process
//! adapter (one node) and the Redis adapter (several nodes).

pub mod events;
mod handlers;
pub mod peers;
mod presence;
pub mod rooms;
pub mod transport;
mod typing;

use async_trait::async_trait;
use serde::Serialize;
use socketioxide::{SocketIo, adapter::Adapter};

pub use handlers::{Identities, connect_handler};
pub use typing::Typing;

use crate::{
    domain::{MessageId, ThreadId, UserId},
    views::{MessageEnvelope, MessageView},
};

/// An event for everyone in a thread's room, on every node.
#[derive(Debug, Clone, Copy)]
pub enum ThreadEvent<'a> {
    /// `message:new {message}`.
    New(&'a MessageView),
    /// `message:updated {message}`: the author edited it.
    Updated(&'a MessageView),
    /// `message:deleted {threadId, messageId}`: the author deleted it.
    Deleted {
        thread: &'a ThreadId,
        message: &'a MessageId,
    },
    /// `receipt {threadId, userId, messageId}`: a member's read position moved forward.
    Receipt {
        thread: &'a ThreadId,
        user: &'a UserId,
        message: &'a MessageId,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted<'a> {
    thread_id: &'a ThreadId,
    message_id: &'a MessageId,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt<'a> {
    thread_id: &'a ThreadId,
    user_id: &'a UserId,
    message_id: &'a MessageId,
}

impl ThreadEvent<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Self::New(_) => events::MESSAGE_NEW,
            Self::Updated(_) => events::MESSAGE_UPDATED,
            Self::Deleted { .. } => events::MESSAGE_DELETED,
            Self::Receipt { .. } => events::RECEIPT,
        }
    }

    /// The event's payload, as every socket receives it.
    pub fn payload(&self) -> EventPayload<'_> {
        match *self {
            Self::New(message) | Self::Updated(message) => {
                EventPayload::Message(MessageEnvelope { message })
            }
            Self::Deleted { thread, message } => EventPayload::Deleted(Deleted {
                thread_id: thread,
                message_id: message,
            }),
            Self::Receipt {
                thread,
                user,
                message,
            } => EventPayload::Receipt(Receipt {
                thread_id: thread,
                user_id: user,
                message_id: message,
            }),
        }
    }

    /// Sends the event to the sockets `op` selects (a room, or this node's share of one).
    async fn emit_to<A: Adapter>(&self, op: socketioxide::operators::BroadcastOperators<A>) {
        if let Err(e) = op.emit(self.name(), &self.payload()).await {
            tracing::warn!(error = %e, event = self.name(), "broadcast failed");
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum EventPayload<'a> {
    Message(MessageEnvelope<'a>),
    Deleted(Deleted<'a>),
    Receipt(Receipt<'a>),
}

/// What the rest of the product needs from the Socket.IO server, whatever its adapter.
#[async_trait]
pub trait Realtime: Send + Sync + 'static {
    /// Sends `event` to the thread's room, on every node.
    async fn publish(&self, thread: &ThreadId, event: ThreadEvent<'_>);
    /// Sends an event about the message at position `seq` to the thread's room, on every node:
    /// here at once, and to the other nodes with its position, so that each delivers it in
    /// the store's order (see [`peers`]). The caller holds the thread's sequencer.
    async fn publish_ordered(
        &self,
        thread: &ThreadId,
        event: ThreadEvent<'_>,
        seq: u64,
        id: &MessageId,
    );
    /// Sends `event` to this node's sockets in the thread's room only.
    async fn emit_local(&self, thread: &ThreadId, event: ThreadEvent<'_>);
    /// Whether other nodes deliver this node's message events (see [`peers`]).
    fn has_peers(&self) -> bool;
    /// The identified users with a socket in the thread's room, on any node, sorted.
    async fn online(&self, thread: &ThreadId) -> Vec<UserId>;
    /// Closes every session (clients see a clean disconnect).
    async fn close(&self);
}

/// The Socket.IO server, and with several nodes the channel its thread events travel on.
pub struct Broadcaster<A: Adapter> {
    pub io: SocketIo<A>,
    pub peers: Option<peers::Peers>,
}

#[async_trait]
impl<A: Adapter> Realtime for Broadcaster<A> {
    async fn publish(&self, thread: &ThreadId, event: ThreadEvent<'_>) {
        // The adapter reaches every node. socketioxide serializes once; the same packet goes
        // to every socket in the room.
        event.emit_to(self.io.to(rooms::thread_room(thread))).await;
    }

    async fn publish_ordered(
        &self,
        thread: &ThreadId,
        event: ThreadEvent<'_>,
        seq: u64,
        id: &MessageId,
    ) {
        match &self.peers {
            Some(peers) => {
                self.emit_local(thread, event).await;
                peers.publish(thread, event, seq, id).await;
            }
            None => self.publish(thread, event).await,
        }
    }

    async fn emit_local(&self, thread: &ThreadId, event: ThreadEvent<'_>) {
        event
            .emit_to(self.io.local().to(rooms::thread_room(thread)))
            .await;
    }

    fn has_peers(&self) -> bool {
        self.peers.is_some()
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

    async fn close(&self) {
        self.io.close().await;
    }
}
