//! Room naming: the stub's `thread:<threadId>`.

pub fn thread_room(thread: &impl std::fmt::Display) -> String {
    format!("thread:{thread}")
}
