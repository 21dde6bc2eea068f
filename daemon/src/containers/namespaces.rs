//! PidMode, IpcMode, UTSMode and CgroupnsMode → the spec's namespaces, with Docker's
//! checks: `container:X` needs X running (and, for IPC, created shareable); the host's UTS
//! namespace takes no hostname.
//!
//! IPC: "private" (dockerd's default) is a namespace and /dev/shm of the container's own;
//! "shareable" the same, with /dev/shm a tmpfs berthd mounts on the host (in the container's
//! directory) so `container:X` joiners bind the same one; "none" has no /dev/shm at all;
//! "host" the host's namespace and /dev/shm.

use berth_manager::oci::{NsMode, Options, Shm};

use super::doc::{Config, HostConfig};
use super::{dir, find, state_name, task, Container, Error, Result};
use crate::state::State;

/// The IPC mode in effect: the container's, else daemon.json's default-ipc-mode.
pub fn ipc_mode(d: &State, host: &HostConfig) -> String {
    match host.ipc_mode.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => d
            .images
            .reg
            .cfg
            .default_ipc_mode
            .clone()
            .unwrap_or_else(|| "private".into()),
    }
}

/// The host directory that is a shareable container's /dev/shm.
pub fn shm_dir(d: &State, id: &str) -> std::path::PathBuf {
    dir(d, id).join("shm")
}

/// The pid of a running container named by `container:X`, with Docker's message.
async fn running_pid(d: &State, other: &str, what: &str) -> Result<(Container, i64)> {
    let o = find(d, other).await?;
    let pid = task(d, &o.id)
        .await
        .filter(|t| t.pid > 0 && matches!(state_name(Some(t)), "running" | "paused"))
        .map(|t| t.pid as i64)
        .ok_or_else(|| {
            Error::Conflict(format!(
                "cannot join {what} of a non running container: {}",
                o.id
            ))
        })?;
    Ok((o, pid))
}

fn on_cgroup_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Set the namespaces and /dev/shm of a new container `id`. Returns whether the caller
/// must mount the shareable /dev/shm (see [`mount_shm`]).
pub(super) async fn apply(
    d: &State,
    id: &str,
    cfg: &Config,
    host: &HostConfig,
    o: &mut Options,
) -> Result<bool> {
    let dcfg = &d.images.reg.cfg;
    match host.pid_mode.as_deref().unwrap_or("") {
        "" | "private" => {}
        "host" => o.pid = NsMode::Host,
        m if m.starts_with("container:") => {
            let (_, pid) = running_pid(d, &m["container:".len()..], "PID namespace").await?;
            o.pid = NsMode::Path(format!("/proc/{pid}/ns/pid"));
        }
        m => return Err(Error::Invalid(format!("invalid PID mode: {m}"))),
    }
    match host.uts_mode.as_deref().unwrap_or("") {
        "" | "private" => {}
        "host" => {
            if cfg.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                return Err(Error::Invalid(
                    "Conflicting options: hostname and the UTS mode".into(),
                ));
            }
            o.uts = NsMode::Host;
            o.hostname = None;
        }
        m => return Err(Error::Invalid(format!("invalid UTS mode: {m}"))),
    }
    let cgroupns = host
        .cgroupns_mode
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| dcfg.default_cgroupns_mode.clone());
    o.cgroupns_private = match cgroupns.as_deref() {
        None => on_cgroup_v2(),
        Some("private") => true,
        Some("host") => false,
        Some(m) => {
            return Err(Error::Invalid(format!(
                "invalid cgroup namespace mode: {m} (private or host)"
            )))
        }
    };
    if let Some(s) = host.shm_size {
        if s < 0 {
            return Err(Error::Invalid("SHM size can not be less than 0".into()));
        }
    }
    o.shm_size = host
        .shm_size
        .filter(|s| *s > 0)
        .map(|s| s as u64)
        .or_else(|| {
            dcfg.default_shm_size
                .as_deref()
                .and_then(crate::config::parse_size)
        });
    let mode = ipc_mode(d, host);
    let mut mount = false;
    match mode.as_str() {
        "private" => {}
        "shareable" => {
            o.shm = Shm::Bind(shm_dir(d, id).display().to_string());
            mount = true;
        }
        "none" => o.shm = Shm::None,
        "host" => {
            o.ipc = NsMode::Host;
            o.shm = Shm::Bind("/dev/shm".into());
        }
        m if m.starts_with("container:") => {
            let (other, pid) = running_pid(d, &m["container:".len()..], "IPC namespace").await?;
            match ipc_mode(d, &other.doc.host_config).as_str() {
                "shareable" => {
                    o.ipc = NsMode::Path(format!("/proc/{pid}/ns/ipc"));
                    o.shm = Shm::Bind(shm_dir(d, &other.id).display().to_string());
                }
                "host" => {
                    o.ipc = NsMode::Host;
                    o.shm = Shm::Bind("/dev/shm".into());
                }
                _ => {
                    return Err(Error::Conflict(format!(
                        "cannot join IPC namespace of container {}: its IPC is not shareable (create it with --ipc shareable)",
                        other.id
                    )))
                }
            }
        }
        m => return Err(Error::Invalid(format!("invalid IPC mode: {m}"))),
    }
    Ok(mount)
}

/// Mount the tmpfs that is shareable container `id`'s /dev/shm (if not mounted already:
/// after a reboot, at the next start).
pub fn mount_shm(d: &State, id: &str, size: Option<u64>) -> Result<()> {
    let p = shm_dir(d, id);
    std::fs::create_dir_all(&p)
        .map_err(|e| Error::Internal(format!("create {}: {e}", p.display())))?;
    if is_mountpoint(&p) {
        return Ok(());
    }
    let data = format!(
        "mode=1777,size={}k",
        size.unwrap_or(64 << 20).div_ceil(1024)
    );
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("shm"),
        &p,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .map_err(|e| {
        Error::Internal(format!(
            "mount the shareable /dev/shm at {}: {e}",
            p.display()
        ))
    })
}

/// Unmount a removed container's shareable /dev/shm (nothing if it has none).
pub fn unmount_shm(d: &State, id: &str) {
    let p = shm_dir(d, id);
    if is_mountpoint(&p) {
        if let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(container_id = %id, "unmount {}: {e}", p.display());
        }
    }
}

pub(super) fn is_mountpoint(p: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}
