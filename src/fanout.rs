//! The order of a thread's message events, for one node or many: one path, where a single
//! node is the case with no peers.
//!
//! Each thread has a *lane*: a lock held while an event is delivered (and from an edit's store
//! write to its delivery, and while a rejoin reads its replay and enters the room, so nothing
//! slips between the two), and inside it the position (`seq`) of the newest message this
//! node's sockets were sent. New messages are stored before the lane is taken, so that posts
//! to one thread can share a commit; the lane restores the store's order. Before a message event, from this node or relayed from a peer,
//! the lane sends them what the store holds between that position and the event's message; a
//! `message:new` for a position already sent is dropped. So every node's sockets get a thread's
//! messages in the store's order, once, however late the other nodes' events arrive.
//!
//! Events leave through a [`Sink`] (this node's sockets, implemented by the Socket.IO side) and,
//! with several nodes, [`Peers`] (the channel to the other nodes). Lanes of threads with no
//! socket on this node are swept.

use std::{
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use async_trait::async_trait;
use dashmap::DashMap;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{
    domain::{Message, MessageId, ThreadId, UserId},
    store::{Anchor, Store, StoreResult},
    views::{self, MessageEnvelope, MessageView, ReactionView},
};

/// Most messages one catch-up sends. A longer gap only opens when the channel between nodes
/// lost events (Redis restarted); the older part of it is in the REST history.
const CATCH_UP_LIMIT: usize = 500;

/// How often lanes of threads without a socket on this node are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Server → room: a message was created. Payload `{message}`.
pub const MESSAGE_NEW: &str = "message:new";
/// Server → room: the author edited a message. Payload `{message}`.
pub const MESSAGE_UPDATED: &str = "message:updated";
/// Server → room: the author deleted a message. Payload `{threadId, messageId}`.
pub const MESSAGE_DELETED: &str = "message:deleted";
/// Server → room: `{threadId, userId, messageId}` when a read position moved.
pub const RECEIPT: &str = "receipt";
/// Server → room: a message's reactions changed. Payload `{threadId, messageId, reactions}`.
pub const REACTION_UPDATED: &str = "reaction:updated";
/// Server → each mentioned user's sockets, in the room or not: `{threadId, message}`.
pub const MENTION: &str = "mention";

/// An event for everyone in a thread's room.
#[derive(Debug, Clone, Copy)]
pub enum ThreadEvent<'a> {
    /// `message:new {message}`.
    New(&'a MessageView),
    /// `message:updated {message}`: the author edited it.
    Updated(&'a MessageView),
    /// `message:deleted {threadId, messageId}`: the author deleted it.
    Deleted {
        thread: &'a ThreadId,
        message: &'a MessageId,
    },
    /// `receipt {threadId, userId, messageId}`: a member's read position moved forward.
    Receipt {
        thread: &'a ThreadId,
        user: &'a UserId,
        message: &'a MessageId,
    },
    /// `reaction:updated {threadId, messageId, reactions}`: someone reacted or took it back.
    Reactions {
        thread: &'a ThreadId,
        message: &'a MessageId,
        reactions: &'a [ReactionView],
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted<'a> {
    thread_id: &'a ThreadId,
    message_id: &'a MessageId,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reactions<'a> {
    thread_id: &'a ThreadId,
    message_id: &'a MessageId,
    reactions: &'a [ReactionView],
}

/// `mention`'s payload: `{threadId, message}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mention<'a> {
    pub thread_id: &'a ThreadId,
    pub message: &'a MessageView,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt<'a> {
    thread_id: &'a ThreadId,
    user_id: &'a UserId,
    message_id: &'a MessageId,
}

/// What a socket receives with an event: shaped here, or as a peer serialized it.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Payload<'a> {
    Message(MessageEnvelope<'a>),
    Deleted(Deleted<'a>),
    Receipt(Receipt<'a>),
    Reactions(Reactions<'a>),
    Mention(Mention<'a>),
    Relayed(&'a RawValue),
}

impl<'a> ThreadEvent<'a> {
    pub fn name(&self) -> &'static str {
        match self {
            Self::New(_) => MESSAGE_NEW,
            Self::Updated(_) => MESSAGE_UPDATED,
            Self::Deleted { .. } => MESSAGE_DELETED,
            Self::Receipt { .. } => RECEIPT,
            Self::Reactions { .. } => REACTION_UPDATED,
        }
    }

    /// The event's payload, as every socket receives it.
    pub fn payload(&self) -> Payload<'a> {
        match *self {
            Self::New(message) | Self::Updated(message) => {
                Payload::Message(MessageEnvelope { message })
            }
            Self::Deleted { thread, message } => Payload::Deleted(Deleted {
                thread_id: thread,
                message_id: message,
            }),
            Self::Receipt {
                thread,
                user,
                message,
            } => Payload::Receipt(Receipt {
                thread_id: thread,
                user_id: user,
                message_id: message,
            }),
            Self::Reactions {
                thread,
                message,
                reactions,
            } => Payload::Reactions(Reactions {
                thread_id: thread,
                message_id: message,
                reactions,
            }),
        }
    }
}

/// This node's sockets, as the Socket.IO side offers them.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Sends an event to this node's sockets in the thread's room.
    async fn emit_local(&self, thread: &ThreadId, event: &str, payload: &Payload<'_>);
    /// Sends an event that needs no order (a receipt) to the thread's room on every node.
    async fn emit_everywhere(&self, thread: &ThreadId, event: &str, payload: &Payload<'_>);
    /// Sends an event to every socket of these users, on every node, whatever rooms they joined.
    async fn emit_to_users(&self, users: &[UserId], event: &str, payload: &Payload<'_>);
    /// Whether a socket of this node is in the thread's room.
    fn has_local(&self, thread: &ThreadId) -> bool;
    /// The identified users with a socket in the thread's room, on any node, sorted.
    async fn online(&self, thread: &ThreadId) -> Vec<UserId>;
}

/// The other nodes, with several: they deliver this node's message events to their sockets
/// through their own [`Fanout::relay`].
#[async_trait]
pub trait Peers: Send + Sync + 'static {
    /// Tells the other nodes of an event about the message at position `seq`.
    async fn publish(
        &self,
        thread: &ThreadId,
        event: &str,
        seq: u64,
        id: &MessageId,
        payload: &Payload<'_>,
    );
}

/// A thread's lane. `sent` is `None` while no socket of this node joined the thread: then
/// there is nobody to keep in order, and events go out as they come.
#[derive(Default)]
struct Lane {
    sent: Option<u64>,
}

pub struct Fanout {
    store: Arc<dyn Store>,
    lanes: DashMap<ThreadId, Arc<Mutex<Lane>>>,
    sink: OnceLock<Arc<dyn Sink>>,
    peers: OnceLock<Arc<dyn Peers>>,
}

impl Fanout {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            lanes: DashMap::new(),
            sink: OnceLock::new(),
            peers: OnceLock::new(),
        })
    }

    /// Connects this node's sockets and, with several nodes, the others. Called once, when the
    /// Socket.IO layer exists; from then on unused lanes are swept.
    pub fn attach(self: &Arc<Self>, sink: Arc<dyn Sink>, peers: Option<Arc<dyn Peers>>) {
        let _ = self.sink.set(sink);
        if let Some(peers) = peers {
            let _ = self.peers.set(peers);
        }
        let fanout: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                match fanout.upgrade() {
                    Some(fanout) => fanout.sweep(),
                    None => return,
                }
            }
        });
    }

    /// Takes the thread's turn: until the [`Turn`] is dropped, no event of the thread is
    /// stored or delivered by anyone else on this node.
    pub async fn turn(&self, thread: &ThreadId) -> Turn<'_> {
        // Clone the Arc out: the DashMap guard must not live across the `.await` on the lock.
        let lane = Arc::clone(&self.lanes.entry(thread.clone()).or_default());
        Turn {
            fanout: self,
            thread: thread.clone(),
            lane: lane.lock_owned().await,
        }
    }

    /// Delivers a peer's event about the message at `(seq, id)` to this node's sockets, in
    /// the thread's order (see the module doc).
    pub async fn relay(
        &self,
        thread: &ThreadId,
        event: &str,
        seq: u64,
        id: &MessageId,
        data: &RawValue,
    ) {
        let mut turn = self.turn(thread).await;
        if turn.order(event == MESSAGE_NEW, seq, id).await {
            turn.emit_local(event, &Payload::Relayed(data)).await;
        }
    }

    /// Sends an event that needs no order (a receipt) to the thread's room on every node.
    pub async fn broadcast(&self, thread: &ThreadId, event: ThreadEvent<'_>) {
        if let Some(sink) = self.sink.get() {
            sink.emit_everywhere(thread, event.name(), &event.payload())
                .await;
        }
    }

    /// Tells mentioned users, wherever their sockets are, of the message that mentions them.
    pub async fn mention(&self, users: &[UserId], thread: &ThreadId, message: &MessageView) {
        if users.is_empty() {
            return;
        }
        if let Some(sink) = self.sink.get() {
            let payload = Payload::Mention(Mention {
                thread_id: thread,
                message,
            });
            sink.emit_to_users(users, MENTION, &payload).await;
        }
    }

    /// The identified users with a socket in the thread's room, on any node.
    pub async fn online(&self, thread: &ThreadId) -> Vec<UserId> {
        match self.sink.get() {
            Some(sink) => sink.online(thread).await,
            None => Vec::new(),
        }
    }

    /// Sends this node's sockets, in every thread they follow, the stored messages they were
    /// not sent: after the link to the other nodes was down, their events are lost, the store
    /// is not.
    pub async fn catch_up_all(&self) {
        let followed: Vec<ThreadId> = self.lanes.iter().map(|lane| lane.key().clone()).collect();
        let mut caught_up = 0usize;
        for thread in followed {
            let mut turn = self.turn(&thread).await;
            if turn.lane.sent.is_none() {
                continue;
            }
            match self.store.last_message(&thread).await {
                Ok(Some(newest)) => {
                    if turn.lane.sent.is_some_and(|sent| sent < newest.seq) {
                        turn.catch_up_to(&newest).await;
                        caught_up += 1;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "catching up a thread after an outage failed"),
            }
        }
        if caught_up > 0 {
            tracing::info!(
                threads = caught_up,
                "caught up threads missed while cut off"
            );
        }
    }

    /// Forgets the lanes nobody holds or waits for whose thread has no socket on this node.
    /// A later turn starts a fresh lane, which the next join tracks from the store again.
    pub fn sweep(&self) {
        let Some(sink) = self.sink.get() else {
            return;
        };
        // `retain` holds the shard's write lock: nobody can clone a lane out meanwhile, so a
        // count of one means nobody holds or awaits it.
        self.lanes
            .retain(|thread, lane| Arc::strong_count(lane) > 1 || sink.has_local(thread));
    }

    /// Lanes kept now.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }
}

/// A thread's turn (see [`Fanout::turn`]).
pub struct Turn<'a> {
    fanout: &'a Fanout,
    thread: ThreadId,
    lane: OwnedMutexGuard<Lane>,
}

impl Turn<'_> {
    /// Before a socket of this node first enters the thread's room: its events start after the
    /// newest stored message. Returns [`Turn::position`].
    pub async fn track(&mut self) -> StoreResult<u64> {
        if self.lane.sent.is_none() {
            let newest = self.fanout.store.last_message(&self.thread).await?;
            self.lane.sent = Some(newest.map_or(0, |m| m.seq));
        }
        Ok(self.position())
    }

    /// The position of the newest message this node's sockets in the room have been sent:
    /// a socket entering now gets every message after it live.
    pub fn position(&self) -> u64 {
        self.lane.sent.unwrap_or(0)
    }

    /// Before a socket enters the room with a replay that runs to `newest`: the room's other
    /// sockets are sent what they lack up to there first, so that events up to it, still on
    /// their way from other nodes, can be dropped: the replay has them for this socket, the
    /// room already had them.
    pub async fn catch_up_to(&mut self, newest: &Message) {
        self.lane.sent.get_or_insert(newest.seq);
        if self.advance(newest.seq, &newest.id).await {
            self.send_current(&newest.id).await;
        }
    }

    /// Delivers this node's event about `message` (just stored) to its sockets and to the
    /// other nodes.
    pub async fn publish(&mut self, message: &Message, event: ThreadEvent<'_>) {
        let payload = event.payload();
        if self
            .order(
                matches!(event, ThreadEvent::New(_)),
                message.seq,
                &message.id,
            )
            .await
        {
            self.emit_local(event.name(), &payload).await;
        }
        if let Some(peers) = self.fanout.peers.get() {
            peers
                .publish(
                    &self.thread,
                    event.name(),
                    message.seq,
                    &message.id,
                    &payload,
                )
                .await;
        }
    }

    /// Readies this node's sockets for an event about the message at `(seq, id)`: sends them
    /// what they lack before it. Returns whether the event is for them: not a `message:new`
    /// they were sent already. An edit or deletion of a message they were never sent gets the
    /// message first, as it is now.
    async fn order(&mut self, new_message: bool, seq: u64, id: &MessageId) -> bool {
        let tracked = self.lane.sent.is_some();
        let unsent = self.advance(seq, id).await;
        if new_message {
            return unsent || !tracked;
        }
        if unsent {
            self.send_current(id).await;
        }
        true
    }

    /// Sends this node's sockets every stored message between the newest one they were sent
    /// and `(seq, id)`, oldest first, then records `seq` as sent. `false` (nothing sent) when
    /// `seq` was sent already or the lane is not tracked.
    async fn advance(&mut self, seq: u64, id: &MessageId) -> bool {
        let Some(sent) = self.lane.sent else {
            return false;
        };
        if seq <= sent {
            return false;
        }
        let gap = usize::try_from(seq - sent - 1).unwrap_or(usize::MAX);
        if gap > 0 {
            match self.missing(sent, id, gap.min(CATCH_UP_LIMIT)).await {
                Ok(views) => {
                    for view in &views {
                        let event = ThreadEvent::New(view);
                        self.emit_local(event.name(), &event.payload()).await;
                    }
                }
                // Better a hole than an order the store does not have: the socket's rejoin
                // fills it.
                Err(e) => tracing::warn!(error = %e, "catching up a thread's room failed"),
            }
        }
        self.lane.sent = Some(seq);
        true
    }

    /// The messages stored just before `before` and after position `after`, not deleted.
    async fn missing(
        &self,
        after: u64,
        before: &MessageId,
        limit: usize,
    ) -> StoreResult<Vec<MessageView>> {
        let store = self.fanout.store.as_ref();
        let window = store
            .messages(&self.thread, Anchor::Before(before.clone()), limit)
            .await?;
        let missing: Vec<Message> = window
            .items
            .into_iter()
            .filter(|m| m.seq > after && !m.is_deleted())
            .collect();
        views::shape(store, &missing).await
    }

    /// Sends a message this node's sockets were never sent, as it is now (nothing for a
    /// tombstone).
    async fn send_current(&self, id: &MessageId) {
        let store = self.fanout.store.as_ref();
        let shaped = match store.message(&self.thread, id).await {
            Ok(message) if message.is_deleted() => return,
            Ok(message) => views::shape(store, std::slice::from_ref(&message)).await,
            Err(e) => Err(e),
        };
        match shaped {
            Ok(views) => {
                for view in &views {
                    let event = ThreadEvent::New(view);
                    self.emit_local(event.name(), &event.payload()).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading a message to catch up failed"),
        }
    }

    async fn emit_local(&self, event: &str, payload: &Payload<'_>) {
        if let Some(sink) = self.fanout.sink.get() {
            sink.emit_local(&self.thread, event, payload).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use serde_json::Value;

    use super::*;
    use crate::{
        domain::{MemberSet, Thread, Timestamp},
        store::memory::MemoryStore,
    };

    /// Records what the fan-out sends to this node's sockets, and pretends a socket is in the
    /// rooms of `occupied`.
    #[derive(Default)]
    struct Recording {
        sent: StdMutex<Vec<(String, Value)>>,
        occupied: StdMutex<Vec<ThreadId>>,
    }

    impl Recording {
        /// `(event, message body or id)` in the order they were sent.
        fn taken(&self) -> Vec<(String, String)> {
            std::mem::take(&mut *self.sent.lock().unwrap())
                .into_iter()
                .map(|(event, payload)| {
                    let what = payload["message"]["body"]
                        .as_str()
                        .or(payload["messageId"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    (event, what)
                })
                .collect()
        }
    }

    #[async_trait]
    impl Sink for Recording {
        async fn emit_local(&self, _: &ThreadId, event: &str, payload: &Payload<'_>) {
            let payload = serde_json::to_value(payload).unwrap();
            self.sent.lock().unwrap().push((event.to_owned(), payload));
        }
        async fn emit_everywhere(&self, thread: &ThreadId, event: &str, payload: &Payload<'_>) {
            self.emit_local(thread, event, payload).await;
        }
        async fn emit_to_users(&self, _: &[UserId], event: &str, payload: &Payload<'_>) {
            let payload = serde_json::to_value(payload).unwrap();
            self.sent.lock().unwrap().push((event.to_owned(), payload));
        }
        fn has_local(&self, thread: &ThreadId) -> bool {
            self.occupied.lock().unwrap().contains(thread)
        }
        async fn online(&self, _: &ThreadId) -> Vec<UserId> {
            Vec::new()
        }
    }

    struct Setup {
        store: Arc<dyn Store>,
        fanout: Arc<Fanout>,
        sink: Arc<Recording>,
        thread: ThreadId,
    }

    async fn setup() -> Setup {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let fanout = Fanout::new(Arc::clone(&store));
        let sink = Arc::new(Recording::default());
        fanout.attach(sink.clone(), None);
        let members = MemberSet::new([UserId::anonymous()]).unwrap();
        let (thread, _) = store
            .create_or_resolve_thread(Thread::new(None, &members))
            .await
            .unwrap();
        Setup {
            store,
            fanout,
            sink,
            thread: thread.id,
        }
    }

    impl Setup {
        /// Stores a message without telling anyone, as another node would.
        async fn store_elsewhere(&self, body: &str) -> Message {
            let message = Message::new(
                self.thread.clone(),
                UserId::anonymous(),
                body.to_owned(),
                Timestamp::now(),
            );
            self.store.append_message(message).await.unwrap().0
        }

        /// Stores a message on this node and publishes it, as `Chat::post` does.
        async fn post_here(&self, body: &str) -> Message {
            let mut turn = self.fanout.turn(&self.thread).await;
            let message = self.store_elsewhere(body).await;
            let view = views::shape(self.store.as_ref(), std::slice::from_ref(&message))
                .await
                .unwrap()
                .remove(0);
            turn.publish(&message, ThreadEvent::New(&view)).await;
            message
        }

        /// A peer's `message:new` for `message`, as it arrives from the channel.
        async fn relay_new(&self, message: &Message) {
            let view = views::shape(self.store.as_ref(), std::slice::from_ref(message))
                .await
                .unwrap()
                .remove(0);
            let data = serde_json::to_string(&ThreadEvent::New(&view).payload()).unwrap();
            let data = RawValue::from_string(data).unwrap();
            self.fanout
                .relay(&self.thread, MESSAGE_NEW, message.seq, &message.id, &data)
                .await;
        }

        async fn relay_deleted(&self, message: &Message) {
            let event = ThreadEvent::Deleted {
                thread: &self.thread,
                message: &message.id,
            };
            let data = serde_json::to_string(&event.payload()).unwrap();
            let data = RawValue::from_string(data).unwrap();
            self.fanout
                .relay(
                    &self.thread,
                    MESSAGE_DELETED,
                    message.seq,
                    &message.id,
                    &data,
                )
                .await;
        }

        async fn join(&self) {
            self.fanout.turn(&self.thread).await.track().await.unwrap();
            self.sink.occupied.lock().unwrap().push(self.thread.clone());
        }
    }

    fn new(body: &str) -> (String, String) {
        (MESSAGE_NEW.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn one_node_delivers_each_post_once_in_order() {
        let s = setup().await;
        s.join().await;
        for body in ["a", "b", "c"] {
            s.post_here(body).await;
        }
        assert_eq!(s.sink.taken(), vec![new("a"), new("b"), new("c")]);
    }

    #[tokio::test]
    async fn a_gap_is_filled_from_the_store_before_the_event() {
        let s = setup().await;
        s.join().await;
        s.post_here("a").await;
        s.store_elsewhere("b").await;
        s.store_elsewhere("c").await;
        let d = s.store_elsewhere("d").await;
        s.relay_new(&d).await;
        assert_eq!(s.sink.taken(), vec![new("a"), new("b"), new("c"), new("d")]);
    }

    #[tokio::test]
    async fn late_peer_events_for_messages_already_sent_are_dropped() {
        let s = setup().await;
        s.join().await;
        let b = s.store_elsewhere("b").await;
        let c = s.store_elsewhere("c").await;
        s.relay_new(&c).await;
        // `b` came with the catch-up before `c`; its own event, late, is a duplicate.
        s.relay_new(&b).await;
        s.relay_new(&c).await;
        assert_eq!(s.sink.taken(), vec![new("b"), new("c")]);
    }

    #[tokio::test]
    async fn an_edit_arriving_before_its_message_sends_the_message_first() {
        let s = setup().await;
        s.join().await;
        let a = s.store_elsewhere("a").await;
        let mut edited = a.clone();
        edited.body = "a, edited".into();
        edited.edited_at = Some(Timestamp::now());
        edited.changed_at = edited.edited_at;
        s.store.replace_message(edited.clone()).await.unwrap();
        let view = views::shape(s.store.as_ref(), std::slice::from_ref(&edited))
            .await
            .unwrap()
            .remove(0);
        let data = serde_json::to_string(&ThreadEvent::Updated(&view).payload()).unwrap();
        let data = RawValue::from_string(data).unwrap();
        s.fanout
            .relay(&s.thread, MESSAGE_UPDATED, a.seq, &a.id, &data)
            .await;
        // The message as it is now, then the edit; its own `message:new`, late, is dropped.
        s.relay_new(&a).await;
        assert_eq!(
            s.sink.taken(),
            vec![
                new("a, edited"),
                (MESSAGE_UPDATED.to_owned(), "a, edited".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_deletion_of_a_message_never_sent_sends_no_tombstone_as_new() {
        let s = setup().await;
        s.join().await;
        let a = s.store_elsewhere("a").await;
        let mut gone = a.clone();
        gone.delete(Timestamp::now());
        s.store.replace_message(gone).await.unwrap();
        s.relay_deleted(&a).await;
        assert_eq!(
            s.sink.taken(),
            vec![(MESSAGE_DELETED.to_owned(), a.id.to_string())]
        );
    }

    #[tokio::test]
    async fn edits_of_messages_already_sent_are_delivered_as_they_come() {
        let s = setup().await;
        s.join().await;
        let a = s.post_here("a").await;
        s.relay_deleted(&a).await;
        s.relay_deleted(&a).await;
        let deleted = (MESSAGE_DELETED.to_owned(), a.id.to_string());
        assert_eq!(s.sink.taken(), vec![new("a"), deleted.clone(), deleted]);
    }

    #[tokio::test]
    async fn a_join_starts_after_the_newest_stored_message() {
        let s = setup().await;
        s.store_elsewhere("before").await;
        s.join().await;
        let b = s.store_elsewhere("b").await;
        s.relay_new(&b).await;
        assert_eq!(s.sink.taken(), vec![new("b")]);
    }

    #[tokio::test]
    async fn a_rejoin_catches_the_room_up_to_its_replay() {
        let s = setup().await;
        s.join().await;
        s.store_elsewhere("a").await;
        let b = s.store_elsewhere("b").await;
        s.fanout.turn(&s.thread).await.catch_up_to(&b).await;
        // The room got both; their events, arriving now, are dropped.
        s.relay_new(&b).await;
        assert_eq!(s.sink.taken(), vec![new("a"), new("b")]);
    }

    #[tokio::test]
    async fn an_untracked_thread_passes_events_through_as_they_come() {
        let s = setup().await;
        let a = s.post_here("a").await;
        s.relay_new(&a).await;
        assert_eq!(s.sink.taken(), vec![new("a"), new("a")]);
    }

    #[tokio::test]
    async fn lanes_without_local_sockets_are_swept() {
        let s = setup().await;
        s.join().await;
        let idle = ThreadId::generate();
        drop(s.fanout.turn(&idle).await);
        assert_eq!(s.fanout.lanes(), 2);
        s.fanout.sweep();
        assert_eq!(s.fanout.lanes(), 1, "the joined thread's lane stays");
        s.sink.occupied.lock().unwrap().clear();
        s.fanout.sweep();
        assert_eq!(s.fanout.lanes(), 0);
    }

    #[tokio::test]
    async fn a_held_lane_is_not_swept() {
        let s = setup().await;
        let turn = s.fanout.turn(&s.thread).await;
        s.fanout.sweep();
        assert_eq!(s.fanout.lanes(), 1);
        drop(turn);
    }
}
