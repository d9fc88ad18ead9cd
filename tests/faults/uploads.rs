//! Uploads acknowledged just before `kill -9`: after a restart on the same database and data
//! directory, each one is `ready` with its exact bytes, or `failed`, never stuck `processing`;
//! partial files left by uploads that were never acknowledged are removed.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use threadline_bench::target::Target;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::helpers;

fn start(data: &std::path::Path, database_url: &str) -> Target {
    let extra = [
        format!("--database-url={database_url}"),
        "--http-body-timeout-ms=1000".to_owned(),
    ];
    Target::threadline_in(env!("CARGO_BIN_EXE_threadline"), data, &extra).expect("start")
}

fn partials(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("partial"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Bytes that differ from upload to upload.
fn content(writer: usize, n: usize) -> Vec<u8> {
    (0..1_000_000usize)
        .map(|i| (i.wrapping_mul(31) ^ writer.wrapping_mul(7) ^ n) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_acknowledged_before_kill_9_end_ready_or_failed() {
    let data = tempfile::tempdir().unwrap();
    let database_url = match helpers::test_database_url(data.path()).await {
        Some(url) => url,
        None => format!("sqlite://{}/threadline.db", data.path().display()),
    };
    let server = start(data.path(), &database_url);
    let http = reqwest::Client::new();

    // One upload that never finishes: its partial file is nobody's.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /api/files HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; \
                boundary=B\r\ncontent-length: 1000000\r\n\r\n--B\r\ncontent-disposition: \
                form-data; name=\"file\"; filename=\"never.bin\"\r\n\r\n";
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&[1u8; 50_000]).await.unwrap();

    // What was acknowledged: (file id, its bytes).
    type Acknowledged = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let acknowledged: Acknowledged = Arc::default();
    // Killed the moment the 40th upload is acknowledged, while its bytes are being made
    // durable (and others are in flight).
    let pid = server.pid().to_string();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url, acknowledged) = (http.clone(), server.url(), acknowledged.clone());
        let pid = pid.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let bytes = content(w, n);
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes.clone())
                        .file_name(format!("{w}-{n}.bin")),
                );
                let reply = http
                    .post(format!("{url}/api/files"))
                    .multipart(form)
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 201 => {
                        let file: Value = r.json().await.unwrap();
                        let id = file["id"].as_str().unwrap().to_owned();
                        let mut acknowledged = acknowledged.lock().unwrap();
                        acknowledged.push((id, bytes));
                        if acknowledged.len() == 40 {
                            let _ = std::process::Command::new("kill")
                                .args(["-9", &pid])
                                .status();
                        }
                    }
                    _ => return,
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    server.kill();
    drop(stalled);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 40,
        "uploads made progress before the kill"
    );

    let server = start(data.path(), &database_url);
    let restarted = Instant::now();
    let mut statuses = Vec::new();
    let mut first_look = None;
    loop {
        statuses.clear();
        for (id, _) in &acknowledged {
            let status =
                crate::helpers::get_json(&http, format!("{}/api/files/{id}/status", server.url()))
                    .await;
            statuses.push(status["status"].as_str().unwrap_or("?").to_owned());
        }
        first_look.get_or_insert(statuses.iter().filter(|s| *s == "processing").count());
        if statuses.iter().all(|s| s != "processing") {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(40),
            "still processing after {:?}: {statuses:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ready = 0;
    for ((id, bytes), status) in acknowledged.iter().zip(&statuses) {
        match status.as_str() {
            "ready" => {
                let body = http
                    .get(format!("{}/api/files/{id}", server.url()))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                assert!(body.as_ref() == bytes.as_slice(), "{id}: bytes differ");
                ready += 1;
            }
            "failed" => {}
            other => panic!("{id}: {other}"),
        }
    }
    eprintln!(
        "{} acknowledged uploads, {} processing at the restart: {ready} ready, {} failed, \
         settled {:?} after it",
        acknowledged.len(),
        first_look.unwrap_or(0),
        acknowledged.len() - ready,
        restarted.elapsed()
    );
    assert!(ready > 0);

    // The stalled upload's partial file is removed once nobody has written it for a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    while partials(data.path()) > 0 {
        assert!(Instant::now() < deadline, "partial files left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
