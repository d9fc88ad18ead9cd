//! A PostgreSQL outage, made by cutting the server's connections to the database with a TCP
//! proxy this test controls: requests fail fast with 503 `store_unavailable` (socket acks say
//! the same), `/readyz` names the store, and everything resumes by itself once the database is
//! reachable again. Needs a PostgreSQL (`tests/run.sh` provides one in every pass).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use serde_json::{Value, json};
use threadline_bench::{eio, target::Target};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::fresh_postgres_database;

/// Forwards connections to `upstream` until cut: then every open connection is dropped and new
/// ones are closed at once, as when the database goes away, until restored.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watching) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut watching = watching.clone();
                if *watching.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_heals() {
    let Some(postgres) = crate::redis::postgres() else {
        eprintln!("skipped: needs THREADLINE_TEST_POSTGRES (tests/run.sh sets it)");
        return;
    };
    let database = fresh_postgres_database(&postgres).await;
    // postgres://user:pass@host:port/name → the proxy in front of host:port.
    let (head, rest) = database.split_once('@').unwrap();
    let (host_port, name) = rest.split_once('/').unwrap();
    let upstream: SocketAddr = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    let through_proxy = format!("{head}@{}/{name}", proxy.addr);
    let server = Target::threadline(
        env!("CARGO_BIN_EXE_threadline"),
        &[format!("--database-url={through_proxy}")],
    )
    .unwrap();
    let http = reqwest::Client::new();
    let thread = crate::helpers::create_thread_at(&http, &server.url(), &["ann", "bob"]).await;
    let post = || {
        http.post(format!("{}/api/threads/{thread}/messages", server.url()))
            .json(&json!({"body": "hello"}))
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 201);
    let mut ws = eio::connect(server.addr, [127, 0, 0, 1].into())
        .await
        .unwrap();
    ws.send(Message::text(format!(
        r#"420["thread:join",{{"threadId":"{thread}"}}]"#
    )))
    .await
    .unwrap();
    let wait = Duration::from_secs(10);
    while !eio::next_text_within(&mut ws, wait)
        .await
        .unwrap()
        .starts_with("430")
    {}

    proxy.set_cut(true);
    let asked = Instant::now();
    let refused = post().await.unwrap();
    eprintln!("a post during the outage answered in {:?}", asked.elapsed());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        asked.elapsed()
    );
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "store_unavailable");

    let asked = Instant::now();
    ws.send(Message::text(format!(
        r#"421["message:send",{{"threadId":"{thread}","body":"over the socket"}}]"#
    )))
    .await
    .unwrap();
    let ack = loop {
        let frame = eio::next_text_within(&mut ws, wait).await.unwrap();
        if frame.starts_with("431") {
            break frame;
        }
    };
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(ack.contains(r#""error":"store_unavailable""#), "{ack}");
    assert!(ack.contains(r#""retryAfter":"#), "{ack}");

    let asked = Instant::now();
    let ready = http
        .get(format!("{}/readyz", server.url()))
        .send()
        .await
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "failing": ["store"]})
    );

    // The database is back: requests resume by themselves, within a few seconds.
    proxy.set_cut(false);
    let back = Instant::now();
    let mut healed = false;
    while !healed && back.elapsed() < Duration::from_secs(10) {
        healed = post().await.unwrap().status() == 201;
        if !healed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(healed, "posts did not resume");
    eprintln!(
        "posts resumed {:?} after the database returned",
        back.elapsed()
    );
    assert!(back.elapsed() < Duration::from_secs(5));
    let ready = http
        .get(format!("{}/readyz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
