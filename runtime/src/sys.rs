//! Raw Linux system calls that neither `nix` nor `libc` wrap conveniently.
//!
//! Every `unsafe` block of the crate that talks to the kernel directly lives here, each with the
//! invariant it relies on. Callers get safe functions returning `nix::Result`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

/// `struct clone_args` from `linux/sched.h` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x200000000;

/// What `clone3` returned in the calling process.
pub enum Forked {
    /// We are the new process.
    Child,
    /// We are the caller; the child has this pid (in our pid namespace).
    Parent(i32),
}

/// Create a process like `fork(2)` but with `flags` (namespace flags) applied to the child and,
/// when `cgroup` is given, born directly inside that cgroup v2 directory.
///
/// The caller must be single-threaded: the child gets a copy of only the calling thread.
pub fn clone3(flags: u64, cgroup: Option<RawFd>) -> nix::Result<Forked> {
    // With CLONE_PARENT the kernel wants exit_signal 0 and uses the caller's own.
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; stack is 0 so
    // the child runs on a copy of our stack, exactly like fork(2). The runtime binary is
    // single-threaded whenever it calls this (no async runtime, no helper threads), so no lock
    // can be held by a thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Plain fork, for the rare paths that need a second process after `setns`/`unshare`.
pub fn fork() -> nix::Result<Forked> {
    clone3(0, None)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> nix::Result<()> {
    nix::unistd::pivot_root(new_root, put_old)
}

pub use berth_fstree::open::{
    open, open_in_root, openat, openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV,
};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A procfs of our own that nothing in the container can have mounted over or swapped
/// (CVE-2025-52881 class): a new, detached proc instance (`fsopen`/`fsmount`), or, where
/// that is refused, a non-recursive clone of the `/proc` mount (`open_tree`), which carries
/// none of the mounts stacked on its sub-paths. Reflects the caller's pid namespace.
pub struct Procfs(OwnedFd);

impl Procfs {
    pub fn new() -> nix::Result<Procfs> {
        let fresh = || -> nix::Result<OwnedFd> {
            // SAFETY: fsopen with a NUL-terminated name and flags; returns a new fd.
            let fs = Errno::result(unsafe {
                libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), libc::FSOPEN_CLOEXEC)
            })? as RawFd;
            // SAFETY: the kernel just returned this fd; we own it.
            let fs = unsafe { OwnedFd::from_raw_fd(fs) };
            // SAFETY: fsconfig(FSCONFIG_CMD_CREATE) takes no key or value pointers.
            Errno::result(unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    libc::FSCONFIG_CMD_CREATE,
                    std::ptr::null::<libc::c_char>(),
                    std::ptr::null::<libc::c_void>(),
                    0,
                )
            })?;
            // SAFETY: fsmount on our fs context fd with integer flags; returns a new fd.
            let m = Errno::result(unsafe {
                libc::syscall(
                    libc::SYS_fsmount,
                    fs.as_raw_fd(),
                    libc::FSMOUNT_CLOEXEC,
                    libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
                )
            })? as RawFd;
            // SAFETY: the kernel just returned this fd; we own it.
            Ok(unsafe { OwnedFd::from_raw_fd(m) })
        };
        let fd = match fresh() {
            Ok(fd) => fd,
            Err(_) => {
                // SAFETY: open_tree with a NUL-terminated path and flags; returns a new fd.
                let t = Errno::result(unsafe {
                    libc::syscall(
                        libc::SYS_open_tree,
                        libc::AT_FDCWD,
                        c"/proc".as_ptr(),
                        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
                    )
                })? as RawFd;
                // SAFETY: the kernel just returned this fd; we own it.
                unsafe { OwnedFd::from_raw_fd(t) }
            }
        };
        let p = Procfs(fd);
        p.check(&p.0)?;
        Ok(p)
    }

    fn check(&self, fd: &OwnedFd) -> nix::Result<()> {
        let st = nix::sys::statfs::fstatfs(fd)?;
        if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
            return Err(Errno::EXDEV);
        }
        Ok(())
    }

    /// Open `rel` (like `sys/net/ipv4/ip_forward`) beneath our procfs: no symlinks, no `..`
    /// out, no crossing into another mount; the result checked to be on procfs.
    pub fn open(&self, rel: &Path, flags: i32) -> nix::Result<OwnedFd> {
        let fd = openat2(
            self.0.as_raw_fd(),
            rel,
            flags,
            RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )?;
        self.check(&fd)?;
        Ok(fd)
    }

    /// Write `value` to `rel` beneath our procfs.
    pub fn write(&self, rel: &Path, value: &[u8]) -> nix::Result<()> {
        let fd = self.open(rel, libc::O_WRONLY)?;
        let n = nix::unistd::write(&fd, value)?;
        if n != value.len() {
            return Err(Errno::EIO);
        }
        Ok(())
    }
}

/// Bind the object open at `src` onto the one open at `target` with the new mount API
/// (`open_tree` + `move_mount`): both sides are the descriptors we checked, no path is
/// resolved again. Falls back to `/proc/self/fd` paths where the API is missing.
pub fn bind_fd(src: &OwnedFd, target: &OwnedFd) -> nix::Result<()> {
    // SAFETY: open_tree on our fd with an empty path and flags; returns a new fd.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            src.as_raw_fd(),
            c"".as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
        )
    };
    if tree < 0 && Errno::last() == Errno::ENOSYS {
        return nix::mount::mount(
            Some(fd_path(src).as_str()),
            fd_path(target).as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        );
    }
    let tree = Errno::result(tree)? as RawFd;
    // SAFETY: the kernel just returned this fd; we own it.
    let tree = unsafe { OwnedFd::from_raw_fd(tree) };
    // SAFETY: move_mount between two fds we own with empty paths and integer flags.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// The `/proc/self/fd/N` path naming an open fd, usable as a mount source or target so that the
/// kernel acts on exactly the object we checked.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

/// Mark every fd from `first` upwards close-on-exec, so nothing of ours reaches the container
/// process (CVE-2024-21626 class). Falls back to walking /proc/self/fd on old kernels.
pub fn cloexec_from(first: RawFd) -> nix::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags; it touches no memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as u32,
            u32::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    for entry in std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::EBADF)? {
        let Ok(entry) = entry else { continue };
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        if fd >= first {
            // Ignore EBADF: the directory fd of this very walk is among them.
            // SAFETY: F_SETFD only changes flags of an fd number; invalid numbers give EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Clear close-on-exec on `fd` so it survives `execve` (for --preserve-fds and LISTEN_FDS).
pub fn clear_cloexec(fd: RawFd) -> nix::Result<()> {
    // SAFETY: F_SETFD only changes the flags of an fd number.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, 0)`: other processes (including the container's) can no longer open
/// our /proc/<pid>/exe, mem or fds. Reset by the kernel at `execve` of a readable binary.
pub fn set_non_dumpable() -> nix::Result<()> {
    // SAFETY: prctl with integer arguments only.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub fn set_no_new_privs() -> nix::Result<()> {
    // SAFETY: prctl with integer arguments only.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`.
pub fn set_parent_death_signal(sig: i32) -> nix::Result<()> {
    // SAFETY: prctl with integer arguments only.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_KEEPCAPS, 1)`: keep permitted capabilities across a uid change.
pub fn set_keep_caps() -> nix::Result<()> {
    // SAFETY: prctl with integer arguments only.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }).map(drop)
}

/// `personality(2)`.
pub fn personality(persona: u64) -> nix::Result<()> {
    // SAFETY: personality takes an integer and touches no memory.
    Errno::result(unsafe { libc::personality(persona as libc::c_ulong) }).map(drop)
}

/// `setgroups(2)` with raw gids.
pub fn setgroups(gids: &[u32]) -> nix::Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32 on Linux).
    Errno::result(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) }).map(drop)
}

/// `umask(2)`.
pub fn umask(mask: u32) {
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Install a classic BPF seccomp program with flags (e.g. SECCOMP_FILTER_FLAG_LOG).
pub fn seccomp_set_filter(prog: &[seccompiler::sock_filter], flags: u32) -> nix::Result<()> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const seccompiler::sock_filter,
    }
    let fprog = SockFprog {
        len: u16::try_from(prog.len()).map_err(|_| Errno::E2BIG)?,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    };
    Errno::result(ret).map(drop)
}

/// Clear the calling thread's signal mask and reset every handled signal to its default, so the
/// container process starts with a clean slate whatever the runtime did.
pub fn reset_signals() {
    // SAFETY: an empty sigset is a valid argument; SIG_DFL is a valid disposition for every
    // signal number except SIGKILL/SIGSTOP, for which the call just fails and is ignored.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// `exit_group` without running atexit handlers or flushing stdio of a forked copy.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe; used in forked children.
    unsafe { libc::_exit(code) }
}

/// Send a signal through a raw pid (`kill(2)`), returning ESRCH for a gone process.
pub fn kill(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: kill takes integers only.
    Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Join a new session keyring named `name` (`keyctl(KEYCTL_JOIN_SESSION_KEYRING)`), so the
/// container does not share the caller's keys. ENOSYS/EACCES (no keyring support, or keyring
/// access denied as under some LSMs) are reported to the caller to ignore.
pub fn join_session_keyring(name: &str) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call; keyctl copies it.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// `pidfd_open(2)`: a handle on exactly this process, immune to pid reuse.
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers only.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> nix::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// The mount system call, behind a trait so the file-system setup can be exercised without
/// privileges: [`Kernel`] mounts for real, tests record the calls instead.
pub trait Mounter {
    /// `mount(2)` with nix's argument conventions.
    fn mount<P1, P2, P3, P4>(
        &self,
        source: Option<&P1>,
        target: &P2,
        fstype: Option<&P3>,
        flags: nix::mount::MsFlags,
        data: Option<&P4>,
    ) -> nix::Result<()>
    where
        P1: ?Sized + nix::NixPath,
        P2: ?Sized + nix::NixPath,
        P3: ?Sized + nix::NixPath,
        P4: ?Sized + nix::NixPath;
}

/// The real thing.
pub struct Kernel;

impl Mounter for Kernel {
    fn mount<P1, P2, P3, P4>(
        &self,
        source: Option<&P1>,
        target: &P2,
        fstype: Option<&P3>,
        flags: nix::mount::MsFlags,
        data: Option<&P4>,
    ) -> nix::Result<()>
    where
        P1: ?Sized + nix::NixPath,
        P2: ?Sized + nix::NixPath,
        P3: ?Sized + nix::NixPath,
        P4: ?Sized + nix::NixPath,
    {
        nix::mount::mount(source, target, fstype, flags, data)
    }
}

/// One recorded mount call, with `/proc/self/fd/N` targets resolved to the path they named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountCall {
    pub source: Option<String>,
    pub target: String,
    pub fstype: Option<String>,
    pub flags: nix::mount::MsFlags,
    pub data: Option<String>,
}

/// A [`Mounter`] that records instead of mounting (for unprivileged unit tests).
#[derive(Default)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<MountCall>>,
}

fn path_string<P: ?Sized + nix::NixPath>(p: &P) -> String {
    p.with_nix_path(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Mounter for Recorder {
    fn mount<P1, P2, P3, P4>(
        &self,
        source: Option<&P1>,
        target: &P2,
        fstype: Option<&P3>,
        flags: nix::mount::MsFlags,
        data: Option<&P4>,
    ) -> nix::Result<()>
    where
        P1: ?Sized + nix::NixPath,
        P2: ?Sized + nix::NixPath,
        P3: ?Sized + nix::NixPath,
        P4: ?Sized + nix::NixPath,
    {
        let mut target = path_string(target);
        if target.starts_with("/proc/self/fd/") {
            if let Ok(real) = std::fs::read_link(&target) {
                target = real.to_string_lossy().into_owned();
            }
        }
        self.calls.borrow_mut().push(MountCall {
            source: source.map(path_string),
            target,
            fstype: fstype.map(path_string),
            flags,
            data: data.map(path_string),
        });
        Ok(())
    }
}

/// Environment marker of a runtime that already runs from a sealed copy of itself.
/// Seals that make a memfd immutable: no write, no resize, no further seal changes.
const EXE_SEALS: i32 =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Are we running from a sealed memfd (see [`reexec_sealed`])? Asked of the kernel, not of an
/// environment variable a caller could set.
pub fn running_sealed() -> bool {
    let Ok(exe) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fcntl on an fd we own, integer arguments; a regular file answers EINVAL.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & EXE_SEALS == EXE_SEALS
}

/// Re-execute ourselves from a sealed, anonymous copy of our binary (CVE-2019-5736): the
/// container's init and exec'd processes are forks of this process, so `/proc/<pid>/exe` of
/// each then names a memfd whose contents can never change, never the host's binary, whatever
/// capabilities the container holds and whatever it executes (`#!/proc/self/exe` included).
/// Costs a copy of the binary in the page cache and one execve. Only returns on failure.
pub fn reexec_sealed() -> std::io::Result<std::convert::Infallible> {
    use std::os::unix::ffi::OsStrExt;
    let name = c"berth-runtime";
    // SAFETY: a valid NUL-terminated name and flags; the kernel returns a new fd.
    let fd = unsafe {
        libc::memfd_create(
            name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_EXEC,
        )
    };
    // MFD_EXEC is unknown before Linux 6.3: retry without it.
    let fd = if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) }
    } else {
        fd
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this fd; we own it.
    let memfd = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let exe = std::fs::File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    memfd.set_len(len)?;
    // In-kernel copy from the page cache (sendfile: copy_file_range cannot cross from the
    // binary's file system to the memfd's on current kernels).
    let mut off: libc::off_t = 0;
    while (off as u64) < len {
        // SAFETY: both fds are open and ours; `off` is a valid offset pointer.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                &mut off,
                (len - off as u64) as usize,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "/proc/self/exe shrank while being copied",
            ));
        }
    }
    drop(exe);
    // F_SEAL_WRITE fails with EBUSY while the kernel still holds extra references to the
    // copied pages (per-CPU LRU batches on a busy host): seen under load, gone a moment
    // later. Retry a few times before giving up.
    let mut attempt = 0u32;
    loop {
        // SAFETY: fcntl on our own fd with integer arguments.
        if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, EXE_SEALS) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) || attempt >= 8 {
            return Err(e);
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(1 << attempt));
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: argv is a NULL-terminated array of pointers into `args`, which outlives the
    // call; `environ` is libc's own NULL-terminated environment (single-threaded here, so
    // nobody changes it meanwhile); AT_EMPTY_PATH executes the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            environ,
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error())
}

/// A close-on-exec duplicate of `fd` numbered 3 or above.
pub fn dup_cloexec(fd: RawFd) -> nix::Result<OwnedFd> {
    let new = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: fcntl just returned this new fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `setrlimit(2)` with raw values (RLIM_INFINITY included).
pub fn setrlimit(resource: i32, soft: u64, hard: u64) -> nix::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    Errno::result(unsafe { libc::setrlimit(resource as _, &lim) }).map(drop)
}

/// `prctl(PR_SET_KEEPCAPS, 0)`.
pub fn clear_keep_caps() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
}

/// The window size of the terminal on `fd`, if it is one: (rows, cols).
pub fn get_winsize(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, which lives across the call.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0).then_some((ws.ws_row, ws.ws_col))
    }
}

/// Set the window size of the terminal on `fd`.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Make the terminal on `fd` our controlling terminal (we must be a session leader).
pub fn set_controlling_tty(fd: RawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// `setdomainname(2)`.
pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe a live byte string.
    Errno::result(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}
