//! What a container changed in its root filesystem, as the manager's snapshotter reports
//! it: the mount points to leave out, and the diff as a layer tar.

use berth_proto::manager as pb;
use tokio::io::AsyncWriteExt;

use super::{Error, Result};
use crate::state::State;

/// The container's mount destinations (their contents are not the container's changes).
pub async fn mount_points(d: &State, id: &str) -> Result<Vec<String>> {
    let c = d
        .images
        .mgr
        .containers
        .clone()
        .get(pb::ContainerRef { id: id.to_string() })
        .await?
        .into_inner();
    let spec: oci_spec::runtime::Spec = serde_json::from_slice(&c.spec)
        .map_err(|e| Error::Internal(format!("container {id}: stored spec: {e}")))?;
    Ok(spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().display().to_string())
        .collect())
}

/// Write the container's changes as an uncompressed layer tar to `path`.
pub async fn write_diff(d: &State, id: &str, path: &std::path::Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let mut s = d
        .images
        .mgr
        .snapshots
        .clone()
        .diff(pb::DiffRequest {
            key: id.to_string(),
            mount_points: mount_points(d, id).await?,
        })
        .await?
        .into_inner();
    let mut f = tokio::fs::File::create(path).await.map_err(io)?;
    while let Some(chunk) = s.message().await? {
        f.write_all(&chunk.data).await.map_err(io)?;
    }
    f.flush().await.map_err(io)?;
    Ok(())
}
