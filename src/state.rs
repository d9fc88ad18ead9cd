//! Shared application state: cheap handles only, cloned into every request and socket event.
//! Socket-only state (who each socket is, who is typing) is registered with the Socket.IO
//! server instead (see `app`).

use std::sync::Arc;

use crate::{
    auth::Auth, blobs::Blobs, chat::Chat, config::Config, limits::Limits, metrics::Metrics,
    readiness::RedisLink, store::Store, webhooks::Webhooks,
};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub chat: Arc<Chat>,
    pub blobs: Arc<Blobs>,
    pub config: Arc<Config>,
    /// `Some` in `jwt` mode.
    pub auth: Option<Arc<Auth>>,
    /// Rate limits and connection caps.
    pub limits: Arc<Limits>,
    /// `Some` when running as one of several nodes (`--redis-url`).
    pub redis: Option<Arc<RedisLink>>,
    /// What `GET /metrics` reports.
    pub metrics: Arc<Metrics>,
    /// `Some` when webhook endpoints are configured.
    pub webhooks: Option<Arc<Webhooks>>,
}

impl AppState {
    /// Fails on a webhook configuration that cannot work (a bad URL or secret).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        blobs: Blobs,
        auth: Option<Auth>,
    ) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::new(config.redis_url.is_some()));
        let store = crate::store::timed(store, &metrics);
        let limits = Arc::new(Limits::from_config(&config, &metrics));
        let webhooks = Webhooks::from_config(&config, Arc::clone(&store), Arc::clone(&metrics))?;
        limits.sweep_periodically();
        Ok(Self {
            redis: config
                .redis_url
                .as_ref()
                .map(|_| Arc::new(RedisLink::default())),
            chat: Arc::new(Chat::new(
                Arc::clone(&store),
                Arc::clone(&limits),
                Arc::clone(&metrics),
                webhooks.clone(),
            )),
            webhooks,
            metrics,
            limits,
            auth: auth.map(Arc::new),
            blobs: Arc::new(blobs),
            store,
            config: Arc::new(config),
        })
    }
}
