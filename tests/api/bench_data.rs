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
