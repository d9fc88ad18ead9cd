//! Rate limits over REST: posts, edits and uploads per user and per client address. A refusal is
//! 429 with `Retry-After` and the JSON error body; other users and addresses go on unaffected.
//! On by default in `jwt` mode, only where configured in `open` mode.

use std::{net::IpAddr, time::Duration};

use crate::helpers::{Reply, SECRET, TestApp, spawn_app_with, token};
use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use serde_json::json;
use threadline::{
    config::{Rate, Setting},
    limits::defaults,
};

fn rate(raw: &str) -> Option<Setting<Rate>> {
    Some(raw.parse().unwrap())
}

/// A client whose requests come from `ip` (any 127.0.0.0/8 address reaches the server).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post_as(app: &TestApp, http: &reqwest::Client, thread: &str, user: &str) -> Reply {
    app.send(
        http.post(app.url(&format!("/api/threads/{thread}/messages")))
            .header("x-user-id", user)
            .json(&json!({"body": "hi"})),
    )
    .await
}

fn assert_limited(reply: &Reply) -> u64 {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
    assert_eq!(reply.error_code(), "rate_limited");
    assert!(reply.body["message"].as_str().unwrap().contains("retry"));
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After is at least a second");
    retry
}

async fn count_messages(app: &TestApp, thread: &str) -> usize {
    let reply = app
        .get(&format!("/api/threads/{thread}/messages?limit=200"))
        .await;
    reply.body["messages"].as_array().unwrap().len()
}

#[tokio::test]
async fn posts_over_a_users_rate_are_429_and_other_users_post_on() {
    let app = spawn_app_with(|c| c.post_rate_per_user = rate("3/60s")).await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    for _ in 0..3 {
        assert_eq!(
            post_as(&app, &app.http, &thread, "ann").await.status,
            StatusCode::CREATED
        );
    }
    let retry = assert_limited(&post_as(&app, &app.http, &thread, "ann").await);
    assert!((15..=20).contains(&retry), "one more every 20 s: {retry}");
    assert_eq!(
        post_as(&app, &app.http, &thread, "bob").await.status,
        StatusCode::CREATED
    );
    // Reading is not limited, and the refused post was not stored.
    assert_eq!(count_messages(&app, &thread).await, 4);
    // Anonymous callers share no user bucket: only their address limits them.
    for _ in 0..5 {
        app.post_message(&thread, "anon").await;
    }
}

#[tokio::test]
async fn a_refused_caller_succeeds_again_after_retry_after() {
    let app = spawn_app_with(|c| c.post_rate_per_user = rate("2/2s")).await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    for _ in 0..2 {
        post_as(&app, &app.http, &thread, "ann").await;
    }
    let retry = assert_limited(&post_as(&app, &app.http, &thread, "ann").await);
    assert_eq!(retry, 1);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        post_as(&app, &app.http, &thread, "ann").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn posts_over_an_addresss_rate_are_429_and_other_addresses_post_on() {
    let app = spawn_app_with(|c| c.post_rate_per_ip = rate("3/60s")).await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let home = client_from("127.0.0.1");
    for user in ["ann", "bob", "cat"] {
        assert_eq!(
            post_as(&app, &home, &thread, user).await.status,
            StatusCode::CREATED
        );
    }
    // A new user name does not get around the address's limit.
    assert_limited(&post_as(&app, &home, &thread, "dan").await);
    let elsewhere = client_from("127.0.0.2");
    assert_eq!(
        post_as(&app, &elsewhere, &thread, "dan").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn behind_a_proxy_the_address_comes_from_the_configured_header() {
    let app = spawn_app_with(|c| {
        c.post_rate_per_ip = rate("2/60s");
        c.client_ip_header = Some("x-forwarded-for".parse().unwrap());
    })
    .await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let via = |forwarded: &str| {
        app.http
            .post(app.url(&format!("/api/threads/{thread}/messages")))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"body": "hi"}))
    };
    // The rightmost address is the one the proxy saw; what the client wrote before it is not
    // trusted.
    assert_eq!(app.send(via("1.1.1.1, 10.0.0.1")).await.status, 201);
    assert_eq!(app.send(via("2.2.2.2, 10.0.0.1")).await.status, 201);
    assert_limited(&app.send(via("3.3.3.3, 10.0.0.1")).await);
    assert_eq!(app.send(via("10.0.0.2")).await.status, 201);
}

#[tokio::test]
async fn edits_count_as_posts() {
    let app = spawn_app_with(|c| c.post_rate_per_user = rate("2/60s")).await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let posted = post_as(&app, &app.http, &thread, "ann").await;
    let path = format!(
        "/api/threads/{thread}/messages/{}",
        posted.body["message"]["id"].as_str().unwrap()
    );
    let edit = || {
        app.http
            .patch(app.url(&path))
            .header("x-user-id", "ann")
            .json(&json!({"body": "edited"}))
    };
    assert_eq!(app.send(edit()).await.status, StatusCode::OK);
    assert_limited(&app.send(edit()).await);
}

#[tokio::test]
async fn accounts_api_posts_count_for_the_sending_account() {
    let app = spawn_app_with(|c| c.post_rate_per_user = rate("2/60s")).await;
    let conversation = app.two_accounts_and_their_conversation().await;
    let send = |account: &str| {
        app.http
            .post(app.url(&format!(
                "/api/account/{account}/conversation/{conversation}/messages"
            )))
            .json(&json!({"text": "hello"}))
    };
    for _ in 0..2 {
        assert_eq!(app.send(send("1")).await.status, StatusCode::CREATED);
    }
    assert_limited(&app.send(send("1")).await);
    assert_eq!(app.send(send("2")).await.status, StatusCode::CREATED);
}

fn upload_form() -> Form {
    Form::new().part(
        "file",
        Part::bytes(b"hello".to_vec()).file_name("hello.txt"),
    )
}

#[tokio::test]
async fn uploads_are_limited_per_user_and_per_address() {
    let app = spawn_app_with(|c| {
        c.upload_rate_per_user = rate("2/60s");
        c.upload_rate_per_ip = rate("3/60s");
    })
    .await;
    let upload = |http: &reqwest::Client, user: &str| {
        http.post(app.url("/api/files"))
            .header("x-user-id", user)
            .multipart(upload_form())
    };
    for _ in 0..2 {
        assert_eq!(
            app.send(upload(&app.http, "ann")).await.status,
            StatusCode::CREATED
        );
    }
    assert_limited(&app.send(upload(&app.http, "ann")).await);
    assert_eq!(
        app.send(upload(&app.http, "bob")).await.status,
        StatusCode::CREATED
    );
    // The address has had its three: ann's refused upload took nothing from it.
    assert_limited(&app.send(upload(&app.http, "cat")).await);
    let elsewhere = client_from("127.0.0.3");
    assert_eq!(
        app.send(upload(&elsewhere, "cat")).await.status,
        StatusCode::CREATED
    );
    // Posting messages has its own buckets.
    let thread = app.create_thread(&["ann", "bob"]).await;
    assert_eq!(
        post_as(&app, &app.http, &thread, "ann").await.status,
        StatusCode::CREATED
    );
}

/// A thread of ann and bob, created with ann's token.
async fn jwt_thread(app: &TestApp) -> String {
    let reply = app
        .send(
            app.http
                .post(app.url("/api/threads"))
                .bearer_auth(token("ann"))
                .json(&json!({"memberIds": ["ann", "bob"]})),
        )
        .await;
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn jwt_post(app: &TestApp, thread: &str, user: &str) -> Reply {
    app.send(
        app.http
            .post(app.url(&format!("/api/threads/{thread}/messages")))
            .bearer_auth(token(user))
            .json(&json!({"body": "hi"})),
    )
    .await
}

#[tokio::test]
async fn jwt_mode_limits_posts_by_default_and_open_mode_does_not() {
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    let thread = jwt_thread(&app).await;
    let rate = defaults::POSTS_PER_USER;
    let burst = rate.count.get();
    // Post until refused: the burst goes through, plus what the rate gave back meanwhile (one
    // every 333 ms; a slow machine may see some).
    let from = std::time::Instant::now();
    let mut through = 0;
    let refused = loop {
        let reply = jwt_post(&app, &thread, "ann").await;
        if reply.status != StatusCode::CREATED || through == 100 {
            break reply;
        }
        through += 1;
    };
    assert_limited(&refused);
    let given_back = from.elapsed().as_secs_f64() * f64::from(burst) / rate.period.as_secs_f64();
    let most = burst + given_back.floor() as u32;
    assert!(
        (burst..=most).contains(&through),
        "{through} posts went through; expected {burst}..={most}"
    );
    assert_eq!(
        jwt_post(&app, &thread, "bob").await.status,
        StatusCode::CREATED
    );

    // `off` turns one limit off in jwt mode.
    let app = spawn_app_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.post_rate_per_user = Some(Setting::Off);
    })
    .await;
    let thread = jwt_thread(&app).await;
    for _ in 0..burst + 5 {
        let reply = jwt_post(&app, &thread, "ann").await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }

    // Open mode, nothing configured: one caller posts far past every jwt default.
    let app = spawn_app_with(|_| {}).await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    for _ in 0..(defaults::POSTS_PER_IP.count.get() + 10) {
        post_as(&app, &app.http, &thread, "ann").await;
    }
    assert_eq!(
        count_messages(&app, &thread).await,
        200,
        "a page is full of them"
    );
}

#[tokio::test]
async fn in_jwt_mode_naming_another_account_does_not_spend_its_posts() {
    let app = spawn_app_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.post_rate_per_user = rate("1/60s");
    })
    .await;
    for (id, name) in [("1", "A"), ("2", "B")] {
        let reply = app
            .send(
                app.http
                    .post(app.url("/api/accounts"))
                    .bearer_auth(token(id))
                    .json(&json!({ "name": name })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    let conversation = app
        .send(
            app.http
                .post(app.url("/api/account/1/conversations?with=2"))
                .bearer_auth(token("1")),
        )
        .await;
    let id = conversation.body["id"].as_str().unwrap().to_owned();
    let send = |as_token: &str| {
        app.http
            .post(app.url(&format!("/api/account/1/conversation/{id}/messages")))
            .bearer_auth(token(as_token))
            .json(&json!({"text": "hello"}))
    };
    // Account 2 names account 1: refused, and what it spends is its own bucket.
    assert_eq!(app.send(send("2")).await.status, StatusCode::FORBIDDEN);
    for _ in 0..3 {
        assert_limited(&app.send(send("2")).await);
    }
    assert_eq!(app.send(send("1")).await.status, StatusCode::CREATED);
    assert_limited(&app.send(send("1")).await);
}

#[tokio::test]
async fn thread_creation_is_limited_per_user_and_on_by_default_in_jwt_mode() {
    let app = spawn_app_with(|c| c.thread_rate_per_user = rate("3/60s")).await;
    let create = |user: &str, other: usize| {
        app.http
            .post(app.url("/api/threads"))
            .header("x-user-id", user)
            .json(&json!({"memberIds": [user, format!("m{other}")]}))
    };
    for n in 0..3 {
        assert_eq!(app.send(create("ann", n)).await.status, StatusCode::CREATED);
    }
    assert_limited(&app.send(create("ann", 3)).await);
    assert_eq!(app.send(create("bob", 0)).await.status, StatusCode::CREATED);

    // jwt mode, nothing configured: one token cannot create threads without bound.
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    let started = std::time::Instant::now();
    let mut created = 0;
    let refused = loop {
        let reply = app
            .send(
                app.http
                    .post(app.url("/api/threads"))
                    .bearer_auth(token("ann"))
                    .json(&json!({"memberIds": ["ann", format!("x{created}")]})),
            )
            .await;
        if reply.status != StatusCode::CREATED {
            break reply;
        }
        created += 1;
        assert!(created <= 100, "never refused");
    };
    assert_limited(&refused);
    let given_back = started.elapsed().as_secs() as usize / 2 + 1;
    let burst = defaults::THREADS_PER_USER.count.get() as usize;
    assert!(
        (burst..=burst + given_back).contains(&created),
        "{created} threads before the refusal"
    );
}
