//! Per-connection memory of the Engine.IO transport.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};

/// Gives Engine.IO requests owned copies of their URI and headers.
///
/// engineioxide keeps each session's request `Parts` for as long as the session lives. hyper
/// parsed those headers and that URI without copying, as slices of the connection's HTTP/1
/// read buffer, so every held connection would pin that whole buffer (up to 16 KiB) for hours.
/// Copying the few hundred bytes that matter lets the buffer go.
pub fn detach_engine_io_request<B>(request: Request<B>) -> Request<B> {
    if !request.uri().path().starts_with("/ws") {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    parts.headers = headers;
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}
