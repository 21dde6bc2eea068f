//! The runtime's verbs on containers: create, start, state, kill, delete, pause, resume,
//! update, ps, events. One container = one state directory under the runtime root.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};
use serde_json::json;

use crate::cgroups::{Cgroup, Layout};
use crate::channel::{self, Channel};
use crate::error::{Error, IoContext, Result, SysContext};
use crate::state::{self, ContainerDir, State, Status};
use crate::{hooks, init, spec, sys};

/// Options of `create` (and `run`).
#[derive(Default, Debug, Clone)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (foreground `run` keeps the other end).
    pub console_fd: Option<RawFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// Namespace type → (clone flag, /proc/<pid>/ns name).
pub fn ns_info(t: LinuxNamespaceType) -> (u64, &'static str) {
    let (f, n) = match t {
        LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, "mnt"),
        LinuxNamespaceType::Cgroup => (libc::CLONE_NEWCGROUP, "cgroup"),
        LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "uts"),
        LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "ipc"),
        LinuxNamespaceType::User => (libc::CLONE_NEWUSER, "user"),
        LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, "pid"),
        LinuxNamespaceType::Network => (libc::CLONE_NEWNET, "net"),
        LinuxNamespaceType::Time => (libc::CLONE_NEWTIME, "time"),
    };
    (f as u64, n)
}

fn open_path(p: &Path, flags: OFlag) -> Result<OwnedFd> {
    sys::open(p, flags, Mode::empty()).sys(|| format!("open {}", p.display()))
}

/// Removes what a failed create made, unless disarmed.
struct CreateGuard<'a> {
    dir: &'a ContainerDir,
    cgroup: Option<Cgroup>,
    cgroup_parents: Vec<PathBuf>,
    pid: Option<i32>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            for p in cg.pids().unwrap_or_default() {
                let _ = sys::kill(p, libc::SIGKILL);
            }
            let _ = cg.destroy();
            crate::cgroups::remove_parents(&self.cgroup_parents);
        }
        if let Ok(st) = self.dir.load() {
            if st.host_mounts {
                let _ = crate::rootfs::unmount_under(&st.rootfs);
            }
        }
        let _ = self.dir.remove();
    }
}

/// The OCI state JSON of a container (what `state` prints and hooks read).
pub fn oci_state(st: &State, status: Status) -> serde_json::Value {
    let pid = if matches!(status, Status::Stopped) {
        0
    } else {
        st.pid
    };
    let mut v = json!({
        "ociVersion": "1.2.0",
        "id": st.id,
        "pid": pid,
        "status": status.to_string(),
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": owner_name(st.owner),
    });
    if !st.annotations.is_empty() {
        v["annotations"] = json!(st.annotations);
    }
    v
}

/// The owner's name from /etc/passwd (as runc does without cgo), else the uid: the static
/// release binary does not load NSS modules.
fn owner_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Create a container: everything up to, not including, the user process. Returns the init
/// pid. The init stays blocked until `start`.
pub fn create(root: &Path, opts: &CreateOpts) -> Result<i32> {
    let bundle = spec::load_bundle(&opts.bundle)?;
    let spec = &bundle.spec;
    crate::process::ensure_sealed()?;
    let layout = Layout::detect()?;
    tracing::debug!(container_id = %opts.id, bundle = %bundle.dir.display(), cgroups = layout.name(), "create");
    let seccomp =
        crate::process::compile_seccomp(spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()))?;
    let dir = ContainerDir::create(root, &opts.id)?;
    let mut guard = CreateGuard {
        dir: &dir,
        cgroup: None,
        cgroup_parents: Vec::new(),
        pid: None,
        armed: true,
    };
    state::write_atomic(&dir.config_file(), &bundle.text, 0o600)?;
    let mut st = State {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: nix::unistd::getuid().as_raw(),
        cgroup_paths: Vec::new(),
        cgroup_parents: Vec::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        host_mounts: false,
        late_hooks: spec.hooks().as_ref().is_some_and(|h| {
            h.poststart().as_ref().is_some_and(|v| !v.is_empty())
                || h.poststop().as_ref().is_some_and(|v| !v.is_empty())
        }),
    };

    let linux = spec.linux().clone().unwrap_or_default();
    if Cgroup::at_root(&layout, linux.cgroups_path().as_deref(), &opts.id) {
        return Err(Error::config(
            opts.bundle.join("config.json"),
            format!(
                "linux.cgroupsPath {:?} is a cgroup root: refusing to put a container there (it would share the cgroup with every process of the host)",
                linux.cgroups_path().clone().unwrap_or_default()
            ),
        ));
    }
    let cg = Cgroup::locate(&layout, linux.cgroups_path().as_deref(), &opts.id);
    st.cgroup_paths = cg.paths();
    dir.save(&st)?;
    st.cgroup_parents = cg.missing_parents();
    if !st.cgroup_parents.is_empty() {
        dir.save(&st)?;
    }
    guard.cgroup = Some(cg.clone());
    guard.cgroup_parents = st.cgroup_parents.clone();
    cg.create()?;
    let mut extra_dev = Vec::new();
    // The devices the config lists must be usable: each gets an rwm rule unless the
    // config's own device rules name it (then those say what it may do: Docker's
    // `--device SRC:DST:r`).
    let explicit = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for d in linux.devices().iter().flatten() {
        use oci_spec::runtime::LinuxDeviceType;
        // Only character and block devices have device-cgroup rules; a FIFO needs none (the
        // controllers refuse a `p` rule).
        let typ = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
            LinuxDeviceType::B => LinuxDeviceType::B,
            _ => continue,
        };
        if explicit.iter().any(|r| {
            r.allow()
                && r.typ() == Some(typ)
                && r.major() == Some(d.major())
                && r.minor() == Some(d.minor())
        }) {
            continue;
        }
        let mut r = oci_spec::runtime::LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(Some(d.major()));
        r.set_minor(Some(d.minor()));
        r.set_access(Some("rwm".into()));
        extra_dev.push(r);
    }
    if let Some(res) = linux.resources() {
        cg.apply(res, &extra_dev)?;
    }

    // exec.fifo: the init holds the read end; `start` writes one byte.
    let fifo = dir.fifo();
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .sys(|| format!("mkfifo {}", fifo.display()))?;
    let fifo_fd = open_path(&fifo, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
    let state_dir_fd = open_path(&dir.path, OFlag::O_PATH | OFlag::O_DIRECTORY)?;

    let console = match (&opts.console_socket, opts.console_fd) {
        (Some(p), _) => Some(connect_console(p)?),
        (None, Some(fd)) => Some(dup_fd(fd)?),
        (None, None) => None,
    };

    // Namespaces: new ones go into the clone flags; joined ones are entered by the parent
    // around the clone (net, ipc, uts, pid, cgroup, time) or by the child (mnt, user).
    let mut flags = 0u64;
    let mut joins: Vec<(LinuxNamespaceType, OwnedFd)> = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let (f, _) = ns_info(ns.typ());
        match ns.path() {
            None => flags |= f,
            Some(p) => joins.push((ns.typ(), open_path(p, OFlag::O_RDONLY)?)),
        }
    }
    let take = |joins: &mut Vec<(LinuxNamespaceType, OwnedFd)>, t| {
        joins
            .iter()
            .position(|(k, _)| *k == t)
            .map(|i| joins.remove(i).1)
    };
    let join_user = take(&mut joins, LinuxNamespaceType::User);
    let join_mnt = take(&mut joins, LinuxNamespaceType::Mount);
    // No mount namespace at all: the container shares the runtime's (the spec allows it).
    // Its mounts are then made under the rootfs in our namespace, where `delete` removes them.
    let host_mounts = flags & libc::CLONE_NEWNS as u64 == 0 && join_mnt.is_none();
    if host_mounts {
        st.host_mounts = true;
        dir.save(&st)?;
    }
    let (parent_chan, child_chan) = channel::pair()?;
    // The unified hierarchy (pure v2, or hybrid): the init is born in its cgroup there
    // (CLONE_INTO_CGROUP).
    let cgroup_fd = cg
        .unified_dir()
        .and_then(|d| open_path(d, OFlag::O_DIRECTORY | OFlag::O_RDONLY).ok());
    let restore = enter_namespaces(&joins)?;
    let slow = join_user.is_some();
    let into_unified = cgroup_fd.is_some() && flags & libc::CLONE_NEWUSER as u64 == 0;
    // Legacy hierarchies: the init moves itself first thing (cheap, see
    // cgroups::join_self_v1); with a user namespace to enter, the runtime moves it.
    let self_join_v1 = !cg.v2 && !slow && flags & libc::CLONE_NEWUSER as u64 == 0;
    // The cgroup namespace must be rooted at the container's cgroup: unless the child is born
    // in all of it (CLONE_INTO_CGROUP on a pure v2 host), the init unshares it once moved.
    let into_cgroup = into_unified && cg.v2;
    let late_cgroup_ns = flags & libc::CLONE_NEWCGROUP as u64 != 0 && !into_cgroup;
    // Time offsets must be written before any process enters the new time namespace: the init
    // unshares it, writes them, then enters it (see init::enter_time_ns).
    let time_offsets = time_offsets(&linux, flags, &bundle.dir)?;
    let flags = if time_offsets.is_some() {
        flags & !(libc::CLONE_NEWTIME as u64)
    } else {
        flags
    };
    let clone_flags = if slow {
        0
    } else if late_cgroup_ns {
        flags & !(libc::CLONE_NEWCGROUP as u64)
    } else {
        flags
    };
    let forked = if clone_flags & libc::CLONE_NEWUSER as u64 != 0 {
        // With a new user namespace the cgroup fd would need privileges there; join later.
        sys::clone3(clone_flags, None)
    } else {
        sys::clone3(clone_flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd()))
    };
    let forked = match forked {
        Ok(f) => f,
        Err(e) => {
            leave_namespaces(restore);
            return Err(Error::sys("clone the container init", e));
        }
    };
    let cgroup_dirs = cg.dirs.clone();
    match forked {
        sys::Forked::Child => {
            drop(parent_chan);
            init::run(init::InitCtx {
                id: &opts.id,
                spec,
                bundle: &bundle.dir,
                rootfs: &bundle.rootfs,
                chan: &child_chan,
                fifo: &fifo_fd,
                state_dir: &state_dir_fd,
                console: console.as_ref().map(|c| c.as_raw_fd()),
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                cgroup_dirs: &cgroup_dirs,
                cgroup_v2: cg.v2,
                new_user_ns: flags & libc::CLONE_NEWUSER as u64 != 0,
                new_cgroup_ns: flags & libc::CLONE_NEWCGROUP as u64 != 0,
                new_uts_ns: flags & libc::CLONE_NEWUTS as u64 != 0,
                join_mnt: join_mnt.as_ref(),
                host_mounts,
                join_user: join_user.as_ref(),
                unshare_flags: flags,
                time_offsets: time_offsets.as_deref(),
                late_cgroup_ns,
                self_join_v1,
                seccomp: seccomp.as_ref(),
            })
        }
        sys::Forked::Parent(child) => {
            leave_namespaces(restore);
            drop(child_chan);
            drop(fifo_fd);
            drop(state_dir_fd);
            drop(console);
            let mut pid = child;
            guard.pid = Some(child);
            tracing::debug!(container_id = %opts.id, pid = child, flags = format!("{clone_flags:#x}"), "cloned init");
            if slow && flags & libc::CLONE_NEWPID as u64 != 0 {
                pid = recv_pid(&parent_chan, &opts.id)?;
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
                guard.pid = Some(pid);
            }
            finish_create(
                &dir,
                &mut st,
                spec,
                &linux,
                &cg,
                (into_unified, self_join_v1),
                pid,
                &parent_chan,
            )?;
            if let Some(pf) = &opts.pid_file {
                write_pid_file(pf, pid)?;
            }
            tracing::debug!(container_id = %opts.id, pid, "created");
            guard.armed = false;
            Ok(pid)
        }
    }
}

/// `linux.timeOffsets` as `/proc/<pid>/timens_offsets` wants them, checked: only for a new
/// time namespace, only the clocks a time namespace has.
fn time_offsets(
    linux: &oci_spec::runtime::Linux,
    flags: u64,
    bundle: &Path,
) -> Result<Option<String>> {
    let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    let config = bundle.join("config.json");
    if flags & libc::CLONE_NEWTIME as u64 == 0 {
        return Err(Error::config(
            config,
            "linux.timeOffsets: needs a new time namespace in linux.namespaces",
        ));
    }
    let mut lines = String::new();
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    for (clock, off) in clocks {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::config(
                config,
                format!("linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"),
            ));
        }
        lines.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    Ok(Some(lines))
}

fn recv_pid(chan: &Channel, id: &str) -> Result<i32> {
    let msg = chan.recv()?.unwrap_or_default();
    let text = String::from_utf8_lossy(&msg);
    if let Some(e) = text.strip_prefix("error:") {
        return Err(Error::Init {
            id: id.into(),
            msg: e.into(),
        });
    }
    text.strip_prefix("pid:")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| Error::Init {
            id: id.into(),
            msg: format!("bad pid message {text:?}"),
        })
}

#[allow(clippy::too_many_arguments)]
fn finish_create(
    dir: &ContainerDir,
    st: &mut State,
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    cg: &Cgroup,
    (born_in_unified, self_joined_v1): (bool, bool),
    pid: i32,
    chan: &Channel,
) -> Result<()> {
    let id = st.id.clone();
    let new_user = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_user {
        write_id_map(
            pid,
            "uid_map",
            linux.uid_mappings().as_deref().unwrap_or(&[]),
        )?;
        write_id_map(
            pid,
            "gid_map",
            linux.gid_mappings().as_deref().unwrap_or(&[]),
        )?;
    }
    cg.add_where(pid, |ctl| {
        if ctl.is_empty() {
            !born_in_unified
        } else {
            !self_joined_v1
        }
    })?;
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        let p = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&p, adj.to_string()).ctx("write", p)?;
    }
    st.pid = pid;
    st.pid_start = state::proc_start(pid).map(|s| s.0).unwrap_or(0);
    dir.save(st)?;
    // An init that failed already (say, joining its cgroups) has left its error to read below.
    let _ = chan.send(b"go");
    loop {
        let Some(msg) = chan.recv()? else {
            return Err(Error::Init {
                id,
                msg: "container init exited during setup".into(),
            });
        };
        if msg == b"ready" {
            break;
        }
        if msg == b"hooks" {
            // The environment exists and the process waits: the hooks see "created" (what
            // runtime-tools' hooks_stdin expects of prestart).
            let state = oci_state(st, Status::Created).to_string();
            let h = spec.hooks().as_ref();
            hooks::run("prestart", h.and_then(|h| h.prestart().as_ref()), &state)?;
            hooks::run(
                "createRuntime",
                h.and_then(|h| h.create_runtime().as_ref()),
                &state,
            )?;
            chan.send(state.as_bytes())?;
            continue;
        }
        let text = String::from_utf8_lossy(&msg);
        let text = text.strip_prefix("error:").unwrap_or(&text).to_string();
        return Err(Error::Init { id, msg: text });
    }
    Ok(())
}

fn write_id_map(pid: i32, file: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let p = format!("/proc/{pid}/{file}");
    std::fs::write(&p, text).ctx("write", p)
}

/// Write a pid file atomically (containerd reads it as soon as it appears).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    state::write_atomic(&abs, pid.to_string().as_bytes(), 0o644)
}

fn dup_fd(fd: RawFd) -> Result<OwnedFd> {
    sys::dup_cloexec(fd).sys(|| format!("dup fd {fd}"))
}

fn connect_console(p: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(p).ctx("connect to console socket", p)?;
    Ok(OwnedFd::from(s))
}

/// Our own namespaces to go back to after a clone/fork that needed others.
pub(crate) type Restore = Vec<(nix::sched::CloneFlags, OwnedFd)>;

/// Enter `joins` (pid and time ones only affect children), remembering where we were.
pub(crate) fn enter_namespaces<'a>(
    joins: impl IntoIterator<Item = &'a (LinuxNamespaceType, OwnedFd)>,
) -> Result<Restore> {
    let mut restore = Vec::new();
    for (t, fd) in joins {
        let (flag, name) = ns_info(*t);
        let flag = nix::sched::CloneFlags::from_bits_truncate(flag as i32);
        let own = open_path(
            Path::new(&format!("/proc/self/ns/{}", child_ns_name(name))),
            OFlag::O_RDONLY,
        )?;
        nix::sched::setns(fd, flag).sys(|| format!("join {name} namespace"))?;
        restore.push((flag, own));
    }
    Ok(restore)
}

fn child_ns_name(name: &str) -> &str {
    match name {
        "pid" => "pid_for_children",
        "time" => "time_for_children",
        n => n,
    }
}

/// Return to the namespaces `enter_namespaces` left.
pub(crate) fn leave_namespaces(restore: Restore) {
    for (flag, fd) in restore.into_iter().rev() {
        let _ = nix::sched::setns(fd, flag);
    }
}

/// The container's current status, from its state and the live system.
pub fn status_of(dir: &ContainerDir, st: &State) -> Status {
    if st.pid == 0 {
        return if dir.fifo().exists() {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !state::init_alive(st) {
        return Status::Stopped;
    }
    // A leftover fifo after the init executed (a `start` killed between its write and the
    // unlink) must not keep the container "created": the init's exe tells which it is.
    if dir.fifo().exists() && init_still_waiting(st.pid) {
        return Status::Created;
    }
    if Cgroup::from_paths(&st.cgroup_paths).frozen() {
        return Status::Paused;
    }
    Status::Running
}

/// Is `pid` still the runtime's forked init (not yet the container's program)? Its exe is
/// then our own binary, or the sealed memfd copy of it.
fn init_still_waiting(pid: i32) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{pid}/exe"));
    let ours = std::fs::read_link("/proc/self/exe");
    match (theirs, ours) {
        (Ok(t), Ok(o)) => t == o || t.to_string_lossy().starts_with("/memfd:berth-runtime"),
        // Unreadable: keep the conservative answer.
        _ => true,
    }
}

/// Load a container and its status.
pub fn load(root: &Path, id: &str) -> Result<(ContainerDir, State, Status)> {
    let dir = ContainerDir::open(root, id)?;
    let st = dir.load()?;
    let status = status_of(&dir, &st);
    Ok((dir, st, status))
}

/// Release a created container's init, run poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let (dir, st, status) = load(root, id)?;
    if status != Status::Created {
        return Err(Error::BadState {
            id: id.into(),
            status: status.to_string(),
            op: "start (it must be created)",
        });
    }
    let fifo = dir.fifo();
    let fd = match sys::open(&fifo, OFlag::O_WRONLY | OFlag::O_NONBLOCK, Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENXIO) => {
            return Err(Error::Init {
                id: id.into(),
                msg: "the container init is gone".into(),
            })
        }
        Err(e) => return Err(Error::sys(format!("open {}", fifo.display()), e)),
    };
    nix::unistd::write(&fd, b"0").sys(|| format!("write {}", fifo.display()))?;
    std::fs::remove_file(&fifo).ctx("remove", &fifo)?;
    // The init holds the only read end, close-on-exec: our write end reports POLLERR once it
    // has run the startContainer hooks and executed the process (or died). Poststart hooks
    // must come after that.
    // (A process that fails before execve reports on its stderr and exits 127, like runc's;
    // a quick /bin/true is just as gone by now, so liveness proves nothing here.)
    wait_reader_gone(&fd);
    drop(fd);
    let err_file = dir.path.join(state::START_ERROR);
    if let Ok(msg) = std::fs::read_to_string(&err_file) {
        let _ = std::fs::remove_file(&err_file);
        return Err(Error::Init { id: id.into(), msg });
    }
    tracing::debug!(container_id = %id, pid = st.pid, "started");
    if st.late_hooks {
        let spec = dir.load_config()?;
        let state = oci_state(&st, Status::Running).to_string();
        if let Some(h) = spec.hooks() {
            hooks::run_warn("poststart", h.poststart().as_ref(), &state);
        }
    }
    Ok(())
}

fn wait_reader_gone(fd: &OwnedFd) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Parse a signal given as a name (`KILL`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::InvalidSignal(s.into()));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        other => {
            if let Some(rest) = other.strip_prefix("RTMIN") {
                let off: i32 = if rest.is_empty() {
                    0
                } else {
                    rest.trim_start_matches('+')
                        .parse()
                        .map_err(|_| Error::InvalidSignal(s.into()))?
                };
                libc::SIGRTMIN() + off
            } else if let Some(rest) = other.strip_prefix("RTMAX") {
                let off: i32 = if rest.is_empty() {
                    0
                } else {
                    rest.trim_start_matches('-')
                        .parse()
                        .map_err(|_| Error::InvalidSignal(s.into()))?
                };
                libc::SIGRTMAX() - off
            } else {
                return Err(Error::InvalidSignal(s.into()));
            }
        }
    };
    Ok(n)
}

/// Send `sig` to the init (or, with `all`, to every process of the container).
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let (_dir, st, status) = load(root, id)?;
    if all {
        let cg = Cgroup::from_paths(&st.cgroup_paths);
        let frozen = status == Status::Paused;
        for p in cg.pids()? {
            let _ = sys::kill(p, sig);
        }
        if frozen && sig == libc::SIGKILL {
            let _ = cg.set_frozen(false);
        }
        return Ok(());
    }
    if matches!(status, Status::Stopped) {
        return Err(Error::BadState {
            id: id.into(),
            status: status.to_string(),
            op: "kill (it is not running)",
        });
    }
    signal_init(&st, sig).sys(|| format!("signal {sig} to container {id} (pid {})", st.pid))
}

/// Signal the container's init without racing pid reuse: take a pidfd, check it is still
/// the process we started (its start time), then signal through the pidfd.
pub fn signal_init(st: &State, sig: i32) -> nix::Result<()> {
    match sys::pidfd_open(st.pid) {
        Ok(fd) => {
            if !state::init_alive(st) {
                return Err(nix::errno::Errno::ESRCH);
            }
            sys::pidfd_send_signal(&fd, sig)
        }
        Err(nix::errno::Errno::ENOSYS) => sys::kill(st.pid, sig),
        Err(e) => Err(e),
    }
}

/// Delete a stopped container (or, with `force`, any container after killing it).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let st = match dir.load() {
        Ok(st) => st,
        // A create that died before writing its state: nothing runs, just remove it.
        Err(Error::NotFound(_)) => return dir.remove(),
        Err(e) => return Err(e),
    };
    let status = status_of(&dir, &st);
    let cg = Cgroup::from_paths(&st.cgroup_paths);
    if !matches!(status, Status::Stopped) {
        if !force {
            return Err(Error::BadState {
                id: id.into(),
                status: status.to_string(),
                op: "delete (stop it first or use --force)",
            });
        }
        let _ = signal_init(&st, libc::SIGKILL);
    }
    // Remaining processes (exec'd ones, or all when the pid namespace was shared).
    let pids = cg.pids().unwrap_or_default();
    if !pids.is_empty() {
        if status == Status::Paused {
            let _ = cg.set_frozen(false);
        }
        for p in &pids {
            let _ = sys::kill(*p, libc::SIGKILL);
        }
        if status == Status::Paused {
            let _ = cg.set_frozen(false);
        }
    }
    wait_gone(&st, &cg);
    if st.host_mounts {
        crate::rootfs::unmount_under(&st.rootfs)?;
    }
    cg.destroy()?;
    crate::cgroups::remove_parents(&st.cgroup_parents);
    tracing::debug!(container_id = %id, was = %status, "deleted");
    let spec = st.late_hooks.then(|| dir.load_config().ok()).flatten();
    let poststop = spec
        .as_ref()
        .and_then(|s| s.hooks().as_ref())
        .and_then(|h| h.poststop().clone());
    let state = oci_state(&st, Status::Stopped).to_string();
    dir.remove()?;
    // Failures of poststop hooks are logged, not fatal (runtime spec).
    hooks::run_warn("poststop", poststop.as_ref(), &state);
    Ok(())
}

fn wait_gone(st: &State, cg: &Cgroup) {
    for _ in 0..2000 {
        let init_gone = !state::init_alive(st);
        let empty = cg.pids().map(|p| p.is_empty()).unwrap_or(true);
        if init_gone && empty {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Freeze or thaw a running container.
pub fn set_paused(root: &Path, id: &str, pause: bool) -> Result<()> {
    let (_dir, st, status) = load(root, id)?;
    let ok = if pause {
        status == Status::Running
    } else {
        status == Status::Paused
    };
    if !ok {
        return Err(Error::BadState {
            id: id.into(),
            status: status.to_string(),
            op: if pause {
                "pause (it must be running)"
            } else {
                "resume (it must be paused)"
            },
        });
    }
    Cgroup::from_paths(&st.cgroup_paths).set_frozen(pause)
}

/// Pids of the container's processes.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_dir, st, _status) = load(root, id)?;
    Cgroup::from_paths(&st.cgroup_paths).pids()
}

/// Apply new resources to a live container.
pub fn update(root: &Path, id: &str, res: &LinuxResources) -> Result<()> {
    let (_dir, st, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(Error::BadState {
            id: id.into(),
            status: status.to_string(),
            op: "update",
        });
    }
    Cgroup::from_paths(&st.cgroup_paths).apply(res, &[])
}

/// `events --stats` data for a container.
pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value> {
    let (_dir, st, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(Error::BadState {
            id: id.into(),
            status: status.to_string(),
            op: "read stats",
        });
    }
    Ok(Cgroup::from_paths(&st.cgroup_paths).stats())
}

/// OOM kill counter, for `events`.
pub fn oom_kills(root: &Path, id: &str) -> Result<u64> {
    let (_dir, st, _status) = load(root, id)?;
    Ok(Cgroup::from_paths(&st.cgroup_paths).oom_kills())
}

/// Every container under `root` with its status (unreadable entries are skipped).
pub fn list(root: &Path) -> Result<Vec<(State, Status)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("read runtime root", root, e)),
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Ok((_d, st, status)) = load(root, &name) {
            out.push((st, status));
        }
    }
    out.sort_by(|a, b| a.0.created.cmp(&b.0.created));
    Ok(out)
}
