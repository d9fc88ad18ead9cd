//! Storage behind one async trait, so handlers never know which backend holds the data.
//!
//! Backends: [`memory::MemoryStore`] (DashMap, the embedded default) and [`sql::SqlStore`]
//! (SQLite or PostgreSQL, chosen by `--database-url`).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::{
    Account, AccountName, FileId, FileRecord, FileStatus, Message, MessageId, Thread, ThreadId,
    Timestamp, UserId,
};

pub mod memory;
pub mod sql;

pub use memory::MemoryStore;
pub use sql::SqlStore;

/// Where a window of an ordered list starts.
///
/// Lists are ordered oldest to newest: messages by the order they were stored, conversations by
/// their latest activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor<Id> {
    /// The first `limit` items.
    Oldest,
    /// The last `limit` items.
    Newest,
    /// The `limit` items just before this one.
    Before(Id),
    /// The `limit` items just after this one.
    After(Id),
}

/// A run of consecutive items, always oldest to newest, and whether the list goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<T> {
    pub items: Vec<T>,
    /// Items exist before the first one returned (or before the anchor, when none was returned).
    pub more_before: bool,
    /// Items exist after the last one returned (or after the anchor, when none was returned).
    pub more_after: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("thread not found")]
    ThreadNotFound,
    #[error("account not found")]
    AccountNotFound,
    #[error("file not found")]
    FileNotFound,
    #[error("message not found")]
    MessageNotFound,
    /// A window was anchored on an item that is not in the list.
    #[error("anchor is not in this list")]
    UnknownAnchor,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The backend a `--database-url` names: none → memory, `sqlite:` → SQLite, `postgres:` →
/// PostgreSQL. Chosen once, at start-up.
pub async fn open(database_url: Option<&str>) -> StoreResult<std::sync::Arc<dyn Store>> {
    match database_url {
        None | Some("") => Ok(std::sync::Arc::new(MemoryStore::new())),
        Some(url) if url.starts_with("sqlite:") || url.starts_with("postgres") => {
            Ok(std::sync::Arc::new(SqlStore::connect(url).await?))
        }
        Some(other) => Err(StoreError::Backend(format!(
            "unsupported database URL {other:?}: use sqlite:// or postgres://"
        ))),
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `thread`, or returns the stored thread with the same member set.
    /// The flag is `true` when `thread` was created.
    async fn create_or_resolve_thread(&self, thread: Thread) -> StoreResult<(Thread, bool)>;

    async fn thread(&self, id: &ThreadId) -> StoreResult<Thread>;

    /// Appends a message to its thread. Appends to one thread are stored in call order.
    ///
    /// When the message carries a `client_id` that its author already used in this thread,
    /// nothing is stored and the original message comes back with `false`.
    async fn append_message(&self, message: Message) -> StoreResult<(Message, bool)>;

    /// A window of a thread's messages.
    async fn messages(
        &self,
        thread: &ThreadId,
        anchor: Anchor<MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>>;

    async fn last_message(&self, thread: &ThreadId) -> StoreResult<Option<Message>>;

    async fn message(&self, thread: &ThreadId, id: &MessageId) -> StoreResult<Message>;

    /// Stores an edited or deleted message (same id, same position). The caller has checked
    /// who may change it; `changed_at()` of the new state must be set.
    async fn replace_message(&self, message: Message) -> StoreResult<()>;

    /// The messages at or before `until` whose last edit or deletion happened at or after
    /// `since`, in thread order: what a client that saw `until` at `since` missed.
    async fn changed_messages(
        &self,
        thread: &ThreadId,
        until: &MessageId,
        since: Timestamp,
    ) -> StoreResult<Vec<Message>>;

    /// Moves `user`'s read position in `thread` forward to `message` (never back). Returns the
    /// position afterwards and whether it moved.
    async fn mark_read(
        &self,
        thread: &ThreadId,
        user: &UserId,
        message: &MessageId,
    ) -> StoreResult<(MessageId, bool)>;

    /// Messages after `user`'s read position that others wrote and nobody deleted.
    async fn unread_count(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64>;

    /// A window of the threads `member` belongs to, ordered by latest activity.
    async fn threads_of(
        &self,
        member: &UserId,
        anchor: Anchor<ThreadId>,
        limit: usize,
    ) -> StoreResult<Window<Thread>>;

    /// Creates an account with the next free id.
    async fn create_account(&self, name: AccountName) -> StoreResult<Account>;

    /// Stores an account under a chosen id (demo data, imports). Conflict if the id is taken.
    async fn insert_account(&self, account: Account) -> StoreResult<Account>;

    async fn account(&self, id: &UserId) -> StoreResult<Account>;

    /// Every account, in creation order.
    async fn accounts(&self) -> StoreResult<Vec<Account>>;

    /// Display names of those `ids` that are accounts.
    async fn account_names(&self, ids: &[UserId]) -> StoreResult<HashMap<UserId, AccountName>>;

    async fn insert_file(&self, file: FileRecord) -> StoreResult<()>;

    /// Records the outcome of storing a file's bytes.
    async fn finish_file(
        &self,
        id: &FileId,
        status: FileStatus,
        sha256: Option<String>,
    ) -> StoreResult<FileRecord>;

    async fn file(&self, id: &FileId) -> StoreResult<FileRecord>;

    /// The files with these ids, in the same order; `FileNotFound` if any is unknown.
    async fn files(&self, ids: &[FileId]) -> StoreResult<Vec<FileRecord>>;

    /// The threads whose messages reference this file.
    async fn file_threads(&self, id: &FileId) -> StoreResult<Vec<ThreadId>>;

    /// Closes connections to the backend, after the server has stopped.
    async fn close(&self) {}
}
