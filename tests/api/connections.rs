//! The connection layer under hostile clients: idle and trickling connections are cut, a
//! stalled upload is refused and leaves nothing on disk, a connection flood cannot exhaust the
//! descriptors, and the open-files limit is raised at start-up.

use std::time::{Duration, Instant};

use threadline_bench::target::Target;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::spawn_app_with;

/// Reads until the peer closes; what it sent before closing.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, tcp.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|c| c.http_idle_timeout_ms = 500).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let opened = Instant::now();
    assert!(
        read_until_closed(&mut tcp, Duration::from_secs(5))
            .await
            .is_some(),
        "an idle connection stayed open"
    );
    assert!(opened.elapsed() >= Duration::from_millis(400));

    // A keep-alive connection idle after its response is closed too.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("the idle keep-alive connection stayed open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn headers_trickled_a_byte_at_a_time_are_cut() {
    let app = spawn_app_with(|c| c.http_idle_timeout_ms = 500).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let opened = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: "
        .iter()
        .chain(b"a".repeat(200).iter())
        .copied()
        .collect::<Vec<u8>>();
    let mut cut = false;
    for byte in head {
        if tcp.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    assert!(cut, "a trickled request head was held for its whole 10 s");
    assert!(
        opened.elapsed() < Duration::from_secs(4),
        "cut after {:?}",
        opened.elapsed()
    );
}

fn upload_head(addr: std::net::SocketAddr, length: usize) -> String {
    format!(
        "POST /api/files HTTP/1.1\r\nhost: {addr}\r\nx-user-id: slow\r\n\
         content-type: multipart/form-data; boundary=XyZ\r\ncontent-length: {length}\r\n\r\n\
         --XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         content-type: application/octet-stream\r\n\r\n"
    )
}

fn partial_uploads(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("partial"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// A connection in the middle of a 1 MB upload: 64 KiB sent, then nothing; its partial file
/// exists.
async fn upload_under_way(app: &crate::helpers::TestApp) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(upload_head(app.addr, 1_000_000).as_bytes())
        .await
        .unwrap();
    tcp.write_all(&[7u8; 64 * 1024]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        partial_uploads(app.data_dir()),
        1,
        "the upload is under way"
    );
    tcp
}

#[tokio::test]
async fn a_stalled_upload_is_refused_and_leaves_no_partial_file() {
    let app = spawn_app_with(|c| c.http_body_timeout_ms = 500).await;
    let mut tcp = upload_under_way(&app).await;

    let answer = read_until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("the stalled upload was held");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
    assert_eq!(partial_uploads(app.data_dir()), 0);
}

#[tokio::test]
async fn an_upload_whose_client_vanishes_leaves_no_partial_file() {
    let app = spawn_app_with(|_| {}).await;
    let tcp = upload_under_way(&app).await;
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(5);
    while partial_uploads(app.data_dir()) > 0 {
        assert!(
            Instant::now() < deadline,
            "the partial upload stayed on disk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 300 idle connections against a cap of 32: the server holds at most 32 descriptors for them,
/// and a real request is still answered once the idle ones time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_cannot_exhaust_descriptors() {
    const CAP: usize = 32;
    let extra = [
        "--max-http-connections",
        &CAP.to_string(),
        "--http-idle-timeout-ms",
        "1000",
    ]
    .map(String::from);
    let server = Target::threadline(env!("CARGO_BIN_EXE_threadline"), &extra).unwrap();
    let baseline = server.open_files();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = server.open_files();
    assert!(
        held <= baseline + CAP + 4,
        "{held} descriptors open (baseline {baseline}, cap {CAP})"
    );

    let asked = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer
    })
    .await
    .expect("no answer while idle connections held every slot");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "answered after {:?}",
        asked.elapsed()
    );
    assert!(server.open_files() <= baseline + CAP + 4);
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let server =
        Target::threadline_with_open_files(env!("CARGO_BIN_EXE_threadline"), &[], 512).unwrap();
    let (soft, hard) = server.open_files_limit().expect("read /proc/<pid>/limits");
    assert_eq!(
        soft, hard,
        "soft limit {soft} left below the hard limit {hard}"
    );
}

#[test]
fn a_port_in_use_is_named_with_what_to_do() {
    let server = Target::threadline(env!("CARGO_BIN_EXE_threadline"), &[]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &server.addr.port().to_string(),
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains(&format!("port {} is already in use", server.addr.port()))
            && said.contains("--port"),
        "{said}"
    );
}
