//! A keep-alive HTTP/1.1 client on one connection.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Result;

pub struct Rest {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Bearer <token>` on every request, for a server in jwt mode.
    authorization: Option<String>,
}

impl Rest {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self {
            sender,
            host: addr.to_string(),
            authorization: None,
        })
    }

    /// Sends `token` as the bearer of every request from now on.
    pub fn bearer(&mut self, token: &str) {
        self.authorization = Some(format!("Bearer {token}"));
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    pub async fn get(&mut self, path: &str) -> Result<(u16, Bytes)> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: String) -> Result<(u16, Bytes)> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// Creates a thread with unique members and returns its id.
    pub async fn create_thread(&mut self, members: [&str; 2]) -> Result<String> {
        let (status, body) = self
            .post(
                "/api/threads",
                format!(
                    r#"{{"title":"bench","memberIds":["{}","{}"]}}"#,
                    members[0], members[1]
                ),
            )
            .await?;
        if status != 201 && status != 200 {
            return Err(format!("create thread: {status}").into());
        }
        json_str(&body, "id").ok_or_else(|| "thread id missing".into())
    }
}

/// The first string value of `"key":"..."` in a JSON body (cheap, for the generator's hot path).
pub fn json_str(body: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let needle = format!("\"{key}\":\"");
    let start = text.find(&needle)? + needle.len();
    let end = start + text[start..].find('"')?;
    Some(text[start..end].to_owned())
}
