//! Test harness: the real server on an ephemeral loopback port, a typed HTTP client for it,
//! tokens and cursors, and raw Socket.IO sessions (the load generator's client).

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::{app::App, config::Config, server, store};
use tokio::sync::oneshot;

pub use threadline_bench::eio::{self, Ws, next_text_within as next_text};

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _data: tempfile::TempDir,
}

/// A JSON response: status and parsed body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<no error field>")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The backend the suite runs against: `THREADLINE_TEST_DATABASE` = `memory` (default),
/// `sqlite`, or a PostgreSQL server URL (each test gets a fresh database on it).
pub async fn test_database_url(data: &std::path::Path) -> Option<String> {
    match std::env::var("THREADLINE_TEST_DATABASE").as_deref() {
        Err(_) | Ok("") | Ok("memory") => None,
        Ok("sqlite") => Some(format!("sqlite://{}/threadline.db", data.display())),
        Ok(server) => Some(fresh_postgres_database(server).await),
    }
}

/// Creates an empty database on the server `url` points at and returns its URL.
pub async fn fresh_postgres_database(url: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("threadline_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let _ = admin.close().await;
    let base = url.rsplit_once('/').map(|(base, _)| base).unwrap_or(url);
    format!("{base}/{name}")
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(data.path().to_path_buf());
    config.database_url = test_database_url(data.path()).await;
    configure(&mut config);
    let listener = server::bind("127.0.0.1:0".parse().unwrap(), 1024).expect("bind");
    let addr = listener.local_addr().unwrap();
    let store = store::open(config.database_url.as_deref())
        .await
        .expect("open the store");
    let app = App::build(config, store).await.expect("build app");
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, app, async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        served: Some(served),
        _data: data,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// Shuts the server down and waits until it has closed its store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("server task").expect("server");
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn request(&self, method: Method, path: &str) -> Reply {
        self.send(self.http.request(method, self.url(path))).await
    }

    /// Creates (or resolves) a thread and returns its id.
    pub async fn create_thread(&self, members: &[&str]) -> String {
        let reply = self
            .post_json(
                "/api/threads",
                json!({ "title": "t", "memberIds": members }),
            )
            .await;
        assert!(reply.status.is_success(), "create thread: {reply:?}");
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates accounts "1" (A) and "2" (B) and their conversation; returns its id.
    pub async fn two_accounts_and_their_conversation(&self) -> String {
        for name in ["A", "B"] {
            let reply = self
                .post_json("/api/accounts", json!({ "name": name }))
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        }
        let reply = self
            .send(
                self.http
                    .post(self.url("/api/account/1/conversations?with=2")),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Posts a message and returns the `message` object of the 201 response.
    pub async fn post_message(&self, thread: &str, body: &str) -> Value {
        let reply = self
            .post_json(
                &format!("/api/threads/{thread}/messages"),
                json!({ "body": body }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "post message: {reply:?}");
        reply.body["message"].clone()
    }

    /// Walks a thread's whole history with `nextCursor`, returning every message.
    pub async fn all_messages(&self, thread: &str, limit: usize) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/api/threads/{thread}/messages?limit={limit}"),
                Some(c) => format!("/api/threads/{thread}/messages?limit={limit}&cursor={c}"),
            };
            let reply = self.get(&path).await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            all.extend(reply.body["messages"].as_array().unwrap().iter().cloned());
            match reply.body["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return all,
            }
        }
    }
}

/// Percent-encodes a query value (cursors carry `+`, `/` and `=`).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens a raw websocket session (Engine.IO open packet read, namespace not connected).
pub async fn ws(app: &TestApp, how: eio::Open) -> Ws {
    eio::open(app.addr, &how).await.expect("websocket session")
}

/// A raw session connected to the default namespace and joined to `thread`'s room.
pub async fn joined(app: &TestApp, thread: &str, how: eio::Open) -> Ws {
    let mut ws = ws(app, how).await;
    connect_and_join(&mut ws, thread).await;
    ws
}

/// Connects an open raw websocket session to the default namespace and joins `thread`'s room,
/// asserting the CONNECT answer and the `{ok: true, seq}` ack.
pub async fn connect_and_join(ws: &mut Ws, thread: &str) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let wait = std::time::Duration::from_secs(5);
    ws.send(Message::text("40")).await.unwrap();
    assert!(next_text(ws, wait).await.unwrap().starts_with("40"));
    ws.send(Message::text(format!(
        r#"420["thread:join",{{"threadId":"{thread}"}}]"#
    )))
    .await
    .unwrap();
    let ack = next_text(ws, wait).await.unwrap();
    assert!(ack.starts_with(r#"430[{"ok":true,"seq":"#), "{ack}");
}

/// Creates a thread of `members` on the server at `base` (`http://host:port`, a server of its
/// own process); its id.
pub async fn create_thread_at(http: &reqwest::Client, base: &str, members: &[&str]) -> String {
    let thread: Value = http
        .post(format!("{base}/api/threads"))
        .json(&json!({ "memberIds": members }))
        .send()
        .await
        .expect("create a thread")
        .json()
        .await
        .expect("a thread");
    thread["id"].as_str().expect("a thread id").to_owned()
}

/// `GET url` on a server of its own process, its JSON body.
pub async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("a JSON body")
}

/// The HS256 secret of the suites' `jwt` mode servers.
pub const SECRET: &str = "test-secret-that-is-long-enough";

/// Seconds since the epoch, for token claims.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token with these claims, signed with `secret` (HS256).
pub fn token_with(claims: Value, secret: &str) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid token for `sub`, for ten minutes.
pub fn token(sub: &str) -> String {
    token_with(json!({"sub": sub, "exp": now() + 600}), SECRET)
}

/// An accounts-API cursor: base64 of `{"sort", "lastSeen"}`.
pub fn cursor(sort: &str, last_seen: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"sort":"{sort}","lastSeen":"{last_seen}"}}"#))
}
