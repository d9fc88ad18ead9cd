//! Hostile clients: what a browser page from elsewhere, a terminal-escape sender, or a shared
//! cache must not get.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
};

use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn private_responses_are_not_cached() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    app.post_message(&thread, "hi").await;
    for path in [
        format!("/api/threads/{thread}"),
        format!("/api/threads/{thread}/messages"),
        "/api/accounts".to_owned(),
    ] {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.headers["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn with_listed_origins_a_page_from_elsewhere_cannot_open_a_socket() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["http://chat.example".into()]).await;
    let handshake = |origin: Option<&str>| {
        let request = app.http.get(app.url("/ws/?EIO=4&transport=polling"));
        match origin {
            Some(origin) => request.header("origin", origin),
            None => request,
        }
    };
    let evil = app.send(handshake(Some("http://evil.example"))).await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    assert_eq!(evil.error_code(), "origin_not_allowed");
    for allowed in [Some("http://chat.example"), None] {
        let reply = handshake(allowed).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{allowed:?}");
    }

    // The websocket upgrade too: browsers apply no CORS to it.
    let mut request = format!("ws://{}/ws/?EIO=4&transport=websocket", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(
        refused.is_err(),
        "the upgrade from another origin is refused"
    );
}

#[tokio::test]
async fn message_bodies_with_control_characters_are_400() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let path = format!("/api/threads/{thread}/messages");
    for bad in ["\u{1b}[2Jcleared", "bell\u{7}", "c1\u{9b}31m"] {
        let reply = app.post_json(&path, json!({ "body": bad })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(reply.error_code(), "invalid_text");
    }
    let fine = app
        .post_json(&path, json!({ "body": "two\r\nlines\tand a tab" }))
        .await;
    assert_eq!(fine.status, StatusCode::CREATED);
}

/// Starts the binary on `host` in open mode and returns what it logged before it listened.
fn startup_log(host: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args(["--host", host, "--port", "0", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

#[test]
fn open_mode_on_a_public_address_says_it_trusts_anyone() {
    assert!(startup_log("0.0.0.0").contains("open mode on a non-loopback address"));
    assert!(!startup_log("127.0.0.1").contains("open mode"));
}

#[tokio::test]
async fn an_over_long_member_list_is_refused_even_with_duplicates() {
    let app = spawn_app().await;
    let members = vec!["same"; 2_001];
    let reply = app
        .post_json("/api/threads", json!({ "memberIds": members }))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "too_many_members");
}

#[tokio::test]
async fn a_socket_is_in_a_bounded_number_of_thread_rooms() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    use crate::helpers::{eio, joined, next_text};

    let app = spawn_app_with(|c| c.max_rooms_per_socket = 2).await;
    let threads = [
        app.create_thread(&["a", "b"]).await,
        app.create_thread(&["a", "c"]).await,
        app.create_thread(&["a", "d"]).await,
    ];
    let mut ws = joined(&app, &threads[0], eio::Open::default()).await;
    let wait = std::time::Duration::from_secs(5);
    let mut join = async |ack: u32, thread: &str| {
        ws.send(Message::text(format!(
            r#"42{ack}["thread:join",{{"threadId":"{thread}"}}]"#
        )))
        .await
        .unwrap();
        next_text(&mut ws, wait).await.unwrap()
    };
    assert_eq!(join(1, &threads[1]).await, r#"431[{"ok":true,"seq":0}]"#);
    assert_eq!(
        join(2, &threads[2]).await,
        r#"432[{"error":"too_many_rooms"}]"#
    );
    assert_eq!(
        join(3, &threads[0]).await,
        r#"433[{"ok":true,"seq":0}]"#,
        "a room it is in already"
    );
}

/// 4 sockets of one user flood `typing: true` as fast as the loopback takes it; the server is
/// a process of its own, so its memory is read from `/proc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_flood_is_refused_and_memory_stays_bounded() {
    use futures_util::SinkExt;
    use threadline_bench::target::Target;
    use tokio_tungstenite::tungstenite::Message;

    use crate::helpers::{eio, next_text};

    const SOCKETS: usize = 4;
    const EVENTS: usize = 20_000;
    let server = Target::threadline(env!("CARGO_BIN_EXE_threadline"), &[]).unwrap();
    let http = reqwest::Client::new();
    let thread =
        crate::helpers::create_thread_at(&http, &server.url(), &["flood", "watcher"]).await;
    let wait = std::time::Duration::from_secs(10);
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let mut ws = eio::open(server.addr, &eio::Open::default()).await.unwrap();
        ws.send(Message::text(r#"40{"userId":"flood"}"#))
            .await
            .unwrap();
        assert!(next_text(&mut ws, wait).await.unwrap().starts_with("40"));
        ws.send(Message::text(format!(
            r#"420["thread:join",{{"threadId":"{thread}"}}]"#
        )))
        .await
        .unwrap();
        sockets.push(ws);
    }
    // A first, smaller flood warms the server up (allocator arenas, socket buffers), so that
    // what the measured flood adds is what it keeps.
    let sockets = typing_flood(sockets, &thread, EVENTS / 10, wait).await;
    let before = server.rss();
    let sockets = typing_flood(sockets, &thread, EVENTS, wait).await;

    let started = std::time::Instant::now();
    let health = http
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let grown = server.rss().saturating_sub(before);
    assert!(
        // Before one timer per (thread, user) and the event rate, 40,000 events grew it by
        // 39 MiB (a 5 s task each), so these 80,000 by tens of MiB. Now by a few.
        grown < 24 << 20,
        "{SOCKETS} × {EVENTS} typing events grew the server by {} MiB",
        grown >> 20
    );
    drop(sockets);
}

/// Each socket sends `events` `typing: true`; returns once the server has answered the acked
/// event that closes the last burst (the flood has been handled).
async fn typing_flood(
    sockets: Vec<crate::helpers::Ws>,
    thread: &str,
    events: usize,
    wait: std::time::Duration,
) -> Vec<crate::helpers::Ws> {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    use crate::helpers::next_text;

    let typing = format!(r#"42["typing",{{"threadId":"{thread}","typing":true}}]"#);
    let flooders = sockets.into_iter().map(|mut ws| {
        let typing = typing.clone();
        let thread = thread.to_owned();
        tokio::spawn(async move {
            // In bursts of 1,000, each closed by an acked event: what the server holds at
            // once is bounded by the burst, not by how slow a loaded machine makes it; what
            // it keeps from every event (as a 5 s task each once did) still adds up.
            for burst in 0..events.div_ceil(1_000) {
                for n in 0..1_000.min(events - burst * 1_000) {
                    ws.feed(Message::text(typing.clone())).await.unwrap();
                    if n % 500 == 0 {
                        ws.flush().await.unwrap();
                    }
                }
                ws.send(Message::text(format!(
                    r#"421["typing",{{"threadId":"{thread}","typing":true}}]"#
                )))
                .await
                .unwrap();
                while !next_text(&mut ws, wait)
                    .await
                    .expect("an answer")
                    .starts_with("431")
                {}
            }
            ws
        })
    });
    let mut sockets = Vec::new();
    for flooder in flooders {
        sockets.push(flooder.await.unwrap());
    }
    sockets
}

#[tokio::test]
async fn events_past_a_sockets_rate_are_refused_before_any_work() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    use crate::helpers::{eio, joined, next_text};

    let app = spawn_app_with(|c| c.event_rate_per_socket = "5/60s".parse().ok()).await;
    let thread = app.create_thread(&["a", "b"]).await;
    // The join is the first of the five.
    let mut ws = joined(&app, &thread, eio::Open::default()).await;
    for ack in 1..=6 {
        ws.feed(Message::text(format!(
            r#"42{ack}["thread:read",{{"threadId":"{thread}","messageId":"m"}}]"#
        )))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    let wait = std::time::Duration::from_secs(5);
    let mut acks = std::collections::BTreeMap::new();
    while acks.len() < 6 {
        let frame = next_text(&mut ws, wait).await.expect("an ack");
        if let Some(rest) = frame.strip_prefix("43") {
            let (id, body) = rest.split_at(1);
            acks.insert(id.parse::<u32>().unwrap(), body.to_owned());
        }
    }
    let limited = acks.values().filter(|a| a.contains("rate_limited")).count();
    assert_eq!(limited, 2, "four fit after the join, two do not: {acks:?}");
    assert!(
        acks.values().any(|a| a.contains(r#""retryAfter":12"#)),
        "{acks:?}"
    );
}

#[tokio::test]
async fn a_session_that_never_connects_to_a_namespace_is_closed() {
    use crate::helpers::{eio, next_text, ws};

    let app = spawn_app_with(|c| c.connect_timeout_ms = 300).await;
    let mut idle = ws(&app, eio::Open::default()).await;
    let started = std::time::Instant::now();
    let wait = std::time::Duration::from_secs(10);
    // Engine.IO's close packet, then the end of the connection.
    assert_eq!(next_text(&mut idle, wait).await.as_deref(), Some("1"));
    assert_eq!(next_text(&mut idle, wait).await, None, "closed");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    // A client that connects at once is unaffected.
    let thread = app.create_thread(&["a", "b"]).await;
    let mut live = crate::helpers::joined(&app, &thread, eio::Open::default()).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let sent = app.post_message(&thread, "still here").await;
    let frame = next_text(&mut live, std::time::Duration::from_secs(5))
        .await
        .expect("the connected session is open");
    assert!(frame.contains(sent["id"].as_str().unwrap()), "{frame}");
}

/// Sends `count` Engine.IO polling handshakes over one keep-alive connection from `source`;
/// returns the statuses.
async fn polling_handshakes(
    server: std::net::SocketAddr,
    source: std::net::IpAddr,
    count: usize,
) -> Vec<u16> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(server).await.unwrap();
    let (read, mut write) = tcp.into_split();
    let mut read = BufReader::new(read);
    let request = format!("GET /ws/?EIO=4&transport=polling HTTP/1.1\r\nhost: {server}\r\n\r\n");
    let mut statuses = Vec::with_capacity(count);
    for _ in 0..count {
        write.write_all(request.as_bytes()).await.unwrap();
        let mut line = String::new();
        read.read_line(&mut line).await.unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            read.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await.unwrap();
        statuses.push(status);
    }
    statuses
}

/// 24,000 Engine.IO handshakes that never connect, from one address and then from many: the
/// node holds at most `--max-pending-sessions` of them (the rest: 503 `server_busy` before any
/// session exists), its memory stays bounded, and a real client still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_is_refused_before_sessions_exist() {
    use threadline_bench::target::Target;

    use crate::helpers::eio;

    const FLOODERS: usize = 8;
    const EACH: usize = 3_000;
    let server = Target::threadline(
        env!("CARGO_BIN_EXE_threadline"),
        &["--max-pending-sessions".into(), "1000".into()],
    )
    .unwrap();
    let before = server.rss();
    let started = std::time::Instant::now();
    let flooders = (0..FLOODERS).map(|n| {
        let source = std::net::IpAddr::from([127, 0, 1, 1 + n as u8]);
        tokio::spawn(polling_handshakes(server.addr, source, EACH))
    });
    let mut statuses = Vec::new();
    for flooder in flooders {
        statuses.extend(flooder.await.unwrap());
    }
    let elapsed = started.elapsed();
    let opened = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(opened + busy, FLOODERS * EACH, "only 200 or 503");
    // 1,000 at a time, each forgotten when the engine closes it 5 s after it opened.
    let allowed = 1_000 * (1 + (elapsed.as_secs_f64() / 5.0).ceil() as usize);
    assert!(
        opened <= allowed,
        "{opened} sessions opened in {elapsed:?} (at most {allowed})"
    );
    let grown = server.rss().saturating_sub(before);
    eprintln!(
        "{} handshakes in {elapsed:?}: {opened} opened, {busy} refused; RSS +{} KiB",
        FLOODERS * EACH,
        grown >> 10
    );
    assert!(
        // Before the cap: 100,000 sessions grew it by 878 MiB.
        grown < 48 << 20,
        "the flood grew the server by {} MiB",
        grown >> 20
    );

    // Once the flood stops, a real client connects (retrying while the bucket refills).
    let mut connected = None;
    for _ in 0..50 {
        if let Ok(ws) = eio::connect(server.addr, [127, 0, 2, 1].into()).await {
            connected = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(connected.is_some(), "a real client could not connect");
}

/// Past twice its connect rate, an address opens no more sessions (429); another address does.
#[tokio::test]
async fn an_address_opens_at_most_twice_its_connect_rate_in_sessions() {
    let app = spawn_app_with(|c| c.connect_rate_per_ip = "5/60s".parse().ok()).await;
    let statuses = polling_handshakes(app.addr, [127, 0, 0, 1].into(), 12).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses[11], 429);
    let elsewhere = polling_handshakes(app.addr, [127, 0, 0, 2].into(), 1).await;
    assert_eq!(elsewhere, [200]);
}
