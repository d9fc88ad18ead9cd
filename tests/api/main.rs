//! The API test suite, one binary: the real server on an ephemeral loopback port, driven over
//! REST with an HTTP client and over `/ws` with raw Socket.IO sessions. The JavaScript suites
//! (`tests/js`, the real socket.io-client) run from `tests/run.sh`; the crash test is apart
//! (`tests/crash.rs`) because it kills processes.

mod helpers;

mod accounts;
mod admin_ui;
mod auth;
mod bad_input;
mod bench_data;
mod chat_features;
mod concurrency;
mod connections;
mod files;
mod garbage_wire;
mod hardening;
mod idempotency;
mod limits;
mod metrics;
mod openapi;
mod pages;
mod pagination;
mod presence_wire;
mod readme_demo;
mod slow_consumer;
mod threads;
