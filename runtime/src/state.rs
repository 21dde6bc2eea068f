//! On-disk state of a container under the runtime root (`/run/berth-runtime/<id>/`).
//!
//! `state.json` is small (id, pid and its start time, bundle, cgroup) so `start`, `state` and
//! `kill` parse almost nothing; `config.json` is a frozen copy of the bundle's config for `exec`
//! and the `poststop` hooks; `exec.fifo` exists while the container is `created`. Every write is
//! atomic (temp file + rename), so a `kill -9` at any moment leaves either the old or the new
//! file. (No fsync: runtime state is volatile, on tmpfs, like runc's.)

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// File in the state directory where the init leaves an error that happened after `start`
/// released it (startContainer hook, setup, execve), for `start` to report.
pub const START_ERROR: &str = "start.error";

/// The lifecycle states of the OCI runtime spec, plus `paused` as runc reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What we remember of a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Init pid in the runtime's pid namespace; 0 while creating.
    pub pid: i32,
    /// `starttime` of the pid from /proc/<pid>/stat, to tell it from a reused pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// Uid of the user that created it.
    pub owner: u32,
    /// Cgroup directories the container was placed in (one per hierarchy).
    pub cgroup_paths: Vec<PathBuf>,
    /// Parent cgroup directories create made (removed at delete when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroup_parents: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
    /// The config has poststart or poststop hooks: only then do `start` and `delete` read the
    /// frozen config.json (state.json stays the only file they parse otherwise).
    #[serde(default)]
    pub late_hooks: bool,
    /// No mount namespace of its own: the container's mounts were made under the rootfs in
    /// the runtime's mount namespace, and `delete` unmounts them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_mounts: bool,
}

/// The directory holding one container's state.
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
}

impl ContainerDir {
    /// The directory for `id` under `root` (not checked for existence).
    pub fn new(root: &Path, id: &str) -> Result<Self> {
        crate::spec::validate_id(id)?;
        Ok(ContainerDir {
            id: id.to_string(),
            path: root.join(id),
        })
    }

    /// Create the directory; fails with `Exists` if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        let dir = Self::new(root, id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .ctx("create runtime root", root)?;
        match fs::DirBuilder::new().mode(0o711).create(&dir.path) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::io("create state dir", &dir.path, e)),
        }
    }

    /// Open an existing container's directory, `NotFound` if there is none.
    pub fn open(root: &Path, id: &str) -> Result<Self> {
        let dir = Self::new(root, id)?;
        if !dir.path.is_dir() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(dir)
    }

    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn config_file(&self) -> PathBuf {
        self.path.join("config.json")
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    /// Read state.json; a directory without one is a create that died half-way.
    pub fn load(&self) -> Result<State> {
        let path = self.state_file();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(self.id.clone()))
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| Error::config(&path, format!("corrupt state: {e}")))
    }

    /// Write state.json atomically.
    pub fn save(&self, state: &State) -> Result<()> {
        let text = serde_json::to_vec(state).expect("state serialises");
        write_atomic(&self.state_file(), &text, 0o600)
    }

    /// The frozen copy of the container's config.
    pub fn load_config(&self) -> Result<oci_spec::runtime::Spec> {
        let path = self.config_file();
        let text = fs::read(&path).ctx("read", &path)?;
        crate::spec::read_json(&path, &text)
    }

    /// Remove the whole directory.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove state dir", &self.path, e)),
        }
    }
}

/// Write `data` to `path` atomically (state under `/run`: no fsync, a reboot clears it).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    berth_fstree::write_atomic_until_reboot(path, data, mode).ctx("write atomically", path)
}

/// Start time (clock ticks since boot) of `pid`, and whether it is a zombie.
pub fn proc_start(pid: i32) -> Option<(u64, bool)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

/// Is the init recorded in `state` still alive (and the same process)?
pub fn init_alive(state: &State) -> bool {
    if state.pid <= 0 {
        return false;
    }
    match proc_start(state.pid) {
        Some((start, zombie)) => start == state.pid_start && !zombie,
        None => false,
    }
}

/// RFC 3339 UTC timestamp with nanoseconds, like runc's `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Format seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm, public domain description).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951782400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1700000000, 0), "2023-11-14T22:13:20.000000000Z");
    }

    #[test]
    fn proc_start_of_self() {
        let (start, zombie) = proc_start(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(!zombie);
        assert!(proc_start(-5).is_none());
    }
}
