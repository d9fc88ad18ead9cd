//! Where messages change: every creation, edit and deletion goes validate → store → broadcast
//! here, and so does a rejoin's replay.
//!
//! Every API that changes a message (the threads REST API, the accounts REST API, the socket's
//! `message:send`) calls [`Chat`], so validation, storage and the room events cannot drift
//! apart. A per-thread sequencer is held from the store write to the broadcast, which makes the
//! broadcast order the stored order, and lets a rejoin read its replay and enter the room with
//! nothing slipping between the two.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
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

/// How long a replayed message is remembered for a socket, in case its live broadcast from
/// another node is still on its way (it is then not delivered twice).
const SEAM_MEMORY: Duration = Duration::from_secs(30);

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

/// Messages replayed to one socket that another node may still broadcast live.
struct Seam {
    socket: String,
    ids: HashSet<MessageId>,
    until: Instant,
}

pub struct Chat {
    store: Arc<dyn Store>,
    /// Set once at start-up: the Socket.IO server is built after the state it carries.
    realtime: OnceLock<Arc<dyn Realtime>>,
    /// One lock per thread, held from the store write to the broadcast.
    sequencers: DashMap<ThreadId, Arc<Mutex<()>>>,
    /// Per thread, only with several nodes: see [`Chat::deliver_from_peer`].
    seams: DashMap<ThreadId, Vec<Seam>>,
}

impl Chat {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            realtime: OnceLock::new(),
            sequencers: DashMap::new(),
            seams: DashMap::new(),
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
        };
        // A 201 means stored: on a durable backend the append has committed before this
        // returns, and so before anyone hears of the message.
        let (message, created) = self.store.append_message(message).await?;
        let view = MessageView::new(&message, &files);
        if created {
            self.publish(thread, ThreadEvent::New(&view)).await;
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
        self.publish(thread, ThreadEvent::Updated(&view)).await;
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
        self.store.replace_message(message).await?;
        self.publish(
            thread,
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

    /// Reads what a client that last saw `since` missed (at most `cap` new messages) and calls
    /// `enter` with it while no message of the thread can be stored or broadcast on this node:
    /// `enter` joins the room and emits the replay, so every message is either replayed or
    /// delivered live, never both and never neither.
    pub async fn rejoin(
        &self,
        thread: &ThreadId,
        since: &MessageId,
        cap: usize,
        socket: &str,
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
        let replay = Replay {
            changed: changed
                .into_iter()
                .zip(changed_views)
                .map(|(message, view)| match message.deleted_at {
                    Some(_) => Change::Deleted(message.thread_id, message.id),
                    None => Change::Updated(view),
                })
                .collect(),
            new: self.views(&window.items).await?,
            truncated,
        };
        enter(&replay);
        if self.realtime.get().is_some_and(|r| r.has_peers()) {
            self.remember_seam(thread, socket, &window.items);
        }
        Ok(replay)
    }

    fn remember_seam(&self, thread: &ThreadId, socket: &str, replayed: &[Message]) {
        // Only recent messages can still be in flight from another node.
        let recent =
            Timestamp::from_millis(Timestamp::now().as_millis() - SEAM_MEMORY.as_millis() as i64);
        let ids: HashSet<MessageId> = replayed
            .iter()
            .filter(|m| m.created_at >= recent)
            .map(|m| m.id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        let now = Instant::now();
        // Forget expired seams everywhere, not just here: a thread whose replayed messages were
        // all posted on this node never hears from a peer again. The map only ever holds
        // threads rejoined in the last `SEAM_MEMORY`, so the sweep is short.
        self.seams.retain(|_, seams| {
            seams.retain(|s| s.until > now);
            !seams.is_empty()
        });
        let mut seams = self.seams.entry(thread.clone()).or_default();
        seams.push(Seam {
            socket: socket.to_owned(),
            ids,
            until: now + SEAM_MEMORY,
        });
    }

    /// Takes the thread's turn for delivering an event another node published to this node's
    /// sockets: holding the returned guard, the delivery cannot pass a rejoin in progress. Also
    /// returns the sockets that must not get `new_message` (they had it in their replay).
    pub async fn peer_turn(
        &self,
        thread: &ThreadId,
        new_message: Option<&MessageId>,
    ) -> (OwnedMutexGuard<()>, Vec<String>) {
        let turn = self.sequencer(thread).lock_owned().await;
        let mut skip = Vec::new();
        if let Some(id) = new_message
            && let Some(mut seams) = self.seams.get_mut(thread)
        {
            let now = Instant::now();
            seams.retain(|s| s.until > now);
            for seam in seams.iter_mut() {
                if seam.ids.remove(id) {
                    skip.push(seam.socket.clone());
                }
            }
            seams.retain(|s| !s.ids.is_empty());
            let empty = seams.is_empty();
            drop(seams);
            if empty {
                self.seams.remove_if(thread, |_, s| s.is_empty());
            }
        }
        (turn, skip)
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
