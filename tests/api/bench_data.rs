//! The load generator writes rows straight into the database for its large-scale runs: they
//! must be rows the product reads back as its own (same schema, same member-set keys), or the
//! benchmark measures something else. Runs on SQLite, and on PostgreSQL when the suite does.

use threadline::{
    domain::{MemberSet, Thread, ThreadId, UserId},
    store::{self, Anchor},
};

#[tokio::test]
async fn bulk_loaded_rows_read_back_as_the_products_own() {
    let data = tempfile::tempdir().unwrap();
    let url = match crate::helpers::test_database_url(data.path()).await {
        Some(url) => url,
        None => format!("sqlite://{}/bulk.db", data.path().display()),
    };
    // The product applies its migrations; the generator only adds rows.
    store::open(Some(&url)).await.unwrap().close().await;
    threadline_bench::db::bulk_load(&url, 10).await.unwrap();
    let store = store::open(Some(&url)).await.unwrap();

    let id = |raw: &str| UserId::parse(raw).unwrap();
    let members = MemberSet::new([id("b3"), id("alice")]).unwrap();
    let (thread, created) = store
        .create_or_resolve_thread(Thread::new(None, &members))
        .await
        .unwrap();
    assert!(!created, "the member set resolves to the loaded thread");
    assert_eq!(thread.id.as_str(), "t3");

    let big = ThreadId::parse("big").unwrap();
    let history = store.messages(&big, Anchor::Oldest, 100).await.unwrap();
    let seqs: Vec<u64> = history.items.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    let newest = store
        .threads_of(&id("alice"), Anchor::Newest, 3)
        .await
        .unwrap();
    let ids: Vec<&str> = newest.items.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t8", "t9", "t10"], "oldest to newest activity");
    let of_b7 = store
        .threads_of(&id("b7"), Anchor::Newest, 3)
        .await
        .unwrap();
    assert_eq!(
        of_b7.items.len(),
        1,
        "every member is listed, not only alice"
    );
    store.close().await;
}

/// A database from before member-set keys were digests is rewritten once, at the first
/// start-up that finds it; later start-ups skip the rewrite (no per-row work).
#[tokio::test]
async fn old_member_keys_are_digested_once() {
    use sqlx::Connection;

    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db", data.path().display());
    let id = |raw: &str| UserId::parse(raw).unwrap();
    let members = MemberSet::new([id("ann"), id("bob")]).unwrap();
    let store = store::open(Some(&url)).await.unwrap();
    let (thread, _) = store
        .create_or_resolve_thread(Thread::new(None, &members))
        .await
        .unwrap();
    store.close().await;

    // As an older version left it: the sorted ids as the key, and no record of the rewrite.
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE threads SET member_key = 'ann,bob'")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM data_migrations")
        .execute(&mut db)
        .await
        .unwrap();

    let store = store::open(Some(&url)).await.unwrap();
    let (found, created) = store
        .create_or_resolve_thread(Thread::new(None, &members))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(found.id, thread.id);
    store.close().await;

    // Recorded as done: a key written the old way now stays as it is.
    sqlx::query("UPDATE threads SET member_key = 'ann,bob'")
        .execute(&mut db)
        .await
        .unwrap();
    store::open(Some(&url)).await.unwrap().close().await;
    let key: String = sqlx::query_scalar("SELECT member_key FROM threads")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(key, "ann,bob", "the rewrite did not run again");
}
