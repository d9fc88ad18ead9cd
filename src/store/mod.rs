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
    /// The database cannot be reached now (down, restarting, no connection free in time); the
    /// same request later may succeed. Nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The disk under the database is full: writes fail until space is freed, reads work.
    #[error("storage full: {0}")]
    Full(String),
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
    /// Whether the backend answers now (a round trip to the database), for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

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
    /// The message at position `seq` (1-based) of the thread, if there is one.
    async fn message_at(&self, thread: &ThreadId, seq: u64) -> StoreResult<Option<Message>>;

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

    /// Creates the account `account.id` (true), or renames it if it exists (false).
    async fn save_account(&self, account: Account) -> StoreResult<bool>;

    async fn account(&self, id: &UserId) -> StoreResult<Account>;

    /// Up to `limit` accounts in creation order, after the account `after` (from the first
    /// without it); `UnknownAnchor` if `after` is no account.
    async fn accounts(&self, after: Option<&UserId>, limit: usize) -> StoreResult<Vec<Account>>;

    /// Display names of those `ids` that are accounts.
    async fn account_names(&self, ids: &[UserId]) -> StoreResult<HashMap<UserId, AccountName>>;

    async fn insert_file(&self, file: FileRecord) -> StoreResult<()>;

    /// Uploads still `processing` that were recorded before `before` (their writer crashed, or
    /// is about to finish: callers leave a margin).
    async fn stale_uploads(&self, before: Timestamp) -> StoreResult<Vec<FileRecord>>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientMessageId, MemberSet};

    fn message(thread: &ThreadId, body: &str, key: Option<&str>) -> Message {
        Message {
            id: MessageId::generate(),
            thread_id: thread.clone(),
            author_id: UserId::parse("ann").unwrap(),
            body: body.to_owned(),
            file_ids: vec![],
            created_at: Timestamp::now(),
            client_id: key.and_then(ClientMessageId::parse),
            edited_at: None,
            deleted_at: None,
            // Whatever the caller passes, the store assigns it.
            seq: 99,
        }
    }

    /// Both backends number a thread's messages 1, 2, 3… in append order, and keep the number
    /// through retries and reads: nodes order their deliveries by it.
    #[tokio::test]
    async fn appends_are_numbered_from_one_in_each_thread() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}/seq.db", dir.path().display());
        for store in [
            open(None).await.unwrap(),
            open(Some(&sqlite)).await.unwrap(),
        ] {
            let members = MemberSet::new(["ann", "bob"].map(|id| UserId::parse(id).unwrap()));
            let (thread, _) = store
                .create_or_resolve_thread(Thread::new(None, &members.unwrap()))
                .await
                .unwrap();
            let mut seqs = Vec::new();
            for (i, key) in [Some("k1"), None, Some("k3")].into_iter().enumerate() {
                let (stored, created) = store
                    .append_message(message(&thread.id, &format!("m{i}"), key))
                    .await
                    .unwrap();
                assert!(created);
                seqs.push(stored.seq);
            }
            assert_eq!(seqs, [1, 2, 3]);
            let (retry, created) = store
                .append_message(message(&thread.id, "again", Some("k1")))
                .await
                .unwrap();
            assert!(!created);
            assert_eq!(retry.seq, 1);
            let read = store
                .messages(&thread.id, Anchor::Oldest, 10)
                .await
                .unwrap();
            let read: Vec<u64> = read.items.iter().map(|m| m.seq).collect();
            assert_eq!(read, [1, 2, 3]);
            let newest = store.last_message(&thread.id).await.unwrap().unwrap();
            assert_eq!(newest.seq, 3);
        }
    }
}
