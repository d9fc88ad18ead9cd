//! Typing indicators: volatile (never stored, never replayed), and a `true` that is not renewed
//! expires by itself.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use dashmap::DashMap;

use crate::domain::{ThreadId, UserId};

/// A `typing: true` not renewed within this time turns into `typing: false` for the others.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is typing where, on this node. Each `true` gets a generation; the expiry of an older
/// generation finds a newer one in place and does nothing.
#[derive(Default)]
pub struct Typing {
    generations: DashMap<(ThreadId, UserId), u64>,
    next: AtomicU64,
}

impl Typing {
    /// Records a `typing: true`; returns its generation, for [`Typing::expire`].
    pub fn start(&self, thread: &ThreadId, user: &UserId) -> u64 {
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        self.generations
            .insert((thread.clone(), user.clone()), generation);
        generation
    }

    /// Clears the state if `generation` is still the latest; `true` if it was (the others must
    /// hear `typing: false`).
    pub fn expire(&self, thread: &ThreadId, user: &UserId, generation: u64) -> bool {
        self.generations
            .remove_if(&(thread.clone(), user.clone()), |_, g| *g == generation)
            .is_some()
    }

    /// Clears the state; `true` if the user was typing.
    pub fn stop(&self, thread: &ThreadId, user: &UserId) -> bool {
        self.generations
            .remove(&(thread.clone(), user.clone()))
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_outlives_the_expiry_of_the_first_true() {
        let typing = Typing::default();
        let (t, u) = (ThreadId::generate(), UserId::anonymous());
        let first = typing.start(&t, &u);
        let renewed = typing.start(&t, &u);
        assert!(!typing.expire(&t, &u, first));
        assert!(typing.expire(&t, &u, renewed));
        assert!(!typing.stop(&t, &u));
    }
}
