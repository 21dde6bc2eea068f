//! The container's file system view: mounts, devices, pivot_root, masked and read-only paths.
//!
//! Runs in the container's init, in its new mount namespace. Every mount destination is
//! resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)` and mounted through
//! `/proc/self/fd/N`, so a symlink planted in the rootfs (or swapped in during setup) can never
//! redirect a mount outside it (CVE-2021-30465 class). Masking binds a `/dev/null` that was
//! checked to be the real character device 1:3 (CVE-2025-31133).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{Error, Result, SysContext};
use crate::sys::{self, Mounter};

/// Map a propagation name (`rootfsPropagation` or a mount option) to its flag.
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Parsed mount options: flags to set, flags to clear, propagation, and fs-specific data.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
}

/// Parse OCI/fstab-style mount options.
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        bind: false,
        recursive: false,
    };
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            // Runtime-specific or recursive-attribute options we accept and ignore.
            "tmpcopyup" | "rro" | "rrw" | "idmap" | "ridmap" | "nocopyup" | "copy-symlink" => {
                continue
            }
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    o
}

/// What the init needs to build the file system view.
pub struct RootfsCtx<'a, M: Mounter = sys::Kernel> {
    /// How mounts are made ([`sys::Kernel`] outside tests).
    pub mnt: &'a M,
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Host cgroup directories of the container (for `cgroup` mounts on v1).
    pub cgroup_dirs: &'a [(String, PathBuf)],
    pub cgroup_v2: bool,
    pub new_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// No mount namespace of our own (see [`crate::state::State::host_mounts`]): leave the
    /// propagation of the runtime's mounts alone.
    pub host_mounts: bool,
}

fn mount_err<'a>(what: &str, dst: &'a Path) -> impl FnOnce(nix::Error) -> Error + 'a {
    let what = what.to_string();
    move |e| Error::sys(format!("{what} {}", dst.display()), e)
}

/// Open (creating as needed) `dest` inside `root`. `dir` says what to create at the end.
fn ensure_in_root(root: &OwnedFd, dest: &Path, dir: bool) -> Result<OwnedFd> {
    if let Ok(fd) = sys::open_in_root(root.as_raw_fd(), dest, libc::O_PATH) {
        return Ok(fd);
    }
    let mut cur = PathBuf::from("/");
    let comps: Vec<_> = dest.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let name = match c {
            Component::Normal(n) => *n,
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => {
                cur.pop();
                continue;
            }
            Component::Prefix(_) => continue,
        };
        let next = cur.join(name);
        let last = i + 1 == comps.len();
        match sys::open_in_root(root.as_raw_fd(), &next, libc::O_PATH) {
            Ok(_) => {}
            Err(nix::errno::Errno::ENOENT) => {
                let parent = sys::open_in_root(root.as_raw_fd(), &cur, libc::O_DIRECTORY)
                    .sys(|| format!("open {} in rootfs", cur.display()))?;
                if last && !dir {
                    let r = nix::fcntl::openat(
                        Some(parent.as_raw_fd()),
                        name,
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_CLOEXEC
                            | OFlag::O_NOFOLLOW,
                        Mode::from_bits_truncate(0o644),
                    );
                    match r {
                        Ok(fd) => {
                            let _ = nix::unistd::close(fd);
                        }
                        Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(Error::sys(
                                format!("create {} in rootfs", next.display()),
                                e,
                            ))
                        }
                    }
                } else {
                    match nix::sys::stat::mkdirat(
                        Some(parent.as_raw_fd()),
                        name,
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(Error::sys(
                                format!("mkdir {} in rootfs", next.display()),
                                e,
                            ))
                        }
                    }
                }
            }
            Err(e) => return Err(Error::sys(format!("open {} in rootfs", next.display()), e)),
        }
        cur = next;
    }
    sys::open_in_root(root.as_raw_fd(), dest, libc::O_PATH)
        .sys(|| format!("open {} in rootfs", dest.display()))
}

/// Everything done before pivot_root: propagation, rootfs bind, spec mounts, devices.
pub fn prepare<M: Mounter>(ctx: &RootfsCtx<M>) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag);
    // Make our copy of the host's mounts a slave (or what the spec says) so nothing we mount
    // propagates back to the host.
    let base = match prop {
        Some(f) if f.contains(MsFlags::MS_PRIVATE) => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if !ctx.host_mounts {
        ctx.mnt
            .mount(None::<&str>, "/", None::<&str>, base, None::<&str>)
            .map_err(mount_err("set propagation of", Path::new("/")))?;
    }
    // The rootfs must be a mount point for pivot_root (and, without a mount namespace, so
    // that a read-only root or rootfsPropagation changes it alone, not the mount holding it).
    ctx.mnt
        .mount(
            Some(ctx.rootfs),
            ctx.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mount_err("bind rootfs", ctx.rootfs))?;
    let root = sys::open(
        ctx.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .sys(|| format!("open rootfs {}", ctx.rootfs.display()))?;

    let mounts = ctx.spec.mounts().clone().unwrap_or_default();
    let dev_bound = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && is_bind(m));
    for m in &mounts {
        mount_one(ctx, &root, m)?;
    }
    if !dev_bound {
        create_devices(ctx, &root)?;
        dev_symlinks(&root)?;
    }
    Ok(())
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Files under /proc a mount may cover (what runc allows: lxcfs-style views of system
/// files, and `ns_last_pid` for checkpoint/restore). Nothing else under /proc may be a
/// mount destination: a bind over a /proc file or directory is how masking and read-only
/// paths get undone (CVE-2025-52565 class).
const PROC_MOUNTS_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Refuse a mount on /proc itself that is not procfs, and on anything under /proc but the
/// allowed files.
fn check_proc_destination(m: &Mount) -> Result<()> {
    let mut clean = PathBuf::from("/");
    for c in m.destination().components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    if !clean.starts_with("/proc") {
        return Ok(());
    }
    if clean == Path::new("/proc") {
        if m.typ().as_deref() == Some("proc") {
            return Ok(());
        }
        return Err(Error::config(
            m.destination(),
            "only a proc file system can be mounted on /proc",
        ));
    }
    if PROC_MOUNTS_ALLOWED.iter().any(|a| clean == Path::new(a)) {
        return Ok(());
    }
    Err(Error::config(
        m.destination(),
        "cannot be a mount destination: it is inside /proc (only /proc/cpuinfo, meminfo, stat, uptime and the like may be covered)",
    ))
}

fn mount_one<M: Mounter>(ctx: &RootfsCtx<M>, root: &OwnedFd, m: &Mount) -> Result<()> {
    check_proc_destination(m)?;
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().clone().unwrap_or_default();
    if opts.bind || typ == "bind" {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            ctx.bundle.join(src)
        };
        let meta = std::fs::metadata(&src).map_err(|e| Error::io("bind mount source", &src, e))?;
        let target = ensure_in_root(root, dest, meta.is_dir())?;
        let tpath = sys::fd_path(&target);
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        ctx.mnt
            .mount(
                Some(&src),
                tpath.as_str(),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(mount_err("bind mount on", dest))?;
        let extra = opts.flags & !MsFlags::MS_REMOUNT;
        if !extra.is_empty() {
            // Reopen: the fd still names the directory *under* the new mount.
            let target = ensure_in_root(root, dest, meta.is_dir())?;
            remount_bind(ctx.mnt, &sys::fd_path(&target), extra, dest)?;
        }
        apply_propagation(ctx.mnt, root, dest, &opts.propagation)?;
        return Ok(());
    }
    match typ.as_str() {
        "cgroup" | "cgroup2" => return mount_cgroup(ctx, root, m, &opts),
        "" => {
            return Err(Error::config(
                dest,
                "mount has no type and is not a bind mount",
            ))
        }
        _ => {}
    }
    let target = ensure_in_root(root, dest, true)?;
    let tpath = sys::fd_path(&target);
    let data = opts.data.join(",");
    let src = m
        .source()
        .clone()
        .unwrap_or_else(|| PathBuf::from(typ.clone()));
    let res = ctx.mnt.mount(
        Some(&src),
        tpath.as_str(),
        Some(typ.as_str()),
        opts.flags,
        if data.is_empty() {
            None
        } else {
            Some(data.as_str())
        },
    );
    match res {
        Ok(()) => {}
        // sysfs cannot be mounted without a network namespace of our own (or in a user
        // namespace): bind the host's read-only instead, as runc does.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
            ctx.mnt
                .mount(
                    Some("/sys"),
                    tpath.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(mount_err("bind /sys on", dest))?;
            let target = ensure_in_root(root, dest, true)?;
            remount_bind(
                ctx.mnt,
                &sys::fd_path(&target),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                dest,
            )?;
        }
        Err(e) => return Err(Error::sys(format!("mount {typ} on {}", dest.display()), e)),
    }
    apply_propagation(ctx.mnt, root, dest, &opts.propagation)
}

fn apply_propagation<M: Mounter>(
    mnt: &M,
    root: &OwnedFd,
    dest: &Path,
    props: &[MsFlags],
) -> Result<()> {
    for p in props {
        let target = ensure_in_root(root, dest, true)?;
        mnt.mount(
            None::<&str>,
            sys::fd_path(&target).as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(mount_err("set propagation of", dest))?;
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping the locked flags the kernel insists on.
fn remount_bind<M: Mounter>(mnt: &M, path: &str, flags: MsFlags, dest: &Path) -> Result<()> {
    let mut keep = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(path) {
        use nix::sys::statvfs::FsFlags;
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                keep |= ms;
            }
        }
    }
    mnt.mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | keep,
        None::<&str>,
    )
    .map_err(mount_err("remount", dest))
}

fn mount_cgroup<M: Mounter>(
    ctx: &RootfsCtx<M>,
    root: &OwnedFd,
    m: &Mount,
    opts: &MountOptions,
) -> Result<()> {
    let dest = m.destination();
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let base = opts.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    if ctx.cgroup_v2 {
        let target = ensure_in_root(root, dest, true)?;
        let tpath = sys::fd_path(&target);
        let fl = base
            | if ro {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
        let own_ns_mount = || {
            ctx.mnt.mount(
                Some("cgroup2"),
                tpath.as_str(),
                Some("cgroup2"),
                fl,
                None::<&str>,
            )
        };
        if ctx.new_cgroup_ns && own_ns_mount().is_ok() {
            return Ok(());
        }
        let dir = &ctx.cgroup_dirs[0].1;
        ctx.mnt
            .mount(
                Some(dir),
                tpath.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(mount_err("bind cgroup on", dest))?;
        let target = ensure_in_root(root, dest, true)?;
        return remount_bind(ctx.mnt, &sys::fd_path(&target), fl, dest);
    }
    // v1: a tmpfs with one bind mount of the container's own directory per hierarchy.
    let target = ensure_in_root(root, dest, true)?;
    ctx.mnt
        .mount(
            Some("tmpfs"),
            sys::fd_path(&target).as_str(),
            Some("tmpfs"),
            base,
            Some("mode=755"),
        )
        .map_err(mount_err("mount cgroup tmpfs on", dest))?;
    for (ctl, dir) in ctx.cgroup_dirs {
        let name = if ctl.is_empty() {
            "unified".to_string()
        } else {
            dir.strip_prefix("/sys/fs/cgroup")
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_else(|| ctl.clone())
        };
        let sub = dest.join(&name);
        let t = ensure_in_root(root, &sub, true)?;
        ctx.mnt
            .mount(
                Some(dir),
                sys::fd_path(&t).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(mount_err("bind cgroup on", &sub))?;
        let t = ensure_in_root(root, &sub, true)?;
        let fl = base
            | if ro {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
        remount_bind(ctx.mnt, &sys::fd_path(&t), fl, &sub)?;
    }
    if ro {
        let t = ensure_in_root(root, dest, true)?;
        ctx.mnt
            .mount(
                None::<&str>,
                sys::fd_path(&t).as_str(),
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
                Some("mode=755"),
            )
            .map_err(mount_err("remount read-only", dest))?;
    }
    Ok(())
}

/// The devices every container gets (spec "Default Devices").
fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

fn create_devices<M: Mounter>(ctx: &RootfsCtx<M>, root: &OwnedFd) -> Result<()> {
    let mut list: Vec<(PathBuf, SFlag, u64, u64, u32, u32, u32)> = default_devices()
        .into_iter()
        .map(|(p, maj, min)| (PathBuf::from(p), SFlag::S_IFCHR, maj, min, 0o666, 0, 0))
        .collect();
    let devices: Vec<LinuxDevice> = ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for d in &devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        list.retain(|e| e.0 != *d.path());
        list.push((
            d.path().clone(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        ));
    }
    for (path, kind, maj, min, mode, uid, gid) in list {
        if !path.starts_with("/dev") {
            return Err(Error::config(&path, "device path must be under /dev"));
        }
        let parent = path.parent().unwrap_or(Path::new("/dev"));
        let name = path.file_name().unwrap_or_default();
        let pfd = ensure_in_root(root, parent, true)?;
        let pdir = sys::openat(pfd.as_raw_fd(), ".", OFlag::O_DIRECTORY, Mode::empty())
            .sys(|| format!("open {}", parent.display()))?;
        let _ = nix::unistd::unlinkat(
            Some(pdir.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        if ctx.new_user_ns {
            // mknod is not allowed in a user namespace: bind the host's node instead.
            let fd = nix::fcntl::openat(
                Some(pdir.as_raw_fd()),
                name,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .sys(|| format!("create {}", path.display()))?;
            let _ = nix::unistd::close(fd);
            let t = ensure_in_root(root, &path, false)?;
            ctx.mnt
                .mount(
                    Some(&path),
                    sys::fd_path(&t).as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(mount_err("bind device", &path))?;
            continue;
        }
        let dev = nix::sys::stat::makedev(maj, min);
        nix::sys::stat::mknodat(
            Some(pdir.as_raw_fd()),
            name,
            kind,
            Mode::from_bits_truncate(mode & 0o7777),
            dev,
        )
        .sys(|| format!("mknod {}", path.display()))?;
        // mknod honours the umask: set the mode the spec asked for exactly.
        nix::sys::stat::fchmodat(
            Some(pdir.as_raw_fd()),
            name,
            Mode::from_bits_truncate(mode & 0o7777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .sys(|| format!("chmod {}", path.display()))?;
        nix::unistd::fchownat(
            Some(pdir.as_raw_fd()),
            name,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .sys(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

fn dev_symlinks(root: &OwnedFd) -> Result<()> {
    let dev = ensure_in_root(root, Path::new("/dev"), true)?;
    let dev = sys::openat(dev.as_raw_fd(), ".", OFlag::O_DIRECTORY, Mode::empty())
        .sys(|| "open /dev".into())?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    for (target, name) in links {
        if name == "ptmx" {
            let _ = nix::unistd::unlinkat(
                Some(dev.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

/// Switch the root to the rootfs (pivot_root, or MS_MOVE + chroot with `no_pivot`).
pub fn switch_root(rootfs: &Path, no_pivot: bool, host_mounts: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).sys(|| format!("chdir {}", rootfs.display()))?;
    if host_mounts {
        // The runtime's mount namespace: moving or pivoting would change the host's root.
        nix::unistd::chroot(".").sys(|| "chroot .".into())?;
    } else if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(mount_err("move rootfs to", Path::new("/")))?;
        nix::unistd::chroot(".").sys(|| "chroot .".into())?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; detach it. The
        // cwd still names the new root's mount after the pivot, so go to the old root
        // through a directory fd taken before it: made a slave (so the detach does not
        // propagate to the host) is the old root's tree, not the container's mounts (a
        // shared bind mount stays shared).
        let old_root = nix::fcntl::open(
            "/",
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys(|| "open the old root".into())?;
        // SAFETY: `open` returned a new file descriptor that nothing else owns.
        let old_root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(old_root) };
        sys::pivot_root(Path::new("."), Path::new("."))
            .sys(|| format!("pivot_root {}", rootfs.display()))?;
        nix::unistd::fchdir(old_root.as_raw_fd()).sys(|| "chdir to the old root".into())?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mount_err("make old root slave", Path::new("/")))?;
        umount2(".", MntFlags::MNT_DETACH).sys(|| "detach old root".into())?;
    }
    nix::unistd::chdir("/").sys(|| "chdir /".into())
}

/// Unmount every mount at or below `rootfs`, deepest first (a container without a mount
/// namespace of its own made them in the runtime's).
pub fn unmount_under(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        match umount2(&p, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmount {}", p.display()), e)),
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as octal `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything after the root switch: propagation, read-only root, masked and read-only paths.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if let Some(f) = propagation_flag(p) {
            mount(None::<&str>, "/", None::<&str>, f, None::<&str>)
                .map_err(mount_err("set rootfs propagation", Path::new("/")))?;
        }
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly_path(Path::new(&p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        mask_path(Path::new(&p))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        remount_bind(&sys::Kernel, "/", MsFlags::MS_RDONLY, Path::new("/"))?;
    }
    Ok(())
}

fn open_nofollow(p: &Path) -> nix::Result<OwnedFd> {
    sys::open(p, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())
}

fn readonly_path(p: &Path) -> Result<()> {
    let fd = match open_nofollow(p) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::sys(
                format!("open read-only path {}", p.display()),
                e,
            ))
        }
    };
    let path = sys::fd_path(&fd);
    mount(
        Some(path.as_str()),
        path.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(mount_err("bind read-only path", p))?;
    let fd = open_nofollow(p).sys(|| format!("reopen {}", p.display()))?;
    remount_bind(
        &sys::Kernel,
        &sys::fd_path(&fd),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        p,
    )
}

/// Hide `p`: a read-only empty tmpfs on directories, the verified /dev/null on anything else.
pub fn mask_path(p: &Path) -> Result<()> {
    let fd = match open_nofollow(p) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("open masked path {}", p.display()), e)),
    };
    let st = fstat(fd.as_raw_fd()).sys(|| format!("stat masked path {}", p.display()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFLNK {
        // A symlink cannot be masked in place; it points at something masked or harmless.
        return Ok(());
    }
    let target = sys::fd_path(&fd);
    if kind == SFlag::S_IFDIR {
        return mount(
            Some("tmpfs"),
            target.as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(mount_err("mask directory", p));
    }
    let null = open_nofollow(Path::new("/dev/null")).sys(|| "open /dev/null".into())?;
    let nst = fstat(null.as_raw_fd()).sys(|| "stat /dev/null".into())?;
    let nkind = SFlag::from_bits_truncate(nst.st_mode) & SFlag::S_IFMT;
    if nkind != SFlag::S_IFCHR || nst.st_rdev != nix::sys::stat::makedev(1, 3) {
        return Err(Error::Init {
            id: String::new(),
            msg: format!(
                "refusing to mask {}: /dev/null in the container is not the null device",
                p.display()
            ),
        });
    }
    mount(
        Some(sys::fd_path(&null).as_str()),
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(mount_err("mask", p))
}

/// Write `linux.sysctl` through the container's /proc/sys.
pub fn apply_sysctl(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    if map.is_empty() {
        return Ok(());
    }
    // Through a procfs of our own, never the container's /proc (whatever is mounted on it or
    // under it): CVE-2025-52881 redirected such writes to /proc/sysrq-trigger.
    let proc = sys::Procfs::new().sys(|| "open a private procfs for linux.sysctl".into())?;
    for (k, v) in map {
        if k.contains("..") || k.contains('/') && k.contains('.') {
            return Err(Error::config(&k, "invalid sysctl key"));
        }
        let rel = Path::new("sys").join(k.replace('.', "/"));
        proc.write(&rel, v.as_bytes())
            .sys(|| format!("write sysctl {k} = {v:?} (/proc/{})", rel.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    use crate::sys::{MountCall, Recorder};

    /// A scratch rootfs + bundle under the temp dir (no privileges needed).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir()
                .join(format!("berth-rootfs-unit-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join("rootfs")).unwrap();
            Scratch(p)
        }
        fn rootfs(&self) -> PathBuf {
            self.0.join("rootfs")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(
        scratch: &Scratch,
        mounts: serde_json::Value,
        cgroups: &[(String, PathBuf)],
    ) -> Vec<MountCall> {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": mounts
        }))
        .unwrap();
        let rec = Recorder::default();
        let rootfs = scratch.rootfs();
        let ctx = RootfsCtx {
            mnt: &rec,
            spec: &spec,
            rootfs: &rootfs,
            bundle: &scratch.0,
            cgroup_dirs: cgroups,
            cgroup_v2: false,
            new_user_ns: false,
            new_cgroup_ns: true,
            host_mounts: false,
        };
        let root = sys::open(&rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for m in spec.mounts().iter().flatten() {
            mount_one(&ctx, &root, m).unwrap();
        }
        let calls = rec.calls.borrow().clone();
        calls
    }

    #[test]
    fn proc_destinations() {
        let m = |dest: &str, typ: &str| -> Mount {
            serde_json::from_value(
                serde_json::json!({"destination": dest, "type": typ, "source": "x"}),
            )
            .unwrap()
        };
        assert!(check_proc_destination(&m("/proc", "proc")).is_ok());
        assert!(check_proc_destination(&m("/proc/uptime", "bind")).is_ok());
        assert!(check_proc_destination(&m("/procfoo", "bind")).is_ok());
        for bad in [
            m("/proc", "bind"),
            m("/proc/sys/kernel/core_pattern", "bind"),
            m("/proc/sysrq-trigger", "bind"),
            m("/proc/sys", "tmpfs"),
            m("/tmp/../proc/self/attr", "bind"),
        ] {
            assert!(check_proc_destination(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn readonly_bind_is_bind_then_remount() {
        let s = Scratch::new("robind");
        let src = s.0.join("src");
        std::fs::create_dir(&src).unwrap();
        let calls = record(
            &s,
            serde_json::json!([{"destination": "/data/ro", "type": "bind", "source": "src", "options": ["rbind", "ro", "nosuid", "rslave"]}]),
            &[],
        );
        let dst = s.rootfs().join("data/ro");
        assert!(dst.is_dir(), "mount point created inside the rootfs");
        assert_eq!(calls.len(), 3, "{calls:#?}");
        assert_eq!(
            calls[0].source.as_deref(),
            Some(src.to_str().unwrap()),
            "relative source is bundle-relative"
        );
        assert_eq!(calls[0].target, dst.to_str().unwrap());
        assert_eq!(calls[0].flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(calls[1].flags.contains(
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        ));
        assert_eq!(calls[2].flags, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }

    #[test]
    fn tmpfs_gets_flags_and_data() {
        let s = Scratch::new("tmpfs");
        let calls = record(
            &s,
            serde_json::json!([{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}]),
            &[],
        );
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!(c.fstype.as_deref(), Some("tmpfs"));
        assert_eq!(c.source.as_deref(), Some("shm"));
        assert_eq!(c.flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
        assert_eq!(c.data.as_deref(), Some("mode=1777,size=65536k"));
        assert_eq!(c.target, s.rootfs().join("dev/shm").to_str().unwrap());
    }

    #[test]
    fn symlinked_destination_resolves_inside_the_rootfs() {
        let s = Scratch::new("symlink");
        let outside = s.0.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir_all(s.rootfs().join(outside.strip_prefix("/").unwrap())).unwrap();
        std::os::unix::fs::symlink(&outside, s.rootfs().join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../../../..", s.rootfs().join("up")).unwrap();
        let calls = record(
            &s,
            serde_json::json!([
                {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/up/etc/y", "type": "tmpfs", "source": "tmpfs"}
            ]),
            &[],
        );
        let root = s.rootfs();
        for c in &calls {
            assert!(
                c.target.starts_with(root.to_str().unwrap()),
                "escaped: {c:?}"
            );
        }
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing created outside"
        );
        assert!(root.join("etc/y").is_dir());
    }

    #[test]
    fn cgroup_v1_is_tmpfs_plus_a_bind_per_hierarchy() {
        let s = Scratch::new("cgroup");
        let dirs = vec![
            (
                "memory".to_string(),
                PathBuf::from("/sys/fs/cgroup/memory/ctr"),
            ),
            (
                "name=systemd".to_string(),
                PathBuf::from("/sys/fs/cgroup/systemd/ctr"),
            ),
            (String::new(), PathBuf::from("/sys/fs/cgroup/unified/ctr")),
        ];
        let calls = record(
            &s,
            serde_json::json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "ro"]}]),
            &dirs,
        );
        assert_eq!(calls[0].fstype.as_deref(), Some("tmpfs"));
        let binds: Vec<&MountCall> = calls
            .iter()
            .filter(|c| c.flags == MsFlags::MS_BIND)
            .collect();
        let targets: Vec<String> = binds
            .iter()
            .map(|c| c.target.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(targets, ["memory", "systemd", "unified"]);
        assert_eq!(
            binds[0].source.as_deref(),
            Some("/sys/fs/cgroup/memory/ctr")
        );
        assert!(
            calls
                .last()
                .unwrap()
                .flags
                .contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY),
            "read-only at the end"
        );
    }

    #[test]
    fn options_split_into_flags_data_and_propagation() {
        let o = parse_options(&v(&[
            "nosuid",
            "ro",
            "mode=755",
            "size=65536k",
            "rslave",
            "rbind",
        ]));
        assert!(o.flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_RDONLY));
        assert_eq!(o.data, v(&["mode=755", "size=65536k"]));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(o.bind && o.recursive);
        let o = parse_options(&v(&["ro", "rw"]));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }
}
