//! The messenger README's accounts and conversations API, over the same store as the threads API.

use crate::helpers::{TestApp, cursor, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn account(app: &TestApp, name: &str) -> String {
    let reply = app
        .post_json("/api/accounts", json!({ "name": name }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn conversation(app: &TestApp, me: &str, with: &str) -> String {
    let reply = app
        .send(
            app.http
                .post(app.url(&format!("/api/account/{me}/conversations?with={with}"))),
        )
        .await;
    assert!(reply.status.is_success(), "{reply:?}");
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn say(app: &TestApp, me: &str, conv: &str, text: &str) -> Value {
    let reply = app
        .post_json(
            &format!("/api/account/{me}/conversation/{conv}/messages"),
            json!({ "text": text }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    reply.body
}

#[tokio::test]
async fn accounts_are_created_listed_and_read() {
    let app = spawn_app().await;
    let a = account(&app, "  Ada ").await;
    let b = account(&app, "Bob").await;
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("1", "2"),
        "decimal ids in creation order"
    );
    assert_eq!(
        app.get("/api/accounts").await.body,
        json!({"accounts": [{"id": "1", "name": "Ada"}, {"id": "2", "name": "Bob"}]})
    );
    assert_eq!(
        app.get("/api/account/2").await.body,
        json!({"id": "2", "name": "Bob"})
    );
    let missing = app.get("/api/account/99").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, json!({"error": "account_not_found"}));
}

#[tokio::test]
async fn bad_account_names_are_400() {
    let app = spawn_app().await;
    for body in [
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "a\u{0}b"}),
    ] {
        let reply = app.post_json("/api/accounts", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.error_code(), "invalid_name");
    }
    for body in [json!({}), json!({"name": 5}), json!("Ada")] {
        let reply = app.post_json("/api/accounts", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.error_code(), "invalid_body");
    }
}

#[tokio::test]
async fn creating_a_conversation_resolves_the_existing_one() {
    let app = spawn_app().await;
    let (a, b) = (account(&app, "A").await, account(&app, "B").await);
    let path = format!("/api/account/{a}/conversations?with={b}");
    let first = app.send(app.http.post(app.url(&path))).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        first.body,
        json!({"id": first.body["id"], "participants": [{"id": a, "name": "A"}, {"id": b, "name": "B"}], "unreadCount": 0, "unreadMentions": 0}),
        "no lastMessage while there is none"
    );
    let back = app
        .send(
            app.http
                .post(app.url(&format!("/api/account/{b}/conversations?with={a}"))),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.body["id"], first.body["id"]);
    // The threads API resolves the same member set to the same thread.
    let thread = app
        .post_json("/api/threads", json!({"memberIds": [b, a]}))
        .await;
    assert_eq!(thread.status, StatusCode::OK);
    assert_eq!(thread.body["id"], first.body["id"]);
    assert_eq!(thread.body["memberNames"], json!(["A", "B"]));
}

#[tokio::test]
async fn bad_conversation_requests_are_4xx() {
    let app = spawn_app().await;
    let (a, b) = (account(&app, "A").await, account(&app, "B").await);
    let c = account(&app, "C").await;
    let conv = conversation(&app, &a, &b).await;
    let post = |path: String| app.send(app.http.post(app.url(&path)));

    let cases = [
        (
            post(format!("/api/account/{a}/conversations")).await,
            400,
            "missing_with",
        ),
        (
            post(format!("/api/account/{a}/conversations?with=")).await,
            400,
            "missing_with",
        ),
        (
            post(format!("/api/account/{a}/conversations?with={a}")).await,
            400,
            "invalid_with",
        ),
        (
            post(format!("/api/account/{a}/conversations?with=77")).await,
            404,
            "account_not_found",
        ),
        (
            post(format!("/api/account/77/conversations?with={a}")).await,
            404,
            "account_not_found",
        ),
        (
            app.get(&format!("/api/account/{a}/conversation/nope"))
                .await,
            404,
            "conversation_not_found",
        ),
        (
            app.get(&format!("/api/account/77/conversation/{conv}"))
                .await,
            404,
            "account_not_found",
        ),
        (
            app.get(&format!("/api/account/{c}/conversation/{conv}"))
                .await,
            403,
            "not_a_participant",
        ),
        (
            app.get(&format!("/api/account/{c}/conversation/{conv}/messages"))
                .await,
            403,
            "not_a_participant",
        ),
        (
            app.get(&format!("/api/{c}/conversation/{conv}/messages"))
                .await,
            403,
            "not_a_participant",
        ),
        (
            app.post_json(
                &format!("/api/account/{c}/conversation/{conv}/messages"),
                json!({"text": "x"}),
            )
            .await,
            403,
            "not_a_participant",
        ),
        (
            app.post_json(
                &format!("/api/account/{a}/conversation/{conv}/messages"),
                json!({"text": "  "}),
            )
            .await,
            400,
            "empty_message",
        ),
        (
            app.post_json(
                &format!("/api/account/{a}/conversation/{conv}/messages"),
                json!({"text": 3}),
            )
            .await,
            400,
            "invalid_body",
        ),
        (
            app.post_json(
                &format!("/api/account/{a}/conversation/{conv}/messages"),
                json!({}),
            )
            .await,
            400,
            "invalid_body",
        ),
    ];
    for (i, (reply, status, code)) in cases.iter().enumerate() {
        assert_eq!(reply.status.as_u16(), *status, "case {i}: {reply:?}");
        assert_eq!(reply.error_code(), *code, "case {i}");
    }
}

#[tokio::test]
async fn bad_cursors_and_page_sizes_are_400() {
    let app = spawn_app().await;
    let (a, b) = (account(&app, "A").await, account(&app, "B").await);
    let c = account(&app, "C").await;
    let conv = conversation(&app, &a, &b).await;
    let other = conversation(&app, &a, &c).await;
    say(&app, &a, &conv, "here").await;
    let foreign = say(&app, &a, &other, "elsewhere").await;
    let base = format!("/api/account/{a}/conversation/{conv}/messages");

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let bad_cursors = [
        "%%%not-base64".to_owned(),
        b64("not json"),
        b64(r#"{"sort":"SIDEWAYS","lastSeen":"1"}"#),
        b64(r#"{"lastSeen":"1"}"#),
        b64(r#"{"sort":"NEWEST_FIRST","lastSeen":7}"#),
        cursor("NEWEST_FIRST", "no-such-message"),
        cursor("OLDEST_FIRST", foreign["id"].as_str().unwrap()),
        cursor("NEWEST_FIRST", "bad id with spaces"),
    ];
    for bad in &bad_cursors {
        let q = crate::helpers::url_encode(bad);
        let reply = app.get(&format!("{base}?cursor={q}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.body["error"], "invalid_cursor", "{bad}");
    }
    let conv_list = app
        .get(&format!(
            "/api/account/{b}/conversations?cursor={}",
            crate::helpers::url_encode(&cursor("NEWEST_FIRST", &other))
        ))
        .await;
    assert_eq!(
        conv_list.status,
        StatusCode::BAD_REQUEST,
        "B is not in the A–C conversation"
    );
    assert_eq!(conv_list.error_code(), "invalid_cursor");

    for size in ["0", "-2", "ten", "2.5"] {
        let reply = app.get(&format!("{base}?pageSize={size}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{size}");
        assert_eq!(reply.error_code(), "invalid_page_size");
    }
    let capped = app.get(&format!("{base}?pageSize=100000")).await;
    assert_eq!(capped.status, StatusCode::OK);
}

async fn conversation_ids(app: &TestApp, account: &str) -> Vec<String> {
    app.get(&format!("/api/account/{account}/conversations"))
        .await
        .body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn walks_in_both_directions_cover_the_conversation_once() {
    let app = spawn_app().await;
    let (a, b) = (account(&app, "A").await, account(&app, "B").await);
    let conv = conversation(&app, &a, &b).await;
    let mut all = Vec::new();
    for i in 0..23 {
        all.push(
            say(
                &app,
                if i % 2 == 0 { &a } else { &b },
                &conv,
                &format!("m{i}"),
            )
            .await["id"]
                .clone(),
        );
    }
    let base = format!("/api/{a}/conversation/{conv}/messages?pageSize=5");
    let first = app.get(&base).await;
    assert_eq!(first.body["sort"], "NEWEST_FIRST");
    let mut seen: Vec<Value> = first.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let mut next = first.body["cursor_next"].clone();
    while let Some(c) = next.as_str() {
        let page = app
            .get(&format!("{base}&cursor={}", crate::helpers::url_encode(c)))
            .await;
        assert_eq!(page.body["sort"], "OLDEST_FIRST");
        let rows: Vec<Value> = page.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        seen.extend(rows.into_iter().rev());
        next = page.body["cursor_next"].clone();
    }
    let mut newest_first = all.clone();
    newest_first.reverse();
    assert_eq!(
        seen, newest_first,
        "older walk: every message once, then null"
    );

    // Newer walk from the first page picks up messages created after it was read.
    let later: Vec<Value> = {
        let mut v = Vec::new();
        for i in 0..7 {
            v.push(say(&app, &a, &conv, &format!("late{i}")).await["id"].clone());
        }
        v
    };
    let mut prev = first.body["cursor_prev"].clone();
    let mut newer = Vec::new();
    loop {
        let page = app
            .get(&format!(
                "{base}&cursor={}",
                crate::helpers::url_encode(prev.as_str().unwrap())
            ))
            .await;
        let rows: Vec<Value> = page.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        prev = page.body["cursor_prev"].clone();
        if rows.is_empty() {
            break;
        }
        newer.extend(rows.into_iter().rev());
    }
    assert_eq!(
        newer, later,
        "newer walk: exactly the new messages, oldest first"
    );
}

#[tokio::test]
async fn conversations_list_most_recent_first_and_messages_cross_apis() {
    let app = spawn_app().await;
    let a = account(&app, "A").await;
    let (b, c, d) = (
        account(&app, "B").await,
        account(&app, "C").await,
        account(&app, "D").await,
    );
    let ab = conversation(&app, &a, &b).await;
    let ac = conversation(&app, &a, &c).await;
    let ad = conversation(&app, &a, &d).await;
    assert_eq!(
        conversation_ids(&app, &a).await,
        [ad.clone(), ac.clone(), ab.clone()]
    );

    // A message through the *threads* API moves the conversation to the top and shows up here.
    let via_threads = app
        .send(
            app.http
                .post(app.url(&format!("/api/threads/{ab}/messages")))
                .header("x-user-id", b.as_str())
                .json(&json!({"body": "through the threads API"})),
        )
        .await;
    assert_eq!(via_threads.status, StatusCode::CREATED);
    assert_eq!(
        conversation_ids(&app, &a).await,
        [ab.clone(), ad.clone(), ac.clone()]
    );
    let conv = app
        .get(&format!("/api/account/{a}/conversation/{ab}"))
        .await;
    assert_eq!(
        conv.body["lastMessage"],
        json!({
            "id": via_threads.body["message"]["id"],
            "sender": {"id": b, "name": "B"},
            "text": "through the threads API",
            "ts": conv.body["lastMessage"]["ts"],
            "seq": conv.body["lastMessage"]["seq"],
        })
    );
    // And a message through this API is in the threads API's history, same id and text.
    let said = say(&app, &a, &ac, "through the accounts API").await;
    let history = app.all_messages(&ac, 50).await;
    assert_eq!(history.last().unwrap()["id"], said["id"]);
    assert_eq!(history.last().unwrap()["body"], "through the accounts API");
    assert_eq!(history.last().unwrap()["authorId"], a.as_str());
    let ts = said["ts"].as_i64().unwrap();
    let created = history.last().unwrap()["createdAt"].as_str().unwrap();
    assert_eq!(
        threadline::domain::Timestamp::from_millis(ts).to_iso(),
        created,
        "ts and createdAt are the same instant"
    );

    // Conversation pages walk in activity order.
    let page = app.get(&format!("/api/{a}/conversation?pageSize=2")).await;
    let ids: Vec<&str> = page.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ac.as_str(), ab.as_str()]);
    let older = app
        .get(&format!(
            "/api/{a}/conversation?pageSize=2&cursor={}",
            crate::helpers::url_encode(page.body["cursor_next"].as_str().unwrap())
        ))
        .await;
    assert_eq!(older.body["rows"][0]["id"], ad.as_str());
    assert_eq!(
        older.body["cursor_next"],
        Value::Null,
        "the end is explicit"
    );
}

/// The accounts API and the threads API read the same store: unread counts, edits and
/// deletions agree between them.
#[tokio::test]
async fn both_apis_agree_on_unread_counts_and_edits() {
    let app = spawn_app().await;
    let conversation = app.two_accounts_and_their_conversation().await;
    let as_user = |id: &'static str| move |r: reqwest::RequestBuilder| r.header("x-user-id", id);
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let reply = app
            .post_json(
                &format!("/api/account/2/conversation/{conversation}/messages"),
                json!({ "text": text }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        sent.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        unread_in_both(&app, &conversation).await,
        [json!(3), json!(3), json!(3)]
    );
    assert_eq!(
        app.get("/api/account/2/conversations").await.body["rows"][0]["unreadCount"],
        json!(0),
        "one's own messages are never unread"
    );

    // Reading up to the second message leaves one unread, in both APIs.
    let read = app
        .send(as_user("1")(
            app.http
                .post(app.url(&format!("/api/threads/{conversation}/read")))
                .json(&json!({ "messageId": sent[1] })),
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body, json!({ "messageId": sent[1] }));
    assert_eq!(
        unread_in_both(&app, &conversation).await,
        [json!(1), json!(1), json!(1)]
    );
    // Backwards does not move it.
    let back = app
        .send(as_user("1")(
            app.http
                .post(app.url(&format!("/api/threads/{conversation}/read")))
                .json(&json!({ "messageId": sent[0] })),
        ))
        .await;
    assert_eq!(back.body, json!({ "messageId": sent[1] }));

    // An edit through the threads API shows in the accounts API; so does a deletion.
    let message_path = |id: &str| format!("/api/threads/{conversation}/messages/{id}");
    let edit = app
        .send(as_user("2")(
            app.http
                .patch(app.url(&message_path(&sent[2])))
                .json(&json!({ "body": "three, edited" })),
        ))
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{edit:?}");
    let refused = app
        .send(as_user("1")(
            app.http.delete(app.url(&message_path(&sent[0]))),
        ))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "not_author");
    let deleted = app
        .send(as_user("2")(
            app.http.delete(app.url(&message_path(&sent[0]))),
        ))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let page = app
        .get(&format!(
            "/api/account/1/conversation/{conversation}/messages?pageSize=10"
        ))
        .await;
    let items = page.body["rows"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(by_id(&sent[2])["text"], "three, edited");
    assert!(by_id(&sent[2])["editedTs"].is_i64());
    assert_eq!(by_id(&sent[0])["text"], "");
    assert!(by_id(&sent[0])["deletedTs"].is_i64());
    let thread_history = app.all_messages(&conversation, 10).await;
    assert_eq!(thread_history[2]["body"], "three, edited");
    assert_eq!(
        thread_history[2]["editedAt"],
        edit.body["message"]["editedAt"]
    );
    assert_eq!(thread_history[0]["body"], "");
}

/// Account 1's unread count in a conversation, as `GET /api/threads/:id`, the conversation
/// and the conversation list show it.
async fn unread_in_both(app: &TestApp, conversation: &str) -> [Value; 3] {
    let thread = app
        .send(
            app.http
                .get(app.url(&format!("/api/threads/{conversation}")))
                .header("x-user-id", "1"),
        )
        .await;
    let one = app
        .get(&format!("/api/account/1/conversation/{conversation}"))
        .await;
    let listed = app.get("/api/account/1/conversations").await;
    [
        thread.body["unreadCount"].clone(),
        one.body["unreadCount"].clone(),
        listed.body["rows"][0]["unreadCount"].clone(),
    ]
}

/// In jwt mode an account is the caller's own, under the token's subject: no sequential ids to
/// pre-claim, one account per identity, renamed by posting again.
#[tokio::test]
async fn in_jwt_mode_an_account_is_the_token_subject() {
    use crate::helpers::{SECRET, spawn_app_with, token};

    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    let create = |sub: &str, name: &str| {
        app.http
            .post(app.url("/api/accounts"))
            .bearer_auth(token(sub))
            .json(&json!({ "name": name }))
    };
    let made = app.send(create("idp:ann", "Ann")).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    assert_eq!(made.body, json!({"id": "idp:ann", "name": "Ann"}));
    let renamed = app.send(create("idp:ann", "Ann B.")).await;
    assert_eq!(renamed.status, StatusCode::OK, "{renamed:?}");
    assert_eq!(renamed.body, json!({"id": "idp:ann", "name": "Ann B."}));
    let read = app
        .send(
            app.http
                .get(app.url("/api/account/idp:ann"))
                .bearer_auth(token("idp:ann")),
        )
        .await;
    assert_eq!(read.body["name"], "Ann B.");
    let list = app
        .send(
            app.http
                .get(app.url("/api/accounts"))
                .bearer_auth(token("idp:ann")),
        )
        .await;
    assert_eq!(
        list.body,
        json!({"accounts": [{"id": "idp:ann", "name": "Ann B."}], "nextCursor": null})
    );
}

/// The list comes in pages of at most 100, in creation order, each pointing at the next; in
/// jwt mode always, in open mode when asked.
#[tokio::test]
async fn the_account_list_is_paged() {
    use crate::helpers::{SECRET, spawn_app_with, token};

    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    for n in 0..230 {
        let sub = format!("user-{n:03}");
        let reply = app
            .send(
                app.http
                    .post(app.url("/api/accounts"))
                    .bearer_auth(token(&sub))
                    .json(&json!({ "name": sub })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let page = |query: String| {
        app.send(
            app.http
                .get(app.url(&format!("/api/accounts{query}")))
                .bearer_auth(token("user-000")),
        )
    };
    let mut seen = Vec::new();
    let mut query = String::new();
    let mut sizes = Vec::new();
    loop {
        let reply = page(query).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let accounts = reply.body["accounts"].as_array().unwrap();
        sizes.push(accounts.len());
        seen.extend(
            accounts
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        match reply.body["nextCursor"].as_str() {
            Some(next) => query = format!("?cursor={next}"),
            None => break,
        }
    }
    assert_eq!(sizes, [100, 100, 30]);
    let expected: Vec<String> = (0..230).map(|n| format!("user-{n:03}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        page("?limit=1000".into()).await.body["accounts"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    let bad = page("?cursor=nope!".into()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_cursor");

    // Open mode keeps the README's whole list, and pages when asked.
    let app = spawn_app().await;
    for name in ["A", "B", "C"] {
        account(&app, name).await;
    }
    let all = app.get("/api/accounts").await.body;
    assert_eq!(all["accounts"].as_array().unwrap().len(), 3);
    assert!(all.get("nextCursor").is_none(), "{all}");
    let first = app.get("/api/accounts?limit=2").await.body;
    assert_eq!(first["accounts"].as_array().unwrap().len(), 2);
    let next = first["nextCursor"].as_str().unwrap();
    let rest = app.get(&format!("/api/accounts?cursor={next}")).await.body;
    assert_eq!(rest["accounts"], json!([{"id": "3", "name": "C"}]));
    assert_eq!(rest["nextCursor"], json!(null));
}
