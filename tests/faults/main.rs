//! Real faults on running servers (each a process of its own): `kill -9`, Redis stopped and
//! restarted under several nodes, a node started while Redis is down, the database cut off,
//! a full disk, uploads interrupted.

#[allow(dead_code)] // this binary uses a few of the API tests' helpers
#[path = "../api/helpers/mod.rs"]
mod helpers;

mod crash;
mod full_disk;
mod postgres;
mod redis;
mod uploads;

use serde_json::Value;

/// Every message of `thread` on the server at `base`, oldest first, following `nextCursor`
/// (each page must answer 200).
pub async fn all_messages(http: &reqwest::Client, base: &str, thread: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let reply = http
            .get(format!(
                "{base}/api/threads/{thread}/messages?limit=200{after}"
            ))
            .send()
            .await
            .expect("GET messages");
        assert_eq!(reply.status(), 200, "a history page");
        let page: Value = reply.json().await.expect("a page");
        messages.extend(
            page["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .cloned(),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return messages,
        }
    }
}

/// The ids of [`all_messages`].
pub async fn all_message_ids(http: &reqwest::Client, base: &str, thread: &str) -> Vec<String> {
    all_messages(http, base, thread)
        .await
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_owned())
        .collect()
}
