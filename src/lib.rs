//! threadline: a realtime chat server that Socket.IO clients of the Express stub can point at
//! unchanged.
//!
//! # Layout
//! A request flows one way: `http` or `realtime` handler → `chat` → `store` → broadcast.
//!
//! - [`config`]: command line and environment.
//! - [`telemetry`]: log output.
//! - [`app`]: builds the router and the Socket.IO layer; `serve(listener, app, shutdown)`.
//! - [`state`]: the handles every handler gets.
//! - [`auth`]: who is speaking: `open` mode, or verified JWTs.
//! - [`limits`]: rate limits and connection caps.
//! - [`error`]: `ApiError`, the one error type and its JSON body.
//! - [`domain`]: ids, threads, messages, accounts, files: validated types.
//! - [`store`]: the `Store` trait and its backends (in-memory by default).
//! - [`blobs`]: uploaded bytes on disk.
//! - [`demo`]: the messenger README's sample world (`--demo`).
//! - [`chat`]: where a message is created, stored and broadcast.
//! - [`views`]: the JSON shapes clients see, shared by REST and Socket.IO.
//! - [`pagination`]: the accounts API's bidirectional cursors.
//! - [`http`]: REST routes, one module per resource.
//! - [`realtime`]: Socket.IO events at `/ws`.

pub mod app;
pub mod auth;
pub mod blobs;
pub mod chat;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod pagination;
pub mod realtime;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod views;
