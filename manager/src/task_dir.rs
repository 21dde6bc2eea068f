//! What a task leaves outside the manager's memory: its directory (`<state>/tasks/<id>`,
//! with its rootfs mount point and the exit file the shim writes, read back after a
//! restart; removed without ever recursing into a live mount), its shim (dialled, waited
//! for) and its runtime state (force-deleted).

use std::path::Path;
use std::time::Duration;

use berth_proto::shim::shim_client::ShimClient;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::store::TaskRecord;

/// Remove a task directory, unmounting its rootfs (a snapshot mount) first: removing files
/// through a live mount would delete the container's layer.
pub fn remove_task_dir(dir: &Path) {
    let rootfs = dir.join("rootfs");
    unmount_rootfs(dir);
    // Never recurse into a mount that would not go away.
    if is_mount_point(&rootfs) {
        tracing::error!(
            "{} is still mounted: leaving {}",
            rootfs.display(),
            dir.display()
        );
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Detach whatever is mounted on a task directory's `rootfs`.
pub(crate) fn unmount_rootfs(dir: &Path) {
    let rootfs = dir.join("rootfs");
    while nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}

pub(crate) fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Connect to a shim's socket.
pub(crate) async fn connect(id: &str, sock: &Path) -> Result<ShimClient<Channel>> {
    berth_shim::client::connect(sock)
        .await
        .map_err(|err| Error::ShimGone {
            id: id.to_string(),
            socket: sock.display().to_string(),
            err,
        })
}

/// Wait until `pid` (a shim: not our child) has exited, or `limit` passed.
pub(crate) async fn wait_gone(pid: u32, limit: Duration) {
    if pid == 0 {
        return;
    }
    // A pidfd turns readable when the process exits: no polling delay.
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd >= 0 {
        // SAFETY: the kernel just returned this fd and nobody else owns it.
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same for its life.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        };
        if let Ok(afd) = registered {
            let _ = tokio::time::timeout(limit, afd.readable()).await;
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn read_exit_file(dir: &Path) -> Option<(u32, String)> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(berth_shim::files::EXIT)).ok()?).ok()?;
    Some((
        v["exit_status"].as_u64()? as u32,
        v["exited_at"].as_str().unwrap_or_default().to_string(),
    ))
}

/// `runtime delete --force`: true if the runtime still had the container (so it was killed).
pub(crate) async fn force_delete(rec: &TaskRecord) -> bool {
    let mut state = tokio::process::Command::new(&rec.runtime);
    if !rec.runtime_root.is_empty() {
        state.arg("--root").arg(&rec.runtime_root);
    }
    let known = state
        .arg("state")
        .arg(&rec.id)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["status"].as_str().map(str::to_string));
    let mut del = tokio::process::Command::new(&rec.runtime);
    if !rec.runtime_root.is_empty() {
        del.arg("--root").arg(&rec.runtime_root);
    }
    let _ = del
        .args(["delete", "--force"])
        .arg(&rec.id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    matches!(known.as_deref(), Some("running" | "paused" | "created"))
}
