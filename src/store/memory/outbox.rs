//! The memory store's webhook outbox: what a SQL store keeps in `webhook_outbox`, kept here
//! (one node, so a claim is just a mark).

use std::{collections::BTreeMap, time::Duration};

use crate::{
    domain::Timestamp,
    store::{Delivery, OutboxEvent},
};

struct Row {
    event: OutboxEvent,
    attempts: u32,
    due: Timestamp,
    claimed_until: Option<Timestamp>,
    failed: bool,
}

#[derive(Default)]
pub(super) struct Outbox {
    next: u64,
    rows: BTreeMap<u64, Row>,
}

impl Outbox {
    pub(super) fn record(&mut self, events: Vec<OutboxEvent>) {
        for event in events {
            self.next += 1;
            let due = event.at;
            self.rows.insert(
                self.next,
                Row {
                    event,
                    attempts: 0,
                    due,
                    claimed_until: None,
                    failed: false,
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
        // (endpoint, thread) lanes with an earlier event still undelivered.
        let mut blocked = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (&row, r) in self.rows.iter_mut() {
            if r.failed || !endpoints.contains(&r.event.endpoint) {
                continue;
            }
            let lane = r
                .event
                .thread
                .clone()
                .map(|t| (r.event.endpoint.clone(), t));
            let first_of_lane = match &lane {
                Some(lane) => blocked.insert(lane.clone()),
                None => true,
            };
            let free = r.claimed_until.is_none_or(|c| c < now);
            if first_of_lane && free && r.due <= now && out.len() < limit {
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

    pub(super) fn delivered(&mut self, row: u64) {
        self.rows.remove(&row);
    }

    pub(super) fn retry(&mut self, row: u64, attempts: u32, at: Timestamp) {
        if let Some(r) = self.rows.get_mut(&row) {
            r.attempts = attempts;
            r.due = at;
            r.claimed_until = None;
        }
    }

    pub(super) fn failed(&mut self, row: u64) {
        if let Some(r) = self.rows.get_mut(&row) {
            r.failed = true;
            r.claimed_until = None;
        }
    }

    pub(super) fn pending(&self, endpoints: &[String]) -> u64 {
        self.rows
            .values()
            .filter(|r| !r.failed && endpoints.contains(&r.event.endpoint))
            .count() as u64
    }
}
