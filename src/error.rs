//! One error type for every face: a stable, machine-readable code and, for some, a message for
//! humans. Nothing here knows a transport: `http::error` maps an error to a status and the
//! seeds' JSON body, `realtime::events` to an ack.

use std::borrow::Cow;

use crate::{
    domain::message::{MAX_BODY_BYTES, MAX_FILES_PER_MESSAGE, MAX_MENTIONS, MessageError},
    limits::RateLimited,
    store::StoreError,
};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// What `Retry-After` says when the store is unavailable.
pub const STORE_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule; `code` says which.
    #[error("{code}: {message}")]
    BadRequest { code: &'static str, message: String },
    /// 404 with a code naming what was missing (`thread_not_found`, `not_found`, ...).
    #[error("{0}")]
    NotFound(&'static str),
    /// 401 with `WWW-Authenticate: Bearer`: no token, a bad one, or an expired one.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    /// 408: the request body stalled past `--http-body-timeout-ms`.
    #[error("request body timed out")]
    BodyTimeout,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 429 with `Retry-After`: a rate limit (README, Limits) refused the request.
    #[error("rate limited")]
    RateLimited(RateLimited),
    /// 503 with `Retry-After`: the node cannot take this now (`server_busy`,
    /// `store_unavailable`); the same request later may succeed.
    #[error("{code}")]
    Unavailable {
        code: &'static str,
        retry_after_secs: u64,
    },
    /// 507: the disk under the store is full; nothing was written.
    #[error("insufficient storage")]
    InsufficientStorage,
    /// 500: the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The stable, machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::NotFound(code)
            | Self::Unauthorized(code)
            | Self::Forbidden(code)
            | Self::Conflict(code) => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyTimeout => "request_timeout",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable { code, .. } => code,
            Self::InsufficientStorage => "insufficient_storage",
            Self::Internal(_) => "internal_error",
        }
    }

    /// What a person reading the error should know, when the code alone does not say it.
    pub fn message(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::BadRequest { message, .. } => Some(message.into()),
            Self::UnsupportedMediaType(message) => Some(message.into()),
            Self::RateLimited(limited) => Some(
                format!(
                    "too many requests: retry after {} s",
                    limited.retry_after_secs()
                )
                .into(),
            ),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ThreadNotFound => Self::NotFound("thread_not_found"),
            StoreError::AccountNotFound => Self::NotFound("account_not_found"),
            // The stub's files router answers a bare `not_found`.
            StoreError::FileNotFound => Self::NotFound("not_found"),
            StoreError::MessageNotFound => Self::NotFound("message_not_found"),
            StoreError::UnknownAnchor => {
                Self::bad_request("invalid_cursor", "the cursor does not point into this list")
            }
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                Self::Unavailable {
                    code: "store_unavailable",
                    retry_after_secs: STORE_RETRY_AFTER_SECS,
                }
            }
            StoreError::Full(cause) => {
                tracing::error!(%cause, "store full: writes refused until space is freed");
                Self::InsufficientStorage
            }
            StoreError::Backend(cause) => Self::Internal(cause),
        }
    }
}

/// Why a post was refused, the same for REST and `message:send`.
impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::Empty => {
                Self::bad_request("empty_message", "message has no text and no files")
            }
            MessageError::TooLong => Self::bad_request(
                "message_too_long",
                format!("message text is longer than {MAX_BODY_BYTES} bytes"),
            ),
            MessageError::TooManyFiles => Self::bad_request(
                "too_many_files",
                format!("a message carries at most {MAX_FILES_PER_MESSAGE} files"),
            ),
            MessageError::NulCharacter => {
                Self::bad_request("invalid_text", "message text contains a NUL character")
            }
            MessageError::ControlCharacter => Self::bad_request(
                "invalid_text",
                "message text contains a control character (only newlines and tabs are allowed)",
            ),
            MessageError::UnknownFile => {
                Self::bad_request("unknown_file", "a fileId is not a valid id")
            }
            MessageError::InvalidMention => Self::bad_request(
                "invalid_mention",
                format!("mentions lists at most {MAX_MENTIONS} members of the thread"),
            ),
            MessageError::InvalidReplyTo => Self::bad_request(
                "invalid_reply_to",
                "replyTo names no message of this thread that can be answered",
            ),
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> Self {
        Self::RateLimited(limited)
    }
}
