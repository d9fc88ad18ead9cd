//! Full-text search on each engine's own index (set up by [`super::setup`]):
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

use super::{MESSAGE_COLUMNS, SqlStore, placeholders};
use crate::store::{Found, Scope, Search, StoreError, StoreResult};

/// How a search finds its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Walk the full-text index newest first, keeping the matches in scope: fast when matches
    /// in scope are frequent among all matches (a wide scope, or a rare word).
    Index,
    /// Read the scope's messages newest first and keep those that match: fast when the scope
    /// is small, whatever the words (a common word in a few threads costs the index walk
    /// most of its postings).
    Scope,
}

/// Scopes of at most this many messages are always read whole.
const SMALL_SCOPE: i64 = 2_000;

/// Chooses the plan. Walking the index to find a page in a scope holding a fraction `S/N` of
/// the messages reads about `page × N/S` entries when the words are common; reading the scope
/// reads `S`. They cross at `S = √(page × N)`.
async fn plan(pool: &AnyPool, search: &Search<'_>) -> StoreResult<Plan> {
    let size: Option<i64> = match search.scope {
        Scope::All => return Ok(Plan::Index),
        Scope::Thread(thread) => sqlx::query("SELECT last_seq FROM threads WHERE id = $1")
            .bind(thread.as_str())
            .fetch_optional(pool)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?,
        // Past 1,000 threads the scope is wide whatever their sizes: stop counting there.
        Scope::MemberOf(user) => sqlx::query(
            "SELECT CAST(COALESCE(SUM(last_seq), 0) AS BIGINT) FROM (SELECT t.last_seq \
             FROM thread_members m \
             JOIN threads t ON t.id = m.thread_id WHERE m.user_id = $1 LIMIT 1000) mine",
        )
        .bind(user.as_str())
        .fetch_optional(pool)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?,
    };
    let size = size.unwrap_or(0);
    if size <= SMALL_SCOPE {
        return Ok(Plan::Scope);
    }
    let total: i64 = sqlx::query("SELECT COALESCE(MAX(pos), 0) FROM messages")
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    let page = i64::try_from(search.limit).unwrap_or(i64::MAX);
    let crossing = ((page as f64) * (total as f64)).sqrt() as i64;
    Ok(if size <= crossing {
        Plan::Scope
    } else {
        Plan::Index
    })
}

/// Runs a search on the plan that suits its scope.
pub(super) async fn run(
    pool: &AnyPool,
    sqlite: bool,
    search: &Search<'_>,
) -> StoreResult<Vec<Found>> {
    match (plan(pool, search).await?, sqlite) {
        (Plan::Index, _) => walk_index(pool, sqlite, search).await,
        (Plan::Scope, false) => read_scope_postgres(pool, search).await,
        (Plan::Scope, true) => read_scope_sqlite(pool, search).await,
    }
}

/// `m.`-qualified message columns, and how many there are.
fn columns() -> (String, usize) {
    let columns: Vec<String> = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect();
    (columns.join(", "), columns.len())
}

/// The scope as a condition on `m.thread_id`, its parameter numbered `$n`.
fn scope_filter(scope: Scope<'_>, n: usize) -> String {
    match scope {
        Scope::All => String::new(),
        Scope::Thread(_) => format!("AND m.thread_id = ${n}"),
        Scope::MemberOf(_) => {
            format!(
                "AND m.thread_id IN (SELECT thread_id FROM thread_members WHERE user_id = ${n})"
            )
        }
    }
}

fn bind_scope<'q>(query: super::AnyQuery<'q>, scope: Scope<'q>) -> super::AnyQuery<'q> {
    match scope {
        Scope::All => query,
        Scope::Thread(thread) => query.bind(thread.as_str()),
        Scope::MemberOf(user) => query.bind(user.as_str()),
    }
}

fn before(search: &Search<'_>) -> i64 {
    search
        .before
        .and_then(|b| i64::try_from(b).ok())
        .unwrap_or(i64::MAX)
}

fn limit(search: &Search<'_>) -> i64 {
    i64::try_from(search.limit).unwrap_or(i64::MAX)
}

/// The query as PostgreSQL's `to_tsquery` reads it: `'a' & 'b':*`. Words are letters and
/// digits only (see `domain::search`), so quoting them is enough.
fn tsquery(search: &Search<'_>) -> String {
    let mut text: Vec<String> = search
        .query
        .whole()
        .iter()
        .map(|w| format!("'{w}'"))
        .collect();
    let star = if search.query.by_prefix() { ":*" } else { "" };
    text.push(format!("'{}'{star}", search.query.prefix()));
    text.join(" & ")
}

/// The query as FTS5 reads it: `"a" "b" *`.
fn fts5_query(search: &Search<'_>) -> String {
    let mut text: Vec<String> = search
        .query
        .whole()
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect();
    let star = if search.query.by_prefix() { " *" } else { "" };
    text.push(format!("\"{}\"{star}", search.query.prefix()));
    text.join(" ")
}

async fn walk_index(pool: &AnyPool, sqlite: bool, search: &Search<'_>) -> StoreResult<Vec<Found>> {
    let (columns, width) = columns();
    let (from, matches, position, text) = if sqlite {
        (
            "messages_fts JOIN messages m ON m.pos = messages_fts.rowid",
            "messages_fts MATCH $1",
            "messages_fts.rowid",
            fts5_query(search),
        )
    } else {
        (
            "messages m",
            "m.search @@ to_tsquery('threadline_search', $1)",
            "m.pos",
            tsquery(search),
        )
    };
    let scope = scope_filter(search.scope, 4);
    let sql = format!(
        "SELECT {columns}, {position} FROM {from} WHERE {matches} AND {position} < $2 \
         AND m.deleted_at IS NULL {scope} ORDER BY {position} DESC LIMIT $3"
    );
    let query = sqlx::query(&sql)
        .bind(text)
        .bind(before(search))
        .bind(limit(search));
    let rows = bind_scope(query, search.scope).fetch_all(pool).await?;
    rows.iter().map(|row| found(row, width)).collect()
}

/// PostgreSQL reads the scope first (the materialized CTE keeps the planner from walking the
/// whole index instead), then matches each message against its `tsvector`.
async fn read_scope_postgres(pool: &AnyPool, search: &Search<'_>) -> StoreResult<Vec<Found>> {
    let (columns, width) = columns();
    let scope = scope_filter(search.scope, 4);
    let sql = format!(
        "WITH scope AS MATERIALIZED (SELECT m.pos, m.search FROM messages m \
         WHERE m.pos < $2 AND m.deleted_at IS NULL {scope}), \
         hits AS (SELECT pos FROM scope WHERE search @@ to_tsquery('threadline_search', $1) \
         ORDER BY pos DESC LIMIT $3) \
         SELECT {columns}, m.pos FROM hits JOIN messages m ON m.pos = hits.pos \
         ORDER BY m.pos DESC"
    );
    let query = sqlx::query(&sql)
        .bind(tsquery(search))
        .bind(before(search))
        .bind(limit(search));
    let rows = bind_scope(query, search.scope).fetch_all(pool).await?;
    rows.iter().map(|row| found(row, width)).collect()
}

/// SQLite reads the scope newest first and matches each message's words here, by the rule the
/// FTS5 tokenizer follows (`domain::search::words`): probing FTS5 row by row would rebuild a
/// prefix's merged postings for every row.
async fn read_scope_sqlite(pool: &AnyPool, search: &Search<'_>) -> StoreResult<Vec<Found>> {
    use futures_util::TryStreamExt;

    // Positions and text only: decoding whole rows of a scope that mostly does not match would
    // cost more than the matching.
    let scope = scope_filter(search.scope, 2);
    let sql = format!(
        "SELECT m.pos, m.body FROM messages m WHERE m.pos < $1 AND m.deleted_at IS NULL \
         {scope} ORDER BY m.pos DESC"
    );
    let query = sqlx::query(&sql).bind(before(search));
    let mut rows = bind_scope(query, search.scope).fetch(pool);
    let mut hits: Vec<i64> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let body: String = row.try_get(1)?;
        if search.query.matches(&body) {
            hits.push(row.try_get(0)?);
            if hits.len() == search.limit {
                break;
            }
        }
    }
    drop(rows);
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let (columns, width) = columns();
    let sql = format!(
        "SELECT {columns}, m.pos FROM messages m WHERE m.pos IN ({}) ORDER BY m.pos DESC",
        placeholders(1, hits.len())
    );
    let query = hits
        .iter()
        .fold(sqlx::query(&sql), |query, pos| query.bind(*pos));
    let rows = query.fetch_all(pool).await?;
    rows.iter().map(|row| found(row, width)).collect()
}

fn found(row: &sqlx::any::AnyRow, width: usize) -> StoreResult<Found> {
    let position = row.try_get::<i64, _>(width)?;
    Ok(Found {
        position: u64::try_from(position)
            .map_err(|_| StoreError::Backend("stored position is not valid".into()))?,
        message: SqlStore::message(row)?,
    })
}
