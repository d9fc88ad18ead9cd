//! How an [`ApiError`] looks over HTTP: a status, and the seeds' JSON body
//! `{"error": "<snake_case_code>", "message"?: "<for humans>"}`. A 5xx logs its cause here and
//! never sends it.

use std::borrow::Cow;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::error::ApiError;

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// A stable snake_case code (`thread_not_found`, `rate_limited`, …).
    #[schema(value_type = String)]
    error: &'a str,
    /// For humans; absent when the code says it all.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    message: Option<Cow<'a, str>>,
}

pub fn status(error: &ApiError) -> StatusCode {
    match error {
        ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::Conflict(_) => StatusCode::CONFLICT,
        ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let status = status(&self);
        let body = ErrorBody {
            error: self.code(),
            message: self.message(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::MethodNotAllowed => {
                headers.remove(header::ALLOW);
            }
            ApiError::RateLimited(limited) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(limited.retry_after_secs()),
                );
            }
            ApiError::Unavailable {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
