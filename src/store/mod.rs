//! Storage behind one async trait, so handlers never know which backend holds the data.
//!
//! Backends: [`memory::MemoryStore`] (DashMap, the embedded default) and [`sql::SqlStore`]
//! (SQLite or PostgreSQL, chosen by `--database-url`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::domain::{
    Account, AccountName, Emoji, FileId, FileRecord, FileStatus, Message, MessageId, Thread,
    ThreadId, Timestamp, UserId, search,
};

pub mod memory;
pub mod sql;
mod timed;

pub use memory::MemoryStore;
pub use sql::SqlStore;
pub use timed::timed;

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

#[derive(Debug, Clone, thiserror::Error)]
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

/// What a conversation list shows of a thread besides the thread itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub last_message: Option<Message>,
    /// Messages after the reader's read position that others wrote and nobody deleted.
    pub unread_count: u64,
    /// Those of them that mention the reader.
    pub unread_mentions: u64,
}

/// Where a search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every thread (no verified identity: nobody to refuse).
    All,
    /// The threads this user is a member of.
    MemberOf(&'a UserId),
    /// One thread.
    Thread(&'a ThreadId),
}

/// A message search: the messages of `scope` whose text has every word of `query` (the last
/// as a prefix), not deleted, newest first, from just before position `before`.
#[derive(Debug, Clone)]
pub struct Search<'a> {
    pub query: &'a search::Query,
    pub scope: Scope<'a>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// An event for a webhook endpoint, recorded in the same write as the change it describes
/// (the outbox): a crash between the change and the delivery loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's id (`webhook-id`): the same on every retry, and for every endpoint.
    pub id: String,
    /// The endpoint's URL.
    pub endpoint: String,
    /// The thread it is about: an endpoint gets a thread's events in the order recorded.
    pub thread: Option<ThreadId>,
    /// Its type, `message.created`, ….
    pub kind: String,
    /// The signed body, `{id, type, timestamp, data}`.
    pub body: String,
    pub at: Timestamp,
}

/// An event taken from the outbox for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its row in the outbox.
    pub row: u64,
    pub event: OutboxEvent,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// What became of a claimed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The endpoint accepted it: it leaves the outbox.
    Delivered(u64),
    /// An attempt failed: it is due again at `at`.
    Retry {
        row: u64,
        attempts: u32,
        at: Timestamp,
    },
    /// Its retries ran out: marked failed, never tried again.
    Failed { row: u64, at: Timestamp },
}

/// The outbox events of a message as it was stored (its `seq` and time are the store's).
pub type Announce = Arc<dyn Fn(&Message) -> Vec<OutboxEvent> + Send + Sync>;

/// A message a search found, and its store-wide position (the next page starts before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub position: u64,
    pub message: Message,
}

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
    /// The engine's name, as metrics label it: `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether the backend answers now (a round trip to the database), for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates `thread`, or returns the stored thread with the same member set.
    /// The flag is `true` when `thread` was created.
    async fn create_or_resolve_thread(&self, thread: Thread) -> StoreResult<(Thread, bool)> {
        self.create_thread_announced(thread, Vec::new()).await
    }

    /// [`Store::create_or_resolve_thread`], recording `events` with a creation.
    async fn create_thread_announced(
        &self,
        thread: Thread,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<(Thread, bool)>;

    async fn thread(&self, id: &ThreadId) -> StoreResult<Thread>;

    /// A thread's members, sorted: what the access check on every post and read needs. A
    /// thread's members never change, so backends answer this from memory once known.
    async fn members(&self, id: &ThreadId) -> StoreResult<std::sync::Arc<[UserId]>>;

    /// Appends a message to its thread. Appends to one thread are stored in call order. A reply
    /// (`reply_to`, checked by the caller to name a message of the thread) adds one to its
    /// parent's `reply_count` and sets the parent's `changed_at`, in the same write; its
    /// `mentions` are recorded for their unread counts.
    ///
    /// When the message carries a `client_id` that its author already used in this thread,
    /// nothing is stored and the original message comes back with `false`.
    async fn append_message(&self, message: Message) -> StoreResult<(Message, bool)> {
        self.append_announced(message, None).await
    }

    /// [`Store::append_message`], recording what `announce` makes of the stored message in the
    /// same write (nothing for an idempotent retry).
    async fn append_announced(
        &self,
        message: Message,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)>;

    /// A window of a thread's messages.
    async fn messages(
        &self,
        thread: &ThreadId,
        anchor: Anchor<MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>>;

    async fn last_message(&self, thread: &ThreadId) -> StoreResult<Option<Message>>;

    async fn message(&self, thread: &ThreadId, id: &MessageId) -> StoreResult<Message>;

    /// The message at position `seq` (1-based) of the thread, if there is one.
    async fn message_at(&self, thread: &ThreadId, seq: u64) -> StoreResult<Option<Message>>;

    /// Stores an edited or deleted message (same id, same position): its body, files,
    /// `edited_at`, `deleted_at` and `changed_at` (which must be set); a tombstone loses its
    /// reactions. The caller has checked who may change it.
    async fn replace_message(&self, message: Message) -> StoreResult<()> {
        self.replace_announced(message, Vec::new()).await
    }

    /// [`Store::replace_message`], recording `events` in the same write.
    async fn replace_announced(
        &self,
        message: Message,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<()>;

    /// The messages at or before `until` whose last change (`changed_at`) happened at or after
    /// `since`, in thread order: what a client that saw `until` at `since` missed.
    async fn changed_messages(
        &self,
        thread: &ThreadId,
        until: &MessageId,
        since: Timestamp,
    ) -> StoreResult<Vec<Message>>;

    /// Adds (`add`) or removes `user`'s reaction `emoji` on a message, setting its `changed_at`
    /// when that changes anything. Returns the message as it is now and whether it changed.
    /// Refuses a tombstone (`Conflict("message_deleted")`) and a new emoji beyond the limit
    /// (`Conflict("too_many_reactions")`). Atomic, across nodes too. A change records what
    /// `announce` makes of the message in the same write.
    #[allow(clippy::too_many_arguments)]
    async fn react(
        &self,
        thread: &ThreadId,
        id: &MessageId,
        user: &UserId,
        emoji: &Emoji,
        add: bool,
        at: Timestamp,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)>;

    /// A window of the replies to `parent`, in thread order, starting after the reply `after`
    /// (from the first without it).
    async fn replies(
        &self,
        thread: &ThreadId,
        parent: &MessageId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>>;

    /// Up to `search.limit` matching messages, newest first.
    async fn search(&self, search: &Search<'_>) -> StoreResult<Vec<Found>>;

    /// Messages after `user`'s read position that others wrote, nobody deleted, and that
    /// mention `user`.
    async fn unread_mentions(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64>;

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

    /// The summary of each of `threads` (that exists) as `reader` sees it. SQL backends answer
    /// in a fixed number of queries however many threads are asked for.
    async fn summaries(
        &self,
        threads: &[ThreadId],
        reader: &UserId,
    ) -> StoreResult<HashMap<ThreadId, Summary>> {
        let mut out = HashMap::with_capacity(threads.len());
        for thread in threads {
            let summary = Summary {
                last_message: self.last_message(thread).await?,
                unread_count: self.unread_count(thread, reader).await?,
                unread_mentions: self.unread_mentions(thread, reader).await?,
            };
            out.insert(thread.clone(), summary);
        }
        Ok(out)
    }

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
    ) -> StoreResult<FileRecord> {
        self.finish_file_announced(id, status, sha256, Vec::new())
            .await
    }

    /// [`Store::finish_file`], recording `events` in the same write.
    async fn finish_file_announced(
        &self,
        id: &FileId,
        status: FileStatus,
        sha256: Option<String>,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<FileRecord>;

    /// Takes up to `limit` outbox events for `node` to deliver to these endpoints, for `lease`
    /// (past it, another node may take them): due ones whose endpoint has no earlier event of
    /// the same thread undelivered, oldest first. With several nodes, each event is taken by
    /// one of them.
    async fn outbox_claim(
        &self,
        endpoints: &[String],
        node: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;

    /// Records what became of claimed events, in one write.
    async fn outbox_settle(&self, settled: &[Settled]) -> StoreResult<()>;

    /// Events waiting for these endpoints (not failed).
    async fn outbox_pending(&self, endpoints: &[String]) -> StoreResult<u64>;

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
            client_id: key.and_then(ClientMessageId::parse),
            // Whatever the caller passes, the store assigns it.
            seq: 99,
            ..Message::new(
                thread.clone(),
                UserId::parse("ann").unwrap(),
                body.to_owned(),
                Timestamp::now(),
            )
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

    /// Appends that arrive together (one batch on SQL backends) keep every promise of lone
    /// appends: gapless numbers per thread, one message per idempotency key however many
    /// retries race, and a missing thread fails only the messages addressed to it.
    #[tokio::test]
    async fn concurrent_appends_are_numbered_deduplicated_and_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}/batch.db", dir.path().display());
        for store in [
            open(None).await.unwrap(),
            open(Some(&sqlite)).await.unwrap(),
        ] {
            let mut threads = Vec::new();
            for other in ["bob", "cat"] {
                let members =
                    MemberSet::new([UserId::parse("ann").unwrap(), UserId::parse(other).unwrap()]);
                let (thread, _) = store
                    .create_or_resolve_thread(Thread::new(None, &members.unwrap()))
                    .await
                    .unwrap();
                threads.push(thread.id);
            }
            let missing = ThreadId::generate();
            let mut calls = Vec::new();
            for i in 0..60 {
                let thread = match i % 3 {
                    0 => threads[0].clone(),
                    1 => threads[1].clone(),
                    _ => missing.clone(),
                };
                // Every fifth message is sent three times under one key.
                let key = (i % 5 == 0).then(|| format!("key-{i}"));
                for _ in 0..if key.is_some() { 3 } else { 1 } {
                    let store = std::sync::Arc::clone(&store);
                    let m = message(&thread, &format!("m{i}"), key.as_deref());
                    calls.push(tokio::spawn(async move { store.append_message(m).await }));
                }
            }
            let mut created = HashMap::<ThreadId, Vec<u64>>::new();
            let mut by_key = HashMap::<String, Vec<(MessageId, bool)>>::new();
            for call in calls {
                match call.await.unwrap() {
                    Ok((m, fresh)) => {
                        if fresh {
                            created.entry(m.thread_id.clone()).or_default().push(m.seq);
                        }
                        if let Some(k) = &m.client_id {
                            by_key
                                .entry(k.as_str().to_owned())
                                .or_default()
                                .push((m.id, fresh));
                        }
                    }
                    Err(StoreError::ThreadNotFound) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            for thread in &threads {
                let mut seqs = created.remove(thread).unwrap();
                seqs.sort_unstable();
                assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "gapless, each once");
                let stored = store.messages(thread, Anchor::Oldest, 100).await.unwrap();
                assert_eq!(stored.items.len(), 20);
            }
            assert!(created.is_empty(), "nothing stored in a missing thread");
            for (key, answers) in by_key {
                assert_eq!(
                    answers.iter().filter(|a| a.1).count(),
                    1,
                    "{key} stored once"
                );
                assert!(
                    answers.iter().all(|a| a.0 == answers[0].0),
                    "{key}: one message"
                );
            }
        }
    }

    /// A post moves its thread to the newest end of every member's conversation list at once,
    /// although members' rows are not written per post.
    #[tokio::test]
    async fn a_post_moves_its_thread_to_the_top_of_each_members_list() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}/order.db", dir.path().display());
        for store in [
            open(None).await.unwrap(),
            open(Some(&sqlite)).await.unwrap(),
        ] {
            let ann = UserId::parse("ann").unwrap();
            let mut ids = Vec::new();
            for other in ["bob", "cat", "dan"] {
                let members = MemberSet::new([ann.clone(), UserId::parse(other).unwrap()]);
                let (thread, _) = store
                    .create_or_resolve_thread(Thread::new(None, &members.unwrap()))
                    .await
                    .unwrap();
                ids.push(thread.id);
            }
            for (round, first) in [0usize, 2, 1].into_iter().enumerate() {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                store
                    .append_message(message(&ids[first], &format!("r{round}"), None))
                    .await
                    .unwrap();
                for member in [ann.clone(), ids_member(&store, &ids[first]).await] {
                    let list = store.threads_of(&member, Anchor::Newest, 10).await.unwrap();
                    assert_eq!(list.items.last().unwrap().id, ids[first], "round {round}");
                }
            }
        }
    }

    async fn ids_member(store: &std::sync::Arc<dyn Store>, thread: &ThreadId) -> UserId {
        let thread = store.thread(thread).await.unwrap();
        thread
            .member_ids
            .into_iter()
            .find(|m| m.as_str() != "ann")
            .unwrap()
    }
}
