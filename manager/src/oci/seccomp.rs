//! A default seccomp profile equivalent to Docker's: deny with EPERM by default; allow the
//! common syscalls; allow the privileged ones only when the container holds the capability
//! that makes them meaningful; `clone` without namespace flags and `clone3` → ENOSYS (so libc
//! falls back to clone) unless CAP_SYS_ADMIN; `socket` except AF_VSOCK; `personality` for the
//! harmless personas only. io_uring is denied, as Docker ≥ 25 denies it (its syscalls
//! bypass the filter's view of what a process does).
//!
//! [`from_docker`] turns a profile in Docker's format (what `--security-opt seccomp=FILE`
//! sends: `archMap`, `includes`/`excludes` by capability, architecture and kernel) into the
//! spec's `linux.seccomp` for one container.

use serde_json::{json, Value};

/// Allowed for every container.
const ALLOW: &str =
    "accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir chmod \
chown clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect \
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old \
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit \
exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir fchmod fchmodat \
fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat \
fstatfs fsync ftruncate futex futex_waitv futimesat getcpu getcwd getdents getdents64 \
getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid \
getpriority getrandom getresgid getresuid getrlimit get_robust_list getrusage getsid \
getsockname getsockopt get_thread_area gettid gettimeofday getuid getxattr inotify_add_watch \
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents \
io_pgetevents ioprio_get ioprio_set io_setup io_submit kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown \
lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise \
membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 \
mlockall mmap modify_ldt mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap \
name_to_handle_at nanosleep newfstatat open openat openat2 pause pidfd_open \
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 \
preadv preadv2 prlimit64 process_mrelease pselect6 pwrite64 pwritev pwritev2 read readahead \
readlink readlinkat readv recvfrom recvmmsg recvmsg remap_file_pages removexattr rename \
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask \
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo \
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min \
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam \
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop sendfile \
sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups setitimer setpgid setpriority \
setregid setresgid setresuid setreuid setrlimit set_robust_list setsid setsockopt \
set_thread_area set_tid_address setuid setxattr shmat shmctl shmdt shmget shutdown \
sigaltstack signalfd signalfd4 socketpair splice stat statfs statx symlink symlinkat sync \
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun \
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill \
truncate umask uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid \
write writev";

/// Allowed only with a capability.
const BY_CAP: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
         sethostname setns syslog umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday clock_settime"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// ptrace and process_vm_* are allowed to all on kernels ≥ 4.8 (where seccomp can no longer
/// be bypassed with ptrace), as Docker does; every kernel we support is newer.
const PTRACE: &str = "ptrace process_vm_readv process_vm_writev";

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET (| CLONE_NEWTIME's neighbour bits as Docker masks them).
const CLONE_NS_MASK: u64 = 2114060288;

fn names(list: &str) -> Vec<&str> {
    list.split_whitespace().filter(|n| known(n)).collect()
}

/// Keep the profile to syscalls this architecture has (so runtimes don't warn).
fn known(name: &str) -> bool {
    if cfg!(target_arch = "x86_64") {
        berth_runtime::seccomp::syscall_number(name).is_some()
    } else {
        true
    }
}

fn arches() -> Value {
    if cfg!(target_arch = "x86_64") {
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    } else if cfg!(target_arch = "aarch64") {
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    } else {
        json!([])
    }
}

/// The profile for a container holding `caps` (its bounding set).
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut allow = names(ALLOW);
    allow.extend(names(PTRACE));
    for (cap, list) in BY_CAP {
        if has(cap) {
            allow.extend(names(list));
        }
    }
    allow.sort_unstable();
    allow.dedup();
    let mut rules = vec![json!({"names": allow, "action": "SCMP_ACT_ALLOW"})];
    rules.push(json!({
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}],
    }));
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
        }));
    }
    if !has("CAP_SYS_ADMIN") {
        rules.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NS_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
        rules.push(json!({
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 38,
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": arches(),
        "syscalls": rules,
    })
}

/// The Go architecture name Docker's profiles use in `includes.arches`.
fn go_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    }
}

/// The SCMP_ARCH_* name of this machine.
fn native_scmp_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "SCMP_ARCH_X86_64"
    } else if cfg!(target_arch = "aarch64") {
        "SCMP_ARCH_AARCH64"
    } else {
        ""
    }
}

/// "6.18.0-1-amd64" ≥ "4.8"?
fn kernel_at_least(min: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|n| n.parse().unwrap_or(0))
            .collect()
    };
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&release) >= parse(min)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A Docker-format profile → `linux.seccomp` for a container holding `caps`.
pub fn from_docker(profile: &Value, caps: &[String]) -> Result<Value, String> {
    let o = profile
        .as_object()
        .ok_or("the profile is not a JSON object")?;
    let default_action = o
        .get("defaultAction")
        .and_then(Value::as_str)
        .ok_or("defaultAction is missing")?;
    if o.contains_key("architectures") && o.contains_key("archMap") {
        return Err("use either 'architectures' or 'archMap'".into());
    }
    let mut out = json!({"defaultAction": default_action});
    if let Some(e) = o.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = e.clone();
    }
    let arches: Vec<String> = if let Some(a) = o.get("architectures") {
        strings(a).into_iter().map(str::to_string).collect()
    } else if let Some(map) = o.get("archMap").and_then(Value::as_array) {
        map.iter()
            .filter(|m| m["architecture"] == native_scmp_arch())
            .flat_map(|m| {
                std::iter::once(native_scmp_arch().to_string()).chain(
                    strings(&m["subArchitectures"])
                        .into_iter()
                        .map(str::to_string),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    for k in ["flags", "listenerPath", "listenerMetadata"] {
        if let Some(v) = o.get(k) {
            out[k] = v.clone();
        }
    }
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut rules = Vec::new();
    for (i, call) in o
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let inc = &call["includes"];
        let exc = &call["excludes"];
        if !strings(&inc["caps"]).iter().all(|c| has(c))
            || (!strings(&inc["arches"]).is_empty()
                && !strings(&inc["arches"]).contains(&go_arch()))
            || inc["minKernel"]
                .as_str()
                .is_some_and(|k| !kernel_at_least(k))
            || strings(&exc["caps"]).iter().any(|c| has(c))
            || strings(&exc["arches"]).contains(&go_arch())
            || exc["minKernel"].as_str().is_some_and(kernel_at_least)
        {
            continue;
        }
        let mut names: Vec<&str> = strings(&call["names"]);
        if let Some(n) = call["name"].as_str() {
            names.push(n);
        }
        if names.is_empty() {
            return Err(format!("syscalls[{i}] names no syscall"));
        }
        let action = call["action"]
            .as_str()
            .ok_or_else(|| format!("syscalls[{i}] has no action"))?;
        let mut r = json!({"names": names, "action": action});
        for k in ["errnoRet", "args"] {
            if let Some(v) = call.get(k).filter(|v| !v.is_null()) {
                r[k] = v.clone();
            }
        }
        rules.push(r);
    }
    out["syscalls"] = json!(rules);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_is_denied_by_default() {
        let p = default_profile(&[]);
        let allowed: Vec<&str> = strings(&p["syscalls"][0]["names"]);
        assert!(allowed.contains(&"read"));
        assert!(!allowed.iter().any(|n| n.starts_with("io_uring")));
    }

    #[test]
    fn docker_profiles_are_filtered_for_the_container() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": native_scmp_arch(), "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_S390X", "subArchitectures": []}],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "x"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"name": "chmod", "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "excludes": {"caps": ["CAP_FOWNER"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            ],
        });
        let o = from_docker(&p, &["CAP_CHOWN".to_string()]).unwrap();
        assert_eq!(
            o["architectures"],
            json!([native_scmp_arch(), "SCMP_ARCH_X86"])
        );
        let names: Vec<Value> = o["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["names"].clone())
            .collect();
        assert_eq!(
            names,
            vec![
                json!(["read", "write"]),
                json!(["chmod"]),
                json!(["ptrace"])
            ]
        );
        assert!(o["syscalls"][0].get("comment").is_none());
        assert_eq!(o["syscalls"][1]["errnoRet"], 13);
        let o = from_docker(&p, &["CAP_SYS_ADMIN".to_string(), "CAP_FOWNER".to_string()]).unwrap();
        assert_eq!(o["syscalls"][1]["names"], json!(["mount"]));
        assert!(from_docker(&json!({"syscalls": []}), &[]).is_err());
        assert!(from_docker(&json!([]), &[]).is_err());
    }
}
