//! berthd's library: the Docker Engine API ([`api`]) over the daemon's services —
//! containers ([`containers`]: lifecycle, exit monitor and restart policies, container
//! networking and mounts), images ([`images`], [`archive`], [`registry`], [`reference`]),
//! the classic builder ([`build`]), networks ([`network`]), volumes ([`volumes`]) — and
//! their shared state ([`state`]) and event bus ([`events`]).
//!
//! What it leaves to neighbours: blobs, snapshots, unpacking, containers' specs and tasks
//! live in berth-manager, reached over gRPC ([`manager`]).

pub mod api;
pub mod archive;
pub mod build;
pub mod clock;
pub mod config;
pub mod containers;
pub mod error;
pub mod events;
pub mod images;
pub mod manager;
pub mod network;
pub mod reference;
pub mod registry;
pub mod state;
pub mod supervise;
pub mod volumes;

/// Write `data` to `path` atomically: a temp file beside it (unique name), synced, renamed
/// over `path`; the temp file is removed on failure. A crash leaves the old or the new file.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", images::unique()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}
