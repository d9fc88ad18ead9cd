//! What `/readyz` reports besides the store: whether this node is connected to Redis (when it
//! runs as one of several). Written by the Redis connections, read by the probe and the logs.

use std::sync::atomic::{AtomicBool, Ordering};

/// The state of this node's link to the other nodes.
#[derive(Debug, Default)]
pub struct RedisLink {
    up: AtomicBool,
}

impl RedisLink {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records the link's state; returns whether it changed (and logs the change, so an
    /// operator sees every outage and every recovery at level info or above).
    pub fn set(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::AcqRel);
        if was != up {
            if up {
                tracing::info!("Redis connected: events cross nodes again");
            } else {
                tracing::warn!(
                    "Redis unreachable: this node serves its own clients only until it returns"
                );
            }
        }
        was != up
    }
}
