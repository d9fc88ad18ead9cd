//! The Redis connections of a node among several, built to heal by themselves.
//!
//! socketioxide's own Redis driver holds one connection made at start-up: when Redis restarts,
//! every publish fails with a broken pipe for good, and a node cannot start while Redis is down.
//! [`HealingDriver`] implements the adapter's driver on redis-rs's `ConnectionManager`
//! instead, which reconnects on the next command after a failure, and adds what the adapter
//! needs to keep working across an outage:
//! - channels are remembered and subscribed again whenever the connection comes back;
//! - while Redis is down, a broadcast still reaches this node's sockets (a failed publish is
//!   not an error, else the adapter would skip the local delivery too), and a question to
//!   the other nodes (who is in a room) is answered by this node alone;
//! - a keeper pings Redis every second and records the link's state ([`RedisLink`]) for
//!   `/readyz` and the logs.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{
    PushInfo, PushKind, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use crate::readiness::RedisLink;

/// How often the keeper checks the connection.
const KEEPER_EVERY: Duration = Duration::from_secs(1);
/// A command that gets no answer within this fails (the link counts as down).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis client speaking RESP3 (socketioxide's Redis adapter needs it: Redis 7 or later).
pub fn client(url: &str) -> redis::RedisResult<redis::Client> {
    let url = if url.contains("protocol=") {
        url.to_owned()
    } else {
        format!(
            "{url}{}protocol=resp3",
            if url.contains('?') { '&' } else { '?' }
        )
    };
    redis::Client::open(url)
}

/// A connection that is made on first use and remade after every failure, with bounded
/// retries so a command during an outage fails within about a second.
pub fn manager(
    client: &redis::Client,
    pushes: Option<mpsc::UnboundedSender<PushInfo>>,
) -> redis::RedisResult<ConnectionManager> {
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_millis(500));
    if let Some(pushes) = pushes {
        config = config.set_push_sender(pushes);
    }
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// socketioxide's Redis adapter driver, over a self-healing connection (see the module doc).
#[derive(Clone)]
pub struct HealingDriver {
    conn: ConnectionManager,
    handlers: Handlers,
}

impl HealingDriver {
    /// Never fails for want of Redis: the connection is made when Redis answers.
    pub fn new(client: &redis::Client, link: Arc<RedisLink>) -> redis::RedisResult<Self> {
        let (pushes, incoming) = mpsc::unbounded_channel();
        let driver = Self {
            conn: manager(client, Some(pushes))?,
            handlers: Arc::default(),
        };
        tokio::spawn(route_pushes(
            incoming,
            Arc::clone(&driver.handlers),
            Arc::clone(&link),
        ));
        tokio::spawn(keep(driver.clone(), link));
        Ok(driver)
    }

    /// Subscribes every remembered channel (SUBSCRIBE of a channel held already is harmless).
    async fn resubscribe(&self) -> redis::RedisResult<()> {
        let channels: Vec<String> = self
            .handlers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if channels.is_empty() {
            return Ok(());
        }
        self.conn.clone().subscribe(channels).await
    }
}

/// Hands each message pushed by Redis to the adapter's stream for its channel; notes a lost
/// connection at once (subscriptions die with it).
async fn route_pushes(
    mut incoming: mpsc::UnboundedReceiver<PushInfo>,
    handlers: Handlers,
    link: Arc<RedisLink>,
) {
    while let Some(push) = incoming.recv().await {
        match push.kind {
            PushKind::Disconnection => {
                link.set(false);
            }
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    continue;
                };
                let Ok(channel) = String::from_utf8(channel) else {
                    continue;
                };
                let sender = handlers
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&channel)
                    .cloned();
                if let Some(sender) = sender
                    && sender.try_send((channel, payload)).is_err()
                {
                    tracing::warn!("a Redis adapter channel is full: a message was dropped");
                }
            }
            _ => {}
        }
    }
}

/// Pings Redis every second; when it answers after an outage (or for the first time),
/// subscribes the channels again.
async fn keep(driver: HealingDriver, link: Arc<RedisLink>) {
    let mut every = tokio::time::interval(KEEPER_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let answered: redis::RedisResult<()> = redis::cmd("PING")
            .query_async(&mut driver.conn.clone())
            .await;
        if answered.is_err() {
            link.set(false);
            continue;
        }
        if link.is_up() {
            continue;
        }
        match driver.resubscribe().await {
            Ok(()) => {
                link.set(true);
            }
            Err(e) => tracing::debug!(error = %e, "resubscribing after a Redis outage failed"),
        }
    }
}

impl Driver for HealingDriver {
    type Error = redis::RedisError;

    /// A publish that fails is logged and dropped: the adapter then still delivers to this
    /// node's sockets, which is all a node cut off from the others can do.
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        let sent: redis::RedisResult<Value> = redis::cmd("PUBLISH")
            .arg(chan)
            .arg(val)
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "publishing to the other nodes failed");
        }
        Ok(())
    }

    /// Remembers the channel, so it is subscribed whenever Redis is reachable; never fails.
    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(chan.clone(), tx);
        if let Err(e) = self.conn.clone().subscribe(&chan).await {
            tracing::debug!(error = %e, chan, "subscribing now failed; will when Redis is back");
        }
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&chan);
        let _ = self.conn.clone().unsubscribe(&chan).await;
        Ok(())
    }

    /// How many nodes listen on `chan`. Unreachable Redis: this node alone, so requests to
    /// the others (who is in a room) are answered from here instead of failing.
    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let counted: redis::RedisResult<(String, u16)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await;
        Ok(counted.map_or(1, |(_, count)| count.max(1)))
    }
}
