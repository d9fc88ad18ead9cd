//! Runs the JavaScript suites (`tests/js/*.test.mjs`) against the real binary: the actual
//! `socket.io-client` 4.x and 2.x packages, the client examples, and the browser page in
//! headless Chromium. Installs the npm packages first if they are missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
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
        .expect("npm is needed for the JavaScript suites (Node 20+)");
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

    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .args(&suites)
        .current_dir(&js)
        .env("THREADLINE_BIN", env!("CARGO_BIN_EXE_threadline"))
        .env("THREADLINE_TEST_IDENTITY", identity)
        .output()
        .expect("node is needed for the JavaScript suites (Node 20+)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "JavaScript suites failed ({identity} mode)"
    );
    assert!(
        stdout.contains("ℹ fail 0") && !stdout.contains("ℹ pass 0"),
        "the JavaScript suites ran no test or reported failures"
    );
}
