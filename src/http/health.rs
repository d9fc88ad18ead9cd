//! Liveness (`/healthz`) and readiness (`/readyz`).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// A readiness check that takes longer than this counts as failing: the probe answers within
/// about this long whatever the state of the backends.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness), `ready` or `not_ready`.
    status: &'static str,
    /// What fails when not ready: `store`, `redis`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failing: Vec<&'static str>,
    /// What an operator should look at although the node serves: `webhook_backlog` when more
    /// webhook events wait than `--webhook-backlog-limit`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<&'static str>,
    /// With webhook endpoints: the events waiting for delivery.
    #[serde(rename = "webhookBacklog", skip_serializing_if = "Option::is_none")]
    webhook_backlog: Option<u64>,
}

/// `GET /healthz` → 200 `{"status": "ok"}` while the server is up (liveness: restart me only if
/// this fails).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        failing: Vec::new(),
        warnings: Vec::new(),
        webhook_backlog: None,
    })
}

/// `GET /readyz` → 200 `{"status": "ready"}` when the store answers and, with several nodes,
/// Redis is connected; else 503 `{"status": "not_ready", "failing": ["store", "redis"]}`. With
/// webhook endpoints it adds `webhookBacklog` (events waiting), and the warning
/// `webhook_backlog` past `--webhook-backlog-limit`: reported, not failing, because the node
/// still serves (a dead endpoint must not take every node out of rotation).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers (and Redis, with several nodes)", body = Health),
        (status = 503, description = "Not ready: `failing` names what", body = Health),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut failing = Vec::new();
    let store = tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await;
    if !matches!(store, Ok(Ok(()))) {
        failing.push("store");
    }
    if state.redis.as_ref().is_some_and(|link| !link.is_up()) {
        failing.push("redis");
    }
    let webhook_backlog = state.webhooks.as_ref().map(|w| w.pending());
    let warnings = match &state.webhooks {
        Some(webhooks) if webhooks.backlogged() => vec!["webhook_backlog"],
        _ => Vec::new(),
    };
    let (code, status) = match failing.is_empty() {
        true => (StatusCode::OK, "ready"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
    };
    let health = Health {
        status,
        failing,
        warnings,
        webhook_backlog,
    };
    (code, Json(health))
}
