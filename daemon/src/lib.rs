//! berthd's library: image references with Docker's normalisation ([`reference`]), daemon.json
//! ([`config`]), an OCI distribution client ([`registry`]), and image operations on top of
//! berth-manager's content store and snapshotter ([`images`]: pull, push, import, tag,
//! remove, list, inspect, history; [`archive`]: save and load).
//!
//! What it leaves to neighbours: blobs, snapshots, unpacking and garbage collection live in
//! berth-manager (reached over gRPC, [`manager`]); the Docker Engine API comes next.

pub mod api;
pub mod archive;
pub mod config;
pub mod dockerfile;
pub mod images;
pub mod instructions;
pub mod manager;
pub mod network;
pub mod reference;
pub mod registry;
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
