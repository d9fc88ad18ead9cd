//! Assembles the product: the REST router and the Socket.IO layer behind CORS, as one service
//! (`server` drives it).

use std::{convert::Infallible, io, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use socketioxide::{SocketIo, SocketIoBuilder, adapter::Adapter, layer::SocketIoLayer};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tower::{ServiceBuilder, util::BoxCloneSyncService};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::{
    blobs::Blobs,
    config::Config,
    fanout::Sink,
    http,
    realtime::{
        self, Admin, Broadcaster, EventRate, Identities, Presence, Realtime, Typing, peers::Peers,
        redis::HealingDriver, transport::SessionRequest,
    },
    state::AppState,
    store::Store,
};

/// The whole product as one HTTP service: Socket.IO at `/ws`, the REST router for the rest.
pub type Service = BoxCloneSyncService<Request, Response, Infallible>;

/// The assembled service and a handle on its Socket.IO server.
pub struct App {
    pub service: Service,
    pub realtime: Arc<dyn Realtime>,
    pub state: AppState,
}

impl App {
    pub async fn build(config: Config, store: Arc<dyn Store>) -> io::Result<Self> {
        let blobs = Blobs::open(&config.data_dir).await?;
        if config.demo {
            crate::demo::seed(store.as_ref())
                .await
                .map_err(|e| io::Error::other(format!("loading the demo data: {e}")))?;
        }
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if !config.jwt_mode() && !config.host.is_loopback() {
            tracing::warn!(
                host = %config.host,
                "open mode on a non-loopback address: anyone who reaches this port can name \
                 any user (X-User-Id, socket auth userId). Put a gateway that sets them in \
                 front, or configure --jwt-secret / --jwt-public-key"
            );
        }
        let auth = crate::auth::Auth::from_config(&config)?;
        let state = AppState::new(config, store, blobs, auth)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if let Some(webhooks) = &state.webhooks {
            webhooks.start();
        }
        let config = &state.config;
        // A live upload writes at least once per body timeout.
        let abandoned_after = std::time::Duration::from_millis(config.http_body_timeout_ms * 2);
        crate::uploads::recover_periodically(
            &state.chat,
            &state.store,
            &state.blobs,
            abandoned_after,
        );

        let rest = http::router(state.clone());
        let typing = Arc::new(Typing::default());
        typing.expire_periodically();
        let identities = Arc::new(Identities::default());
        let presence = Arc::new(Presence::new(Arc::clone(&identities)));
        let admin = Arc::new(Admin::from_config(
            config,
            &state.metrics,
            Arc::clone(&state.limits),
        ));
        let builder = socket_io_builder(config)
            .with_state(state.clone())
            .with_state(identities)
            .with_state(typing)
            .with_state(presence)
            .with_state(Arc::clone(&admin))
            .with_state(event_rate(config, &state.metrics));
        let fanout = state.chat.fanout();
        let deliveries = state.metrics.deliveries.clone();
        let (service, realtime): (Service, Arc<dyn Realtime>) = match &config.redis_url {
            None => {
                let (layer, io) = builder.build_layer();
                io.ns("/", realtime::connect_handler());
                if admin.is_on() {
                    io.ns(realtime::admin::NAMESPACE, realtime::admin::handler());
                    admin.attach(&io, Arc::clone(&state.metrics));
                }
                let broadcaster = Arc::new(Broadcaster::new(io, deliveries, None));
                fanout.attach(broadcaster.clone() as Arc<dyn Sink>, None);
                state.metrics.sample_with(broadcaster.clone());
                (assemble(&state, layer, rest), broadcaster)
            }
            Some(url) => {
                let client = realtime::redis::client(url).map_err(io::Error::other)?;
                let link = state.redis.clone().unwrap_or_default();
                let driver = HealingDriver::new(&client, link).map_err(io::Error::other)?;
                let adapter =
                    RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::default());
                let (layer, io) = builder
                    .with_adapter::<CustomRedisAdapter<_, HealingDriver>>(adapter)
                    .build_layer();
                io.ns("/", realtime::connect_handler())
                    .await
                    .map_err(|e| io::Error::other(format!("Redis adapter: {e}")))?;
                if admin.is_on() {
                    io.ns(realtime::admin::NAMESPACE, realtime::admin::handler())
                        .await
                        .map_err(|e| io::Error::other(format!("Redis adapter: {e}")))?;
                    admin.attach(&io, Arc::clone(&state.metrics));
                }
                let peers = Peers::new(&client).map_err(io::Error::other)?;
                peers.listen(client, Arc::clone(fanout));
                let broadcaster = Arc::new(Broadcaster::new(io, deliveries, state.redis.clone()));
                fanout.attach(broadcaster.clone(), Some(Arc::new(peers)));
                state.metrics.sample_with(broadcaster.clone());
                (assemble(&state, layer, rest), broadcaster)
            }
        };
        Ok(Self {
            service,
            realtime,
            state,
        })
    }
}

fn socket_io_builder(config: &Config) -> SocketIoBuilder {
    let max_payload = usize::try_from(config.max_payload_bytes).unwrap_or(usize::MAX);
    SocketIo::builder()
        .req_path("/ws")
        // Node's `maxHttpBufferSize` (1 MB), so clients that Node accepted keep working. Like
        // Node, the bound holds for websocket messages as well as polling bodies.
        .max_payload(config.max_payload_bytes)
        .ws_max_message_size(max_payload)
        .ws_max_frame_size(max_payload)
        // Allocated up front for every websocket; chat frames are small and a larger frame
        // simply takes more reads. 4096 (the default) → 256 saves ~4 KB per connection.
        .ws_read_buffer_size(256)
        // Bounded per-socket queue (a slow consumer cannot make the server buffer without
        // bound), large enough for a whole replay. Slots are allocated as they fill.
        .max_buffer_size(config.socket_buffer)
        .ping_interval(std::time::Duration::from_millis(config.ping_interval_ms))
        .ping_timeout(std::time::Duration::from_millis(config.ping_timeout_ms))
        .connect_timeout(std::time::Duration::from_millis(config.connect_timeout_ms))
}

fn event_rate(config: &Config, metrics: &crate::metrics::Metrics) -> Arc<EventRate> {
    let rate = Arc::new(EventRate::from_config(config, metrics));
    rate.sweep_periodically();
    rate
}

/// Socket.IO sits in front of the REST router, so Engine.IO requests skip routing and request
/// logging (polls would flood it), but inside CORS, so polling requests get the same CORS policy
/// as REST.
fn assemble<A: Adapter>(state: &AppState, layer: SocketIoLayer<A>, rest: axum::Router) -> Service {
    let config = &state.config;
    let session_request = SessionRequest::new(config.client_ip_header.clone());
    let origins: Arc<[HeaderValue]> = allowed_origins(&config.cors_origins).into();
    let service = ServiceBuilder::new()
        .layer(cors(&config.cors_origins))
        .layer(axum::middleware::from_fn_with_state(origins, socket_origin))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            realtime::admit_session,
        ))
        .map_request(move |request| session_request.detach(request))
        .map_response(IntoResponse::into_response)
        .layer(layer)
        .service(rest);
    Service::new(service)
}

/// Any origin unless an allow-list is configured: the stub's browser clients live elsewhere.
fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if origins.is_empty() {
        return layer.allow_origin(Any);
    }
    layer.allow_origin(AllowOrigin::list(allowed_origins(origins)))
}

fn allowed_origins(origins: &[String]) -> Vec<HeaderValue> {
    origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect()
}

/// With an allow-list of origins, a page from another origin may not open a Socket.IO session
/// either: browsers apply no CORS to websockets, so without this check any site could open one
/// with the visitor's cookies (cross-site websocket hijacking). Clients that send no `Origin`
/// (not browsers) are not concerned.
async fn socket_origin(
    State(allowed): State<Arc<[HeaderValue]>>,
    request: Request,
    next: Next,
) -> Response {
    let refused = !allowed.is_empty()
        && request.uri().path().starts_with("/ws")
        && request
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| !allowed.contains(origin));
    if refused {
        return crate::error::ApiError::Forbidden("origin_not_allowed").into_response();
    }
    next.run(request).await
}
