//! Databases for the scenarios: a fresh PostgreSQL database per run, and bulk loads.
//!
//! The schema is the product's own: a threadline server started on the database applies its
//! migrations first; only rows are written here. The test suite loads a small database with
//! [`bulk_load`] and reads it back through the product's store, so a change in the schema or in
//! how a member set is keyed fails a test instead of quietly skewing a benchmark.

use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::Result;

/// Rows per multi-row `INSERT` (5 parameters each: within SQLite's and PostgreSQL's limits).
const BATCH: i64 = 1_000;

/// A fresh database on the PostgreSQL server `url` points at.
pub async fn fresh_database(url: &str) -> Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("threadline_bench_{}", std::process::id());
    let mut admin = sqlx::AnyConnection::connect(url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    Ok(format!("{base}/{name}"))
}

/// The unique key the product gives a member set: `#` and the SHA-256 of its sorted ids.
pub fn member_key(members: &[&str]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    format!("#{:x}", Sha256::digest(sorted.join(",").as_bytes()))
}

/// Adds rows to a migrated database: `n` messages (`m1`…) to thread `big` (members `big` and
/// `bulk`), account `1` (`Alice`, id `alice`), and `n` threads `t1`… that `alice` shares with
/// `b1`…, most recent last. Portable between SQLite and PostgreSQL.
pub async fn bulk_load(database_url: &str, n: i64) -> Result<()> {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(database_url).await?;
    let series = "WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < $1)";
    sqlx::query("INSERT INTO accounts (seq, id, name) VALUES (1, 'alice', 'Alice')")
        .execute(&mut db)
        .await?;
    sqlx::query(
        "INSERT INTO threads (id, title, member_ids, member_key, created_at, updated_at, last_seq) \
         VALUES ('big', NULL, '[\"big\",\"bulk\"]', $1, 1, 1, $2)",
    )
    .bind(member_key(&["big", "bulk"]))
    .bind(n)
    .execute(&mut db)
    .await?;
    sqlx::query(&format!(
        "{series} INSERT INTO messages (thread_id, seq, id, author_id, body, file_ids, created_at, client_id) \
         SELECT 'big', g, 'm' || g, 'bulk', 'bulk message', '[]', g, NULL FROM c"
    ))
    .bind(n)
    .execute(&mut db)
    .await?;
    let mut first = 1;
    while first <= n {
        let last = (first + BATCH - 1).min(n);
        let rows: Vec<String> = (first..=last)
            .map(|g| {
                let p = (g - first) * 5;
                format!(
                    "(${}, NULL, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO threads (id, title, member_ids, member_key, created_at, updated_at) VALUES {}",
            rows.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for g in first..=last {
            let other = format!("b{g}");
            insert = insert
                .bind(format!("t{g}"))
                .bind(format!("[\"alice\",\"{other}\"]"))
                .bind(member_key(&["alice", &other]))
                .bind(g)
                .bind(g);
        }
        insert.execute(&mut db).await?;
        first = last + 1;
    }
    sqlx::query(
        "INSERT INTO thread_members (user_id, thread_id, activity) \
         VALUES ('big', 'big', $1), ('bulk', 'big', $1)",
    )
    .bind(n)
    .execute(&mut db)
    .await?;
    for member in ["'alice'", "'b' || g"] {
        sqlx::query(&format!(
            "{series} INSERT INTO thread_members (user_id, thread_id, activity) \
             SELECT {member}, 't' || g, g FROM c"
        ))
        .bind(n)
        .execute(&mut db)
        .await?;
    }
    if database_url.starts_with("postgres") {
        sqlx::query("ANALYZE").execute(&mut db).await?;
    }
    db.close().await?;
    Ok(())
}
