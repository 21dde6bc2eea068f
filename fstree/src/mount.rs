//! Mounting a snapshot (its overlay or bind mounts, as the manager describes them) on a
//! directory for a short look, and back off again.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mount {kind} on {target}")]
    Mount {
        target: String,
        kind: String,
        #[source]
        err: std::io::Error,
    },
    #[error("create mount point {path}")]
    MountPoint {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("mount type {0:?} is not supported")]
    Unsupported(String),
}

/// A mount, as the OCI spec and containerd describe one.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// "overlay" or "bind".
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// Mount `mounts` on `dir` (created if missing), run `f` on it, then detach the mount and
/// remove `dir`: for reading a snapshot briefly (its /etc/passwd, say).
pub fn with_mounted<T>(
    mounts: &[Mount],
    dir: &Path,
    f: impl FnOnce(&Path) -> T,
) -> Result<T, Error> {
    std::fs::create_dir_all(dir).map_err(|err| Error::MountPoint {
        path: dir.display().to_string(),
        err,
    })?;
    let r = mount_all(mounts, dir).map(|()| {
        let out = f(dir);
        let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
        out
    });
    let _ = std::fs::remove_dir(dir);
    r
}

/// Mount `mounts` (as the manager's snapshotter returns them) on `target`. Overlay lower
/// directories are passed one at a time with the new mount API (`lowerdir+`, Linux 6.8+) when
/// the classic option string would exceed a page, so deep images (128 layers and more) mount.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), Error> {
    for m in mounts {
        let fail = |err: std::io::Error| Error::Mount {
            target: target.display().to_string(),
            kind: m.kind.clone(),
            err,
        };
        match m.kind.as_str() {
            "bind" => {
                use nix::mount::{mount, MsFlags};
                let mut flags = MsFlags::MS_BIND;
                if m.options.iter().any(|o| o == "rbind") {
                    flags |= MsFlags::MS_REC;
                }
                mount(
                    Some(m.source.as_str()),
                    target,
                    None::<&str>,
                    flags,
                    None::<&str>,
                )
                .map_err(|e| fail(e.into()))?;
                if m.options.iter().any(|o| o == "ro") {
                    mount(
                        None::<&str>,
                        target,
                        None::<&str>,
                        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                        None::<&str>,
                    )
                    .map_err(|e| fail(e.into()))?;
                }
            }
            "overlay" => {
                let data = m.options.join(",");
                if data.len() < 4000 {
                    nix::mount::mount(
                        Some("overlay"),
                        target,
                        Some("overlay"),
                        nix::mount::MsFlags::empty(),
                        Some(data.as_str()),
                    )
                    .map_err(|e| fail(e.into()))?;
                } else {
                    mount_overlay_fsconfig(&m.options, target).map_err(fail)?;
                }
            }
            other => return Err(Error::Unsupported(other.to_string())),
        }
    }
    Ok(())
}

fn mount_overlay_fsconfig(options: &[String], target: &Path) -> std::io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|_| std::io::Error::other("NUL in option"));
    let name = c("overlay")?;
    // SAFETY: fsopen takes a NUL-terminated filesystem name; returns a new fd or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned to us.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    let set = |key: &str, value: &str| -> std::io::Result<()> {
        let (k, v) = (c(key)?, c(value)?);
        // SAFETY: fs is an fs-context fd; k and v are NUL-terminated strings alive here.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                libc::FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(std::io::Error::other(format!(
                "overlay option {key}={value}: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    };
    for o in options {
        let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
        if k == "lowerdir" {
            for l in v.split(':') {
                set("lowerdir+", l)?;
            }
        } else {
            set(k, v)?;
        }
    }
    // SAFETY: as above; FSCONFIG_CMD_CREATE takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fs is a configured context; fsmount returns a new mount fd or -1.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0) };
    if mnt < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned to us.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as i32) };
    let empty = c("")?;
    let tgt = c(&target.display().to_string())?;
    // SAFETY: mnt is a detached mount fd; empty and tgt are NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            tgt.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// This process's mount points (`/proc/self/mountinfo`, octal escapes such as `\040`
/// undone), in mount order.
pub fn mount_points() -> Vec<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            let b = m.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let esc = b[i] == b'\\'
                    && i + 3 < b.len()
                    && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
                if esc {
                    let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
                    out.push(v);
                    i += 4;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            std::path::PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}
