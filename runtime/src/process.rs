//! Turning the calling (forked) process into the container's process: rlimits, identity,
//! capabilities, no_new_privs, seccomp, terminal, and finally `execve`. Shared by the init of
//! `create` and by `exec`.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp, Process};

use crate::seccomp::Compiled;

use crate::error::{Error, Result, SysContext};
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The resolved program to execute.
pub struct Program {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

fn cstr(s: &[u8], what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::config(what, "contains a NUL byte"))
}

/// Find `args[0]` in the container (call after the root switch), like execvp with the
/// process's own PATH.
pub fn resolve(process: &Process) -> Result<Program> {
    let args = process.args().clone().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err(Error::config("process.args", "empty"));
    };
    let env = process.env().clone().unwrap_or_default();
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let candidates: Vec<PathBuf> = if arg0.contains('/') {
        vec![PathBuf::from(arg0)]
    } else {
        path_var
            .split(':')
            .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(arg0))
            .collect()
    };
    let Some(found) = candidates.iter().find(|p| executable(p)).cloned() else {
        // Like execvp: a file that is there but cannot run is "permission denied".
        let why = if candidates.iter().any(|p| p.exists()) {
            "permission denied"
        } else if arg0.contains('/') {
            "no such file or directory"
        } else {
            "executable file not found in $PATH"
        };
        return Err(Error::Program {
            program: arg0.clone(),
            why,
        });
    };
    Ok(Program {
        path: cstr(found.as_os_str().as_bytes(), "process.args")?,
        argv: args
            .iter()
            .map(|a| cstr(a.as_bytes(), "process.args"))
            .collect::<Result<_>>()?,
        envp: env
            .iter()
            .map(|e| cstr(e.as_bytes(), "process.env"))
            .collect::<Result<_>>()?,
    })
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Apply `process.rlimits`.
pub fn apply_rlimits(process: &Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let res = rlimit_resource(&name)
            .ok_or_else(|| Error::config("process.rlimits", format!("unknown rlimit {name}")))?;
        sys::setrlimit(res, r.soft(), r.hard())
            .sys(|| format!("setrlimit {name} {}:{}", r.soft(), r.hard()))?;
    }
    Ok(())
}

fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    } as i32)
}

fn to_caps(set: Option<&oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.into_iter().flatten() {
        out.insert(crate::spec::parse_capability(&c.to_string())?);
    }
    Ok(out)
}

/// Drop every bounding capability not in the spec's bounding set.
pub fn drop_bounding(c: Option<&LinuxCapabilities>) -> Result<()> {
    let keep = to_caps(c.and_then(|c| c.bounding().as_ref()))?;
    for cap in caps::all() {
        if keep.contains(&cap) {
            continue;
        }
        // EINVAL: the running kernel does not know this capability; nothing to drop.
        if let Err(e) = caps::drop(None, CapSet::Bounding, cap) {
            if !e.to_string().contains("Invalid argument") {
                return Err(Error::Init {
                    id: String::new(),
                    msg: format!("drop bounding capability {cap}: {e}"),
                });
            }
        }
    }
    Ok(())
}

/// Switch to the process's uid/gid/groups, keeping capabilities for the final capset.
pub fn set_identity(process: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = process.user();
    if setgroups_allowed {
        let gids: Vec<u32> = u.additional_gids().clone().unwrap_or_default();
        sys::setgroups(&gids).sys(|| format!("setgroups {gids:?}"))?;
    }
    sys::set_keep_caps().sys(|| "prctl keepcaps".into())?;
    let gid = nix::unistd::Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).sys(|| format!("setgid {}", u.gid()))?;
    let uid = nix::unistd::Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).sys(|| format!("setuid {}", u.uid()))?;
    if let Some(mask) = u.umask() {
        sys::umask(mask);
    }
    Ok(())
}

/// Capability names, sorted, for messages.
fn cap_names(set: &CapsHashSet) -> String {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v.join(" ")
}

/// Set the effective, permitted, inheritable and ambient sets as the spec says (inheritable
/// and ambient stay empty unless asked: CVE-2022-29162).
///
/// Like runc, an ambient capability the kernel cannot raise (it must be both permitted and
/// inheritable; `runc spec` lists ambient capabilities with no inheritable ones) is skipped
/// with a warning in the log. A permitted, effective or inheritable capability we cannot grant
/// is an error that names it.
pub fn set_capabilities(c: Option<&LinuxCapabilities>) -> Result<()> {
    let eff = to_caps(c.and_then(|c| c.effective().as_ref()))?;
    let perm = to_caps(c.and_then(|c| c.permitted().as_ref()))?;
    let inh = to_caps(c.and_then(|c| c.inheritable().as_ref()))?;
    let amb = to_caps(c.and_then(|c| c.ambient().as_ref()))?;
    let fail = |set: &str, e: caps::errors::CapsError| Error::Init {
        id: String::new(),
        msg: format!("set {set} capabilities: {e}"),
    };
    let cur_perm = caps::read(None, CapSet::Permitted).map_err(|e| fail("permitted", e))?;
    let missing: CapsHashSet = perm.difference(&cur_perm).copied().collect();
    if !missing.is_empty() {
        return Err(Error::Init {
            id: String::new(),
            msg: format!(
                "cannot grant capabilities {} (process.capabilities.permitted): the runtime itself does not hold them",
                cap_names(&missing)
            ),
        });
    }
    let not_perm: CapsHashSet = eff.difference(&perm).copied().collect();
    if !not_perm.is_empty() {
        return Err(Error::config(
            "process.capabilities.effective",
            format!(
                "{} not in the permitted set: the kernel refuses an effective capability that is not permitted",
                cap_names(&not_perm)
            ),
        ));
    }
    caps::set(None, CapSet::Inheritable, &inh).map_err(|e| {
        let bounding = caps::read(None, CapSet::Bounding).unwrap_or_default();
        let out: CapsHashSet = inh
            .iter()
            .filter(|c| !bounding.contains(c) && !cur_perm.contains(c))
            .copied()
            .collect();
        if out.is_empty() {
            fail("inheritable", e)
        } else {
            Error::Init {
                id: String::new(),
                msg: format!(
                    "cannot grant capabilities {} (process.capabilities.inheritable): not in the runtime's bounding or permitted set",
                    cap_names(&out)
                ),
            }
        }
    })?;
    let eff_now: CapsHashSet = eff.intersection(&cur_perm).copied().collect();
    caps::set(None, CapSet::Effective, &eff_now).map_err(|e| fail("effective", e))?;
    caps::set(None, CapSet::Permitted, &perm).map_err(|e| fail("permitted", e))?;
    caps::set(None, CapSet::Effective, &eff).map_err(|e| fail("effective", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    let (raise, skip) = ambient_split(&amb, &perm, &inh);
    if !skip.is_empty() {
        tracing::warn!(
            "ambient capabilities {} skipped: an ambient capability must also be permitted and inheritable",
            cap_names(&skip)
        );
    }
    for cap in &raise {
        caps::raise(None, CapSet::Ambient, *cap).map_err(|e| fail("ambient", e))?;
    }
    sys::clear_keep_caps();
    Ok(())
}

/// Split the requested ambient set into what the kernel can raise (permitted and
/// inheritable) and what it would refuse with EPERM.
fn ambient_split(
    amb: &CapsHashSet,
    perm: &CapsHashSet,
    inh: &CapsHashSet,
) -> (CapsHashSet, CapsHashSet) {
    amb.iter()
        .copied()
        .partition(|c| perm.contains(c) && inh.contains(c))
}

/// Compile a container's seccomp profile in the runtime (before forking), logging the
/// syscalls it had to skip once, to the runtime's log rather than the container's stderr.
pub fn compile_seccomp(seccomp: Option<&LinuxSeccomp>) -> Result<Option<Compiled>> {
    let Some(s) = seccomp else { return Ok(None) };
    let mut skipped = Vec::new();
    let c = crate::seccomp::compile(s, &mut |name| skipped.push(name.to_string()))?;
    if !skipped.is_empty() {
        tracing::warn!(
            "seccomp: skipped {} syscalls unknown on this architecture: {}",
            skipped.len(),
            skipped.join(" ")
        );
    }
    Ok(Some(c))
}

/// Make sure we run from a sealed copy of our binary before any container process is
/// forked from us (CVE-2019-5736, for every container: see [`sys::reexec_sealed`]).
pub fn ensure_sealed() -> Result<()> {
    if sys::running_sealed() {
        return Ok(());
    }
    let e = sys::reexec_sealed().unwrap_err();
    Err(Error::io(
        "re-execute from a sealed copy of",
        "/proc/self/exe",
        e,
    ))
}

/// Capabilities named on the command line (`exec --cap`), checked.
pub fn parse_caps(names: &[String]) -> Result<HashSet<Capability>> {
    names
        .iter()
        .map(|n| crate::spec::parse_capability(n))
        .collect()
}

/// Write AppArmor/SELinux exec labels when the host has the LSM, through a procfs of our
/// own (never the container's /proc, which its mounts may have redirected).
pub fn set_lsm_labels(process: &Process) -> Result<()> {
    let apparmor = process.apparmor_profile().as_ref().filter(|p| {
        !p.is_empty()
            && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|s| s.trim() == "Y")
    });
    let selinux = process
        .selinux_label()
        .as_ref()
        .filter(|l| !l.is_empty() && Path::new("/sys/fs/selinux/enforce").exists());
    if apparmor.is_none() && selinux.is_none() {
        return Ok(());
    }
    let proc = sys::Procfs::new().sys(|| "open a private procfs for LSM labels".into())?;
    let me = Path::new(&nix::unistd::getpid().to_string()).join("attr");
    if let Some(profile) = apparmor {
        let attr = if proc.open(&me.join("apparmor/exec"), libc::O_PATH).is_ok() {
            me.join("apparmor/exec")
        } else {
            me.join("exec")
        };
        proc.write(&attr, format!("exec {profile}").as_bytes())
            .sys(|| format!("set AppArmor profile {profile}"))?;
    }
    if let Some(label) = selinux {
        proc.write(&me.join("exec"), label.as_bytes())
            .sys(|| format!("set SELinux label {label}"))?;
    }
    Ok(())
}

/// Drop privileges as the spec says and execute the program. Only returns on failure.
pub fn finalize_and_exec(
    process: &Process,
    compiled: Option<&Compiled>,
    program: &Program,
    preserve_fds: u32,
    setgroups_allowed: bool,
) -> Result<std::convert::Infallible> {
    let caps = process.capabilities().as_ref();
    let nnp = process.no_new_privileges() == Some(true);
    set_lsm_labels(process)?;
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we still
    // have it, before the bounding set shrinks and before a non-root uid clears the
    // effective set (the filter must then allow setresuid/capset, as Docker's does).
    if let (Some(c), false) = (compiled, nnp) {
        crate::seccomp::install(c)?;
    }
    drop_bounding(caps)?;
    set_identity(process, setgroups_allowed)?;
    set_capabilities(caps)?;
    if nnp {
        sys::set_no_new_privs().sys(|| "prctl no_new_privs".into())?;
        if let Some(c) = compiled {
            crate::seccomp::install(c)?;
        }
    }
    sys::cloexec_from(3 + preserve_fds as RawFd).sys(|| "mark fds close-on-exec".into())?;
    for fd in 3..3 + preserve_fds as RawFd {
        let _ = sys::clear_cloexec(fd);
    }
    sys::reset_signals();
    let err = nix::unistd::execve(&program.path, &program.argv, &program.envp).unwrap_err();
    Err(Error::sys(
        format!(
            "exec {}",
            OsStr::from_bytes(program.path.as_bytes()).to_string_lossy()
        ),
        err,
    ))
}

/// Check that the working directory did not end up outside the container root
/// (a leaked host directory fd as cwd: CVE-2024-21626).
pub fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).sys(|| format!("chdir to cwd {}", cwd.display()))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(Error::Init {
            id: String::new(),
            msg: format!("cwd {} is outside the container root", p.display()),
        }),
        Err(e) => Err(Error::sys(
            format!("getcwd after chdir {}", cwd.display()),
            e,
        )),
    }
}

/// Open a new pty inside the container, send its master to the console socket, and make the
/// slave our controlling terminal and stdio. Returns the slave, opened from the master
/// (TIOCGPTPEER: no path that could have been swapped) and checked to be a pty.
pub fn setup_terminal(socket: RawFd, size: Option<(u16, u16)>) -> Result<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    use std::os::fd::FromRawFd;
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .sys(|| "open /dev/ptmx".into())?;
    grantpt(&master).sys(|| "grantpt".into())?;
    unlockpt(&master).sys(|| "unlockpt".into())?;
    let name = ptsname_r(&master).sys(|| "ptsname".into())?;
    if let Some((h, w)) = size {
        sys::set_winsize(master.as_raw_fd(), h, w);
    }
    // SAFETY: ioctl TIOCGPTPEER on the master we own, with open flags as its argument; it
    // returns a new fd for the peer.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = if fd >= 0 {
        // SAFETY: the kernel just returned this fd; we own it.
        unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
    } else {
        sys::open(
            Path::new(&name),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::empty(),
        )
        .sys(|| format!("open {name}"))?
    };
    let st = nix::sys::stat::fstat(slave.as_raw_fd()).sys(|| format!("stat {name}"))?;
    // Unix98 pty slaves: character devices with majors 136-143.
    let major = nix::sys::stat::major(st.st_rdev);
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || !(136..=143).contains(&major) {
        return Err(Error::Init {
            id: String::new(),
            msg: format!("{name} is not a pty slave (device {major}): refusing it as the console"),
        });
    }
    send_fd(socket, master.as_raw_fd(), name.as_bytes())?;
    drop(master);
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).sys(|| "dup2 pty slave".into())?;
    }
    sys::set_controlling_tty(0).sys(|| "make the pty the controlling terminal".into())?;
    Ok(slave)
}

/// Send one fd over a unix socket with `payload` (runc sends the pty name).
pub fn send_fd(socket: RawFd, fd: RawFd, payload: &[u8]) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(payload)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .sys(|| "send pty master to the console socket".into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_needs_permitted_and_inheritable() {
        let set = |v: &[Capability]| v.iter().copied().collect::<CapsHashSet>();
        // `runc spec`: ambient = permitted, inheritable empty: nothing can be raised.
        let caps = [Capability::CAP_KILL, Capability::CAP_NET_BIND_SERVICE];
        let (raise, skip) = ambient_split(&set(&caps), &set(&caps), &set(&[]));
        assert!(raise.is_empty());
        assert_eq!(skip, set(&caps));
        let (raise, skip) = ambient_split(
            &set(&caps),
            &set(&caps),
            &set(&[Capability::CAP_NET_BIND_SERVICE]),
        );
        assert_eq!(raise, set(&[Capability::CAP_NET_BIND_SERVICE]));
        assert_eq!(skip, set(&[Capability::CAP_KILL]));
    }
}
