//! The HTTP/1.1 connection layer: accepts TCP connections up to a cap, closes the ones that are
//! idle or trickle their headers, and shuts down gracefully. The service it drives is the whole
//! product (`app::App`).

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::app::{App, Service};

/// Descriptors kept free for everything that is not a client connection (database pool, Redis,
/// upload files, logs).
const RESERVED_DESCRIPTORS: u64 = 256;

/// Binds with a listen backlog of `backlog` (tokio's `TcpListener::bind` uses 128, which a burst
/// of connecting clients overflows into 1 s SYN retries).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Raises the soft open-files limit to the hard one (many distributions start services at
/// 1,024, a few hundred clients) and returns the limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            None
        }
    }
}

/// How many connections to hold at once: the configured cap (by default, all that fit), lowered
/// to fit the open-files limit so the server never reaches it (past it, `accept` fails and
/// nothing is served).
fn connection_cap(configured: Option<usize>, open_files: Option<u64>) -> usize {
    const UNKNOWN_LIMIT: usize = 16_384;
    let Some(limit) = open_files else {
        return configured.unwrap_or(UNKNOWN_LIMIT);
    };
    let fits =
        usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX);
    let Some(configured) = configured else {
        return fits;
    };
    if fits < configured {
        tracing::warn!(
            configured,
            open_files_limit = limit,
            cap = fits,
            "--max-http-connections lowered to fit the open-files limit"
        );
    }
    configured.min(fits)
}

/// Serves `app` on `listener` until `shutdown` resolves; then closes every Socket.IO session
/// (clients see a clean disconnect), stops accepting, and lets in-flight requests finish.
///
/// At most `--max-http-connections` connections (websockets included) are held: past it the
/// server stops accepting and new clients wait in the listen backlog until one closes. A
/// connection must send each request's head within `--http-idle-timeout-ms` of opening or of its
/// previous response, which bounds idle keep-alive connections and trickled headers alike.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = &app.state.config;
    let cap = connection_cap(config.max_http_connections, raise_open_files_limit());
    let slots = Arc::new(Semaphore::new(cap));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.http_idle_timeout_ms));
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let write_timeout = Duration::from_millis(config.ping_timeout_ms);
    // Engine.IO keeps each session's request for its lifetime: only carry the peer's address
    // when a limit needs it.
    // The Admin UI shows each socket's address.
    let with_peer = app.state.limits.uses_ip() || app.state.config.admin_ui;
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut shutdown = pin!(shutdown);

    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Chat messages are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(Held {
            tcp,
            _slot: slot,
            write_timeout,
            stuck: None,
        });
        let service = TowerToHyperService::new(connection_service(&app.service, with_peer, peer));
        let connection = http.serve_connection(io, service).with_upgrades();
        let closing = closing.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                () = closing.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
        });
    }

    drop(listener);
    tracing::info!("shutting down: closing realtime sessions");
    app.realtime.close().await;
    connections.close();
    closing.cancel();
    // In-flight requests get `grace` to finish. A long-poll whose client left at the wrong
    // moment is otherwise only answered at the next heartbeat.
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "requests still in flight after the shutdown grace; closing them"
        );
    }
    app.state.store.close().await;
    Ok(())
}

/// Each connection's service: requests carry the peer's address as `ConnectInfo<SocketAddr>`
/// when `with_peer`.
fn connection_service(
    service: &Service,
    with_peer: bool,
    peer: SocketAddr,
) -> impl tower::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service
        .clone()
        .map_request(move |request: hyper::Request<Incoming>| {
            let mut request: Request = request.map(Body::new);
            if with_peer {
                request.extensions_mut().insert(ConnectInfo(peer));
            }
            request
        })
}

/// `accept` fails for one connection (reset before it was taken) or for the process (out of
/// descriptors); in the second case retrying at once would spin.
async fn accept_failed(e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {}
        _ => {
            tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    match result {
        Err(e) if e.is_timeout() => {
            tracing::debug!("connection closed: no request within the idle timeout")
        }
        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
        Ok(()) => {}
    }
}

/// A client connection holding its slot under the connection cap until it closes, upgraded
/// websockets included (the upgrade keeps this value).
///
/// It also bounds how long a write may make no progress. A client that stops reading (and
/// answering pings) while events are queued for it blocks engineioxide's websocket writer in
/// a write, and that writer does not see the heartbeat closing the session meanwhile: the
/// connection would stay open forever, holding its descriptor and its slot. A write stuck for
/// `write_timeout` (the ping timeout) fails instead, which ends the transport.
struct Held {
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    write_timeout: Duration,
    /// Set while writes are blocked, to fire `write_timeout` after they started to be.
    stuck: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Held {
    /// The outcome of a write: progress clears the stall; no progress for too long is an error.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if write.is_ready() {
            self.stuck = None;
            return write;
        }
        let timeout = self.write_timeout;
        let stuck = self
            .stuck
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stuck.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let write = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.watch(cx, write)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.watch(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_files_limit() {
        assert_eq!(connection_cap(None, Some(20_000)), 19_744);
        assert_eq!(connection_cap(None, None), 16_384);
        assert_eq!(connection_cap(Some(16_384), Some(1_048_576)), 16_384);
        assert_eq!(connection_cap(Some(16_384), Some(1_024)), 768);
        assert_eq!(connection_cap(Some(100), Some(1_024)), 100);
    }
}
