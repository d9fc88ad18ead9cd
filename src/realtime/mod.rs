//! Socket.IO at path `/ws`: the handshake ([`handshake`]), who each socket speaks for
//! ([`identities`]), the event table ([`handlers`]), typing and presence, and the two ways
//! events leave: this node's sockets ([`Broadcaster`], the fan-out's sink) and the other nodes
//! ([`peers`]).
//!
//! Handlers are generic over socketioxide's adapter, so the same code runs with the in-process
//! adapter (one node) and the Redis adapter (several nodes).

pub mod admin;
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

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use socketioxide::{SocketIo, TransportType, adapter::Adapter};

pub use admin::Admin;
pub use handlers::EventRate;
pub use handshake::{admit_session, connect_handler};
pub use identities::Identities;
pub use presence::Presence;
pub use typing::Typing;

use crate::{
    domain::{ThreadId, UserId},
    fanout::{Payload, Sink},
    metrics::{Live, Sampler},
    readiness::RedisLink,
};

/// What the server's lifecycle needs from the Socket.IO server, whatever its adapter.
#[async_trait]
pub trait Realtime: Send + Sync + 'static {
    /// Closes every session (clients see a clean disconnect).
    async fn close(&self);
}

/// The Socket.IO server: the fan-out's way to this node's sockets.
pub struct Broadcaster<A: Adapter> {
    io: SocketIo<A>,
    /// Thread events written to this node's sockets.
    deliveries: Counter,
    /// The link to the other nodes, when there are any.
    redis: Option<Arc<RedisLink>>,
}

impl<A: Adapter> Broadcaster<A> {
    pub fn new(io: SocketIo<A>, deliveries: Counter, redis: Option<Arc<RedisLink>>) -> Self {
        Self {
            io,
            deliveries,
            redis,
        }
    }
}

#[async_trait]
impl<A: Adapter> Sink for Broadcaster<A> {
    async fn emit_local(&self, thread: &ThreadId, event: &str, payload: &Payload<'_>) {
        // socketioxide serializes once; the same packet goes to every socket in the room.
        let room = self.io.local().to(rooms::thread_room(thread));
        // Counted from the room's local members: a lookup per socket, next to the write each
        // of them gets.
        let reached = room.clone().sockets().len();
        if let Err(e) = room.emit(event, payload).await {
            tracing::warn!(error = %e, event, "delivering a thread event failed");
        }
        self.deliveries.inc_by(reached as u64);
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

    async fn emit_to_users(&self, users: &[UserId], event: &str, payload: &Payload<'_>) {
        let rooms: Vec<String> = users.iter().map(rooms::user_room).collect();
        // The adapter reaches every node; a socket in several of the rooms gets it once.
        if let Err(e) = self.io.to(rooms).emit(event, payload).await {
            tracing::warn!(error = %e, event, "sending to users failed");
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

/// This node's sockets on the main namespace: (on long-polling, on websocket). For the
/// figures read when scraped (metrics, the Admin UI's statistics), never on an event's path.
fn sockets_by_transport<A: Adapter>(io: &SocketIo<A>) -> (usize, usize) {
    io.sockets()
        .iter()
        .fold((0, 0), |(polling, websocket), socket| {
            match socket.transport_type() {
                TransportType::Polling => (polling + 1, websocket),
                TransportType::Websocket => (polling, websocket + 1),
            }
        })
}

/// What `GET /metrics` reads from the Socket.IO server when scraped: one pass over this node's
/// sockets and rooms, nothing on the path of an event.
#[async_trait]
impl<A: Adapter> Sampler for Broadcaster<A> {
    async fn sample(&self) -> Live {
        let mut live = Live {
            redis_up: self.redis.as_ref().map(|link| link.is_up()),
            ..Live::default()
        };
        let (polling, websocket) = sockets_by_transport(&self.io);
        live.sockets_polling = polling as i64;
        live.sockets_websocket = websocket as i64;
        live.rooms = match self.io.local().rooms().await {
            Ok(rooms) => rooms.iter().filter(|r| rooms::is_thread_room(r)).count() as i64,
            Err(_) => 0,
        };
        live
    }
}
