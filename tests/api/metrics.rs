//! `GET /metrics`: what a Prometheus scrape sees after real traffic over REST and `/ws`.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, eio, joined, next_text, spawn_app_with, ws};

/// The value of the sample `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_scrape_counts_posts_deliveries_requests_refusals_and_replays() {
    let app = spawn_app_with(|c| {
        c.post_rate_per_ip = Some(threadline::config::Setting::On("3/60s".parse().unwrap()))
    })
    .await;
    let thread = app.create_thread(&["me", "ann"]).await;
    let mut listeners = vec![
        joined(&app, &thread, eio::Open::default()).await,
        joined(&app, &thread, eio::Open::default()).await,
    ];
    for n in 0..3 {
        app.post_message(&thread, &format!("m{n}")).await;
    }
    for listener in &mut listeners {
        for _ in 0..3 {
            let text = next_text(listener, Duration::from_secs(5)).await.unwrap();
            assert!(text.starts_with(r#"42["message:new""#), "{text}");
        }
    }
    // The fourth post is over the rate.
    let refused = app
        .post_json(
            &format!("/api/threads/{thread}/messages"),
            serde_json::json!({"body": "m3"}),
        )
        .await;
    assert_eq!(refused.status, 429);
    // A rejoin that replays all three.
    let mut late = ws(&app, eio::Open::default()).await;
    late.send(Message::text("40")).await.unwrap();
    next_text(&mut late, Duration::from_secs(5)).await.unwrap();
    late.send(Message::text(format!(
        r#"421["thread:join",{{"threadId":"{thread}","after":0}}]"#
    )))
    .await
    .unwrap();
    while !next_text(&mut late, Duration::from_secs(5))
        .await
        .unwrap()
        .starts_with("431")
    {}

    let text = scrape(&app).await;
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(value("threadline_messages_posted_total"), 3.0);
    assert_eq!(value("threadline_deliveries_total"), 6.0);
    assert_eq!(
        value(
            r#"threadline_http_requests_total{method="POST",route="/api/threads/{thread_id}/messages",status="201"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            r#"threadline_http_requests_total{method="POST",route="/api/threads/{thread_id}/messages",status="429"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"threadline_rate_limited_total{limit="posts_per_ip"}"#),
        1.0
    );
    assert_eq!(
        value(r#"threadline_http_request_duration_seconds_count{route="/api/threads"}"#),
        1.0
    );
    let backend = match std::env::var("THREADLINE_TEST_DATABASE").as_deref() {
        Ok("sqlite") => "sqlite",
        Ok(url) if url.starts_with("postgres") => "postgres",
        _ => "memory",
    };
    assert!(
        value(&format!(
            r#"threadline_store_operation_duration_seconds_count{{operation="append_message",backend="{backend}"}}"#
        )) >= 3.0
    );
    assert_eq!(value("threadline_replay_messages_count"), 1.0);
    assert_eq!(value("threadline_replay_messages_sum"), 3.0);
    assert_eq!(
        value(r#"threadline_sockets_connected{transport="websocket"}"#),
        3.0
    );
    assert_eq!(value("threadline_rooms"), 1.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_cpu_seconds_total") > 0.0);
    // Labels carry route templates, never ids; no Redis, no Redis gauge.
    assert!(!text.contains(&thread), "a thread id in a label:\n{text}");
    assert!(!text.contains("threadline_redis_up"));
}

#[tokio::test]
async fn unknown_paths_and_methods_cannot_mint_label_values() {
    let app = spawn_app_with(|_| {}).await;
    for n in 0..5 {
        let path = format!("/no/such/path/{n}");
        assert_eq!(app.get(&path).await.status, 404);
        let odd = reqwest::Method::from_bytes(format!("VERB{n}").as_bytes()).unwrap();
        app.request(odd, "/healthz").await;
    }
    let text = scrape(&app).await;
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(!text.contains("VERB"), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"threadline_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(5.0)
    );
}
