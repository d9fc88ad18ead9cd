//! Conversation-list order without a write per member per post.
//!
//! A member's conversations are listed by `thread_members.activity`, an index range scan. A
//! post does not update those rows (a 1,000-member thread would cost 1,000 row writes per
//! post): it records the thread's new activity in `activity_pending`, one row per thread, in
//! its own transaction. From there it reaches the members' rows two ways:
//!
//! - a member listing their conversations first applies the pending rows of their own threads
//!   (a few rows, whatever the store's size), so they always see their latest posts first;
//! - this task copies pending rows to every member, coalescing a burst of posts into one
//!   update per thread, shortly after they are marked and in a periodic sweep that also
//!   finishes rows a stopped node left behind.

use std::{sync::Arc, time::Duration};

use sqlx::{AnyPool, Row};
use tokio::sync::Notify;

use super::begin;
use crate::store::{StoreError, StoreResult};

/// How long marks gather before they are copied: a busy thread is copied at most this often.
const COALESCE: Duration = Duration::from_secs(1);
/// Pending rows are swept this often even when this node posted nothing (another node may
/// have stopped before copying its own).
const SWEEP: Duration = Duration::from_secs(5);
/// Threads copied per transaction.
const ROUND: i64 = 256;

#[derive(Clone)]
pub(super) struct Activity {
    marked: Arc<Notify>,
}

impl Activity {
    /// Starts the copying task; it ends when the pool closes.
    pub(super) fn start(pool: AnyPool, sqlite: bool) -> Self {
        let marked = Arc::new(Notify::new());
        tokio::spawn(run(pool, sqlite, Arc::clone(&marked)));
        Self { marked }
    }

    /// A transaction that wrote pending rows has committed.
    pub(super) fn marked(&self) {
        self.marked.notify_one();
    }
}

async fn run(pool: AnyPool, sqlite: bool, marked: Arc<Notify>) {
    loop {
        if pool.is_closed() {
            return;
        }
        match copy_pending(&pool, sqlite).await {
            // A full round: more are waiting.
            Ok(n) if n >= ROUND as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "copying conversation activity failed; retrying"),
        }
        let _ = tokio::time::timeout(SWEEP, marked.notified()).await;
        tokio::time::sleep(COALESCE).await;
    }
}

/// Copies up to a round of pending rows to the members' rows, in one transaction; returns how
/// many threads it copied.
async fn copy_pending(pool: &AnyPool, sqlite: bool) -> StoreResult<usize> {
    let pending: Vec<(String, i64)> =
        sqlx::query("SELECT thread_id, activity FROM activity_pending ORDER BY thread_id LIMIT $1")
            .bind(ROUND)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut tx = begin(pool, sqlite).await?;
    for (thread, activity) in &pending {
        let copied = async {
            sqlx::query(
                "UPDATE thread_members SET activity = $2 WHERE thread_id = $1 AND activity < $2",
            )
            .bind(thread.as_str())
            .bind(*activity)
            .execute(tx.conn())
            .await?;
            // Unless a newer post marked it again meanwhile.
            sqlx::query("DELETE FROM activity_pending WHERE thread_id = $1 AND activity = $2")
                .bind(thread.as_str())
                .bind(*activity)
                .execute(tx.conn())
                .await
        }
        .await;
        if let Err(e) = copied {
            let _ = tx.rollback().await;
            return Err(StoreError::from(e));
        }
    }
    tx.commit().await?;
    Ok(pending.len())
}

/// Applies the pending activity of `member`'s threads to `member`'s own rows, before their
/// conversations are listed. Best effort: when it cannot write (a full disk), the list is
/// still served, in the order last copied.
pub(super) async fn apply_for(pool: &AnyPool, sqlite: bool, member: &str) {
    if let Err(e) = try_apply_for(pool, sqlite, member).await {
        tracing::debug!(error = %e, "conversation activity not applied before listing");
    }
}

async fn try_apply_for(pool: &AnyPool, sqlite: bool, member: &str) -> StoreResult<()> {
    // Driven by the pending rows (few: threads posted to in the last second), each probing the
    // member's primary key: the cost does not grow with the member's conversations. SQLite
    // takes a CROSS JOIN's left table as the outer loop.
    let stale: Vec<(String, i64)> = sqlx::query(
        "SELECT p.thread_id, p.activity FROM activity_pending p CROSS JOIN thread_members m \
         WHERE m.user_id = $1 AND m.thread_id = p.thread_id AND m.activity < p.activity",
    )
    .bind(member)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    if stale.is_empty() {
        return Ok(());
    }
    let mut tx = begin(pool, sqlite).await?;
    for (thread, activity) in &stale {
        let moved = sqlx::query(
            "UPDATE thread_members SET activity = $3 \
             WHERE user_id = $1 AND thread_id = $2 AND activity < $3",
        )
        .bind(member)
        .bind(thread.as_str())
        .bind(*activity)
        .execute(tx.conn())
        .await;
        if let Err(e) = moved {
            let _ = tx.rollback().await;
            return Err(e.into());
        }
    }
    tx.commit().await
}
