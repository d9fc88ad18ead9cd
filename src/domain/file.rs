//! Uploaded files and their processing status (the stub's polling contract).

use serde::Serialize;

use super::{FileId, Timestamp, UserId};

/// `processing` until the bytes are fsynced and checksummed, then `ready`; `failed` if storing
/// them failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

    /// Whether a browser may show the file in place: only types that run nothing (raster
    /// images, audio, video, plain text). Anything else is served as a download.
    pub fn is_inline(&self) -> bool {
        let base = self
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        INLINE_TYPES.contains(&base)
    }
}

/// The types served inline. SVG, HTML, XML and PDF are not among them: they can run script.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/x-flac",
    "video/mp4",
    "video/webm",
    "text/plain",
];

/// How many leading bytes [`sniff_content_type`] needs.
pub const SNIFF_BYTES: usize = 8192;

/// An upload's type, decided from its first bytes and never from what the client claims: a
/// format with a known signature; else, for UTF-8 without NULs, markup (HTML, SVG, XML: what a
/// browser could run) or plain text; else opaque bytes.
pub fn sniff_content_type(head: &[u8]) -> &'static str {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A character cut in two by the end of the sample is still text.
        Err(e) => e.error_len().is_none(),
    };
    if !text || head.contains(&0) {
        return "application/octet-stream";
    }
    let start = head
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(head)
        .trim_ascii_start();
    if start.starts_with(b"<") {
        "text/html"
    } else {
        "text/plain"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff_content_type(b"\x89PNG\r\n\x1a\n rest"), "image/png");
        assert_eq!(
            sniff_content_type(b"just words, \xc3\xa9t\xc3\xa9"),
            "text/plain"
        );
        assert_eq!(sniff_content_type(b"\xc3"), "text/plain", "a cut character");
        for markup in [
            &b"<!doctype html><script>"[..],
            b"\xEF\xBB\xBF <svg>",
            b"\n<?xml ?>",
        ] {
            let sniffed = sniff_content_type(markup);
            assert!(
                !INLINE_TYPES.contains(&sniffed),
                "{sniffed} would be shown in place"
            );
        }
        assert_eq!(sniff_content_type(b"a\0b"), "application/octet-stream");
        assert_eq!(
            sniff_content_type(&[0xff, 0xfe, 0x00]),
            "application/octet-stream"
        );
    }

    #[test]
    fn only_inert_types_are_inline() {
        let with = |content_type: &str| FileRecord {
            id: FileId::generate(),
            name: "f".into(),
            content_type: content_type.into(),
            size: 0,
            sha256: None,
            status: FileStatus::Ready,
            uploader: UserId::anonymous(),
            created_at: Timestamp::now(),
        };
        assert!(with("image/png").is_inline());
        assert!(with("text/plain; charset=utf-8").is_inline());
        for active in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "application/pdf",
        ] {
            assert!(!with(active).is_inline(), "{active}");
        }
    }
}
