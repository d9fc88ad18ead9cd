//! What the node counts, for `GET /metrics` (Prometheus text format).
//!
//! One [`Metrics`] per server, with its own registry: several servers in one process (the
//! tests) each report their own figures, which a process-wide recorder could not do. Hot-path
//! updates are atomic adds on handles resolved once; what is cheaper to read when scraped
//! (sockets, rooms, Redis, the process) is sampled then, through a [`Sampler`] the upper
//! layers install.

use std::{
    fmt::Write as _,
    sync::{Arc, OnceLock},
};

use async_trait::async_trait;
use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    /// The route template (`/api/threads/{thread_id}`), never the raw path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub operation: &'static str,
    pub backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub transport: &'static str,
}

/// Figures read when scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Live {
    pub sockets_polling: i64,
    pub sockets_websocket: i64,
    /// Thread rooms with a socket on this node.
    pub rooms: i64,
    /// `Some(up)` when the node runs with Redis.
    pub redis_up: Option<bool>,
}

/// Reads the [`Live`] figures; installed by the layer that holds the sockets.
#[async_trait]
pub trait Sampler: Send + Sync + 'static {
    async fn sample(&self) -> Live;
}

pub struct Metrics {
    registry: Registry,
    sampler: OnceLock<Arc<dyn Sampler>>,
    pub messages_posted: Counter,
    pub deliveries: Counter,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub store_duration: Family<StoreLabels, Histogram>,
    refusals: Family<LimitLabels, Counter>,
    pub replayed: Histogram,
    sockets: Family<TransportLabels, Gauge>,
    rooms: Gauge,
    redis_up: Gauge,
    /// Webhook events waiting for delivery (as the worker last counted them).
    pub webhook_pending: Gauge,
    webhook_outcomes: Family<OutcomeLabels, Counter>,
    /// One webhook attempt: request to answer.
    pub webhook_attempt_duration: Histogram,
    /// From an event's recording to its acceptance by the endpoint.
    pub webhook_lag: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

/// Latency buckets from 100 µs to about 26 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Metrics {
    /// `with_redis`: the node runs with Redis, so the link's state is reported.
    pub fn new(with_redis: bool) -> Self {
        let mut registry = Registry::with_prefix("threadline");
        let messages_posted = Counter::default();
        registry.register(
            "messages_posted",
            "Messages stored (new ones; an idempotent retry is not counted again)",
            messages_posted.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Thread events written to this node's sockets (one per socket reached)",
            deliveries.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(latency as _);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to its response head), by route template",
            http_duration.clone(),
        );
        let store_duration = Family::<StoreLabels, Histogram>::new_with_constructor(latency as _);
        registry.register(
            "store_operation_duration_seconds",
            "Time of a store operation, by operation and backend",
            store_duration.clone(),
        );
        let refusals = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests, events and connections refused by a limit, by limit",
            refusals.clone(),
        );
        let replayed = Histogram::new([0.0, 1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]);
        registry.register(
            "replay_messages",
            "Rejoins that replayed what a client missed, by messages replayed",
            replayed.clone(),
        );
        let sockets = Family::<TransportLabels, Gauge>::default();
        registry.register(
            "sockets_connected",
            "Socket.IO connections held by this node, by transport",
            sockets.clone(),
        );
        let rooms = Gauge::default();
        registry.register(
            "rooms",
            "Thread rooms with at least one socket on this node",
            rooms.clone(),
        );
        let redis_up = Gauge::default();
        if with_redis {
            registry.register(
                "redis_up",
                "1 while the link to Redis works, 0 while it is down",
                redis_up.clone(),
            );
        }
        let webhook_pending = Gauge::default();
        registry.register(
            "webhook_outbox_pending",
            "Webhook events waiting for delivery (recorded, not yet accepted nor given up)",
            webhook_pending.clone(),
        );
        let webhook_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook attempts by outcome: delivered, retried (to be tried again), failed (given up)",
            webhook_outcomes.clone(),
        );
        let webhook_attempt_duration = latency();
        registry.register(
            "webhook_attempt_duration_seconds",
            "Time of one webhook attempt, request to answer",
            webhook_attempt_duration.clone(),
        );
        let webhook_lag = Histogram::new(exponential_buckets(0.001, 2.0, 28));
        registry.register(
            "webhook_delivery_lag_seconds",
            "From a webhook event's recording to its acceptance by the endpoint",
            webhook_lag.clone(),
        );
        Self {
            registry,
            sampler: OnceLock::new(),
            webhook_pending,
            webhook_outcomes,
            webhook_attempt_duration,
            webhook_lag,
            messages_posted,
            deliveries,
            http_requests,
            http_duration,
            store_duration,
            refusals,
            replayed,
            sockets,
            rooms,
            redis_up,
        }
    }

    /// The counter of refusals by the limit named `limit` (resolved once, kept by the limit).
    pub fn refusals(&self, limit: &'static str) -> Counter {
        self.refusals.get_or_create(&LimitLabels { limit }).clone()
    }

    /// The counter of webhook attempts that ended in `outcome`.
    pub fn webhook_outcome(&self, outcome: &'static str) -> Counter {
        self.webhook_outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .clone()
    }

    /// Times `operation` on the store `backend`.
    pub fn store_timer(&self, operation: &'static str, backend: &'static str) -> Histogram {
        self.store_duration
            .get_or_create(&StoreLabels { operation, backend })
            .clone()
    }

    /// Installs what reads the live figures; the first one installed stays.
    pub fn sample_with(&self, sampler: Arc<dyn Sampler>) {
        let _ = self.sampler.set(sampler);
    }

    /// Everything, in the Prometheus text format, the process's own figures last.
    pub async fn render(&self) -> String {
        let live = match self.sampler.get() {
            Some(sampler) => sampler.sample().await,
            None => Live::default(),
        };
        self.sockets
            .get_or_create(&TransportLabels {
                transport: "polling",
            })
            .set(live.sockets_polling);
        self.sockets
            .get_or_create(&TransportLabels {
                transport: "websocket",
            })
            .set(live.sockets_websocket);
        self.rooms.set(live.rooms);
        self.redis_up.set(i64::from(live.redis_up.unwrap_or(false)));
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        process::render(&mut out);
        out
    }
}

/// The standard `process_*` figures (the names Prometheus client libraries share), read from
/// `/proc` on Linux; elsewhere none.
mod process {
    use super::*;

    pub fn render(out: &mut String) {
        #[cfg(target_os = "linux")]
        if let Some(figures) = linux::read() {
            for (name, kind, help, value) in figures {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                let _ = writeln!(out, "{name} {value}");
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = out;
    }

    #[cfg(target_os = "linux")]
    mod linux {
        type Figure = (&'static str, &'static str, &'static str, f64);

        /// Clock ticks per second and page size: fixed on every Linux this runs on.
        const TICKS: f64 = 100.0;
        const PAGE: f64 = 4096.0;

        pub fn read() -> Option<Vec<Figure>> {
            let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
            // Fields after the command name, which is in parentheses and may hold spaces.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
            let cpu = (field(14)? + field(15)?) / TICKS;
            let threads = field(20)?;
            let start_ticks = field(22)?;
            let virtual_bytes = field(23)?;
            let resident = field(24)? * PAGE;
            let boot = std::fs::read_to_string("/proc/stat")
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|b| b.trim().parse::<f64>().ok())?;
            let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
            let max_fds = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?.0 as f64;
            Some(vec![
                (
                    "process_cpu_seconds_total",
                    "counter",
                    "User and system CPU time spent, seconds",
                    cpu,
                ),
                (
                    "process_resident_memory_bytes",
                    "gauge",
                    "Resident memory size, bytes",
                    resident,
                ),
                (
                    "process_virtual_memory_bytes",
                    "gauge",
                    "Virtual memory size, bytes",
                    virtual_bytes,
                ),
                ("process_open_fds", "gauge", "Open file descriptors", fds),
                (
                    "process_max_fds",
                    "gauge",
                    "The soft limit on open file descriptors",
                    max_fds,
                ),
                (
                    "process_threads",
                    "gauge",
                    "Operating-system threads",
                    threads,
                ),
                (
                    "process_start_time_seconds",
                    "gauge",
                    "Start time of the process since the Unix epoch, seconds",
                    boot + start_ticks / TICKS,
                ),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_every_family_with_its_labels() {
        let metrics = Metrics::new(false);
        metrics.messages_posted.inc();
        metrics.refusals("posts_per_user").inc();
        metrics
            .http_requests
            .get_or_create(&HttpLabels {
                method: "GET",
                route: "/api/threads/{thread_id}".into(),
                status: 200,
            })
            .inc();
        let text = metrics.render().await;
        assert!(
            text.contains("threadline_messages_posted_total 1\n"),
            "{text}"
        );
        assert!(text.contains(r#"threadline_rate_limited_total{limit="posts_per_user"} 1"#));
        assert!(text.contains(
            r#"threadline_http_requests_total{method="GET",route="/api/threads/{thread_id}",status="200"} 1"#
        ));
        assert!(text.contains(r#"threadline_sockets_connected{transport="websocket"} 0"#));
        assert!(!text.contains("redis_up"), "no Redis, no gauge: {text}");
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes "));
    }
}
