//! Logging: `RUST_LOG` filters, one line per request, text or JSON.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. The default filter logs requests and warnings, not the
/// per-packet chatter of the Socket.IO layers.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,socketioxide=warn,engineioxide=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr: stdout carries only the `listening on` line that scripts read.
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).init(),
    }
}
