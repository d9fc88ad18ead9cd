//! The Socket.IO Admin UI's server side (`--admin-ui`), spoken to over the wire exactly as the
//! UI (`@socket.io/admin-ui`) does: namespace `/admin`, its login, its events and commands.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, Ws, eio, next_text, spawn_app, spawn_app_with, ws};

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "correct horse";

/// A server with `--admin-ui` on (password [`PASSWORD`]), configured further by `configure`.
pub(crate) async fn admin_app(configure: impl FnOnce(&mut threadline::config::Config)) -> TestApp {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    spawn_app_with(move |c| {
        c.admin_ui = true;
        c.admin_ui_password_hash = Some(hash);
        configure(c);
    })
    .await
}

/// A session on `/admin` with `auth`: the CONNECT answer.
async fn admin_session(app: &TestApp, auth: Value) -> (Ws, String) {
    let mut ws = ws(app, eio::Open::default()).await;
    ws.send(Message::text(format!("40/admin,{auth}")))
        .await
        .unwrap();
    let answer = next_text(&mut ws, WAIT).await.unwrap();
    (ws, answer)
}

/// The next `/admin` event named `name`, its arguments (others are skipped).
async fn event(ws: &mut Ws, name: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let text = next_text(ws, left)
            .await
            .unwrap_or_else(|| panic!("no {name} event"));
        let Some(body) = text.strip_prefix("42/admin,") else {
            continue;
        };
        let mut args: Vec<Value> = serde_json::from_str(body).unwrap();
        if args[0] == name {
            args.remove(0);
            return args;
        }
    }
}

/// A user's socket on the main namespace; its id.
async fn user_socket(app: &TestApp, user: &str) -> (Ws, String) {
    let mut ws = ws(app, eio::Open::default()).await;
    ws.send(Message::text(format!(r#"40{{"userId":"{user}"}}"#)))
        .await
        .unwrap();
    let connected = next_text(&mut ws, WAIT).await.unwrap();
    let sid: Value = serde_json::from_str(connected.strip_prefix("40").unwrap()).unwrap();
    (ws, sid["sid"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_login_gets_a_session_the_config_every_socket_and_live_events() {
    let app = admin_app(|_| {}).await;
    let thread = app.create_thread(&["ada", "bob"]).await;
    let (_ada, ada_sid) = user_socket(&app, "ada").await;

    let (mut admin, answer) =
        admin_session(&app, json!({"username": "admin", "password": PASSWORD})).await;
    assert!(answer.starts_with("40/admin,"), "{answer}");
    let session = event(&mut admin, "session").await;
    let session = session[0].as_str().unwrap().to_owned();
    let config = event(&mut admin, "config").await;
    let features: Vec<&str> = config[0]["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for feature in [
        "EMIT",
        "JOIN",
        "LEAVE",
        "DISCONNECT",
        "AGGREGATED_EVENTS",
        "ALL_EVENTS",
    ] {
        assert!(features.contains(&feature), "{features:?}");
    }
    let all = event(&mut admin, "all_sockets").await;
    let listed = all[0].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{all:?}");
    assert_eq!(listed[0]["id"], ada_sid);
    assert_eq!(listed[0]["nsp"], "/");
    assert_eq!(listed[0]["data"]["userId"], "ada");
    assert_eq!(listed[0]["rooms"], json!(["user:ada"]));
    assert!(
        listed[0]["handshake"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.")
    );

    let stats = event(&mut admin, "server_stats").await;
    let stats = &stats[0];
    assert!(stats["serverId"].as_str().unwrap().contains('#'), "{stats}");
    assert_eq!(stats["pid"], std::process::id());
    assert_eq!(
        stats["namespaces"][0],
        json!({"name": "/", "socketsCount": 1})
    );

    // Live: a socket connects, joins a thread, sends an event, goes away.
    let (mut bob, bob_sid) = user_socket(&app, "bob").await;
    let connected = event(&mut admin, "socket_connected").await;
    assert_eq!(connected[0]["id"], bob_sid);
    bob.send(Message::text(format!(
        r#"421["thread:join",{{"threadId":"{thread}"}}]"#
    )))
    .await
    .unwrap();
    // In the order it happened: the event arrives, then the socket enters the room.
    let received = event(&mut admin, "event_received").await;
    assert_eq!(received[1], bob_sid);
    assert_eq!(received[2][0], "thread:join");
    let joined = event(&mut admin, "room_joined").await;
    assert_eq!(
        joined[..3],
        [
            json!("/"),
            json!(format!("thread:{thread}")),
            json!(bob_sid)
        ]
    );
    drop(bob);
    let gone = event(&mut admin, "socket_disconnected").await;
    assert_eq!(gone[..2], [json!("/"), json!(bob_sid)]);

    // The session id logs in again without the password.
    let (_again, answer) = admin_session(&app, json!({ "sessionId": session })).await;
    assert!(answer.starts_with("40/admin,"), "{answer}");
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_guessing_is_rationed() {
    let app = admin_app(|_| {}).await;
    let (_ws, answer) = admin_session(&app, json!({"username": "admin", "password": "no"})).await;
    assert_eq!(answer, r#"44/admin,{"message":"invalid credentials"}"#);
    let (_ws, answer) = admin_session(&app, json!({"sessionId": "made-up"})).await;
    assert!(answer.starts_with("44/admin,"), "{answer}");
    let mut refused = 0;
    for _ in 0..12 {
        let (_ws, answer) =
            admin_session(&app, json!({"username": "admin", "password": "x"})).await;
        if answer.contains("rate_limited") {
            refused += 1;
        }
    }
    assert!(refused >= 2, "{refused} of 12 rate limited");
}

#[tokio::test]
async fn commands_disconnect_and_join_but_never_into_the_products_rooms() {
    let app = admin_app(|_| {}).await;
    let thread = app.create_thread(&["ada", "bob"]).await;
    let (mut ada, ada_sid) = user_socket(&app, "ada").await;
    let (mut admin, _) =
        admin_session(&app, json!({"username": "admin", "password": PASSWORD})).await;
    event(&mut admin, "config").await;

    // Into a thread she is no member of... or any thread room: refused. A room of no meaning
    // to the product: done.
    for room in [format!("thread:{thread}"), "user:bob".into(), "ops".into()] {
        admin
            .send(Message::text(format!(
                r#"42/admin,["join","/","{room}","{ada_sid}"]"#
            )))
            .await
            .unwrap();
    }
    // The product's own events are not sent from the UI; others are.
    admin
        .send(Message::text(format!(
            r#"42/admin,["emit","/","{ada_sid}","message:new",{{"message":{{"body":"forged"}}}}]"#
        )))
        .await
        .unwrap();
    admin
        .send(Message::text(format!(
            r#"42/admin,["emit","/","{ada_sid}","notice","maintenance at 5"]"#
        )))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut ada, WAIT).await.unwrap(),
        r#"42["notice","maintenance at 5"]"#
    );
    let rooms = app
        .get(&format!("/api/threads/{thread}/presence"))
        .await
        .body;
    assert_eq!(rooms["online"], json!([]), "ada entered the thread's room");
    admin
        .send(Message::text(format!(
            r#"42/admin,["_disconnect","/",false,"{ada_sid}"]"#
        )))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ada, WAIT).await.unwrap(), "41");
}

#[tokio::test]
async fn without_the_flag_there_is_no_admin_namespace() {
    let app = spawn_app().await;
    let (_ws, answer) =
        admin_session(&app, json!({"username": "admin", "password": PASSWORD})).await;
    assert!(answer.starts_with("44/admin,"), "{answer}");
    assert_eq!(app.get("/admin-ui/").await.status, 404);
}
