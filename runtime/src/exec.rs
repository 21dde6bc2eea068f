//! `exec`: start another process inside a running container's namespaces and cgroups, and
//! the foreground wait shared with `run`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::cgroups::Cgroup;
use crate::channel;
use crate::container::{self, ns_info};
use crate::error::{chain, Error, Result, SysContext};
use crate::state::Status;
use crate::{process, sys};

/// Options of `exec`.
#[derive(Default, Debug, Clone)]
pub struct ExecOpts {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// With a terminal and no console socket, receive the pty ourselves and copy it to our
    /// stdio (foreground only), as runc does.
    pub proxy_tty: bool,
    /// Exec even into a paused container (`--ignore-paused`; the process starts frozen).
    pub ignore_paused: bool,
}

/// Run a process in the container. With `detach`, returns 0 once it was executed; otherwise
/// waits and returns its exit code (128+signal when killed).
pub fn exec(root: &Path, opts: &ExecOpts) -> Result<i32> {
    let (dir, st, status) = container::load(root, &opts.id)?;
    let paused_ok = opts.ignore_paused && status == Status::Paused;
    if !matches!(status, Status::Running | Status::Created) && !paused_ok {
        return Err(Error::BadState {
            id: opts.id.clone(),
            status: status.to_string(),
            op: "exec (it must be running)",
        });
    }
    process::ensure_sealed()?;
    let spec = dir.load_config()?;
    let linux = spec.linux().clone().unwrap_or_default();
    let mut nses: Vec<(LinuxNamespaceType, OwnedFd)> = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let (_, name) = ns_info(ns.typ());
        let p = format!("/proc/{}/ns/{name}", st.pid);
        let own = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
        let theirs = std::fs::metadata(&p).ok();
        use std::os::unix::fs::MetadataExt;
        if let (Some(a), Some(b)) = (&own, &theirs) {
            if a.ino() == b.ino() && a.dev() == b.dev() {
                continue;
            }
        }
        let fd =
            sys::open(p.as_str(), OFlag::O_RDONLY, Mode::empty()).sys(|| format!("open {p}"))?;
        nses.push((ns.typ(), fd));
    }
    // A container in the runtime's mount namespace lives in a chroot: enter the same root.
    let chroot = st
        .host_mounts
        .then(|| {
            let p = format!("/proc/{}/root", st.pid);
            sys::open(
                p.as_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .sys(|| format!("open {p}"))
        })
        .transpose()?;
    let tty = opts.process.terminal() == Some(true);
    let mut ours = None;
    let console = match &opts.console_socket {
        Some(p) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(p)
                .map_err(|e| Error::io("connect to console socket", p, e))?,
        )),
        None if tty && opts.proxy_tty && !opts.detach => {
            let (a, b) = crate::tty::console_pair()?;
            ours = Some(a);
            Some(b)
        }
        None => None,
    };
    if tty && console.is_none() {
        return Err(Error::config(
            "process",
            "terminal is true but no --console-socket was given (required with --detach)",
        ));
    }
    let seccomp = process::compile_seccomp(linux.seccomp().as_ref())?;
    let (pchan, cchan) = channel::pair()?;
    // pid and time namespaces apply to children: enter them here, around the fork.
    let restore = container::enter_namespaces(
        nses.iter()
            .filter(|(t, _)| matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time)),
    )?;
    let mask = forward_mask();
    if !opts.detach {
        mask.thread_block().sys(|| "block signals".into())?;
    }
    // Cgroups as for the init (see container::create): born in the unified hierarchy's
    // cgroup, moving itself into the legacy ones.
    let cg = Cgroup::from_paths(&st.cgroup_paths);
    let unified_fd = cg
        .unified_dir()
        .and_then(|d| sys::open(d, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).ok());
    let forked = sys::clone3(0, unified_fd.as_ref().map(|f| f.as_raw_fd()));
    container::leave_namespaces(restore);
    let forked = forked.sys(|| "fork the exec process".into())?;
    match forked {
        sys::Forked::Child => {
            drop(pchan);
            let r = exec_child(
                &cg,
                seccomp.as_ref(),
                opts,
                &nses,
                chroot.as_ref(),
                console.as_ref().map(|c| c.as_raw_fd()),
                &cchan,
            );
            let e = match r {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = cchan.send(format!("error:{}", chain(&e)).as_bytes());
            sys::exit_now(127)
        }
        sys::Forked::Parent(pid) => {
            drop(cchan);
            drop(console);
            let fail = |e: Error| {
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                e
            };
            if unified_fd.is_none() {
                cg.add_where(pid, str::is_empty).map_err(fail)?;
            }
            // A child that failed already has left its error to read below.
            let _ = pchan.send(b"go");
            // EOF means the child reached execve (the channel is close-on-exec).
            if let Some(msg) = pchan.recv().map_err(fail)? {
                let text = String::from_utf8_lossy(&msg);
                let text = text.strip_prefix("error:").unwrap_or(&text).to_string();
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(Error::Init {
                    id: opts.id.clone(),
                    msg: text,
                });
            }
            if let Some(pf) = &opts.pid_file {
                container::write_pid_file(pf, pid)?;
            }
            tracing::debug!(container_id = %opts.id, pid, detach = opts.detach, "exec'd");
            if opts.detach {
                return Ok(0);
            }
            let Some(ours) = ours else {
                return wait_forwarding(pid, &mask, None);
            };
            let master = crate::tty::recv_master(&ours).map_err(fail)?;
            let raw = master.as_raw_fd();
            let _mode = crate::tty::RawMode::enter();
            crate::tty::sync_size(raw);
            let out = crate::tty::proxy(master)?;
            let code = wait_forwarding(pid, &mask, Some(raw));
            crate::tty::finish(out);
            code
        }
    }
}

fn exec_child(
    cg: &Cgroup,
    seccomp: Option<&crate::seccomp::Compiled>,
    opts: &ExecOpts,
    nses: &[(LinuxNamespaceType, OwnedFd)],
    chroot: Option<&OwnedFd>,
    console: Option<i32>,
    chan: &channel::Channel,
) -> Result<std::convert::Infallible> {
    sys::set_parent_death_signal(libc::SIGKILL).sys(|| "set parent death signal".into())?;
    // Before any namespace: the host's cgroup mounts are ours to write here.
    crate::cgroups::join_self_v1(&cg.dirs)?;
    let order = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Mount,
    ];
    for t in order {
        if let Some((_, fd)) = nses.iter().find(|(k, _)| *k == t) {
            let (flag, name) = ns_info(t);
            nix::sched::setns(fd, nix::sched::CloneFlags::from_bits_truncate(flag as i32))
                .sys(|| format!("join {name} namespace of {}", opts.id))?;
        }
    }
    if let Some(root) = chroot {
        nix::unistd::fchdir(root.as_raw_fd()).sys(|| format!("enter the root of {}", opts.id))?;
        nix::unistd::chroot(".").sys(|| format!("chroot into the root of {}", opts.id))?;
    }
    // The parent has finished with our cgroups when it says go.
    chan.expect(b"go")?;
    let p = &opts.process;
    if p.terminal() == Some(true) {
        nix::unistd::setsid().sys(|| "setsid".into())?;
        let size = p
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        process::setup_terminal(console.expect("checked by the parent"), size)?;
    }
    process::apply_rlimits(p)?;
    crate::sched::apply_process(p)?;
    let program = process::resolve(p)?;
    process::enter_cwd(p.cwd())?;
    sys::set_parent_death_signal(0).sys(|| "clear parent death signal".into())?;
    process::finalize_and_exec(p, seccomp, &program, opts.preserve_fds, true)
}

/// Signals a foreground runtime passes on to the container process.
pub fn forward_mask() -> SigSet {
    let mut m = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        m.add(s);
    }
    m
}

/// Wait for `pid`, forwarding signals (already blocked in `mask`) to it. Returns its exit code.
pub fn wait_forwarding(pid: i32, mask: &SigSet, pty: Option<std::os::fd::RawFd>) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let target = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => return Ok(255),
            Err(e) => return Err(Error::sys(format!("wait for pid {pid}"), e)),
        }
        match mask.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(Signal::SIGWINCH) if pty.is_some() => crate::tty::sync_size(pty.unwrap_or(-1)),
            Ok(sig) => {
                let _ = sys::kill(pid, sig as i32);
            }
            Err(_) => {}
        }
    }
}
