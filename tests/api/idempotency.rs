//! Idempotent sends: a retry with the same key answers 200 with the original and stores nothing.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_retried_post_returns_the_original_once() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let path = format!("/api/threads/{thread}/messages");

    let first = app
        .post_json(&path, json!({"body": "hello", "clientMessageId": "c-1"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["message"]["clientMessageId"], "c-1");
    let retry = app
        .post_json(&path, json!({"body": "hello", "clientMessageId": "c-1"}))
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body, first.body, "the original message, unchanged");

    // The standard header works the same way.
    let with_header = || {
        app.send(
            app.http
                .post(app.url(&path))
                .header("idempotency-key", "h-1")
                .json(&json!({"body": "via header"})),
        )
    };
    let (a, b) = (with_header().await, with_header().await);
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a.body["message"]["id"], b.body["message"]["id"]);

    let history = app.all_messages(&thread, 50).await;
    assert_eq!(history.len(), 2, "each key stored once");
}

#[tokio::test]
async fn keys_are_scoped_to_thread_and_author() {
    let app = spawn_app().await;
    let t1 = app.create_thread(&["a", "b"]).await;
    let t2 = app.create_thread(&["a", "c"]).await;
    let post = |thread: &str, author: &str| {
        app.send(
            app.http
                .post(app.url(&format!("/api/threads/{thread}/messages")))
                .header("x-user-id", author)
                .json(&json!({"body": "x", "clientMessageId": "same"})),
        )
    };
    assert_eq!(post(&t1, "a").await.status, StatusCode::CREATED);
    assert_eq!(
        post(&t1, "b").await.status,
        StatusCode::CREATED,
        "another author"
    );
    assert_eq!(
        post(&t2, "a").await.status,
        StatusCode::CREATED,
        "another thread"
    );
    assert_eq!(post(&t1, "a").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_accounts_api_is_idempotent_too() {
    let app = spawn_app().await;
    let conv = app.two_accounts_and_their_conversation().await;
    let path = format!("/api/account/1/conversation/{conv}/messages");
    let first = app
        .post_json(&path, json!({"text": "hi", "clientMessageId": "k"}))
        .await;
    let again = app
        .post_json(&path, json!({"text": "hi", "clientMessageId": "k"}))
        .await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::CREATED, StatusCode::OK)
    );
    assert_eq!(first.body, again.body);
}

#[tokio::test]
async fn bad_keys_are_400() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let path = format!("/api/threads/{thread}/messages");
    for key in [json!(""), json!("x".repeat(129)), json!(5)] {
        let reply = app
            .post_json(&path, json!({"body": "x", "clientMessageId": key}))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key}");
    }
    let header = app
        .send(
            app.http
                .post(app.url(&path))
                .header("idempotency-key", "y".repeat(200))
                .json(&json!({"body": "x"})),
        )
        .await;
    assert_eq!(header.status, StatusCode::BAD_REQUEST);
    assert_eq!(header.error_code(), "invalid_idempotency_key");
}
