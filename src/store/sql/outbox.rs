//! The webhook outbox (`webhook_outbox`, created by [`super::setup`]): events are inserted in
//! the transaction of the change they describe, and claimed, retried and removed by the
//! delivery workers of every node.
//!
//! A claim takes, for each (endpoint, thread) lane, only its oldest undelivered event: one event
//! of a thread is in flight to an endpoint at a time, so they arrive in order. A claim is a
//! lease: a node that dies mid-delivery leaves its events to whoever claims after the lease.
//! On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets nodes claim at once without taking the same
//! event; SQLite serializes writers anyway.

use std::time::Duration;

use sqlx::{AnyPool, Row};

use super::{Tx, begin, commit::tuples, corrupt, placeholders};
use crate::{
    domain::{ThreadId, Timestamp},
    store::{Delivery, OutboxEvent, Settled, StoreResult},
};

/// Events per INSERT (7 parameters each).
const CHUNK: usize = 256;

/// Inserts `events` in the transaction of the change they describe.
pub(super) async fn record(tx: &mut Tx, events: &[OutboxEvent]) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO webhook_outbox \
             (event_id, endpoint, thread_id, kind, body, created_at, next_at) VALUES {}",
            tuples(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for e in chunk {
            query = query
                .bind(e.id.as_str())
                .bind(e.endpoint.as_str())
                .bind(e.thread.as_ref().map(ThreadId::as_str))
                .bind(e.kind.as_str())
                .bind(e.body.as_str())
                .bind(e.at.as_millis())
                .bind(e.at.as_millis());
        }
        query.execute(tx.conn()).await?;
    }
    Ok(())
}

pub(super) async fn claim(
    pool: &AnyPool,
    sqlite: bool,
    endpoints: &[String],
    node: &str,
    now: Timestamp,
    lease: Duration,
    limit: usize,
) -> StoreResult<Vec<Delivery>> {
    if endpoints.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    // Candidates are read oldest first, in id order, so a claim looks at the front of the
    // outbox, not at the whole backlog: SQLite is told not to pick the lane index (it would
    // read every event of the endpoint, then sort), PostgreSQL skips rows other nodes hold.
    let (table, skip_locked) = match sqlite {
        true => ("webhook_outbox o NOT INDEXED", ""),
        false => ("webhook_outbox o", "FOR UPDATE SKIP LOCKED"),
    };
    let sql = format!(
        "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN ( \
         SELECT o.id FROM {table} WHERE o.endpoint IN ({endpoints}) \
         AND o.failed_at IS NULL AND o.next_at <= $3 \
         AND (o.claimed_until IS NULL OR o.claimed_until < $3) \
         AND (o.thread_id IS NULL OR o.id = (SELECT MIN(p.id) FROM webhook_outbox p \
         WHERE p.endpoint = o.endpoint AND p.thread_id = o.thread_id AND p.failed_at IS NULL)) \
         ORDER BY o.id LIMIT $4 {skip_locked}) \
         RETURNING id, event_id, endpoint, thread_id, kind, body, created_at, attempts",
        endpoints = placeholders(5, endpoints.len()),
    );
    let until = now.as_millis() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
    let mut query = sqlx::query(&sql)
        .bind(node)
        .bind(until)
        .bind(now.as_millis())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    for endpoint in endpoints {
        query = query.bind(endpoint.as_str());
    }
    // A claim is a write: on SQLite it takes the write lock first (see `begin`).
    let mut tx = begin(pool, sqlite).await?;
    let rows = query.fetch_all(tx.conn()).await?;
    tx.commit().await?;
    let mut out: Vec<Delivery> = rows
        .iter()
        .map(|row| {
            Ok(Delivery {
                row: u64::try_from(row.try_get::<i64, _>(0)?).map_err(|_| corrupt("outbox id"))?,
                event: OutboxEvent {
                    id: row.try_get(1)?,
                    endpoint: row.try_get(2)?,
                    thread: row
                        .try_get::<Option<String>, _>(3)?
                        .map(|t| ThreadId::parse(&t).map_err(|_| corrupt("thread id")))
                        .transpose()?,
                    kind: row.try_get(4)?,
                    body: row.try_get(5)?,
                    at: Timestamp::from_millis(row.try_get(6)?),
                },
                attempts: u32::try_from(row.try_get::<i64, _>(7)?).unwrap_or(u32::MAX),
            })
        })
        .collect::<StoreResult<_>>()?;
    out.sort_by_key(|d| d.row);
    Ok(out)
}

/// Records what became of claimed events in one transaction: deliveries are deleted together
/// (one commit for a whole round of attempts, not one each).
pub(super) async fn settle(pool: &AnyPool, sqlite: bool, settled: &[Settled]) -> StoreResult<()> {
    if settled.is_empty() {
        return Ok(());
    }
    let id = |row: u64| i64::try_from(row).unwrap_or(i64::MAX);
    let delivered: Vec<i64> = settled
        .iter()
        .filter_map(|s| match s {
            Settled::Delivered(row) => Some(id(*row)),
            _ => None,
        })
        .collect();
    let mut tx = begin(pool, sqlite).await?;
    for chunk in delivered.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM webhook_outbox WHERE id IN ({})",
            placeholders(1, chunk.len())
        );
        let query = chunk.iter().fold(sqlx::query(&sql), |q, row| q.bind(*row));
        query.execute(tx.conn()).await?;
    }
    for s in settled {
        match *s {
            Settled::Delivered(_) => {}
            Settled::Retry { row, attempts, at } => {
                sqlx::query(
                    "UPDATE webhook_outbox SET attempts = $2, next_at = $3, claimed_by = NULL, \
                     claimed_until = NULL WHERE id = $1",
                )
                .bind(id(row))
                .bind(i64::from(attempts))
                .bind(at.as_millis())
                .execute(tx.conn())
                .await?;
            }
            Settled::Failed { row, at } => {
                sqlx::query(
                    "UPDATE webhook_outbox SET failed_at = $2, claimed_by = NULL, \
                     claimed_until = NULL WHERE id = $1",
                )
                .bind(id(row))
                .bind(at.as_millis())
                .execute(tx.conn())
                .await?;
            }
        }
    }
    tx.commit().await
}

pub(super) async fn pending(pool: &AnyPool, endpoints: &[String]) -> StoreResult<u64> {
    if endpoints.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "SELECT COUNT(*) FROM webhook_outbox WHERE failed_at IS NULL AND endpoint IN ({})",
        placeholders(1, endpoints.len())
    );
    let query = endpoints
        .iter()
        .fold(sqlx::query(&sql), |q, e| q.bind(e.as_str()));
    let count: i64 = query.fetch_one(pool).await?.try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
