//! Uploads a crash left unfinished. An upload is acknowledged once its record exists
//! (`processing`); its bytes are then fsynced and moved into place. A crash in between leaves
//! the record `processing` and the bytes partial. At start-up and every few seconds after,
//! every upload still `processing` well after it was recorded is finished from its bytes
//! (`ready`, with their SHA-256, when they are all there) or marked `failed`, and partial files
//! nobody is writing any more are removed.
//!
//! Only uploads older than [`STALE_AFTER`] are touched, so nodes sharing one `--data-dir`
//! never finish each other's uploads while they are being finished.

use std::{sync::Arc, time::Duration};

use crate::{
    blobs::{Blobs, Place},
    chat::Chat,
    domain::{FileRecord, FileStatus, Timestamp},
    store::{Store, StoreError},
};

/// An upload still `processing` this long after it was recorded has lost its writer.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
const EVERY: Duration = Duration::from_secs(5);

/// Runs [`recover`] now and every few seconds, for as long as the store is in use. Partial
/// files untouched for `abandoned_after` are removed.
pub fn recover_periodically(
    chat: &Arc<Chat>,
    store: &Arc<dyn Store>,
    blobs: &Arc<Blobs>,
    abandoned_after: Duration,
) {
    let (chat, store, blobs) = (
        Arc::downgrade(chat),
        Arc::downgrade(store),
        Arc::downgrade(blobs),
    );
    tokio::spawn(async move {
        loop {
            let (Some(chat), Some(store), Some(blobs)) =
                (chat.upgrade(), store.upgrade(), blobs.upgrade())
            else {
                return;
            };
            recover(&chat, store.as_ref(), &blobs, abandoned_after).await;
            drop((chat, store, blobs));
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// One pass (see the module doc).
pub async fn recover(chat: &Chat, store: &dyn Store, blobs: &Blobs, abandoned_after: Duration) {
    let stale_before =
        Timestamp::from_millis(Timestamp::now().as_millis() - STALE_AFTER.as_millis() as i64);
    match store.stale_uploads(stale_before).await {
        Ok(stale) => {
            for upload in stale {
                finish(chat, blobs, &upload).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing unfinished uploads failed"),
    }
    let idle = match blobs.idle_partials(abandoned_after).await {
        Ok(idle) => idle,
        Err(e) => {
            tracing::warn!(error = %e, "listing partial uploads failed");
            return;
        }
    };
    for id in idle {
        // An acknowledged upload's bytes wait for the pass that finishes it.
        match store.file(&id).await {
            Ok(file) if file.status == FileStatus::Processing => continue,
            Ok(_) | Err(StoreError::FileNotFound) => {
                tracing::info!(file = %id, "removing an abandoned partial upload");
                blobs.remove_partial(&id).await;
            }
            Err(e) => tracing::warn!(error = %e, "checking a partial upload failed"),
        }
    }
}

async fn finish(chat: &Chat, blobs: &Blobs, upload: &FileRecord) {
    let id = &upload.id;
    let outcome = match blobs.inspect(id).await {
        Ok(Some((place, size, sha256))) if size == upload.size => {
            let placed = match place {
                Place::InPlace => Ok(()),
                Place::Partial => blobs.commit_left(id).await,
            };
            match placed {
                Ok(()) => (FileStatus::Ready, Some(sha256)),
                Err(e) => {
                    tracing::error!(error = %e, file = %id, "finishing an upload failed");
                    (FileStatus::Failed, None)
                }
            }
        }
        Ok(found) => {
            tracing::warn!(
                file = %id,
                expected = upload.size,
                found = ?found.map(|(place, size, _)| (place, size)),
                "an upload left by a crash is incomplete: failed"
            );
            (FileStatus::Failed, None)
        }
        Err(e) => {
            tracing::error!(error = %e, file = %id, "reading an unfinished upload failed");
            (FileStatus::Failed, None)
        }
    };
    if outcome.0 == FileStatus::Failed {
        blobs.remove(id).await;
    }
    match chat.finish_file(id, outcome.0, outcome.1).await {
        Ok(_) => {
            tracing::info!(file = %id, status = outcome.0.as_str(), "finished an upload left by a crash")
        }
        Err(e) => tracing::warn!(error = %e, file = %id, "recording a recovered upload failed"),
    }
}
