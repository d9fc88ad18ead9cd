//! Liveness.

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// `GET /healthz` → 200 `{"status": "ok"}` while the server is up.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
