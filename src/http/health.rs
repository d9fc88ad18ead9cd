//! Liveness (`/healthz`) and readiness (`/readyz`).

use std::time::Duration;

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use crate::state::AppState;

/// A readiness check that takes longer than this counts as failing: the probe answers within
/// about this long whatever the state of the backends.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /healthz` → 200 `{"status": "ok"}` while the server is up (liveness: restart me only if
/// this fails).
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz` → 200 `{"status": "ready"}` when the store answers and, with several nodes,
/// Redis is connected; else 503 `{"status": "not_ready", "failing": ["store", "redis"]}`.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut failing = Vec::new();
    let store = tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await;
    if !matches!(store, Ok(Ok(()))) {
        failing.push("store");
    }
    if state.redis.as_ref().is_some_and(|link| !link.is_up()) {
        failing.push("redis");
    }
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "failing": failing })),
        )
    }
}
