//! SQLite and uploads on a disk that fills up, for real: a small tmpfs this test mounts (it
//! needs the right to mount, as root in CI; without it the test says so and passes nothing).
//! While the disk is full, writes answer 507 `insufficient_storage` (never a 201 for a write
//! that is not committed, never a 500) and reads keep working; once space is freed, writes
//! succeed again without a restart; after a restart every acknowledged post is there once.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use threadline_bench::target::Target;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .ok()?
            .success();
        mounted.then_some(Self { mount, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Fills `dir`'s disk but for about `leave` bytes, with a file that can be removed later.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    drop(file);
    // Give back `leave` bytes.
    let len = std::fs::metadata(&filler).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    file.set_len(len.saturating_sub(leave)).unwrap();
    filler
}

fn start(disk: &Path) -> Target {
    let database = format!("sqlite://{}/threadline.db", disk.display());
    Target::threadline_in(
        env!("CARGO_BIN_EXE_threadline"),
        disk,
        &[format!("--database-url={database}")],
    )
    .expect("start")
}

async fn post(http: &reqwest::Client, server: &Target, thread: &str, n: usize) -> (u16, Value) {
    let reply = http
        .post(format!("{}/api/threads/{thread}/messages", server.url()))
        .json(&json!({"body": format!("{n}:{}", "x".repeat(8_000))}))
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// Every stored message id; reads keep working throughout (each page answers 200).
async fn history(http: &reqwest::Client, server: &Target, thread: &str) -> Vec<String> {
    crate::all_message_ids(http, &server.url(), thread).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_loses_nothing_and_heals() {
    let Some(disk) = SmallDisk::mount("8m") else {
        eprintln!("skipped: mounting a tmpfs is not permitted here");
        return;
    };
    let server = start(&disk.mount);
    let http = reqwest::Client::new();
    let thread = crate::helpers::create_thread_at(&http, &server.url(), &["ann", "bob"]).await;
    let filler = fill(&disk.mount, 600 * 1024);

    // Post until the disk is full, then some more.
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut n = 0;
    while refused < 20 {
        n += 1;
        assert!(n < 5_000, "the disk never filled up");
        let (status, body) = post(&http, &server, &thread, n).await;
        match status {
            201 => acknowledged.push(body["message"]["id"].as_str().unwrap().to_owned()),
            507 => {
                assert_eq!(body["error"], "insufficient_storage");
                refused += 1;
            }
            other => panic!("a post on a full disk answered {other}: {body}"),
        }
    }
    assert!(!acknowledged.is_empty());
    // Reads keep working, and every acknowledged post is visible to them.
    let stored = history(&http, &server, &thread).await;
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id} is not visible");
    }
    // An upload on the full disk is refused too, and leaves nothing. Small enough to be sent
    // whole before the refusal: a server answering early closes a connection still sending.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![7u8; 100_000]).file_name("big.bin"),
    );
    let upload = http
        .post(format!("{}/api/files", server.url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 507);

    // Space comes back: writes succeed again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        n += 1;
        let (status, body) = post(&http, &server, &thread, n).await;
        if status == 201 {
            acknowledged.push(body["message"]["id"].as_str().unwrap().to_owned());
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "writes still refused {:?} after space was freed: {status} {body}",
            freed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{} posts acknowledged, {refused} refused while full; writes back {:?} after space was freed",
        acknowledged.len(),
        freed.elapsed()
    );

    // Nothing acknowledged was lost: every one is stored once after a restart.
    server.kill();
    let server = start(&disk.mount);
    let stored = history(&http, &server, &thread).await;
    for id in &acknowledged {
        assert_eq!(
            stored.iter().filter(|s| *s == id).count(),
            1,
            "acknowledged {id} after the restart"
        );
    }
    drop(server);
}
