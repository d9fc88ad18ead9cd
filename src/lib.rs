//! threadline: a realtime chat server that Socket.IO clients of the Express stub can point at
//! unchanged.
//!
//! # Layout
//! A request flows one way: `http` or `realtime` handler → `chat` → `store` → `fanout` →
//! sockets. A module never imports one above it; news flows back up through a trait the upper
//! layer implements (`fanout::Sink`, `fanout::Peers`).
//!
//! - [`server`]: the connection loop: a cap on connections, idle timeouts, graceful shutdown.
//! - [`app`]: builds the router and the Socket.IO layer as one service.
//! - [`http`]: REST routes, one module per resource; the HTTP face of errors and extractors.
//! - [`realtime`]: Socket.IO at `/ws`: handshake, the event table, the fan-out's sink, peers.
//! - [`state`]: the handles every handler gets.
//! - [`chat`]: the access gate and the message lifecycle: check → validate → store → fan-out.
//! - [`fanout`]: per-thread order of message events, for one node or many; catch-up.
//! - [`views`]: the JSON shapes clients see, shared by REST and Socket.IO.
//! - [`pagination`]: the accounts API's bidirectional cursors.
//! - [`demo`]: the messenger README's sample world (`--demo`).
//! - [`store`]: the `Store` trait and its backends (in-memory by default).
//! - [`blobs`]: uploaded bytes on disk.
//! - [`uploads`]: finishes or fails uploads a crash left `processing`.
//! - [`auth`]: verifies JWTs (`jwt` mode).
//! - [`limits`]: rate limits and connection caps.
//! - [`metrics`]: what `GET /metrics` reports: counters, histograms, live figures.
//! - [`readiness`]: the state of the link to Redis, for `/readyz` and the logs.
//! - [`error`]: `ApiError`, the one transport-neutral error: a code and a message.
//! - [`domain`]: ids, threads, messages, accounts, files, the acting `Actor`: validated types.
//! - [`config`]: command line and environment, its vocabulary (rates, settings), validation.
//! - [`telemetry`]: log output.

pub mod app;
pub mod auth;
pub mod blobs;
pub mod chat;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod fanout;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod pagination;
pub mod readiness;
pub mod realtime;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod uploads;
pub mod views;
pub mod webhooks;
