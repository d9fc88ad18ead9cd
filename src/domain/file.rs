//! Uploaded files and their processing status (the stub's polling contract).

use serde::Serialize;

use super::{FileId, Timestamp, UserId};

/// `processing` until the bytes are fsynced and checksummed, then `ready`; `failed` if storing
/// them failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Processing,
    Ready,
    Failed,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "processing" => Some(Self::Processing),
            "ready" => Some(Self::Ready),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: FileId,
    /// The client's file name, sanitised for display.
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes, known once the upload is complete.
    pub sha256: Option<String>,
    pub status: FileStatus,
    pub uploader: UserId,
    pub created_at: Timestamp,
}

impl FileRecord {
    /// Where the bytes are downloaded from.
    pub fn url(&self) -> String {
        format!("/api/files/{}", self.id)
    }
}
