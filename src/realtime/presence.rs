//! Presence: who has a socket in a thread's room, on any node.
//!
//! Nothing is stored: every identified socket is in its user's room (`user:<id>`), so the
//! online members of a thread are the user rooms of the sockets in `thread:<id>`, which the
//! adapter lists across nodes. A node that dies takes its sockets out of the answer with it.

use serde::Serialize;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::{events::PRESENCE, rooms};
use crate::domain::{ThreadId, UserId};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Presence<'a> {
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

/// After `socket` (speaking for `user`) entered or left `thread`'s room: when that changed
/// whether `user` is online in the thread (no other socket of theirs is there), sends the new
/// set to the room.
pub async fn announce<A: Adapter>(
    socket: &SocketRef<A>,
    thread: &ThreadId,
    user: &UserId,
    entered: bool,
) {
    let room = rooms::thread_room(thread);
    // The rooms of every other socket in the thread, on every node.
    let others = match socket.to(room.clone()).rooms().await {
        Ok(rooms) => users_in(rooms),
        Err(e) => {
            tracing::warn!(error = %e, "presence: listing rooms failed");
            return;
        }
    };
    if others.binary_search(user).is_ok() {
        return;
    }
    let mut online = others;
    if entered {
        let at = online.binary_search(user).unwrap_or_else(|at| at);
        online.insert(at, user.clone());
    }
    let payload = Presence {
        thread_id: thread,
        online: &online,
    };
    if let Err(e) = socket.within(room).emit(PRESENCE, &payload).await {
        tracing::warn!(error = %e, "presence broadcast failed");
    }
}
