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

/// A client that stops reading, and answering pings, while its room floods: the server's
/// write to it blocks. Within the heartbeat (plus a little) the server ends its session and
/// closes its connection (its descriptor is given back), and its user's slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stuck_mid_write_is_closed_within_the_heartbeat() {
    use futures_util::SinkExt;
    use threadline_bench::target::Target;

    let extra = [
        "--ping-interval-ms=500",
        "--ping-timeout-ms=500",
        "--max-connections-per-user=1",
        // A short per-socket queue, filled too: the heartbeat's ping waits behind it.
        "--socket-buffer=16",
        "--replay-limit=8",
    ]
    .map(String::from);
    let server = Target::threadline(env!("CARGO_BIN_EXE_threadline"), &extra).unwrap();
    // No keep-alive: the server's descriptors are then the listener's, the stores', and the
    // stalled client's.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let thread = crate::helpers::create_thread_at(&http, &server.url(), &["slow", "fast"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = server.open_files();

    let mut stalled = eio::open(server.addr, &STALLED).await.unwrap();
    stalled
        .send(Message::text(r#"40{"userId":"slow"}"#))
        .await
        .unwrap();
    assert!(
        next_text(&mut stalled, WAIT)
            .await
            .unwrap()
            .starts_with("40")
    );
    stalled
        .send(Message::text(format!(
            r#"420["thread:join",{{"threadId":"{thread}"}}]"#
        )))
        .await
        .unwrap();
    while !next_text(&mut stalled, WAIT)
        .await
        .unwrap()
        .starts_with("430")
    {}

    // From now on it reads nothing; 64 KiB messages fill its tiny receive buffer and the
    // server's send buffer, so the server's write to it blocks.
    let body = "x".repeat(64 * 1024 - 100);
    for _ in 0..100 {
        let posted = http
            .post(format!("{}/api/threads/{thread}/messages", server.url()))
            .json(&json!({ "body": body }))
            .send()
            .await
            .unwrap();
        assert!(posted.status().is_success() || posted.status() == 400);
    }
    let stopped = std::time::Instant::now();
    loop {
        let presence = crate::helpers::get_json(
            &http,
            format!("{}/api/threads/{thread}/presence", server.url()),
        )
        .await;
        if presence == json!({"online": []}) && server.open_files() <= baseline {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "after {:?}: presence {presence}, {} descriptors (baseline {baseline})",
            stopped.elapsed(),
            server.open_files()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the stuck connection closed {:?} after the flood",
        stopped.elapsed()
    );
    // Its slot came back: the same user connects again (one connection allowed).
    let mut again = eio::open(server.addr, &eio::Open::default()).await.unwrap();
    again
        .send(Message::text(r#"40{"userId":"slow"}"#))
        .await
        .unwrap();
    let answer = next_text(&mut again, WAIT).await.unwrap();
    assert!(answer.starts_with("40{\"sid\""), "{answer}");
    drop(stalled);
}

/// A client that stops reading a response (here a download) blocks the server's write to it;
/// after the write timeout (`--ping-timeout-ms`) with no progress, the connection is closed and
/// its descriptor given back, instead of being held for as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_response_is_cut_off() {
    use threadline_bench::target::Target;
    use tokio::io::AsyncWriteExt;

    let extra = ["--ping-timeout-ms=1000"].map(String::from);
    let server = Target::threadline(env!("CARGO_BIN_EXE_threadline"), &extra).unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![9u8; 8_000_000]).file_name("big.bin"),
    );
    let file: serde_json::Value = http
        .post(format!("{}/api/files", server.url()))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = file["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status =
            crate::helpers::get_json(&http, format!("{}/api/files/{id}/status", server.url()))
                .await;
        if status["status"] == "ready" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upload not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = server.open_files();

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    tcp.write_all(format!("GET /api/files/{id} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // It reads nothing. The download holds a descriptor (the connection, the file) until the
    // write timeout ends it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.open_files() > baseline, "the download is under way");
    let asked = std::time::Instant::now();
    while server.open_files() > baseline {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "a stalled download is still held after {:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the stalled download was cut off {:?} after it stalled",
        asked.elapsed()
    );
    drop(tcp);
}
