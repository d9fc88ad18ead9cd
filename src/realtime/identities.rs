//! Who each identified socket speaks for, and the threads it joined.

use dashmap::DashMap;
use socketioxide::socket::Sid;

use crate::domain::{ThreadId, UserId};

/// Only sockets that named a user have an entry, so anonymous connections (the stub's only
/// kind) cost nothing here. Registered as socketioxide state: nothing outside the socket
/// layer needs it.
#[derive(Default)]
pub struct Identities(DashMap<Sid, Identified>);

/// An identified socket's user, and the threads it joined (for presence when it goes away:
/// socketioxide may already have taken a closing socket out of its rooms by then).
pub struct Identified {
    pub user: UserId,
    pub threads: Vec<ThreadId>,
}

impl Identities {
    pub fn insert(&self, sid: Sid, user: UserId) {
        self.0.insert(
            sid,
            Identified {
                user,
                threads: Vec::new(),
            },
        );
    }

    pub fn get(&self, sid: Sid) -> Option<UserId> {
        self.0.get(&sid).map(|i| i.user.clone())
    }

    pub fn joined(&self, sid: Sid, thread: &ThreadId) {
        if let Some(mut identified) = self.0.get_mut(&sid)
            && !identified.threads.contains(thread)
        {
            identified.threads.push(thread.clone());
        }
    }

    pub fn left(&self, sid: Sid, thread: &ThreadId) {
        if let Some(mut identified) = self.0.get_mut(&sid) {
            identified.threads.retain(|t| t != thread);
        }
    }

    /// Forgets a socket that went away; what it was, if it was identified.
    pub fn remove(&self, sid: Sid) -> Option<Identified> {
        self.0.remove(&sid).map(|(_, identified)| identified)
    }
}
