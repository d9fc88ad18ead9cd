//! The benchmark scenarios. Every loop is bounded in count and time.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    Result, eio,
    rest::{Rest, json_str},
    target::Target,
};

/// Source addresses for client sockets: 127.0.0.2 … 127.0.0.201.
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

async fn create_threads(target: &Target, n: usize, tag: &str) -> Result<Vec<String>> {
    let mut rest = Rest::connect(target.addr).await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(rest.create_thread([&format!("{tag}-{i}"), "bench"]).await?);
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// 1. Held connections

pub struct Held {
    pub clients: usize,
    pub joined: usize,
    pub failed: usize,
    pub connect_per_sec: f64,
    pub bytes_per_conn: f64,
    pub rss_before: u64,
    pub rss_after: u64,
}

/// `n` sockets connect and emit `thread:join` the moment the namespace CONNECT arrives, then
/// stay idle (answering pings). Reports joins acked and server RSS per held connection.
pub async fn held(
    target: &Target,
    n: usize,
    threads: usize,
    handshake: eio::Handshake,
) -> Result<Held> {
    let thread_ids = Arc::new(create_threads(target, threads, "held").await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = target.rss();
    let token = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(512));
    let joined = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let (addr, threads, token) = (target.addr, thread_ids.clone(), token.clone());
        let (joined, failed, done) = (joined.clone(), failed.clone(), done_tx.clone());
        tasks.spawn(async move {
            let attempt = async {
                let mut ws = eio::connect_with(addr, source(i), handshake).await?;
                let payload = format!(r#"{{"threadId":"{}"}}"#, threads[i % threads.len()]);
                let ack = eio::emit_with_ack(&mut ws, 0, "thread:join", &payload).await?;
                Ok::<_, crate::Error>((ws, ack))
            };
            let result = tokio::time::timeout(Duration::from_secs(30), attempt).await;
            drop(permit);
            let mut ws = match result {
                Ok(Ok((ws, ack))) if ack.contains("\"ok\":true") => {
                    joined.fetch_add(1, Ordering::Relaxed);
                    ws
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let _ = done.send(()).await;
                    return;
                }
            };
            let _ = done.send(()).await;
            // Hold the connection, answering pings, until the scenario ends.
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                            if ws.send(Message::text("3")).await.is_err() { break; }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
            let _ = ws.close(None).await;
        });
    }
    drop(done_tx);
    let mut finished = 0;
    while finished < n {
        match tokio::time::timeout(Duration::from_secs(60), done_rx.recv()).await {
            Ok(Some(())) => finished += 1,
            _ => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = target.rss();
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let joined = joined.load(Ordering::Relaxed) as usize;
    Ok(Held {
        clients: n,
        joined,
        failed: failed.load(Ordering::Relaxed) as usize,
        connect_per_sec: joined as f64 / elapsed,
        bytes_per_conn: (rss_after.saturating_sub(rss_before)) as f64 / joined.max(1) as f64,
        rss_before,
        rss_after,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Fan-out

pub struct FanOut {
    pub posts: u64,
    pub post_errors: u64,
    pub seconds: f64,
    pub delivered: u64,
    pub expected: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub latency: Histogram<u64>,
    /// Send → answer: the 201 of a REST post, the ack of a `message:send`.
    pub answer: Histogram<u64>,
    pub cpu_seconds: f64,
}

impl FanOut {
    pub fn posts_per_sec(&self) -> f64 {
        self.posts as f64 / self.seconds
    }
    pub fn deliveries_per_sec(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }
    /// Server CPU per delivered message, microseconds.
    pub fn cpu_us_per_delivery(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.delivered.max(1) as f64
    }
}

struct Inbox {
    thread: usize,
    seen: Vec<u64>,
    received: u64,
    latency: Histogram<u64>,
}

impl Inbox {
    fn record(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let fresh = self.seen[word] & (1 << bit) == 0;
        self.seen[word] |= 1 << bit;
        fresh
    }
}

/// Reads `s<seq>t<micros>` out of a `message:new` frame without parsing the whole JSON.
fn stamp(frame: &str) -> Option<(u64, u64)> {
    let start = frame.find("\"body\":\"s")? + 9;
    let rest = &frame[start..];
    let t = rest.find('t')?;
    let end = rest.find('"')?;
    Some((rest[..t].parse().ok()?, rest[t + 1..end].parse().ok()?))
}

/// How posters send their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    /// `POST /api/threads/:id/messages` over keep-alive HTTP/1.1.
    Rest,
    /// `message:send` with an ack, over a websocket.
    Socket,
}

/// `threads` × `clients` sockets joined to `target`; `posters` connections post to
/// `post_to` (the same server, or another node) for `seconds`, either
/// as fast as answers come back (`rate == None`) or at `rate` posts per second in total.
/// The shape of a fan-out run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub threads: usize,
    pub clients: usize,
    pub posters: usize,
    /// Total posts per second; `None` posts as fast as answers come back.
    pub rate: Option<f64>,
    pub seconds: f64,
    pub send: Send,
}

pub async fn fan_out(target: &Target, post_to: &Target, load: Load) -> Result<FanOut> {
    let Load {
        threads,
        clients,
        posters,
        rate,
        seconds,
        send,
    } = load;
    let thread_ids =
        Arc::new(create_threads(target, threads, &format!("fan-{}", rate.unwrap_or(0.0))).await?);
    let base = Instant::now();
    let token = CancellationToken::new();
    let mut readers = JoinSet::new();
    let mut ready = Vec::new();
    for i in 0..threads * clients {
        let thread = i % threads;
        let (addr, ids, token) = (target.addr, thread_ids.clone(), token.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<bool>();
        ready.push(ready_rx);
        readers.spawn(async move {
            let mut inbox = Inbox {
                thread,
                seen: Vec::new(),
                received: 0,
                latency: histogram(),
            };
            let joined = async {
                let mut ws = eio::connect(addr, source(i)).await?;
                let payload = format!(r#"{{"threadId":"{}"}}"#, ids[thread]);
                let ack = eio::emit_with_ack(&mut ws, 0, "thread:join", &payload).await?;
                Ok::<_, crate::Error>((ws, ack.contains("\"ok\":true")))
            }
            .await;
            let mut ws = match joined {
                Ok((ws, true)) => {
                    let _ = ready_tx.send(true);
                    ws
                }
                _ => {
                    let _ = ready_tx.send(false);
                    return inbox;
                }
            };
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            let t = t.as_str();
                            if t == "2" {
                                if ws.send(Message::text("3")).await.is_err() { break; }
                            } else if let Some((seq, sent)) = stamp(t) {
                                let now = base.elapsed().as_micros() as u64;
                                inbox.received += 1;
                                if inbox.record(seq) {
                                    let _ = inbox.latency.record(now.saturating_sub(sent).max(1));
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
            let _ = ws.close(None).await;
            inbox
        });
    }
    for r in ready {
        if !r.await.unwrap_or(false) {
            return Err("a fan-out client could not join".into());
        }
    }

    let seq = Arc::new(AtomicU64::new(0));
    let per_thread: Arc<Vec<AtomicU64>> =
        Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut posting = JoinSet::new();
    for _ in 0..posters {
        let (addr, ids, seq, per_thread, errors) = (
            post_to.addr,
            thread_ids.clone(),
            seq.clone(),
            per_thread.clone(),
            errors.clone(),
        );
        posting.spawn(async move {
            let mut rest = match send {
                Send::Rest => Some(Rest::connect(addr).await?),
                Send::Socket => None,
            };
            let mut ws = match send {
                Send::Socket => Some(eio::connect(addr, source(0)).await?),
                Send::Rest => None,
            };
            let mut tick = rate.map(|r| {
                let mut t = tokio::time::interval(Duration::from_secs_f64(posters as f64 / r));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                t
            });
            let mut ack_id = 0u64;
            let mut answer = histogram();
            while Instant::now() < deadline {
                if let Some(tick) = tick.as_mut() {
                    tick.tick().await;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let thread = (n as usize) % ids.len();
                let body = format!("s{n}t{}", base.elapsed().as_micros());
                let sent = Instant::now();
                let stored = match (&mut rest, &mut ws) {
                    (Some(rest), _) => matches!(
                        rest.post(
                            &format!("/api/threads/{}/messages", ids[thread]),
                            format!(r#"{{"body":"{body}"}}"#),
                        )
                        .await,
                        Ok((201, _))
                    ),
                    (_, Some(ws)) => {
                        ack_id += 1;
                        let payload =
                            format!(r#"{{"threadId":"{}","body":"{body}"}}"#, ids[thread]);
                        eio::emit_with_ack(ws, ack_id, "message:send", &payload)
                            .await
                            .is_ok_and(|ack| ack.contains("\"ok\":true"))
                    }
                    _ => false,
                };
                if stored {
                    let _ = answer.record(sent.elapsed().as_micros() as u64);
                    per_thread[thread].fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, crate::Error>(answer)
        });
    }
    let mut answer = histogram();
    while let Some(done) = posting.join_next().await {
        answer.add(&done??)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let expected_per_thread: Vec<u64> = per_thread
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let expected: u64 = expected_per_thread.iter().sum::<u64>() * clients as u64;
    // Let the last deliveries land (bounded), then measure and stop.
    let settle = Instant::now();
    let cpu_after;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cpu = target.cpu_seconds();
        let quiet = settle.elapsed() > Duration::from_secs(1);
        if quiet || settle.elapsed() > Duration::from_secs(5) {
            cpu_after = cpu;
            break;
        }
    }
    token.cancel();
    let mut latency = histogram();
    let (mut delivered, mut received_total, mut lost) = (0u64, 0u64, 0u64);
    while let Some(inbox) = readers.join_next().await {
        let inbox = inbox?;
        let unique: u64 = inbox.seen.iter().map(|w| u64::from(w.count_ones())).sum();
        delivered += unique;
        received_total += inbox.received;
        lost += expected_per_thread[inbox.thread].saturating_sub(unique);
        latency.add(&inbox.latency)?;
    }
    Ok(FanOut {
        posts: seq.load(Ordering::Relaxed) - errors.load(Ordering::Relaxed),
        post_errors: errors.load(Ordering::Relaxed),
        seconds,
        delivered,
        expected,
        lost,
        duplicated: received_total - delivered,
        latency,
        answer,
        cpu_seconds: cpu_after - cpu_before,
    })
}

// ---------------------------------------------------------------------------------------------
// 4. Replay

pub struct Replay {
    pub rounds: usize,
    /// `thread:join {since}` sent → every replayed `message:new` and the ack received.
    pub latency: Histogram<u64>,
    pub cpu_seconds: f64,
}

impl Replay {
    /// Server CPU per replay, milliseconds.
    pub fn cpu_ms_per_replay(&self) -> f64 {
        self.cpu_seconds * 1e3 / self.rounds.max(1) as f64
    }
}

/// A reconnecting client's catch-up: `n` messages posted after `since`, then `rounds` fresh
/// websocket sessions each join with `since` and read the whole replay.
pub async fn replay(target: &Target, n: usize, rounds: usize) -> Result<Replay> {
    let thread = create_threads(target, 1, "replay").await?.remove(0);
    let mut rest = Rest::connect(target.addr).await?;
    let path = format!("/api/threads/{thread}/messages");
    let (_, first) = rest.post(&path, r#"{"body":"seen"}"#.into()).await?;
    let since = json_str(&first, "id").ok_or("no id")?;
    for i in 0..n {
        let (status, _) = rest.post(&path, format!(r#"{{"body":"r{i}"}}"#)).await?;
        if status != 201 {
            return Err(format!("post: {status}").into());
        }
    }
    let payload = format!(r#"{{"threadId":"{thread}","since":"{since}"}}"#);
    let mut latency = histogram();
    let cpu_before = target.cpu_seconds();
    for round in 0..rounds {
        let mut ws = eio::connect(target.addr, source(round)).await?;
        let started = Instant::now();
        ws.send(tokio_tungstenite::tungstenite::Message::text(format!(
            "420[\"thread:join\",{payload}]"
        )))
        .await?;
        let mut replayed = 0;
        loop {
            let packet = eio::next_text(&mut ws).await?;
            if packet.starts_with("42[\"message:new\"") {
                replayed += 1;
            } else if let Some(ack) = packet.strip_prefix("430") {
                if !ack.contains(&format!("\"replayed\":{n}")) || replayed != n {
                    return Err(format!("replay: {replayed} events, ack {ack}").into());
                }
                break;
            } else {
                eio::answer_ping(&mut ws, &packet).await?;
            }
        }
        latency.record(started.elapsed().as_micros() as u64)?;
        let _ = ws.close(None).await;
    }
    Ok(Replay {
        rounds,
        latency,
        cpu_seconds: target.cpu_seconds() - cpu_before,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. History

pub struct History {
    pub messages: usize,
    /// Sustained inserts per second over REST (8 concurrent posters).
    pub inserts_per_sec: f64,
    pub walked: usize,
    pub gaps_or_duplicates: usize,
    pub first_page: Histogram<u64>,
    pub last_page: Histogram<u64>,
}

/// A thread of `n` messages; the first and the last page of 50, each fetched `samples` times.
pub async fn history(target: &Target, n: usize, samples: usize) -> Result<History> {
    let thread = create_threads(target, 1, "history").await?.remove(0);
    let inserters = 8;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..inserters {
        let (addr, thread) = (target.addr, thread.clone());
        tasks.spawn(async move {
            let mut rest = Rest::connect(addr).await?;
            let mut ids = Vec::new();
            for i in (w..n).step_by(inserters) {
                let (status, body) = rest
                    .post(
                        &format!("/api/threads/{thread}/messages"),
                        format!(r#"{{"body":"h{i}"}}"#),
                    )
                    .await?;
                if status != 201 {
                    return Err(format!("insert: {status}").into());
                }
                ids.push(json_str(&body, "id").ok_or("no id")?);
            }
            Ok::<_, crate::Error>(ids)
        });
    }
    let mut acknowledged = std::collections::HashSet::new();
    while let Some(ids) = tasks.join_next().await {
        acknowledged.extend(ids??);
    }
    let inserts_per_sec = acknowledged.len() as f64 / started.elapsed().as_secs_f64();

    // Walk it all: every acknowledged message exactly once.
    let mut rest = Rest::connect(target.addr).await?;
    let mut walked: Vec<String> = Vec::with_capacity(n);
    let mut cursor: Option<String> = None;
    for _ in 0..(n / 200 + 2) {
        let path = match &cursor {
            None => format!("/api/threads/{thread}/messages?limit=200"),
            Some(c) => format!("/api/threads/{thread}/messages?limit=200&cursor={c}"),
        };
        let (_, body) = rest.get(&path).await?;
        let text = std::str::from_utf8(&body)?;
        walked.extend(
            text.split("{\"id\":\"")
                .skip(1)
                .filter_map(|chunk| chunk.split('"').next().map(str::to_owned)),
        );
        cursor = json_str(&body, "nextCursor");
        if cursor.is_none() {
            break;
        }
    }
    let unique: std::collections::HashSet<&String> = walked.iter().collect();
    let gaps_or_duplicates = (walked.len() - unique.len())
        + acknowledged
            .iter()
            .filter(|id| !unique.contains(id))
            .count();

    let mut first_page = histogram();
    let mut last_page = histogram();
    let last_cursor = walked
        .get(n.saturating_sub(51))
        .cloned()
        .unwrap_or_default();
    for _ in 0..samples {
        let t = Instant::now();
        rest.get(&format!("/api/threads/{thread}/messages?limit=50"))
            .await?;
        first_page.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        rest.get(&format!(
            "/api/threads/{thread}/messages?limit=50&cursor={last_cursor}"
        ))
        .await?;
        last_page.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(History {
        messages: acknowledged.len(),
        inserts_per_sec,
        walked: walked.len(),
        gaps_or_duplicates,
        first_page,
        last_page,
    })
}
