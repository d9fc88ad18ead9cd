//! Pages from npm packages installed in the demo directory: the demo chat page at `/demo/`
//! (it needs socket.io-client's browser bundle) and, with `--admin-ui`, the Socket.IO Admin
//! UI at `/admin-ui/`, sent with its connection form already pointing at this server (`/ws`)
//! unless the browser has settings of its own. Without the package, the page says what to
//! install.

use std::{convert::Infallible, path::PathBuf};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use tower::{ServiceExt, service_fn, util::BoxCloneSyncService};
use tower_http::services::ServeDir;

/// Where npm puts the Admin UI's built pages, under the demo directory.
pub fn admin_ui_dist(demo_dir: &std::path::Path) -> PathBuf {
    demo_dir.join("node_modules/@socket.io/admin-ui/ui/dist")
}

/// Fills the UI's saved connection settings once: this origin, path `/ws`.
const PRESET: &str = r#"<script>if(!localStorage.getItem("server_url")){localStorage.setItem("server_url",location.origin);localStorage.setItem("path","/ws");}</script>"#;

const ADMIN_UI_MISSING: &str = "<!doctype html><meta charset=utf-8><title>Admin UI not installed</title>\
<h1>The Socket.IO Admin UI is not installed</h1>\
<p>Install it once, next to the demo page, then reload: \
<code>(cd client-examples &amp;&amp; npm install)</code></p>\
<p>Or use the hosted UI at <a href=\"https://admin.socket.io\">admin.socket.io</a> with this \
server's URL and path <code>/ws</code>.</p>";

const DEMO_MISSING: &str = "<!doctype html><meta charset=utf-8><title>Demo not installed</title>\
<h1>The demo page needs the Socket.IO client</h1>\
<p>Install it once in the threadline checkout, then reload this page: \
<code>(cd client-examples &amp;&amp; npm install)</code></p>";

/// Where socket.io-client's browser bundle is, under the demo directory.
pub fn demo_bundle(demo_dir: &std::path::Path) -> PathBuf {
    demo_dir.join("node_modules/socket.io-client/dist/socket.io.min.js")
}

/// The demo page's files; its page itself only once the client bundle is installed.
pub fn demo(
    demo_dir: &std::path::Path,
) -> BoxCloneSyncService<Request<Body>, Response, Infallible> {
    let files = ServeDir::new(demo_dir.join("browser"));
    let bundle = demo_bundle(demo_dir);
    BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
        let (files, bundle) = (files.clone(), bundle.clone());
        async move {
            if is_index(request.uri().path())
                && !tokio::fs::try_exists(&bundle).await.unwrap_or(false)
            {
                return Ok(missing(DEMO_MISSING));
            }
            match files.oneshot(request).await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(never) => match never {},
            }
        }
    }))
}

fn is_index(path: &str) -> bool {
    path.is_empty() || path == "/" || path == "/index.html"
}

/// 503: the page cannot work until the package is installed.
fn missing(page: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

/// The Admin UI's files, its page with the connection preset.
pub fn admin_ui(dir: PathBuf) -> BoxCloneSyncService<Request<Body>, Response, Infallible> {
    let files = ServeDir::new(dir.clone());
    BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
        let (files, index) = (files.clone(), dir.join("index.html"));
        async move {
            if is_index(request.uri().path()) {
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
        Err(_) => missing(ADMIN_UI_MISSING),
    }
}
