//! Validated domain types: what a thread, a message, an account and a file are, independent of
//! HTTP, Socket.IO and storage.

pub mod account;
pub mod actor;
pub mod file;
pub mod ids;
pub mod message;
pub mod reaction;
pub mod search;
pub mod thread;
pub mod time;

pub use account::{Account, AccountName};
pub use actor::Actor;
pub use file::{FileRecord, FileStatus};
pub use ids::{FileId, IdError, MessageId, ThreadId, UserId};
pub use message::{ClientMessageId, Message, MessageBody, NewMessage};
pub use reaction::{Emoji, Reaction};
pub use thread::{MemberSet, NewThread, Thread};
pub use time::Timestamp;
