//! Several nodes through a Redis this test owns: stopped with SIGKILL and started again under
//! running nodes, and absent when a node starts. Nodes heal by themselves: clients that never
//! reconnected get every message posted meanwhile, once and in order; presence and typing cross
//! nodes again; `/readyz` says when Redis is missing.
//!
//! Needs PostgreSQL (the nodes share it; `tests/run.sh` provides one in every pass) and
//! `redis-server` on the PATH; plain `cargo test` without them says so and skips.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use serde_json::{Value, json};
use threadline_bench::{eio, target::Target};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::fresh_postgres_database;

/// A Redis server on its own port, killed on drop.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Self(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn url(port: u16) -> String {
        format!("redis://127.0.0.1:{port}")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The PostgreSQL server the nodes share: the one `tests/run.sh` starts
/// (`THREADLINE_TEST_POSTGRES`, set in every pass), else the pass's own if it is PostgreSQL.
pub(crate) fn postgres() -> Option<String> {
    std::env::var("THREADLINE_TEST_POSTGRES")
        .ok()
        .or_else(|| std::env::var("THREADLINE_TEST_DATABASE").ok())
        .filter(|url| url.starts_with("postgres"))
}

async fn node(database: &str, redis_port: u16) -> Target {
    let extra = [
        format!("--database-url={database}"),
        format!("--redis-url={}", Redis::url(redis_port)),
    ];
    Target::threadline(env!("CARGO_BIN_EXE_threadline"), &extra).expect("start a node")
}

async fn ready(http: &reqwest::Client, node: &Target) -> (u16, Value) {
    let reply = http
        .get(format!("{}/readyz", node.url()))
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// The node's `threadline_redis_up` gauge, as `/metrics` shows it.
async fn redis_up(http: &reqwest::Client, node: &Target) -> String {
    let text = http
        .get(format!("{}/metrics", node.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("threadline_redis_up "))
        .unwrap_or_else(|| panic!("no threadline_redis_up in {text}"))
        .to_owned()
}

/// Waits until `/readyz` answers `status`, up to `within`; the answer.
async fn until_ready(
    http: &reqwest::Client,
    node: &Target,
    status: u16,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (now, body) = ready(http, node).await;
        if now == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {now} {body} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A socket of `user` on `node`, joined to `thread`.
async fn member(node: &Target, user: &str, thread: &str) -> eio::Ws {
    let mut ws = eio::open(node.addr, &eio::Open::default()).await.unwrap();
    ws.send(Message::text(format!(r#"40{{"userId":"{user}"}}"#)))
        .await
        .unwrap();
    let wait = Duration::from_secs(5);
    let connected = eio::next_text_within(&mut ws, wait).await.unwrap();
    assert!(connected.starts_with("40"), "{connected}");
    ws.send(Message::text(format!(
        r#"420["thread:join",{{"threadId":"{thread}"}}]"#
    )))
    .await
    .unwrap();
    loop {
        let frame = eio::next_text_within(&mut ws, wait).await.unwrap();
        if frame.starts_with("430") {
            assert!(frame.contains(r#""ok":true"#), "{frame}");
            return ws;
        }
    }
}

async fn post(http: &reqwest::Client, node: &Target, thread: &str, body: &str) -> String {
    let reply: Value = http
        .post(format!("{}/api/threads/{thread}/messages", node.url()))
        .json(&json!({ "body": body }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["message"]["id"].as_str().expect("posted").to_owned()
}

/// Reads `ws` until it has had a `message:new` for each of `ids` or `within` passed; the ids
/// of every `message:new` read, in arrival order, and the other events.
async fn receive(ws: &mut eio::Ws, ids: &[String], within: Duration) -> (Vec<String>, Vec<String>) {
    let deadline = Instant::now() + within;
    let (mut news, mut others) = (Vec::new(), Vec::new());
    while !ids.iter().all(|id| news.contains(id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(frame) = eio::next_text_within(ws, left).await else {
            break;
        };
        if frame.starts_with(r#"42["message:new""#) {
            let (_, payload) = frame.split_once(',').unwrap();
            let payload: Value = serde_json::from_str(payload.trim_end_matches(']')).unwrap();
            news.push(payload["message"]["id"].as_str().unwrap().to_owned());
        } else {
            others.push(frame);
        }
    }
    (news, others)
}

async fn history(http: &reqwest::Client, node: &Target, thread: &str) -> Vec<String> {
    crate::all_message_ids(http, &node.url(), thread).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_heal_after_redis_restarts_under_them() {
    let Some(postgres) = postgres() else {
        eprintln!("skipped: needs THREADLINE_TEST_POSTGRES (tests/run.sh sets it)");
        return;
    };
    let database = fresh_postgres_database(&postgres).await;
    let port = free_port();
    let redis = Redis::start(port);
    let (a, b) = (node(&database, port).await, node(&database, port).await);
    let http = reqwest::Client::new();
    for n in [&a, &b] {
        until_ready(&http, n, 200, Duration::from_secs(10)).await;
    }
    let thread = crate::helpers::create_thread_at(&http, &a.url(), &["ann", "bob"]).await;
    let mut ann = member(&a, "ann", &thread).await;
    let mut bob = member(&b, "bob", &thread).await;
    let first = post(&http, &b, &thread, "before").await;
    let (got, _) = receive(
        &mut ann,
        std::slice::from_ref(&first),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        got,
        std::slice::from_ref(&first),
        "crosses nodes before the fault"
    );
    let (got, _) = receive(
        &mut bob,
        std::slice::from_ref(&first),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got, std::slice::from_ref(&first));

    assert_eq!(redis_up(&http, &a).await, "1");
    drop(redis);
    let body = until_ready(&http, &a, 503, Duration::from_secs(5)).await;
    assert_eq!(body, json!({"status": "not_ready", "failing": ["redis"]}));
    assert_eq!(redis_up(&http, &a).await, "0");

    // Posts on both nodes while Redis is down: each node still serves its own clients.
    let mut during = Vec::new();
    for n in 0..5 {
        during.push(post(&http, &b, &thread, &format!("b{n}")).await);
        during.push(post(&http, &a, &thread, &format!("a{n}")).await);
    }
    let redis = Redis::start(port);
    let back = Instant::now();
    // Within 5 s, without reconnecting and without a further post, ann has every message,
    // once, in the store's order.
    let (got, _) = receive(&mut ann, &during, Duration::from_secs(5)).await;
    let stored = history(&http, &a, &thread).await;
    let expected: Vec<String> = stored.into_iter().filter(|id| *id != first).collect();
    assert_eq!(got, expected, "after {:?}", back.elapsed());
    assert!(back.elapsed() < Duration::from_secs(5));
    let (got, _) = receive(&mut bob, &during, Duration::from_secs(5)).await;
    assert_eq!(got, expected, "bob, on the other node");

    for n in [&a, &b] {
        until_ready(&http, n, 200, Duration::from_secs(5)).await;
    }
    assert_eq!(redis_up(&http, &a).await, "1");
    // Everything crosses nodes again: messages, presence, typing.
    let after = post(&http, &b, &thread, "after").await;
    let (got, _) = receive(
        &mut ann,
        std::slice::from_ref(&after),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got, [after]);
    let presence =
        crate::helpers::get_json(&http, format!("{}/api/threads/{thread}/presence", a.url())).await;
    assert_eq!(presence, json!({"online": ["ann", "bob"]}));
    bob.send(Message::text(format!(
        r#"42["typing",{{"threadId":"{thread}","typing":true}}]"#
    )))
    .await
    .unwrap();
    let (_, others) = receive(&mut ann, &["never".into()], Duration::from_secs(2)).await;
    assert!(
        others
            .iter()
            .any(|f| f.starts_with(r#"42["typing""#) && f.contains("bob")),
        "{others:?}"
    );
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_without_redis_and_joins_when_it_appears() {
    let Some(postgres) = postgres() else {
        eprintln!("skipped: needs THREADLINE_TEST_POSTGRES (tests/run.sh sets it)");
        return;
    };
    let database = fresh_postgres_database(&postgres).await;
    let port = free_port();
    let alone = node(&database, port).await;
    let http = reqwest::Client::new();
    let body = until_ready(&http, &alone, 503, Duration::from_secs(5)).await;
    assert_eq!(body, json!({"status": "not_ready", "failing": ["redis"]}));

    // It serves its own clients.
    let thread = crate::helpers::create_thread_at(&http, &alone.url(), &["cat", "dan"]).await;
    let mut cat = member(&alone, "cat", &thread).await;
    let local = post(&http, &alone, &thread, "local").await;
    let (got, _) = receive(
        &mut cat,
        std::slice::from_ref(&local),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got, [local]);

    let _redis = Redis::start(port);
    until_ready(&http, &alone, 200, Duration::from_secs(5)).await;
    let other = node(&database, port).await;
    until_ready(&http, &other, 200, Duration::from_secs(10)).await;
    let remote = post(&http, &other, &thread, "from the other node").await;
    let (got, _) = receive(
        &mut cat,
        std::slice::from_ref(&remote),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got, [remote], "joined the other nodes");
}
