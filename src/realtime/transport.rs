//! Per-connection memory of the Engine.IO transport.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, header};

/// What an Engine.IO request keeps for the lifetime of its session.
///
/// engineioxide keeps each session's request `Parts` for as long as the session lives, and
/// chat sessions live for hours. Two things would make that costly:
/// - hyper parsed those headers and that URI without copying, as slices of the connection's
///   HTTP/1 read buffer, so every held connection would pin that whole buffer (up to 16 KiB);
/// - a browser's upgrade request carries a kilobyte or more of headers (user agent, languages,
///   cookies, extensions) that nothing reads once the session is open.
///
/// So the request keeps owned copies of its URI (the handshake's `token` query parameter) and
/// of the only headers read later: `Sec-WebSocket-Key`, which engineioxide answers the upgrade
/// with, and the client-address header when one is configured (rate limits read it).
#[derive(Clone)]
pub struct SessionRequest {
    kept: Arc<[HeaderName]>,
}

impl SessionRequest {
    /// Keeps `Sec-WebSocket-Key`, and `client_ip_header` when set.
    pub fn new(client_ip_header: Option<HeaderName>) -> Self {
        let kept: Vec<HeaderName> = std::iter::once(header::SEC_WEBSOCKET_KEY)
            .chain(client_ip_header)
            .collect();
        Self { kept: kept.into() }
    }

    /// The request as the session keeps it; requests outside `/ws` pass unchanged.
    pub fn detach<B>(&self, request: Request<B>) -> Request<B> {
        if !request.uri().path().starts_with("/ws") {
            return request;
        }
        let (mut parts, body) = request.into_parts();
        let mut headers = HeaderMap::new();
        for name in self.kept.iter() {
            for value in parts.headers.get_all(name) {
                // A fresh value: the parsed one may point into hyper's read buffer. The name is
                // ours already (a constant, or the configured header).
                if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                    headers.append(name.clone(), value);
                }
            }
        }
        parts.headers = headers;
        if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
            parts.uri = uri;
        }
        Request::from_parts(parts, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request(path: &str) -> Request<()> {
        Request::builder()
            .uri(path)
            .header("host", "chat.example")
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0")
            .header("cookie", "session=abc; theme=dark")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("x-forwarded-for", "203.0.113.7, 198.51.100.2")
            .body(())
            .unwrap()
    }

    #[test]
    fn a_session_keeps_only_the_headers_read_later() {
        let request = SessionRequest::new(None).detach(upgrade_request("/ws/?EIO=4&token=t"));
        let names: Vec<&str> = request.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["sec-websocket-key"]);
        assert_eq!(
            request.headers()[header::SEC_WEBSOCKET_KEY],
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert_eq!(request.uri().query(), Some("EIO=4&token=t"));
    }

    #[test]
    fn the_configured_client_address_header_is_kept() {
        let forwarded = HeaderName::from_static("x-forwarded-for");
        let request =
            SessionRequest::new(Some(forwarded.clone())).detach(upgrade_request("/ws/?EIO=4"));
        assert_eq!(request.headers().len(), 2);
        assert_eq!(request.headers()[forwarded], "203.0.113.7, 198.51.100.2");
    }

    #[test]
    fn rest_requests_pass_unchanged() {
        let request = SessionRequest::new(None).detach(upgrade_request("/api/threads"));
        assert_eq!(request.headers().len(), 5);
    }
}
