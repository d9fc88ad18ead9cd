//! A minimal Socket.IO v5 / Engine.IO v4 client over a raw websocket: far cheaper per message
//! than socket.io-client in Node, so the generator is not the bottleneck.

use std::net::{IpAddr, SocketAddr};

use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream, client_async,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue},
    },
};

use crate::Result;

pub type Ws = WebSocketStream<TcpStream>;

/// The headers of the websocket upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Handshake {
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

/// Opens a websocket session from `source` (spread over 127.0.0.x so ports never run out) and
/// connects to the default namespace.
pub async fn connect(server: SocketAddr, source: IpAddr) -> Result<Ws> {
    connect_with(server, source, Handshake::Minimal).await
}

/// [`connect`], with the upgrade request's headers chosen.
pub async fn connect_with(server: SocketAddr, source: IpAddr, handshake: Handshake) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let mut request =
        format!("ws://{server}/ws/?EIO=4&transport=websocket").into_client_request()?;
    if handshake == Handshake::Browser {
        for (name, value) in BROWSER_HEADERS {
            request.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    let (mut ws, _) = client_async(request, stream).await?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected the Engine.IO open packet, got {open}").into());
    }
    ws.send(Message::text("40")).await?;
    loop {
        let packet = next_text(&mut ws).await?;
        if packet.starts_with("40") {
            return Ok(ws);
        }
        answer_ping(&mut ws, &packet).await?;
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
