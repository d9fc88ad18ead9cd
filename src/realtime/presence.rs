//! Presence: who has a socket in a thread's room, on any node.
//!
//! Nothing is stored: every identified socket is in its user's room (`user:<id>`), so the
//! online members of a thread are the user rooms of the sockets in `thread:<id>`, which the
//! adapter lists across nodes. A node that dies takes its sockets out of the answer with it.

use std::{sync::Arc, time::Duration};

use dashmap::{DashMap, Entry};
use serde::Serialize;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::{Identities, events::PRESENCE, rooms};
use crate::domain::{ThreadId, UserId};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PresenceEvent<'a> {
    thread_id: &'a ThreadId,
    online: &'a [UserId],
}

/// The users whose rooms are among `rooms`, sorted and without repeats.
pub fn users_in(all: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<UserId> {
    let mut users: Vec<UserId> = all
        .into_iter()
        .filter_map(|room| rooms::user_of(room.as_ref()).and_then(|u| UserId::parse(u).ok()))
        .collect();
    users.sort();
    users.dedup();
    users
}

/// At most one presence event per thread per this window from one node.
pub const COALESCE: Duration = Duration::from_millis(100);

/// Presence events, coalesced per thread: the first change tells the room at once; changes
/// during the next [`COALESCE`] are gathered into one more event at its end. Each event lists
/// who is online (one query across nodes) and goes out only if that differs from what this
/// node last found. Join/leave toggles thus cost at most one event per thread per window,
/// however fast they come.
pub struct Presence {
    /// Who each socket speaks for; a socket counts only while it has an entry here.
    identities: Arc<Identities>,
    /// Threads inside a window; `true` when something changed during it.
    pending: DashMap<ThreadId, bool>,
    /// What this node last found online in each thread where it has sockets.
    told: DashMap<ThreadId, Vec<UserId>>,
}

impl Presence {
    pub fn new(identities: Arc<Identities>) -> Self {
        Self {
            identities,
            pending: DashMap::new(),
            told: DashMap::new(),
        }
    }

    /// `socket` entered or left `thread`'s room (or went away): presence may have changed.
    pub fn changed<A: Adapter>(self: &Arc<Self>, socket: &SocketRef<A>, thread: &ThreadId) {
        match self.pending.entry(thread.clone()) {
            Entry::Occupied(mut during) => {
                *during.get_mut() = true;
                return;
            }
            Entry::Vacant(slot) => {
                slot.insert(false);
            }
        }
        let presence = Arc::clone(self);
        let socket = socket.clone();
        let thread = thread.clone();
        tokio::spawn(async move {
            loop {
                presence.flush(&socket, &thread).await;
                tokio::time::sleep(COALESCE).await;
                let again = match presence.pending.entry(thread.clone()) {
                    Entry::Occupied(mut during) if *during.get() => {
                        *during.get_mut() = false;
                        true
                    }
                    Entry::Occupied(quiet) => {
                        quiet.remove();
                        false
                    }
                    Entry::Vacant(_) => false,
                };
                if !again {
                    return;
                }
            }
        });
    }

    async fn flush<A: Adapter>(&self, socket: &SocketRef<A>, thread: &ThreadId) {
        let room = rooms::thread_room(thread);
        // Every other socket in the thread, on every node; then `socket` itself, asked
        // locally: a socket going away may still be listed in its rooms for a moment, so it
        // counts only while it is identified (its entry goes before its presence changes).
        // Not `socket.connected()`: socketioxide sends the CONNECT acknowledgement before it
        // sets that flag, so a client's first `thread:join` can arrive while it is still false.
        let mut rooms = match socket.to(room.clone()).rooms().await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!(error = %e, "presence: listing rooms failed");
                return;
            }
        };
        let own = socket.rooms();
        if self.identities.get(socket.id).is_some() && own.iter().any(|r| *r == room) {
            rooms.extend(own);
        }
        let online = users_in(rooms);
        let unchanged = match self.told.get(thread) {
            Some(told) => *told == online,
            None => online.is_empty(),
        };
        if unchanged {
            return;
        }
        // Remembered only while this node has sockets in the room: the map stays as small as
        // the rooms this node serves, however long it runs.
        let local = !socket.within(room.clone()).local().sockets().is_empty();
        if online.is_empty() || !local {
            self.told.remove(thread);
        } else {
            self.told.insert(thread.clone(), online.clone());
        }
        let payload = PresenceEvent {
            thread_id: thread,
            online: &online,
        };
        if let Err(e) = socket.within(room).emit(PRESENCE, &payload).await {
            tracing::warn!(error = %e, "presence broadcast failed");
        }
    }
}
