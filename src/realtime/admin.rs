//! The server side of the Socket.IO Admin UI (`@socket.io/admin-ui`, admin.socket.io), following
//! the protocol of that package's `instrument()`: namespace `/admin`, basic authentication
//! against a bcrypt hash (then a session id), `config`, `server_stats` every 2 s, and in
//! development mode `all_sockets`, `socket_connected`, `socket_disconnected`, `room_joined`,
//! `room_left` and `event_received`. The UI's commands (`emit`, `join`, `leave`, `_disconnect`)
//! work except where they would bypass the product's rules: rooms the product manages
//! (`thread:*`, `user:*`) are not joined or left from the UI, and the product's own events are
//! not emitted from it.
//!
//! Off unless `--admin-ui`: then every hook below is one branch on `None`.

use std::{
    net::IpAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dashmap::DashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser::SerializeTuple};
use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
    socket::{DisconnectReason, Sid},
};

use super::{Identities, events, rooms};
use crate::{
    config::{AdminUiMode, Config, Rate},
    limits::{KeyedRate, Limits},
    metrics::Metrics,
};

/// The namespace the UI connects to.
pub const NAMESPACE: &str = "/admin";
/// How often each node sends its statistics.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// How long a session id from a password login stays valid.
const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most sessions remembered; the oldest go first.
const MAX_SESSIONS: usize = 1_000;

/// The Admin UI's server side, or nothing.
#[derive(Default)]
pub struct Admin(Option<On>);

struct On {
    development: bool,
    readonly: bool,
    username: String,
    password_hash: String,
    /// Logins per client address: bcrypt is slow on purpose, so guesses are rationed.
    logins: KeyedRate<IpAddr>,
    /// Password checks running at once, whatever the addresses: they never take every core.
    checking: tokio::sync::Semaphore,
    sessions: DashMap<String, Instant>,
    /// A password login's new session id, sent once the socket is connected.
    issued: DashMap<Sid, String>,
    /// When each socket of the main namespace connected (development mode).
    since: DashMap<Sid, SystemTime>,
    server_id: String,
    hostname: String,
    started: Instant,
    io: OnceLock<Arc<dyn AdminIo>>,
    counts: Counts,
    limits: Arc<Limits>,
}

/// What the UI charts (`aggregatedEvents`), counted since the last statistics.
#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    disconnections: AtomicU64,
    packets_in: AtomicU64,
    /// Deliveries as counted for `/metrics`, at the last statistics.
    packets_out_seen: AtomicU64,
}

/// Event arguments sent as separate Socket.IO arguments (socketioxide sends a tuple that way).
struct Args(Vec<Value>);

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

/// Every argument of a received event (socketioxide hands a tuple type all of them).
struct Received(Vec<Value>);

impl<'de> Deserialize<'de> for Received {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct All;
        impl<'de> de::Visitor<'de> for All {
            type Value = Received;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<Received, S::Error> {
                let mut all = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    all.push(arg);
                }
                Ok(Received(all))
            }
        }
        deserializer.deserialize_tuple(usize::MAX, All)
    }
}

/// The Socket.IO server, whatever its adapter, as the admin side uses it.
trait AdminIo: Send + Sync + 'static {
    /// Sends `event` to every UI connected to any node.
    fn tell(&self, event: &'static str, args: Args);
    /// This node's sockets of the main namespace, as the UI shows them.
    fn sockets(&self, admin: &On, identities: &Identities) -> Vec<Value>;
    /// Sockets in the main namespace and the admin one, and those on long-polling.
    fn counts(&self) -> (usize, usize, usize);
    fn command(&self, command: Command);
}

enum Command {
    Emit {
        filter: Option<String>,
        event: String,
        args: Vec<Value>,
    },
    Join {
        room: String,
        filter: Option<String>,
    },
    Leave {
        room: String,
        filter: Option<String>,
    },
    Disconnect {
        filter: Option<String>,
    },
}

/// Events for the UIs, in the order they happened, sent by one task; past [`QUEUE`] waiting,
/// more are dropped (the UI is a view, never worth unbounded memory).
struct Outbox<A: Adapter> {
    io: SocketIo<A>,
    queue: tokio::sync::mpsc::Sender<(&'static str, Args)>,
}

const QUEUE: usize = 4096;

impl<A: Adapter> Outbox<A> {
    fn new(io: SocketIo<A>) -> Self {
        let (queue, mut events) = tokio::sync::mpsc::channel::<(&'static str, Args)>(QUEUE);
        let to = io.clone();
        tokio::spawn(async move {
            while let Some((event, args)) = events.recv().await {
                let Some(admin) = to.of(NAMESPACE) else {
                    continue;
                };
                if let Err(e) = admin.emit(event, &args).await {
                    tracing::debug!(error = %e, event, "admin UI: event not sent");
                }
            }
        });
        Self { io, queue }
    }
}

impl<A: Adapter> AdminIo for Outbox<A> {
    fn tell(&self, event: &'static str, args: Args) {
        let _ = self.queue.try_send((event, args));
    }

    fn sockets(&self, admin: &On, identities: &Identities) -> Vec<Value> {
        self.io
            .sockets()
            .iter()
            .map(|socket| serialize(admin, identities, socket))
            .collect()
    }

    fn counts(&self) -> (usize, usize, usize) {
        let (polling, websocket) = super::sockets_by_transport(&self.io);
        let admin = self
            .io
            .of(NAMESPACE)
            .map_or(0, |ns| ns.local().sockets().len());
        (polling + websocket, admin, polling)
    }

    fn command(&self, command: Command) {
        let io = self.io.clone();
        tokio::spawn(async move {
            let Some(main) = io.of("/") else { return };
            // A socket id names that socket (Node puts every socket in a room of its id).
            let target = |filter: &Option<String>| match filter.as_deref() {
                None | Some("") => Target::All,
                Some(f) => match f.parse::<Sid>().ok().and_then(|sid| main.get_socket(sid)) {
                    Some(socket) => Target::Socket(socket),
                    None => Target::Room(f.to_owned()),
                },
            };
            let outcome = match command {
                Command::Emit {
                    filter,
                    event,
                    args,
                } => match target(&filter) {
                    Target::Socket(s) => s.emit(event, &Args(args)).map_err(|e| e.to_string()),
                    Target::Room(r) => main
                        .clone()
                        .to(r)
                        .emit(event, &Args(args))
                        .await
                        .map_err(|e| e.to_string()),
                    Target::All => main
                        .clone()
                        .emit(event, &Args(args))
                        .await
                        .map_err(|e| e.to_string()),
                },
                Command::Join { room, filter } => match target(&filter) {
                    Target::Socket(s) => {
                        s.join(room);
                        Ok(())
                    }
                    Target::Room(r) => main
                        .clone()
                        .within(r)
                        .join(room)
                        .await
                        .map_err(|e| e.to_string()),
                    Target::All => main.clone().join(room).await.map_err(|e| e.to_string()),
                },
                Command::Leave { room, filter } => match target(&filter) {
                    Target::Socket(s) => {
                        s.leave(room);
                        Ok(())
                    }
                    Target::Room(r) => main
                        .clone()
                        .within(r)
                        .leave(room)
                        .await
                        .map_err(|e| e.to_string()),
                    Target::All => main.clone().leave(room).await.map_err(|e| e.to_string()),
                },
                Command::Disconnect { filter } => match target(&filter) {
                    Target::Socket(s) => s.disconnect().map_err(|e| e.to_string()),
                    Target::Room(r) => main
                        .clone()
                        .within(r)
                        .disconnect()
                        .await
                        .map_err(|e| e.to_string()),
                    Target::All => main.clone().disconnect().await.map_err(|e| e.to_string()),
                },
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "admin UI command failed");
            }
        });
    }
}

enum Target<A: Adapter> {
    All,
    Socket(SocketRef<A>),
    Room(String),
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A date argument, as the UI's `new Date()` serializes.
fn now() -> Value {
    Value::String(
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    )
}

/// A socket as the UI shows it. Credentials in headers and the query are not shown.
fn serialize<A: Adapter>(admin: &On, identities: &Identities, socket: &SocketRef<A>) -> Value {
    let parts = socket.req_parts();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = match name.as_str() {
                "authorization" | "cookie" | "proxy-authorization" => "[hidden]".to_owned(),
                _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            };
            (name.as_str().to_owned(), Value::String(shown))
        })
        .collect();
    let query: serde_json::Map<String, Value> = parts
        .uri
        .query()
        .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "token" {
                "[hidden]".to_owned()
            } else {
                v
            };
            (k, Value::String(v))
        })
        .collect();
    let issued = admin
        .since
        .get(&socket.id)
        .map_or_else(SystemTime::now, |at| *at);
    let transport = match socket.transport_type() {
        socketioxide::TransportType::Polling => "polling",
        socketioxide::TransportType::Websocket => "websocket",
    };
    let address = admin
        .limits
        .address_of(&parts.headers, &parts.extensions)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let mut data = serde_json::Map::new();
    if let Some(user) = identities.get(socket.id) {
        data.insert("userId".into(), Value::String(user.to_string()));
    }
    json!({
        "id": socket.id.to_string(),
        "clientId": socket.id.to_string(),
        "transport": transport,
        "nsp": "/",
        "data": data,
        "handshake": {
            "address": address,
            "headers": headers,
            "query": query,
            "issued": millis(issued),
            "secure": false,
            "time": time::OffsetDateTime::from(issued).format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
            "url": parts.uri.to_string(),
            "xdomain": parts.headers.contains_key("origin"),
        },
        "rooms": socket.rooms().iter().map(|r| r.to_string()).collect::<Vec<_>>(),
    })
}

impl Admin {
    pub fn from_config(config: &Config, metrics: &Metrics, limits: Arc<Limits>) -> Self {
        if !config.admin_ui {
            return Self(None);
        }
        let hostname = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "threadline".into());
        Self(Some(On {
            development: config.admin_ui_mode == AdminUiMode::Development,
            readonly: config.admin_ui_readonly,
            username: config.admin_ui_username.clone(),
            password_hash: config.admin_ui_password_hash.clone().unwrap_or_default(),
            logins: KeyedRate::from_rate(Some(Rate::new(10, 60)), metrics.refusals("admin_logins")),
            checking: tokio::sync::Semaphore::new(2),
            sessions: DashMap::new(),
            issued: DashMap::new(),
            since: DashMap::new(),
            // Several nodes on one host are several servers in the UI.
            server_id: format!("{hostname}#{}", std::process::id()),
            hostname,
            started: Instant::now(),
            io: OnceLock::new(),
            counts: Counts::default(),
            limits,
        }))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Whether sockets going away must be reported.
    pub fn wants_disconnects(&self) -> bool {
        self.0.as_ref().is_some_and(|on| on.development)
    }

    /// Registers the `/admin` namespace on `io` and starts the statistics (when on).
    pub fn attach<A: Adapter>(self: &Arc<Self>, io: &SocketIo<A>, metrics: Arc<Metrics>) {
        let Some(on) = &self.0 else { return };
        let _ = on.io.set(Arc::new(Outbox::new(io.clone())));
        let admin = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(STATS_EVERY);
            loop {
                every.tick().await;
                admin.stats(&metrics);
            }
        });
    }

    fn tell(&self, event: &'static str, args: Vec<Value>) {
        if let Some(on) = &self.0
            && let Some(io) = on.io.get()
        {
            io.tell(event, Args(args));
        }
    }

    fn stats(&self, metrics: &Metrics) {
        let Some(on) = &self.0 else { return };
        let Some(io) = on.io.get() else { return };
        let (main, admin, polling) = io.counts();
        let second = millis(SystemTime::now()) / 1000 * 1000;
        let delivered = metrics.deliveries.get();
        let out = delivered.saturating_sub(
            on.counts
                .packets_out_seen
                .swap(delivered, Ordering::Relaxed),
        );
        let mut aggregated = Vec::new();
        for (kind, count) in [
            (
                "rawConnection",
                on.counts.connections.swap(0, Ordering::Relaxed),
            ),
            (
                "rawDisconnection",
                on.counts.disconnections.swap(0, Ordering::Relaxed),
            ),
            ("packetsIn", on.counts.packets_in.swap(0, Ordering::Relaxed)),
            ("packetsOut", out),
        ] {
            if count > 0 {
                aggregated.push(json!({"timestamp": second, "type": kind, "count": count}));
            }
        }
        let stats = json!({
            "serverId": on.server_id,
            "hostname": on.hostname,
            "pid": std::process::id(),
            "uptime": on.started.elapsed().as_secs_f64(),
            "clientsCount": main + admin,
            "pollingClientsCount": polling,
            "aggregatedEvents": aggregated,
            "namespaces": [
                {"name": "/", "socketsCount": main},
                {"name": NAMESPACE, "socketsCount": admin},
            ],
        });
        io.tell("server_stats", Args(vec![stats]));
    }

    /// A socket of the main namespace connected.
    pub fn connected<A: Adapter>(&self, socket: &SocketRef<A>, identities: &Identities) {
        let Some(on) = &self.0 else { return };
        on.counts.connections.fetch_add(1, Ordering::Relaxed);
        if !on.development {
            return;
        }
        on.since.insert(socket.id, SystemTime::now());
        self.tell(
            "socket_connected",
            vec![serialize(on, identities, socket), now()],
        );
    }

    /// A socket of the main namespace went away.
    pub fn disconnected(&self, sid: Sid, reason: DisconnectReason) {
        let Some(on) = &self.0 else { return };
        on.counts.disconnections.fetch_add(1, Ordering::Relaxed);
        if !on.development {
            return;
        }
        on.since.remove(&sid);
        self.tell(
            "socket_disconnected",
            vec![
                json!("/"),
                json!(sid.to_string()),
                json!(reason.to_string()),
                now(),
            ],
        );
    }

    /// A socket entered (`joined`) or left a room.
    pub fn room(&self, sid: Sid, room: &str, joined: bool) {
        let Some(on) = &self.0 else { return };
        if !on.development {
            return;
        }
        let event = if joined { "room_joined" } else { "room_left" };
        self.tell(
            event,
            vec![json!("/"), json!(room), json!(sid.to_string()), now()],
        );
    }

    /// A socket of the main namespace sent `event`.
    pub fn received(&self, sid: Sid, event: &str, payload: Option<&Value>) {
        let Some(on) = &self.0 else { return };
        on.counts.packets_in.fetch_add(1, Ordering::Relaxed);
        if !on.development {
            return;
        }
        let mut args = vec![json!(event)];
        args.extend(payload.cloned());
        self.tell(
            "event_received",
            vec![
                json!("/"),
                json!(sid.to_string()),
                Value::Array(args),
                now(),
            ],
        );
    }
}

/// `/admin`'s connect handler, behind its authentication.
pub fn handler<A: Adapter>() -> impl socketioxide::handler::ConnectHandler<
    A,
    (SocketRef<A>, State<Arc<Admin>>, State<Arc<Identities>>),
> {
    use socketioxide::handler::ConnectHandler as _;
    connected::<A>.with(authenticate::<A>)
}

/// `/admin`'s connect middleware: a session id from an earlier login, or the username and the
/// password checked against the bcrypt hash (at most 10 tries a minute per address).
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    State(admin): State<Arc<Admin>>,
    TryData(auth): TryData<Value>,
) -> Result<(), super::handshake::Refused> {
    use super::handshake::Refused;
    let Some(on) = &admin.0 else {
        return Err(Refused::new("admin_ui_off"));
    };
    let auth = auth.unwrap_or(Value::Null);
    if let Some(session) = auth.get("sessionId").and_then(Value::as_str)
        && on
            .sessions
            .get(session)
            .is_some_and(|at| at.elapsed() < SESSION_LIFETIME)
    {
        return Ok(());
    }
    let parts = socket.req_parts();
    if let Some(ip) = on.limits.address_of(&parts.headers, &parts.extensions) {
        on.logins
            .check(&ip)
            .map_err(|_| Refused::new("rate_limited"))?;
    }
    let username = auth
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let password = auth
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let hash = on.password_hash.clone();
    let Ok(_checking) = on.checking.try_acquire() else {
        return Err(Refused::new("rate_limited"));
    };
    // The hash is checked whatever the name, so timing does not tell which names exist.
    let password_matches =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
    if !(password_matches && username == on.username) {
        return Err(Refused::new("invalid credentials"));
    }
    let session = uuid::Uuid::new_v4().simple().to_string();
    if on.sessions.len() >= MAX_SESSIONS {
        on.sessions.retain(|_, at| at.elapsed() < SESSION_LIFETIME);
    }
    if on.sessions.len() < MAX_SESSIONS {
        on.sessions.insert(session.clone(), Instant::now());
        on.issued.insert(socket.id, session);
    }
    Ok(())
}

/// `/admin`'s connect handler: the session id (after a password login), `config`, in
/// development mode `all_sockets`, and the UI's commands.
pub async fn connected<A: Adapter>(
    socket: SocketRef<A>,
    State(admin): State<Arc<Admin>>,
    State(identities): State<Arc<Identities>>,
) {
    let Some(on) = &admin.0 else { return };
    if let Some((_, session)) = on.issued.remove(&socket.id) {
        let _ = socket.emit("session", &session);
    }
    let mut features: Vec<&str> = if on.readonly {
        Vec::new()
    } else {
        vec![
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    features.push("AGGREGATED_EVENTS");
    if on.development {
        features.push("ALL_EVENTS");
    }
    let _ = socket.emit("config", &json!({ "supportedFeatures": features }));
    if on.development
        && let Some(io) = on.io.get()
    {
        let _ = socket.emit("all_sockets", &io.sockets(on, &identities));
    }
    if !on.readonly {
        socket.on("emit", on_emit);
        socket.on("join", on_join);
        socket.on("leave", on_leave);
        socket.on("_disconnect", on_disconnect);
    }
}

fn arg(args: &[Value], n: usize) -> Option<String> {
    args.get(n).and_then(Value::as_str).map(str::to_owned)
}

/// Rooms the product manages: entering or leaving them from the UI would bypass its rules.
fn managed(room: &str) -> bool {
    rooms::is_thread_room(room) || rooms::user_of(room).is_some()
}

fn run(admin: &Admin, command: Command) {
    if let Some(on) = &admin.0
        && let Some(io) = on.io.get()
    {
        io.command(command);
    }
}

/// `emit (nsp, filter, event, ...args)`.
async fn on_emit(State(admin): State<Arc<Admin>>, TryData(args): TryData<Received>) {
    let Ok(Received(args)) = args else { return };
    let (Some(nsp), Some(event)) = (arg(&args, 0), arg(&args, 2)) else {
        return;
    };
    if nsp != "/" || events::is_product_event(&event) {
        tracing::warn!(
            event,
            "admin UI: emitting the product's own events is refused"
        );
        return;
    }
    run(
        &admin,
        Command::Emit {
            filter: arg(&args, 1),
            event,
            args: args.into_iter().skip(3).collect(),
        },
    );
}

/// `join (nsp, room, filter)`.
async fn on_join(State(admin): State<Arc<Admin>>, TryData(args): TryData<Received>) {
    rooms_command(&admin, args, true);
}

/// `leave (nsp, room, filter)`.
async fn on_leave(State(admin): State<Arc<Admin>>, TryData(args): TryData<Received>) {
    rooms_command(&admin, args, false);
}

fn rooms_command(admin: &Admin, args: Result<Received, impl std::fmt::Debug>, join: bool) {
    let Ok(Received(args)) = args else { return };
    let (Some(nsp), Some(room)) = (arg(&args, 0), arg(&args, 1)) else {
        return;
    };
    if nsp != "/" || managed(&room) {
        tracing::warn!(
            room,
            "admin UI: the product's rooms are entered and left only by its rules"
        );
        return;
    }
    let filter = arg(&args, 2);
    run(
        admin,
        match join {
            true => Command::Join { room, filter },
            false => Command::Leave { room, filter },
        },
    );
}

/// `_disconnect (nsp, close, filter)`.
async fn on_disconnect(State(admin): State<Arc<Admin>>, TryData(args): TryData<Received>) {
    let Ok(Received(args)) = args else { return };
    if arg(&args, 0).as_deref() != Some("/") {
        return;
    }
    run(
        &admin,
        Command::Disconnect {
            filter: arg(&args, 2),
        },
    );
}
