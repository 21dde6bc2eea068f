//! The one atomic file write: a temp file beside the target (a unique name), written and
//! renamed over the target; a `kill -9` of any process at any moment leaves the old file or
//! the new one, never a torn one, and the temp file is removed when a step fails.
//! [`write_atomic`] is also durable (the file and its directory fsynced: it survives a power
//! loss), for what outlives a reboot (berthd's data root). [`write_atomic_until_reboot`]
//! skips the fsyncs, for state a reboot clears anyway (runtime and task state under `/run`),
//! where an fsync per container start would be pure cost on a disk-backed `/run`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write `data` to `path` atomically and durably, the new file with `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write(path, data, mode, true)
}

/// Write `data` to `path` atomically (safe against any process's crash, not a power loss).
pub fn write_atomic_until_reboot(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write(path, data, mode, false)
}

fn write(path: &Path, data: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("fstree-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        write_atomic(&p, b"old", 0o600).unwrap();
        write_atomic_until_reboot(&p, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A target in a missing directory fails and leaves nothing.
        assert!(write_atomic(&dir.join("no/such/f"), b"x", 0o600).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
