//! Command-line and environment configuration.

use std::{fmt, net::IpAddr, num::NonZeroU32, path::PathBuf, str::FromStr, time::Duration};

use axum::http::HeaderName;
use clap::{Parser, ValueEnum};

/// Every flag has an environment fallback, so containers configure it without a command line.
#[derive(Debug, Clone, Parser)]
#[command(name = "threadline", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one; the chosen address is printed at start-up).
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,

    /// Where uploaded files are kept.
    #[arg(long, env = "THREADLINE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Durable storage: `sqlite://./data/threadline.db` (one node) or `postgres://…` (shared by
    /// several nodes). Unset: in memory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Run as one of several nodes: Socket.IO rooms and broadcasts go through this Redis
    /// (7+) with socketioxide's Redis adapter. Use with a shared PostgreSQL `--database-url`.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// `jwt` mode with HS256 tokens signed with this secret (see README, Identity).
    #[arg(long, env = "THREADLINE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// `jwt` mode with RS256 or ES256 tokens: the PEM file of the public key.
    #[arg(long, env = "THREADLINE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// In `jwt` mode, the required `iss` claim.
    #[arg(long, env = "THREADLINE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// In `jwt` mode, the required `aud` claim.
    #[arg(long, env = "THREADLINE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Largest accepted upload, in bytes.
    #[arg(long, env = "THREADLINE_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Largest JSON request body, in bytes.
    #[arg(long, env = "THREADLINE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest Socket.IO/Engine.IO payload, in bytes (Node's `maxHttpBufferSize` default).
    #[arg(
        long,
        env = "THREADLINE_MAX_PAYLOAD_BYTES",
        default_value_t = 1_000_000
    )]
    pub max_payload_bytes: u64,

    /// Events each socket may have queued for sending (beyond what the TCP connection holds).
    /// A client that stops reading fills it; further events for it are dropped (a rejoin with
    /// `since` recovers them) and its session closes when it misses the heartbeat.
    #[arg(long, env = "THREADLINE_SOCKET_BUFFER", default_value_t = 1024)]
    pub socket_buffer: usize,

    /// Engine.IO heartbeat: a ping every this many milliseconds (Node's default).
    #[arg(long, env = "THREADLINE_PING_INTERVAL_MS", default_value_t = 25_000)]
    pub ping_interval_ms: u64,

    /// Engine.IO heartbeat: a session whose pong is this late is closed (Node's default).
    #[arg(long, env = "THREADLINE_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub ping_timeout_ms: u64,

    /// An Engine.IO session that has not connected to a namespace (sent its Socket.IO
    /// CONNECT) this long after its handshake is closed: half-open sessions cannot pile up.
    /// socket.io-client sends CONNECT at once. (Node's default is 45 s.)
    #[arg(long, env = "THREADLINE_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,

    /// Most messages `thread:join {threadId, after}` (or `since`) replays; past it the ack says
    /// `truncated: true` and the client pages the REST history.
    #[arg(long, env = "THREADLINE_REPLAY_LIMIT", default_value_t = 500)]
    pub replay_limit: usize,

    /// Abuse limits (README, Limits). Rates are `COUNT/PERIOD` (`30/10s`: a burst of 30, then
    /// 30 more every 10 s) or `off`. In `jwt` mode each is on with its default unless set to
    /// `off`; in `open` mode only the ones set here apply. Counted per node.
    ///
    /// New messages and edits per user (REST and `message:send`); jwt default 30/10s.
    #[arg(long, env = "THREADLINE_POST_RATE_PER_USER")]
    pub post_rate_per_user: Option<Setting<Rate>>,

    /// New messages and edits per client address; jwt default 300/10s.
    #[arg(long, env = "THREADLINE_POST_RATE_PER_IP")]
    pub post_rate_per_ip: Option<Setting<Rate>>,

    /// File uploads per user; jwt default 30/60s.
    #[arg(long, env = "THREADLINE_UPLOAD_RATE_PER_USER")]
    pub upload_rate_per_user: Option<Setting<Rate>>,

    /// File uploads per client address; jwt default 120/60s.
    #[arg(long, env = "THREADLINE_UPLOAD_RATE_PER_IP")]
    pub upload_rate_per_ip: Option<Setting<Rate>>,

    /// Threads created or resolved per user (threads API and accounts-API conversations);
    /// jwt default 30/60s.
    #[arg(long, env = "THREADLINE_THREAD_RATE_PER_USER")]
    pub thread_rate_per_user: Option<Setting<Rate>>,

    /// Threads created or resolved per client address; jwt default 300/60s.
    #[arg(long, env = "THREADLINE_THREAD_RATE_PER_IP")]
    pub thread_rate_per_ip: Option<Setting<Rate>>,

    /// A webhook endpoint: every chat event is posted there, signed (Standard Webhooks).
    /// Repeat for several; the environment variable takes several separated by spaces.
    #[arg(long, env = "THREADLINE_WEBHOOK_URL", value_delimiter = ' ')]
    pub webhook_url: Vec<String>,

    /// The signing secret of each --webhook-url, in order (`whsec_` and base64, as Standard
    /// Webhooks libraries take it); one secret serves them all.
    #[arg(
        long,
        env = "THREADLINE_WEBHOOK_SECRET",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub webhook_secret: Vec<String>,

    /// The event types each --webhook-url receives, in order, comma-separated (`*`: all, the
    /// default); one list serves them all. Types: thread.created, message.created,
    /// message.updated, message.deleted, reaction.updated, member.mentioned, file.ready.
    #[arg(long, env = "THREADLINE_WEBHOOK_EVENTS", value_delimiter = ' ')]
    pub webhook_events: Vec<String>,

    /// How long one webhook attempt may take (connect, send, answer), milliseconds.
    #[arg(long, env = "THREADLINE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// Webhook attempts in flight at once, per node.
    #[arg(long, env = "THREADLINE_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,

    /// The first retry's delay; each next one doubles it (with jitter), milliseconds.
    #[arg(
        long,
        env = "THREADLINE_WEBHOOK_RETRY_BASE_MS",
        default_value_t = 1_000
    )]
    pub webhook_retry_base_ms: u64,

    /// The longest delay between two attempts, milliseconds (default one hour).
    #[arg(
        long,
        env = "THREADLINE_WEBHOOK_RETRY_MAX_MS",
        default_value_t = 3_600_000
    )]
    pub webhook_retry_max_ms: u64,

    /// How long an event is retried before it is marked failed, seconds (default one day).
    #[arg(
        long,
        env = "THREADLINE_WEBHOOK_MAX_AGE_SECS",
        default_value_t = 86_400
    )]
    pub webhook_max_age_secs: u64,

    /// Past this many events waiting for delivery, `/readyz` reports `webhooks`.
    #[arg(
        long,
        env = "THREADLINE_WEBHOOK_BACKLOG_LIMIT",
        default_value_t = 10_000
    )]
    pub webhook_backlog_limit: u64,

    /// Message searches per user; jwt default 60/60s.
    #[arg(long, env = "THREADLINE_SEARCH_RATE_PER_USER")]
    pub search_rate_per_user: Option<Setting<Rate>>,

    /// Message searches per client address; jwt default 600/60s.
    #[arg(long, env = "THREADLINE_SEARCH_RATE_PER_IP")]
    pub search_rate_per_ip: Option<Setting<Rate>>,

    /// Events one socket may send (typing, thread:join, thread:leave, thread:read, ...;
    /// message:send has the post rates); past it they are refused with `rate_limited`.
    /// On in both modes unless `off`; default 100/1s.
    #[arg(long, env = "THREADLINE_EVENT_RATE_PER_SOCKET")]
    pub event_rate_per_socket: Option<Setting<Rate>>,

    /// Thread rooms one socket may be in at once (`thread:join` past it: `too_many_rooms`).
    #[arg(long, env = "THREADLINE_MAX_ROOMS_PER_SOCKET", default_value_t = 500)]
    pub max_rooms_per_socket: usize,

    /// New Socket.IO connections per user; jwt default 30/60s.
    #[arg(long, env = "THREADLINE_CONNECT_RATE_PER_USER")]
    pub connect_rate_per_user: Option<Setting<Rate>>,

    /// New Socket.IO connections per client address; jwt default 300/60s.
    #[arg(long, env = "THREADLINE_CONNECT_RATE_PER_IP")]
    pub connect_rate_per_ip: Option<Setting<Rate>>,

    /// TCP connections this node holds at once, websockets included; past it the server stops
    /// accepting until one closes. Lowered at start-up to fit the open-files limit (whose soft
    /// value is first raised to the hard one). Default: the open-files limit less 256.
    #[arg(long, env = "THREADLINE_MAX_HTTP_CONNECTIONS")]
    pub max_http_connections: Option<usize>,

    /// An HTTP connection must send a request's complete head within this long of opening or
    /// of its previous response, else it is closed: idle keep-alive connections and headers
    /// trickled a byte at a time cannot hold a descriptor.
    #[arg(
        long,
        env = "THREADLINE_HTTP_IDLE_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub http_idle_timeout_ms: u64,

    /// Longest pause while receiving a request body (an upload that stalls this long is
    /// refused with 408 and its partial file removed).
    #[arg(
        long,
        env = "THREADLINE_HTTP_BODY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub http_body_timeout_ms: u64,

    /// Engine.IO sessions that have not sent their Socket.IO CONNECT yet, on this node (a
    /// number or `off`). Counted at each client's first request, before any token is read;
    /// past it: 503 `server_busy`. Each address may also open twice its
    /// `--connect-rate-per-ip` in sessions (429 `rate_limited`). On in both modes.
    #[arg(long, env = "THREADLINE_MAX_PENDING_SESSIONS", default_value = "5000")]
    pub max_pending_sessions: Setting<usize>,

    /// Socket.IO connections this node holds at once (a number or `off`); jwt default 10000.
    #[arg(long, env = "THREADLINE_MAX_CONNECTIONS")]
    pub max_connections: Option<Setting<usize>>,

    /// Socket.IO connections one user holds at once (a number or `off`); jwt default 20.
    #[arg(long, env = "THREADLINE_MAX_CONNECTIONS_PER_USER")]
    pub max_connections_per_user: Option<Setting<usize>>,

    /// Behind a proxy: the header carrying the client's address (`x-forwarded-for`,
    /// `x-real-ip`); its rightmost address is used. Unset: the TCP peer's address.
    #[arg(long, env = "THREADLINE_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<HeaderName>,

    /// Origins allowed by CORS, comma separated. Unset: any origin (like the stub).
    #[arg(long, env = "THREADLINE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Log line format.
    #[arg(long, env = "THREADLINE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The client examples: `browser/` is served at `/demo/`, with socket.io-client from its
    /// `node_modules` (run `npm install` there once).
    #[arg(long, env = "THREADLINE_DEMO_DIR", default_value = "client-examples")]
    pub demo_dir: PathBuf,

    /// Start with the messenger README's sample accounts, conversations and messages.
    /// (`THREADLINE_DEMO=1`, `true`, `yes` or `on` in the environment).
    #[arg(long, env = "THREADLINE_DEMO", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub demo: bool,

    /// Worker threads for the async runtime (default: one per core; 1 runs everything on one
    /// thread with tokio's current-thread scheduler).
    #[arg(long, env = "THREADLINE_WORKERS")]
    pub workers: Option<usize>,

    /// On SIGTERM or ctrl-c, how long in-flight requests get to finish, in seconds.
    #[arg(long, env = "THREADLINE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Pending-connection queue length of the listening socket.
    #[arg(long, env = "THREADLINE_BACKLOG", default_value_t = 1024)]
    pub backlog: u32,

    /// Serve the Socket.IO Admin UI's server side (namespace `/admin`): the official UI
    /// (admin.socket.io, or /admin-ui/ when `@socket.io/admin-ui` is installed in the demo
    /// directory) then shows this node, its sockets, rooms and events. Needs
    /// --admin-ui-password-hash.
    #[arg(long, env = "THREADLINE_ADMIN_UI", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub admin_ui: bool,

    /// `development` also streams every socket, room change and received event to the UI;
    /// `production` sends only the periodic server statistics.
    #[arg(long, env = "THREADLINE_ADMIN_UI_MODE", value_enum, default_value_t = AdminUiMode::Development)]
    pub admin_ui_mode: AdminUiMode,

    /// The Admin UI's login name.
    #[arg(long, env = "THREADLINE_ADMIN_UI_USERNAME", default_value = "admin")]
    pub admin_ui_username: String,

    /// The bcrypt hash of the Admin UI's password (`$2b$12$…`; e.g. `htpasswd -nbBC 12 "" pw`).
    #[arg(long, env = "THREADLINE_ADMIN_UI_PASSWORD_HASH")]
    pub admin_ui_password_hash: Option<String>,

    /// Let the Admin UI look only: no join, leave, disconnect or emit.
    #[arg(long, env = "THREADLINE_ADMIN_UI_READONLY", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub admin_ui_readonly: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdminUiMode {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// `jwt` mode: a key to verify tokens is configured (see README, Identity).
    pub fn jwt_mode(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key.is_some()
    }

    /// Checks what no single flag can: the settings that must agree with each other.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.jwt_secret.is_some() && self.jwt_public_key.is_some() {
            return Err("configure either --jwt-secret or --jwt-public-key, not both");
        }
        if self.admin_ui {
            match &self.admin_ui_password_hash {
                None => return Err("--admin-ui needs --admin-ui-password-hash (a bcrypt hash)"),
                Some(hash) if bcrypt::HashParts::from_str(hash).is_err() => {
                    return Err("--admin-ui-password-hash is not a bcrypt hash");
                }
                Some(_) => {}
            }
        }
        if self.replay_limit >= self.socket_buffer {
            return Err(
                "--replay-limit must be smaller than --socket-buffer: a replay is queued at once",
            );
        }
        Ok(())
    }

    /// Defaults for tests and embedding: loopback, an ephemeral port, files under `data_dir`.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut config = Self::parse_from(["threadline"]);
        config.host = IpAddr::from([127, 0, 0, 1]);
        config.port = 0;
        config.data_dir = data_dir;
        config
    }
}

/// A configured limit: a value, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting<T> {
    Off,
    On(T),
}

impl<T: FromStr> FromStr for Setting<T> {
    type Err = T::Err;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.trim().eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        raw.trim().parse().map(Self::On)
    }
}

/// `count/period`: at most `count` at once, and `count` more every `period` (`30/10s`, `5/1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
}

impl Rate {
    pub const fn new(count: u32, seconds: u64) -> Self {
        Self {
            count: match NonZeroU32::new(count) {
                Some(count) => count,
                None => panic!("a rate allows at least one"),
            },
            period: Duration::from_secs(seconds),
        }
    }

    /// Twice the burst and twice the pace.
    pub fn doubled(self) -> Self {
        Self {
            count: self.count.saturating_mul(NonZeroU32::MIN.saturating_add(1)),
            period: self.period,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs_f64())
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("`{raw}`: expected COUNT/PERIOD, like 30/10s, 100/1m or 5/500ms");
        let (count, period) = raw.trim().split_once('/').ok_or_else(bad)?;
        let count = count.trim().parse::<NonZeroU32>().map_err(|_| bad())?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (amount, unit) = period.split_at(split);
        let amount = amount.parse::<u64>().map_err(|_| bad())?;
        let period = match unit {
            "ms" => Duration::from_millis(amount),
            "s" | "" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.saturating_mul(60)),
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        if period.is_zero() {
            return Err(bad());
        }
        Ok(Self { count, period })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_and_off() {
        assert_eq!("30/10s".parse::<Rate>().unwrap(), Rate::new(30, 10));
        assert_eq!("5/1m".parse::<Rate>().unwrap(), Rate::new(5, 60));
        assert_eq!(
            "2/500ms".parse::<Rate>().unwrap().period,
            Duration::from_millis(500)
        );
        assert_eq!("off".parse::<Setting<Rate>>().unwrap(), Setting::Off);
        for bad in ["", "30", "0/1s", "3/0s", "3/1y", "x/1s", "3/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad} parsed");
        }
    }
}
