//! Search, reactions, replies and mentions over REST, on the backend the suite runs against
//! (`THREADLINE_TEST_DATABASE`), in open and `jwt` mode. Their socket events are covered with
//! the real socket.io-client in `tests/js/chat-features.test.mjs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::config::Setting;

use crate::helpers::{Reply, SECRET, TestApp, spawn_app, spawn_app_with, token, url_encode};

/// A request as `user` (open mode: the gateway's `X-User-Id`).
async fn as_user(
    app: &TestApp,
    user: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("x-user-id", user);
    if let Some(body) = body {
        req = req.json(&body);
    }
    app.send(req).await
}

async fn post(app: &TestApp, user: &str, thread: &str, body: Value) -> Reply {
    let path = format!("/api/threads/{thread}/messages");
    as_user(app, user, Method::POST, &path, Some(body)).await
}

fn reaction_path(thread: &str, message: &str, emoji: &str) -> String {
    format!(
        "/api/threads/{thread}/messages/{message}/reactions/{}",
        url_encode(emoji)
    )
}

async fn react(
    app: &TestApp,
    user: &str,
    thread: &str,
    message: &str,
    emoji: &str,
    add: bool,
) -> Reply {
    let method = if add { Method::PUT } else { Method::DELETE };
    as_user(
        app,
        user,
        method,
        &reaction_path(thread, message, emoji),
        None,
    )
    .await
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn message_in(app: &TestApp, thread: &str, id: &str) -> Value {
    app.all_messages(thread, 200)
        .await
        .into_iter()
        .find(|m| m["id"] == id)
        .expect("the message is in the history")
}

#[tokio::test]
async fn reactions_are_added_once_counted_shown_and_taken_back() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let m = id(&app.post_message(&thread, "lunch?").await);

    let first = react(&app, "ann", &thread, &m, "👍", true).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(
        first.body,
        json!({"threadId": thread, "messageId": m,
               "reactions": [{"emoji": "👍", "count": 1, "userIds": ["ann"]}]})
    );
    let again = react(&app, "ann", &thread, &m, "👍", true).await;
    assert_eq!(again.status, StatusCode::OK, "idempotent: {again:?}");
    assert_eq!(
        react(&app, "bob", &thread, &m, "👍", true).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        react(&app, "bob", &thread, &m, ":party_parrot:", true)
            .await
            .status,
        StatusCode::CREATED
    );
    let shown = message_in(&app, &thread, &m).await;
    assert_eq!(
        shown["reactions"],
        json!([{"emoji": "👍", "count": 2, "userIds": ["ann", "bob"]},
               {"emoji": ":party_parrot:", "count": 1, "userIds": ["bob"]}])
    );
    assert!(shown.get("editedAt").is_none(), "a reaction is not an edit");

    assert_eq!(
        react(&app, "ann", &thread, &m, "👍", false).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        react(&app, "ann", &thread, &m, "👍", false).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        react(&app, "bob", &thread, &m, ":party_parrot:", false)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let shown = message_in(&app, &thread, &m).await;
    assert_eq!(
        shown["reactions"],
        json!([{"emoji": "👍", "count": 1, "userIds": ["bob"]}])
    );
}

#[tokio::test]
async fn reactions_refuse_bad_emoji_a_21st_emoji_and_tombstones() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let m = id(&app.post_message(&thread, "hi").await);
    let too_long = format!(":{}:", "a".repeat(31));
    for bad in ["👍👍", "ab", "%20", too_long.as_str(), ":a b:"] {
        let reply = react(&app, "ann", &thread, &m, bad, true).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
        assert_eq!(reply.error_code(), "invalid_emoji");
    }
    for i in 0..20 {
        let reply = react(&app, "ann", &thread, &m, &format!(":e{i}:"), true).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    let extra = react(&app, "bob", &thread, &m, ":one_more:", true).await;
    assert_eq!(extra.status, StatusCode::CONFLICT);
    assert_eq!(extra.error_code(), "too_many_reactions");
    // An emoji already on the message still takes more people.
    assert_eq!(
        react(&app, "bob", &thread, &m, ":e3:", true).await.status,
        StatusCode::CREATED
    );

    let unknown = react(
        &app,
        "ann",
        &thread,
        "0190a4d6-0000-7000-8000-000000000000",
        "👍",
        true,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "message_not_found");

    let path = format!("/api/threads/{thread}/messages/{m}");
    assert_eq!(
        app.request(Method::DELETE, &path).await.status,
        StatusCode::NO_CONTENT
    );
    let late = react(&app, "ann", &thread, &m, "👍", true).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.error_code(), "message_deleted");
    assert_eq!(message_in(&app, &thread, &m).await["reactions"], json!([]));
}

#[tokio::test]
async fn reactions_count_against_the_post_rate() {
    let app =
        spawn_app_with(|c| c.post_rate_per_user = Some("3/60s".parse::<Setting<_>>().unwrap()))
            .await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let m = id(&post(&app, "bob", &thread, json!({"body": "hi"})).await.body["message"]);
    assert_eq!(
        post(&app, "ann", &thread, json!({"body": "one"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        react(&app, "ann", &thread, &m, "👍", true).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        react(&app, "ann", &thread, &m, "👍", false).await.status,
        StatusCode::NO_CONTENT
    );
    let limited = react(&app, "ann", &thread, &m, "🎉", true).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        post(&app, "ann", &thread, json!({"body": "two"}))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn replies_carry_their_parent_count_and_page() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let parent = id(&app.post_message(&thread, "who's in for lunch?").await);
    let mut replies = Vec::new();
    for i in 0..5 {
        let reply = post(
            &app,
            "bob",
            &thread,
            json!({"body": format!("me {i}"), "replyTo": parent}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        assert_eq!(reply.body["message"]["replyTo"], parent.as_str());
        replies.push(id(&reply.body["message"]));
    }
    app.post_message(&thread, "unrelated").await;

    let history = app.all_messages(&thread, 200).await;
    assert_eq!(
        history.len(),
        7,
        "replies are in the history like any message"
    );
    assert_eq!(history[0]["replyCount"], 5);
    assert!(history[0].get("replyTo").is_none());
    assert_eq!(history[6]["replyCount"], 0);

    let base = format!("/api/threads/{thread}/messages/{parent}/replies");
    let page = app.get(&format!("{base}?limit=2")).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let ids = |r: &Reply| -> Vec<String> {
        r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect()
    };
    assert_eq!(ids(&page), replies[..2]);
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let page = app.get(&format!("{base}?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&page), replies[2..4]);
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let page = app.get(&format!("{base}?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&page), replies[4..]);
    assert_eq!(page.body["nextCursor"], Value::Null);

    // A reply of a reply is a reply of that reply only.
    let nested = post(
        &app,
        "ann",
        &thread,
        json!({"body": "and me", "replyTo": replies[0]}),
    )
    .await;
    assert_eq!(nested.status, StatusCode::CREATED);
    assert_eq!(ids(&app.get(&base).await).len(), 5);
    let bad = app.get(&format!("{base}?cursor={}", id(&history[6]))).await;
    assert_eq!(bad.error_code(), "invalid_cursor");
    let unknown = app
        .get(&format!(
            "/api/threads/{thread}/messages/0190a4d6-0000-7000-8000-000000000000/replies"
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn replying_to_a_deleted_unknown_or_foreign_message_is_refused() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let other = app.create_thread(&["ann", "cat"]).await;
    let elsewhere = id(&app.post_message(&other, "elsewhere").await);
    let gone = id(&app.post_message(&thread, "soon gone").await);
    let path = format!("/api/threads/{thread}/messages/{gone}");
    assert_eq!(
        app.request(Method::DELETE, &path).await.status,
        StatusCode::NO_CONTENT
    );
    for parent in [
        gone.as_str(),
        elsewhere.as_str(),
        "0190a4d6-0000-7000-8000-000000000000",
        "not an id",
    ] {
        let reply = post(
            &app,
            "ann",
            &thread,
            json!({"body": "re", "replyTo": parent}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{parent}: {reply:?}");
        assert_eq!(reply.error_code(), "invalid_reply_to");
    }
    assert_eq!(
        app.all_messages(&thread, 50).await.len(),
        1,
        "nothing stored"
    );
}

#[tokio::test]
async fn mentions_name_members_and_count_until_read() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob", "cat"]).await;
    let refused = post(
        &app,
        "ann",
        &thread,
        json!({"body": "hey", "mentions": ["dan"]}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.error_code(), "invalid_mention");
    let too_many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    let refused = post(
        &app,
        "ann",
        &thread,
        json!({"body": "hey", "mentions": too_many}),
    )
    .await;
    assert_eq!(refused.error_code(), "invalid_mention");

    let first = post(
        &app,
        "ann",
        &thread,
        json!({"body": "@bob look", "mentions": ["bob", "bob"]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["message"]["mentions"], json!(["bob"]));
    post(&app, "ann", &thread, json!({"body": "plain"})).await;
    let last = post(
        &app,
        "cat",
        &thread,
        json!({"body": "@bob @ann", "mentions": ["bob", "ann"]}),
    )
    .await;
    let last = id(&last.body["message"]);

    let show = |user: &'static str| {
        let app = &app;
        let path = format!("/api/threads/{thread}");
        async move { as_user(app, user, Method::GET, &path, None).await.body }
    };
    let bob = show("bob").await;
    assert_eq!(
        (bob["unreadCount"].clone(), bob["unreadMentions"].clone()),
        (json!(3), json!(2))
    );
    let ann = show("ann").await;
    assert_eq!(ann["unreadMentions"], 1, "cat's mention of ann");
    let cat = show("cat").await;
    assert_eq!(cat["unreadMentions"], 0);

    let read = format!("/api/threads/{thread}/read");
    let moved = as_user(
        &app,
        "bob",
        Method::POST,
        &read,
        Some(json!({"messageId": last})),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(show("bob").await["unreadMentions"], 0);
}

#[tokio::test]
async fn conversations_show_unread_mentions() {
    let app = spawn_app().await;
    let conversation = app.two_accounts_and_their_conversation().await;
    let path = format!("/api/account/1/conversation/{conversation}/messages");
    let sent = as_user(
        &app,
        "1",
        Method::POST,
        &path,
        Some(json!({"text": "hi @2", "mentions": ["2"]})),
    )
    .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{sent:?}");
    assert_eq!(sent.body["mentions"], json!(["2"]));
    assert!(sent.body.get("replyCount").is_none(), "shown only when set");
    let reply = as_user(
        &app,
        "2",
        Method::POST,
        &format!("/api/account/2/conversation/{conversation}/messages"),
        Some(json!({"text": "yes?", "replyTo": sent.body["id"]})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["replyTo"], sent.body["id"]);
    let list = as_user(&app, "2", Method::GET, "/api/account/2/conversations", None).await;
    let listed = &list.body["rows"][0];
    assert_eq!(listed["unreadMentions"], 1, "{list:?}");
}

async fn search(app: &TestApp, user: &str, query: &str) -> Reply {
    as_user(
        app,
        user,
        Method::GET,
        &format!("/api/search/messages?{query}"),
        None,
    )
    .await
}

fn bodies(r: &Reply) -> Vec<String> {
    r.body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{r:?}"))
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_matches_all_words_the_last_as_a_prefix_newest_first() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let other = app.create_thread(&["ann", "cat"]).await;
    for body in [
        "Lunch tomorrow?",
        "no lunch today",
        "Déjà vu at the CAFÉ",
        "lunch at the café tomorrow",
    ] {
        app.post_message(&thread, body).await;
    }
    app.post_message(&other, "lunch tomorrow, elsewhere").await;

    let found = search(&app, "ann", "q=lunch%20TOMOR").await;
    assert_eq!(found.status, StatusCode::OK, "{found:?}");
    assert_eq!(
        bodies(&found),
        [
            "lunch tomorrow, elsewhere",
            "lunch at the café tomorrow",
            "Lunch tomorrow?"
        ]
    );
    assert!(found.body["messages"][0]["threadId"] == other.as_str());
    assert_eq!(
        bodies(&search(&app, "ann", "q=cafe").await).len(),
        2,
        "accents do not matter"
    );
    assert_eq!(
        bodies(&search(&app, "ann", "q=deja%20caf").await),
        ["Déjà vu at the CAFÉ"]
    );
    let scoped = search(&app, "ann", &format!("q=tomorrow&threadId={other}")).await;
    assert_eq!(bodies(&scoped), ["lunch tomorrow, elsewhere"]);
    assert!(bodies(&search(&app, "ann", "q=dinner").await).is_empty());

    for bad in ["", "q=", "q=%3F%21", &format!("q={}", "word%20".repeat(9))] {
        let reply = search(&app, "ann", bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
        assert_eq!(reply.error_code(), "invalid_query");
    }
    assert_eq!(
        search(&app, "ann", "q=lunch&cursor=abc").await.error_code(),
        "invalid_cursor"
    );
}

#[tokio::test]
async fn search_pages_with_its_cursor() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    for i in 0..7 {
        app.post_message(&thread, &format!("standup note {i}"))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = search(&app, "ann", &format!("q=standup&limit=3&cursor={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        seen.extend(bodies(&page));
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("standup note {i}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn an_edit_is_found_by_its_new_text_and_a_tombstone_never() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let m = id(&app.post_message(&thread, "meet at noon").await);
    let gone = id(&app.post_message(&thread, "secret plan at noon").await);
    let path = format!("/api/threads/{thread}/messages/{m}");
    let edited = app
        .send(
            app.http
                .patch(app.url(&path))
                .json(&json!({"body": "meet at five"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);
    assert_eq!(
        bodies(&search(&app, "ann", "q=five").await),
        ["meet at five"]
    );
    assert_eq!(
        bodies(&search(&app, "ann", "q=noon").await),
        ["secret plan at noon"]
    );
    let path = format!("/api/threads/{thread}/messages/{gone}");
    assert_eq!(
        app.request(Method::DELETE, &path).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(bodies(&search(&app, "ann", "q=noon").await).is_empty());
    assert!(bodies(&search(&app, "ann", "q=secret").await).is_empty());
}

/// `jwt` mode: a caller sees, reacts to and mentions only within threads it is a member of.
mod jwt {
    use super::*;

    async fn as_token(
        app: &TestApp,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = app
            .http
            .request(method, app.url(path))
            .bearer_auth(token(user));
        if let Some(body) = body {
            req = req.json(&body);
        }
        app.send(req).await
    }

    async fn thread_of(app: &TestApp, creator: &str, members: &[&str]) -> String {
        let reply = as_token(
            app,
            creator,
            Method::POST,
            "/api/threads",
            Some(json!({"memberIds": members})),
        )
        .await;
        assert!(reply.status.is_success(), "{reply:?}");
        reply.body["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn non_members_cannot_react_search_or_be_mentioned() {
        let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.into())).await;
        let ours = thread_of(&app, "ann", &["ann", "bob"]).await;
        let theirs = thread_of(&app, "cat", &["cat", "dan"]).await;
        let path = |t: &str| format!("/api/threads/{t}/messages");
        let mine = as_token(
            &app,
            "ann",
            Method::POST,
            &path(&ours),
            Some(json!({"body": "budget review"})),
        )
        .await;
        let mine = id(&mine.body["message"]);
        let secret = as_token(
            &app,
            "cat",
            Method::POST,
            &path(&theirs),
            Some(json!({"body": "budget secret"})),
        )
        .await;
        let secret = id(&secret.body["message"]);

        let denied = as_token(
            &app,
            "ann",
            Method::PUT,
            &reaction_path(&theirs, &secret, "👍"),
            None,
        )
        .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(denied.error_code(), "not_a_member");
        let ok = as_token(
            &app,
            "bob",
            Method::PUT,
            &reaction_path(&ours, &mine, "👍"),
            None,
        )
        .await;
        assert_eq!(ok.status, StatusCode::CREATED);
        assert_eq!(
            ok.body["reactions"][0]["userIds"],
            json!(["bob"]),
            "the token's subject reacts"
        );

        let found = as_token(
            &app,
            "ann",
            Method::GET,
            "/api/search/messages?q=budget",
            None,
        )
        .await;
        assert_eq!(
            bodies(&found),
            ["budget review"],
            "only the caller's threads"
        );
        let found = as_token(
            &app,
            "dan",
            Method::GET,
            "/api/search/messages?q=budget",
            None,
        )
        .await;
        assert_eq!(bodies(&found), ["budget secret"]);
        let scoped = as_token(
            &app,
            "ann",
            Method::GET,
            &format!("/api/search/messages?q=budget&threadId={theirs}"),
            None,
        )
        .await;
        assert_eq!(scoped.status, StatusCode::FORBIDDEN);

        let mention = as_token(
            &app,
            "ann",
            Method::POST,
            &path(&ours),
            Some(json!({"body": "hi", "mentions": ["cat"]})),
        )
        .await;
        assert_eq!(mention.status, StatusCode::BAD_REQUEST);
        assert_eq!(mention.error_code(), "invalid_mention");
        let reply = as_token(
            &app,
            "ann",
            Method::POST,
            &path(&ours),
            Some(json!({"body": "re", "replyTo": secret})),
        )
        .await;
        assert_eq!(
            reply.error_code(),
            "invalid_reply_to",
            "a message of another thread"
        );
        let replies = as_token(
            &app,
            "ann",
            Method::GET,
            &format!("/api/threads/{theirs}/messages/{secret}/replies"),
            None,
        )
        .await;
        assert_eq!(replies.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn searches_are_rate_limited_per_user() {
        let app = spawn_app_with(|c| {
            c.jwt_secret = Some(SECRET.into());
            c.search_rate_per_user = Some("2/60s".parse::<Setting<_>>().unwrap());
        })
        .await;
        for _ in 0..2 {
            let ok = as_token(&app, "ann", Method::GET, "/api/search/messages?q=x", None).await;
            assert_eq!(ok.status, StatusCode::OK);
        }
        let limited = as_token(&app, "ann", Method::GET, "/api/search/messages?q=x", None).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        let other = as_token(&app, "bob", Method::GET, "/api/search/messages?q=x", None).await;
        assert_eq!(other.status, StatusCode::OK, "per user");
    }
}
