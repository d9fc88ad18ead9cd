//! The memory store's webhook outbox: what a SQL store keeps in `webhook_outbox`, kept here
//! (one node, so a claim is just a mark). Each (endpoint, thread) lane is a queue and only its
//! head can be claimed, so a claim looks at lane heads, never at the whole backlog.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    time::Duration,
};

use crate::{
    domain::{ThreadId, Timestamp},
    store::{Delivery, OutboxEvent, Settled},
};

type Lane = (String, ThreadId);

struct Row {
    event: OutboxEvent,
    attempts: u32,
    due: Timestamp,
    claimed_until: Option<Timestamp>,
}

#[derive(Default)]
pub(super) struct Outbox {
    next: u64,
    rows: HashMap<u64, Row>,
    /// Each lane's rows, oldest first; the front one is its head.
    lanes: HashMap<Lane, VecDeque<u64>>,
    /// The rows that may be claimed when due: lane heads, and events of no thread.
    heads: BTreeSet<u64>,
}

fn lane_of(event: &OutboxEvent) -> Option<Lane> {
    event
        .thread
        .clone()
        .map(|thread| (event.endpoint.clone(), thread))
}

impl Outbox {
    pub(super) fn record(&mut self, events: Vec<OutboxEvent>) {
        for event in events {
            self.next += 1;
            let row = self.next;
            match lane_of(&event) {
                Some(lane) => {
                    let queue = self.lanes.entry(lane).or_default();
                    if queue.is_empty() {
                        self.heads.insert(row);
                    }
                    queue.push_back(row);
                }
                None => {
                    self.heads.insert(row);
                }
            }
            let due = event.at;
            self.rows.insert(
                row,
                Row {
                    event,
                    attempts: 0,
                    due,
                    claimed_until: None,
                },
            );
        }
    }

    pub(super) fn claim(
        &mut self,
        endpoints: &[String],
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Vec<Delivery> {
        let until = Timestamp::from_millis(now.as_millis() + lease.as_millis() as i64);
        let mut out = Vec::new();
        for &row in &self.heads {
            if out.len() == limit {
                break;
            }
            let Some(r) = self.rows.get_mut(&row) else {
                continue;
            };
            let free = r.claimed_until.is_none_or(|c| c < now);
            if free && r.due <= now && endpoints.contains(&r.event.endpoint) {
                r.claimed_until = Some(until);
                out.push(Delivery {
                    row,
                    event: r.event.clone(),
                    attempts: r.attempts,
                });
            }
        }
        out
    }

    pub(super) fn settle(&mut self, settled: &[Settled]) {
        for s in settled {
            match *s {
                // Given up or delivered, the event leaves its lane; the next one is its head.
                Settled::Delivered(row) | Settled::Failed { row, .. } => self.remove(row),
                Settled::Retry { row, attempts, at } => {
                    if let Some(r) = self.rows.get_mut(&row) {
                        r.attempts = attempts;
                        r.due = at;
                        r.claimed_until = None;
                    }
                }
            }
        }
    }

    fn remove(&mut self, row: u64) {
        let Some(r) = self.rows.remove(&row) else {
            return;
        };
        self.heads.remove(&row);
        if let Some(lane) = lane_of(&r.event)
            && let Some(queue) = self.lanes.get_mut(&lane)
        {
            queue.retain(|&q| q != row);
            match queue.front() {
                Some(&next) => {
                    self.heads.insert(next);
                }
                None => {
                    self.lanes.remove(&lane);
                }
            }
        }
    }

    pub(super) fn pending(&self, endpoints: &[String]) -> u64 {
        self.rows
            .values()
            .filter(|r| endpoints.contains(&r.event.endpoint))
            .count() as u64
    }
}
