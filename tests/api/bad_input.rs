//! Property: no request a client can send makes the server answer 5xx or break its JSON error
//! shape: random JSON bodies, random query strings and random cursors on every route.

use crate::helpers::{TestApp, spawn_app};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        // Control characters and NULs, which some databases refuse to store as text.
        "[\\x00-\\x1f a-z]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("body".to_owned()),
                    Just("memberIds".to_owned()),
                    Just("title".to_owned()),
                    Just("fileIds".to_owned()),
                    Just("text".to_owned()),
                    Just("name".to_owned()),
                    Just("clientMessageId".to_owned()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

async fn assert_clean(app: &TestApp, reply: crate::helpers::Reply, what: &str) {
    assert!(
        !reply.status.is_server_error(),
        "{what} answered {}: {:?}",
        reply.status,
        reply.body
    );
    if reply.status.is_client_error() {
        assert!(
            reply.body["error"].is_string(),
            "{what}: error body {:?}",
            reply.body
        );
    }
    assert_eq!(
        app.get("/healthz").await.status.as_u16(),
        200,
        "still up after {what}"
    );
}

struct World {
    app: TestApp,
    thread: String,
    conv: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let conv = app.two_accounts_and_their_conversation().await;
    let thread = app.create_thread(&["x", "y"]).await;
    app.post_message(&thread, "hello").await;
    World { app, thread, conv }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_json_bodies_get_clean_answers(body in any_json(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let w = world().await;
            let posts = [
                "/api/threads".to_owned(),
                format!("/api/threads/{}/messages", w.thread),
                "/api/accounts".to_owned(),
                format!("/api/account/1/conversation/{}/messages", w.conv),
                "/api/account/1/conversations?with=2".to_owned(),
            ];
            for path in &posts {
                let reply = w.app.post_json(path, body.clone()).await;
                assert_clean(&w.app, reply, &format!("POST {path} {body}")).await;
                let reply = w.app.post_raw(path, "application/json", raw.clone()).await;
                assert_clean(&w.app, reply, &format!("POST {path} raw {raw:?}")).await;
            }
            w.app.stop().await;
        });
    }

    #[test]
    fn random_queries_and_cursors_get_clean_answers(
        value in prop_oneof![".{0,60}", "[\\x00-\\x1f%+/= a-z]{0,20}"],
        cursor_json in any_json(),
        key in prop_oneof![Just("limit".to_owned()), Just("cursor".to_owned()), Just("pageSize".to_owned()), Just("with".to_owned()), "[a-z]{1,6}"],
    ) {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            use base64::Engine;
            let w = world().await;
            let encoded_cursor = base64::engine::general_purpose::STANDARD.encode(cursor_json.to_string());
            for v in [value.as_str(), encoded_cursor.as_str()] {
                let q = format!("{key}={}", crate::helpers::url_encode(v));
                for path in [
                    format!("/api/threads/{}/messages?{q}", w.thread),
                    format!("/api/account/1/conversations?{q}"),
                    format!("/api/1/conversation/{}/messages?{q}", w.conv),
                    format!("/api/1/conversation?cursor={}", crate::helpers::url_encode(v)),
                    format!("/api/threads/{}", crate::helpers::url_encode(v)),
                    format!("/api/files/{}/status", crate::helpers::url_encode(v)),
                ] {
                    let reply = w.app.get(&path).await;
                    assert_clean(&w.app, reply, &format!("GET {path}")).await;
                }
            }
            w.app.stop().await;
        });
    }
}
