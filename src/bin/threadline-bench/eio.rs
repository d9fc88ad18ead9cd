//! A minimal Socket.IO v5 / Engine.IO v4 client over a raw websocket: far cheaper per message
//! than socket.io-client in Node, so the generator is not the bottleneck.

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{WebSocketStream, client_async, tungstenite::Message};

use crate::Result;

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a websocket session from `source` (spread over 127.0.0.x so ports never run out) and
/// connects to the default namespace.
pub async fn connect(server: SocketAddr, source: IpAddr) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{server}/ws/?EIO=4&transport=websocket");
    let (mut ws, _) = client_async(url, stream).await?;
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
