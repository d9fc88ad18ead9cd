//! The default namespace's event table and its handlers.
//!
//! Every event with an ack callback gets `{ok: true, ...}` or `{error: "<code>"}`; a malformed
//! payload gets an error ack (or nothing, without a callback) and never disconnects anyone.
//! Handlers work out what to do and return a `Result`; [`reply`] makes it the ack, once.

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef, State, TryData},
    socket::Sid,
};

use super::{
    Identities, Typing,
    admin::Admin,
    events::{
        self, Ack, MESSAGE_SEND, REACTION_ADD, REACTION_REMOVE, THREAD_JOIN, THREAD_LEAVE,
        THREAD_READ, TYPING, TypingPayload,
    },
    handshake::client_ip,
    identities::Identified,
    presence::Presence,
    rooms,
};
use crate::{
    chat::{Change, Replay},
    config::Config,
    domain::{Actor, MessageId, NewMessage, ThreadId, UserId, message::ClientMessageId},
    error::{ApiError, Result},
    fanout::ThreadEvent,
    limits::{KeyedRate, defaults},
    metrics::Metrics,
    state::AppState,
};

/// How many events one socket may send (`--event-rate-per-socket`); `message:send` is left to
/// the post rates. Registered as socketioxide state.
pub struct EventRate(KeyedRate<Sid>);

impl EventRate {
    pub fn from_config(config: &Config, metrics: &Metrics) -> Self {
        Self(KeyedRate::new(
            config.event_rate_per_socket,
            defaults::EVENTS_PER_SOCKET,
            metrics.refusals("events_per_socket"),
        ))
    }

    /// Forgets a socket that went away.
    pub fn sweep_periodically(self: &Arc<Self>) {
        let rate = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                match rate.upgrade() {
                    Some(rate) => rate.0.sweep(),
                    None => return,
                }
            }
        });
    }
}

/// Registers the event table on a socket being admitted.
pub(super) fn register<A: Adapter>(socket: &SocketRef<A>) {
    socket.on_fallback(on_event::<A>);
}

/// The event table: every client event goes through this one dispatch, registered as the
/// socket's fallback handler. Registering each event with `socket.on` would build the same
/// five-entry map in every socket (~350 bytes per held connection); a `match` costs nothing
/// per socket. Events not listed are ignored, as they would be with no handler.
// Each argument is an extractor: socketioxide hands a handler its state this way.
#[allow(clippy::too_many_arguments)]
async fn on_event<A: Adapter>(
    socket: SocketRef<A>,
    Event(event): Event,
    State(state): State<AppState>,
    State(identities): State<Arc<Identities>>,
    State(typing): State<Arc<Typing>>,
    State(presence): State<Arc<Presence>>,
    State(rate): State<Arc<EventRate>>,
    State(admin): State<Arc<Admin>>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
) {
    if event != MESSAGE_SEND
        && let Err(limited) = rate.0.check(&socket.id)
    {
        // Dropped before any work: a flood costs a bucket check per event.
        reply(ack, Err(ApiError::RateLimited(limited)));
        return;
    }
    let payload = payload.ok();
    admin.received(socket.id, &event, payload.as_ref());
    let socket = Socket {
        actor: actor(&socket, &state, &identities),
        socket,
        state,
        identities,
        typing,
        presence,
        admin,
    };
    match event.as_str() {
        THREAD_JOIN => socket.join(payload, ack).await,
        THREAD_LEAVE => socket.leave(payload, ack).await,
        MESSAGE_SEND => _ = reply(ack, socket.send(typed(payload)).await),
        TYPING => _ = reply(ack, socket.typing(typed(payload)).await),
        THREAD_READ => _ = reply(ack, socket.read(typed(payload)).await),
        REACTION_ADD => _ = reply(ack, socket.react(typed(payload), true).await),
        REACTION_REMOVE => _ = reply(ack, socket.react(typed(payload), false).await),
        _ => tracing::debug!(sid = %socket.socket.id, event, "event without a handler"),
    }
}

/// The one conversion from a handler's result to its ack. Returns whether it succeeded.
fn reply<A: Adapter>(ack: AckSender<A>, result: Result<Ack>) -> bool {
    let _ = match &result {
        Ok(body) => ack.send(body),
        Err(e) => ack.send(&Ack::from(e)),
    };
    result.is_ok()
}

/// An event's payload as the handler's type; `None` when it does not fit.
fn typed<T: DeserializeOwned>(payload: Option<Value>) -> Option<T> {
    serde_json::from_value(payload?).ok()
}

/// A payload that does not fit: the ack carries `code`.
fn invalid(code: &'static str) -> ApiError {
    ApiError::bad_request(code, "the event's payload does not fit")
}

/// Who the socket acts as: its user in `jwt` mode (verified), else the user it named, or the
/// stub's anonymous `"me"`.
fn actor<A: Adapter>(socket: &SocketRef<A>, state: &AppState, identities: &Identities) -> Actor {
    let ip = client_ip(state, socket);
    match identities.get(socket.id) {
        Some(user) => Actor {
            user,
            verified: state.auth.is_some(),
            ip,
        },
        None => Actor::anonymous(ip),
    }
}

/// A socket handling one event, with what it needs.
struct Socket<A: Adapter> {
    socket: SocketRef<A>,
    actor: Actor,
    state: AppState,
    identities: Arc<Identities>,
    typing: Arc<Typing>,
    presence: Arc<Presence>,
    admin: Arc<Admin>,
}

impl<A: Adapter> Socket<A> {
    /// The socket's user, for the events that need one.
    fn user(&self) -> Result<UserId> {
        self.identities
            .get(self.socket.id)
            .ok_or_else(|| invalid("identity_required"))
    }

    /// `thread:join {threadId, after?, since?}` → joins room `thread:<threadId>`; the ack is
    /// `{ok: true, seq}` with the newest position at joining. With `after` (the position of the
    /// last message the client saw, 0 for none) or `since` (its id), first replays what it
    /// missed: edits and deletions of what it had seen (`message:updated` /
    /// `message:deleted`), then every later message (`message:new`), oldest first, at most
    /// `--replay-limit`; the ack adds `replayed` (and `truncated: true` past the limit).
    async fn join(&self, payload: Option<Value>, ack: AckSender<A>) {
        let entered = self.enter(payload).await;
        let thread = entered.as_ref().ok().map(|(thread, _)| thread.clone());
        if !reply(ack, entered.map(|(_, body)| body)) {
            return;
        }
        let Some(thread) = thread else { return };
        self.admin
            .room(self.socket.id, &rooms::thread_room(&thread), true);
        if self.identities.get(self.socket.id).is_some() {
            self.identities.joined(self.socket.id, &thread);
            self.presence.changed(&self.socket, &thread);
        }
    }

    async fn enter(&self, payload: Option<Value>) -> Result<(ThreadId, Ack)> {
        let payload = payload.ok_or_else(|| invalid("invalid_payload"))?;
        let thread = events::thread_id(&payload).map_err(invalid)?;
        let since = events::since(&payload).map_err(invalid)?;
        let socket = &self.socket;
        let chat = &self.state.chat;
        let room = rooms::thread_room(&thread);
        // One socket cannot make the node hold rooms without bound.
        let joined = socket.rooms();
        if !joined.iter().any(|r| *r == room)
            && joined.iter().filter(|r| rooms::is_thread_room(r)).count()
                >= self.state.config.max_rooms_per_socket
        {
            return Err(invalid("too_many_rooms"));
        }
        let body = match since {
            None => {
                let seq = chat
                    .join(&self.actor, &thread, || socket.join(room))
                    .await?;
                Ack::entered(seq)
            }
            Some(since) => {
                let cap = self.state.config.replay_limit;
                let (_, replay) = chat
                    .rejoin(&self.actor, &thread, &since, cap, |replay| {
                        socket.join(room);
                        replay_to(socket, replay);
                    })
                    .await?;
                Ack::rejoined(replay.len(), replay.truncated, replay.seq)
            }
        };
        Ok((thread, body))
    }

    /// `thread:leave {threadId}` → leaves room `thread:<threadId>`; ack `{ok}` or `{error}`.
    async fn leave(&self, payload: Option<Value>, ack: AckSender<A>) {
        let thread = payload
            .ok_or("invalid_payload")
            .and_then(|p| events::thread_id(&p));
        let thread = match thread {
            Ok(thread) => thread,
            Err(code) => {
                reply(ack, Err(invalid(code)));
                return;
            }
        };
        // Out of the room before the ack: once answered, nothing more arrives from it.
        let socket = &self.socket;
        let room = rooms::thread_room(&thread);
        let was_in = socket.rooms().iter().any(|r| *r == room);
        socket.leave(room.clone());
        reply(ack, Ok(Ack::ok()));
        if was_in {
            self.admin.room(socket.id, &room, false);
        }
        if was_in && let Some(user) = self.identities.get(socket.id) {
            self.identities.left(socket.id, &thread);
            if self.typing.stop(&thread, &user) {
                send_typing(socket, &thread, &user, false).await;
            }
            self.presence.changed(socket, &thread);
        }
    }

    /// `message:send {threadId, body, fileIds?, clientMessageId?, replyTo?, mentions?}` → the
    /// same access rules,
    /// validation, idempotency, storage and broadcast as `POST /api/threads/:id/messages`
    /// (through `Chat::post`); ack `{ok: true, message}` or `{error}`.
    async fn send(&self, payload: Option<events::SendMessage>) -> Result<Ack> {
        let req = payload.ok_or_else(|| invalid("invalid_payload"))?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| invalid("invalid_thread_id"))?;
        let posted = self
            .state
            .chat
            .post(&self.actor, &thread, |author| {
                let key = match req.client_message_id.as_deref() {
                    None => None,
                    Some(raw) => Some(
                        ClientMessageId::parse(raw)
                            .ok_or_else(|| invalid("invalid_client_message_id"))?,
                    ),
                };
                let files = req.file_ids.unwrap_or_default();
                let mentions = req.mentions.unwrap_or_default();
                Ok(
                    NewMessage::new(author.clone(), req.body.as_deref(), &files)?
                        .with_client_id(key)
                        .replying_to(req.reply_to.as_deref())?
                        .mentioning(&mentions)?,
                )
            })
            .await?;
        Ok(Ack::sent(posted.view))
    }

    /// `typing {threadId, typing}` → the others in the room get `typing {threadId, userId,
    /// typing}`. A `true` not renewed within 5 s turns into `false` by itself. Needs a user.
    ///
    /// The change is recorded and sent to the room before the ack: a client that awaits the
    /// ack of `true` and then sends `false` is sure the others hear them in that order.
    async fn typing(&self, payload: Option<TypingPayload>) -> Result<Ack> {
        let req = payload.ok_or_else(|| invalid("invalid_payload"))?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| invalid("invalid_thread_id"))?;
        let user = self.user()?;
        self.state.chat.gate(&self.actor, &thread).await?;
        let socket = &self.socket;
        if !req.typing {
            if self.typing.stop(&thread, &user) {
                send_typing(socket, &thread, &user, false).await;
            }
            return Ok(Ack::ok());
        }
        let (on, about, who) = (socket.clone(), thread.clone(), user.clone());
        let on_expiry = Box::new(move || {
            tokio::spawn(async move { send_typing(&on, &about, &who, false).await });
        });
        self.typing.start(&thread, &user, on_expiry);
        send_typing(socket, &thread, &user, true).await;
        Ok(Ack::ok())
    }

    /// `reaction:add` / `reaction:remove {threadId, messageId, emoji}` → the same rules as the
    /// REST reaction routes (through `Chat::react`); ack `{ok: true, messageId, reactions}`.
    async fn react(&self, payload: Option<events::React>, add: bool) -> Result<Ack> {
        let req = payload.ok_or_else(|| invalid("invalid_payload"))?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| invalid("invalid_thread_id"))?;
        let message =
            MessageId::parse(&req.message_id).map_err(|_| invalid("invalid_message_id"))?;
        let reacted = self
            .state
            .chat
            .react(&self.actor, &thread, &message, &req.emoji, add)
            .await?;
        Ok(Ack::reacted(reacted.message, reacted.reactions))
    }

    /// `thread:read {threadId, messageId}` → moves the user's read position forward (never
    /// back) and, when it moved, sends `receipt {threadId, userId, messageId}` to the room.
    /// Ack `{ok: true, messageId}` with the position afterwards. Needs a user.
    async fn read(&self, payload: Option<events::Read>) -> Result<Ack> {
        let req = payload.ok_or_else(|| invalid("invalid_payload"))?;
        let thread = ThreadId::parse(&req.thread_id).map_err(|_| invalid("invalid_thread_id"))?;
        let message =
            MessageId::parse(&req.message_id).map_err(|_| invalid("invalid_message_id"))?;
        self.user()?;
        let position = self
            .state
            .chat
            .mark_read(&self.actor, &thread, &message)
            .await?;
        Ok(Ack::read(position))
    }
}

/// Emits a replay to one socket, in order: changes first, then new messages.
fn replay_to<A: Adapter>(socket: &SocketRef<A>, replay: &Replay) {
    let changes = replay.changed.iter().map(|change| match change {
        Change::Updated(view) => ThreadEvent::Updated(view),
        Change::Deleted(thread, message) => ThreadEvent::Deleted { thread, message },
    });
    for event in changes.chain(replay.new.iter().map(ThreadEvent::New)) {
        if let Err(e) = socket.emit(event.name(), &event.payload()) {
            // Its queue is full: it is not reading. Close it rather than leave a hole in what
            // it received; it rejoins with the same `since` when it reads again.
            tracing::info!(sid = %socket.id, error = %e, "replay did not fit: disconnecting");
            let _ = socket.clone().disconnect();
            return;
        }
    }
}

/// An identified socket went away: its typing stops and its user may go offline in each of its
/// threads. Then it is forgotten.
pub(super) async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    State(identities): State<Arc<Identities>>,
    State(typing): State<Arc<Typing>>,
    State(presence): State<Arc<Presence>>,
) {
    let Some(Identified { user, threads }) = identities.remove(socket.id) else {
        return;
    };
    for thread in threads {
        if typing.stop(&thread, &user) {
            send_typing(&socket, &thread, &user, false).await;
        }
        presence.changed(&socket, &thread);
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypingEvent<'a> {
    thread_id: &'a ThreadId,
    user_id: &'a UserId,
    typing: bool,
}

/// Tells the others in the thread's room (not this user's own sockets) whether `user` types.
async fn send_typing<A: Adapter>(
    socket: &SocketRef<A>,
    thread: &ThreadId,
    user: &UserId,
    typing: bool,
) {
    let event = TypingEvent {
        thread_id: thread,
        user_id: user,
        typing,
    };
    let _ = socket
        .to(rooms::thread_room(thread))
        .except(rooms::user_room(user))
        .volatile()
        .emit(TYPING, &event)
        .await;
}
