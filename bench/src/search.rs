//! The search scenario: message search over 1,000,000 stored messages on SQLite and PostgreSQL.
//!
//! The messages are generated here, deterministically, so that queries can be drawn from what
//! is stored: words from a vocabulary of 20,000 with a Zipf-like frequency (a word's rank is
//! log-uniform, as in natural text), 4 to 14 words each, in 10,000 threads of two members among
//! 1,000 users. They are written with SQL into a database the product migrated, so each
//! engine's own index (FTS5, tsvector + GIN) is built as the product builds it.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use sqlx::Connection;

use crate::{Result, rest, target::Target};
use threadline_bench::db::{fresh_database, member_key};

const VOCABULARY: u64 = 20_000;
const THREADS: u64 = 10_000;
const USERS: u64 = 1_000;
/// Rows per multi-row INSERT (8 parameters each).
const BATCH: u64 = 1_000;
const SECRET: &str = "bench-secret-that-is-long-enough";

/// SplitMix64: the same stream on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `rank`-th word of the vocabulary: syllables, so words look like words and vary in length.
fn word(rank: u64) -> String {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "sa", "tu", "ra", "vi", "po", "de", "fe", "gu", "ha", "jo", "be",
        "ci", "mo", "nu", "ri", "so", "ta", "ve", "zo", "li",
    ];
    let mut n = rank + 24;
    let mut out = String::new();
    while n > 0 {
        out.push_str(SYLLABLES[(n % 24) as usize]);
        n /= 24;
    }
    out
}

/// Message `g`'s words (1-based `g`): the same every time it is asked for.
fn words_of(g: u64) -> Vec<String> {
    let mut rng = Rng(g.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let count = 4 + rng.below(11);
    (0..count)
        .map(|_| {
            let rank = ((VOCABULARY as f64).powf(rng.unit()) as u64).saturating_sub(1);
            word(rank)
        })
        .collect()
}

fn thread_of(g: u64) -> u64 {
    g % THREADS
}

/// Thread `t`'s two members.
fn members_of(t: u64) -> [String; 2] {
    let first = t % USERS;
    let second = (first + 1 + t / USERS) % USERS;
    [format!("s{first}"), format!("s{second}")]
}

/// Writes `n` messages over the threads (interleaved, as live traffic is) into a migrated
/// database.
async fn load(database_url: &str, n: u64) -> Result<()> {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(database_url).await?;
    let per_thread = n / THREADS;
    for first in (0..THREADS).step_by(BATCH as usize) {
        let last = (first + BATCH).min(THREADS);
        let rows: Vec<String> = (0..last - first)
            .map(|i| {
                let p = i * 6;
                format!(
                    "(${}, NULL, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO threads (id, title, member_ids, member_key, created_at, updated_at, last_seq) VALUES {}",
            rows.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for t in first..last {
            let [a, b] = members_of(t);
            insert = insert
                .bind(format!("st{t}"))
                .bind(format!("[\"{a}\",\"{b}\"]"))
                .bind(member_key(&[&a, &b]))
                .bind(1i64)
                .bind(1i64)
                .bind(per_thread as i64);
        }
        insert.execute(&mut db).await?;
        let rows: Vec<String> = (0..(last - first) * 2)
            .map(|i| format!("(${}, ${}, 1)", i * 2 + 1, i * 2 + 2))
            .collect();
        let sql = format!(
            "INSERT INTO thread_members (user_id, thread_id, activity) VALUES {}",
            rows.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for t in first..last {
            for member in members_of(t) {
                insert = insert.bind(member).bind(format!("st{t}"));
            }
        }
        insert.execute(&mut db).await?;
    }
    let mut g = 1;
    while g <= n {
        let last = (g + BATCH - 1).min(n);
        let rows: Vec<String> = (0..=last - g)
            .map(|i| {
                let p = i * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, '[]', ${}, NULL)",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO messages (thread_id, seq, id, author_id, body, file_ids, created_at, client_id) VALUES {}",
            rows.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for m in g..=last {
            let t = thread_of(m);
            insert = insert
                .bind(format!("st{t}"))
                .bind((m / THREADS + 1) as i64)
                .bind(format!("sm{m}"))
                .bind(members_of(t)[(m % 2) as usize].clone())
                .bind(words_of(m).join(" "))
                .bind(m as i64);
        }
        let mut tx = db.begin().await?;
        insert.execute(&mut *tx).await?;
        tx.commit().await?;
        g = last + 1;
        if g % 100_000 == 1 {
            eprintln!("  {} messages", g - 1);
        }
    }
    if database_url.starts_with("postgres") {
        sqlx::query("VACUUM ANALYZE").execute(&mut db).await?;
    }
    db.close().await?;
    Ok(())
}

/// A query a user might type about message `g`: one or two of its words, the last cut short
/// (they are still typing it).
fn query_about(g: u64, rng: &mut Rng) -> String {
    let words = words_of(g);
    let start = rng.below(words.len() as u64) as usize;
    let take = (1 + rng.below(2) as usize).min(words.len() - start);
    let mut picked: Vec<String> = words[start..start + take].to_vec();
    if let Some(last) = picked.last_mut() {
        let keep = (last.len() - rng.below(3) as usize).max(3).min(last.len());
        last.truncate(keep);
    }
    picked.join("%20")
}

fn token(sub: &str) -> Result<String> {
    let claims = serde_json::json!({"sub": sub, "exp": 4_102_444_800u64});
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

struct Measured {
    p50: f64,
    p95: f64,
    p99: f64,
    mean_results: f64,
}

/// Times `samples` searches, each `path(i)` as `user(i)` (a bearer token) when given.
async fn time_searches(
    target: &Target,
    samples: u64,
    path: impl Fn(u64) -> String,
    user: Option<&dyn Fn(u64) -> String>,
) -> Result<Measured> {
    let mut rest = rest::Rest::connect(target.addr).await?;
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut results = 0usize;
    for i in 0..samples {
        if let Some(user) = user {
            rest.bearer(&token(&user(i))?);
        }
        let path = path(i);
        let t = std::time::Instant::now();
        let (status, body) = rest.get(&path).await?;
        h.record(t.elapsed().as_micros() as u64)?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {}", String::from_utf8_lossy(&body)).into());
        }
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        results += body["messages"].as_array().map_or(0, Vec::len);
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(Measured {
        p50: ms(0.5),
        p95: ms(0.95),
        p99: ms(0.99),
        mean_results: results as f64 / samples as f64,
    })
}

/// Loads `n` messages on SQLite and, with `postgres`, on a fresh PostgreSQL database, and times
/// searches as users make them. Returns a Markdown table.
pub async fn run(bin: &str, postgres: Option<&str>, n: u64, samples: u64) -> Result<String> {
    let scratch =
        std::env::temp_dir().join(format!("threadline-bench-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut backends = vec![(
        "SQLite",
        format!("sqlite://{}/search.db?mode=rwc", scratch.display()),
    )];
    if let Some(pg) = postgres {
        backends.push(("PostgreSQL", fresh_database(pg).await?));
    }
    let common = word(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| backend ({n} messages) | query | scope | p50 | p95 | p99 | results per page (of 50) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (name, url) in backends {
        // Start once so the migrations and the search index exist, load, then measure.
        drop(Target::threadline(bin, &[format!("--database-url={url}")])?);
        eprintln!("[threadline on {name}] loading {n} messages");
        let started = std::time::Instant::now();
        load(&url, n).await?;
        eprintln!("  loaded in {:.0} s", started.elapsed().as_secs_f64());
        let open = Target::threadline(bin, &[format!("--database-url={url}")])?;
        let mut rng = Rng(7);
        let picks: Vec<(u64, String)> = (0..samples)
            .map(|_| {
                let g = 1 + rng.below(n);
                (g, query_about(g, &mut rng))
            })
            .collect();
        let typed = "words a user remembers, the last cut short";
        let mut row = |query: &str, scope: &str, m: Measured| {
            let _ = writeln!(
                out,
                "| {name} | {query} | {scope} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} |",
                m.p50, m.p95, m.p99, m.mean_results
            );
        };
        let all = time_searches(
            &open,
            samples,
            |i| format!("/api/search/messages?q={}", picks[i as usize].1),
            None,
        )
        .await?;
        row(typed, "every thread (open mode)", all);
        let one = time_searches(
            &open,
            samples,
            |i| {
                let (g, q) = &picks[i as usize];
                format!("/api/search/messages?q={q}&threadId=st{}", thread_of(*g))
            },
            None,
        )
        .await?;
        row(typed, "one thread", one);
        let busiest = time_searches(
            &open,
            samples,
            |_| format!("/api/search/messages?q={common}"),
            None,
        )
        .await?;
        row(
            "the most frequent word",
            "every thread (open mode)",
            busiest,
        );
        drop(open);

        let jwt = Target::threadline(
            bin,
            &[
                format!("--database-url={url}"),
                format!("--jwt-secret={SECRET}"),
                "--search-rate-per-user=off".into(),
                "--search-rate-per-ip=off".into(),
            ],
        )?;
        let member = |i: u64| members_of(thread_of(picks[i as usize].0))[0].clone();
        let mine = time_searches(
            &jwt,
            samples,
            |i| format!("/api/search/messages?q={}", picks[i as usize].1),
            Some(&member),
        )
        .await?;
        row(typed, "the caller's threads (jwt, 20 threads)", mine);
        let busiest = time_searches(
            &jwt,
            samples,
            |_| format!("/api/search/messages?q={common}"),
            Some(&member),
        )
        .await?;
        row(
            "the most frequent word",
            "the caller's threads (jwt, 20 threads)",
            busiest,
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_same_on_every_call_and_words_vary() {
        assert_eq!(words_of(42), words_of(42));
        assert_ne!(words_of(42), words_of(43));
        let mut counts = std::collections::HashMap::new();
        for g in 1..=10_000 {
            for w in words_of(g) {
                *counts.entry(w).or_insert(0u32) += 1;
            }
        }
        // Zipf-like: the most frequent word is common, most words are rare.
        let top = counts.get(&word(0)).copied().unwrap_or(0);
        assert!(top > 500, "{top}");
        assert!(counts.len() > 5_000, "{}", counts.len());
    }
}
