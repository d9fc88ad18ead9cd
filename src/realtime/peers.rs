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

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::{
    domain::{MessageId, ThreadId},
    fanout::{self, Fanout, Payload},
};

const CHANNEL: &str = "threadline:thread-events";

/// This node's end of the channel.
pub struct Peers {
    node: String,
    /// Events waiting to be published, in order (see [`send_in_order`]).
    outbox: mpsc::Sender<Vec<u8>>,
    /// Set when the outbox was full and an event was dropped.
    overflowed: Arc<AtomicBool>,
}

/// Events a node holds for the others while Redis does not take them.
const OUTBOX: usize = 1_000;

/// Tells the other nodes to catch up every thread from the store: this node dropped events.
#[derive(Serialize, Deserialize)]
struct Resync {
    node: String,
    resync: bool,
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
        let node = uuid::Uuid::now_v7().to_string();
        let (outbox, pending) = mpsc::channel(OUTBOX);
        let overflowed = Arc::new(AtomicBool::new(false));
        tokio::spawn(send_in_order(
            super::redis::manager(client, None)?,
            pending,
            node.clone(),
            Arc::clone(&overflowed),
        ));
        Ok(Self {
            node,
            outbox,
            overflowed,
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
        if self.outbox.try_send(bytes).is_err() {
            self.overflowed.store(true, Ordering::Release);
        }
    }
}

/// Publishes the outbox in order. A publish that fails (Redis down, or its connection just
/// broken, which a restart of Redis does to the first command after it) is retried until it
/// goes through, so no event is lost while Redis is reachable at all. While it is not, the
/// outbox fills; past it events are dropped, and once publishing works again the other nodes
/// are told to catch up every thread from the store.
async fn send_in_order(
    mut conn: redis::aio::ConnectionManager,
    mut pending: mpsc::Receiver<Vec<u8>>,
    node: String,
    overflowed: Arc<AtomicBool>,
) {
    while let Some(bytes) = pending.recv().await {
        publish_until_sent(&mut conn, &bytes).await;
        if overflowed.swap(false, Ordering::AcqRel) {
            let resync = Resync {
                node: node.clone(),
                resync: true,
            };
            if let Ok(bytes) = serde_json::to_vec(&resync) {
                tracing::info!("events were dropped while Redis was away: other nodes catch up");
                publish_until_sent(&mut conn, &bytes).await;
            }
        }
    }
}

async fn publish_until_sent(conn: &mut redis::aio::ConnectionManager, bytes: &[u8]) {
    let mut pause = Duration::from_millis(50);
    loop {
        let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(bytes)
            .query_async(conn)
            .await;
        match sent {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "publishing a thread event failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
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
            match serde_json::from_slice::<Resync>(bytes) {
                Ok(resync) if resync.node != node => fanout.catch_up_all().await,
                Ok(_) => {}
                Err(_) => tracing::warn!(error = %e, "an unreadable thread event from a peer"),
            }
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
