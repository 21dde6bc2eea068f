//! The container's init before `execve`: runs in the process `create` cloned into the new
//! namespaces. Talks to the runtime over a [`Channel`]: `go` → (`hooks` → state) → `ready` or
//! `error:<message>`. Then it waits on `exec.fifo` for `start` and becomes the container process.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::channel::Channel;
use crate::error::{chain, Error, Result, SysContext};
use crate::{hooks, process, rootfs, sys};

/// Everything the init needs, prepared by `create` before the clone.
pub struct InitCtx<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub chan: &'a Channel,
    /// The exec fifo, opened for reading (non-blocking) before the clone.
    pub fifo: &'a OwnedFd,
    /// The container's state directory (O_PATH): where a failure after `ready` is reported
    /// for `start` to return (`start.error`).
    pub state_dir: &'a OwnedFd,
    pub console: Option<RawFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub cgroup_dirs: &'a [(String, PathBuf)],
    pub cgroup_v2: bool,
    pub new_user_ns: bool,
    pub new_cgroup_ns: bool,
    pub new_uts_ns: bool,
    /// Mount namespace to join (by path) instead of a new one.
    pub join_mnt: Option<&'a OwnedFd>,
    /// Neither a new nor a joined mount namespace: we are in the runtime's.
    pub host_mounts: bool,
    /// User namespace to join, then unshare `unshare_flags` (and fork for a new pid ns).
    pub join_user: Option<&'a OwnedFd>,
    pub unshare_flags: u64,
    /// `linux.timeOffsets`, formatted: unshare the time namespace, write them, enter it.
    pub time_offsets: Option<&'a str>,
    /// Unshare the cgroup namespace after `go` (once we sit in the container's cgroup).
    pub late_cgroup_ns: bool,
    /// Move ourselves into the legacy (v1) hierarchies first (see cgroups::join_self_v1).
    pub self_join_v1: bool,
    /// The seccomp filters, compiled by the runtime before the clone.
    pub seccomp: Option<&'a crate::seccomp::Compiled>,
}

/// Entry point of the forked init. Never returns.
pub fn run(ctx: InitCtx) -> ! {
    match setup(&ctx) {
        Ok(never) => match never {},
        Err(e) => {
            let msg = format!("error:{}", chain(&e));
            if ctx.chan.send(msg.as_bytes()).is_err() {
                // Past `ready` (start was called): leave the error for `start` to return, and
                // tell the container's stderr.
                report_start_error(ctx.state_dir, &chain(&e));
                eprintln!("berth-runtime init: {}", chain(&e));
            }
            sys::exit_now(127)
        }
    }
}

fn setup(ctx: &InitCtx) -> Result<std::convert::Infallible> {
    let spec = ctx.spec;
    // `process` may be missing at create (the spec requires it only at start, which then
    // fails): the environment is built all the same.
    let process = spec.process().as_ref();
    sys::set_parent_death_signal(libc::SIGKILL).sys(|| "set parent death signal".into())?;
    if ctx.self_join_v1 {
        // Single-threaded here: we were cloned from the runtime's only thread.
        crate::cgroups::join_self_v1(ctx.cgroup_dirs)?;
    }

    if let Some(user) = ctx.join_user {
        nix::sched::setns(user, nix::sched::CloneFlags::CLONE_NEWUSER)
            .sys(|| "join user namespace".into())?;
        if let Some(mnt) = ctx.join_mnt {
            nix::sched::setns(mnt, nix::sched::CloneFlags::CLONE_NEWNS)
                .sys(|| "join mount namespace".into())?;
        }
        let flags = ctx.unshare_flags & !(libc::CLONE_NEWCGROUP as u64);
        nix::sched::unshare(nix::sched::CloneFlags::from_bits_truncate(flags as i32))
            .sys(|| "unshare namespaces".into())?;
        if let Some(offsets) = ctx.time_offsets {
            enter_time_ns(offsets)?;
        }
        if ctx.unshare_flags & libc::CLONE_NEWPID as u64 != 0 {
            // A new pid namespace only applies to children: the grandchild is the init.
            // CLONE_PARENT: the init becomes the runtime's child (waitable by `run`, and its
            // parent-death signal follows the runtime, not us; we exit right away).
            match sys::clone3(libc::CLONE_PARENT as u64, None)
                .sys(|| "fork into the new pid namespace".into())?
            {
                sys::Forked::Parent(pid) => {
                    let _ = ctx.chan.send(format!("pid:{pid}").as_bytes());
                    sys::exit_now(0);
                }
                sys::Forked::Child => {
                    sys::set_parent_death_signal(libc::SIGKILL)
                        .sys(|| "set parent death signal".into())?;
                }
            }
        }
    }
    ctx.chan.expect(b"go")?;
    if ctx.late_cgroup_ns
        || (ctx.join_user.is_some() && ctx.unshare_flags & libc::CLONE_NEWCGROUP as u64 != 0)
    {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .sys(|| "unshare the cgroup namespace".into())?;
    }
    if ctx.new_user_ns || ctx.join_user.is_some() {
        // Become the namespace's root: our host uid means nothing (is unmapped) in it.
        let root = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root, root, root)
            .sys(|| "become gid 0 in the user namespace".into())?;
        let root = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(root, root, root)
            .sys(|| "become uid 0 in the user namespace".into())?;
    }
    if let (Some(offsets), None) = (ctx.time_offsets, ctx.join_user) {
        enter_time_ns(offsets)?;
    }
    if ctx.join_user.is_none() {
        if let Some(mnt) = ctx.join_mnt {
            nix::sched::setns(mnt, nix::sched::CloneFlags::CLONE_NEWNS)
                .sys(|| "join mount namespace".into())?;
        }
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    if !ctx.no_new_keyring {
        match sys::join_session_keyring(&format!("_ses.{}", ctx.id)) {
            Ok(()) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EACCES) => {}
            Err(e) => return Err(Error::sys("join a new session keyring", e)),
        }
    }
    if ctx.new_uts_ns {
        if let Some(h) = spec.hostname() {
            nix::unistd::sethostname(h).sys(|| format!("sethostname {h}"))?;
        }
        if let Some(d) = spec.domainname() {
            sys::setdomainname(d).sys(|| format!("setdomainname {d}"))?;
        }
    }

    // A joined mount namespace gets the same rootfs work as a new one, done inside it (the
    // bundle's paths are resolved there, as runc and crun do).
    rootfs::prepare(&rootfs::RootfsCtx {
        mnt: &sys::Kernel,
        spec,
        rootfs: ctx.rootfs,
        bundle: ctx.bundle,
        cgroup_dirs: ctx.cgroup_dirs,
        cgroup_v2: ctx.cgroup_v2,
        // Joined or new: either way mknod is not ours to use.
        new_user_ns: ctx.new_user_ns || ctx.join_user.is_some(),
        new_cgroup_ns: ctx.new_cgroup_ns,
        host_mounts: ctx.host_mounts,
    })?;
    let h = spec.hooks().as_ref();
    let has_hooks = h.is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|x| x.as_ref().is_some_and(|v| !v.is_empty()))
    });
    // The state our hooks read comes from the runtime (it knows our pid as the host sees it).
    let mut state = String::new();
    if has_hooks {
        ctx.chan.send(b"hooks")?;
        let got = ctx.chan.recv()?.ok_or_else(|| Error::Init {
            id: ctx.id.to_string(),
            msg: "the runtime went away during hooks".into(),
        })?;
        state = String::from_utf8_lossy(&got).into_owned();
        hooks::run(
            "createContainer",
            h.and_then(|h| h.create_container().as_ref()),
            &state,
        )?;
    }
    // pivot_root needs a mount namespace of our own: in the runtime's, chroot.
    rootfs::switch_root(ctx.rootfs, ctx.no_pivot, ctx.host_mounts)?;
    if let Some(process) = process.filter(|p| p.terminal() == Some(true)) {
        let sock = ctx.console.ok_or_else(|| {
            Error::config(
                "config.json",
                "process.terminal is true but no --console-socket was given",
            )
        })?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        let slave = process::setup_terminal(sock, size)?;
        bind_console(&slave)?;
        drop(slave);
    }
    rootfs::apply_sysctl(spec)?;
    rootfs::finish(spec)?;
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        let persona = match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
            _ => 0x0000,
        };
        sys::personality(persona).sys(|| "personality".into())?;
    }
    if let Some(m) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        crate::sched::apply_memory_policy(m)?;
    }
    let program = match process {
        Some(process) => {
            process::apply_rlimits(process)?;
            crate::sched::apply_process(process)?;
            let program = process::resolve(process)?;
            process::enter_cwd(process.cwd())?;
            Some((process, program))
        }
        None => None,
    };
    sys::set_parent_death_signal(0).sys(|| "clear parent death signal".into())?;
    ctx.chan.send(b"ready")?;

    wait_for_start(ctx.fifo)?;
    let Some((process, program)) = program else {
        return Err(Error::config(
            ctx.bundle.join("config.json"),
            "process: missing (start needs a process to run)",
        ));
    };
    hooks::run(
        "startContainer",
        h.and_then(|h| h.start_container().as_ref()),
        &state,
    )?;
    process::finalize_and_exec(process, ctx.seccomp, &program, ctx.preserve_fds, true)
}

fn report_start_error(dir: &OwnedFd, msg: &str) {
    use nix::fcntl::OFlag;
    if let Ok(fd) = sys::openat(
        dir.as_raw_fd(),
        crate::state::START_ERROR,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    ) {
        let _ = nix::unistd::write(&fd, msg.as_bytes());
    }
}

/// Block until `start` writes to the exec fifo (we hold its read end).
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("wait on exec fifo", e)),
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(fifo.as_raw_fd(), &mut b) {
            Ok(1) => return Ok(()),
            Ok(_) | Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => return Err(Error::sys("read exec fifo", e)),
        }
    }
}

/// Bind the pty slave on /dev/console through descriptors (CVE-2025-52565): the target is
/// opened without following symlinks inside /dev and must be a regular file or character
/// device (created when missing), the source is the slave we opened and checked; the bind
/// goes from one fd to the other, before the masked and read-only paths are applied.
fn bind_console(slave: &OwnedFd) -> Result<()> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let dev = sys::open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .sys(|| "open /dev for /dev/console".into())?;
    let open = || {
        sys::openat(
            dev.as_raw_fd(),
            "console",
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
    };
    let target = match open() {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => {
            match sys::openat(
                dev.as_raw_fd(),
                "console",
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(Error::sys("create /dev/console", e)),
            }
            open().sys(|| "open /dev/console".into())?
        }
        Err(e) => return Err(Error::sys("open /dev/console", e)),
    };
    let st = nix::sys::stat::fstat(target.as_raw_fd()).sys(|| "stat /dev/console".into())?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(Error::Init {
            id: String::new(),
            msg: "/dev/console in the container is not a file or device (a symlink?): refusing to bind the console there".into(),
        });
    }
    sys::bind_fd(slave, &target).sys(|| "bind the pty on /dev/console".into())
}
/// A new time namespace with offsets: unshare it (it becomes our children's), write the
/// offsets while no process is in it, then enter it ourselves (allowed for a single-threaded
/// process), so the container's process sees the shifted clocks.
fn enter_time_ns(offsets: &str) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
        libc::CLONE_NEWTIME,
    ))
    .sys(|| "unshare the time namespace".into())?;
    std::fs::write("/proc/self/timens_offsets", offsets)
        .map_err(|e| Error::io("write linux.timeOffsets to", "/proc/self/timens_offsets", e))?;
    let ns = sys::open(
        "/proc/self/ns/time_for_children",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .sys(|| "open /proc/self/ns/time_for_children".into())?;
    nix::sched::setns(
        ns,
        nix::sched::CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    )
    .sys(|| "enter the new time namespace".into())
}
