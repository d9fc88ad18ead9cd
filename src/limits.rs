//! Abuse limits: how fast one user or one client address may post, upload and open connections,
//! and how many connections a node holds at once.
//!
//! Rates are token buckets (GCRA, from the `governor` crate): `30/10s` allows a burst of 30 and
//! then one more every 10 s / 30. In `jwt` mode every limit is on unless configured `off`; in
//! `open` mode, which trusts the gateway in front of it, only the configured ones apply. Limits
//! are counted per node.

use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::ConnectInfo,
    http::{Extensions, HeaderMap, HeaderName},
};
use dashmap::DashMap;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use prometheus_client::metrics::counter::Counter;

use crate::{
    config::{Config, Rate, Setting},
    domain::{Actor, UserId},
    metrics::Metrics,
};

/// The token bucket of a rate.
fn quota(rate: Rate) -> Quota {
    // `period / count` is positive: parsing refuses a zero period.
    Quota::with_period(rate.period / rate.count.get())
        .unwrap_or_else(|| Quota::per_second(rate.count))
        .allow_burst(rate.count)
}

/// What `jwt` mode applies when a limit is not configured.
pub mod defaults {
    use super::Rate;

    pub const POSTS_PER_USER: Rate = Rate::new(30, 10);
    pub const POSTS_PER_IP: Rate = Rate::new(300, 10);
    pub const UPLOADS_PER_USER: Rate = Rate::new(30, 60);
    pub const UPLOADS_PER_IP: Rate = Rate::new(120, 60);
    pub const THREADS_PER_USER: Rate = Rate::new(30, 60);
    pub const THREADS_PER_IP: Rate = Rate::new(300, 60);
    pub const SEARCHES_PER_USER: Rate = Rate::new(60, 60);
    pub const SEARCHES_PER_IP: Rate = Rate::new(600, 60);
    /// In both modes: it guards the node, not the product's rules.
    pub const EVENTS_PER_SOCKET: Rate = Rate::new(100, 1);
    pub const CONNECTS_PER_USER: Rate = Rate::new(30, 60);
    pub const CONNECTS_PER_IP: Rate = Rate::new(300, 60);
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_CONNECTIONS_PER_USER: usize = 20;
}

/// A refusal: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds, rounded up, at least 1: what `Retry-After` carries.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// A rate per key of any kind (a socket, an address, `()` for the whole node), or none; its
/// refusals are counted (`threadline_rate_limited_total`).
pub struct KeyedRate<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    refused: Counter,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedRate<K> {
    /// `setting`, or `default` when not configured.
    pub fn new(setting: Option<Setting<Rate>>, default: Rate, refused: Counter) -> Self {
        let rate = match setting {
            Some(Setting::On(rate)) => Some(rate),
            Some(Setting::Off) => None,
            None => Some(default),
        };
        Self::from_rate(rate, refused)
    }

    /// `rate`, or no limit.
    pub fn from_rate(rate: Option<Rate>, refused: Counter) -> Self {
        Self {
            limiter: rate.map(|rate| RateLimiter::dashmap(quota(rate))),
            refused,
        }
    }

    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        match &self.limiter {
            Some(limiter) => limiter.check_key(key).map_err(|not_until| {
                self.refused.inc();
                refusal(not_until)
            }),
            None => Ok(()),
        }
    }

    fn is_on(&self) -> bool {
        self.limiter.is_some()
    }

    /// Forgets the buckets that are full again (they behave exactly like absent ones).
    pub fn sweep(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// One kind of action, limited per user and per client address.
pub struct RateLimit {
    per_user: KeyedRate<UserId>,
    per_ip: KeyedRate<IpAddr>,
}

impl RateLimit {
    /// `name` labels the refusals: `<name>_per_user`, `<name>_per_ip`.
    fn new(
        metrics: &Metrics,
        name: &'static [&'static str; 2],
        per_user: Option<Rate>,
        per_ip: Option<Rate>,
    ) -> Self {
        Self {
            per_user: KeyedRate::from_rate(per_user, metrics.refusals(name[0])),
            per_ip: KeyedRate::from_rate(per_ip, metrics.refusals(name[1])),
        }
    }

    /// Takes one from the user's bucket, then the address's. `user` is `None` for anonymous
    /// callers, who share nothing but their address. The user's comes first so that a user who
    /// keeps going after a refusal does not drain the bucket of everyone behind the same
    /// address.
    pub fn check(&self, user: Option<&UserId>, ip: Option<IpAddr>) -> Result<(), RateLimited> {
        if let Some(user) = user {
            self.per_user.check(user)?;
        }
        if let Some(ip) = ip {
            self.per_ip.check(&ip)?;
        }
        Ok(())
    }

    /// [`RateLimit::check`] for what `actor` does.
    pub fn check_actor(&self, actor: &Actor) -> Result<(), RateLimited> {
        self.check(actor.counted_user(), actor.ip)
    }

    fn uses_ip(&self) -> bool {
        self.per_ip.is_on()
    }

    fn sweep(&self) {
        self.per_user.sweep();
        self.per_ip.sweep();
    }
}

/// New Engine.IO sessions, counted at the first request of each, before the session exists and
/// before any token is read: a flood of handshakes that never connect cannot grow memory.
pub struct SessionLimit {
    /// Twice the address's connect rate: a client over its connect rate is refused at CONNECT
    /// (a clear `connect_error`); only sessions that never connect run into this one.
    per_ip: KeyedRate<IpAddr>,
    pending: PendingSessions,
}

/// Why a new session was refused.
#[derive(Debug)]
pub enum SessionRefused {
    /// The address opened too many (429).
    Address(RateLimited),
    /// The node holds `--max-pending-sessions` that have not connected (503).
    Node(RateLimited),
}

impl SessionLimit {
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), SessionRefused> {
        if let Some(ip) = ip {
            self.per_ip.check(&ip).map_err(SessionRefused::Address)?;
        }
        self.pending.open().map_err(SessionRefused::Node)
    }

    /// A session sent its Socket.IO CONNECT and was admitted: it is no longer pending.
    pub fn connected(&self) {
        self.pending.connected();
    }
}

/// Engine.IO sessions opened but not yet connected to a namespace. Such a session is closed by
/// the engine at `--connect-timeout-ms`, so each is remembered by when it opened and forgotten
/// then, or when a session connects (the oldest is forgotten: the count is what matters).
struct PendingSessions {
    max: Option<usize>,
    lifetime: Duration,
    opened: Mutex<VecDeque<Instant>>,
    refused: Counter,
}

impl PendingSessions {
    fn open(&self) -> Result<(), RateLimited> {
        let Some(max) = self.max else {
            return Ok(());
        };
        let now = Instant::now();
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        while opened
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.lifetime)
        {
            opened.pop_front();
        }
        if opened.len() >= max {
            self.refused.inc();
            let oldest = opened.front().copied().unwrap_or(now);
            return Err(RateLimited {
                retry_after: self.lifetime.saturating_sub(now.duration_since(oldest)),
            });
        }
        opened.push_back(now);
        Ok(())
    }

    fn connected(&self) {
        if self.max.is_some() {
            self.opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
        }
    }
}

fn refusal(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> RateLimited {
    RateLimited {
        retry_after: not_until.wait_time_from(DefaultClock::default().now()),
    }
}

/// Why a connection was refused (the `connect_error` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// The node holds `--max-connections` already.
    ServerFull,
    /// The user holds `--max-connections-per-user` already.
    TooManyForUser,
}

impl ConnectionRefused {
    pub fn code(self) -> &'static str {
        match self {
            Self::ServerFull => "server_full",
            Self::TooManyForUser => "too_many_connections",
        }
    }
}

/// Caps on the Socket.IO connections this node holds, in total and per user.
pub struct ConnectionCap {
    max: Option<usize>,
    max_per_user: Option<usize>,
    open: AtomicUsize,
    per_user: DashMap<UserId, usize>,
    /// Refusals: the node was full, the user held its most.
    refused: [Counter; 2],
}

/// A held connection; dropping it gives the place back.
pub struct ConnectionSlot {
    cap: Arc<ConnectionCap>,
    user: Option<UserId>,
}

impl ConnectionCap {
    /// Whether a connection of `user` takes a place that must be given back.
    pub fn counts(&self, user: Option<&UserId>) -> bool {
        self.max.is_some() || (self.max_per_user.is_some() && user.is_some())
    }

    /// Takes a place for a new connection, or says why there is none.
    pub fn acquire(
        self: &Arc<Self>,
        user: Option<&UserId>,
    ) -> Result<ConnectionSlot, ConnectionRefused> {
        if let Some(max) = self.max {
            let taken = self.open.fetch_add(1, Ordering::AcqRel);
            if taken >= max {
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.refused[0].inc();
                return Err(ConnectionRefused::ServerFull);
            }
        }
        let user = match (self.max_per_user, user) {
            (Some(max), Some(user)) => {
                let mut held = self.per_user.entry(user.clone()).or_insert(0);
                if *held >= max {
                    drop(held);
                    self.release_total();
                    self.refused[1].inc();
                    return Err(ConnectionRefused::TooManyForUser);
                }
                *held += 1;
                Some(user.clone())
            }
            _ => None,
        };
        Ok(ConnectionSlot {
            cap: Arc::clone(self),
            user,
        })
    }

    /// Connections held now (counted only while `--max-connections` is set).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn release_total(&self) {
        if self.max.is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.cap.release_total();
        if let Some(user) = &self.user {
            // Remove the entry at zero so the map holds only users who are connected.
            self.cap.per_user.remove_if_mut(user, |_, held| {
                *held -= 1;
                *held == 0
            });
        }
    }
}

/// Every limit of one node.
pub struct Limits {
    /// New messages and edits, over REST and `message:send`.
    pub posts: RateLimit,
    /// File uploads.
    pub uploads: RateLimit,
    /// Threads created or resolved (each may add a row per member).
    pub threads: RateLimit,
    /// Message searches (each a full-text query).
    pub searches: RateLimit,
    /// New Socket.IO connections.
    pub connects: RateLimit,
    /// New Engine.IO sessions (before the Socket.IO CONNECT).
    pub sessions: SessionLimit,
    pub connections: Arc<ConnectionCap>,
    /// Where the client's address comes from behind a proxy.
    client_ip_header: Option<HeaderName>,
}

impl Limits {
    pub fn from_config(config: &Config, metrics: &Metrics) -> Self {
        // Limits are on by default in jwt mode, and only where configured in open mode.
        let jwt = config.jwt_mode();
        let rate = |setting: Option<Setting<Rate>>, default: Rate| match setting {
            Some(Setting::On(rate)) => Some(rate),
            Some(Setting::Off) => None,
            None => jwt.then_some(default),
        };
        let cap = |setting: Option<Setting<usize>>, default: usize| match setting {
            Some(Setting::On(max)) => Some(max),
            Some(Setting::Off) => None,
            None => jwt.then_some(default),
        };
        Self {
            posts: RateLimit::new(
                metrics,
                &["posts_per_user", "posts_per_ip"],
                rate(config.post_rate_per_user, defaults::POSTS_PER_USER),
                rate(config.post_rate_per_ip, defaults::POSTS_PER_IP),
            ),
            uploads: RateLimit::new(
                metrics,
                &["uploads_per_user", "uploads_per_ip"],
                rate(config.upload_rate_per_user, defaults::UPLOADS_PER_USER),
                rate(config.upload_rate_per_ip, defaults::UPLOADS_PER_IP),
            ),
            threads: RateLimit::new(
                metrics,
                &["threads_per_user", "threads_per_ip"],
                rate(config.thread_rate_per_user, defaults::THREADS_PER_USER),
                rate(config.thread_rate_per_ip, defaults::THREADS_PER_IP),
            ),
            searches: RateLimit::new(
                metrics,
                &["searches_per_user", "searches_per_ip"],
                rate(config.search_rate_per_user, defaults::SEARCHES_PER_USER),
                rate(config.search_rate_per_ip, defaults::SEARCHES_PER_IP),
            ),
            connects: RateLimit::new(
                metrics,
                &["connects_per_user", "connects_per_ip"],
                rate(config.connect_rate_per_user, defaults::CONNECTS_PER_USER),
                rate(config.connect_rate_per_ip, defaults::CONNECTS_PER_IP),
            ),
            sessions: SessionLimit {
                per_ip: KeyedRate::from_rate(
                    rate(config.connect_rate_per_ip, defaults::CONNECTS_PER_IP).map(Rate::doubled),
                    metrics.refusals("sessions_per_ip"),
                ),
                pending: PendingSessions {
                    max: match config.max_pending_sessions {
                        Setting::On(max) => Some(max),
                        Setting::Off => None,
                    },
                    lifetime: Duration::from_millis(config.connect_timeout_ms),
                    opened: Mutex::new(VecDeque::new()),
                    refused: metrics.refusals("pending_sessions"),
                },
            },
            connections: Arc::new(ConnectionCap {
                max: cap(config.max_connections, defaults::MAX_CONNECTIONS),
                max_per_user: cap(
                    config.max_connections_per_user,
                    defaults::MAX_CONNECTIONS_PER_USER,
                ),
                open: AtomicUsize::new(0),
                per_user: DashMap::new(),
                refused: [
                    metrics.refusals("connections"),
                    metrics.refusals("connections_per_user"),
                ],
            }),
            client_ip_header: config.client_ip_header.clone(),
        }
    }

    /// Whether any limit keys on the client's address (so requests must carry it).
    pub fn uses_ip(&self) -> bool {
        self.posts.uses_ip()
            || self.uploads.uses_ip()
            || self.threads.uses_ip()
            || self.searches.uses_ip()
            || self.connects.uses_ip()
    }

    /// The client's address, when a limit keys on it (else `None`, without looking): the
    /// rightmost address in `--client-ip-header` when configured (what the proxy in front saw),
    /// else the peer of the TCP connection.
    pub fn client_ip(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        if !self.uses_ip() {
            return None;
        }
        self.address_of(headers, extensions)
    }

    /// The client's address (from `--client-ip-header` when configured), whether or not any
    /// limit counts by address.
    pub fn address_of(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        if let Some(name) = &self.client_ip_header {
            return headers
                .get_all(name)
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|list| list.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok());
        }
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    }

    /// Forgets full buckets every minute, for as long as the limits are in use.
    pub fn sweep_periodically(self: &Arc<Self>) {
        let limits: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                limits.posts.sweep();
                limits.uploads.sweep();
                limits.threads.sweep();
                limits.connects.sweep();
                limits.sessions.per_ip.sweep();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let metrics = Metrics::default();
        let limit = RateLimit::new(&metrics, &["p_u", "p_i"], Some(Rate::new(3, 60)), None);
        let ann = UserId::parse("ann").unwrap();
        let bob = UserId::parse("bob").unwrap();
        for _ in 0..3 {
            limit.check(Some(&ann), None).unwrap();
        }
        let refused = limit.check(Some(&ann), None).unwrap_err();
        assert!(refused.retry_after > Duration::from_secs(15));
        assert!(refused.retry_after <= Duration::from_secs(20));
        assert_eq!(refused.retry_after_secs(), 20);
        limit.check(Some(&bob), None).unwrap();
        // Anonymous callers are limited by their address only.
        limit.check(None, None).unwrap();
    }

    #[test]
    fn pending_sessions_are_capped_until_they_connect_or_expire() {
        let pending = PendingSessions {
            max: Some(2),
            lifetime: Duration::from_millis(200),
            opened: Mutex::new(VecDeque::new()),
            refused: Counter::default(),
        };
        pending.open().unwrap();
        pending.open().unwrap();
        let refused = pending.open().unwrap_err();
        assert!(refused.retry_after <= Duration::from_millis(200));
        pending.connected();
        pending.open().unwrap();
        assert!(pending.open().is_err());
        std::thread::sleep(Duration::from_millis(250));
        pending.open().unwrap();
        pending.open().unwrap();
    }

    #[test]
    fn slots_come_back_when_dropped() {
        let cap = Arc::new(ConnectionCap {
            max: Some(3),
            max_per_user: Some(2),
            open: AtomicUsize::new(0),
            per_user: DashMap::new(),
            refused: Default::default(),
        });
        let ann = UserId::parse("ann").unwrap();
        let a1 = cap.acquire(Some(&ann)).unwrap();
        let _a2 = cap.acquire(Some(&ann)).unwrap();
        assert_eq!(
            cap.acquire(Some(&ann)).err(),
            Some(ConnectionRefused::TooManyForUser)
        );
        let _anon = cap.acquire(None).unwrap();
        assert_eq!(cap.acquire(None).err(), Some(ConnectionRefused::ServerFull));
        drop(a1);
        assert_eq!(cap.open(), 2);
        let _a3 = cap.acquire(Some(&ann)).unwrap();
        assert_eq!(cap.per_user.get(&ann).map(|n| *n), Some(2));
    }
}
