//! Pages served from npm packages in the demo directory: the demo chat page and the Admin UI
//! say what to install when their package is missing, and work once it is there.

use std::fs;

use crate::{admin_ui::admin_app, helpers::TestApp};

/// A demo directory with the page's own files, and optionally the npm packages' files.
fn demo_dir(with_packages: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("browser")).unwrap();
    fs::write(
        dir.path().join("browser/index.html"),
        "<!doctype html><title>chat</title>",
    )
    .unwrap();
    fs::write(dir.path().join("browser/chat.js"), "// chat").unwrap();
    if with_packages {
        let bundle = dir.path().join("node_modules/socket.io-client/dist");
        fs::create_dir_all(&bundle).unwrap();
        fs::write(bundle.join("socket.io.min.js"), "// io").unwrap();
        let ui = dir.path().join("node_modules/@socket.io/admin-ui/ui/dist");
        fs::create_dir_all(ui.join("js")).unwrap();
        fs::write(
            ui.join("index.html"),
            "<!DOCTYPE html><html><head><title>Admin</title></head></html>",
        )
        .unwrap();
        fs::write(ui.join("js/app.js"), "// app").unwrap();
    }
    dir
}

/// A server with the Admin UI on, serving pages from such a directory (kept alive with it).
async fn serving(with_packages: bool) -> (tempfile::TempDir, TestApp) {
    let dir = demo_dir(with_packages);
    let path = dir.path().to_owned();
    (dir, admin_app(move |c| c.demo_dir = path).await)
}

#[tokio::test]
async fn without_their_packages_the_pages_say_what_to_install() {
    let (_dir, app) = serving(false).await;
    for page in ["/demo/", "/admin-ui/"] {
        let response = app.http.get(app.url(page)).send().await.unwrap();
        assert_eq!(response.status(), 503, "{page}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains("(cd client-examples &amp;&amp; npm install)"),
            "{page}: {text}"
        );
    }
    // The page's own files are still served.
    assert_eq!(app.get("/demo/chat.js").await.status, 200);
}

#[tokio::test]
async fn with_their_packages_the_pages_are_served() {
    let (_dir, app) = serving(true).await;
    let demo = app.http.get(app.url("/demo/")).send().await.unwrap();
    assert_eq!(demo.status(), 200);
    assert!(demo.text().await.unwrap().contains("<title>chat</title>"));
    assert_eq!(app.get("/demo/vendor/socket.io.min.js").await.status, 200);
    let ui = app.http.get(app.url("/admin-ui/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    let html = ui.text().await.unwrap();
    // The connection form comes preset to this server and its path.
    assert!(
        html.contains(r#"localStorage.setItem("path","/ws")"#),
        "{html}"
    );
    assert!(html.contains("<title>Admin</title>"));
    assert_eq!(app.get("/admin-ui/js/app.js").await.status, 200);
}
