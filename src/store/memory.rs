//! The embedded default: everything in DashMaps, indexed for the queries the APIs make.
//!
//! Locking rules (why no deadlock and no guard across an `.await`):
//! - no method awaits, so no DashMap guard or `RwLock` guard ever lives across a suspension;
//! - locks are taken in one order: `by_members` entry → a thread's log → `member_index` or
//!   `file_threads` shard.
//!   Readers that need several of them collect ids under one guard, drop it, then take the next.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use dashmap::{DashMap, mapref::entry::Entry};

use super::{
    Anchor, Announce, Delivery, Found, OutboxEvent, Scope, Search, Settled, Store, StoreError,
    StoreResult, Window,
};
use crate::domain::{
    Account, AccountName, ClientMessageId, Emoji, FileId, FileRecord, FileStatus, MemberSet,
    Message, MessageId, Thread, ThreadId, Timestamp, UserId, reaction,
};

mod index;
mod outbox;

#[derive(Default)]
pub struct MemoryStore {
    threads: DashMap<ThreadId, Arc<RwLock<ThreadLog>>>,
    /// Sorted member ids → thread: resolving a member set is one hash lookup.
    by_members: DashMap<Vec<UserId>, ThreadId>,
    /// Member → their threads by latest activity: listing a page of conversations costs
    /// O(log n + page) in that member's threads, whatever the size of the store.
    member_index: DashMap<UserId, MemberThreads>,
    accounts: DashMap<UserId, (u64, Account)>,
    files: DashMap<FileId, FileRecord>,
    /// File → the threads whose messages reference it.
    file_threads: DashMap<FileId, Vec<ThreadId>>,
    /// Thread → activity of its latest append, not yet moved into `member_index`. An append
    /// records one entry however many members its thread has; the next conversation listing
    /// moves them all (a burst of posts to a thread becomes one re-index of its members).
    pending_activity: DashMap<ThreadId, u64>,
    /// Global activity clock: every thread creation and message append ticks it.
    clock: AtomicU64,
    account_seq: AtomicU64,
    /// Message text by word. Locked after a thread's log, never before.
    text: RwLock<index::TextIndex>,
    /// The store-wide position of the last message appended (search pages by it).
    positions: AtomicU64,
    /// Webhook events not yet delivered. Locked after a thread's log, never before.
    outbox: std::sync::Mutex<outbox::Outbox>,
}

struct ThreadLog {
    thread: Thread,
    /// `thread.member_ids`, sorted, shared with every access check.
    members: Arc<[UserId]>,
    messages: Vec<Arc<Message>>,
    /// Message id → position in `messages`: a cursor lookup is O(1), not a scan.
    positions: HashMap<MessageId, usize>,
    /// (author, idempotency key) → position.
    client_ids: HashMap<(UserId, ClientMessageId), usize>,
    /// (when, position) of every change after creation, in the order they happened.
    changes: Vec<(Timestamp, usize)>,
    /// Member → position of the last message they have read.
    reads: HashMap<UserId, usize>,
    /// Each message's store-wide position, by position in `messages`.
    store_positions: Vec<u64>,
    /// Parent position → its replies' positions, in order.
    replies: HashMap<usize, Vec<usize>>,
    /// User → positions of the messages that mention them, in order.
    mentions: HashMap<UserId, Vec<usize>>,
}

#[derive(Default)]
struct MemberThreads {
    by_activity: BTreeSet<(u64, ThreadId)>,
    activity_of: HashMap<ThreadId, u64>,
}

impl MemberThreads {
    /// Moves `thread` to `activity`, never back (pending moves may be applied concurrently).
    fn touch(&mut self, thread: &ThreadId, activity: u64) {
        match self.activity_of.get(thread) {
            Some(&old) if old >= activity => return,
            Some(&old) => {
                self.by_activity.remove(&(old, thread.clone()));
            }
            None => {}
        }
        self.activity_of.insert(thread.clone(), activity);
        self.by_activity.insert((activity, thread.clone()));
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn log(&self, id: &ThreadId) -> StoreResult<Arc<RwLock<ThreadLog>>> {
        // Clone the Arc out so the shard guard is released before the log is locked.
        self.threads
            .get(id)
            .map(|entry| Arc::clone(entry.value()))
            .ok_or(StoreError::ThreadNotFound)
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, outbox::Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, events: Vec<OutboxEvent>) {
        if !events.is_empty() {
            self.outbox().record(events);
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Moves the pending activity of every thread into its members' indexes.
    fn apply_pending_activity(&self) {
        let pending: Vec<(ThreadId, u64)> = self
            .pending_activity
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        for (thread, activity) in pending {
            if let Ok(log) = self.log(&thread) {
                let members = read(&log).thread.clone();
                self.index_thread(&members, activity);
            }
            self.pending_activity
                .remove_if(&thread, |_, newest| *newest == activity);
        }
    }

    fn index_thread(&self, thread: &Thread, activity: u64) {
        for member in &thread.member_ids {
            self.member_index
                .entry(member.clone())
                .or_default()
                .touch(&thread.id, activity);
        }
    }
}

fn sorted_members(thread: &Thread) -> Arc<[UserId]> {
    let mut members = thread.member_ids.clone();
    members.sort_unstable();
    members.into()
}

/// Picks the window `[start, end)` of a list of `len` items around an anchor position.
fn window_bounds(len: usize, anchor: Anchor<usize>, limit: usize) -> (usize, usize) {
    match anchor {
        Anchor::Oldest => (0, limit.min(len)),
        Anchor::Newest => (len.saturating_sub(limit), len),
        Anchor::Before(pos) => (pos.saturating_sub(limit), pos),
        Anchor::After(pos) => (pos + 1, (pos + 1 + limit).min(len)),
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A panic while holding the lock cannot leave a log half-written (every mutation is a
    // single push/insert), so a poisoned lock is still safe to read.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn create_thread_announced(
        &self,
        thread: Thread,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<(Thread, bool)> {
        let members = MemberSet::new(thread.member_ids.iter().cloned())
            .map_err(|_| StoreError::Conflict("invalid member set"))?;
        match self.by_members.entry(members.key().to_vec()) {
            Entry::Occupied(existing) => {
                let log = self.log(existing.get())?;
                let found = read(&log).thread.clone();
                Ok((found, false))
            }
            Entry::Vacant(slot) => {
                if self.threads.contains_key(&thread.id) {
                    return Err(StoreError::Conflict("thread id taken"));
                }
                let activity = self.tick();
                let log = ThreadLog {
                    members: sorted_members(&thread),
                    thread: thread.clone(),
                    messages: Vec::new(),
                    positions: HashMap::new(),
                    client_ids: HashMap::new(),
                    changes: Vec::new(),
                    reads: HashMap::new(),
                    store_positions: Vec::new(),
                    replies: HashMap::new(),
                    mentions: HashMap::new(),
                };
                self.threads
                    .insert(thread.id.clone(), Arc::new(RwLock::new(log)));
                self.index_thread(&thread, activity);
                slot.insert(thread.id.clone());
                self.record(events);
                Ok((thread, true))
            }
        }
    }

    async fn thread(&self, id: &ThreadId) -> StoreResult<Thread> {
        let log = self.log(id)?;
        let thread = read(&log).thread.clone();
        Ok(thread)
    }

    async fn members(&self, id: &ThreadId) -> StoreResult<Arc<[UserId]>> {
        let log = self.log(id)?;
        let members = Arc::clone(&read(&log).members);
        Ok(members)
    }

    async fn append_announced(
        &self,
        mut message: Message,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)> {
        let words = index::indexable(&message.body);
        let log = self.log(&message.thread_id)?;
        let mut log = write(&log);
        let client_key = message
            .client_id
            .clone()
            .map(|key| (message.author_id.clone(), key));
        if let Some(&earlier) = client_key.as_ref().and_then(|k| log.client_ids.get(k)) {
            return Ok((Message::clone(&log.messages[earlier]), false));
        }
        if log.positions.contains_key(&message.id) {
            return Err(StoreError::Conflict("message id taken"));
        }
        let parent = match &message.reply_to {
            Some(parent) => Some(
                *log.positions
                    .get(parent)
                    .ok_or(StoreError::MessageNotFound)?,
            ),
            None => None,
        };
        let position = log.messages.len();
        message.seq = position as u64 + 1;
        // Times never decrease along a thread's history, whatever order racing posts took
        // their clocks in.
        if let Some(last) = log.messages.last() {
            message.created_at = message.created_at.max(last.created_at);
        }
        log.positions.insert(message.id.clone(), position);
        if let Some(key) = client_key {
            log.client_ids.insert(key, position);
        }
        for file in &message.file_ids {
            let mut threads = self.file_threads.entry(file.clone()).or_default();
            if !threads.contains(&message.thread_id) {
                threads.push(message.thread_id.clone());
            }
        }
        message.reply_count = 0;
        message.reactions.clear();
        message.changed_at = None;
        if let Some(parent) = parent {
            let updated = Arc::make_mut(&mut log.messages[parent]);
            updated.reply_count += 1;
            updated.changed_at = Some(message.created_at);
            log.changes.push((message.created_at, parent));
            log.replies.entry(parent).or_default().push(position);
        }
        for user in &message.mentions {
            log.mentions.entry(user.clone()).or_default().push(position);
        }
        let store_position = self.positions.fetch_add(1, Ordering::Relaxed) + 1;
        log.store_positions.push(store_position);
        write(&self.text).set(store_position, &message.thread_id, position, words);
        log.messages.push(Arc::new(message.clone()));
        log.thread.updated_at = message.created_at;
        // Tick and record while the log is still locked, so the pending entry of a thread
        // only ever moves forward.
        let activity = self.tick();
        self.pending_activity
            .insert(message.thread_id.clone(), activity);
        if let Some(announce) = announce {
            self.record(announce(&message));
        }
        Ok((message, true))
    }

    async fn messages(
        &self,
        thread: &ThreadId,
        anchor: Anchor<MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>> {
        let log = self.log(thread)?;
        let log = read(&log);
        let position = |id: &MessageId| {
            log.positions
                .get(id)
                .copied()
                .ok_or(StoreError::UnknownAnchor)
        };
        let anchor = match anchor {
            Anchor::Oldest => Anchor::Oldest,
            Anchor::Newest => Anchor::Newest,
            Anchor::Before(id) => Anchor::Before(position(&id)?),
            Anchor::After(id) => Anchor::After(position(&id)?),
        };
        let len = log.messages.len();
        let (start, end) = window_bounds(len, anchor, limit);
        Ok(Window {
            items: log.messages[start..end]
                .iter()
                .map(|m| Message::clone(m))
                .collect(),
            more_before: start > 0,
            more_after: end < len,
        })
    }

    async fn last_message(&self, thread: &ThreadId) -> StoreResult<Option<Message>> {
        let log = self.log(thread)?;
        let last = read(&log).messages.last().map(|m| Message::clone(m));
        Ok(last)
    }

    async fn message(&self, thread: &ThreadId, id: &MessageId) -> StoreResult<Message> {
        let log = self.log(thread)?;
        let log = read(&log);
        let position = log.positions.get(id).ok_or(StoreError::MessageNotFound)?;
        Ok(Message::clone(&log.messages[*position]))
    }

    async fn message_at(&self, thread: &ThreadId, seq: u64) -> StoreResult<Option<Message>> {
        let log = self.log(thread)?;
        let log = read(&log);
        // Positions are 1-based indexes into the log.
        let at = usize::try_from(seq.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(log
            .messages
            .get(at)
            .filter(|_| seq > 0)
            .map(|m| Message::clone(m)))
    }

    async fn replace_announced(
        &self,
        message: Message,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<()> {
        let words = index::indexable(&message.body);
        let log = self.log(&message.thread_id)?;
        let mut log = write(&log);
        let position = *log
            .positions
            .get(&message.id)
            .ok_or(StoreError::MessageNotFound)?;
        let at = message
            .changed_at
            .ok_or(StoreError::Conflict("a replaced message must be changed"))?;
        log.changes.push((at, position));
        // What the author changes; reactions and replies stay as they are stored now.
        let stored = Arc::make_mut(&mut log.messages[position]);
        stored.body = message.body;
        stored.file_ids = message.file_ids;
        stored.edited_at = message.edited_at;
        stored.deleted_at = message.deleted_at;
        stored.changed_at = Some(at);
        if stored.is_deleted() {
            stored.reactions.clear();
        }
        let store_position = log.store_positions[position];
        write(&self.text).set(store_position, &message.thread_id, position, words);
        self.record(events);
        Ok(())
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
        let log = self.log(thread)?;
        let mut log = write(&log);
        let position = *log.positions.get(id).ok_or(StoreError::MessageNotFound)?;
        if log.messages[position].is_deleted() {
            return Err(StoreError::Conflict("message_deleted"));
        }
        let mut reactions = log.messages[position].reactions.clone();
        let changed = reaction::apply(&mut reactions, emoji, user, add)
            .map_err(|_| StoreError::Conflict("too_many_reactions"))?;
        if changed {
            let stored = Arc::make_mut(&mut log.messages[position]);
            stored.reactions = reactions;
            stored.changed_at = Some(at);
            log.changes.push((at, position));
            if let Some(announce) = announce {
                self.record(announce(&log.messages[position]));
            }
        }
        Ok((Message::clone(&log.messages[position]), changed))
    }

    async fn replies(
        &self,
        thread: &ThreadId,
        parent: &MessageId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>> {
        let log = self.log(thread)?;
        let log = read(&log);
        let parent = *log
            .positions
            .get(parent)
            .ok_or(StoreError::MessageNotFound)?;
        let replies = log.replies.get(&parent).map(Vec::as_slice).unwrap_or(&[]);
        let start = match after {
            None => 0,
            Some(id) => {
                let at = log.positions.get(id).ok_or(StoreError::UnknownAnchor)?;
                replies
                    .binary_search(at)
                    .map_err(|_| StoreError::UnknownAnchor)?
                    + 1
            }
        };
        let end = (start + limit).min(replies.len());
        Ok(Window {
            items: replies[start..end]
                .iter()
                .map(|&p| Message::clone(&log.messages[p]))
                .collect(),
            more_before: start > 0,
            more_after: end < replies.len(),
        })
    }

    async fn search(&self, search: &Search<'_>) -> StoreResult<Vec<Found>> {
        // Which threads may match, read before the index is locked (see the locking rules).
        let member_threads: Option<std::collections::HashSet<ThreadId>> = match search.scope {
            Scope::MemberOf(user) => Some(
                self.member_index
                    .get(user)
                    .map(|index| index.activity_of.keys().cloned().collect())
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        let allowed = |thread: &ThreadId| match search.scope {
            Scope::All => true,
            Scope::Thread(only) => thread == only,
            Scope::MemberOf(_) => member_threads
                .as_ref()
                .is_some_and(|threads| threads.contains(thread)),
        };
        let matches = read(&self.text).matches(search.query, search.before, search.limit, allowed);
        let mut found = Vec::with_capacity(matches.len());
        for (store_position, thread, position) in matches {
            let log = self.log(&thread)?;
            let message = Message::clone(&read(&log).messages[position]);
            // Deleted since the index was read.
            if !message.is_deleted() {
                found.push(Found {
                    position: store_position,
                    message,
                });
            }
        }
        Ok(found)
    }

    async fn unread_mentions(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64> {
        let log = self.log(thread)?;
        let log = read(&log);
        let read_up_to = log.reads.get(user).copied();
        let Some(mentions) = log.mentions.get(user) else {
            return Ok(0);
        };
        Ok(mentions
            .iter()
            .filter(|&&p| read_up_to.is_none_or(|r| p > r))
            .filter(|&&p| {
                let m = &log.messages[p];
                &m.author_id != user && !m.is_deleted()
            })
            .count() as u64)
    }

    async fn changed_messages(
        &self,
        thread: &ThreadId,
        until: &MessageId,
        since: Timestamp,
    ) -> StoreResult<Vec<Message>> {
        let log = self.log(thread)?;
        let log = read(&log);
        let until = *log.positions.get(until).ok_or(StoreError::UnknownAnchor)?;
        let mut positions: Vec<usize> = log
            .changes
            .iter()
            .filter(|(at, position)| *at >= since && *position <= until)
            .map(|(_, position)| *position)
            .collect();
        positions.sort_unstable();
        positions.dedup();
        Ok(positions
            .into_iter()
            .map(|p| Message::clone(&log.messages[p]))
            .collect())
    }

    async fn mark_read(
        &self,
        thread: &ThreadId,
        user: &UserId,
        message: &MessageId,
    ) -> StoreResult<(MessageId, bool)> {
        let log = self.log(thread)?;
        let mut log = write(&log);
        let position = *log
            .positions
            .get(message)
            .ok_or(StoreError::MessageNotFound)?;
        let moved = match log.reads.get(user) {
            Some(&current) if current >= position => false,
            _ => {
                log.reads.insert(user.clone(), position);
                true
            }
        };
        let at = log.reads[user];
        Ok((log.messages[at].id.clone(), moved))
    }

    async fn unread_count(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64> {
        let log = self.log(thread)?;
        let log = read(&log);
        let start = log.reads.get(user).map_or(0, |p| p + 1);
        Ok(log.messages[start..]
            .iter()
            .filter(|m| &m.author_id != user && !m.is_deleted())
            .count() as u64)
    }

    async fn threads_of(
        &self,
        member: &UserId,
        anchor: Anchor<ThreadId>,
        limit: usize,
    ) -> StoreResult<Window<Thread>> {
        self.apply_pending_activity();
        // Collect the ids under the index guard, then drop it before touching any log.
        let (ids, more_before, more_after) = {
            let Some(index) = self.member_index.get(member) else {
                return match anchor {
                    Anchor::Before(_) | Anchor::After(_) => Err(StoreError::UnknownAnchor),
                    _ => Ok(Window {
                        items: vec![],
                        more_before: false,
                        more_after: false,
                    }),
                };
            };
            let set = &index.by_activity;
            let key_of = |id: &ThreadId| {
                index
                    .activity_of
                    .get(id)
                    .map(|a| (*a, id.clone()))
                    .ok_or(StoreError::UnknownAnchor)
            };
            let ids: Vec<ThreadId> = match &anchor {
                Anchor::Oldest => set.iter().take(limit).map(|(_, id)| id.clone()).collect(),
                Anchor::Newest => {
                    let mut v: Vec<_> = set
                        .iter()
                        .rev()
                        .take(limit)
                        .map(|(_, id)| id.clone())
                        .collect();
                    v.reverse();
                    v
                }
                Anchor::Before(id) => {
                    let key = key_of(id)?;
                    let mut v: Vec<_> = set
                        .range(..key)
                        .rev()
                        .take(limit)
                        .map(|(_, id)| id.clone())
                        .collect();
                    v.reverse();
                    v
                }
                Anchor::After(id) => {
                    let key = key_of(id)?;
                    set.range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
                        .take(limit)
                        .map(|(_, id)| id.clone())
                        .collect()
                }
            };
            let first = ids.first().map(key_of).transpose()?;
            let last = ids.last().map(key_of).transpose()?;
            let (more_before, more_after) = match (&first, &last) {
                (Some(first), Some(last)) => (
                    set.range(..first.clone()).next().is_some(),
                    set.range((
                        std::ops::Bound::Excluded(last.clone()),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .is_some(),
                ),
                _ => match &anchor {
                    Anchor::Before(id) => (false, key_of(id).is_ok()),
                    Anchor::After(id) => (key_of(id).is_ok(), false),
                    _ => (false, false),
                },
            };
            (ids, more_before, more_after)
        };
        let mut items = Vec::with_capacity(ids.len());
        for id in &ids {
            items.push(read(&*self.log(id)?).thread.clone());
        }
        Ok(Window {
            items,
            more_before,
            more_after,
        })
    }

    async fn create_account(&self, name: AccountName) -> StoreResult<Account> {
        loop {
            let seq = self.account_seq.fetch_add(1, Ordering::Relaxed) + 1;
            let id =
                UserId::parse(&seq.to_string()).map_err(|_| StoreError::Backend("id".into()))?;
            if let Entry::Vacant(slot) = self.accounts.entry(id.clone()) {
                let account = Account { id, name };
                slot.insert((seq, account.clone()));
                return Ok(account);
            }
        }
    }

    async fn insert_account(&self, account: Account) -> StoreResult<Account> {
        // Keep generated ids clear of numeric ids chosen by hand.
        let seq = match account.id.as_str().parse::<u64>() {
            Ok(n) => {
                self.account_seq.fetch_max(n, Ordering::Relaxed);
                n
            }
            Err(_) => self.account_seq.load(Ordering::Relaxed),
        };
        match self.accounts.entry(account.id.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict("account id taken")),
            Entry::Vacant(slot) => {
                slot.insert((seq, account.clone()));
                Ok(account)
            }
        }
    }

    async fn account(&self, id: &UserId) -> StoreResult<Account> {
        self.accounts
            .get(id)
            .map(|a| a.1.clone())
            .ok_or(StoreError::AccountNotFound)
    }

    async fn save_account(&self, account: Account) -> StoreResult<bool> {
        match self.accounts.entry(account.id.clone()) {
            Entry::Occupied(mut held) => {
                held.get_mut().1.name = account.name;
                Ok(false)
            }
            Entry::Vacant(slot) => {
                let seq = self.account_seq.fetch_add(1, Ordering::Relaxed) + 1;
                slot.insert((seq, account));
                Ok(true)
            }
        }
    }

    async fn accounts(&self, after: Option<&UserId>, limit: usize) -> StoreResult<Vec<Account>> {
        let from = match after {
            None => None,
            Some(id) => Some(
                self.accounts
                    .get(id)
                    .map(|a| (a.0, id.clone()))
                    .ok_or(StoreError::UnknownAnchor)?,
            ),
        };
        let mut page: Vec<(u64, Account)> = self
            .accounts
            .iter()
            .filter(|a| {
                from.as_ref()
                    .is_none_or(|(seq, id)| (a.0, &a.1.id) > (*seq, id))
            })
            .map(|a| a.clone())
            .collect();
        page.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        page.truncate(limit);
        Ok(page.into_iter().map(|(_, a)| a).collect())
    }

    async fn account_names(&self, ids: &[UserId]) -> StoreResult<HashMap<UserId, AccountName>> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                self.accounts
                    .get(id)
                    .map(|a| (id.clone(), a.1.name.clone()))
            })
            .collect())
    }

    async fn insert_file(&self, file: FileRecord) -> StoreResult<()> {
        match self.files.entry(file.id.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict("file id taken")),
            Entry::Vacant(slot) => {
                slot.insert(file);
                Ok(())
            }
        }
    }

    async fn stale_uploads(&self, before: Timestamp) -> StoreResult<Vec<FileRecord>> {
        Ok(self
            .files
            .iter()
            .filter(|f| f.status == FileStatus::Processing && f.created_at < before)
            .map(|f| f.clone())
            .collect())
    }

    async fn finish_file_announced(
        &self,
        id: &FileId,
        status: FileStatus,
        sha256: Option<String>,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<FileRecord> {
        let mut file = self.files.get_mut(id).ok_or(StoreError::FileNotFound)?;
        file.status = status;
        file.sha256 = sha256;
        self.record(events);
        Ok(file.clone())
    }

    async fn outbox_claim(
        &self,
        endpoints: &[String],
        _node: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        Ok(self.outbox().claim(endpoints, now, lease, limit))
    }

    async fn outbox_settle(&self, settled: &[Settled]) -> StoreResult<()> {
        self.outbox().settle(settled);
        Ok(())
    }

    async fn outbox_pending(&self, endpoints: &[String]) -> StoreResult<u64> {
        Ok(self.outbox().pending(endpoints))
    }

    async fn file(&self, id: &FileId) -> StoreResult<FileRecord> {
        self.files
            .get(id)
            .map(|f| f.clone())
            .ok_or(StoreError::FileNotFound)
    }

    async fn file_threads(&self, id: &FileId) -> StoreResult<Vec<ThreadId>> {
        Ok(self
            .file_threads
            .get(id)
            .map(|t| t.clone())
            .unwrap_or_default())
    }

    async fn files(&self, ids: &[FileId]) -> StoreResult<Vec<FileRecord>> {
        ids.iter()
            .map(|id| {
                self.files
                    .get(id)
                    .map(|f| f.clone())
                    .ok_or(StoreError::FileNotFound)
            })
            .collect()
    }
}
