//! Nothing acknowledged is lost: post concurrently, `kill -9` the server mid-stream, restart it
//! on the same database, and find every acknowledged message exactly once, in order. Runs on
//! SQLite, and on PostgreSQL when `THREADLINE_TEST_DATABASE` names a server.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use threadline_bench::target::Target;

use crate::helpers;

fn start(database_url: &str) -> Target {
    let extra = [format!("--database-url={database_url}")];
    Target::threadline(env!("CARGO_BIN_EXE_threadline"), &extra).expect("start threadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_message_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let database_url = match helpers::test_database_url(data.path()).await {
        Some(url) => url,
        None => format!("sqlite://{}/threadline.db", data.path().display()),
    };
    let server = start(&database_url);
    let http = reqwest::Client::new();
    let thread =
        crate::helpers::create_thread_at(&http, &server.url(), &["crash-a", "crash-b"]).await;

    // Four writers post as fast as they can; each remembers what was acknowledged (201) and
    // the one post in flight when the server died.
    let acknowledged: Arc<Mutex<Vec<(usize, usize, String)>>> = Arc::default();
    let in_flight: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url, thread) = (http.clone(), server.url(), thread.clone());
        let (acknowledged, in_flight) = (acknowledged.clone(), in_flight.clone());
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let reply = http
                    .post(format!("{url}/api/threads/{thread}/messages"))
                    .json(
                        &json!({"body": format!("{w}:{n}"), "clientMessageId": format!("{w}:{n}")}),
                    )
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 201 => {
                        let m: Value = r.json().await.unwrap();
                        let id = m["message"]["id"].as_str().unwrap().to_owned();
                        acknowledged.lock().unwrap().push((w, n, id));
                    }
                    _ => {
                        in_flight.lock().unwrap().push((w, n));
                        return;
                    }
                }
            }
        }));
    }
    // Kill once a few hundred posts are acknowledged.
    for _ in 0..600 {
        if acknowledged.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 300,
        "the writers made progress before the kill"
    );

    let server = start(&database_url);
    // Clients retry what was in flight with the same key: stored at most once either way.
    let in_flight = in_flight.lock().unwrap().clone();
    for (w, n) in &in_flight {
        let status = http
            .post(format!("{}/api/threads/{thread}/messages", server.url()))
            .json(&json!({"body": format!("{w}:{n}"), "clientMessageId": format!("{w}:{n}")}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 201 || status == 200, "retry answered {status}");
    }

    // A retry of an acknowledged post, after the restart, is answered with the original.
    let (w, n, id) = acknowledged[acknowledged.len() / 2].clone();
    let retry = http
        .post(format!("{}/api/threads/{thread}/messages", server.url()))
        .json(&json!({"body": format!("{w}:{n}"), "clientMessageId": format!("{w}:{n}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    let original: Value = retry.json().await.unwrap();
    assert_eq!(original["message"]["id"], id.as_str());

    let history = crate::all_messages(&http, &server.url(), &thread).await;
    let stored: Vec<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    for (_, _, id) in &acknowledged {
        assert_eq!(
            stored.iter().filter(|s| *s == id).count(),
            1,
            "acknowledged message {id} is stored exactly once"
        );
    }
    let bodies: Vec<&str> = history
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<&&str> = bodies.iter().collect();
    assert_eq!(unique.len(), bodies.len(), "no post stored twice");
    // Per writer, stored order is posting order.
    let mut last = [-1i64; 4];
    for body in bodies {
        let (w, n) = body.split_once(':').unwrap();
        let (w, n): (usize, i64) = (w.parse().unwrap(), n.parse().unwrap());
        assert!(n > last[w], "writer {w} out of order");
        last[w] = n;
    }
}
