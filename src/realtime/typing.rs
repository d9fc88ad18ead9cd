//! Typing indicators: volatile (never stored, never replayed), and a `true` that is not renewed
//! expires by itself.
//!
//! One entry per (thread, user) holds its deadline; a renewal moves it. One task per node
//! sweeps expired entries: a flood of `typing: true` costs a map update each, never a task or a
//! timer each.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use dashmap::DashMap;
use tokio::time::Instant;

use crate::domain::{ThreadId, UserId};

/// A `typing: true` not renewed within this time turns into `typing: false` for the others.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired entries are looked for: an expiry is late by at most this.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// What to do when a `true` expires (tell the room `false`).
pub type OnExpiry = Box<dyn FnOnce() + Send + Sync>;

struct Entry {
    until: Instant,
    on_expiry: OnExpiry,
}

/// Who is typing where, on this node.
#[derive(Default)]
pub struct Typing {
    entries: DashMap<(ThreadId, UserId), Entry>,
}

impl Typing {
    /// Records a `typing: true` until [`TYPING_TIMEOUT`] from now, replacing an earlier one.
    pub fn start(&self, thread: &ThreadId, user: &UserId, on_expiry: OnExpiry) {
        let entry = Entry {
            until: Instant::now() + TYPING_TIMEOUT,
            on_expiry,
        };
        self.entries.insert((thread.clone(), user.clone()), entry);
    }

    /// Clears the state; `true` if the user was typing (the others must hear `false`).
    pub fn stop(&self, thread: &ThreadId, user: &UserId) -> bool {
        self.entries
            .remove(&(thread.clone(), user.clone()))
            .is_some()
    }

    /// Takes out the entries whose deadline has passed at `now`.
    fn expired(&self, now: Instant) -> Vec<OnExpiry> {
        let due: Vec<(ThreadId, UserId)> = self
            .entries
            .iter()
            .filter(|entry| entry.until <= now)
            .map(|entry| entry.key().clone())
            .collect();
        due.into_iter()
            .filter_map(|key| self.entries.remove_if(&key, |_, entry| entry.until <= now))
            .map(|(_, entry)| entry.on_expiry)
            .collect()
    }

    /// Sweeps expired entries for as long as the server runs.
    pub fn expire_periodically(self: &Arc<Self>) {
        let typing: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                let Some(typing) = typing.upgrade() else {
                    return;
                };
                for on_expiry in typing.expired(Instant::now()) {
                    on_expiry();
                }
            }
        });
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_renewal_moves_the_one_deadline() {
        let typing = Typing::default();
        let (t, u) = (ThreadId::generate(), UserId::anonymous());
        let fired = Arc::new(AtomicUsize::new(0));
        let count = |fired: &Arc<AtomicUsize>| -> OnExpiry {
            let fired = Arc::clone(fired);
            Box::new(move || {
                fired.fetch_add(1, Ordering::Relaxed);
            })
        };
        let start = Instant::now();
        for _ in 0..1_000 {
            typing.start(&t, &u, count(&fired));
        }
        assert_eq!(typing.len(), 1, "a flood is one entry");
        assert!(typing.expired(start).is_empty());
        for on_expiry in typing.expired(start + TYPING_TIMEOUT + SWEEP_EVERY) {
            on_expiry();
        }
        assert_eq!(fired.load(Ordering::Relaxed), 1, "and one expiry");
        assert!(typing.is_empty());
        typing.start(&t, &u, count(&fired));
        assert!(typing.stop(&t, &u));
        assert!(!typing.stop(&t, &u));
    }
}
