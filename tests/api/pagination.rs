//! Property: however inserts and page fetches interleave, from whatever starting page and page
//! size, following `cursor_next` visits every older message once and ends, and following
//! `cursor_prev` visits every newer message once, including ones created during the walk.

use crate::helpers::{self, TestApp, spawn_app, url_encode};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Step {
    Insert(usize),
    Older,
    Newer,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1usize..4).prop_map(Step::Insert),
        Just(Step::Older),
        Just(Step::Newer),
    ]
}

/// A cursor as it goes in a query string.
fn cursor(sort: &str, last_seen: &str) -> String {
    url_encode(&helpers::cursor(sort, last_seen))
}

struct Walk<'a> {
    app: &'a TestApp,
    base: String,
}

impl Walk<'_> {
    async fn page(&self, cursor: Option<&str>) -> (Vec<String>, String, Value, Value) {
        let path = match cursor {
            None => self.base.clone(),
            Some(c) => format!(
                "{}&cursor={}",
                self.base,
                c.replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            ),
        };
        let reply = self.app.get(&path).await;
        assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
        let rows = reply.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        (
            rows,
            reply.body["sort"].as_str().unwrap().to_owned(),
            reply.body["cursor_next"].clone(),
            reply.body["cursor_prev"].clone(),
        )
    }
}

async fn insert(app: &TestApp, conv: &str, all: &mut Vec<String>, n: usize) {
    for _ in 0..n {
        let reply = app
            .post_json(
                &format!("/api/account/1/conversation/{conv}/messages"),
                json!({"text": format!("m{}", all.len())}),
            )
            .await;
        all.push(reply.body["id"].as_str().unwrap().to_owned());
    }
}

async fn check(initial: usize, page_size: usize, start: usize, steps: Vec<Step>) {
    let app = spawn_app().await;
    let conv = app.two_accounts_and_their_conversation().await;
    let mut all = Vec::new();
    insert(&app, &conv, &mut all, initial).await;
    let walk = Walk {
        app: &app,
        base: format!("/api/1/conversation/{conv}/messages?pageSize={page_size}"),
    };

    // The starting page: the first page, or a page anchored anywhere in either direction.
    let start_cursor = match (all.len(), start % 3) {
        (0, _) | (_, 0) => None,
        (len, 1) => Some(cursor("NEWEST_FIRST", &all[start % len])),
        (len, _) => Some(cursor("OLDEST_FIRST", &all[start % len])),
    };
    let (rows, sort, mut next, mut prev) = walk.page(start_cursor.as_deref()).await;
    let mut ascending = rows.clone();
    if sort == "NEWEST_FIRST" {
        ascending.reverse();
    }
    // The page is a consecutive run of the conversation.
    let first_pos = ascending
        .first()
        .map(|id| all.iter().position(|x| x == id).unwrap());
    if let Some(p) = first_pos {
        assert_eq!(
            &all[p..p + ascending.len()],
            ascending.as_slice(),
            "page is a consecutive run"
        );
    }
    let older_expected: Vec<String> = match first_pos {
        Some(p) => all[..p].iter().rev().cloned().collect(),
        None => vec![],
    };
    let newer_from = first_pos.map(|p| p + ascending.len());
    if ascending.is_empty() && start_cursor.is_none() {
        assert!(
            next.is_null() && prev.is_null(),
            "an empty list has no cursors"
        );
    }

    let mut older = Vec::new();
    let mut newer = Vec::new();
    let mut older_done = next.is_null();
    let can_walk_newer = !prev.is_null();
    let fetch_older = async |next: &mut Value, older: &mut Vec<String>| {
        let (rows, sort, n, _) = walk.page(next.as_str()).await;
        assert_eq!(sort, "OLDEST_FIRST");
        assert!(rows.len() <= page_size);
        older.extend(rows.into_iter().rev());
        *next = n;
    };
    // Returns whether the page was empty (caught up, for now).
    let fetch_newer = async |prev: &mut Value, newer: &mut Vec<String>| {
        let (rows, sort, _, p) = walk.page(prev.as_str()).await;
        assert_eq!(sort, "NEWEST_FIRST");
        assert!(rows.len() <= page_size);
        assert!(!p.is_null(), "cursor_prev stays usable for polling");
        let caught_up = rows.is_empty();
        newer.extend(rows.into_iter().rev());
        *prev = p;
        caught_up
    };
    for step in steps {
        match step {
            Step::Insert(n) => insert(&app, &conv, &mut all, n).await,
            Step::Older if !older_done => {
                fetch_older(&mut next, &mut older).await;
                older_done = next.is_null();
            }
            Step::Newer if can_walk_newer => {
                fetch_newer(&mut prev, &mut newer).await;
            }
            _ => {}
        }
    }
    // Drain both directions; each must end within a bounded number of pages.
    let bound = all.len() / page_size + 2;
    for _ in 0..bound {
        if older_done {
            break;
        }
        fetch_older(&mut next, &mut older).await;
        older_done = next.is_null();
    }
    let mut newer_done = !can_walk_newer;
    for _ in 0..bound {
        if newer_done {
            break;
        }
        newer_done = fetch_newer(&mut prev, &mut newer).await;
    }
    let fetches = bound;
    assert!(
        older_done,
        "the older walk ends (cursor_next null) within {fetches} fetches"
    );
    assert_eq!(
        older, older_expected,
        "older walk: every older message once, newest first"
    );
    if let Some(from) = newer_from {
        assert!(newer_done, "the newer walk catches up");
        assert_eq!(
            newer,
            all[from..].to_vec(),
            "newer walk: every newer message once, in order"
        );
    }
    // Closed now, not when the case's runtime is dropped: 48 cases in a row otherwise leave
    // their database connections to linger.
    app.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn walks_never_skip_or_repeat_and_always_end(
        initial in 0usize..40,
        page_size in 1usize..9,
        start in 0usize..1000,
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(check(initial, page_size, start, steps));
    }
}
