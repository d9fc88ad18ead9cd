//! Durable posting: posts/s and latency of REST posts on a real database, beside the ceiling
//! the database itself reaches on the same machine in the same run (pgbench against the same
//! PostgreSQL; a single-writer SQLite loop on the same filesystem), with the same two statements
//! per message as the product's schema needs. And the conversation list of a member of 10 and
//! of 1,000 conversations.
//!
//! Schemas are the product's own: every database here is migrated by starting threadline on
//! it; the ceilings write rows into those tables.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use sqlx::{Connection, Row};
use tokio::task::JoinSet;

use threadline_bench::{Result, target::Target};

use crate::rest::{Rest, json_str};

/// What a posting run measured.
pub struct Posting {
    pub posts: u64,
    pub seconds: f64,
    pub latency: Histogram<u64>,
}

impl Posting {
    pub fn per_sec(&self) -> f64 {
        self.posts as f64 / self.seconds
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Creates `threads` threads of `members` members each (ids unique to `tag`), through the API.
pub async fn create_threads(
    target: &Target,
    threads: usize,
    members: usize,
    tag: &str,
) -> Result<Vec<String>> {
    let mut rest = Rest::connect(target.addr).await?;
    let mut ids = Vec::with_capacity(threads);
    for t in 0..threads {
        let list: Vec<String> = (0..members.max(2))
            .map(|m| format!("\"{tag}-{t}-{m}\""))
            .collect();
        let (status, body) = rest
            .post(
                "/api/threads",
                format!(r#"{{"title":"bench","memberIds":[{}]}}"#, list.join(",")),
            )
            .await?;
        if status != 201 {
            return Err(
                format!("create thread: {status} {}", String::from_utf8_lossy(&body)).into(),
            );
        }
        ids.push(json_str(&body, "id").ok_or("thread id missing")?);
    }
    Ok(ids)
}

/// `posters` keep-alive connections post as fast as they are answered, round-robin over
/// `threads`, for `seconds`. Every post must be answered 201.
pub async fn post(
    target: &Target,
    threads: &[String],
    posters: usize,
    seconds: f64,
) -> Result<Posting> {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for p in 0..posters {
        let (addr, threads) = (target.addr, threads.to_vec());
        tasks.spawn(async move {
            let mut rest = Rest::connect(addr).await?;
            let mut latency = histogram();
            let mut i = p;
            while Instant::now() < until {
                let thread = &threads[i % threads.len()];
                let t = Instant::now();
                let (status, body) = rest
                    .post(
                        &format!("/api/threads/{thread}/messages"),
                        format!(r#"{{"body":"p{p}-{i}"}}"#),
                    )
                    .await?;
                if status != 201 {
                    return Err(format!("post: {status} {}", String::from_utf8_lossy(&body)).into());
                }
                latency.record(t.elapsed().as_micros() as u64)?;
                i += posters;
            }
            Ok::<_, crate::Error>(latency)
        });
    }
    let mut latency = histogram();
    while let Some(done) = tasks.join_next().await {
        latency.add(done??)?;
    }
    Ok(Posting {
        posts: latency.len(),
        seconds: started.elapsed().as_secs_f64(),
        latency,
    })
}

/// pgbench on `database` (migrated, holding `threads`): `clients` connections, each
/// transaction the product's minimum for one message (move the thread's `last_seq`, insert the
/// message at it), spread over the threads. Transactions per second.
pub async fn pgbench(
    database: &str,
    threads: &[String],
    clients: usize,
    seconds: u64,
    prepared: bool,
    scratch: &Path,
) -> Result<f64> {
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        seconds.to_string(),
        "-M".into(),
        if prepared { "prepared" } else { "simple" }.into(),
    ];
    // One script per thread, equally weighted: pgbench picks a thread per transaction.
    for (i, thread) in threads.iter().enumerate() {
        let file = scratch.join(format!("post-{i}.sql"));
        std::fs::write(
            &file,
            format!(
                "BEGIN;\n\
                 UPDATE threads SET last_seq = last_seq + 1, updated_at = 1 WHERE id = '{thread}' RETURNING last_seq \\gset\n\
                 INSERT INTO messages (id, thread_id, author_id, body, file_ids, created_at, client_id, seq) \
                 VALUES ('pg-{i}-' || :last_seq, '{thread}', 'pgbench', 'pgbench body', '[]', 1, NULL, :last_seq);\n\
                 COMMIT;\n"
            ),
        )?;
        args.push("-f".into());
        args.push(format!("{}@1", file.display()));
    }
    args.push(database.to_owned());
    let out = tokio::process::Command::new("pgbench")
        .args(&args)
        .output()
        .await
        .map_err(|e| format!("pgbench (postgresql-contrib / postgresql-client): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| format!("no tps in pgbench's output: {text}").into())
}

/// One writer on a SQLite database (migrated, holding `threads`), WAL, `synchronous=FULL`:
/// `per_transaction` messages per transaction, each the same two statements. Messages/s.
pub async fn sqlite_single_writer(
    url: &str,
    threads: &[String],
    per_transaction: usize,
    seconds: f64,
) -> Result<f64> {
    let mut db = sqlx::SqliteConnection::connect(url).await?;
    sqlx::query("PRAGMA journal_mode=WAL")
        .execute(&mut db)
        .await?;
    sqlx::query("PRAGMA synchronous=FULL")
        .execute(&mut db)
        .await?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut messages = 0u64;
    while Instant::now() < until {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut db).await?;
        for _ in 0..per_transaction {
            let thread = &threads[messages as usize % threads.len()];
            let seq: i64 = sqlx::query(
                "UPDATE threads SET last_seq = last_seq + 1, updated_at = $2 WHERE id = $1 RETURNING last_seq",
            )
            .bind(thread)
            .bind(1i64)
            .fetch_one(&mut db)
            .await?
            .try_get(0)?;
            sqlx::query(
                "INSERT INTO messages (id, thread_id, author_id, body, file_ids, created_at, client_id, seq) \
                 VALUES ($1, $2, 'sqlite', 'sqlite body', '[]', 1, NULL, $3)",
            )
            .bind(format!("sq-{thread}-{seq}"))
            .bind(thread)
            .bind(seq)
            .execute(&mut db)
            .await?;
            messages += 1;
        }
        sqlx::query("COMMIT").execute(&mut db).await?;
    }
    db.close().await?;
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

/// A member of `n` conversations, each with a message from the other side (unread), made
/// through the API. Returns the member's id and the conversation in the middle of their list.
pub async fn conversations(target: &Target, n: usize) -> Result<(String, String)> {
    let mut rest = Rest::connect(target.addr).await?;
    let mut ids = Vec::with_capacity(n + 1);
    for i in 0..=n {
        let (status, body) = rest
            .post("/api/accounts", format!(r#"{{"name":"member {i}"}}"#))
            .await?;
        if status != 201 {
            return Err(format!("account: {status} {}", String::from_utf8_lossy(&body)).into());
        }
        ids.push(json_str(&body, "id").ok_or("account id missing")?);
    }
    let me = ids.remove(0);
    let mut middle = None;
    for (i, peer) in ids.iter().enumerate() {
        let (status, body) = rest
            .post(
                &format!("/api/{me}/conversation?with={peer}"),
                String::new(),
            )
            .await?;
        if status != 201 {
            return Err(
                format!("conversation: {status} {}", String::from_utf8_lossy(&body)).into(),
            );
        }
        let id = json_str(&body, "id").ok_or("conversation id missing")?;
        let (status, _) = rest
            .post(
                &format!("/api/{peer}/conversation/{id}/messages"),
                format!(r#"{{"text":"hello {i}"}}"#),
            )
            .await?;
        if status != 201 {
            return Err(format!("message: {status}").into());
        }
        if i == n / 2 {
            middle = Some(id);
        }
    }
    let middle = middle.ok_or("no conversations")?;
    Ok((me, middle))
}

/// p50 / p99 of `me`'s first page of 20 conversations, and of the page older than `middle`.
pub async fn conversation_list(
    target: &Target,
    (me, middle): &(String, String),
    samples: usize,
) -> Result<[f64; 4]> {
    let mut rest = Rest::connect(target.addr).await?;
    let cursor = crate::pagination_cursor("OLDEST_FIRST", middle);
    let mut first = histogram();
    let mut older = histogram();
    for _ in 0..samples {
        for (path, h) in [
            (format!("/api/{me}/conversation?pageSize=20"), &mut first),
            (
                format!("/api/{me}/conversation?pageSize=20&cursor={cursor}"),
                &mut older,
            ),
        ] {
            let t = Instant::now();
            let (status, body) = rest.get(&path).await?;
            if status != 200 {
                return Err(
                    format!("GET {path}: {status} {}", String::from_utf8_lossy(&body)).into(),
                );
            }
            h.record(t.elapsed().as_micros() as u64)?;
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok([
        ms(&first, 0.5),
        ms(&first, 0.99),
        ms(&older, 0.5),
        ms(&older, 0.99),
    ])
}
