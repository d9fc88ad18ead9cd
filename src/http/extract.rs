//! axum's extractors, with their rejections turned into [`ApiError`]s, so malformed input gets
//! the same JSON error shape as every other failure.

use axum::{
    extract::{
        FromRequest, FromRequestParts,
        multipart::MultipartRejection,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
};

use crate::{
    domain::{Actor, ClientMessageId, UserId},
    error::ApiError,
    state::AppState,
};

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(
            axum::extract::Multipart::from_request(req, state).await?,
        ))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::bad_request("invalid_body", e.body_text()),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("invalid_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            JsonRejection::BytesRejection(e) if body_timed_out(&e) => ApiError::BodyTimeout,
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

/// Whether reading a request body failed because it stalled (`http::router`'s body timeout).
pub fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::BAD_REQUEST
                if rejection.body_text().contains("boundary") =>
            {
                ApiError::UnsupportedMediaType("expected `multipart/form-data`".into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            _ => ApiError::bad_request("invalid_multipart", rejection.body_text()),
        }
    }
}

/// Who is making the request.
///
/// In `open` mode a trusted gateway names the user in `X-User-Id`, and a request naming nobody
/// is `"me"`, as in the stub; no access rule applies. In `jwt` mode the bearer token's subject is
/// the caller (`X-User-Id` is ignored), and `chat` applies the access rules.
impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = state.limits.client_ip(&parts.headers, &parts.extensions);
        if let Some(auth) = &state.auth {
            let header = parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            return auth
                .verify_bearer(header)
                .map(|user| Self {
                    user,
                    verified: true,
                    ip,
                })
                .map_err(|e| ApiError::Unauthorized(e.code()));
        }
        let user = match parts.headers.get("x-user-id") {
            None => UserId::anonymous(),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|raw| UserId::parse(raw).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_user_id", "X-User-Id is not a valid id")
                })?,
        };
        Ok(Self {
            user,
            verified: false,
            ip,
        })
    }
}

/// The standard `Idempotency-Key` header, when present.
pub struct IdempotencyKey(pub Option<ClientMessageId>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(None)),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(ClientMessageId::parse)
                .map(|key| Self(Some(key)))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 128 printable characters",
                    )
                }),
        }
    }
}

/// The idempotency key of a post: `clientMessageId` in the body, else the header.
pub fn client_message_id(
    body: Option<&str>,
    header: IdempotencyKey,
) -> Result<Option<ClientMessageId>, ApiError> {
    match body {
        None => Ok(header.0),
        Some(raw) => ClientMessageId::parse(raw).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_client_message_id",
                "clientMessageId must be 1 to 128 printable characters",
            )
        }),
    }
}
