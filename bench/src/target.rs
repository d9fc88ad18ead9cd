//! The servers under test: started as child processes, measured through `/proc`.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::Result;

pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    _data: Option<TempDir>,
}

/// A scratch directory removed on drop (threadline's `--data-dir`).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Target {
    /// threadline from `bin`, on a loopback port it picks, with a scratch `--data-dir`.
    pub fn threadline(bin: &str, extra: &[String]) -> Result<Self> {
        Self::threadline_from(Command::new(bin), extra)
    }

    /// threadline keeping its files in `data_dir` (left in place: a restart can find them).
    pub fn threadline_in(bin: &str, data_dir: &std::path::Path, extra: &[String]) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn");
        Self::spawn("threadline", cmd)
    }

    /// threadline started with a soft open-files limit of `soft` (as a service manager might).
    pub fn threadline_with_open_files(bin: &str, extra: &[String], soft: u64) -> Result<Self> {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""),
            bin,
        ]);
        Self::threadline_from(cmd, extra)
    }

    fn threadline_from(mut cmd: Command, extra: &[String]) -> Result<Self> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "threadline-bench-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(&dir)
            .args(extra)
            .env("RUST_LOG", "warn");
        let mut target = Self::spawn("threadline", cmd)?;
        target._data = Some(TempDir(dir));
        Ok(target)
    }

    pub fn node(script: &str) -> Result<Self> {
        let mut cmd = Command::new("node");
        cmd.arg(script).env("PORT", "0").env("HOST", "127.0.0.1");
        Self::spawn("node stub", cmd)
    }

    fn spawn(name: &'static str, mut cmd: Command) -> Result<Self> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("{name} printed {line:?}"))?;
        Ok(Self {
            name,
            addr: url.parse()?,
            child,
            _data: None,
        })
    }

    /// `http://` and the address it listens on.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server at once with SIGKILL, as a crash would.
    pub fn kill(self) {
        drop(self);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size, bytes.
    pub fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// Open file descriptors (sockets included).
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// The soft and hard open-files limits in force.
    pub fn open_files_limit(&self) -> Option<(u64, u64)> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let mut values = line["Max open files".len()..].split_whitespace();
        Some((values.next()?.parse().ok()?, values.next()?.parse().ok()?))
    }

    /// User + system CPU time consumed so far, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for Target {
    /// SIGKILL: nothing the server has not committed survives.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
