//! Handshake admission: who a new socket speaks for, and whether it may connect at all (the
//! connection rates and caps), decided before the socket exists.

use std::{net::IpAddr, sync::Arc};

use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
    handler::ConnectHandler,
    socket::DisconnectReason,
};

use super::{Identities, admin::Admin, handlers, rooms};
use crate::{domain::UserId, error::ApiError, limits::SessionRefused, state::AppState};

/// Why a handshake is refused (socket.io-client's `connect_error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(&'static str);

impl Refused {
    pub fn new(code: &'static str) -> Self {
        Self(code)
    }
}

/// The default namespace's connect handler, with its event handlers registered by a middleware.
pub fn connect_handler<A: Adapter>()
-> impl ConnectHandler<A, (SocketRef<A>, State<Arc<Admin>>, State<Arc<Identities>>)> {
    on_connect::<A>.with(admit::<A>)
}

async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    State(admin): State<Arc<Admin>>,
    State(identities): State<Arc<Identities>>,
) {
    tracing::debug!(sid = %socket.id, "socket connected");
    admin.connected(&socket, &identities);
}

/// Event handlers are registered in a connect *middleware*, which runs before the CONNECT
/// acknowledgement is sent. Registering them in the connect handler instead (which socketioxide
/// runs as its own task after the acknowledgement) loses events a client emits right after
/// connecting, which is exactly what chat pages do with `thread:join`.
///
/// In `open` mode a socket may name its user in the handshake (`io(url, {path: "/ws", auth:
/// {userId}})`); without one it stays anonymous, as in the stub, and posts as `"me"`. In `jwt`
/// mode the handshake must carry a valid token (`auth: {token}` or `?token=`), else the
/// connection is refused (`connect_error`) before the socket exists.
///
/// The limits on new connections apply here too: the address's rate before the token is even
/// checked, then the user's rate, then the caps on connections held (`rate_limited`,
/// `server_full`, `too_many_connections`).
async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    State(identities): State<Arc<Identities>>,
    State(admin): State<Arc<Admin>>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let limits = &state.limits;
    limits
        .connects
        .check(None, client_ip(&state, &socket))
        .map_err(|_| Refused("rate_limited"))?;
    let auth = auth.ok();
    let user = match &state.auth {
        // jwt mode: the token, from the auth payload or the `token` query parameter, is checked
        // before the socket exists.
        Some(verifier) => {
            let token = auth
                .as_ref()
                .and_then(|a| a.get("token"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| query_token(socket.req_parts().uri.query()))
                .ok_or(Refused("unauthorized"))?;
            Some(verifier.verify(&token).map_err(|e| Refused(e.code()))?)
        }
        None => match auth.as_ref().and_then(|a| a.get("userId")) {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => {
                Some(UserId::parse(raw).map_err(|_| Refused("invalid_user_id"))?)
            }
            Some(_) => return Err(Refused("invalid_user_id")),
        },
    };
    if let Some(user) = &user {
        limits
            .connects
            .check(Some(user), None)
            .map_err(|_| Refused("rate_limited"))?;
    }
    // The place is given back when the socket, and with it this handler, is dropped: whether
    // or not the handler ever runs.
    let slot = match limits.connections.counts(user.as_ref()) {
        true => Some(Arc::new(
            limits
                .connections
                .acquire(user.as_ref())
                .map_err(|e| Refused(e.code()))?,
        )),
        false => None,
    };
    let identified = user.is_some();
    if let Some(user) = user {
        socket.join(rooms::user_room(&user));
        identities.insert(socket.id, user);
    }
    if identified || slot.is_some() || admin.wants_disconnects() {
        socket.on_disconnect(
            move |socket: SocketRef<A>,
                  reason: DisconnectReason,
                  identities: State<Arc<Identities>>,
                  typing,
                  presence,
                  State(admin): State<Arc<Admin>>| async move {
                admin.disconnected(socket.id, reason);
                handlers::on_disconnect(socket, identities, typing, presence).await;
                drop(slot);
            },
        );
    }
    handlers::register(&socket);
    limits.sessions.connected();
    Ok(())
}

/// Engine.IO creates a session at a client's first request, before any of the handlers above
/// run; this middleware counts those first requests (no `sid` yet) per address and for the
/// node, and refuses the excess before a session exists.
pub async fn admit_session(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;

    match check_new_session(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

fn check_new_session(state: &AppState, request: &axum::extract::Request) -> Result<(), ApiError> {
    let uri = request.uri();
    let opens_session = uri.path().starts_with("/ws")
        && !uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.starts_with("sid="));
    if !opens_session {
        return Ok(());
    }
    let ip = state
        .limits
        .client_ip(request.headers(), request.extensions());
    state
        .limits
        .sessions
        .check(ip)
        .map_err(|refused| match refused {
            SessionRefused::Address(limited) => ApiError::RateLimited(limited),
            SessionRefused::Node(limited) => ApiError::Unavailable {
                code: "server_busy",
                retry_after_secs: limited.retry_after_secs(),
            },
        })
}

/// The client's address, when a limit keys on it.
pub(super) fn client_ip<A: Adapter>(state: &AppState, socket: &SocketRef<A>) -> Option<IpAddr> {
    let parts = socket.req_parts();
    state.limits.client_ip(&parts.headers, &parts.extensions)
}

/// `token` from a handshake query string (`io(url, {query: {token}})`).
fn query_token(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .find_map(|(key, value)| (key == "token").then_some(value))
}
