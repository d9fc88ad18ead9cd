//! `GET /openapi.json` and `GET /docs`: the document lists every route the router serves, and
//! every route it lists is served.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(method, path template)` of every operation in the document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_documented_route_is_served_under_its_template() {
    let app = spawn_app().await;
    let reply = app.get("/openapi.json").await;
    assert_eq!(reply.status, 200);
    let document = reply.body;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let documented = operations(&document);
    assert!(documented.len() >= 25, "{documented:?}");
    // Each operation, called with made-up ids: whatever the answer, the router matched it to
    // the documented template (the metrics label requests by the template they matched).
    for (method, path) in &documented {
        let concrete = path
            .replace("{account_id}", "1")
            .replace("{conversation_id}", "1")
            .replace("{thread_id}", "t1")
            .replace("{message_id}", "m1")
            .replace("{file_id}", "f1");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let status = app.request(method.clone(), &concrete).await.status;
        assert_ne!(status, 405, "{method} {concrete}");
    }
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (method, path) in &documented {
        let label = format!(r#"method="{method}",route="{path}","#);
        assert!(
            metrics.contains(&label),
            "{method} {path} was not matched to its template"
        );
    }
}

/// The other direction: no module registers a route outside the documented router. Routes are
/// added only through `utoipa_axum`'s `routes!`, which documents them; a plain axum `.route(`
/// in a resource module would be served and missing from the document.
#[test]
fn no_route_is_registered_outside_the_document() {
    let modules = [
        ("accounts.rs", include_str!("../../src/http/accounts.rs")),
        (
            "conversations.rs",
            include_str!("../../src/http/conversations.rs"),
        ),
        ("files.rs", include_str!("../../src/http/files.rs")),
        ("health.rs", include_str!("../../src/http/health.rs")),
        ("messages.rs", include_str!("../../src/http/messages.rs")),
        ("metrics.rs", include_str!("../../src/http/metrics.rs")),
        ("threads.rs", include_str!("../../src/http/threads.rs")),
    ];
    for (name, source) in modules {
        for needle in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(
                !source.contains(needle),
                "src/http/{name} registers a route with `{needle}`: use routes!()"
            );
        }
    }
    // In the module that assembles them, only what is not the REST API: the demo page and the
    // Admin UI's pages.
    let assembly = include_str!("../../src/http/mod.rs");
    let extra: Vec<&str> = assembly
        .lines()
        .filter(|line| line.contains(".route") || line.contains(".nest"))
        .map(str::trim)
        .collect();
    assert_eq!(
        extra,
        [
            ".route_service(",
            r#".nest_service("/demo", pages::demo(&config.demo_dir))"#,
            "true => Router::new().nest_service(",
        ],
        "a route outside the documented API"
    );
}

#[tokio::test]
async fn the_docs_page_works_offline() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet the page loads is served by this server, none from a CDN.
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset), "{asset} in {html}");
        assert!(!html.contains("http://") && !html.contains("https://"));
        let reply = app
            .http
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{asset}");
    }
    let init = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}
