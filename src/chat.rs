//! Where messages change: every creation, edit and deletion goes access check → validate →
//! store → fan-out here, and so does a rejoin's replay.
//!
//! Every face (the threads REST API, the accounts REST API, the socket) hands [`Chat`] an
//! [`Actor`] and asks it; `Chat` reads the thread once, applies membership and the post
//! throttle itself, and stores and delivers under the thread's turn (see [`crate::fanout`]). A
//! new event or a new face therefore cannot forget a rule, and validation, storage and the room
//! events cannot drift apart.

use std::{collections::HashMap, sync::Arc};

use crate::{
    domain::{
        Actor, Emoji, FileId, FileRecord, Message, MessageBody, MessageId, NewMessage, Thread,
        ThreadId, Timestamp, UserId, message::MessageError, search,
    },
    error::{ApiError, Result},
    fanout::{Fanout, ThreadEvent},
    limits::Limits,
    metrics::Metrics,
    store::{Anchor, Announce, Found, OutboxEvent, Scope, Search, Store, StoreError, Window},
    views::{self, FileView, MessageView, ReactionView, ThreadView},
    webhooks::Webhooks,
};

/// `member.mentioned`'s data: who was mentioned, where, by which message.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Mentioned<'a> {
    thread_id: &'a ThreadId,
    user_id: &'a UserId,
    message: &'a MessageView,
}

/// `reaction.updated`'s data, as the room's `reaction:updated`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReactionsData<'a> {
    thread_id: &'a ThreadId,
    message_id: &'a MessageId,
    reactions: &'a [ReactionView],
}

/// A message's reactions after a change, as the room was told.
pub struct Reacted {
    pub thread: ThreadId,
    pub message: MessageId,
    pub reactions: Vec<ReactionView>,
    /// `false` when nothing changed (the reaction was there already, or was not there).
    pub changed: bool,
}

/// A page of search results, newest first.
pub struct Results {
    pub messages: Vec<MessageView>,
    /// Where the next page starts, while more results follow.
    pub next: Option<u64>,
}

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
    /// The newest position the joining socket has: everything after it arrives live.
    pub seq: u64,
}

/// Where a rejoining client left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The last message it saw (`since: <id>`).
    Message(MessageId),
    /// The position of the last message it saw (`after: <seq>`; 0: it saw none).
    Position(u64),
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
    Updated(Box<MessageView>),
    Deleted(ThreadId, MessageId),
}

pub struct Chat {
    store: Arc<dyn Store>,
    fanout: Arc<Fanout>,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    /// With webhook endpoints, every change records its events in the same store write.
    webhooks: Option<Arc<Webhooks>>,
}

impl Chat {
    pub fn new(
        store: Arc<dyn Store>,
        limits: Arc<Limits>,
        metrics: Arc<Metrics>,
        webhooks: Option<Arc<Webhooks>>,
    ) -> Self {
        Self {
            fanout: Fanout::new(Arc::clone(&store)),
            store,
            limits,
            metrics,
            webhooks,
        }
    }

    /// The events of one change for the webhook endpoints (none without endpoints).
    fn events(
        &self,
        kind: &'static str,
        thread: Option<&ThreadId>,
        data: &impl serde::Serialize,
    ) -> Vec<OutboxEvent> {
        match &self.webhooks {
            Some(webhooks) => webhooks.events(kind, thread, data),
            None => Vec::new(),
        }
    }

    /// Tells the webhook worker that events were recorded.
    fn recorded(&self) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.recorded();
        }
    }

    /// Creates a thread, or finds the one with the same members (`thread.created` when new).
    pub async fn create_thread(&self, thread: Thread) -> Result<(Thread, bool)> {
        let events = match &self.webhooks {
            Some(_) => {
                let names = self.store.account_names(&thread.member_ids).await?;
                let view = ThreadView::new(&thread, &names);
                self.events("thread.created", Some(&thread.id), &view)
            }
            None => Vec::new(),
        };
        let (thread, created) = self.store.create_thread_announced(thread, events).await?;
        if created {
            self.recorded();
        }
        Ok((thread, created))
    }

    /// Records the outcome of storing a file's bytes (`file.ready` when it is ready).
    pub async fn finish_file(
        &self,
        id: &FileId,
        status: crate::domain::FileStatus,
        sha256: Option<String>,
    ) -> Result<FileRecord> {
        let events = match (&self.webhooks, status) {
            (Some(_), crate::domain::FileStatus::Ready) => {
                let mut file = self.store.file(id).await?;
                file.status = status;
                self.events("file.ready", None, &FileView::from(&file))
            }
            _ => Vec::new(),
        };
        let recorded = !events.is_empty();
        let file = self
            .store
            .finish_file_announced(id, status, sha256, events)
            .await?;
        if recorded {
            self.recorded();
        }
        Ok(file)
    }

    /// The fan-out, for the Socket.IO side to attach its sink and relay peers' events to.
    pub fn fanout(&self) -> &Arc<Fanout> {
        &self.fanout
    }

    /// The access gate: the thread, if `actor` may enter it (read it, its messages, post).
    pub async fn thread(&self, actor: &Actor, id: &ThreadId) -> Result<Thread> {
        let thread = self.store.thread(id).await?;
        self.require_member(actor, &thread)?;
        Ok(thread)
    }

    /// The access gate alone, for callers that need only the thread's id: no read of the
    /// thread itself (its members are known from memory).
    pub async fn gate(&self, actor: &Actor, id: &ThreadId) -> Result<ThreadId> {
        let members = self.store.members(id).await?;
        if !actor.may_enter_among(&members) {
            return Err(ApiError::Forbidden("not_a_member"));
        }
        Ok(id.clone())
    }

    fn require_member(&self, actor: &Actor, thread: &Thread) -> Result<()> {
        if !actor.may_enter(thread) {
            return Err(ApiError::Forbidden("not_a_member"));
        }
        Ok(())
    }

    /// New messages and edits count against the post rate.
    fn throttle_post(&self, actor: &Actor) -> Result<()> {
        Ok(self.limits.posts.check_actor(actor)?)
    }

    /// Stores a new message in thread `id` and broadcasts `message:new` to the thread's room.
    /// `draft` validates the message once the thread is known to accept it (so an unknown
    /// thread answers before a bad body, as in the stub).
    pub async fn post(
        &self,
        actor: &Actor,
        id: &ThreadId,
        draft: impl FnOnce(&UserId) -> Result<NewMessage>,
    ) -> Result<Posted> {
        self.throttle_post(actor)?;
        let thread = self.gate(actor, id).await?;
        self.append(actor, &thread, draft(&actor.user)?).await
    }

    /// [`Chat::post`] to a thread the face looks up itself (the accounts API checks the
    /// account's participation, with its own error codes), after the throttle.
    pub async fn post_in(
        &self,
        actor: &Actor,
        thread: impl Future<Output = Result<Thread>>,
        draft: impl FnOnce(&UserId) -> Result<NewMessage>,
    ) -> Result<Posted> {
        self.throttle_post(actor)?;
        let thread = thread.await?;
        self.require_member(actor, &thread)?;
        self.append(actor, &thread.id, draft(&actor.user)?).await
    }

    async fn append(&self, actor: &Actor, thread: &ThreadId, new: NewMessage) -> Result<Posted> {
        let unknown =
            || ApiError::bad_request("unknown_file", "a fileId does not name an uploaded file");
        let files = self.files_for(&new.file_ids).await.map_err(|e| match e {
            ApiError::NotFound(_) => unknown(),
            other => other,
        })?;
        // A message may carry only files its author could already open: knowing a file's id
        // is not enough to get it shared into one's own thread.
        for file in files.values() {
            if !self.may_see(actor, file).await? {
                return Err(unknown());
            }
        }

        // Mentions name members of the thread; a reply answers a message of it that is not
        // deleted.
        if !new.mentions.is_empty() {
            let members = self.store.members(thread).await?;
            if new
                .mentions
                .iter()
                .any(|m| members.binary_search(m).is_err())
            {
                return Err(MessageError::InvalidMention.into());
            }
        }
        if let Some(parent) = &new.reply_to {
            match self.store.message(thread, parent).await {
                Ok(parent) if !parent.is_deleted() => {}
                Ok(_) | Err(StoreError::MessageNotFound) => {
                    return Err(MessageError::InvalidReplyTo.into());
                }
                Err(e) => return Err(e.into()),
            }
        }

        let message = Message {
            file_ids: new.file_ids,
            client_id: new.client_id,
            reply_to: new.reply_to,
            mentions: new.mentions,
            ..Message::new(
                thread.clone(),
                new.author_id,
                new.body.as_str().to_owned(),
                Timestamp::now(),
            )
        };
        // A 201 means stored: on a durable backend the append has committed before this
        // returns, and so before anyone hears of the message. The thread's turn is taken only
        // to deliver, so that concurrent posts to one thread share a commit; the turn puts
        // deliveries back in store order (an earlier position still on its way is sent
        // first, from the store, and not again when it arrives).
        let announce: Option<Announce> = self.webhooks.clone().map(|webhooks| {
            let files = files.clone();
            let announce = move |stored: &Message| {
                let view = MessageView::new(stored, &files);
                let thread = Some(&stored.thread_id);
                let mut events = webhooks.events("message.created", thread, &view);
                for user in stored.mentions.iter().filter(|u| **u != stored.author_id) {
                    let data = Mentioned {
                        thread_id: &stored.thread_id,
                        user_id: user,
                        message: &view,
                    };
                    events.extend(webhooks.events("member.mentioned", thread, &data));
                }
                events
            };
            Arc::new(announce) as Announce
        });
        let (message, created) = self
            .store
            .append_announced(message, announce)
            .await
            .map_err(|e| match e {
                // The parent was checked above; only a store that cannot find it says this.
                StoreError::MessageNotFound => MessageError::InvalidReplyTo.into(),
                other => ApiError::from(other),
            })?;
        let view = MessageView::new(&message, &files);
        if created {
            self.recorded();
            self.metrics.messages_posted.inc();
            let mut turn = self.fanout.turn(thread).await;
            turn.publish(&message, ThreadEvent::New(&view)).await;
            if let Some(parent) = &message.reply_to {
                // The parent's new `replyCount`, as it is now.
                match self.store.message(thread, parent).await {
                    Ok(parent) => {
                        let parent_view = self.views(std::slice::from_ref(&parent)).await?;
                        turn.publish(&parent, ThreadEvent::Updated(&parent_view[0]))
                            .await;
                    }
                    Err(e) => tracing::warn!(error = %e, "reading a reply's parent failed"),
                }
            }
            drop(turn);
            let mentioned: Vec<UserId> = message
                .mentions
                .iter()
                .filter(|m| **m != message.author_id)
                .cloned()
                .collect();
            self.fanout.mention(&mentioned, thread, &view).await;
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
        actor: &Actor,
        thread: &ThreadId,
        id: &MessageId,
        body: Option<&str>,
    ) -> Result<MessageView> {
        self.throttle_post(actor)?;
        let thread = self.gate(actor, thread).await?;
        let mut turn = self.fanout.turn(&thread).await;
        let mut message = self.authored(&thread, id, &actor.user).await?;
        if message.is_deleted() {
            return Err(ApiError::Conflict("message_deleted"));
        }
        let body = MessageBody::parse(body, !message.file_ids.is_empty())?;
        message.edit(body, Timestamp::now());
        let view = self.views(std::slice::from_ref(&message)).await?.remove(0);
        let events = self.events("message.updated", Some(&thread), &view);
        self.store
            .replace_announced(message.clone(), events)
            .await?;
        self.recorded();
        turn.publish(&message, ThreadEvent::Updated(&view)).await;
        Ok(view)
    }

    /// The author deletes a message: it becomes a tombstone and the room gets
    /// `message:deleted`. Deleting a tombstone again changes nothing.
    pub async fn delete(&self, actor: &Actor, thread: &ThreadId, id: &MessageId) -> Result<()> {
        let thread = self.gate(actor, thread).await?;
        let mut turn = self.fanout.turn(&thread).await;
        let mut message = self.authored(&thread, id, &actor.user).await?;
        if message.is_deleted() {
            return Ok(());
        }
        message.delete(Timestamp::now());
        let events = match &self.webhooks {
            Some(_) => {
                let tombstone = self.views(std::slice::from_ref(&message)).await?;
                self.events("message.deleted", Some(&thread), &tombstone[0])
            }
            None => Vec::new(),
        };
        self.store
            .replace_announced(message.clone(), events)
            .await?;
        self.recorded();
        turn.publish(
            &message,
            ThreadEvent::Deleted {
                thread: &thread,
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

    /// Adds (`add`) or removes the actor's reaction `emoji` (as the client sent it) on a
    /// message; when that changes anything the room gets `reaction:updated`. Counts against
    /// the post rate.
    pub async fn react(
        &self,
        actor: &Actor,
        thread: &ThreadId,
        id: &MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<Reacted> {
        self.throttle_post(actor)?;
        let emoji = Emoji::parse(emoji).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_emoji",
                "an emoji is one grapheme or a :short_code: of at most 32 bytes",
            )
        })?;
        let thread = self.gate(actor, thread).await?;
        let mut turn = self.fanout.turn(&thread).await;
        let announce: Option<Announce> = self.webhooks.clone().map(|webhooks| {
            let announce = move |stored: &Message| {
                let reactions = ReactionView::all(&stored.reactions);
                let data = ReactionsData {
                    thread_id: &stored.thread_id,
                    message_id: &stored.id,
                    reactions: &reactions,
                };
                webhooks.events("reaction.updated", Some(&stored.thread_id), &data)
            };
            Arc::new(announce) as Announce
        });
        let (message, changed) = self
            .store
            .react(
                &thread,
                id,
                &actor.user,
                &emoji,
                add,
                Timestamp::now(),
                announce,
            )
            .await?;
        if changed {
            self.recorded();
        }
        let reactions = ReactionView::all(&message.reactions);
        if changed {
            let event = ThreadEvent::Reactions {
                thread: &thread,
                message: id,
                reactions: &reactions,
            };
            turn.publish(&message, event).await;
        }
        Ok(Reacted {
            thread,
            message: message.id,
            reactions,
            changed,
        })
    }

    /// A page of the replies to a message, in thread order, after the reply `after`.
    pub async fn replies(
        &self,
        actor: &Actor,
        thread: &ThreadId,
        parent: &MessageId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> Result<(Vec<MessageView>, Window<Message>)> {
        let thread = self.gate(actor, thread).await?;
        let window = self.store.replies(&thread, parent, after, limit).await?;
        Ok((self.views(&window.items).await?, window))
    }

    /// Messages matching `query`, newest first, among the threads the actor may read (`thread`
    /// alone when given), starting before position `before`.
    pub async fn search(
        &self,
        actor: &Actor,
        query: &str,
        thread: Option<&ThreadId>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Results> {
        self.limits.searches.check_actor(actor)?;
        let query = search::Query::parse(query).map_err(|e| match e {
            search::QueryError::Empty => {
                ApiError::bad_request("invalid_query", "q needs at least one word")
            }
            search::QueryError::TooLong => ApiError::bad_request(
                "invalid_query",
                format!(
                    "q holds at most {} words and {} bytes",
                    search::MAX_QUERY_WORDS,
                    search::MAX_QUERY_BYTES
                ),
            ),
        })?;
        let thread = match thread {
            Some(thread) => Some(self.gate(actor, thread).await?),
            None => None,
        };
        let scope = match (&thread, actor.verified) {
            (Some(thread), _) => Scope::Thread(thread),
            (None, true) => Scope::MemberOf(&actor.user),
            (None, false) => Scope::All,
        };
        let mut found = self
            .store
            .search(&Search {
                query: &query,
                scope,
                before,
                limit: limit + 1,
            })
            .await?;
        let next = (found.len() > limit).then(|| found[limit - 1].position);
        found.truncate(limit);
        let messages: Vec<Message> = found.into_iter().map(|f: Found| f.message).collect();
        Ok(Results {
            messages: self.views(&messages).await?,
            next,
        })
    }

    /// Joins a socket to a thread's room: `enter` does it, in the thread's turn, once this
    /// node knows where the thread's events start for its sockets. Returns that position: the
    /// socket gets every message after it live.
    pub async fn join(&self, actor: &Actor, id: &ThreadId, enter: impl FnOnce()) -> Result<u64> {
        let thread = self.gate(actor, id).await?;
        let mut turn = self.fanout.turn(&thread).await;
        let seq = turn.track().await?;
        enter();
        Ok(seq)
    }

    /// Reads what a client that last saw `since` missed (at most `cap` new messages) and calls
    /// `enter` with it while no message of the thread can be stored or delivered on this node:
    /// `enter` joins the room and emits the replay, so every message is either replayed or
    /// delivered live, never both and never neither.
    pub async fn rejoin(
        &self,
        actor: &Actor,
        id: &ThreadId,
        since: &Since,
        cap: usize,
        enter: impl FnOnce(&Replay),
    ) -> Result<(Thread, Replay)> {
        let thread = self.thread(actor, id).await?;
        let mut turn = self.fanout.turn(&thread.id).await;
        let seen = match since {
            Since::Message(since) => Some(self.store.message(&thread.id, since).await.map_err(
                |e| match e {
                    StoreError::MessageNotFound => ApiError::NotFound("unknown_since"),
                    other => other.into(),
                },
            )?),
            Since::Position(0) => None,
            Since::Position(seq) => Some(
                self.store
                    .message_at(&thread.id, *seq)
                    .await?
                    .ok_or(ApiError::NotFound("unknown_after"))?,
            ),
        };
        let anchor = match &seen {
            Some(seen) => Anchor::After(seen.id.clone()),
            None => Anchor::Oldest,
        };
        let mut window = self.store.messages(&thread.id, anchor, cap).await?;
        let truncated = window.more_after;
        if truncated {
            window = self.store.messages(&thread.id, Anchor::Newest, cap).await?;
        }
        let changed = match &seen {
            Some(seen) => {
                self.store
                    .changed_messages(&thread.id, &seen.id, seen.created_at)
                    .await?
            }
            None => Vec::new(),
        };
        let changed_views = self.views(&changed).await?;
        let new = self.views(&window.items).await?;
        match window.items.last().or(seen.as_ref()) {
            Some(newest) => turn.catch_up_to(newest).await,
            None => _ = turn.track().await?,
        }
        let replay = Replay {
            changed: changed
                .into_iter()
                .zip(changed_views)
                .map(|(message, view)| match message.deleted_at {
                    Some(_) => Change::Deleted(message.thread_id, message.id),
                    None => Change::Updated(Box::new(view)),
                })
                .collect(),
            new,
            truncated,
            seq: turn.position(),
        };
        enter(&replay);
        self.metrics
            .replayed
            .observe((replay.changed.len() + replay.new.len()) as f64);
        Ok((thread, replay))
    }

    /// Moves the actor's read position forward and tells the room (`receipt`) when it moved.
    /// Returns the position afterwards.
    pub async fn mark_read(
        &self,
        actor: &Actor,
        thread: &ThreadId,
        message: &MessageId,
    ) -> Result<MessageId> {
        let thread = self.gate(actor, thread).await?;
        let user = &actor.user;
        let (position, moved) = self.store.mark_read(&thread, user, message).await?;
        if moved {
            let event = ThreadEvent::Receipt {
                thread: &thread,
                user,
                message: &position,
            };
            self.fanout.broadcast(&thread, event).await;
        }
        Ok(position)
    }

    /// A file, if `actor` may see it: in `jwt` mode, its uploader and the members of the
    /// threads whose messages reference it.
    /// One the actor may not see answers exactly like an unknown id: no existence oracle.
    pub async fn file(&self, actor: &Actor, id: &FileId) -> Result<FileRecord> {
        let file = self.store.file(id).await?;
        if self.may_see(actor, &file).await? {
            return Ok(file);
        }
        Err(ApiError::NotFound("not_found"))
    }

    async fn may_see(&self, actor: &Actor, file: &FileRecord) -> Result<bool> {
        if !actor.verified || file.uploader == actor.user {
            return Ok(true);
        }
        for thread in self.store.file_threads(&file.id).await? {
            if actor.may_enter(&self.store.thread(&thread).await?) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The identified users with a socket in the thread's room, on any node.
    pub async fn online(&self, actor: &Actor, id: &ThreadId) -> Result<Vec<UserId>> {
        let thread = self.gate(actor, id).await?;
        Ok(self.fanout.online(&thread).await)
    }

    /// Shapes stored messages, fetching their files in one call.
    pub async fn views(&self, messages: &[Message]) -> Result<Vec<MessageView>> {
        Ok(views::shape(self.store.as_ref(), messages).await?)
    }

    async fn files_for(&self, ids: &[FileId]) -> Result<HashMap<FileId, FileRecord>> {
        Ok(views::files_by_id(self.store.as_ref(), ids).await?)
    }
}
