//! Room naming: the stub's `thread:<threadId>`, and one room per identified user (all of that
//! user's sockets, on every node), which presence reads and typing excludes.

const THREAD_PREFIX: &str = "thread:";
const USER_PREFIX: &str = "user:";

pub fn thread_room(thread: &impl std::fmt::Display) -> String {
    format!("{THREAD_PREFIX}{thread}")
}

pub fn user_room(user: &impl std::fmt::Display) -> String {
    format!("{USER_PREFIX}{user}")
}

/// The user a room name belongs to, for `user:` rooms.
pub fn user_of(room: &str) -> Option<&str> {
    room.strip_prefix(USER_PREFIX)
}

/// Whether a room is a thread's.
pub fn is_thread_room(room: &str) -> bool {
    room.starts_with(THREAD_PREFIX)
}
