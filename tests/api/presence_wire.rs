//! A client that sends its namespace DISCONNECT and closes the websocket in the same breath (as
//! socket.io-client's `socket.close()` does) still goes offline for the others in its threads:
//! socketioxide may take the socket out of its rooms before the disconnect handler runs, so
//! presence must not depend on the rooms it still lists then.

use std::time::Duration;

use crate::helpers::{TestApp, Ws, eio, next_text, spawn_app, ws};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// A session identified as `user`, joined to `thread`; its own presence event is read.
async fn joined_as(app: &TestApp, user: &str, thread: &str) -> Ws {
    let mut ws = entered_as(app, user, thread).await;
    let own = next_text(&mut ws, WAIT).await.unwrap();
    assert!(own.starts_with(r#"42["presence""#), "{own}");
    ws
}

/// A session identified as `user` that joins (empty) `thread` the moment its CONNECT is
/// acknowledged; the join's ack is read.
async fn entered_as(app: &TestApp, user: &str, thread: &str) -> Ws {
    let mut ws = ws(app, eio::Open::default()).await;
    ws.send(Message::text(format!(r#"40{{"userId":"{user}"}}"#)))
        .await
        .unwrap();
    assert!(next_text(&mut ws, WAIT).await.unwrap().starts_with("40"));
    ws.send(Message::text(format!(
        r#"420["thread:join",{{"threadId":"{thread}"}}]"#
    )))
    .await
    .unwrap();
    assert_eq!(
        next_text(&mut ws, WAIT).await.unwrap(),
        r#"430[{"ok":true,"seq":0}]"#
    );
    ws
}

/// The next presence event `ws` receives: the sorted online list.
async fn presence(ws: &mut Ws) -> String {
    let text = next_text(ws, WAIT).await.expect("a presence event");
    assert!(text.starts_with(r#"42["presence""#), "{text}");
    let online = text.split(r#""online":"#).nth(1).expect("online");
    online.trim_end_matches("}]").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_says_goodbye_and_hangs_up_goes_offline() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["dan", "eve"]).await;
    let mut dan = joined_as(&app, "dan", &thread).await;
    for round in 0..50 {
        let mut eve = joined_as(&app, "eve", &thread).await;
        assert_eq!(
            presence(&mut dan).await,
            r#"["dan","eve"]"#,
            "round {round}"
        );
        // DISCONNECT and the close frame back to back, one flush.
        eve.feed(Message::text("41")).await.unwrap();
        eve.feed(Message::Close(None)).await.unwrap();
        eve.flush().await.unwrap();
        assert_eq!(presence(&mut dan).await, r#"["dan"]"#, "round {round}");
    }
}

/// A client's first `thread:join`, sent the moment its CONNECT is acknowledged, counts it
/// online: socketioxide acknowledges before it marks the socket connected, so presence must not
/// wait for that mark. Each newcomer here is told its own arrival, with everyone before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_right_after_connecting_counts_the_joiner() {
    const USERS: usize = 40;
    let app = spawn_app().await;
    let users: Vec<String> = (0..USERS).map(|n| format!("u{n:02}")).collect();
    let members: Vec<&str> = users.iter().map(String::as_str).collect();
    let thread = app.create_thread(&members).await;
    let mut held = Vec::new();
    for (n, user) in users.iter().enumerate() {
        let mut ws = entered_as(&app, user, &thread).await;
        // Windows may merge arrivals; the last event this newcomer hears lists everyone so far.
        let expected = serde_json::to_string(&users[..=n]).unwrap();
        let mut heard = presence(&mut ws).await;
        while heard != expected {
            heard = presence(&mut ws).await;
        }
        held.push(ws);
    }
}

/// A socket toggling `thread:join` / `thread:leave` as fast as it may cannot amplify into a
/// presence event per toggle: changes are gathered per thread, and the room hears the outcome.
#[tokio::test]
async fn join_leave_toggles_are_coalesced() {
    use crate::helpers::spawn_app_with;

    const TOGGLES: usize = 50;
    let app =
        spawn_app_with(|c| c.event_rate_per_socket = Some(threadline::config::Setting::Off)).await;
    let thread = app.create_thread(&["dan", "eve"]).await;
    let mut dan = joined_as(&app, "dan", &thread).await;
    let mut eve = joined_as(&app, "eve", &thread).await;
    assert_eq!(presence(&mut dan).await, r#"["dan","eve"]"#);
    let started = std::time::Instant::now();
    for n in 0..TOGGLES {
        for event in ["thread:leave", "thread:join"] {
            eve.feed(Message::text(format!(
                r#"42["{event}",{{"threadId":"{thread}"}}]"#
            )))
            .await
            .unwrap();
        }
        if n % 10 == 0 {
            eve.flush().await.unwrap();
        }
    }
    // Last, a leave with an ack: once answered, every toggle has been handled.
    eve.send(Message::text(format!(
        r#"421["thread:leave",{{"threadId":"{thread}"}}]"#
    )))
    .await
    .unwrap();
    while !next_text(&mut eve, WAIT).await.unwrap().starts_with("431") {}
    let elapsed = started.elapsed();

    let mut heard = Vec::new();
    while let Some(text) = next_text(&mut dan, Duration::from_millis(500)).await {
        heard.push(text);
    }
    // Events are handled concurrently, so a slow join may land after the last leave: the room
    // ends up told whatever the final state is (told nothing if it is the first one).
    let now = app
        .get(&format!("/api/threads/{thread}/presence"))
        .await
        .body;
    let last_told = heard
        .last()
        .map(|last| {
            last.split(r#""online":"#)
                .nth(1)
                .unwrap()
                .trim_end_matches("}]")
                .to_owned()
        })
        .unwrap_or_else(|| r#"["dan","eve"]"#.to_owned());
    assert_eq!(last_told, now["online"].to_string(), "{heard:?}");
    // One flush per 100 ms window at most, plus the last.
    let windows = (elapsed.as_millis() / 100) as usize + 2;
    eprintln!(
        "{} toggles in {elapsed:?}: {} presence events",
        2 * TOGGLES + 1,
        heard.len()
    );
    assert!(
        heard.len() <= windows,
        "{} presence events for {} toggles in {elapsed:?}",
        heard.len(),
        2 * TOGGLES + 1
    );
}
