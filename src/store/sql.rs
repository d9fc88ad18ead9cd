//! SQL storage through sqlx: SQLite (durable, one node) and PostgreSQL (shared by several
//! nodes), one implementation over sqlx's `Any` driver. The schema (`migrations/`) and every
//! statement are portable between the two.
//!
//! Appends go through a group committer ([`commit`]): the posts queued together are one
//! transaction that bumps each thread's `last_seq` (its row lock orders concurrent appends, on
//! every node) and inserts the messages at those positions. A message has committed before
//! `append_message` returns, so before any 201 or broadcast. Members' conversation-list order
//! follows without a write per member per post ([`activity`]).

mod activity;
mod commit;
mod outbox;
mod search;
mod setup;

use std::{collections::HashMap, sync::Arc};

use dashmap::DashMap;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{
    Any, AnyConnection, AnyPool, Connection, Row,
    any::{AnyPoolOptions, AnyRow},
    pool::PoolConnection,
};

use super::{
    Anchor, Announce, Delivery, Found, OutboxEvent, Search, Settled, Store, StoreError,
    StoreResult, Summary, Window,
};
use crate::domain::{
    Account, AccountName, ClientMessageId, Emoji, FileId, FileRecord, FileStatus, MemberSet,
    Message, MessageId, Reaction, Thread, ThreadId, Timestamp, UserId, reaction,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct SqlStore {
    pool: AnyPool,
    sqlite: bool,
    committer: commit::Committer,
    /// Thread → its sorted members (they never change): the access check of a post costs no
    /// round trip once the thread is known. Bounded: emptied when full.
    members: DashMap<ThreadId, Arc<[UserId]>>,
}

/// Threads whose members are kept in memory (a few hundred bytes each for two members).
const MEMBER_CACHE: usize = 100_000;

/// Starts a write transaction. SQLite takes its write lock at once (`BEGIN IMMEDIATE`), so
/// concurrent writers queue on the busy timeout instead of failing to upgrade a read lock.
async fn begin(pool: &AnyPool, sqlite: bool) -> StoreResult<Tx> {
    let mut conn = pool.acquire().await?;
    let begin = if sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
    if let Err(e) = sqlx::query(begin).execute(&mut *conn).await {
        drop(conn.detach());
        return Err(e.into());
    }
    Ok(Tx { conn: Some(conn) })
}

/// A write transaction that never outlives a failure. sqlx's own transaction can leave a
/// SQLite connection inside an open transaction after a failed COMMIT (a full disk): its
/// later statements then "succeed" invisibly to everyone else and the write lock is never
/// released. Here, a transaction that is not committed in full is rolled back and its
/// connection closed (closing ends whatever the engine still holds open), and the pool opens
/// a fresh one.
struct Tx {
    conn: Option<PoolConnection<Any>>,
}

impl Tx {
    fn conn(&mut self) -> &mut AnyConnection {
        self.conn
            .as_deref_mut()
            .expect("a transaction's connection is only taken when it ends")
    }

    async fn commit(self) -> StoreResult<()> {
        self.end("COMMIT").await
    }

    async fn rollback(self) -> StoreResult<()> {
        self.end("ROLLBACK").await
    }

    /// Ends the transaction with `sql`; if that fails, the connection is discarded.
    async fn end(mut self, sql: &str) -> StoreResult<()> {
        match sqlx::query(sql).execute(self.conn()).await {
            Ok(_) => {
                self.conn = None;
                Ok(())
            }
            Err(e) => {
                self.discard().await;
                Err(e.into())
            }
        }
    }

    /// Closes the connection instead of returning it to the pool.
    async fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut conn = conn.detach();
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

impl Drop for Tx {
    /// Ended by an error (`?`) or a cancelled request: never back to the pool mid-transaction.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// A conflict with a concurrent transaction that the engine resolved by aborting this one
/// (PostgreSQL: deadlock detected, serialization failure): the same transaction again succeeds.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict("already exists")
            }
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                let message = db.message().to_owned();
                match &*code {
                    // SQLite: SQLITE_FULL (and its extended codes), disk I/O on a full disk.
                    "13" => StoreError::Full(message),
                    // SQLite: busy or locked past the busy timeout.
                    "5" | "6" | "261" | "517" => StoreError::Unavailable(message),
                    // PostgreSQL: disk_full, insufficient_resources.
                    "53100" | "53000" => StoreError::Full(message),
                    // PostgreSQL: connection exceptions, shutting down, starting up.
                    c if c.starts_with("08") || c.starts_with("57P") => {
                        StoreError::Unavailable(message)
                    }
                    _ if message.contains("database or disk is full") => StoreError::Full(message),
                    _ => StoreError::Backend(message),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// How long a request waits for a database connection before answering 503: long enough for
/// a burst, short enough that clients learn of an outage at once instead of in 30 s.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} is not valid"))
}

const MESSAGE_COLUMNS: &str = "id, thread_id, author_id, body, file_ids, created_at, client_id, \
     edited_at, deleted_at, seq, reply_to, reply_count, mentions, reactions, changed_at";
/// The columns a new message fills in (it is neither edited nor deleted yet).
const NEW_MESSAGE_COLUMNS: &str =
    "id, thread_id, author_id, body, file_ids, created_at, client_id, reply_to, mentions";

/// Reactions as stored: `[{"emoji": "👍", "userIds": ["ann"]}]`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredReaction {
    emoji: String,
    user_ids: Vec<String>,
}

fn reactions_json(reactions: &[Reaction]) -> Option<String> {
    if reactions.is_empty() {
        return None;
    }
    let stored: Vec<StoredReaction> = reactions
        .iter()
        .map(|r| StoredReaction {
            emoji: r.emoji.as_str().to_owned(),
            user_ids: r.user_ids.iter().map(|u| u.to_string()).collect(),
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

fn parse_reactions(raw: Option<String>) -> StoreResult<Vec<Reaction>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let stored: Vec<StoredReaction> =
        serde_json::from_str(&raw).map_err(|_| corrupt("reactions"))?;
    stored
        .into_iter()
        .map(|r| {
            Ok(Reaction {
                emoji: Emoji::parse(&r.emoji).ok_or_else(|| corrupt("emoji"))?,
                user_ids: user_ids(&r.user_ids)?,
            })
        })
        .collect()
}

fn user_ids(raw: &[String]) -> StoreResult<Vec<UserId>> {
    raw.iter()
        .map(|u| UserId::parse(u).map_err(|_| corrupt("user id")))
        .collect()
}

/// Mentions as stored: a JSON array of user ids, or NULL for none.
fn mentions_json(mentions: &[UserId]) -> Option<String> {
    if mentions.is_empty() {
        return None;
    }
    let ids: Vec<&str> = mentions.iter().map(UserId::as_str).collect();
    serde_json::to_string(&ids).ok()
}
const THREAD_COLUMNS: &str = "id, title, member_ids, created_at, updated_at";

impl SqlStore {
    /// Connects (`sqlite://path` or `postgres://…`) and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            create_parent_dir(url)?;
        }
        let url = if sqlite && !url.contains("mode=") {
            // Create the database file on first start.
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&url)
            .await?;
        if sqlite {
            // WAL: readers never wait for the writer; with sqlx's default synchronous=FULL a
            // commit is on disk when it returns.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrations: {e}")))?;
        digest_member_keys(&pool).await?;
        let activity = activity::Activity::start(pool.clone(), sqlite);
        setup::prepare(&pool, sqlite).await?;
        let committer = commit::Committer::start(pool.clone(), sqlite, activity);
        Ok(Self {
            pool,
            sqlite,
            committer,
            members: DashMap::new(),
        })
    }

    fn message(row: &AnyRow) -> StoreResult<Message> {
        let text = |i: usize| row.try_get::<String, _>(i);
        let file_ids: Vec<String> =
            serde_json::from_str(&text(4)?).map_err(|_| corrupt("file ids"))?;
        Ok(Message {
            id: MessageId::parse(&text(0)?).map_err(|_| corrupt("message id"))?,
            thread_id: ThreadId::parse(&text(1)?).map_err(|_| corrupt("thread id"))?,
            author_id: UserId::parse(&text(2)?).map_err(|_| corrupt("author id"))?,
            body: text(3)?,
            file_ids: file_ids
                .iter()
                .map(|f| FileId::parse(f).map_err(|_| corrupt("file id")))
                .collect::<StoreResult<_>>()?,
            created_at: Timestamp::from_millis(row.try_get(5)?),
            client_id: row
                .try_get::<Option<String>, _>(6)?
                .and_then(|k| ClientMessageId::parse(&k)),
            edited_at: row
                .try_get::<Option<i64>, _>(7)?
                .map(Timestamp::from_millis),
            deleted_at: row
                .try_get::<Option<i64>, _>(8)?
                .map(Timestamp::from_millis),
            seq: u64::try_from(row.try_get::<i64, _>(9)?).map_err(|_| corrupt("seq"))?,
            reply_to: row
                .try_get::<Option<String>, _>(10)?
                .map(|id| MessageId::parse(&id).map_err(|_| corrupt("reply_to")))
                .transpose()?,
            reply_count: u64::try_from(row.try_get::<i64, _>(11)?)
                .map_err(|_| corrupt("reply_count"))?,
            mentions: match row.try_get::<Option<String>, _>(12)? {
                None => Vec::new(),
                Some(raw) => user_ids(
                    &serde_json::from_str::<Vec<String>>(&raw).map_err(|_| corrupt("mentions"))?,
                )?,
            },
            reactions: parse_reactions(row.try_get(13)?)?,
            changed_at: row
                .try_get::<Option<i64>, _>(14)?
                .map(Timestamp::from_millis),
        })
    }

    fn thread(row: &AnyRow) -> StoreResult<Thread> {
        let members: Vec<String> =
            serde_json::from_str(&row.try_get::<String, _>(2)?).map_err(|_| corrupt("members"))?;
        Ok(Thread {
            id: ThreadId::parse(&row.try_get::<String, _>(0)?).map_err(|_| corrupt("thread id"))?,
            title: row.try_get(1)?,
            member_ids: members
                .iter()
                .map(|m| UserId::parse(m).map_err(|_| corrupt("member id")))
                .collect::<StoreResult<_>>()?,
            created_at: Timestamp::from_millis(row.try_get(3)?),
            updated_at: Timestamp::from_millis(row.try_get(4)?),
        })
    }

    fn account(row: &AnyRow) -> StoreResult<Account> {
        Ok(Account {
            id: UserId::parse(&row.try_get::<String, _>(0)?).map_err(|_| corrupt("account id"))?,
            name: AccountName::parse(&row.try_get::<String, _>(1)?)
                .map_err(|_| corrupt("account name"))?,
        })
    }

    fn file(row: &AnyRow) -> StoreResult<FileRecord> {
        Ok(FileRecord {
            id: FileId::parse(&row.try_get::<String, _>(0)?).map_err(|_| corrupt("file id"))?,
            name: row.try_get(1)?,
            content_type: row.try_get(2)?,
            size: u64::try_from(row.try_get::<i64, _>(3)?).map_err(|_| corrupt("file size"))?,
            sha256: row.try_get(4)?,
            status: FileStatus::parse(&row.try_get::<String, _>(5)?)
                .ok_or_else(|| corrupt("file status"))?,
            uploader: UserId::parse(&row.try_get::<String, _>(6)?)
                .map_err(|_| corrupt("uploader"))?,
            created_at: Timestamp::from_millis(row.try_get(7)?),
        })
    }

    async fn seq_of(&self, thread: &ThreadId, id: &MessageId) -> StoreResult<i64> {
        sqlx::query("SELECT seq FROM messages WHERE thread_id = $1 AND id = $2")
            .bind(thread.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .ok_or(StoreError::UnknownAnchor)
    }

    /// `(thread_id, COUNT(*))` rows.
    async fn counts(&self, query: AnyQuery<'_>) -> StoreResult<Vec<(ThreadId, u64)>> {
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let thread = ThreadId::parse(&row.try_get::<String, _>(0)?)
                    .map_err(|_| corrupt("thread id"))?;
                Ok((
                    thread,
                    u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn thread_exists(&self, thread: &ThreadId) -> StoreResult<()> {
        sqlx::query("SELECT 1 FROM threads WHERE id = $1")
            .bind(thread.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|_| ())
            .ok_or(StoreError::ThreadNotFound)
    }
}

/// SQLite creates the database file but not its directory: make `./data/` on first start.
fn create_parent_dir(url: &str) -> StoreResult<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// Turns `limit + 1` rows fetched in the anchor's direction (the extra row says whether more
/// follow) into a window, oldest first.
fn window<T, Id>(mut rows: Vec<T>, limit: usize, anchor: &Anchor<Id>) -> Window<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    if matches!(anchor, Anchor::Newest | Anchor::Before(_)) {
        rows.reverse();
    }
    let (more_before, more_after) = match anchor {
        Anchor::Oldest => (false, more),
        Anchor::Newest => (more, false),
        Anchor::Before(_) => (more, true),
        Anchor::After(_) => (true, more),
    };
    Window {
        items: rows,
        more_before,
        more_after,
    }
}

/// The unique key of a member set: a digest of its sorted ids, so that the index entry stays
/// small. PostgreSQL's btree refuses entries over about 2.7 KB, and 1,000 members of 128-char ids
/// are 129 KB. `#` cannot occur in an id, so a digest is never mistaken for a list of ids.
fn member_digest(sorted_ids: &str) -> String {
    format!("#{:x}", Sha256::digest(sorted_ids.as_bytes()))
}

/// Databases written before keys were digests keep the sorted id list itself: digest those, once
/// (recorded in `data_migrations`, so later start-ups do no per-row work).
async fn digest_member_keys(pool: &AnyPool) -> StoreResult<()> {
    const NAME: &str = "digest_member_keys";
    let done = sqlx::query("SELECT 1 FROM data_migrations WHERE name = $1")
        .bind(NAME)
        .fetch_optional(pool)
        .await?;
    if done.is_some() {
        return Ok(());
    }
    let stale = sqlx::query("SELECT id, member_key FROM threads WHERE member_key NOT LIKE '#%'")
        .fetch_all(pool)
        .await?;
    for row in stale {
        let (id, key): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        sqlx::query("UPDATE threads SET member_key = $1 WHERE id = $2")
            .bind(member_digest(&key))
            .bind(id)
            .execute(pool)
            .await?;
    }
    // Another node may have finished it first.
    sqlx::query("INSERT INTO data_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(NAME)
        .execute(pool)
        .await?;
    Ok(())
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

fn bind_threads<'q>(query: AnyQuery<'q>, threads: &'q [ThreadId]) -> AnyQuery<'q> {
    threads
        .iter()
        .fold(query, |query, thread| query.bind(thread.as_str()))
}

/// `$from, $from+1, …`: `n` numbered parameters.
fn placeholders(from: usize, n: usize) -> String {
    let list: Vec<String> = (from..from + n).map(|i| format!("${i}")).collect();
    list.join(", ")
}

fn page_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        if self.sqlite { "sqlite" } else { "postgres" }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_thread_announced(
        &self,
        thread: Thread,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<(Thread, bool)> {
        let members = MemberSet::new(thread.member_ids.iter().cloned())
            .map_err(|_| StoreError::Conflict("invalid member set"))?;
        let key: Vec<&str> = members.key().iter().map(UserId::as_str).collect();
        let key = member_digest(&key.join(","));
        let listed: Vec<&str> = thread.member_ids.iter().map(UserId::as_str).collect();
        let mut tx = begin(&self.pool, self.sqlite).await?;
        let inserted = sqlx::query(
            "INSERT INTO threads (id, title, member_ids, member_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_key) DO NOTHING RETURNING id",
        )
        .bind(thread.id.as_str())
        .bind(thread.title.clone())
        .bind(serde_json::to_string(&listed).unwrap_or_default())
        .bind(&key)
        .bind(thread.created_at.as_millis())
        .bind(thread.updated_at.as_millis())
        .fetch_optional(tx.conn())
        .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            let row = sqlx::query(&format!(
                "SELECT {THREAD_COLUMNS} FROM threads WHERE member_key = $1"
            ))
            .bind(&key)
            .fetch_one(&self.pool)
            .await?;
            return Ok((Self::thread(&row)?, false));
        }
        for member in &thread.member_ids {
            sqlx::query(
                "INSERT INTO thread_members (user_id, thread_id, activity) VALUES ($1, $2, $3)",
            )
            .bind(member.as_str())
            .bind(thread.id.as_str())
            .bind(thread.updated_at.as_millis())
            .execute(tx.conn())
            .await?;
        }
        outbox::record(&mut tx, &events).await?;
        tx.commit().await?;
        Ok((thread, true))
    }

    async fn thread(&self, id: &ThreadId) -> StoreResult<Thread> {
        let row = sqlx::query(&format!(
            "SELECT {THREAD_COLUMNS} FROM threads WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::ThreadNotFound)?;
        Self::thread(&row)
    }

    async fn members(&self, id: &ThreadId) -> StoreResult<Arc<[UserId]>> {
        if let Some(members) = self.members.get(id) {
            return Ok(Arc::clone(&members));
        }
        let mut members = self.thread(id).await?.member_ids;
        members.sort_unstable();
        let members: Arc<[UserId]> = members.into();
        if self.members.len() >= MEMBER_CACHE {
            self.members.clear();
        }
        self.members.insert(id.clone(), Arc::clone(&members));
        Ok(members)
    }

    async fn append_announced(
        &self,
        message: Message,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)> {
        self.committer.append(message, announce).await
    }

    async fn messages(
        &self,
        thread: &ThreadId,
        anchor: Anchor<MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>> {
        self.thread_exists(thread).await?;
        let select = |filter: &str, order: &str| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 {filter} \
                 ORDER BY seq {order} LIMIT $2"
            )
        };
        let (sql, pivot) = match &anchor {
            Anchor::Oldest => (select("", "ASC"), None),
            Anchor::Newest => (select("", "DESC"), None),
            Anchor::Before(id) => (
                select("AND seq < $3", "DESC"),
                Some(self.seq_of(thread, id).await?),
            ),
            Anchor::After(id) => (
                select("AND seq > $3", "ASC"),
                Some(self.seq_of(thread, id).await?),
            ),
        };
        let mut query = sqlx::query(&sql)
            .bind(thread.as_str())
            .bind(page_limit(limit));
        if let Some(pivot) = pivot {
            query = query.bind(pivot);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let rows = rows
            .iter()
            .map(Self::message)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(window(rows, limit, &anchor))
    }

    async fn last_message(&self, thread: &ThreadId) -> StoreResult<Option<Message>> {
        self.thread_exists(thread).await?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT 1"
        ))
        .bind(thread.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::message).transpose()
    }

    async fn message_at(&self, thread: &ThreadId, seq: u64) -> StoreResult<Option<Message>> {
        let seq = i64::try_from(seq).map_err(|_| StoreError::MessageNotFound)?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 AND seq = $2"
        ))
        .bind(thread.as_str())
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::message).transpose()
    }

    async fn message(&self, thread: &ThreadId, id: &MessageId) -> StoreResult<Message> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 AND id = $2"
        ))
        .bind(thread.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Self::message(&row),
            None => {
                self.thread_exists(thread).await?;
                Err(StoreError::MessageNotFound)
            }
        }
    }

    async fn replace_announced(
        &self,
        message: Message,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<()> {
        let changed_at = message
            .changed_at
            .ok_or(StoreError::Conflict("a replaced message must be changed"))?;
        let file_ids: Vec<&str> = message.file_ids.iter().map(FileId::as_str).collect();
        // Reactions are left as stored (they change through `react`), but a tombstone has none.
        let update = sqlx::query(
            "UPDATE messages SET body = $3, file_ids = $4, edited_at = $5, deleted_at = $6, \
             changed_at = $7, reactions = CASE WHEN $6 IS NULL THEN reactions END \
             WHERE thread_id = $1 AND id = $2",
        )
        .bind(message.thread_id.as_str())
        .bind(message.id.as_str())
        .bind(message.body.clone())
        .bind(serde_json::to_string(&file_ids).unwrap_or_default())
        .bind(message.edited_at.map(Timestamp::as_millis))
        .bind(message.deleted_at.map(Timestamp::as_millis))
        .bind(changed_at.as_millis());
        let updated = if events.is_empty() {
            update.execute(&self.pool).await?
        } else {
            let mut tx = begin(&self.pool, self.sqlite).await?;
            let updated = update.execute(tx.conn()).await?;
            outbox::record(&mut tx, &events).await?;
            tx.commit().await?;
            updated
        };
        if updated.rows_affected() == 0 {
            return Err(StoreError::MessageNotFound);
        }
        Ok(())
    }

    async fn changed_messages(
        &self,
        thread: &ThreadId,
        until: &MessageId,
        since: Timestamp,
    ) -> StoreResult<Vec<Message>> {
        let until = self.seq_of(thread, until).await?;
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE thread_id = $1 AND changed_at >= $2 AND seq <= $3 ORDER BY seq"
        ))
        .bind(thread.as_str())
        .bind(since.as_millis())
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::message).collect()
    }

    async fn react(
        &self,
        thread: &ThreadId,
        id: &MessageId,
        user: &UserId,
        emoji: &Emoji,
        add: bool,
        at: Timestamp,
        announce: Option<Announce>,
    ) -> StoreResult<(Message, bool)> {
        // The row is locked from the read to the write: concurrent reactions, from any node,
        // apply one after the other. (SQLite's `BEGIN IMMEDIATE` already holds the database.)
        let lock = if self.sqlite { "" } else { " FOR UPDATE" };
        let mut tx = begin(&self.pool, self.sqlite).await?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 AND id = $2{lock}"
        ))
        .bind(thread.as_str())
        .bind(id.as_str())
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            self.thread_exists(thread).await?;
            return Err(StoreError::MessageNotFound);
        };
        let mut message = Self::message(&row)?;
        if message.is_deleted() {
            tx.rollback().await?;
            return Err(StoreError::Conflict("message_deleted"));
        }
        let changed = match reaction::apply(&mut message.reactions, emoji, user, add) {
            Ok(changed) => changed,
            Err(_) => {
                tx.rollback().await?;
                return Err(StoreError::Conflict("too_many_reactions"));
            }
        };
        if !changed {
            tx.rollback().await?;
            return Ok((message, false));
        }
        message.changed_at = Some(at);
        sqlx::query(
            "UPDATE messages SET reactions = $3, changed_at = $4 WHERE thread_id = $1 AND id = $2",
        )
        .bind(thread.as_str())
        .bind(id.as_str())
        .bind(reactions_json(&message.reactions))
        .bind(at.as_millis())
        .execute(tx.conn())
        .await?;
        if let Some(announce) = announce {
            outbox::record(&mut tx, &announce(&message)).await?;
        }
        tx.commit().await?;
        Ok((message, true))
    }

    async fn replies(
        &self,
        thread: &ThreadId,
        parent: &MessageId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> StoreResult<Window<Message>> {
        self.seq_of(thread, parent).await.map_err(|e| match e {
            StoreError::UnknownAnchor => StoreError::MessageNotFound,
            other => other,
        })?;
        let pivot = match after {
            None => 0,
            Some(after) => {
                let reply = self.message(thread, after).await.map_err(|e| match e {
                    StoreError::MessageNotFound => StoreError::UnknownAnchor,
                    other => other,
                })?;
                if reply.reply_to.as_ref() != Some(parent) {
                    return Err(StoreError::UnknownAnchor);
                }
                i64::try_from(reply.seq).map_err(|_| corrupt("seq"))?
            }
        };
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 AND reply_to = $2 \
             AND seq > $3 ORDER BY seq LIMIT $4"
        ))
        .bind(thread.as_str())
        .bind(parent.as_str())
        .bind(pivot)
        .bind(page_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows
            .iter()
            .map(Self::message)
            .collect::<StoreResult<Vec<_>>>()?;
        let more_after = items.len() > limit;
        items.truncate(limit);
        Ok(Window {
            items,
            more_before: after.is_some(),
            more_after,
        })
    }

    async fn search(&self, search: &Search<'_>) -> StoreResult<Vec<Found>> {
        search::run(&self.pool, self.sqlite, search).await
    }

    async fn unread_mentions(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64> {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM message_mentions mm JOIN messages m \
             ON m.thread_id = mm.thread_id AND m.seq = mm.seq \
             WHERE mm.user_id = $1 AND mm.thread_id = $2 AND m.author_id <> $1 \
             AND m.deleted_at IS NULL AND mm.seq > COALESCE((SELECT seq FROM read_positions \
             WHERE thread_id = $2 AND user_id = $1), 0)",
        )
        .bind(user.as_str())
        .bind(thread.as_str())
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn mark_read(
        &self,
        thread: &ThreadId,
        user: &UserId,
        message: &MessageId,
    ) -> StoreResult<(MessageId, bool)> {
        let seq = self.seq_of(thread, message).await.map_err(|e| match e {
            StoreError::UnknownAnchor => StoreError::MessageNotFound,
            other => other,
        })?;
        let moved = sqlx::query(
            "INSERT INTO read_positions (thread_id, user_id, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (thread_id, user_id) DO UPDATE SET seq = excluded.seq \
             WHERE read_positions.seq < excluded.seq",
        )
        .bind(thread.as_str())
        .bind(user.as_str())
        .bind(seq)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        let current: String = sqlx::query(
            "SELECT m.id FROM read_positions r JOIN messages m \
             ON m.thread_id = r.thread_id AND m.seq = r.seq \
             WHERE r.thread_id = $1 AND r.user_id = $2",
        )
        .bind(thread.as_str())
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        let current = MessageId::parse(&current).map_err(|_| corrupt("message id"))?;
        Ok((current, moved))
    }

    async fn unread_count(&self, thread: &ThreadId, user: &UserId) -> StoreResult<u64> {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM messages WHERE thread_id = $1 AND author_id <> $2 \
             AND deleted_at IS NULL AND seq > COALESCE((SELECT seq FROM read_positions \
             WHERE thread_id = $3 AND user_id = $4), 0)",
        )
        .bind(thread.as_str())
        .bind(user.as_str())
        .bind(thread.as_str())
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn summaries(
        &self,
        threads: &[ThreadId],
        reader: &UserId,
    ) -> StoreResult<HashMap<ThreadId, Summary>> {
        if threads.is_empty() {
            return Ok(HashMap::new());
        }
        // A thread's `last_seq` names its newest message: one index probe per thread.
        let newest = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE (thread_id, seq) IN \
             (SELECT id, last_seq FROM threads WHERE id IN ({}))",
            placeholders(1, threads.len())
        );
        let mut out: HashMap<ThreadId, Summary> = HashMap::new();
        for row in bind_threads(sqlx::query(&newest), threads)
            .fetch_all(&self.pool)
            .await?
        {
            let message = Self::message(&row)?;
            out.insert(
                message.thread_id.clone(),
                Summary {
                    last_message: Some(message),
                    ..Summary::default()
                },
            );
        }
        let unread = format!(
            "SELECT m.thread_id, COUNT(*) FROM messages m LEFT JOIN read_positions r \
             ON r.thread_id = m.thread_id AND r.user_id = $1 \
             WHERE m.thread_id IN ({}) AND m.author_id <> $1 AND m.deleted_at IS NULL \
             AND m.seq > COALESCE(r.seq, 0) GROUP BY m.thread_id",
            placeholders(2, threads.len())
        );
        let query = bind_threads(sqlx::query(&unread).bind(reader.as_str()), threads);
        for (thread, count) in self.counts(query).await? {
            if let Some(summary) = out.get_mut(&thread) {
                summary.unread_count = count;
            }
        }
        let mentions = format!(
            "SELECT mm.thread_id, COUNT(*) FROM message_mentions mm JOIN messages m \
             ON m.thread_id = mm.thread_id AND m.seq = mm.seq LEFT JOIN read_positions r \
             ON r.thread_id = mm.thread_id AND r.user_id = $1 \
             WHERE mm.user_id = $1 AND mm.thread_id IN ({}) AND m.author_id <> $1 \
             AND m.deleted_at IS NULL AND mm.seq > COALESCE(r.seq, 0) GROUP BY mm.thread_id",
            placeholders(2, threads.len())
        );
        let query = bind_threads(sqlx::query(&mentions).bind(reader.as_str()), threads);
        for (thread, count) in self.counts(query).await? {
            if let Some(summary) = out.get_mut(&thread) {
                summary.unread_mentions = count;
            }
        }
        // Threads without messages.
        for thread in threads {
            out.entry(thread.clone()).or_default();
        }
        Ok(out)
    }

    async fn threads_of(
        &self,
        member: &UserId,
        anchor: Anchor<ThreadId>,
        limit: usize,
    ) -> StoreResult<Window<Thread>> {
        activity::apply_for(&self.pool, self.sqlite, member.as_str()).await;
        // The page is chosen on the member's index alone (a range scan whatever the planner's
        // statistics say), then joined to its threads.
        let select = |filter: &str, order: &str| {
            format!(
                "SELECT t.id, t.title, t.member_ids, t.created_at, t.updated_at \
                 FROM (SELECT thread_id, activity FROM thread_members m \
                 WHERE m.user_id = $1 {filter} \
                 ORDER BY m.activity {order}, m.thread_id {order} LIMIT $2) page \
                 JOIN threads t ON t.id = page.thread_id \
                 ORDER BY page.activity {order}, page.thread_id {order}"
            )
        };
        let pivot = match &anchor {
            Anchor::Before(id) | Anchor::After(id) => Some(
                sqlx::query(
                    "SELECT activity FROM thread_members WHERE user_id = $1 AND thread_id = $2",
                )
                .bind(member.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::UnknownAnchor)?
                .try_get::<i64, _>(0)?,
            ),
            _ => None,
        };
        let sql = match &anchor {
            Anchor::Oldest => select("", "ASC"),
            Anchor::Newest => select("", "DESC"),
            // Row values, so both engines range-scan the (user_id, activity, thread_id) index;
            // the equivalent OR form made PostgreSQL filter half a million rows.
            Anchor::Before(_) => select("AND (m.activity, m.thread_id) < ($3, $4)", "DESC"),
            Anchor::After(_) => select("AND (m.activity, m.thread_id) > ($3, $4)", "ASC"),
        };
        let mut query = sqlx::query(&sql)
            .bind(member.as_str())
            .bind(page_limit(limit));
        if let (Some(pivot), Anchor::Before(id) | Anchor::After(id)) = (pivot, &anchor) {
            query = query.bind(pivot).bind(id.as_str());
        }
        let threads = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Self::thread)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(window(threads, limit, &anchor))
    }

    async fn create_account(&self, name: AccountName) -> StoreResult<Account> {
        // Ids are the next free position; a concurrent creator on another node may take it
        // first, so retry (bounded) with the next one.
        for _ in 0..32 {
            let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM accounts")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
            let inserted = sqlx::query(
                "INSERT INTO accounts (seq, id, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(next)
            .bind(next.to_string())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if inserted.is_some() {
                return Ok(Account {
                    id: UserId::parse(&next.to_string()).map_err(|_| corrupt("account id"))?,
                    name,
                });
            }
        }
        Err(StoreError::Backend(
            "could not allocate an account id".into(),
        ))
    }

    async fn insert_account(&self, account: Account) -> StoreResult<Account> {
        let seq = match account.id.as_str().parse::<i64>() {
            Ok(n) => n,
            Err(_) => sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM accounts")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        };
        sqlx::query("INSERT INTO accounts (seq, id, name) VALUES ($1, $2, $3)")
            .bind(seq)
            .bind(account.id.as_str())
            .bind(account.name.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict("account id taken"),
                other => other,
            })?;
        Ok(account)
    }

    async fn account(&self, id: &UserId) -> StoreResult<Account> {
        let row = sqlx::query("SELECT id, name FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::AccountNotFound)?;
        Self::account(&row)
    }

    async fn save_account(&self, account: Account) -> StoreResult<bool> {
        // Rename, else insert at the next position; another node may take that position (or
        // create this account) first, so retry.
        for _ in 0..32 {
            let renamed = sqlx::query("UPDATE accounts SET name = $1 WHERE id = $2")
                .bind(account.name.as_str())
                .bind(account.id.as_str())
                .execute(&self.pool)
                .await?;
            if renamed.rows_affected() > 0 {
                return Ok(false);
            }
            let inserted = sqlx::query(
                "INSERT INTO accounts (seq, id, name) \
                 SELECT COALESCE(MAX(seq), 0) + 1, $1, $2 FROM accounts WHERE true \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(account.id.as_str())
            .bind(account.name.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if inserted.is_some() {
                return Ok(true);
            }
        }
        Err(StoreError::Backend("could not save the account".into()))
    }

    async fn accounts(&self, after: Option<&UserId>, limit: usize) -> StoreResult<Vec<Account>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match after {
            None => {
                sqlx::query("SELECT id, name FROM accounts ORDER BY seq LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(after) => {
                let seq: i64 = sqlx::query("SELECT seq FROM accounts WHERE id = $1")
                    .bind(after.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::UnknownAnchor)?
                    .try_get(0)?;
                sqlx::query("SELECT id, name FROM accounts WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(Self::account).collect()
    }

    async fn account_names(&self, ids: &[UserId]) -> StoreResult<HashMap<UserId, AccountName>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT id, name FROM accounts WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Self::account(row).map(|a| (a.id, a.name)))
            .collect()
    }

    async fn insert_file(&self, file: FileRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO files (id, name, content_type, size, sha256, status, uploader, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(file.id.as_str())
        .bind(file.name)
        .bind(file.content_type)
        .bind(i64::try_from(file.size).unwrap_or(i64::MAX))
        .bind(file.sha256)
        .bind(file.status.as_str())
        .bind(file.uploader.as_str())
        .bind(file.created_at.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn stale_uploads(&self, before: Timestamp) -> StoreResult<Vec<FileRecord>> {
        sqlx::query(
            "SELECT id, name, content_type, size, sha256, status, uploader, created_at FROM files \
             WHERE status = $1 AND created_at < $2",
        )
        .bind(FileStatus::Processing.as_str())
        .bind(before.as_millis())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Self::file)
        .collect()
    }

    async fn finish_file_announced(
        &self,
        id: &FileId,
        status: FileStatus,
        sha256: Option<String>,
        events: Vec<OutboxEvent>,
    ) -> StoreResult<FileRecord> {
        let update = sqlx::query("UPDATE files SET status = $2, sha256 = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(sha256);
        if events.is_empty() {
            update.execute(&self.pool).await?;
        } else {
            let mut tx = begin(&self.pool, self.sqlite).await?;
            update.execute(tx.conn()).await?;
            outbox::record(&mut tx, &events).await?;
            tx.commit().await?;
        }
        self.file(id).await
    }

    async fn outbox_claim(
        &self,
        endpoints: &[String],
        node: &str,
        now: Timestamp,
        lease: std::time::Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        outbox::claim(&self.pool, self.sqlite, endpoints, node, now, lease, limit).await
    }

    async fn outbox_settle(&self, settled: &[Settled]) -> StoreResult<()> {
        outbox::settle(&self.pool, self.sqlite, settled).await
    }

    async fn outbox_pending(&self, endpoints: &[String]) -> StoreResult<u64> {
        outbox::pending(&self.pool, endpoints).await
    }

    async fn file(&self, id: &FileId) -> StoreResult<FileRecord> {
        let row = sqlx::query(
            "SELECT id, name, content_type, size, sha256, status, uploader, created_at FROM files WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::FileNotFound)?;
        Self::file(&row)
    }

    async fn files(&self, ids: &[FileId]) -> StoreResult<Vec<FileRecord>> {
        let mut files = Vec::with_capacity(ids.len());
        for id in ids {
            files.push(self.file(id).await?);
        }
        Ok(files)
    }

    async fn file_threads(&self, id: &FileId) -> StoreResult<Vec<ThreadId>> {
        sqlx::query("SELECT thread_id FROM message_files WHERE file_id = $1")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| ThreadId::parse(&r.try_get::<String, _>(0)?).map_err(|_| corrupt("thread id")))
            .collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MemberSet, Thread};

    #[tokio::test]
    async fn member_sets_of_older_databases_still_resolve_to_their_thread() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/old.db", dir.path().display());
        let members = MemberSet::new(["bob", "ann"].map(|id| UserId::parse(id).unwrap())).unwrap();
        let store = SqlStore::connect(&url).await.unwrap();
        let (thread, created) = store
            .create_or_resolve_thread(Thread::new(None, &members))
            .await
            .unwrap();
        assert!(created);
        // As written before keys were digests (and before the rewrite was recorded).
        sqlx::query("UPDATE threads SET member_key = 'ann,bob'")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM data_migrations")
            .execute(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;

        let store = SqlStore::connect(&url).await.unwrap();
        let (found, created) = store
            .create_or_resolve_thread(Thread::new(None, &members))
            .await
            .unwrap();
        assert!(!created, "resolved, not created again");
        assert_eq!(found.id, thread.id);

        // Recorded as done: later start-ups do no per-row work (a key written the old way now
        // stays as it is).
        sqlx::query("UPDATE threads SET member_key = 'ann,bob'")
            .execute(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;
        let store = SqlStore::connect(&url).await.unwrap();
        let key: String = sqlx::query_scalar("SELECT member_key FROM threads")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(key, "ann,bob", "the rewrite ran once");
    }
}
