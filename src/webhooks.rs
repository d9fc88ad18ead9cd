//! Webhooks: every chat event delivered to the team's own endpoints, signed the Standard
//! Webhooks way (standardwebhooks.com), at least once, in order per thread.
//!
//! `chat` turns each change into events here ([`Webhooks::events`]) and the store records them
//! in the same write as the change (the outbox), so an acknowledged change always has its
//! events. A worker on every node ([`Webhooks::start`]) claims due events from the store, posts
//! them, and removes them once an endpoint answers 2xx; an error, a timeout or another status
//! is retried with exponential backoff and jitter, under the same event id, until
//! `--webhook-max-age-secs`, then the event is marked failed and counted. Posting never waits
//! for any of this: a slow or dead endpoint grows the outbox, not the request path.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};

use crate::{
    config::Config,
    domain::{ThreadId, Timestamp},
    metrics::Metrics,
    store::{Delivery, OutboxEvent, Settled, Store},
};

/// Every event type, as `--webhook-events` names them.
pub const EVENT_TYPES: [&str; 7] = [
    "thread.created",
    "message.created",
    "message.updated",
    "message.deleted",
    "reaction.updated",
    "member.mentioned",
    "file.ready",
];

/// An endpoint: where to post, the key to sign with, what it receives.
#[derive(Clone)]
pub struct Endpoint {
    pub url: reqwest::Url,
    key: Vec<u8>,
    /// `None`: every type.
    events: Option<Vec<String>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn wants(&self, kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.iter().any(|e| e == kind))
    }
}

/// Reads `--webhook-url`, `--webhook-secret` and `--webhook-events`: as many secrets as URLs
/// (or one for all), and as many event lists as URLs (or one for all, or none: every type).
pub fn endpoints(config: &Config) -> Result<Vec<Endpoint>, String> {
    let urls = &config.webhook_url;
    let pick = |list: &[String], what: &str, i: usize| -> Result<Option<String>, String> {
        match list.len() {
            0 => Ok(None),
            1 => Ok(Some(list[0].clone())),
            n if n == urls.len() => Ok(Some(list[i].clone())),
            n => Err(format!(
                "{n} {what} for {} webhook URLs: give one for all, or one per URL",
                urls.len()
            )),
        }
    };
    let mut out = Vec::with_capacity(urls.len());
    for (i, raw) in urls.iter().enumerate() {
        let url = reqwest::Url::parse(raw).map_err(|e| format!("webhook URL {raw:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("webhook URL {raw:?}: use http:// or https://"));
        }
        let secret = pick(&config.webhook_secret, "--webhook-secret", i)?
            .ok_or_else(|| format!("webhook URL {raw:?} has no --webhook-secret"))?;
        let key = secret
            .strip_prefix("whsec_")
            .and_then(|b64| BASE64.decode(b64).ok())
            .filter(|key| key.len() >= 24)
            .ok_or("a webhook secret is whsec_ and the base64 of at least 24 random bytes")?;
        let events = match pick(&config.webhook_events, "--webhook-events", i)? {
            None => None,
            Some(list) if list.trim() == "*" => None,
            Some(list) => {
                let events: Vec<String> = list.split(',').map(|e| e.trim().to_owned()).collect();
                if let Some(bad) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
                    return Err(format!(
                        "unknown webhook event type {bad:?}: one of {}",
                        EVENT_TYPES.join(", ")
                    ));
                }
                Some(events)
            }
        };
        out.push(Endpoint { url, key, events });
    }
    Ok(out)
}

/// `{id, type, timestamp, data}`: the body every endpoint receives.
#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: Timestamp,
    data: &'a T,
}

/// The Standard Webhooks signature of one attempt: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the endpoint's key.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// How deliveries are paced (`--webhook-*`).
#[derive(Debug, Clone)]
struct Pacing {
    concurrency: usize,
    retry_base: Duration,
    retry_max: Duration,
    max_age: Duration,
    /// How long a claim holds an event: a node that dies mid-delivery leaves it to the others
    /// after this.
    lease: Duration,
}

pub struct Webhooks {
    endpoints: Vec<Endpoint>,
    urls: Vec<String>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    pacing: Pacing,
    client: reqwest::Client,
    node: String,
    /// Woken when this node records an event, and when a delivery frees a thread's lane.
    wake: Notify,
    /// Events waiting, as last counted (for `/readyz` and the metrics).
    pending: AtomicU64,
    /// What became of finished attempts, written to the store together before the next claim.
    settled: std::sync::Mutex<Vec<Settled>>,
    backlog_limit: u64,
}

impl Webhooks {
    /// `None` when no endpoint is configured: no event is built or recorded at all.
    pub fn from_config(
        config: &Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Self>>, String> {
        let endpoints = endpoints(config)?;
        if endpoints.is_empty() {
            return Ok(None);
        }
        let timeout = Duration::from_millis(config.webhook_timeout_ms);
        // Redirects are followed within the endpoint's own host only: a receiver cannot send
        // the signed events (and this node's requests) elsewhere.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.host_str() == attempt.url().host_str());
            if same_host && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(policy)
            .user_agent(concat!("threadline-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Some(Arc::new(Self {
            urls: endpoints.iter().map(|e| e.url.to_string()).collect(),
            endpoints,
            store,
            metrics,
            pacing: Pacing {
                concurrency: config.webhook_concurrency.max(1),
                retry_base: Duration::from_millis(config.webhook_retry_base_ms.max(1)),
                retry_max: Duration::from_millis(config.webhook_retry_max_ms.max(1)),
                max_age: Duration::from_secs(config.webhook_max_age_secs),
                lease: timeout * 2 + Duration::from_secs(5),
            },
            client,
            node: uuid::Uuid::now_v7().to_string(),
            wake: Notify::new(),
            pending: AtomicU64::new(0),
            settled: std::sync::Mutex::new(Vec::new()),
            backlog_limit: config.webhook_backlog_limit,
        })))
    }

    /// The outbox rows of one event of type `kind` about `thread`: one per endpoint that
    /// receives that type, all under one event id.
    pub fn events(
        &self,
        kind: &'static str,
        thread: Option<&ThreadId>,
        data: &impl Serialize,
    ) -> Vec<OutboxEvent> {
        let id = format!("evt_{}", uuid::Uuid::now_v7().simple());
        let at = Timestamp::now();
        let body = Body {
            id: &id,
            kind,
            timestamp: at,
            data,
        };
        let Ok(body) = serde_json::to_string(&body) else {
            return Vec::new();
        };
        self.endpoints
            .iter()
            .filter(|e| e.wants(kind))
            .map(|e| OutboxEvent {
                id: id.clone(),
                endpoint: e.url.to_string(),
                thread: thread.cloned(),
                kind: kind.to_owned(),
                body: body.clone(),
                at,
            })
            .collect()
    }

    /// Tells this node's worker that events were recorded.
    pub fn recorded(&self) {
        self.wake.notify_one();
    }

    /// Events waiting, as last counted.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// More events wait than `--webhook-backlog-limit`: `/readyz` reports it.
    pub fn backlogged(&self) -> bool {
        self.pending() > self.backlog_limit
    }

    /// Starts this node's delivery worker, for as long as the server runs.
    pub fn start(self: &Arc<Self>) {
        let webhooks = Arc::clone(self);
        tokio::spawn(async move { webhooks.run().await });
    }

    async fn run(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.pacing.concurrency));
        let mut counted = tokio::time::Instant::now() - Duration::from_secs(60);
        loop {
            if counted.elapsed() >= Duration::from_secs(1) {
                match self.store.outbox_pending(&self.urls).await {
                    Ok(n) => {
                        self.pending.store(n, Ordering::Relaxed);
                        self.metrics.webhook_pending.set(n as i64);
                    }
                    Err(e) => tracing::debug!(error = %e, "counting the webhook outbox failed"),
                }
                counted = tokio::time::Instant::now();
            }
            self.settle().await;
            let free = slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self
                    .store
                    .outbox_claim(
                        &self.urls,
                        &self.node,
                        Timestamp::now(),
                        self.pacing.lease,
                        free,
                    )
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhook events failed");
                        Vec::new()
                    }
                }
            };
            let full = !claimed.is_empty() && claimed.len() == free;
            for delivery in claimed {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let webhooks = Arc::clone(&self);
                tokio::spawn(async move {
                    webhooks.deliver(delivery).await;
                    drop(slot);
                    webhooks.wake.notify_one();
                });
            }
            if !full {
                // Other nodes' events and retries coming due are found by polling.
                let _ =
                    tokio::time::timeout(Duration::from_millis(250), self.wake.notified()).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }

    /// One attempt at one event.
    async fn deliver(&self, delivery: Delivery) {
        let event = &delivery.event;
        let Some(endpoint) = self
            .endpoints
            .iter()
            .find(|e| e.url.as_str() == event.endpoint)
        else {
            return;
        };
        let timestamp = Timestamp::now().as_millis() / 1000;
        let started = std::time::Instant::now();
        let sent = self
            .client
            .post(endpoint.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign(&endpoint.key, &event.id, timestamp, &event.body),
            )
            .body(event.body.clone())
            .send()
            .await;
        self.metrics
            .webhook_attempt_duration
            .observe(started.elapsed().as_secs_f64());
        let outcome = match sent {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!("answered {}", answer.status())),
            Err(e) => Err(e.to_string()),
        };
        let now = Timestamp::now();
        let settled = match outcome {
            Ok(()) => {
                let lag = (now.as_millis() - event.at.as_millis()).max(0) as f64 / 1000.0;
                self.metrics.webhook_lag.observe(lag);
                self.metrics.webhook_outcome("delivered").inc();
                Settled::Delivered(delivery.row)
            }
            Err(why) => {
                let attempts = delivery.attempts.saturating_add(1);
                let age =
                    Duration::from_millis((now.as_millis() - event.at.as_millis()).max(0) as u64);
                if age >= self.pacing.max_age {
                    tracing::warn!(event = %event.id, endpoint = %event.endpoint, attempts, %why, "webhook event given up");
                    self.metrics.webhook_outcome("failed").inc();
                    Settled::Failed {
                        row: delivery.row,
                        at: now,
                    }
                } else {
                    tracing::debug!(event = %event.id, endpoint = %event.endpoint, attempts, %why, "webhook attempt failed");
                    self.metrics.webhook_outcome("retried").inc();
                    let wait = self.backoff(attempts);
                    Settled::Retry {
                        row: delivery.row,
                        attempts,
                        at: Timestamp::from_millis(now.as_millis() + wait.as_millis() as i64),
                    }
                }
            }
        };
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(settled);
    }

    /// Writes what finished attempts came to, in one store write. Should it fail, they are
    /// kept for the next round; meanwhile their leases may run out and another attempt follow:
    /// at least once still holds.
    async fn settle(&self) {
        let settled = std::mem::take(&mut *self.settled.lock().unwrap_or_else(|p| p.into_inner()));
        if settled.is_empty() {
            return;
        }
        if let Err(e) = self.store.outbox_settle(&settled).await {
            tracing::warn!(error = %e, "recording webhook attempts failed");
            self.settled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(settled);
        }
    }

    /// Exponential from `--webhook-retry-base-ms`, capped at `--webhook-retry-max-ms`, with
    /// "equal jitter" (half fixed, half random) so that endpoints coming back are not hit by
    /// every node's retries at once.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .pacing
            .retry_base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = exp.min(self.pacing.retry_max);
        let random = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
        capped / 2 + (capped / 2) * random / 1_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_like_the_specification() {
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn endpoints_pair_urls_with_secrets_and_event_lists() {
        let secret = format!("whsec_{}", BASE64.encode([7u8; 32]));
        let mut config = Config::for_tests(std::env::temp_dir());
        config.webhook_url = vec!["http://a.test/hook".into(), "https://b.test/".into()];
        config.webhook_secret = vec![secret.clone()];
        config.webhook_events = vec!["message.created,file.ready".into(), "*".into()];
        let found = endpoints(&config).unwrap();
        assert!(found[0].wants("file.ready") && !found[0].wants("message.updated"));
        assert!(found[1].wants("message.updated"));

        config.webhook_events = vec!["message.exploded".into()];
        assert!(endpoints(&config).unwrap_err().contains("message.exploded"));
        config.webhook_events.clear();
        config.webhook_secret = vec!["not-a-secret".into()];
        assert!(endpoints(&config).is_err());
        config.webhook_secret = vec![secret.clone(), secret.clone(), secret];
        assert!(endpoints(&config).is_err(), "three secrets for two URLs");
        config.webhook_url = vec!["ftp://a.test/".into()];
        config.webhook_secret.truncate(1);
        assert!(endpoints(&config).is_err());
    }
}
