//! Many writers on one thread: nothing lost, nothing reordered.

use std::collections::HashSet;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_to_one_thread_keep_count_and_order() {
    const TASKS: usize = 8;
    const POSTS: usize = 500;
    let app = std::sync::Arc::new(spawn_app().await);
    let thread = app.create_thread(&["a", "b"]).await;

    let mut writers = Vec::new();
    for task in 0..TASKS {
        let app = app.clone();
        let thread = thread.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(POSTS);
            for n in 0..POSTS {
                let m = app.post_message(&thread, &format!("{task}:{n}")).await;
                ids.push(m["id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut acknowledged = HashSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(acknowledged.len(), TASKS * POSTS, "ids are unique");

    let history = app.all_messages(&thread, 200).await;
    assert_eq!(
        history.len(),
        TASKS * POSTS,
        "nothing lost, nothing duplicated"
    );
    let stored: HashSet<String> = history
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, acknowledged, "every acknowledged message is stored");

    // Each writer posted sequentially, so its messages must appear in its own order.
    let mut next = [0usize; TASKS];
    for m in &history {
        let (task, n) = m["body"].as_str().unwrap().split_once(':').unwrap();
        let (task, n): (usize, usize) = (task.parse().unwrap(), n.parse().unwrap());
        assert_eq!(n, next[task], "writer {task} reordered");
        next[task] += 1;
    }
    // And createdAt never goes backwards in stored order.
    let times: Vec<&str> = history
        .iter()
        .map(|m| m["createdAt"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}
