//! A minimal Socket.IO v5 / Engine.IO v4 client over a raw websocket: far cheaper per message
//! than socket.io-client in Node, so the generator is not the bottleneck; and raw enough for the
//! tests to misbehave with (stall, send garbage, hang up mid-packet).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue},
        protocol::WebSocketConfig,
    },
};

use crate::Result;

pub type Ws = WebSocketStream<TcpStream>;

/// The headers of the websocket upgrade request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Handshake {
    #[default]
    /// Only what the websocket handshake needs, as a bare websocket library sends it.
    Minimal,
    /// What a desktop Chrome sends from a chat page (no cookies): user agent, origin,
    /// languages, encodings, extensions.
    Browser,
}

const BROWSER_HEADERS: [(&str, &str); 8] = [
    ("pragma", "no-cache"),
    ("cache-control", "no-cache"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    ("origin", "http://127.0.0.1:3000"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9,fr;q=0.8"),
    (
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits",
    ),
    ("referer", "http://127.0.0.1:3000/threads/general"),
];

/// How a raw session opens.
#[derive(Debug, Default, Clone, Copy)]
pub struct Open {
    /// The local address to connect from (spread over 127.0.0.x so ports never run out).
    pub source: Option<IpAddr>,
    pub handshake: Handshake,
    /// A small kernel receive buffer: a client that then stops reading fills the server's
    /// side quickly.
    pub receive_buffer: Option<u32>,
    /// No client-side bound on frame and message sizes (to send oversized ones).
    pub unbounded: bool,
}

/// Opens a websocket session and reads the Engine.IO open packet; the Socket.IO namespace is
/// not connected yet.
pub async fn open(server: SocketAddr, how: &Open) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = how.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    if let Some(size) = how.receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let mut request =
        format!("ws://{server}/ws/?EIO=4&transport=websocket").into_client_request()?;
    if how.handshake == Handshake::Browser {
        for (name, value) in BROWSER_HEADERS {
            request.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    let config = how.unbounded.then(|| {
        WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None)
    });
    let (mut ws, _) = client_async_with_config(request, stream, config).await?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected the Engine.IO open packet, got {open}").into());
    }
    Ok(ws)
}

/// Opens a websocket session from `source` and connects to the default namespace.
pub async fn connect(server: SocketAddr, source: IpAddr) -> Result<Ws> {
    connect_with(server, source, Handshake::Minimal).await
}

/// [`connect`], with the upgrade request's headers chosen.
pub async fn connect_with(server: SocketAddr, source: IpAddr, handshake: Handshake) -> Result<Ws> {
    let how = Open {
        source: Some(source),
        handshake,
        ..Open::default()
    };
    let mut ws = open(server, &how).await?;
    ws.send(Message::text("40")).await?;
    loop {
        let packet = next_text(&mut ws).await?;
        if packet.starts_with("40") {
            return Ok(ws);
        }
        answer_ping(&mut ws, &packet).await?;
    }
}

/// The next text frame that is not an Engine.IO ping (pings are answered); `None` once the
/// server closed the session or nothing came `within`.
pub async fn next_text_within(ws: &mut Ws, within: Duration) -> Option<String> {
    loop {
        match tokio::time::timeout(within, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) if t.as_str() == "2" => ws.send(Message::text("3")).await.ok()?,
            Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The next text frame.
pub async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => return Err("connection closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// Answers an Engine.IO ping (`2`) with a pong (`3`); other packets are left alone.
pub async fn answer_ping(ws: &mut Ws, packet: &str) -> Result<bool> {
    if packet == "2" {
        ws.send(Message::text("3")).await?;
        return Ok(true);
    }
    Ok(false)
}

/// Emits `event` with a JSON `payload` and an ack id, and returns the ack's JSON array.
pub async fn emit_with_ack(ws: &mut Ws, ack_id: u64, event: &str, payload: &str) -> Result<String> {
    ws.send(Message::text(format!("42{ack_id}[\"{event}\",{payload}]")))
        .await?;
    let prefix = format!("43{ack_id}");
    loop {
        let packet = next_text(ws).await?;
        if let Some(ack) = packet.strip_prefix(&prefix) {
            return Ok(ack.to_owned());
        }
        answer_ping(ws, &packet).await?;
    }
}
