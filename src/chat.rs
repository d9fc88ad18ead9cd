//! The one path by which a message comes to exist: validate → store → broadcast.
//!
//! Every API that creates a message (the threads REST API, the accounts REST API) calls
//! [`Chat::post`], so validation, storage and the `message:new` broadcast cannot drift apart.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use dashmap::DashMap;
use tokio::sync::Mutex;

use crate::{
    domain::{FileId, FileRecord, Message, MessageId, NewMessage, ThreadId, Timestamp},
    error::{ApiError, Result},
    realtime::Realtime,
    store::{Store, StoreError},
    views::MessageView,
};

/// A stored message and its threads-API shape (what was broadcast).
pub struct Posted {
    pub message: Message,
    pub view: MessageView,
    /// `false` when an idempotent retry returned the original message (nothing was broadcast).
    pub created: bool,
}

pub struct Chat {
    store: Arc<dyn Store>,
    /// Set once at start-up: the Socket.IO server is built after the state it carries.
    realtime: OnceLock<Arc<dyn Realtime>>,
    /// One lock per thread, held from the append to the broadcast, so concurrent posts to a
    /// thread are broadcast in exactly the order they were stored.
    sequencers: DashMap<ThreadId, Arc<Mutex<()>>>,
}

impl Chat {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            realtime: OnceLock::new(),
            sequencers: DashMap::new(),
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

    /// Stores a new message in `thread` and broadcasts it to the thread's room.
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
        };
        // A 201 means stored: on a durable backend the append has committed before this
        // returns, and so before anyone hears of the message.
        let (message, created) = self.store.append_message(message).await?;
        let view = MessageView::new(&message, &files);
        if created && let Some(realtime) = self.realtime.get() {
            realtime.broadcast_new_message(&view).await;
        }
        Ok(Posted {
            message,
            view,
            created,
        })
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
