//! Slow consumers: a client that stops reading cannot make the server buffer without bound.
//! Its queue is bounded (`--socket-buffer`); past it, events for it are dropped, and its
//! session is closed when it misses the heartbeat. Other clients are unaffected.

use std::time::Duration;

use crate::helpers::{eio, joined, next_text, spawn_app_with};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A stalled client gets a tiny receive buffer, so that not reading fills the server's side
/// quickly.
const STALLED: eio::Open = eio::Open {
    source: None,
    handshake: eio::Handshake::Minimal,
    receive_buffer: Some(4096),
    unbounded: false,
};

/// How long a read waits before the session counts as silent.
const WAIT: Duration = Duration::from_secs(10);

// The healthy client's reader runs on its own worker while the posts go out: on one thread it
// would only read between posts, and itself fall behind the 64-event bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_bounded_then_disconnected_and_others_get_everything() {
    let app = spawn_app_with(|c| {
        c.socket_buffer = 64;
        c.replay_limit = 32;
        c.ping_interval_ms = 300;
        c.ping_timeout_ms = 300;
    })
    .await;
    let thread = app.create_thread(&["slow", "fast"]).await;
    let mut stalled = joined(&app, &thread, STALLED).await;
    let mut healthy = joined(&app, &thread, eio::Open::default()).await;

    // The healthy client reads everything while it is posted; the stalled one reads nothing.
    const POSTS: usize = 400;
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < POSTS {
            match next_text(&mut healthy, WAIT).await {
                Some(frame) if frame.starts_with(r#"42["message:new""#) => got += 1,
                Some(_) => {}
                None => break,
            }
        }
        got
    });
    let body = "x".repeat(16 * 1024);
    for _ in 0..POSTS {
        let reply = app
            .post_json(
                &format!("/api/threads/{thread}/messages"),
                json!({ "body": body }),
            )
            .await;
        assert_eq!(reply.status, reqwest::StatusCode::CREATED);
    }
    assert_eq!(
        reader.await.unwrap(),
        POSTS,
        "the healthy client got every message"
    );

    // Long past the heartbeat, the stalled client reads what reached it: part of the
    // messages (the rest was dropped at its bound), then the end of its session.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = 0;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stalled.next())
            .await
            .expect("the stalled session was closed by the server, not left open");
        match frame {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"42["message:new""#) => {
                received += 1
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    assert!(
        received < POSTS,
        "a client that does not read does not get an unbounded queue ({received} of {POSTS})"
    );
    // The server is still healthy.
    assert_eq!(app.get("/healthz").await.status, reqwest::StatusCode::OK);
}

#[test]
fn replay_limit_must_fit_the_socket_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = threadline::config::Config::for_tests(dir.path().to_owned());
    config.socket_buffer = 100;
    config.replay_limit = 100;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let built = runtime.block_on(threadline::app::App::build(
        config,
        std::sync::Arc::new(threadline::store::MemoryStore::new()),
    ));
    assert!(built.is_err());
}
