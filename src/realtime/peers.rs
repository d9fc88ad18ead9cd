//! Several nodes: how message events reach the sockets of the other nodes.
//!
//! Each node delivers `message:new`, `message:updated` and `message:deleted` to its own sockets,
//! and publishes them on one Redis channel. Every other node takes them from there and delivers
//! them to its sockets under its own thread sequencer (see [`Chat::peer_turn`]), the same lock a
//! rejoin holds while it reads its replay and enters the room. So a message that a rejoining
//! socket got in its replay, and whose live copy was still on its way from another node, is not
//! delivered twice; and one stored after the replay was read is delivered live.
//!
//! Other events (typing, presence, receipts) need no ordering and go through socketioxide's
//! Redis adapter, which also lists rooms across nodes.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use socketioxide::{SocketIo, adapter::Adapter};

use super::{ThreadEvent, rooms};
use crate::{
    chat::Chat,
    domain::{MessageId, ThreadId},
};

const CHANNEL: &str = "threadline:thread-events";

/// This node's end of the channel.
pub struct Peers {
    node: String,
    publisher: redis::aio::MultiplexedConnection,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    node: &'a str,
    thread: &'a ThreadId,
    event: &'static str,
    /// The id of a `message:new`'s message (peers skip it for sockets that had it replayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<&'a str>,
    data: super::EventPayload<'a>,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    node: String,
    thread: ThreadId,
    event: String,
    new: Option<MessageId>,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Peers {
    /// Connects the publishing side.
    pub async fn connect(client: &redis::Client) -> redis::RedisResult<Self> {
        Ok(Self {
            node: uuid::Uuid::now_v7().to_string(),
            publisher: client.get_multiplexed_async_connection().await?,
        })
    }

    pub async fn publish(&self, thread: &ThreadId, event: ThreadEvent<'_>) {
        let new = match event {
            ThreadEvent::New(message) => Some(message.id.as_str()),
            _ => None,
        };
        let outgoing = Outgoing {
            node: &self.node,
            thread,
            event: event.name(),
            new,
            data: event.payload(),
        };
        let Ok(bytes) = serde_json::to_vec(&outgoing) else {
            return;
        };
        let mut conn = self.publisher.clone();
        let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(bytes)
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::error!(error = %e, "publishing a thread event to the other nodes failed");
        }
    }

    /// Delivers the other nodes' events to this node's sockets, for as long as the server
    /// runs; reconnects (with a pause) when the subscription drops.
    pub fn listen<A: Adapter>(&self, client: redis::Client, chat: Arc<Chat>, io: SocketIo<A>) {
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                match subscribe(&client).await {
                    Ok(mut pubsub) => {
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            deliver(&node, msg.get_payload_bytes(), &chat, &io).await;
                        }
                        tracing::warn!("thread-events subscription ended; resubscribing");
                    }
                    Err(e) => tracing::error!(error = %e, "subscribing to thread events failed"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

async fn deliver<A: Adapter>(node: &str, bytes: &[u8], chat: &Chat, io: &SocketIo<A>) {
    let incoming: Incoming<'_> = match serde_json::from_slice(bytes) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable thread event from a peer");
            return;
        }
    };
    if incoming.node == node {
        return;
    }
    let (_turn, skip) = chat
        .peer_turn(&incoming.thread, incoming.new.as_ref())
        .await;
    let room = io.local().to(rooms::thread_room(&incoming.thread));
    if skip.is_empty() {
        if let Err(e) = room.emit(incoming.event, incoming.data).await {
            tracing::warn!(error = %e, "delivering a peer's thread event failed");
        }
        return;
    }
    // Rare (a rejoin raced this message): send socket by socket, past those that had it.
    for socket in room.sockets() {
        if !skip.contains(&socket.id.to_string()) {
            let _ = socket.emit(incoming.event.as_str(), incoming.data);
        }
    }
}
