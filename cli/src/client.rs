//! A Docker Engine API client on a unix socket: JSON requests, streamed bodies, and
//! hijacked connections (attach, exec) upgraded to raw byte streams.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};

pub const API: &str = "/v1.45";

/// An error the daemon answered with (`{"message": …}`), or a transport failure.
#[derive(Debug)]
pub struct ApiError {
    pub status: Option<StatusCode>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(_) => write!(f, "Error response from daemon: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ApiError {}

pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_body(v: &serde_json::Value) -> Body {
    Full::new(Bytes::from(v.to_string()))
        .map_err(|never| match never {})
        .boxed()
}

/// A body read from a file or stdin as it is sent.
pub fn reader_body(mut r: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> Body {
    use tokio::io::AsyncReadExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .send(Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed()
}

#[derive(Clone, Debug)]
pub struct Client {
    pub socket: PathBuf,
}

impl Client {
    /// From `-H`, `BERTH_HOST` or `DOCKER_HOST` (unix:// only).
    pub fn new(host: &str) -> Result<Client, ApiError> {
        match host.strip_prefix("unix://") {
            Some(p) => Ok(Client {
                socket: PathBuf::from(p),
            }),
            None => Err(ApiError {
                status: None,
                message: format!("host {host:?}: only unix:///path sockets are supported"),
            }),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        upgrade: bool,
        extra: &[(&str, String)],
    ) -> Result<Response<Incoming>, ApiError> {
        let io = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ApiError {
                status: None,
                message: format!(
                    "Cannot connect to the Berth daemon at unix://{}. Is berthd running? ({e})",
                    self.socket.display()
                ),
            })?;
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(transport)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{API}{path}"))
            .header("Host", "berth")
            .header("Content-Type", "application/json");
        if upgrade {
            req = req.header("Connection", "Upgrade").header("Upgrade", "tcp");
        }
        for (k, v) in extra {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(body).map_err(transport)?;
        tx.send_request(req).await.map_err(transport)
    }

    /// A request whose error statuses become [`ApiError`]s.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>, ApiError> {
        let r = self.send(method, path, body, false, &[]).await?;
        check(r).await
    }

    /// [`Client::call`] with more request headers (`X-Registry-Auth`).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ApiError> {
        let r = self.send(method, path, body, false, headers).await?;
        check(r).await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        let b = body.as_ref().map(json_body).unwrap_or_else(empty);
        let r = self.call(method, path, b).await?;
        let bytes = r.into_body().collect().await.map_err(transport)?.to_bytes();
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError {
            status: None,
            message: format!("bad JSON from the daemon: {e}"),
        })
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        self.json(Method::GET, path, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        self.json(Method::POST, path, body).await
    }

    /// A hijacked connection: the raw stream after `101 Switching Protocols`.
    pub async fn hijack(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>, ApiError> {
        let b = body.as_ref().map(json_body).unwrap_or_else(empty);
        let r = self.send(Method::POST, path, b, true, &[]).await?;
        let r = check(r).await?;
        if r.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(ApiError {
                status: None,
                message: format!("the daemon did not switch protocols ({})", r.status()),
            });
        }
        let up = hyper::upgrade::on(r).await.map_err(transport)?;
        Ok(hyper_util::rt::TokioIo::new(up))
    }
}

fn transport(e: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: None,
        message: e.to_string(),
    }
}

async fn check(r: Response<Incoming>) -> Result<Response<Incoming>, ApiError> {
    let status = r.status();
    if status.is_client_error() || status.is_server_error() {
        let bytes = r
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        return Err(ApiError {
            status: Some(status),
            message,
        });
    }
    Ok(r)
}

/// Read a body frame by frame.
pub async fn next_chunk(b: &mut Incoming) -> Option<Result<Bytes, ApiError>> {
    loop {
        match b.frame().await? {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    return Some(Ok(d));
                }
            }
            Err(e) => return Some(Err(transport(e))),
        }
    }
}
