//! Every request the messenger README shows, verbatim, against a `--demo` server.

use crate::helpers::{Reply, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn assert_account(v: &Value) {
    assert!(v["id"].is_string() && v["name"].is_string(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
}

fn assert_message(m: &Value) {
    assert!(m["id"].is_string(), "{m}");
    assert_account(&m["sender"]);
    assert!(m["text"].is_string(), "{m}");
    assert!(m["ts"].is_i64(), "{m}");
    // The README's four fields, and the message's position in its conversation.
    assert!(m["seq"].is_u64(), "{m}");
    assert_eq!(m.as_object().unwrap().len(), 5, "{m}");
}

fn assert_conversation(c: &Value) {
    assert!(c["id"].is_string(), "{c}");
    c["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .for_each(assert_account);
    if let Some(last) = c.get("lastMessage") {
        assert_message(last);
    }
}

fn assert_paginated(reply: &Reply, row: fn(&Value)) {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let p = &reply.body;
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["cursor_next", "cursor_prev", "rows", "sort"]);
    assert!(["NEWEST_FIRST", "OLDEST_FIRST"].contains(&p["sort"].as_str().unwrap()));
    p["rows"].as_array().unwrap().iter().for_each(row);
}

fn ids(reply: &Reply) -> Vec<&str> {
    reply.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_readme_request_answers_the_documented_shape() {
    let app = spawn_app_with(|c| c.demo = true).await;

    let accounts = app.get("/api/accounts").await;
    assert_eq!(accounts.status, StatusCode::OK);
    accounts.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_account);
    assert_eq!(
        accounts.body["accounts"][0],
        json!({"id": "1", "name": "Will Smith"})
    );

    let me = app.get("/api/account/1").await;
    assert_eq!(me.body, json!({"id": "1", "name": "Will Smith"}));

    let long = app.get("/api/account/1/conversations").await;
    assert_paginated(&long, assert_conversation);

    let first = app.get("/api/1/conversation?pageSize=2").await;
    assert_paginated(&first, assert_conversation);
    assert_eq!(first.body["rows"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["sort"], "NEWEST_FIRST");

    let next = app
        .get("/api/1/conversation?pageSize=2&cursor=eyJzb3J0IjoiTkVXRVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIyIn0=")
        .await;
    assert_paginated(&next, assert_conversation);

    let five = app.get("/api/1/conversation/5").await;
    assert_eq!(five.status, StatusCode::OK);
    assert_conversation(&five.body);
    assert_eq!(
        five.body["participants"],
        json!([{"id": "1", "name": "Will Smith"}, {"id": "3", "name": "Jaden"}])
    );
    assert_eq!(five.body["lastMessage"]["ts"], 1_612_312_332_312_i64);

    let created = app
        .send(
            app.http
                .post(app.url("/api/account/1/conversations?with=2")),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "Will and Jada already talk");
    assert_conversation(&created.body);

    let initial = app.get("/api/1/conversation/5/messages?pageSize=10").await;
    assert_paginated(&initial, assert_message);
    assert_eq!(initial.body["rows"].as_array().unwrap().len(), 10);
    assert_eq!(initial.body["rows"][0]["text"], "You \"rock\"!!!");

    // "Looking for newer messages": the README's response, cursors byte for byte.
    let newer = app
        .get("/api/1/conversation/5/messages?pageSize=2&cursor=eyJzb3J0IjoiTkVXRVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQxIn0=")
        .await;
    assert_paginated(&newer, assert_message);
    assert_eq!(ids(&newer), ["1243", "1242"]);
    assert_eq!(newer.body["sort"], "NEWEST_FIRST");
    assert_eq!(
        newer.body["cursor_next"],
        "eyJzb3J0IjoiT0xERVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQyIn0="
    );
    assert_eq!(
        newer.body["cursor_prev"],
        "eyJzb3J0IjoiTkVXRVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQzIn0="
    );

    // "Looking for older messages", with the request as printed...
    let printed = app
        .get("/api/1/conversation/5/messages?pageSize=2&cursor=eyJzb3J0IjoiTkVXRVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQzIn0=")
        .await;
    assert_paginated(&printed, assert_message);
    // ...and with the cursor_next of the README's first page, which gives its response rows.
    let older = app
        .get("/api/1/conversation/5/messages?pageSize=2&cursor=eyJzb3J0IjoiT0xERVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQwIn0=")
        .await;
    assert_paginated(&older, assert_message);
    assert_eq!(ids(&older), ["1238", "1239"]);
    assert_eq!(older.body["sort"], "OLDEST_FIRST");

    let sent = app
        .post_json(
            "/api/account/3/conversation/5/messages",
            json!({ "text": "hi there" }),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED);
    assert_message(&sent.body);
    assert_eq!(sent.body["sender"], json!({"id": "3", "name": "Jaden"}));
    assert_eq!(sent.body["text"], "hi there");
}
