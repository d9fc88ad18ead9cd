//! Each engine's own DDL, run after the portable migrations (`migrations/`) because neither
//! engine's statements for it run on the other: full-text search (see [`super::search`]) and the
//! webhook outbox, whose ids are each engine's own auto-increment (see [`super::outbox`]).

use sqlx::{AnyPool, Row};

use super::begin;
use crate::store::StoreResult;

/// Creates what search and the webhook outbox need, once per database; safe to run on every
/// start and by several nodes at once.
pub(super) async fn prepare(pool: &AnyPool, sqlite: bool) -> StoreResult<()> {
    if sqlite {
        prepare_sqlite(pool).await?;
        prepare_sqlite_outbox(pool).await
    } else {
        prepare_postgres(pool).await
    }
}

async fn prepare_sqlite(pool: &AnyPool) -> StoreResult<()> {
    let mut tx = begin(pool, true).await?;
    let exists = sqlx::query("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'")
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if exists {
        return tx.rollback().await;
    }
    for statement in [
        // Messages stored before search existed take their order of arrival.
        "UPDATE messages SET pos = rowid WHERE pos IS NULL",
        "CREATE UNIQUE INDEX messages_pos ON messages (pos)",
        "CREATE VIRTUAL TABLE messages_fts USING fts5(body, content = 'messages', \
         content_rowid = 'pos', tokenize = 'unicode61 remove_diacritics 2', \
         prefix = '2 3 4')",
        // The committer writes `pos` with each message; a row written without one (by hand, a
        // bulk load) gets the next number here.
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.pos IS NOT NULL \
         BEGIN INSERT INTO messages_fts (rowid, body) VALUES (new.pos, new.body); END",
        "CREATE TRIGGER messages_pos_fill AFTER INSERT ON messages WHEN new.pos IS NULL BEGIN \
         UPDATE messages SET pos = (SELECT COALESCE(MAX(pos), 0) + 1 FROM messages) \
         WHERE rowid = new.rowid; \
         INSERT INTO messages_fts (rowid, body) \
         SELECT pos, body FROM messages WHERE rowid = new.rowid; END",
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN \
         INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.pos, old.body); \
         INSERT INTO messages_fts (rowid, body) VALUES (new.pos, new.body); END",
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN \
         INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.pos, old.body); END",
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    ] {
        sqlx::query(statement).execute(tx.conn()).await?;
    }
    tx.commit().await
}

/// Any number; the same for every node, so that they set search up one at a time.
const SETUP_LOCK: i64 = 0x7468_7265_6164;

async fn prepare_postgres(pool: &AnyPool) -> StoreResult<()> {
    let done = sqlx::query("SELECT COUNT(*) FROM data_migrations WHERE name IN ($1, $2)")
        .bind(DONE)
        .bind(OUTBOX_DONE)
        .fetch_one(pool)
        .await?
        .try_get::<i64, _>(0)?;
    if done == 2 {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await?;
    let done = prepare_postgres_locked(&mut conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await;
    done?;
    unlocked?;
    Ok(())
}

/// Recorded in `data_migrations` once done: later start-ups take no lock on `messages`.
const DONE: &str = "search_index";

async fn prepare_postgres_locked(conn: &mut sqlx::AnyConnection) -> StoreResult<()> {
    let done = sqlx::query("SELECT 1 FROM data_migrations WHERE name = $1")
        .bind(DONE)
        .fetch_optional(&mut *conn)
        .await?;
    if done.is_some() {
        return prepare_postgres_outbox(conn).await;
    }
    // One transaction (PostgreSQL's DDL is transactional): a crash half-way leaves nothing.
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    match prepare_postgres_tx(conn).await {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            prepare_postgres_outbox(conn).await
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn prepare_postgres_tx(conn: &mut sqlx::AnyConnection) -> StoreResult<()> {
    let configured = sqlx::query("SELECT 1 FROM pg_ts_config WHERE cfgname = 'threadline_search'")
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !configured {
        // `unaccent` ships with PostgreSQL (contrib) and is a trusted extension: a database
        // owner may create it. Without it search still works, accent-sensitive.
        sqlx::query("SAVEPOINT unaccent")
            .execute(&mut *conn)
            .await?;
        let unaccent = match sqlx::query("CREATE EXTENSION IF NOT EXISTS unaccent")
            .execute(&mut *conn)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "unaccent unavailable: search will be accent-sensitive");
                sqlx::query("ROLLBACK TO SAVEPOINT unaccent")
                    .execute(&mut *conn)
                    .await?;
                false
            }
        };
        sqlx::query("CREATE TEXT SEARCH CONFIGURATION threadline_search (COPY = simple)")
            .execute(&mut *conn)
            .await?;
        if unaccent {
            sqlx::query(
                "ALTER TEXT SEARCH CONFIGURATION threadline_search \
                 ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple",
            )
            .execute(&mut *conn)
            .await?;
        }
    }
    for statement in [
        "CREATE SEQUENCE IF NOT EXISTS messages_pos_seq",
        "ALTER TABLE messages ALTER COLUMN pos SET DEFAULT nextval('messages_pos_seq')",
        // Messages stored before search existed, in the order they were written.
        "UPDATE messages m SET pos = o.p FROM (SELECT thread_id, seq, \
         nextval('messages_pos_seq') AS p FROM (SELECT thread_id, seq FROM messages \
         WHERE pos IS NULL ORDER BY created_at, thread_id, seq) s) o \
         WHERE m.thread_id = o.thread_id AND m.seq = o.seq",
        "CREATE UNIQUE INDEX IF NOT EXISTS messages_pos ON messages (pos)",
        "ALTER TABLE messages ADD COLUMN IF NOT EXISTS search tsvector \
         GENERATED ALWAYS AS (to_tsvector('threadline_search'::regconfig, body)) STORED",
        "CREATE INDEX IF NOT EXISTS messages_search ON messages USING GIN (search)",
    ] {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    sqlx::query("INSERT INTO data_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(DONE)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Recorded once the outbox exists.
const OUTBOX_DONE: &str = "webhook_outbox";

/// The outbox's columns after its id; the id orders a lane's events.
const OUTBOX_COLUMNS: &str = "event_id TEXT NOT NULL, endpoint TEXT NOT NULL, thread_id TEXT, \
     kind TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL, \
     attempts BIGINT NOT NULL DEFAULT 0, next_at BIGINT NOT NULL, claimed_by TEXT, \
     claimed_until BIGINT, failed_at BIGINT";

/// A lane's earlier events (the ordering check of every claim) are an index probe.
const OUTBOX_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS webhook_outbox_lane ON webhook_outbox (endpoint, thread_id, id)";

async fn prepare_sqlite_outbox(pool: &AnyPool) -> StoreResult<()> {
    let mut tx = begin(pool, true).await?;
    for statement in [
        format!(
            "CREATE TABLE IF NOT EXISTS webhook_outbox \
             (id INTEGER PRIMARY KEY AUTOINCREMENT, {OUTBOX_COLUMNS})"
        ),
        OUTBOX_INDEX.to_owned(),
    ] {
        sqlx::query(&statement).execute(tx.conn()).await?;
    }
    tx.commit().await
}

async fn prepare_postgres_outbox(conn: &mut sqlx::AnyConnection) -> StoreResult<()> {
    let done = sqlx::query("SELECT 1 FROM data_migrations WHERE name = $1")
        .bind(OUTBOX_DONE)
        .fetch_optional(&mut *conn)
        .await?;
    if done.is_some() {
        return Ok(());
    }
    for statement in [
        format!(
            "CREATE TABLE IF NOT EXISTS webhook_outbox \
             (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {OUTBOX_COLUMNS})"
        ),
        OUTBOX_INDEX.to_owned(),
        "INSERT INTO data_migrations (name) VALUES ('webhook_outbox') ON CONFLICT DO NOTHING"
            .to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut *conn).await?;
    }
    Ok(())
}
