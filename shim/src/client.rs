//! Dialing a shim: a tonic channel over its unix socket.

use std::path::Path;

use berth_proto::shim::shim_client::ShimClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connect to the shim listening on `socket`. Fails at once if nothing listens there.
pub async fn connect(socket: &Path) -> Result<ShimClient<Channel>, tonic::transport::Error> {
    Ok(ShimClient::new(channel(socket).await?))
}

/// A gRPC channel to any server on a unix socket (the manager dials its own clients so too).
pub async fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = socket.to_path_buf();
    Endpoint::from_static("http://berth-shim")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
}
