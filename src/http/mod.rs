//! The REST API: one module per resource, each exposing `router()`, merged here with the
//! cross-cutting layers (request logging, body limits, JSON 404/405).

pub mod accounts;
pub mod conversations;
pub mod error;
pub mod extract;
pub mod files;
pub mod health;
pub mod messages;
pub mod metrics;
mod openapi;
mod pages;
pub mod reactions;
pub mod search;
pub mod threads;

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderValue, header},
    response::Response,
};
use tower_http::{
    services::ServeFile, set_header::SetResponseHeaderLayer, timeout::RequestBodyTimeoutLayer,
    trace::TraceLayer,
};
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{error::ApiError, state::AppState};

/// 201 when a request created something, 200 when it found what already existed (a thread with
/// the same members, an idempotent retry).
pub fn created_or_found(created: bool) -> axum::http::StatusCode {
    if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    }
}

/// Every route of the REST API with its OpenAPI description: the router and the document come
/// from the same registrations, so neither can list a route the other lacks.
pub fn api(max_upload_bytes: u64) -> OpenApiRouter<AppState> {
    // Threads, messages, files and accounts are private to their caller: no cache keeps them.
    let private = OpenApiRouter::new()
        .merge(threads::router())
        .merge(messages::router())
        .merge(reactions::router())
        .merge(search::router())
        .merge(accounts::router())
        .merge(conversations::router())
        .merge(files::router(max_upload_bytes))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(metrics::router())
        .merge(private)
}

/// The OpenAPI document of [`api`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api(0).split_for_parts().1
}

pub fn router(state: AppState) -> Router {
    let config = &state.config;
    let (api, document) = api(config.max_upload_bytes).split_for_parts();
    Router::new()
        .merge(api)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document))
        .route_service(
            "/demo/vendor/socket.io.min.js",
            ServeFile::new(pages::demo_bundle(&config.demo_dir)),
        )
        .nest_service("/demo", pages::demo(&config.demo_dir))
        .merge(match config.admin_ui {
            true => Router::new().nest_service(
                "/admin-ui",
                pages::admin_ui(pages::admin_ui_dist(&config.demo_dir)),
            ),
            false => Router::new(),
        })
        .fallback(|| async { ApiError::NotFound("not_found") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            config.http_body_timeout_ms,
        )))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .with_state(state)
}

/// Spans are keyed on the matched route (`/api/threads/{thread_id}`), not the raw path, so logs
/// group by endpoint; the raw path is kept as a field.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        path = %request.uri().path(),
    )
}

/// One line per request: method, route and path (from the span), status, latency.
fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_us = latency.as_micros() as u64,
        "served"
    );
}
