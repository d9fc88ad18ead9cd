//! Files: upload, the stub's status route (polled by clients), and download.

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, State, multipart::MultipartError},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use utoipa::ToSchema;
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouterExt},
    routes,
};

use super::extract::{Json, Multipart, Path};
use crate::{
    domain::{
        Actor, FileId, FileRecord, FileStatus, Timestamp,
        file::{SNIFF_BYTES, sniff_content_type},
    },
    error::{ApiError, Result},
    http::error::ErrorBody,
    state::AppState,
    views::FileView,
};

pub fn router(max_upload_bytes: u64) -> OpenApiRouter<AppState> {
    // Room for the multipart framing around the one file.
    let body_limit = usize::try_from(max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    OpenApiRouter::new()
        .routes(routes!(upload).layer(DefaultBodyLimit::max(body_limit)))
        .routes(routes!(download))
        .routes(routes!(status))
}

/// The upload form: one file part (its name is what the file is called; any field name).
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn file_id(raw: &str) -> Result<FileId> {
    FileId::parse(raw).map_err(|_| ApiError::NotFound("not_found"))
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else if super::extract::body_timed_out(&e) {
        ApiError::BodyTimeout
    } else {
        ApiError::bad_request("invalid_multipart", e.body_text())
    }
}

/// `POST /api/files` (multipart, one file) → 201 `{id, name, url, status: "processing"}`.
/// The status turns `ready` once the bytes are fsynced into place.
#[utoipa::path(post, path = "/api/files", tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Received; `status` turns `ready` once stored", body = FileView),
        (status = 400, description = "`missing_file`, `invalid_multipart`", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (over `--max-upload-bytes`)", body = ErrorBody),
        (status = 429, description = "`rate_limited` (uploads per user and per address)", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    Multipart(mut multipart): Multipart,
) -> Result<(StatusCode, Json<FileView>)> {
    state.limits.uploads.check_actor(&actor)?;
    let uploader = actor.user;
    let max = state.config.max_upload_bytes;
    let mut field = loop {
        match multipart.next_field().await.map_err(multipart_error)? {
            Some(field) if field.file_name().is_some() => break field,
            Some(_) => continue,
            None => {
                return Err(ApiError::bad_request(
                    "missing_file",
                    "the form has no file field",
                ));
            }
        }
    };
    let name = display_name(field.file_name().unwrap_or_default());

    let id = FileId::generate();
    let blobs = &state.blobs;
    let mut partial = blobs.create_partial(&id).await.map_err(internal)?;
    let file = &mut partial.file;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head = Vec::new();
    let received: Result<()> = async {
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            size += chunk.len() as u64;
            if size > max {
                return Err(ApiError::PayloadTooLarge);
            }
            let wanted = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(internal)?;
        }
        file.flush().await.map_err(internal)
    }
    .await;
    // On an error the partial file is dropped, which removes it.
    received?;

    let record = FileRecord {
        id: id.clone(),
        name,
        // What the bytes are, not what the client says they are.
        content_type: sniff_content_type(&head).to_owned(),
        size,
        sha256: None,
        status: FileStatus::Processing,
        uploader,
        created_at: Timestamp::now(),
    };
    state.store.insert_file(record.clone()).await?;
    let sha256 = format!("{:x}", hasher.finalize());
    // Durability (fsync + rename) happens after the response; clients poll the status route.
    tokio::spawn(async move {
        let outcome = match state.blobs.commit(partial, &id).await {
            Ok(()) => (FileStatus::Ready, Some(sha256)),
            Err(e) => {
                tracing::error!(error = %e, file = %id, "storing upload failed");
                (FileStatus::Failed, None)
            }
        };
        if let Err(e) = state.chat.finish_file(&id, outcome.0, outcome.1).await {
            tracing::error!(error = %e, file = %id, "recording upload status failed");
        }
    });
    Ok((StatusCode::CREATED, Json(FileView::from(&record))))
}

async fn visible_file(state: &AppState, actor: &Actor, raw_id: &str) -> Result<FileRecord> {
    state.chat.file(actor, &file_id(raw_id)?).await
}

/// `GET /api/files/:id/status` → `{id, name, url, status}`; unknown → 404 `not_found`.
#[utoipa::path(get, path = "/api/files/{file_id}/status", tag = "files",
    params(("file_id" = String, Path, description = "The file's id")),
    responses(
        (status = 200, description = "The file's record", body = FileView),
        (status = 404, description = "`not_found`: unknown, or not visible to the caller", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<FileView>> {
    let file = visible_file(&state, &actor, &id).await?;
    Ok(Json(FileView::from(&file)))
}

/// `GET /api/files/:id` → the bytes, with their content type and length.
#[utoipa::path(get, path = "/api/files/{file_id}", tag = "files",
    params(("file_id" = String, Path, description = "The file's id")),
    responses(
        (status = 200, description = "The bytes: raster images and plain text inline, anything else as an `application/octet-stream` attachment; always with `Content-Security-Policy: sandbox`"),
        (status = 404, description = "`not_found`: unknown, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "`file_not_ready`, `file_failed`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn download(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response> {
    let record = visible_file(&state, &actor, &id).await?;
    match record.status {
        FileStatus::Ready => {}
        FileStatus::Processing => return Err(ApiError::Conflict("file_not_ready")),
        FileStatus::Failed => return Err(ApiError::Conflict("file_failed")),
    }
    let file = tokio::fs::File::open(state.blobs.path(&record.id))
        .await
        .map_err(internal)?;
    // User files never run on this origin: only inert types are shown in place, the rest is a
    // download of opaque bytes, and the sandbox stops script even if a browser tried.
    let (content_type, disposition) = if record.is_inline() {
        (record.content_type.clone(), "inline")
    } else {
        ("application/octet-stream".to_owned(), "attachment")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, record.size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("{disposition}; {}", filename_params(&record.name)),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response())
}

fn internal(e: std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        tracing::error!(error = %e, "upload refused: the data directory's disk is full");
        return ApiError::InsufficientStorage;
    }
    ApiError::Internal(e.to_string())
}

/// `filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266, RFC 8187).
fn filename_params(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => encoded.push(byte as char),
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    format!("filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Bidirectional controls make a name display as something else (`txt.exe` shown as
/// `exe.txt`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The client's file name without directories, control or bidirectional characters, at most
/// 255 characters.
fn display_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(255)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "file".to_owned()
    } else {
        clean.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::{display_name, filename_params};

    #[test]
    fn names_go_out_in_rfc_6266_form() {
        assert_eq!(
            filename_params("a b.txt"),
            "filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            filename_params("été \"x\".png"),
            "filename=\"_t_ _x_.png\"; filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22.png"
        );
    }

    #[test]
    fn names_lose_directories_and_control_characters() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\x\\a.png"), "a.png");
        assert_eq!(display_name("a\u{0}b.txt"), "ab.txt");
        assert_eq!(display_name(""), "file");
        assert_eq!(display_name(".."), "file");
        assert_eq!(display_name("invoice\u{202E}txt.exe"), "invoicetxt.exe");
    }
}
