//! `GET /metrics` (Prometheus text format), and the layer that counts and times every request
//! by its route template.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    metrics::{CONTENT_TYPE, HttpLabels, RouteLabels},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every metric, in the Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render().await,
    )
}

/// Counts and times each request under its route template (`/api/threads/{thread_id}`), never
/// its raw path: ids in labels would grow the series without bound. Requests no route matched
/// share the label `unmatched`.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = label_of(request.method());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Standard methods by name, any other as `other`: a client cannot mint label values.
fn label_of(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
