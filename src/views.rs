//! Wire shapes: every JSON object a client sees, in one place, shared by REST and Socket.IO so a
//! broadcast carries exactly what the REST response carries.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    domain::{
        Account, AccountName, FileId, FileRecord, FileStatus, Message, Reaction, Thread, Timestamp,
        UserId,
    },
    store::{Store, StoreResult},
};

/// A file as the stub shows it: `{id, name, url, status}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = File)]
pub struct FileView {
    #[schema(value_type = String)]
    pub id: FileId,
    pub name: String,
    pub url: String,
    pub status: FileStatus,
}

impl From<&FileRecord> for FileView {
    fn from(f: &FileRecord) -> Self {
        Self {
            id: f.id.clone(),
            name: f.name.clone(),
            url: f.url(),
            status: f.status,
        }
    }
}

/// One emoji on a message: `{emoji, count, userIds}`, `userIds` in the order they reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Reaction)]
pub struct ReactionView {
    /// One grapheme (`👍`) or a `:short_code:`.
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<String>,
}

impl ReactionView {
    pub fn all(reactions: &[Reaction]) -> Vec<Self> {
        reactions
            .iter()
            .map(|r| Self {
                emoji: r.emoji.as_str().to_owned(),
                count: r.user_ids.len(),
                user_ids: r.user_ids.iter().map(UserId::to_string).collect(),
            })
            .collect()
    }
}

/// The threads API's message: `{id, threadId, authorId, body, fileIds, files, createdAt}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Message)]
pub struct MessageView {
    pub id: String,
    pub thread_id: String,
    pub author_id: String,
    pub body: String,
    #[schema(value_type = Vec<String>)]
    pub file_ids: Vec<FileId>,
    pub files: Vec<FileView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The message's 1-based position in its thread: the order of history (ids are not).
    pub seq: u64,
    /// Present when the sender gave one, so optimistic UIs can match their pending message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// When the author last edited the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<Timestamp>,
    /// A tombstone: the author deleted the message (`body` is empty, `fileIds` too).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Timestamp>,
    /// The message of the same thread this one replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// How many replies answer this message (deleted ones included, as tombstones).
    pub reply_count: u64,
    /// The members the author mentioned.
    pub mentions: Vec<String>,
    pub reactions: Vec<ReactionView>,
}

impl MessageView {
    /// Shapes a message; `files` holds the records of (at least) its `file_ids`.
    pub fn new(m: &Message, files: &HashMap<FileId, FileRecord>) -> Self {
        Self {
            id: m.id.to_string(),
            thread_id: m.thread_id.to_string(),
            author_id: m.author_id.to_string(),
            body: m.body.clone(),
            file_ids: m.file_ids.clone(),
            files: m
                .file_ids
                .iter()
                .filter_map(|id| files.get(id).map(FileView::from))
                .collect(),
            created_at: m.created_at,
            seq: m.seq,
            client_message_id: m.client_id.as_ref().map(|k| k.as_str().to_owned()),
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            reply_to: m.reply_to.as_ref().map(ToString::to_string),
            reply_count: m.reply_count,
            mentions: m.mentions.iter().map(UserId::to_string).collect(),
            reactions: ReactionView::all(&m.reactions),
        }
    }
}

/// Shapes stored messages, fetching their files in one call.
pub async fn shape(store: &dyn Store, messages: &[Message]) -> StoreResult<Vec<MessageView>> {
    let ids: Vec<FileId> = messages
        .iter()
        .flat_map(|m| m.file_ids.iter().cloned())
        .collect();
    let files = files_by_id(store, &ids).await?;
    Ok(messages
        .iter()
        .map(|m| MessageView::new(m, &files))
        .collect())
}

/// The records of `ids`, by id; `FileNotFound` when one names no file.
pub async fn files_by_id(
    store: &dyn Store,
    ids: &[FileId],
) -> StoreResult<HashMap<FileId, FileRecord>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let files = store.files(ids).await?;
    Ok(files.into_iter().map(|f| (f.id.clone(), f)).collect())
}

/// `{message}`: the body of `POST /api/threads/:id/messages` and of the `message:new` event.
#[derive(Debug, Clone, Serialize)]
pub struct MessageEnvelope<'a> {
    pub message: &'a MessageView,
}

/// The stub's thread: `{id, title, memberIds, memberNames, createdAt, updatedAt}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Thread)]
pub struct ThreadView {
    pub id: String,
    pub title: Option<String>,
    pub member_ids: Vec<String>,
    /// Account names where the member is an account, else the id (the stub's behaviour).
    pub member_names: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// On `GET /api/threads/:id`: messages after the caller's read position that others wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<u64>,
    /// On `GET /api/threads/:id`: those of them that mention the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_mentions: Option<u64>,
}

impl ThreadView {
    pub fn new(t: &Thread, names: &HashMap<UserId, AccountName>) -> Self {
        Self {
            id: t.id.to_string(),
            title: t.title.clone(),
            member_ids: t.member_ids.iter().map(UserId::to_string).collect(),
            member_names: t
                .member_ids
                .iter()
                .map(|id| display_name(id, names))
                .collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            unread_count: None,
            unread_mentions: None,
        }
    }
}

fn display_name(id: &UserId, names: &HashMap<UserId, AccountName>) -> String {
    names
        .get(id)
        .map(|n| n.as_str().to_owned())
        .unwrap_or_else(|| id.to_string())
}

/// The accounts API's account: `{id, name}`; also a participant and a sender.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountView {
    pub id: String,
    pub name: String,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name.as_str().to_owned(),
        }
    }
}

impl AccountView {
    /// A user who may or may not have an account: unnamed users show their id as their name.
    pub fn of(id: &UserId, names: &HashMap<UserId, AccountName>) -> Self {
        Self {
            id: id.to_string(),
            name: display_name(id, names),
        }
    }
}

/// The accounts API's message: `{id, sender: {id, name}, text, ts}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ChatMessage)]
pub struct ChatMessageView {
    pub id: String,
    pub sender: AccountView,
    pub text: String,
    /// Milliseconds since the epoch.
    pub ts: i64,
    /// The message's 1-based position in its conversation (an addition to the README's shape).
    pub seq: u64,
    /// When the author last edited `text` (milliseconds since the epoch).
    #[serde(rename = "editedTs", skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<i64>,
    /// A tombstone: the author deleted the message (`text` is empty).
    #[serde(rename = "deletedTs", skip_serializing_if = "Option::is_none")]
    pub deleted_ts: Option<i64>,
    /// The message of the same conversation this one replies to. (Like `editedTs`, the chat
    /// features' fields appear only when set, so the README's shape is unchanged otherwise.)
    #[serde(rename = "replyTo", skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// How many replies answer this message, when any do.
    #[serde(rename = "replyCount", skip_serializing_if = "is_zero")]
    pub reply_count: u64,
    /// The participants the sender mentioned, when any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// The message's reactions, when it has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionView>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ChatMessageView {
    pub fn new(m: &Message, names: &HashMap<UserId, AccountName>) -> Self {
        Self {
            id: m.id.to_string(),
            sender: AccountView::of(&m.author_id, names),
            text: m.body.clone(),
            ts: m.created_at.as_millis(),
            seq: m.seq,
            edited_ts: m.edited_at.map(Timestamp::as_millis),
            deleted_ts: m.deleted_at.map(Timestamp::as_millis),
            reply_to: m.reply_to.as_ref().map(ToString::to_string),
            reply_count: m.reply_count,
            mentions: m.mentions.iter().map(UserId::to_string).collect(),
            reactions: ReactionView::all(&m.reactions),
        }
    }
}

/// The accounts API's conversation: `{id, participants, lastMessage?}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Conversation)]
pub struct ConversationView {
    pub id: String,
    pub participants: Vec<AccountView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<ChatMessageView>,
    /// Messages after the caller's read position that others wrote (see `thread:read`).
    pub unread_count: u64,
    /// Those of them that mention the caller.
    pub unread_mentions: u64,
}
