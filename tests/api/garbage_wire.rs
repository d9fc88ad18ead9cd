//! Garbage on the wire: random bytes, broken handshakes, wrong packet types, oversized frames
//! and half-open connections on `/ws` leave the server up and other clients' traffic flowing.

use std::time::Duration;

use crate::helpers::{TestApp, Ws, eio, joined, next_text, spawn_app, ws};
use futures_util::SinkExt;
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A raw session that may send frames of any size.
async fn open(app: &TestApp) -> Ws {
    let how = eio::Open {
        unbounded: true,
        ..eio::Open::default()
    };
    ws(app, how).await
}

/// How long a read waits before the session counts as silent.
const WAIT: Duration = Duration::from_secs(5);

/// Posts a message and checks the bystander receives it.
async fn bystander_still_served(app: &TestApp, bystander: &mut Ws, thread: &str, text: &str) {
    let sent = app.post_message(thread, text).await;
    loop {
        let frame = next_text(bystander, WAIT)
            .await
            .expect("bystander connection alive");
        if frame.starts_with(r#"42["message:new""#) {
            assert!(frame.contains(sent["id"].as_str().unwrap()), "{frame}");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_hurts_nobody_else() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["g1", "g2"]).await;
    let mut bystander = joined(&app, &thread, eio::Open::default()).await;

    // Raw bytes instead of HTTP, and a request cut off mid-headers (half-open).
    let mut runner = TestRunner::deterministic();
    for _ in 0..20 {
        let bytes = proptest::collection::vec(proptest::num::u8::ANY, 1..2048)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        let _ = tcp.write_all(&bytes).await;
    }
    let mut half_open = Vec::new();
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        tcp.write_all(b"GET /ws/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgr")
            .await
            .unwrap();
        half_open.push(tcp);
    }
    bystander_still_served(&app, &mut bystander, &thread, "after raw bytes").await;

    // Engine.IO and Socket.IO packets that make no sense.
    let nonsense = [
        "",
        "9",
        "4",
        "6",
        "41",
        "42",
        "42garbage",
        r#"42["thread:join""#,
        "40/nope,",
        r#"42["thread:join",{"threadId":null}]"#,
        r#"421["thread:join"]"#,
        "43[]",
        "44",
        r#"45-["x",{"_placeholder":true,"num":0}]"#,
        "4\u{0}\u{1}",
        "💥",
    ];
    for packet in nonsense {
        let mut ws = open(&app).await;
        let _ = ws.send(Message::text("40")).await;
        let _ = ws.send(Message::text(packet)).await;
        let _ = ws.send(Message::binary(vec![0xff, 0x00, 0x13])).await;
    }
    bystander_still_served(&app, &mut bystander, &thread, "after nonsense packets").await;

    // Random text and binary frames, and a frame over the 1 MB payload limit.
    for _ in 0..20 {
        let junk = proptest::string::string_regex(".{0,200}")
            .unwrap()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut ws = open(&app).await;
        let _ = ws.send(Message::text(junk)).await;
    }
    let mut big = open(&app).await;
    let _ = big
        .send(Message::text(format!("40{}", "x".repeat(2_000_000))))
        .await;
    assert!(
        next_text(&mut big, WAIT).await.is_none(),
        "an oversized frame closes that connection"
    );
    bystander_still_served(&app, &mut bystander, &thread, "after oversized frames").await;

    // A websocket client that connects and then never reads or answers pings.
    let mute = ws(&app, eio::Open::default()).await;
    bystander_still_served(&app, &mut bystander, &thread, "with a mute client").await;

    assert_eq!(app.get("/healthz").await.status.as_u16(), 200);
    drop((half_open, mute));
}
