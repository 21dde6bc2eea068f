//! The Docker Engine API (v1.45, accepting 1.24 and up) over HTTP on a unix socket or TCP
//! (with TLS).
//!
//! One module per resource, mirroring the services under it: each handler decodes the
//! request ([`decode`] for JSON bodies), calls the service (`crate::containers`,
//! `crate::images`, `crate::build`, `crate::network`, `crate::volumes`) and encodes the
//! answer. Requests may carry a version prefix (`/v1.45/images/json`) or not; every
//! response carries `Api-Version`, `Server` and `Ostype` like dockerd's. Errors are
//! `{"message": …}`; a service error's kind becomes its status in [`status_of`] alone.

pub mod build;
pub mod commit;
pub mod containers;
pub mod cp;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
pub mod ops;
pub mod request;
pub mod streams;
pub mod swarm;
pub mod system;
pub mod tls;
pub mod volumes;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::Kind;

pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";

pub use crate::state::{Daemon, State};
pub use request::{decode, is_true, url_all, url_pairs, Filters};

/// An error as the Engine API reports it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        Response::builder()
            .status(self.status)
            .header("Content-Type", "application/json")
            .body(Body::from(body))
            .expect("response")
    }
}

/// The one place a kind of failure becomes an HTTP status.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::Unauthorized => StatusCode::UNAUTHORIZED,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// A service error: its kind's status, its message with its causes.
    fn of(kind: Kind, e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError::new(status_of(kind), format!("{:#}", anyhow::Error::new(e)))
    }
}

impl From<crate::images::Error> for ApiError {
    fn from(e: crate::images::Error) -> ApiError {
        ApiError::of(e.kind(), e)
    }
}

impl From<crate::containers::Error> for ApiError {
    fn from(e: crate::containers::Error) -> ApiError {
        ApiError::of(e.kind(), e)
    }
}

impl From<crate::volumes::Error> for ApiError {
    fn from(e: crate::volumes::Error) -> ApiError {
        ApiError::of(e.kind(), e)
    }
}

impl From<crate::network::Error> for ApiError {
    fn from(e: crate::network::Error) -> ApiError {
        ApiError::of(e.kind(), e)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> ApiError {
        ApiError::new(status_of(Kind::of_status(&s)), s.message().to_string())
    }
}

impl From<crate::reference::Error> for ApiError {
    fn from(e: crate::reference::Error) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

/// Strip `/vX.Y` (refusing versions below the minimum) and add dockerd's headers.
async fn versioned(mut req: Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((ver, tail)) = rest.split_once('/') {
            if let Some((maj, min)) = ver.split_once('.') {
                if let (Ok(maj), Ok(min)) = (maj.parse::<u32>(), min.parse::<u32>()) {
                    if (maj, min) < (1, 24) {
                        return with_headers(
                            ApiError::bad_request(format!(
                                "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                            ))
                            .into_response(),
                        );
                    }
                    let new = match req.uri().query() {
                        Some(q) => format!("/{tail}?{q}"),
                        None => format!("/{tail}"),
                    };
                    if let Ok(uri) = new.parse() {
                        *req.uri_mut() = uri;
                    }
                }
            }
        }
    }
    with_headers(next.run(req).await)
}

fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    r
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("page not found: {} {}", req.method(), req.uri().path()),
    )
}

pub fn router(state: State) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(commit::routes())
        .merge(build::routes())
        .merge(networks::routes())
        .merge(ops::routes())
        .merge(cp::routes())
        .merge(volumes::routes())
        .merge(events::routes())
        .merge(swarm::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(guard())
}

/// A panic while handling one request answers that request with a 500 naming it, and
/// berthd goes on serving (berthd is built to unwind: the `release-daemon` profile).
fn guard() -> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send>) -> Response>
{
    fn answer(p: Box<dyn std::any::Any + Send>) -> Response {
        let what = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        tracing::error!("a request handler panicked: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("berthd failed handling this request (a bug: please report it): {what}"),
        )
        .into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer as fn(_) -> _)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}

/// Serve `-H` (unix:///path or tcp://host:port) until SIGINT/SIGTERM.
pub async fn serve(state: State, host: &str, tls: &tls::TlsOpts) -> anyhow::Result<()> {
    crate::build::clean_leftovers(&state.data_root);
    commit::resume_interrupted(&state).await;
    {
        let st = state.clone();
        tokio::spawn(async move { crate::containers::network::restore(&st).await });
    }
    crate::containers::monitor::spawn(state.clone());
    // The version prefix is stripped before routing, so the layer wraps the whole router.
    let app = tower::Layer::layer(&axum::middleware::from_fn(versioned), router(state.clone()));
    let svc = axum::ServiceExt::<Request>::into_make_service(app);
    if let Some(addr) = host.strip_prefix("tcp://") {
        let cfg = tls::server_config(addr, tls)?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listen on tcp://{addr}: {e}"))?;
        tracing::info!("API listening on tcp://{addr} (TLS: {})", cfg.is_some());
        // (dockerd's `docker info` warnings.)
        let warning = match (&cfg, tls.verify) {
            (None, _) => Some(format!(
                "WARNING: API is accessible on http://{addr} without encryption: anyone who can reach it is root on this host"
            )),
            (Some(_), false) => Some(format!(
                "WARNING: API is accessible on https://{addr} without TLS client verification (--tlsverify): anyone who can reach it is root on this host"
            )),
            (Some(_), true) => None,
        };
        state.warnings.lock().unwrap().extend(warning);
        match cfg {
            Some(cfg) => {
                let l = tls::TlsListener::new(tcp, tokio_rustls::TlsAcceptor::from(cfg))?;
                axum::serve(l, svc)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
            }
            None => {
                axum::serve(tcp, svc)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
            }
        }
        return Ok(());
    }
    let Some(path) = host.strip_prefix("unix://") else {
        anyhow::bail!("-H {host}: want unix:///path or tcp://host:port");
    };
    let socket = std::path::Path::new(path);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Docker's socket: root and the docker-like group may talk to it, nobody else (the
    // mode is set before it listens).
    let listener = berth_fstree::listen_unix(socket, 0o660, group_id("berth"))
        .and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(l)
        })
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", socket.display()))?;
    tracing::info!("API listening on {}", socket.display());
    axum::serve(listener, svc)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// A failure of berthd or the host while serving a request (500).
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_service_goes_on() {
        use tower::Service;
        let mut app: Router = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    let v: Vec<u8> = Vec::new();
                    // An index out of bounds, as a bug would have it.
                    let i = v.len() + 1;
                    v[i].to_string()
                }),
            )
            .route("/fine", axum::routing::get(|| async { "fine" }))
            .layer(guard());
        let req = |p: &str| {
            Request::builder()
                .uri(p)
                .body(Body::empty())
                .expect("request")
        };
        let r = app.call(req("/boom")).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("index out of bounds"), "{body}");
        let r = app.call(req("/fine")).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::OK);
    }
}
