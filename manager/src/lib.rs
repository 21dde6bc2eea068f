//! berth-manager: containers and tasks over gRPC, usable without berthd.
//!
//! It owns container metadata (a redb store under `--root`), starts one `berth-shim` per task
//! (state under `--state`: `tasks/<id>/` is both the bundle and the shim's directory), follows
//! each shim's events and exit, and republishes them on `berth.manager.v1.Events`. It never
//! runs container processes itself: shims do, through a runc-compatible runtime chosen per
//! container. Killing the manager leaves shims and containers running; a new manager finds the
//! shims from its store, reconnects, and reports exits that happened meanwhile.
//!
//! [`oci`] turns an image config plus Docker-style options into a complete OCI runtime
//! config (the containerd `oci.With…` role). [`client`] is the command-line client.

pub mod client;
pub mod config;
pub mod error;
pub mod grpc;
pub mod images;
pub mod manager;
pub mod oci;
pub mod store;
pub mod task_dir;

use std::sync::Arc;

use berth_proto::manager::{
    containers_server::ContainersServer, content_server::ContentServer,
    events_server::EventsServer, images_server::ImagesServer, leases_server::LeasesServer,
    snapshots_server::SnapshotsServer, tasks_server::TasksServer,
};

/// Serve until SIGINT/SIGTERM. Must run inside a tokio runtime.
pub async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let addr = cfg.address.clone();
    if addr.as_os_str().len() > berth_shim::MAX_SOCKET_PATH {
        anyhow::bail!(
            "address {} is {} bytes; a unix socket path holds at most {}",
            addr.display(),
            addr.as_os_str().len(),
            berth_shim::MAX_SOCKET_PATH
        );
    }
    let m = manager::Manager::open(cfg)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    if let Some(dir) = addr.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Root only: the manager runs containers for whoever can reach it.
    let listener = berth_fstree::listen_unix(&addr, 0o600, None)
        .and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(l)
        })
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", addr.display()))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("signal handler");
        let mut int = signal(SignalKind::interrupt()).expect("signal handler");
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    };
    tracing::info!("serving on {}", addr.display());
    tonic::transport::Server::builder()
        .add_service(ContainersServer::new(grpc::Containers(Arc::clone(&m))))
        .add_service(TasksServer::new(grpc::Tasks(Arc::clone(&m))))
        .add_service(EventsServer::new(grpc::Events(Arc::clone(&m))))
        .add_service(ContentServer::new(images::grpc::ContentService(
            m.images.clone(),
        )))
        .add_service(ImagesServer::new(images::grpc::ImagesService(
            m.images.clone(),
        )))
        .add_service(SnapshotsServer::new(images::grpc::SnapshotsService(
            m.images.clone(),
        )))
        .add_service(LeasesServer::new(images::grpc::LeasesService(
            m.images.clone(),
        )))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    let _ = std::fs::remove_file(&addr);
    Ok(())
}
