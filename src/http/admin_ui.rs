//! The Socket.IO Admin UI's pages at `/admin-ui/` (with `--admin-ui`), from the
//! `@socket.io/admin-ui` package installed in the demo directory. Its page is sent with the
//! connection form already pointing at this server (`/ws`), unless the browser has settings
//! of its own; without the package, a page says what to install.

use std::{convert::Infallible, path::PathBuf};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use tower::{ServiceExt, service_fn, util::BoxCloneSyncService};
use tower_http::services::ServeDir;

/// Where npm puts the UI's built pages, under the demo directory.
pub fn dist(demo_dir: &std::path::Path) -> PathBuf {
    demo_dir.join("node_modules/@socket.io/admin-ui/ui/dist")
}

/// Fills the UI's saved connection settings once: this origin, path `/ws`.
const PRESET: &str = r#"<script>if(!localStorage.getItem("server_url")){localStorage.setItem("server_url",location.origin);localStorage.setItem("path","/ws");}</script>"#;

const MISSING: &str = "<!doctype html><meta charset=utf-8><title>Admin UI not installed</title>\
<h1>The Socket.IO Admin UI is not installed</h1>\
<p>Install it once, next to the demo page, then reload: \
<code>(cd client-examples &amp;&amp; npm install)</code></p>\
<p>Or use the hosted UI at <a href=\"https://admin.socket.io\">admin.socket.io</a> with this \
server's URL and path <code>/ws</code>.</p>";

pub fn service(dir: PathBuf) -> BoxCloneSyncService<Request<Body>, Response, Infallible> {
    let files = ServeDir::new(dir.clone());
    BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
        let (files, index) = (files.clone(), dir.join("index.html"));
        async move {
            let path = request.uri().path();
            if path == "/" || path.is_empty() || path == "/index.html" {
                return Ok(page(&index).await);
            }
            match files.oneshot(request).await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(never) => match never {},
            }
        }
    }))
}

async fn page(index: &std::path::Path) -> Response {
    match tokio::fs::read_to_string(index).await {
        Ok(html) => {
            let html = html.replacen("<head>", &format!("<head>{PRESET}"), 1);
            ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
        }
        Err(_) => (StatusCode::NOT_FOUND, Html(MISSING)).into_response(),
    }
}
