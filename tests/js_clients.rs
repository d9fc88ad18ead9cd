//! Runs the JavaScript suites (`tests/js/*.test.mjs`) against the real binary: the actual
//! `socket.io-client` 4.x and 2.x packages, the client examples, and the browser page in
//! headless Chromium. Installs the npm packages first if they are missing.

use rustix::process::{Pid, Signal, kill_process_group};
use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn npm_install(dir: &Path) {
    if dir.join("node_modules").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm is needed for the JavaScript suites (Node 20.14+)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// The passes share the machine's two cores one at a time: several of the suites measure time
/// (typing expiry, a thousand joins at once).
static ONE_PASS_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn javascript_suites_pass_against_the_real_server() {
    run_suites(&[], "open");
}

/// The same realtime suites in jwt mode: every request and handshake carries a token for the
/// user the test names (see `harness.mjs`). `auth` and `limits` configure identity themselves
/// and already ran.
#[test]
fn javascript_realtime_suites_pass_in_jwt_mode() {
    run_suites(&["auth.test.mjs", "limits.test.mjs"], "jwt");
}

/// Longest a single JavaScript test may take (the slowest takes a few seconds).
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a whole pass may take (about a minute and a half on a 2-core machine).
const PASS_DEADLINE: Duration = Duration::from_secs(600);

/// Reads a child's output to the end on its own thread, so a full pipe never blocks the child.
fn drain(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        from.read_to_end(&mut bytes).ok();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn run_suites(skip: &[&str], identity: &str) {
    let _one = ONE_PASS_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let js = root().join("tests/js");
    npm_install(&js);
    npm_install(&root().join("client-examples"));

    let mut suites: Vec<String> = std::fs::read_dir(&js)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.mjs") && !skip.contains(&name.as_str()))
        .collect();
    suites.sort();
    assert!(!suites.is_empty(), "no JavaScript suites found");

    // A test that hangs fails after TEST_TIMEOUT instead of holding the run; a file whose tests
    // are done exits even if something it opened is still trying to reconnect; and the whole
    // pass is stopped at PASS_DEADLINE, printing what it reported so far.
    let mut child = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(format!("--test-timeout={}", TEST_TIMEOUT.as_millis()))
        .arg("--test-force-exit")
        .args(&suites)
        .current_dir(&js)
        .env("THREADLINE_BIN", env!("CARGO_BIN_EXE_threadline"))
        .env("THREADLINE_TEST_IDENTITY", identity)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is needed for the JavaScript suites (Node 20.14+)");
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > PASS_DEADLINE {
            // The whole group: the test files and the servers they started hold the pipes.
            let group = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
            kill_process_group(group, Signal::KILL).ok();
            child.wait().ok();
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let stdout = stdout.join().unwrap();
    println!("{stdout}");
    eprintln!("{}", stderr.join().unwrap());
    let status = status.unwrap_or_else(|| {
        panic!("JavaScript suites ({identity} mode) still running after {PASS_DEADLINE:?}")
    });
    assert!(
        status.success(),
        "JavaScript suites failed ({identity} mode)"
    );
    assert!(
        stdout.contains("ℹ fail 0") && !stdout.contains("ℹ pass 0"),
        "the JavaScript suites ran no test or reported failures"
    );
}
