//! Group commit. Appends queue for one writer task, which stores everything queued so far in
//! one transaction: one fsync, and a handful of statements, for a whole batch. Each caller is
//! answered once the batch holding its message has committed, so an acknowledgement still
//! means "on disk". While a batch commits, the next one gathers: the busier the server, the
//! larger the batches (PostgreSQL's WAL flush and SQLite's own advice for bulk writes work the
//! same way); an idle server commits a lone post at once, with no added delay.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use sqlx::{Any, AnyPool, Row, query::Query};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{
    MESSAGE_COLUMNS, NEW_MESSAGE_COLUMNS, SqlStore, Tx, activity::Activity, begin, corrupt,
    mentions_json, outbox, retryable,
};
use crate::{
    domain::{ClientMessageId, FileId, Message, ThreadId, Timestamp, UserId},
    store::{Announce, StoreError, StoreResult},
};

/// Messages per transaction: 11 parameters each stays far below both engines' limits.
const MAX_BATCH: usize = 256;
/// Appends waiting for the writer before callers wait to queue.
const QUEUE: usize = 4 * MAX_BATCH;
/// Attempts of a batch that lost a race with another node's idempotent retry.
const ATTEMPTS: usize = 3;

type Outcome = StoreResult<(Message, bool)>;

struct Append {
    message: Message,
    /// The outbox events of the stored message, written in its batch's transaction.
    announce: Option<Announce>,
    reply: oneshot::Sender<Outcome>,
}

/// The queue in front of the writer task.
pub(super) struct Committer {
    queue: mpsc::Sender<Append>,
}

impl Committer {
    pub(super) fn start(pool: AnyPool, sqlite: bool, activity: Activity) -> Self {
        let (queue, appends) = mpsc::channel(QUEUE);
        let appends = Arc::new(Mutex::new(appends));
        // Should the writer ever panic, the callers of its batch get an error (their answer
        // is dropped) and a new writer takes the queue: posting heals without a restart.
        tokio::spawn(async move {
            loop {
                let writer = tokio::spawn(run(
                    pool.clone(),
                    sqlite,
                    Arc::clone(&appends),
                    activity.clone(),
                ));
                match writer.await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "the message writer failed; restarting it")
                    }
                }
            }
        });
        Self { queue }
    }

    pub(super) async fn append(&self, message: Message, announce: Option<Announce>) -> Outcome {
        let stopped = || StoreError::Unavailable("the store is shutting down".into());
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Append {
                message,
                announce,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Ends when the queue closes (the store was dropped).
async fn run(
    pool: AnyPool,
    sqlite: bool,
    appends: Arc<Mutex<mpsc::Receiver<Append>>>,
    activity: Activity,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if appends.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let messages: Vec<(&Message, Option<&Announce>)> = batch
            .iter()
            .map(|a| (&a.message, a.announce.as_ref()))
            .collect();
        let outcomes = store_batch(&pool, sqlite, &messages).await;
        if outcomes.iter().any(|o| matches!(o, Ok((_, true)))) {
            activity.marked();
        }
        // A caller that gave up (its request was cancelled) no longer listens: its message
        // is stored all the same.
        for (append, outcome) in batch.drain(..).zip(outcomes) {
            let _ = append.reply.send(outcome);
        }
    }
}

/// Stores a batch, or, when the batch as a whole is refused for something one message
/// carries, each message on its own, so that one bad message fails alone.
async fn store_batch(pool: &AnyPool, sqlite: bool, batch: &[Queued<'_>]) -> Vec<Outcome> {
    match attempt(pool, sqlite, batch).await {
        Ok(outcomes) => outcomes,
        Err(e @ (StoreError::Unavailable(_) | StoreError::Full(_))) => {
            batch.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) if batch.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut outcomes = Vec::with_capacity(batch.len());
            for message in batch {
                outcomes.push(
                    attempt(pool, sqlite, &[*message])
                        .await
                        .and_then(|mut o| o.pop().expect("one outcome per message")),
                );
            }
            outcomes
        }
    }
}

/// A batch's transaction, retried when another node stored one of its idempotent posts first
/// (the retry finds and returns that message instead).
async fn attempt(pool: &AnyPool, sqlite: bool, queued: &[Queued<'_>]) -> StoreResult<Vec<Outcome>> {
    let batch: Vec<&Message> = queued.iter().map(|q| q.0).collect();
    for _ in 0..ATTEMPTS {
        let mut tx = begin(pool, sqlite).await?;
        match write(&mut tx, sqlite, &batch, queued).await {
            Ok(Some(outcomes)) => {
                tx.commit().await?;
                return Ok(outcomes);
            }
            Ok(None) => tx.rollback().await?,
            Err(e) if retryable(&e) => tx.rollback().await?,
            Err(e) => {
                // A failed statement may have aborted the transaction: end it before answering.
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        }
    }
    Err(StoreError::Backend(
        "a batch of messages kept conflicting with concurrent writes".into(),
    ))
}

/// A queued append: the message, and what it announces once stored.
type Queued<'a> = (&'a Message, Option<&'a Announce>);

/// The idempotency key of a message that has one.
type Key<'a> = (&'a ThreadId, &'a UserId, &'a ClientMessageId);

fn key(m: &Message) -> Option<Key<'_>> {
    m.client_id
        .as_ref()
        .map(|k| (&m.thread_id, &m.author_id, k))
}

/// What becomes of each message of a batch.
enum Plan {
    /// Stored earlier under the same idempotency key.
    Stored(Box<Message>),
    /// A retry of the batch's message at this index, which is new.
    SameAs(usize),
    New,
}

/// The batch's statements. `None`: a message collided with one committed meanwhile by another
/// node; roll back and try again.
async fn write(
    tx: &mut Tx,
    sqlite: bool,
    batch: &[&Message],
    queued: &[Queued<'_>],
) -> Result<Option<Vec<Outcome>>, sqlx::Error> {
    let stored = stored_by_key(tx, batch).await?;
    let mut first_of_key: HashMap<Key, usize> = HashMap::new();
    let plans: Vec<Plan> = batch
        .iter()
        .enumerate()
        .map(|(i, m)| match key(m) {
            Some(k) => match (stored.get(&k), first_of_key.get(&k)) {
                (Some(earlier), _) => Plan::Stored(Box::new(earlier.clone())),
                (None, Some(&j)) => Plan::SameAs(j),
                (None, None) => {
                    first_of_key.insert(k, i);
                    Plan::New
                }
            },
            None => Plan::New,
        })
        .collect();

    // Each thread's new messages, in arrival order; threads in id order, so that concurrent
    // writers lock thread rows in the same order.
    let mut per_thread: BTreeMap<&ThreadId, Vec<usize>> = BTreeMap::new();
    for (i, plan) in plans.iter().enumerate() {
        if matches!(plan, Plan::New) {
            per_thread.entry(&batch[i].thread_id).or_default().push(i);
        }
    }
    let last_seqs = reserve_positions(tx, batch, &per_thread).await?;

    // Each new message's position and time.
    let mut seqs: HashMap<usize, (i64, i64)> = HashMap::new();
    for (thread, indexes) in &per_thread {
        if let Some(&(last, at)) = last_seqs.get(*thread) {
            let first = last - indexes.len() as i64 + 1;
            for (offset, &i) in indexes.iter().enumerate() {
                seqs.insert(i, (first + offset as i64, at));
            }
        }
    }
    let mut new: Vec<usize> = seqs.keys().copied().collect();
    new.sort_unstable();
    if !new.is_empty() {
        let inserted = insert_messages(tx, sqlite, batch, &new, &seqs).await?;
        if inserted < new.len() {
            return Ok(None);
        }
        insert_file_links(tx, batch, &new).await?;
        count_replies(tx, batch, &new, &seqs).await?;
        insert_mentions(tx, batch, &new, &seqs).await?;
        mark_activity(tx, &per_thread, &last_seqs).await?;
    }

    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    for (i, plan) in plans.into_iter().enumerate() {
        outcomes.push(match plan {
            Plan::Stored(m) => Ok((*m, false)),
            Plan::SameAs(j) => match &outcomes[j] {
                Ok((m, _)) => Ok((m.clone(), false)),
                Err(e) => Err(e.clone()),
            },
            Plan::New => match seqs.get(&i) {
                Some(&(seq, at)) => u64::try_from(seq).map_err(|_| corrupt("seq")).map(|seq| {
                    let created_at = Timestamp::from_millis(at);
                    (
                        Message {
                            seq,
                            created_at,
                            ..batch[i].clone()
                        },
                        true,
                    )
                }),
                None => Err(StoreError::ThreadNotFound),
            },
        });
    }
    // What the new messages announce, as stored.
    let mut events = Vec::new();
    for &i in &new {
        if let (Some(announce), Ok((stored, true))) = (queued[i].1, &outcomes[i]) {
            events.extend(announce(stored));
        }
    }
    outbox::record(tx, &events).await?;
    Ok(Some(outcomes))
}

/// Messages already stored under the idempotency keys the batch carries.
async fn stored_by_key<'a>(
    tx: &mut Tx,
    batch: &[&'a Message],
) -> Result<HashMap<Key<'a>, Message>, sqlx::Error> {
    let keyed: Vec<Key> = batch.iter().filter_map(|m| key(m)).collect();
    if keyed.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE client_id IS NOT NULL \
         AND (thread_id, author_id, client_id) IN (VALUES {})",
        tuples(keyed.len(), 3)
    );
    let mut query = sqlx::query(&sql);
    for (thread, author, key) in &keyed {
        query = query
            .bind(thread.as_str())
            .bind(author.as_str())
            .bind(key.as_str());
    }
    let mut found = HashMap::new();
    for row in query.fetch_all(tx.conn()).await? {
        let message = SqlStore::message(&row).map_err(decode_error)?;
        if let Some(&k) = keyed.iter().find(|k| {
            *k.0 == message.thread_id
                && *k.1 == message.author_id
                && message.client_id.as_ref() == Some(k.2)
        }) {
            found.insert(k, message);
        }
    }
    Ok(found)
}

/// Moves each thread's `last_seq` past its new messages, in one statement; returns the new
/// `last_seq` and `updated_at` of every thread that exists (its row lock orders appends
/// across nodes).
async fn reserve_positions(
    tx: &mut Tx,
    batch: &[&Message],
    per_thread: &BTreeMap<&ThreadId, Vec<usize>>,
) -> Result<HashMap<ThreadId, (i64, i64)>, sqlx::Error> {
    if per_thread.is_empty() {
        return Ok(HashMap::new());
    }
    // `updated_at` never moves back: it is the newest message's time, and the batch's
    // messages take it (below), so times never decrease along a thread's history.
    let sql = format!(
        "UPDATE threads SET last_seq = threads.last_seq + v.column2, \
         updated_at = CASE WHEN threads.updated_at > v.column3 THEN threads.updated_at \
         ELSE v.column3 END \
         FROM (VALUES {}) AS v WHERE threads.id = v.column1 \
         RETURNING threads.id, threads.last_seq, threads.updated_at",
        tuples(per_thread.len(), 3)
    );
    let mut query = sqlx::query(&sql);
    for (thread, indexes) in per_thread {
        query = query
            .bind(thread.as_str())
            .bind(indexes.len() as i64)
            .bind(latest(batch, indexes));
    }
    let mut last = HashMap::new();
    for row in query.fetch_all(tx.conn()).await? {
        let id: String = row.try_get(0)?;
        let id = ThreadId::parse(&id).map_err(|_| decode_error(corrupt("thread id")))?;
        last.insert(id, (row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(2)?));
    }
    Ok(last)
}

/// The newest of these messages' times: the thread's activity after the batch.
fn latest(batch: &[&Message], indexes: &[usize]) -> i64 {
    indexes
        .iter()
        .map(|&i| batch[i].created_at.as_millis())
        .max()
        .unwrap_or_default()
}

/// Inserts the new messages in one statement; returns how many went in (fewer when another
/// node committed one of their idempotency keys since this batch looked).
async fn insert_messages(
    tx: &mut Tx,
    sqlite: bool,
    batch: &[&Message],
    new: &[usize],
    seqs: &HashMap<usize, (i64, i64)>,
) -> Result<usize, sqlx::Error> {
    // The store-wide order search pages by: PostgreSQL takes it from a sequence (the column's
    // default); SQLite, which has one writer at a time, from the newest so far.
    let first_pos = match sqlite {
        true => Some(
            sqlx::query("SELECT COALESCE(MAX(pos), 0) + 1 FROM messages")
                .fetch_one(tx.conn())
                .await?
                .try_get::<i64, _>(0)?,
        ),
        false => None,
    };
    let (columns, width) = match first_pos {
        Some(_) => (format!("{NEW_MESSAGE_COLUMNS}, seq, pos"), 11),
        None => (format!("{NEW_MESSAGE_COLUMNS}, seq"), 10),
    };
    let sql = format!(
        "INSERT INTO messages ({columns}) VALUES {} ON CONFLICT DO NOTHING",
        tuples(new.len(), width)
    );
    let mut query: Query<'_, Any, _> = sqlx::query(&sql);
    for (k, &i) in new.iter().enumerate() {
        let m = batch[i];
        let file_ids: Vec<&str> = m.file_ids.iter().map(FileId::as_str).collect();
        query = query
            .bind(m.id.as_str())
            .bind(m.thread_id.as_str())
            .bind(m.author_id.as_str())
            .bind(m.body.as_str())
            .bind(serde_json::to_string(&file_ids).unwrap_or_default())
            .bind(seqs[&i].1)
            .bind(m.client_id.as_ref().map(ClientMessageId::as_str))
            .bind(m.reply_to.as_ref().map(|p| p.as_str()))
            .bind(mentions_json(&m.mentions))
            .bind(seqs[&i].0);
        if let Some(first) = first_pos {
            query = query.bind(first + k as i64);
        }
    }
    let done = query.execute(tx.conn()).await?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

/// Records which threads the new messages' files are shared in.
async fn insert_file_links(
    tx: &mut Tx,
    batch: &[&Message],
    new: &[usize],
) -> Result<(), sqlx::Error> {
    let mut links: Vec<(&str, &str)> = new
        .iter()
        .flat_map(|&i| {
            batch[i]
                .file_ids
                .iter()
                .map(move |f| (f.as_str(), batch[i].thread_id.as_str()))
        })
        .collect();
    links.sort_unstable();
    links.dedup();
    for chunk in links.chunks(MAX_BATCH) {
        let sql = format!(
            "INSERT INTO message_files (file_id, thread_id) VALUES {} ON CONFLICT DO NOTHING",
            tuples(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for (file, thread) in chunk {
            query = query.bind(*file).bind(*thread);
        }
        query.execute(tx.conn()).await?;
    }
    Ok(())
}

/// Adds the new replies to their parents' `reply_count` (and marks the parents changed, for
/// rejoining clients), in one statement.
async fn count_replies(
    tx: &mut Tx,
    batch: &[&Message],
    new: &[usize],
    seqs: &HashMap<usize, (i64, i64)>,
) -> Result<(), sqlx::Error> {
    let mut parents: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
    for &i in new {
        if let Some(parent) = &batch[i].reply_to {
            let entry = parents
                .entry((batch[i].thread_id.as_str(), parent.as_str()))
                .or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(seqs[&i].1);
        }
    }
    if parents.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE messages SET reply_count = messages.reply_count + v.column3, \
         changed_at = v.column4 FROM (VALUES {}) AS v \
         WHERE messages.thread_id = v.column1 AND messages.id = v.column2",
        tuples(parents.len(), 4)
    );
    let mut query = sqlx::query(&sql);
    for ((thread, parent), (count, at)) in parents {
        query = query.bind(thread).bind(parent).bind(count).bind(at);
    }
    query.execute(tx.conn()).await?;
    Ok(())
}

/// Records who each new message mentions, for their unread mention counts.
async fn insert_mentions(
    tx: &mut Tx,
    batch: &[&Message],
    new: &[usize],
    seqs: &HashMap<usize, (i64, i64)>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&str, &str, i64)> = new
        .iter()
        .flat_map(|&i| {
            batch[i]
                .mentions
                .iter()
                .map(move |u| (u.as_str(), batch[i].thread_id.as_str(), seqs[&i].0))
        })
        .collect();
    for chunk in rows.chunks(MAX_BATCH) {
        let sql = format!(
            "INSERT INTO message_mentions (user_id, thread_id, seq) VALUES {} \
             ON CONFLICT DO NOTHING",
            tuples(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for (user, thread, seq) in chunk {
            query = query.bind(*user).bind(*thread).bind(*seq);
        }
        query.execute(tx.conn()).await?;
    }
    Ok(())
}

/// Records the threads' new activity for the members' conversation lists, in the same
/// transaction: one row per thread, whatever its number of members (see `Activity`).
async fn mark_activity(
    tx: &mut Tx,
    per_thread: &BTreeMap<&ThreadId, Vec<usize>>,
    stored: &HashMap<ThreadId, (i64, i64)>,
) -> Result<(), sqlx::Error> {
    let threads: Vec<(&ThreadId, i64)> = per_thread
        .keys()
        .filter_map(|t| stored.get(*t).map(|&(_, at)| (*t, at)))
        .collect();
    let sql = format!(
        "INSERT INTO activity_pending (thread_id, activity) VALUES {} \
         ON CONFLICT (thread_id) DO UPDATE SET activity = excluded.activity \
         WHERE activity_pending.activity < excluded.activity",
        tuples(threads.len(), 2)
    );
    let mut query = sqlx::query(&sql);
    for (thread, activity) in threads {
        query = query.bind(thread.as_str()).bind(activity);
    }
    query.execute(tx.conn()).await?;
    Ok(())
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `width` parameters.
pub(super) fn tuples(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * width + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

fn decode_error(e: StoreError) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::tuples;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(tuples(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(tuples(1, 1), "($1)");
    }
}
