//! A store that times every operation of the one it wraps
//! (`threadline_store_operation_duration_seconds{operation, backend}`).

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{
    Anchor, Announce, Delivery, Found, OutboxEvent, Search, Settled, Store, StoreResult, Summary,
    Window,
};
use crate::{
    domain::{
        Account, AccountName, Emoji, FileId, FileRecord, FileStatus, Message, MessageId, Thread,
        ThreadId, Timestamp, UserId,
    },
    metrics::Metrics,
};

/// `store`, with each operation timed into `metrics`.
pub fn timed(store: Arc<dyn Store>, metrics: &Arc<Metrics>) -> Arc<dyn Store> {
    Arc::new(Timed {
        inner: store,
        metrics: Arc::clone(metrics),
    })
}

struct Timed {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Timed {
    async fn time<T>(&self, operation: &'static str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        self.metrics
            .store_timer(operation, self.inner.backend())
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl Store for Timed {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.time("ping", self.inner.ping()).await
    }

    async fn create_thread_announced(
        &self,
        thread: Thread,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<(Thread, bool)> {
        let work = self.inner.create_thread_announced(thread, events);
        self.time("create_or_resolve_thread", work).await
    }

    async fn thread(&self, id: &ThreadId) -> StoreResult<Thread> {
        self.time("thread", self.inner.thread(id)).await
    }

    async fn members(&self, id: &ThreadId) -> StoreResult<Arc<[UserId]>> {
        self.time("members", self.inner.members(id)).await
    }

    async fn append_announced(
        &self,
        message: Message,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)> {
        let work = self.inner.append_announced(message, announce);
        self.time("append_message", work).await
    }

    async fn messages(
        &self,
        thread: &ThreadId,
        anchor: Anchor<MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>> {
        self.time("messages", self.inner.messages(thread, anchor, limit))
            .await
    }

    async fn react(
        &self,
        thread: &ThreadId,
        id: &MessageId,
        user: &UserId,
        emoji: &Emoji,
        add: bool,
        at: Timestamp,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)> {
        let work = self.inner.react(thread, id, user, emoji, add, at, announce);
        self.time("react", work).await
    }

    async fn replies(
        &self,
        thread: &ThreadId,
        parent: &MessageId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>> {
        let work = self.inner.replies(thread, parent, after, limit);
        self.time("replies", work).await
    }

    async fn search(&self, search: &Search<'_>) -> StoreResult<Vec<Found>> {
        self.time("search", self.inner.search(search)).await
    }

    async fn unread_mentions(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64> {
        let work = self.inner.unread_mentions(thread, user);
        self.time("unread_mentions", work).await
    }

    async fn last_message(&self, thread: &ThreadId) -> StoreResult<Option<Message>> {
        self.time("last_message", self.inner.last_message(thread))
            .await
    }

    async fn message(&self, thread: &ThreadId, id: &MessageId) -> StoreResult<Message> {
        self.time("message", self.inner.message(thread, id)).await
    }

    async fn message_at(&self, thread: &ThreadId, seq: u64) -> StoreResult<Option<Message>> {
        self.time("message_at", self.inner.message_at(thread, seq))
            .await
    }

    async fn replace_announced(
        &self,
        message: Message,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<()> {
        let work = self.inner.replace_announced(message, events);
        self.time("replace_message", work).await
    }

    async fn changed_messages(
        &self,
        thread: &ThreadId,
        until: &MessageId,
        since: Timestamp,
    ) -> StoreResult<Vec<Message>> {
        let work = self.inner.changed_messages(thread, until, since);
        self.time("changed_messages", work).await
    }

    async fn mark_read(
        &self,
        thread: &ThreadId,
        user: &UserId,
        message: &MessageId,
    ) -> StoreResult<(MessageId, bool)> {
        self.time("mark_read", self.inner.mark_read(thread, user, message))
            .await
    }

    async fn unread_count(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64> {
        self.time("unread_count", self.inner.unread_count(thread, user))
            .await
    }

    async fn summaries(
        &self,
        threads: &[ThreadId],
        reader: &UserId,
    ) -> StoreResult<HashMap<ThreadId, Summary>> {
        self.time("summaries", self.inner.summaries(threads, reader))
            .await
    }

    async fn threads_of(
        &self,
        member: &UserId,
        anchor: Anchor<ThreadId>,
        limit: usize,
    ) -> StoreResult<Window<Thread>> {
        self.time("threads_of", self.inner.threads_of(member, anchor, limit))
            .await
    }

    async fn create_account(&self, name: AccountName) -> StoreResult<Account> {
        self.time("create_account", self.inner.create_account(name))
            .await
    }

    async fn insert_account(&self, account: Account) -> StoreResult<Account> {
        self.time("insert_account", self.inner.insert_account(account))
            .await
    }

    async fn save_account(&self, account: Account) -> StoreResult<bool> {
        self.time("save_account", self.inner.save_account(account))
            .await
    }

    async fn account(&self, id: &UserId) -> StoreResult<Account> {
        self.time("account", self.inner.account(id)).await
    }

    async fn accounts(&self, after: Option<&UserId>, limit: usize) -> StoreResult<Vec<Account>> {
        self.time("accounts", self.inner.accounts(after, limit))
            .await
    }

    async fn account_names(&self, ids: &[UserId]) -> StoreResult<HashMap<UserId, AccountName>> {
        self.time("account_names", self.inner.account_names(ids))
            .await
    }

    async fn insert_file(&self, file: FileRecord) -> StoreResult<()> {
        self.time("insert_file", self.inner.insert_file(file)).await
    }

    async fn stale_uploads(&self, before: Timestamp) -> StoreResult<Vec<FileRecord>> {
        self.time("stale_uploads", self.inner.stale_uploads(before))
            .await
    }

    async fn finish_file_announced(
        &self,
        id: &FileId,
        status: FileStatus,
        sha256: Option<String>,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<FileRecord> {
        let work = self.inner.finish_file_announced(id, status, sha256, events);
        self.time("finish_file", work).await
    }

    async fn outbox_claim(
        &self,
        endpoints: &[String],
        node: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let work = self.inner.outbox_claim(endpoints, node, now, lease, limit);
        self.time("outbox_claim", work).await
    }

    async fn outbox_settle(&self, settled: &[Settled]) -> StoreResult<()> {
        self.time("outbox_settle", self.inner.outbox_settle(settled))
            .await
    }

    async fn outbox_pending(&self, endpoints: &[String]) -> StoreResult<u64> {
        self.time("outbox_pending", self.inner.outbox_pending(endpoints))
            .await
    }

    async fn file(&self, id: &FileId) -> StoreResult<FileRecord> {
        self.time("file", self.inner.file(id)).await
    }

    async fn files(&self, ids: &[FileId]) -> StoreResult<Vec<FileRecord>> {
        self.time("files", self.inner.files(ids)).await
    }

    async fn file_threads(&self, id: &FileId) -> StoreResult<Vec<ThreadId>> {
        self.time("file_threads", self.inner.file_threads(id)).await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
