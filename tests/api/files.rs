//! Uploads, the stub's status polling route, downloads, and files on messages.

use std::time::Duration;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use serde_json::{Value, json};

async fn upload(
    app: &TestApp,
    name: &str,
    bytes: Vec<u8>,
    mime: Option<&str>,
) -> crate::helpers::Reply {
    let mut part = Part::bytes(bytes).file_name(name.to_owned());
    if let Some(mime) = mime {
        part = part.mime_str(mime).unwrap();
    }
    app.send(
        app.http
            .post(app.url("/api/files"))
            .multipart(Form::new().text("note", "ignored").part("file", part)),
    )
    .await
}

async fn wait_ready(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let status = app.get(&format!("/api/files/{id}/status")).await;
        assert_eq!(status.status, StatusCode::OK);
        if status.body["status"] == "ready" {
            return status.body;
        }
        assert_eq!(status.body["status"], "processing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("file {id} never became ready");
}

#[tokio::test]
async fn upload_then_poll_until_ready_then_download() {
    let app = spawn_app().await;
    // A PNG signature, then anything: the type comes from the bytes.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..300_000u32).map(|i| (i % 251) as u8));
    let reply = upload(&app, "photo.png", bytes.clone(), Some("image/png")).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["name"], "photo.png");
    assert_eq!(reply.body["url"], format!("/api/files/{id}"));
    assert!(["processing", "ready"].contains(&reply.body["status"].as_str().unwrap()));

    let ready = wait_ready(&app, &id).await;
    assert_eq!(
        ready,
        json!({"id": id, "name": "photo.png", "url": format!("/api/files/{id}"), "status": "ready"})
    );

    let download = app
        .http
        .get(app.url(&format!("/api/files/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "image/png");
    assert_eq!(
        download.headers()["content-length"],
        bytes.len().to_string()
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn plain_text_is_recognised_from_its_bytes() {
    let app = spawn_app().await;
    let reply = upload(&app, "notes.txt", b"hello".to_vec(), None).await;
    let id = reply.body["id"].as_str().unwrap().to_owned();
    wait_ready(&app, &id).await;
    let download = app
        .http
        .get(app.url(&format!("/api/files/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn oversized_upload_is_413_and_leaves_nothing_behind() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 1024).await;
    let reply = upload(&app, "big.bin", vec![7u8; 4096], None).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "payload_too_large");
    let partial = std::fs::read_dir(app.data_dir().join("partial"))
        .unwrap()
        .count();
    let stored = std::fs::read_dir(app.data_dir().join("files"))
        .unwrap()
        .count();
    assert_eq!((partial, stored), (0, 0), "the rejected bytes were removed");
    let ok = upload(&app, "small.bin", vec![7u8; 1024], None).await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_uploads_are_4xx() {
    let app = spawn_app().await;
    let no_file = app
        .send(
            app.http
                .post(app.url("/api/files"))
                .multipart(Form::new().text("a", "b")),
        )
        .await;
    assert_eq!(no_file.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_file.error_code(), "missing_file");

    let not_multipart = app.post_raw("/api/files", "application/json", "{}").await;
    assert!(not_multipart.status.is_client_error(), "{not_multipart:?}");
    assert!(not_multipart.body["error"].is_string());

    let broken = app
        .post_raw(
            "/api/files",
            "multipart/form-data; boundary=XYZ",
            "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc",
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{broken:?}");
    assert_eq!(broken.error_code(), "invalid_multipart");
}

#[tokio::test]
async fn unknown_files_are_404_not_found_like_the_stub() {
    let app = spawn_app().await;
    for path in ["/api/files/nope/status", "/api/files/nope"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body, json!({"error": "not_found"}), "{path}");
    }
}

#[tokio::test]
async fn messages_carry_their_files() {
    let app = spawn_app().await;
    let thread = app.create_thread(&["a", "b"]).await;
    let file = upload(
        &app,
        "doc.pdf",
        b"%PDF-1.4".to_vec(),
        Some("application/pdf"),
    )
    .await;
    let id = file.body["id"].as_str().unwrap().to_owned();
    wait_ready(&app, &id).await;

    let reply = app
        .post_json(
            &format!("/api/threads/{thread}/messages"),
            json!({"fileIds": [id]}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "files alone make a message"
    );
    let m = &reply.body["message"];
    assert_eq!(m["body"], "");
    assert_eq!(m["fileIds"], json!([id]));
    assert_eq!(
        m["files"],
        json!([{"id": id, "name": "doc.pdf", "url": format!("/api/files/{id}"), "status": "ready"}])
    );
    let history = app.all_messages(&thread, 50).await;
    assert_eq!(history[0]["files"], m["files"]);
}
