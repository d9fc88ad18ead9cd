//! threadline's load-generation toolkit, shared by the benchmark binary and the test suites:
//!
//! - [`eio`]: a raw Socket.IO v5 / Engine.IO v4 client over a websocket, far cheaper per
//!   message than socket.io-client, and able to misbehave on purpose (stall, send garbage).
//! - [`target`]: a server under test started as a child process on port 0, measured through
//!   `/proc` (RSS, CPU), killed on drop.
//! - [`db`]: fresh PostgreSQL databases and bulk loads in the product's schema.

pub mod db;
pub mod eio;
pub mod target;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;
