//! Shared application state: cheap handles only, cloned into every request and socket event.

use std::sync::Arc;

use crate::{
    auth::Auth,
    blobs::Blobs,
    chat::Chat,
    config::Config,
    limits::Limits,
    realtime::{Identities, Typing},
    store::Store,
};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub chat: Arc<Chat>,
    pub blobs: Arc<Blobs>,
    pub config: Arc<Config>,
    /// The users that identified sockets speak for.
    pub identities: Arc<Identities>,
    /// Who is typing where, on this node.
    pub typing: Arc<Typing>,
    /// `Some` in `jwt` mode.
    pub auth: Option<Arc<Auth>>,
    /// Rate limits and connection caps.
    pub limits: Arc<Limits>,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>, blobs: Blobs, auth: Option<Auth>) -> Self {
        let limits = Arc::new(Limits::from_config(&config));
        limits.sweep_periodically();
        Self {
            limits,
            auth: auth.map(Arc::new),
            blobs: Arc::new(blobs),
            chat: Arc::new(Chat::new(Arc::clone(&store))),
            store,
            config: Arc::new(config),
            identities: Arc::default(),
            typing: Arc::default(),
        }
    }
}
