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
    /// Whether other nodes deliver this node's thread events (see [`peers`]).
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
        let room = rooms::thread_room(thread);
        match (&self.peers, event) {
            // Message events go to this node's sockets here, and to the other nodes' through
            // the peers channel, where each node delivers them under its thread sequencer.
            (
                Some(peers),
                ThreadEvent::New(_) | ThreadEvent::Updated(_) | ThreadEvent::Deleted { .. },
            ) => {
                event.emit_to(self.io.local().to(room)).await;
                peers.publish(thread, event).await;
            }
            // One node, or an event without ordering needs: the adapter reaches every node.
            // socketioxide serializes once; the same packet goes to every socket in the room.
            _ => event.emit_to(self.io.to(room)).await,
        }
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
