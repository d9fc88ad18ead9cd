use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use threadline::{app::App, config::Config, server, store, telemetry};

fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::init(config.log_format);
    // One worker means the current-thread scheduler: no work stealing, no cross-thread wakeups.
    let mut runtime = match config.workers {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> std::io::Result<()> {
    // Before anything opens a descriptor, and before the address is printed.
    server::raise_open_files_limit();
    let wanted = SocketAddr::new(config.host, config.port);
    let listener = server::bind(wanted, config.backlog).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => std::io::Error::new(
            e.kind(),
            format!(
                "port {} is already in use on {}: stop what holds it, or pick another with \
                 --port (or PORT)",
                wanted.port(),
                wanted.ip()
            ),
        ),
        _ => std::io::Error::new(e.kind(), format!("cannot listen on {wanted}: {e}")),
    })?;
    let addr = listener.local_addr()?;
    let store = store::open(config.database_url.as_deref())
        .await
        .map_err(|e| std::io::Error::other(format!("opening the store: {e}")))?;
    let app = App::build(config, store).await?;
    // Scripts and tests read the bound address (port 0 picks one) from this first stdout line.
    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening (Socket.IO at /ws)");
    server::serve(listener, app, server::shutdown_signal()).await
}
