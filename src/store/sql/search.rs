//! Full-text search on each engine's own index, set up here (after the portable migrations)
//! because neither engine's DDL for it runs on the other.
//!
//! - SQLite: an FTS5 table over `messages.body` (external content: the text is not stored
//!   twice), tokenized `unicode61 remove_diacritics 2`, kept current by triggers. Its rowid is
//!   the message's `pos`, set on insert to the next number: a real column, not SQLite's
//!   implicit rowid, which `VACUUM` may renumber.
//! - PostgreSQL: a generated `tsvector` column under a GIN index, with a text search
//!   configuration that strips accents (`unaccent`) then lowercases (`simple`: chat is
//!   multilingual, so no stemming and no stop words). `pos` comes from a sequence.
//!
//! Both answer newest first by `pos`, which pages the results.

use sqlx::{AnyPool, Row};

use super::{MESSAGE_COLUMNS, SqlStore, begin};
use crate::store::{Found, Scope, Search, StoreError, StoreResult};

/// Creates what search needs, once per database; safe to run on every start and by several
/// nodes at once.
pub(super) async fn prepare(pool: &AnyPool, sqlite: bool) -> StoreResult<()> {
    if sqlite {
        prepare_sqlite(pool).await
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
         content_rowid = 'pos', tokenize = 'unicode61 remove_diacritics 2')",
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN \
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
    let done = sqlx::query("SELECT 1 FROM data_migrations WHERE name = $1")
        .bind(DONE)
        .fetch_optional(pool)
        .await?;
    if done.is_some() {
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
        return Ok(());
    }
    // One transaction (PostgreSQL's DDL is transactional): a crash half-way leaves nothing.
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    match prepare_postgres_tx(conn).await {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(())
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

/// Runs a search: one statement.
pub(super) async fn run(
    pool: &AnyPool,
    sqlite: bool,
    search: &Search<'_>,
) -> StoreResult<Vec<Found>> {
    let columns: Vec<String> = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect();
    let columns = columns.join(", ");
    let (from, matches, position, text) = if sqlite {
        // Words are letters and digits only (see `domain::search`): quoting them is enough.
        let mut text: Vec<String> = search
            .query
            .whole()
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect();
        text.push(format!("\"{}\" *", search.query.prefix()));
        (
            "messages_fts JOIN messages m ON m.pos = messages_fts.rowid",
            "messages_fts MATCH $1",
            "messages_fts.rowid",
            text.join(" "),
        )
    } else {
        let mut text: Vec<String> = search
            .query
            .whole()
            .iter()
            .map(|w| format!("'{w}'"))
            .collect();
        text.push(format!("'{}':*", search.query.prefix()));
        (
            "messages m",
            "m.search @@ to_tsquery('threadline_search', $1)",
            "m.pos",
            text.join(" & "),
        )
    };
    let scope = match search.scope {
        Scope::All => "",
        Scope::Thread(_) => "AND m.thread_id = $4",
        Scope::MemberOf(_) => {
            "AND m.thread_id IN (SELECT thread_id FROM thread_members WHERE user_id = $4)"
        }
    };
    let sql = format!(
        "SELECT {columns}, {position} FROM {from} WHERE {matches} AND {position} < $2 \
         AND m.deleted_at IS NULL {scope} ORDER BY {position} DESC LIMIT $3"
    );
    let before = search
        .before
        .and_then(|b| i64::try_from(b).ok())
        .unwrap_or(i64::MAX);
    let mut query = sqlx::query(&sql)
        .bind(text)
        .bind(before)
        .bind(i64::try_from(search.limit).unwrap_or(i64::MAX));
    match search.scope {
        Scope::All => {}
        Scope::Thread(thread) => query = query.bind(thread.as_str()),
        Scope::MemberOf(user) => query = query.bind(user.as_str()),
    }
    let rows = query.fetch_all(pool).await?;
    let width = MESSAGE_COLUMNS.split(", ").count();
    rows.iter()
        .map(|row| {
            let position = row.try_get::<i64, _>(width)?;
            Ok(Found {
                position: u64::try_from(position)
                    .map_err(|_| StoreError::Backend("stored position is not valid".into()))?,
                message: SqlStore::message(row)?,
            })
        })
        .collect()
}
