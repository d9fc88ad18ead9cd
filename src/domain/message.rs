//! Messages: the one stored record both REST faces and the socket show.

use super::{FileId, MessageId, ThreadId, Timestamp, UserId, reaction::Reaction};

/// Longest message body accepted, in bytes after trimming.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most files one message may reference.
pub const MAX_FILES_PER_MESSAGE: usize = 20;
/// Most users one message may mention.
pub const MAX_MENTIONS: usize = 50;

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub author_id: UserId,
    pub body: String,
    pub file_ids: Vec<FileId>,
    pub created_at: Timestamp,
    /// The sender's idempotency key: a retry with the same key returns this message.
    pub client_id: Option<ClientMessageId>,
    /// When the author last changed the body.
    pub edited_at: Option<Timestamp>,
    /// When the author deleted the message; it stays in history as a tombstone (empty body,
    /// no files) so cursors and positions keep working.
    pub deleted_at: Option<Timestamp>,
    /// Its place in the thread, from 1: the store assigns it on append (what the caller passes
    /// is ignored), and every node sees the same order.
    pub seq: u64,
    /// The message of the same thread this one answers.
    pub reply_to: Option<MessageId>,
    /// How many replies answer this message (the store counts them).
    pub reply_count: u64,
    /// Members of the thread the author called out; each is told, wherever they are.
    pub mentions: Vec<UserId>,
    pub reactions: Vec<Reaction>,
    /// The last change of any kind after creation (edit, deletion, reaction, reply count): a
    /// rejoining client is sent the messages it saw that changed since.
    pub changed_at: Option<Timestamp>,
}

impl Message {
    /// A new message, not yet stored (the store assigns `seq`).
    pub fn new(
        thread_id: ThreadId,
        author_id: UserId,
        body: String,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id: MessageId::generate(),
            thread_id,
            author_id,
            body,
            file_ids: Vec::new(),
            created_at,
            client_id: None,
            edited_at: None,
            deleted_at: None,
            seq: 0,
            reply_to: None,
            reply_count: 0,
            mentions: Vec::new(),
            reactions: Vec::new(),
            changed_at: None,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Replaces the body (an edit by the author).
    pub fn edit(&mut self, body: MessageBody, at: Timestamp) {
        self.body = body.0;
        self.edited_at = Some(at);
        self.changed_at = Some(at);
    }

    /// Turns the message into its tombstone.
    pub fn delete(&mut self, at: Timestamp) {
        self.body.clear();
        self.file_ids.clear();
        self.reactions.clear();
        self.deleted_at = Some(at);
        self.changed_at = Some(at);
    }
}

/// A client-chosen idempotency key (`clientMessageId` or the `Idempotency-Key` header), unique
/// per thread and author.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMessageId(String);

/// Longest idempotency key accepted.
pub const MAX_CLIENT_ID_LEN: usize = 128;

impl ClientMessageId {
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (!raw.is_empty() && raw.len() <= MAX_CLIENT_ID_LEN && !raw.chars().any(char::is_control))
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A trimmed message body, possibly empty when the message carries files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

/// Why a message cannot be posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// Blank body and no files (the stub's `empty_message`).
    Empty,
    TooLong,
    TooManyFiles,
    /// A NUL character: no database stores it as text, and no chat needs it.
    NulCharacter,
    /// Another control character (C0 or C1) than newline, carriage return and tab: they hide
    /// text, move the cursor or ring terminals, and no chat needs them.
    ControlCharacter,
    /// A file id that cannot name any file.
    UnknownFile,
    /// A mentioned id that cannot name a user, or too many of them.
    InvalidMention,
    /// A `replyTo` that cannot name a message.
    InvalidReplyTo,
}

impl MessageBody {
    /// Validates a body as a client sent it: trimmed, bounded, no NUL, and not blank unless the
    /// message carries files (the stub's rule).
    pub fn parse(body: Option<&str>, has_files: bool) -> Result<Self, MessageError> {
        let body = body.unwrap_or("").trim();
        if body.contains('\0') {
            return Err(MessageError::NulCharacter);
        }
        if body
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(MessageError::ControlCharacter);
        }
        if body.is_empty() && !has_files {
            return Err(MessageError::Empty);
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(MessageError::TooLong);
        }
        Ok(Self(body.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated message, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub author_id: UserId,
    pub body: MessageBody,
    pub file_ids: Vec<FileId>,
    pub client_id: Option<ClientMessageId>,
    pub reply_to: Option<MessageId>,
    /// Distinct, in the order given.
    pub mentions: Vec<UserId>,
}

impl NewMessage {
    /// Validates a post as a client sent it (REST or socket): the stub's rule (a message needs
    /// text or files), the size bounds, and the file ids.
    pub fn new(
        author_id: UserId,
        body: Option<&str>,
        file_ids: &[impl AsRef<str>],
    ) -> Result<Self, MessageError> {
        let file_ids = file_ids
            .iter()
            .map(|raw| FileId::parse(raw.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| MessageError::UnknownFile)?;
        let body = MessageBody::parse(body, !file_ids.is_empty())?;
        if file_ids.len() > MAX_FILES_PER_MESSAGE {
            return Err(MessageError::TooManyFiles);
        }
        Ok(Self {
            author_id,
            body,
            file_ids,
            client_id: None,
            reply_to: None,
            mentions: Vec::new(),
        })
    }

    /// Makes the post idempotent under `key`.
    pub fn with_client_id(mut self, key: Option<ClientMessageId>) -> Self {
        self.client_id = key;
        self
    }

    /// Makes the post a reply to `parent` (a message id as the client sent it).
    pub fn replying_to(mut self, parent: Option<&str>) -> Result<Self, MessageError> {
        self.reply_to = parent
            .map(|raw| MessageId::parse(raw).map_err(|_| MessageError::InvalidReplyTo))
            .transpose()?;
        Ok(self)
    }

    /// Mentions these users (ids as the client sent them); membership is checked by `chat`.
    pub fn mentioning(mut self, ids: &[impl AsRef<str>]) -> Result<Self, MessageError> {
        if ids.len() > MAX_MENTIONS {
            return Err(MessageError::InvalidMention);
        }
        let mut mentions: Vec<UserId> = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = UserId::parse(raw.as_ref()).map_err(|_| MessageError::InvalidMention)?;
            if !mentions.contains(&id) {
                mentions.push(id);
            }
        }
        self.mentions = mentions;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_body_without_files_is_empty() {
        let err = NewMessage::new(UserId::anonymous(), Some("  \n "), &[] as &[&str]).unwrap_err();
        assert_eq!(err, MessageError::Empty);
    }

    #[test]
    fn control_characters_other_than_line_breaks_and_tabs_are_refused() {
        for bad in ["a\u{1b}[2Jb", "a\u{7}b", "a\u{85}b", "a\u{9b}b"] {
            let err = NewMessage::new(UserId::anonymous(), Some(bad), &[] as &[&str]).unwrap_err();
            assert_eq!(err, MessageError::ControlCharacter, "{bad:?}");
        }
        NewMessage::new(
            UserId::anonymous(),
            Some("line\r\nnext\tcolumn"),
            &[] as &[&str],
        )
        .unwrap();
    }

    #[test]
    fn nul_characters_are_refused() {
        let err = NewMessage::new(UserId::anonymous(), Some("a\0b"), &[] as &[&str]).unwrap_err();
        assert_eq!(err, MessageError::NulCharacter);
    }

    #[test]
    fn body_is_trimmed() {
        let m = NewMessage::new(UserId::anonymous(), Some("  hi "), &[] as &[&str]).unwrap();
        assert_eq!(m.body.as_str(), "hi");
    }

    #[test]
    fn files_alone_make_a_message() {
        let f = FileId::generate();
        assert!(NewMessage::new(UserId::anonymous(), None, &[f.as_str()]).is_ok());
        assert_eq!(
            NewMessage::new(UserId::anonymous(), Some("x"), &["not an id"]).unwrap_err(),
            MessageError::UnknownFile
        );
    }
}
