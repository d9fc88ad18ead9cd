//! The stub's threads and messages REST contract.

use crate::helpers::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn healthz_is_200() {
    let app = spawn_app().await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn creating_a_thread_is_201_with_the_stub_shape() {
    let app = spawn_app().await;
    let reply = app
        .post_json(
            "/api/threads",
            json!({"title": "Lunch", "memberIds": ["u1", "u2"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let t = &reply.body;
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "createdAt",
            "id",
            "memberIds",
            "memberNames",
            "title",
            "updatedAt"
        ]
    );
    assert_eq!(t["title"], "Lunch");
    assert_eq!(t["memberIds"], json!(["u1", "u2"]));
    assert_eq!(
        t["memberNames"],
        json!(["u1", "u2"]),
        "no accounts: names repeat ids"
    );
    assert_eq!(t["createdAt"], t["updatedAt"]);
}

#[tokio::test]
async fn the_same_member_set_resolves_to_the_same_thread_with_200() {
    let app = spawn_app().await;
    let first = app
        .post_json("/api/threads", json!({"memberIds": ["a", "b"]}))
        .await;
    let again = app
        .post_json("/api/threads", json!({"memberIds": ["b", "a", "b"]}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(first.body["id"], again.body["id"]);
    let other = app
        .post_json("/api/threads", json!({"memberIds": ["a", "c"]}))
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.body["id"], first.body["id"]);
}

#[tokio::test]
async fn get_thread_returns_it_and_unknown_is_404() {
    let app = spawn_app().await;
    let id = app.create_thread(&["a", "b"]).await;
    let reply = app.get(&format!("/api/threads/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["id"], id.as_str());

    let missing = app.get("/api/threads/does-not-exist").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, json!({"error": "thread_not_found"}));
}

#[tokio::test]
async fn bad_thread_bodies_are_400_415_or_413() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "invalid_body"),
        (json!({"memberIds": []}), "invalid_members"),
        (json!({"memberIds": "a"}), "invalid_body"),
        (json!({"memberIds": [1, 2]}), "invalid_body"),
        (json!({"memberIds": ["a b"]}), "invalid_member_id"),
        (json!({"memberIds": ["a"], "title": 7}), "invalid_body"),
        (
            json!({"memberIds": ["a"], "title": "x".repeat(201)}),
            "invalid_title",
        ),
        (json!([1, 2]), "invalid_body"),
    ];
    for (body, code) in cases {
        let reply = app.post_json("/api/threads", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), code, "{body}");
    }

    let malformed = app
        .post_raw("/api/threads", "application/json", "{\"memberIds\": [")
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "invalid_json");

    let not_json = app
        .post_raw("/api/threads", "text/plain", "memberIds=a")
        .await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(not_json.error_code(), "unsupported_media_type");

    let huge = format!("{{\"memberIds\": [\"{}\"]}}", "a".repeat(2 * 1024 * 1024));
    let too_big = app.post_raw("/api/threads", "application/json", huge).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.error_code(), "payload_too_large");
}

#[tokio::test]
async fn posting_a_message_is_201_with_the_message_shape() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let reply = app
        .post_json(
            &format!("/api/threads/{thread}/messages"),
            json!({"body": "  hello  "}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let m = &reply.body["message"];
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "authorId",
            "body",
            "createdAt",
            "fileIds",
            "files",
            "id",
            "mentions",
            "reactions",
            "replyCount",
            "seq",
            "threadId"
        ]
    );
    assert_eq!(m["body"], "hello", "body is trimmed like the stub");
    assert_eq!(m["authorId"], "me", "nobody named: the stub's author");
    assert_eq!(m["threadId"], thread.as_str());
    assert_eq!(m["seq"], 1, "its position in the thread");
    assert_eq!(m["fileIds"], json!([]));
    assert_eq!(m["files"], json!([]));
    let id = m["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).expect("id is a UUID");
    assert_eq!(uuid.get_version_num(), 7);
    let created = m["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), 24, "toISOString layout: {created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );

    let thread_after = app.get(&format!("/api/threads/{thread}")).await;
    assert_eq!(thread_after.body["updatedAt"], m["createdAt"]);
}

#[tokio::test]
async fn x_user_id_names_the_author() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let reply = app
        .send(
            app.http
                .post(app.url(&format!("/api/threads/{thread}/messages")))
                .header("x-user-id", "a")
                .json(&json!({"body": "hi"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["message"]["authorId"], "a");

    let bad = app
        .send(
            app.http
                .post(app.url(&format!("/api/threads/{thread}/messages")))
                .header("x-user-id", "not valid")
                .json(&json!({"body": "hi"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_user_id");
}

#[tokio::test]
async fn bad_message_posts_get_clear_errors() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let path = format!("/api/threads/{thread}/messages");

    let unknown = app
        .post_json("/api/threads/nope/messages", json!({"body": "hi"}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body, json!({"error": "thread_not_found"}));

    for body in [
        json!({}),
        json!({"body": "   "}),
        json!({"body": "", "fileIds": []}),
    ] {
        let reply = app.post_json(&path, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "empty_message", "{body}");
    }
    let wrong_type = app.post_json(&path, json!({"body": 12})).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.error_code(), "invalid_body");

    let unknown_file = app
        .post_json(&path, json!({"body": "x", "fileIds": ["nope"]}))
        .await;
    assert_eq!(unknown_file.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown_file.error_code(), "unknown_file");

    let nul = app.post_json(&path, json!({"body": "a\u{0}b"})).await;
    assert_eq!(nul.status, StatusCode::BAD_REQUEST);
    assert_eq!(nul.error_code(), "invalid_text");

    let too_long = app
        .post_json(&path, json!({"body": "x".repeat(16 * 1024 + 1)}))
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.error_code(), "message_too_long");

    assert!(
        app.all_messages(&thread, 50).await.is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn history_pages_oldest_first_with_next_cursor() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let mut sent = Vec::new();
    for i in 0..120 {
        sent.push(app.post_message(&thread, &format!("m{i}")).await["id"].clone());
    }

    let first = app.get(&format!("/api/threads/{thread}/messages")).await;
    assert_eq!(first.status, StatusCode::OK);
    let page = first.body["messages"].as_array().unwrap();
    assert_eq!(page.len(), 50, "default limit is 50");
    assert_eq!(page[0]["body"], "m0");
    assert_eq!(first.body["nextCursor"], page[49]["id"]);

    let second = app
        .get(&format!(
            "/api/threads/{thread}/messages?limit=50&cursor={}",
            first.body["nextCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(second.body["messages"][0]["body"], "m50");

    let all = app.all_messages(&thread, 7).await;
    let ids: Vec<_> = all.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, sent, "every message once, in order");

    let exact = app
        .get(&format!("/api/threads/{thread}/messages?limit=120"))
        .await;
    assert_eq!(exact.body["messages"].as_array().unwrap().len(), 120);
    assert_eq!(exact.body["nextCursor"], json!(null), "end is null");

    let capped = app
        .get(&format!("/api/threads/{thread}/messages?limit=100000"))
        .await;
    assert_eq!(capped.status, StatusCode::OK);
    assert_eq!(capped.body["messages"].as_array().unwrap().len(), 120);
}

#[tokio::test]
async fn limit_is_capped_at_200() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    for i in 0..205 {
        app.post_message(&thread, &format!("m{i}")).await;
    }
    let reply = app
        .get(&format!("/api/threads/{thread}/messages?limit=500"))
        .await;
    assert_eq!(reply.body["messages"].as_array().unwrap().len(), 200);
    assert!(reply.body["nextCursor"].is_string());
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let other = app.create_thread(&["a", "c"]).await;
    let foreign = app.post_message(&other, "elsewhere").await;
    app.post_message(&thread, "here").await;

    for q in ["limit=abc", "limit=0", "limit=-5", "limit=1.5"] {
        let reply = app
            .get(&format!("/api/threads/{thread}/messages?{q}"))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(reply.error_code(), "invalid_limit", "{q}");
    }
    let foreign_cursor = foreign["id"].as_str().unwrap();
    for cursor in ["unknown-id", "%20%20", foreign_cursor] {
        let reply = app
            .get(&format!("/api/threads/{thread}/messages?cursor={cursor}"))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{cursor}");
        assert_eq!(reply.error_code(), "invalid_cursor", "{cursor}");
    }
    let unknown = app.get("/api/threads/nope/messages").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "thread_not_found");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let missing = app.get("/api/nothing/here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, json!({"error": "not_found"}));
    let wrong = app.request(Method::DELETE, "/api/threads").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.body, json!({"error": "method_not_allowed"}));
}

#[tokio::test]
async fn cors_allows_any_origin_by_default() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.http
                .request(Method::OPTIONS, app.url("/api/threads"))
                .header("origin", "http://chat.example")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        )
        .await;
    assert!(reply.status.is_success());
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn cors_allow_list_is_enforced_for_rest_and_socket_io() {
    let app =
        crate::helpers::spawn_app_with(|c| c.cors_origins = vec!["http://good.example".into()])
            .await;
    for path in ["/api/threads/x", "/ws/?EIO=4&transport=polling"] {
        let good = app
            .send(
                app.http
                    .get(app.url(path))
                    .header("origin", "http://good.example"),
            )
            .await;
        assert_eq!(
            good.headers.get("access-control-allow-origin").unwrap(),
            "http://good.example",
            "{path}"
        );
        let bad = app
            .send(
                app.http
                    .get(app.url(path))
                    .header("origin", "http://evil.example"),
            )
            .await;
        assert!(
            bad.headers.get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_thread_has_at_most_1000_members() {
    let app = spawn_app().await;
    let members = |n: usize| (0..n).map(|i| format!("m{i}")).collect::<Vec<_>>();
    let full = app
        .post_json("/api/threads", json!({"memberIds": members(1000)}))
        .await;
    assert_eq!(full.status, StatusCode::CREATED, "{:?}", full.body["error"]);
    let over = app
        .post_json("/api/threads", json!({"memberIds": members(1001)}))
        .await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!(over.error_code(), "too_many_members");
    // Duplicates are one member each: 1001 ids naming 1000 people fit.
    let mut repeated = members(1000);
    repeated.push("m0".into());
    let same = app
        .post_json("/api/threads", json!({"memberIds": repeated}))
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["id"], full.body["id"]);
}

#[tokio::test]
async fn a_message_carries_at_most_20_files() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["ann", "bob"]).await;
    let path = format!("/api/threads/{thread}/messages");
    let files = |n: usize| {
        (0..n)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect::<Vec<_>>()
    };
    let over = app
        .post_json(&path, json!({"body": "x", "fileIds": files(21)}))
        .await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!(over.error_code(), "too_many_files");
    // Twenty real uploads fit.
    let mut uploaded = Vec::new();
    for i in 0..20 {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'x'; 8]).file_name(format!("f{i}.txt")),
        );
        let reply = app
            .send(app.http.post(app.url("/api/files")).multipart(form))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        uploaded.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let ok = app
        .post_json(&path, json!({"body": "x", "fileIds": uploaded}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    assert_eq!(ok.body["message"]["fileIds"].as_array().unwrap().len(), 20);
}
