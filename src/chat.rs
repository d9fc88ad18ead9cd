//! Where messages change: every creation, edit and deletion goes validate → store → broadcast
//! here, and so does a rejoin's replay.
//!
//! Every API that changes a message (the threads REST API, the accounts REST API, the socket's
//! `message:send`) calls [`Chat`], so validation, storage and the room events cannot drift
//! apart. A per-thread sequencer is held from the store write to the broadcast, which makes the
//! broadcast order the stored order, and lets a rejoin read its replay and enter the room with
//! nothing slipping between the two.
//!
//! With several nodes, each node also remembers per thread the position (`seq`) of the newest
//! message its sockets were sent. A message event, from this node or another, first sends them
//! what the store holds between that position and the event's message; an event for a position
//! already sent is dropped. So every node's sockets get a thread's messages in the store's
//! order, once, however late the other nodes' events arrive (see [`Chat::catch_up`]).

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use dashmap::DashMap;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{
    domain::{
        FileId, FileRecord, Message, MessageBody, MessageId, NewMessage, ThreadId, Timestamp,
        UserId,
    },
    error::{ApiError, Result},
    realtime::{Realtime, ThreadEvent},
    store::{Anchor, Store, StoreError},
    views::MessageView,
};

/// Most messages one catch-up sends. A longer gap only opens when the channel between nodes
/// lost events (Redis restarted); the older part of it is in the REST history.
const CATCH_UP_LIMIT: usize = 500;

/// A stored message and its threads-API shape (what was broadcast).
pub struct Posted {
    pub message: Message,
    pub view: MessageView,
    /// `false` when an idempotent retry returned the original message (nothing was broadcast).
    pub created: bool,
}

/// What a client that last saw a message missed since: changes to what it had seen, then the
/// messages created after it, oldest first.
#[derive(Default)]
pub struct Replay {
    pub changed: Vec<Change>,
    pub new: Vec<MessageView>,
    /// More messages were created than the cap: `new` holds the newest ones, and the rest are in
    /// the REST history after `since`.
    pub truncated: bool,
}

impl Replay {
    pub fn len(&self) -> usize {
        self.changed.len() + self.new.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A change to a message a client had already seen.
pub enum Change {
    Updated(MessageView),
    Deleted(ThreadId, MessageId),
}

pub struct Chat {
    store: Arc<dyn Store>,
    /// Set once at start-up: the Socket.IO server is built after the state it carries.
    realtime: OnceLock<Arc<dyn Realtime>>,
    /// One lock per thread, held from the store write to the broadcast.
    sequencers: DashMap<ThreadId, Arc<Mutex<()>>>,
    /// With several nodes: per thread joined on this node, the `seq` of the newest message its
    /// sockets were sent. Only ever moves forward, under the thread's sequencer.
    sent: DashMap<ThreadId, u64>,
}

impl Chat {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            realtime: OnceLock::new(),
            sequencers: DashMap::new(),
            sent: DashMap::new(),
        }
    }

    /// Connects the broadcaster. Called once, when the Socket.IO layer exists.
    pub fn attach(&self, realtime: Arc<dyn Realtime>) {
        let _ = self.realtime.set(realtime);
    }

    fn sequencer(&self, thread: &ThreadId) -> Arc<Mutex<()>> {
        // Clone the Arc out: the DashMap guard must not live across the `.await` on the lock.
        Arc::clone(&self.sequencers.entry(thread.clone()).or_default())
    }

    async fn publish(&self, thread: &ThreadId, event: ThreadEvent<'_>) {
        if let Some(realtime) = self.realtime.get() {
            realtime.publish(thread, event).await;
        }
    }

    /// Sends an event about `message` to its room on every node: with several nodes, after the
    /// messages before it this node's sockets were not sent yet.
    async fn publish_about(&self, message: &Message, event: ThreadEvent<'_>) {
        let Some(realtime) = self.realtime.get() else {
            return;
        };
        if realtime.has_peers() {
            let unsent = self
                .catch_up(&message.thread_id, message.seq, &message.id)
                .await;
            if unsent && let ThreadEvent::Updated(view) = event {
                // This node's sockets were never sent the message: it goes first, as it is now.
                realtime
                    .emit_local(&message.thread_id, ThreadEvent::New(view))
                    .await;
            }
            realtime
                .publish_ordered(&message.thread_id, event, message.seq, &message.id)
                .await;
        } else {
            realtime.publish(&message.thread_id, event).await;
        }
    }

    /// Stores a new message in `thread` and broadcasts `message:new` to the thread's room.
    pub async fn post(&self, thread: &ThreadId, new: NewMessage) -> Result<Posted> {
        let files = self.files_for(&new.file_ids).await.map_err(|e| match e {
            ApiError::NotFound(_) => {
                ApiError::bad_request("unknown_file", "a fileId does not name an uploaded file")
            }
            other => other,
        })?;

        let sequencer = self.sequencer(thread);
        let _turn = sequencer.lock().await;
        let message = Message {
            id: MessageId::generate(),
            thread_id: thread.clone(),
            author_id: new.author_id,
            body: new.body.as_str().to_owned(),
            file_ids: new.file_ids,
            created_at: Timestamp::now(),
            client_id: new.client_id,
            edited_at: None,
            deleted_at: None,
            seq: 0,
        };
        // A 201 means stored: on a durable backend the append has committed before this
        // returns, and so before anyone hears of the message.
        let (message, created) = self.store.append_message(message).await?;
        let view = MessageView::new(&message, &files);
        if created {
            self.publish_about(&message, ThreadEvent::New(&view)).await;
        }
        Ok(Posted {
            message,
            view,
            created,
        })
    }

    /// The author replaces a message's body; the room gets `message:updated`.
    pub async fn edit(
        &self,
        thread: &ThreadId,
        id: &MessageId,
        editor: &UserId,
        body: Option<&str>,
    ) -> Result<MessageView> {
        let sequencer = self.sequencer(thread);
        let _turn = sequencer.lock().await;
        let mut message = self.authored(thread, id, editor).await?;
        if message.is_deleted() {
            return Err(ApiError::Conflict("message_deleted"));
        }
        let body = MessageBody::parse(body, !message.file_ids.is_empty())?;
        message.edit(body, Timestamp::now());
        self.store.replace_message(message.clone()).await?;
        let view = self.views(std::slice::from_ref(&message)).await?.remove(0);
        self.publish_about(&message, ThreadEvent::Updated(&view))
            .await;
        Ok(view)
    }

    /// The author deletes a message: it becomes a tombstone and the room gets
    /// `message:deleted`. Deleting a tombstone again changes nothing.
    pub async fn delete(&self, thread: &ThreadId, id: &MessageId, editor: &UserId) -> Result<()> {
        let sequencer = self.sequencer(thread);
        let _turn = sequencer.lock().await;
        let mut message = self.authored(thread, id, editor).await?;
        if message.is_deleted() {
            return Ok(());
        }
        message.delete(Timestamp::now());
        self.store.replace_message(message.clone()).await?;
        self.publish_about(
            &message,
            ThreadEvent::Deleted {
                thread,
                message: id,
            },
        )
        .await;
        Ok(())
    }

    async fn authored(
        &self,
        thread: &ThreadId,
        id: &MessageId,
        editor: &UserId,
    ) -> Result<Message> {
        let message = self.store.message(thread, id).await?;
        if &message.author_id != editor {
            return Err(ApiError::Forbidden("not_author"));
        }
        Ok(message)
    }

    /// Joins a socket to a thread's room: `enter` does it. With several nodes, the first join on
    /// this node records where the thread's events start for its sockets (its newest stored
    /// message), under the thread's sequencer.
    pub async fn join(&self, thread: &ThreadId, enter: impl FnOnce()) -> Result<()> {
        if !self.has_peers() {
            enter();
            return Ok(());
        }
        let sequencer = self.sequencer(thread);
        let _turn = sequencer.lock().await;
        if !self.sent.contains_key(thread) {
            let newest = self.store.last_message(thread).await?;
            self.sent
                .insert(thread.clone(), newest.map_or(0, |m| m.seq));
        }
        enter();
        Ok(())
    }

    /// Reads what a client that last saw `since` missed (at most `cap` new messages) and calls
    /// `enter` with it while no message of the thread can be stored or broadcast on this node:
    /// `enter` joins the room and emits the replay, so every message is either replayed or
    /// delivered live, never both and never neither.
    pub async fn rejoin(
        &self,
        thread: &ThreadId,
        since: &MessageId,
        cap: usize,
        enter: impl FnOnce(&Replay),
    ) -> Result<Replay> {
        let sequencer = self.sequencer(thread);
        let _turn = sequencer.lock().await;
        let seen = self
            .store
            .message(thread, since)
            .await
            .map_err(|e| match e {
                StoreError::MessageNotFound => ApiError::NotFound("unknown_since"),
                other => other.into(),
            })?;
        let mut window = self
            .store
            .messages(thread, Anchor::After(since.clone()), cap)
            .await?;
        let truncated = window.more_after;
        if truncated {
            window = self.store.messages(thread, Anchor::Newest, cap).await?;
        }
        let changed = self
            .store
            .changed_messages(thread, since, seen.created_at)
            .await?;
        let changed_views = self.views(&changed).await?;
        let new = self.views(&window.items).await?;
        if self.has_peers() {
            // The replay runs to `newest`. The room's other sockets are sent what they lack up
            // to there first, so that events up to it, still on their way from other nodes,
            // can be dropped: the replay has them for this socket, the room already had them.
            // The first join on this node starts at `newest`; then there is nothing to catch up.
            let newest = window.items.last().unwrap_or(&seen);
            self.sent.entry(thread.clone()).or_insert(newest.seq);
            if self.catch_up(thread, newest.seq, &newest.id).await {
                self.send_unsent(newest).await;
            }
        }
        let replay = Replay {
            changed: changed
                .into_iter()
                .zip(changed_views)
                .map(|(message, view)| match message.deleted_at {
                    Some(_) => Change::Deleted(message.thread_id, message.id),
                    None => Change::Updated(view),
                })
                .collect(),
            new,
            truncated,
        };
        enter(&replay);
        Ok(replay)
    }

    /// With several nodes: sends this node's sockets in the thread's room every stored message
    /// between the newest one they were sent and `(seq, id)`, oldest first, then records
    /// `seq` as sent. Returns `false` (and sends nothing) when `seq` was sent already or no
    /// socket of this node joined the thread: then nobody here needs it.
    async fn catch_up(&self, thread: &ThreadId, seq: u64, id: &MessageId) -> bool {
        let Some(sent) = self.sent.get(thread).map(|at| *at) else {
            return false;
        };
        if seq <= sent {
            return false;
        }
        let gap = usize::try_from(seq - sent - 1).unwrap_or(usize::MAX);
        if gap > 0 {
            match self
                .missing(thread, sent, id, gap.min(CATCH_UP_LIMIT))
                .await
            {
                Ok(views) => {
                    for view in &views {
                        self.emit_local(thread, ThreadEvent::New(view)).await;
                    }
                }
                // Better a hole than an order the store does not have: the socket's rejoin
                // with `since` fills it.
                Err(e) => tracing::warn!(error = %e, "catching up a thread's room failed"),
            }
        }
        self.sent.insert(thread.clone(), seq);
        true
    }

    /// The messages stored just before `before` and after position `after`, not deleted.
    async fn missing(
        &self,
        thread: &ThreadId,
        after: u64,
        before: &MessageId,
        limit: usize,
    ) -> Result<Vec<MessageView>> {
        let window = self
            .store
            .messages(thread, Anchor::Before(before.clone()), limit)
            .await?;
        let missing: Vec<Message> = window
            .items
            .into_iter()
            .filter(|m| m.seq > after && !m.is_deleted())
            .collect();
        self.views(&missing).await
    }

    /// Takes the thread's turn for delivering a message event another node published about the
    /// message at `(seq, id)` to this node's sockets, after what they lack before it. `None`
    /// when the event must be dropped: a `message:new` they were sent already.
    pub async fn peer_turn(
        &self,
        thread: &ThreadId,
        new_message: bool,
        seq: u64,
        id: &MessageId,
    ) -> Option<OwnedMutexGuard<()>> {
        let turn = self.sequencer(thread).lock_owned().await;
        let unsent = self.catch_up(thread, seq, id).await;
        if new_message {
            return unsent.then_some(turn);
        }
        if unsent {
            // An edit or deletion of a message they were never sent: the message goes first.
            match self.store.message(thread, id).await {
                Ok(message) => self.send_unsent(&message).await,
                Err(e) => tracing::warn!(error = %e, "reading an edited message failed"),
            }
        }
        Some(turn)
    }

    /// Sends this node's sockets in the room a message they were never sent, as it is now
    /// (nothing for a tombstone).
    async fn send_unsent(&self, message: &Message) {
        if message.is_deleted() {
            return;
        }
        match self.views(std::slice::from_ref(message)).await {
            Ok(mut views) => {
                let view = views.remove(0);
                self.emit_local(&message.thread_id, ThreadEvent::New(&view))
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "shaping a message to catch up failed"),
        }
    }

    fn has_peers(&self) -> bool {
        self.realtime.get().is_some_and(|r| r.has_peers())
    }

    async fn emit_local(&self, thread: &ThreadId, event: ThreadEvent<'_>) {
        if let Some(realtime) = self.realtime.get() {
            realtime.emit_local(thread, event).await;
        }
    }

    /// Moves `user`'s read position forward and tells the room (`receipt`) when it moved.
    /// Returns the position afterwards.
    pub async fn mark_read(
        &self,
        thread: &ThreadId,
        user: &UserId,
        message: &MessageId,
    ) -> Result<MessageId> {
        let (position, moved) = self.store.mark_read(thread, user, message).await?;
        if moved {
            self.publish(
                thread,
                ThreadEvent::Receipt {
                    thread,
                    user,
                    message: &position,
                },
            )
            .await;
        }
        Ok(position)
    }

    /// The identified users with a socket in the thread's room, on any node.
    pub async fn online(&self, thread: &ThreadId) -> Vec<UserId> {
        match self.realtime.get() {
            Some(realtime) => realtime.online(thread).await,
            None => Vec::new(),
        }
    }

    /// Shapes stored messages, fetching their files in one call.
    pub async fn views(&self, messages: &[Message]) -> Result<Vec<MessageView>> {
        let ids: Vec<FileId> = messages
            .iter()
            .flat_map(|m| m.file_ids.iter().cloned())
            .collect();
        let files = self.files_for(&ids).await?;
        Ok(messages
            .iter()
            .map(|m| MessageView::new(m, &files))
            .collect())
    }

    async fn files_for(&self, ids: &[FileId]) -> Result<HashMap<FileId, FileRecord>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        match self.store.files(ids).await {
            Ok(files) => Ok(files.into_iter().map(|f| (f.id.clone(), f)).collect()),
            Err(StoreError::FileNotFound) => Err(ApiError::NotFound("not_found")),
            Err(e) => Err(e.into()),
        }
    }
}
