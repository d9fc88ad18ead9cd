//! Several nodes: how message events reach the sockets of the other nodes.
//!
//! Each node delivers `message:new`, `message:updated` and `message:deleted` to its own sockets,
//! and publishes them on one Redis channel with the message's position in its thread. Every
//! other node takes them from there and hands them to its fan-out ([`Fanout::relay`]), which
//! delivers them in the thread's order: after any stored messages its sockets lack before that
//! position, and not at all when they had it already. This module never calls into `chat`.
//!
//! Other events (typing, presence, receipts) need no ordering and go through socketioxide's
//! Redis adapter, which also lists rooms across nodes.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    domain::{MessageId, ThreadId},
    fanout::{self, Fanout, Payload},
};

const CHANNEL: &str = "threadline:thread-events";

/// This node's end of the channel.
pub struct Peers {
    node: String,
    /// Remade on the next publish after a failure.
    publisher: redis::aio::ConnectionManager,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    node: &'a str,
    thread: &'a ThreadId,
    event: &'a str,
    /// The position of the message the event is about.
    seq: u64,
    id: &'a MessageId,
    data: &'a Payload<'a>,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    node: String,
    thread: ThreadId,
    event: String,
    seq: u64,
    id: MessageId,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Peers {
    /// The publishing side, connected when first used (Redis may be down at start-up).
    pub fn new(client: &redis::Client) -> redis::RedisResult<Self> {
        Ok(Self {
            node: uuid::Uuid::now_v7().to_string(),
            publisher: super::redis::manager(client, None)?,
        })
    }

    /// Delivers the other nodes' events to this node's sockets, for as long as the server
    /// runs; subscribes again (with a pause) when the subscription drops or cannot be made.
    /// Whatever was published while it was down is lost, so once it is back the threads this
    /// node's sockets follow are caught up from the store.
    pub fn listen(&self, client: redis::Client, fanout: Arc<Fanout>) {
        let node = self.node.clone();
        tokio::spawn(async move {
            // Set after anything but the first attempt: the subscription was down meanwhile.
            let mut cut_off = false;
            loop {
                match subscribe(&client).await {
                    Ok(mut pubsub) => {
                        if cut_off {
                            fanout.catch_up_all().await;
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            deliver(&node, msg.get_payload_bytes(), &fanout).await;
                        }
                        tracing::warn!("thread-events subscription ended; resubscribing");
                    }
                    Err(e) => tracing::debug!(error = %e, "subscribing to thread events failed"),
                }
                cut_off = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

#[async_trait]
impl fanout::Peers for Peers {
    async fn publish(
        &self,
        thread: &ThreadId,
        event: &str,
        seq: u64,
        id: &MessageId,
        payload: &Payload<'_>,
    ) {
        let outgoing = Outgoing {
            node: &self.node,
            thread,
            event,
            seq,
            id,
            data: payload,
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
            // The other nodes catch up from the store when their link returns.
            tracing::debug!(error = %e, "publishing a thread event to the other nodes failed");
        }
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

async fn deliver(node: &str, bytes: &[u8], fanout: &Fanout) {
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
    fanout
        .relay(
            &incoming.thread,
            &incoming.event,
            incoming.seq,
            &incoming.id,
            incoming.data,
        )
        .await;
}
