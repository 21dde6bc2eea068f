//! OCI runtime spec (Linux) conformance, written from the spec's text: each test configures one
//! feature and checks its effect from inside the container (and from the host where the spec
//! says so). Bodies run on berth-runtime; runc is used as a reference where noted.

use std::path::Path;

use berth_tests::*;
use serde_json::{json, Value};

/// Run `b` on berth-runtime in the foreground and return (exit code, stdout, stderr).
fn run(b: &Bundle) -> (i32, String, String) {
    run_on(Runtime::Berth, b)
}

fn run_on(rt: Runtime, b: &Bundle) -> (i32, String, String) {
    let c = Ctr::new(rt, "conf");
    let o = c.run(b);
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

fn sh(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

#[test]
fn namespaces_are_new_and_isolated() {
    if !need_root("namespaces_are_new_and_isolated") {
        return;
    }
    let mut b = sh("echo pid=$$; hostname; ls /sys/class/net | tr '\\n' ' '; echo; for n in ipc mnt net pid uts cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup | head -1");
    b.set("/domainname", json!("example.org"));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "berth");
    assert_eq!(
        lines[2].trim(),
        "lo",
        "only loopback in a new network namespace"
    );
    for (i, n) in ["ipc", "mnt", "net", "pid", "uts", "cgroup"]
        .iter()
        .enumerate()
    {
        let host = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        assert_ne!(lines[3 + i], host.to_str().unwrap(), "{n} namespace is new");
    }
    assert!(
        lines[9].ends_with(":/"),
        "cgroup namespace root: {}",
        lines[9]
    );
}

#[test]
fn time_namespace_offsets() {
    if !need_root("time_namespace_offsets") || !Path::new("/proc/self/ns/time").exists() {
        return;
    }
    let mut b = sh("cut -d. -f1 /proc/uptime");
    b.push("/linux/namespaces", json!({"type": "time"}));
    b.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}}),
    );
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside: f64 = out.trim().parse().unwrap();
    // The boot-time clock inside is a year ahead of the host's.
    let year = 86400.0 * 365.0;
    assert!(
        (inside - host - year).abs() < 30.0,
        "uptime inside {inside}, host {host}: the offset was not applied"
    );
    // Offsets without a time namespace, or for a clock that has none, are refused.
    let mut b = sh("true");
    b.set("/linux/timeOffsets", json!({"boottime": {"secs": 1}}));
    let (code, _, err) = run(&b);
    assert_ne!(code, 0);
    assert!(err.contains("linux.timeOffsets"), "{err}");
    let mut b = sh("true");
    b.push("/linux/namespaces", json!({"type": "time"}));
    b.set("/linux/timeOffsets", json!({"realtime": {"secs": 1}}));
    let (code, _, err) = run(&b);
    assert_ne!(code, 0);
    assert!(err.contains("realtime"), "{err}");
}

#[test]
fn user_namespace_with_mappings() {
    if !need_root("user_namespace_with_mappings") {
        return;
    }
    let shared = TempDir::new("userns-shared");
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut b = sh("cat /proc/self/uid_map; id -u; touch /shared/made-in-userns; ls -ln /shared/made-in-userns | awk '{print $3}'");
    b.push("/linux/namespaces", json!({"type": "user"}));
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.push("/mounts", json!({"destination": "/shared", "type": "bind", "source": shared.path(), "options": ["rbind", "rw"]}));
    // The mapped root cannot create mount points in a rootfs owned by host root.
    std::fs::create_dir(b.rootfs().join("shared")).unwrap();
    // Inside a user namespace sysfs is bound, and the v1 cgroup mount is a bind too.
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let map: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    assert_eq!(lines[1], "0", "root inside");
    assert_eq!(lines[2], "0", "owned by root as seen inside");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(shared.path().join("made-in-userns")).unwrap();
    assert_eq!(
        meta.uid(),
        100000,
        "the file belongs to the mapped host uid"
    );
}

#[test]
fn join_namespaces_by_path() {
    if !need_root("join_namespaces_by_path") {
        return;
    }
    let a_b = Bundle::new(&["sleep", "1000"]);
    let a = Ctr::new(Runtime::Berth, "ns-a");
    assert!(a.create(&a_b).success());
    ok(&a.verb("start", &[], &[]));
    let pid = a.state()["pid"].as_i64().unwrap();
    let mut b = sh("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; hostname");
    let nss: Vec<Value> = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}),
        json!({"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")}),
        json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}),
    ];
    b.set("/linux/namespaces", json!(nss));
    b.config.as_object_mut().unwrap().remove("hostname");
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let a_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let a_ipc = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
    assert_eq!(lines[0], a_net.to_str().unwrap());
    assert_eq!(lines[1], a_ipc.to_str().unwrap());
    assert_eq!(
        lines[2], "berth",
        "shares the other container's uts namespace"
    );
    // Our own namespaces were restored after the clone: this process is unaffected.
    assert_ne!(std::fs::read_link("/proc/self/ns/net").unwrap(), a_net);
}

#[test]
fn mounts_bind_tmpfs_and_readonly() {
    if !need_root("mounts_bind_tmpfs_and_readonly") {
        return;
    }
    let rw = TempDir::new("bind-rw");
    let ro = TempDir::new("bind-ro");
    std::fs::write(ro.path().join("file"), "from host").unwrap();
    let mut b = sh("echo written-inside > /rw/out; cat /ro/file; echo; echo x > /ro/nope 2>/dev/null && echo ro-writable; grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1-3; df -k /scratch | tail -1 | awk '{print $2}'");
    b.push(
        "/mounts",
        json!({"destination": "/rw", "type": "bind", "source": rw.path(), "options": ["bind"]}),
    );
    b.push("/mounts", json!({"destination": "/ro", "type": "bind", "source": ro.path(), "options": ["bind", "ro"]}));
    b.push("/mounts", json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=2048k", "mode=1777"]}));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(rw.path().join("out")).unwrap(),
        "written-inside\n"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from host");
    assert!(
        !out.contains("ro-writable"),
        "read-only bind mount was writable"
    );
    assert!(!ro.path().join("nope").exists());
    assert!(lines[1].starts_with("tmpfs rw,nosuid"), "{}", lines[1]);
    assert_eq!(lines[2], "2048");
    // Nothing of the container's mounts is visible on the host.
    assert!(mounts_containing(b.path().to_str().unwrap()).is_empty());
}

#[test]
fn readonly_root_and_propagation() {
    if !need_root("readonly_root_and_propagation") {
        return;
    }
    let mut b = sh("touch /newfile 2>/dev/null && echo root-writable; touch /dev/shm/ok && echo tmpfs-ok; grep ' / ' /proc/self/mountinfo | head -1");
    b.set("/root/readonly", json!(true));
    b.set("/linux/rootfsPropagation", json!("private"));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("root-writable"));
    assert!(out.contains("tmpfs-ok"));
    assert!(!b.rootfs().join("newfile").exists());
    assert!(!out.lines().last().unwrap().contains("shared:"), "{out}");
}

#[test]
fn no_pivot_still_isolates() {
    if !need_root("no_pivot_still_isolates") {
        return;
    }
    let b = sh("ls /; cat /proc/self/mountinfo | wc -l");
    b.write();
    let c = Ctr::new(Runtime::Berth, "nopivot");
    let o = c
        .cmd()
        .args([
            "run",
            "--no-pivot",
            "--bundle",
            b.path().to_str().unwrap(),
            &c.id,
        ])
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.contains("bin") && !out.contains("work\n"), "{out}");
}

#[test]
fn masked_and_readonly_paths() {
    if !need_root("masked_and_readonly_paths") {
        return;
    }
    let mut b = sh("wc -c < /etc/secret; ls /secretdir | wc -l; echo x > /secretdir/new 2>/dev/null && echo masked-writable; echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable; echo 1 > /proc/sys/kernel/shmmni 2>/dev/null && echo sys-writable; echo done");
    std::fs::write(b.rootfs().join("etc/secret"), "top secret").unwrap();
    std::fs::create_dir(b.rootfs().join("secretdir")).unwrap();
    std::fs::write(b.rootfs().join("secretdir/inside"), "hidden").unwrap();
    b.push("/linux/maskedPaths", json!("/etc/secret"));
    b.push("/linux/maskedPaths", json!("/secretdir"));
    b.push("/linux/maskedPaths", json!("/does/not/exist"));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "masked file reads empty");
    assert_eq!(lines[1].trim(), "0", "masked directory is empty");
    assert!(!out.contains("writable"), "{out}");
    assert_eq!(lines.last(), Some(&"done"));
}

#[test]
fn devices_default_and_configured() {
    if !need_root("devices_default_and_configured") {
        return;
    }
    let mut b = sh("for d in null zero full random urandom tty mynull; do stat -c '%n %t:%T %a %u' /dev/$d; done; echo hi > /dev/mynull && echo mynull-ok; readlink /dev/ptmx; readlink /dev/fd; mknod /dev/sda-test b 8 0 && head -c1 /dev/sda-test >/dev/null 2>&1 && echo block-readable; echo end");
    b.set("/linux/devices", json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0}]));
    b.push("/process/capabilities/bounding", json!("CAP_MKNOD"));
    b.push("/process/capabilities/effective", json!("CAP_MKNOD"));
    b.push("/process/capabilities/permitted", json!("CAP_MKNOD"));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    for want in [
        "/dev/null 1:3 666",
        "/dev/zero 1:5 666",
        "/dev/full 1:7 666",
        "/dev/random 1:8 666",
        "/dev/urandom 1:9 666",
        "/dev/tty 5:0 666",
        "/dev/mynull 1:3 640",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    assert!(out.contains("mynull-ok"));
    assert!(
        out.contains("pts/ptmx") && out.contains("/proc/self/fd"),
        "{out}"
    );
    assert!(
        !out.contains("block-readable"),
        "the devices cgroup must deny unlisted devices: {out}"
    );
}

#[test]
fn sysctl_rlimits_oom_score_personality_hostname() {
    if !need_root("sysctl_rlimits_oom_score_personality_hostname") {
        return;
    }
    let mut b = sh("cat /proc/sys/net/ipv4/ip_forward; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; uname -m; hostname; domainname 2>/dev/null || cat /proc/sys/kernel/domainname");
    // The opposite of the host's value, so both the container's and the host's can be told.
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string();
    let want = if host_forward == "1" { "0" } else { "1" };
    b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": want}));
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 1234, "hard": 2345}]),
    );
    b.set("/process/oomScoreAdj", json!(456));
    b.set("/linux/personality", json!({"domain": "LINUX32"}));
    b.set("/hostname", json!("conformance"));
    b.set("/domainname", json!("example.test"));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            want,
            "1234",
            "2345",
            "456",
            "i686",
            "conformance",
            "example.test"
        ],
        "{out}"
    );
    // The host's own setting is untouched by the container's network namespace.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        host_forward,
        "the container's sysctl changed the host's"
    );
}

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn capabilities_sets_and_no_new_privileges() {
    if !need_root("capabilities_sets_and_no_new_privileges") {
        return;
    }
    // CAP_KILL=5, CAP_NET_BIND_SERVICE=10, CAP_AUDIT_WRITE=29 → 0x20000420.
    let b = sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status_field(&out, "CapBnd"), "0000000020000420");
    assert_eq!(status_field(&out, "CapEff"), "0000000020000420");
    assert_eq!(status_field(&out, "CapPrm"), "0000000020000420");
    assert_eq!(
        status_field(&out, "CapInh"),
        "0000000000000000",
        "CVE-2022-29162"
    );
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");

    // A non-root user keeps exactly the asked ambient capability; no_new_privs off.
    let mut b = sh("id -u; grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 23}),
    );
    let nbs = json!(["CAP_NET_BIND_SERVICE"]);
    b.set("/process/capabilities", json!({"bounding": nbs, "effective": nbs, "permitted": nbs, "inheritable": nbs, "ambient": nbs}));
    b.set("/process/noNewPrivileges", json!(false));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1000\n"));
    assert_eq!(status_field(&out, "CapEff"), "0000000000000400");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000400");
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000400");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
}

#[test]
fn user_groups_umask_cwd_env() {
    if !need_root("user_groups_umask_cwd_env") {
        return;
    }
    let mut b = sh("id -u; id -g; id -G; umask; pwd; echo $GREETING");
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 23}),
    );
    b.set("/process/cwd", json!("/tmp"));
    b.push("/process/env", json!("GREETING=hello world"));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(
        groups.contains(&"5") && groups.contains(&"6") && groups.contains(&"1001"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "0027");
    assert_eq!(lines[4], "/tmp");
    assert_eq!(lines[5], "hello world");
}

fn seccomp_bundle(script: &str, profile: Value) -> Bundle {
    let mut b = sh(script);
    b.set("/linux/seccomp", profile);
    b
}

#[test]
fn seccomp_errno_args_and_kill() {
    if !need_root("seccomp_errno_args_and_kill") {
        return;
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["not_a_real_syscall_berth"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    let b = seccomp_bundle(
        "mkdir /tmp/d 2>&1; touch /tmp/f; chmod 755 /tmp/f && echo chmod755-ok; chmod 777 /tmp/f 2>&1; grep -E '^Seccomp:' /proc/self/status",
        profile,
    );
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Function not implemented"),
        "errnoRet 38 = ENOSYS: {out}"
    );
    assert!(out.contains("chmod755-ok"), "{out}");
    assert!(
        out.contains("Operation not permitted"),
        "arg condition: default errno EPERM: {out}"
    );
    assert_eq!(status_field(&out, "Seccomp"), "2");
    // Unknown syscalls are skipped with one warning (to the runtime's log: stderr here).
    assert!(
        err.contains("skipped 1 syscalls") && err.contains("not_a_real_syscall_berth"),
        "{err}"
    );

    // KILL_PROCESS: the process dies of SIGSYS (exit 128+31).
    let b = seccomp_bundle(
        "uname -a; echo survived",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
    );
    let b2 = Bundle {
        dir: b.dir,
        config: {
            let mut c = b.config;
            c["process"]["args"] = json!(["uname"]);
            c
        },
    };
    let (code, out, _) = run(&b2);
    assert_eq!(code, 128 + 31, "{out}");
}

#[test]
fn seccomp_default_deny_allowlist() {
    if !need_root("seccomp_default_deny_allowlist") {
        return;
    }
    // Everything but getpid is allowed through the allowlist; default returns EPERM.
    let mut names = Vec::new();
    for n in [
        "read",
        "write",
        "openat",
        "open",
        "close",
        "fstat",
        "newfstatat",
        "stat",
        "lstat",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "execve",
        "exit",
        "exit_group",
        "arch_prctl",
        "set_tid_address",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "uname",
        "fcntl",
        "dup2",
        "dup3",
        "wait4",
        "clone",
        "clone3",
        "vfork",
        "fork",
        "getppid",
        "prlimit64",
        "getdents64",
        "lseek",
        "access",
        "faccessat",
        "faccessat2",
        "readlink",
        "readlinkat",
        "statx",
        "getcwd",
        "chdir",
        "pipe",
        "pipe2",
        "futex",
        "set_robust_list",
        "rseq",
        "getrandom",
        "sigaltstack",
        "kill",
        "setpgid",
        "getpgrp",
        "getpgid",
        "poll",
        "ppoll",
        "pselect6",
        "select",
        "nanosleep",
        "clock_nanosleep",
        "sysinfo",
        "gettid",
        "tgkill",
        "capget",
        "capset",
        "prctl",
    ] {
        names.push(n);
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    });
    let b = seccomp_bundle("echo allowed; mkdir /tmp/x 2>&1 || true; echo end", profile);
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err} {out}");
    assert!(out.contains("allowed"));
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn all_six_hooks_run_in_order_with_state() {
    if !need_root("all_six_hooks_run_in_order_with_state") {
        return;
    }
    let log = TempDir::new("hooks");
    let logp = log.path().to_str().unwrap().to_string();
    let host_hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {logp}/{name}.json; echo {name} >> {logp}/order")]});
    let mut b = Bundle::new(&["sh", "-c", "echo main >> /hooklog/order"]);
    b.set("/annotations", json!({"org.example.hooks": "stdin test"}));
    b.push("/mounts", json!({"destination": "/hooklog", "type": "bind", "source": log.path(), "options": ["rbind", "rw"]}));
    b.set("/hooks", json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /hooklog/startContainer.json; echo startContainer >> /hooklog/order"]}],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")]
    }));
    let c = Ctr::new(Runtime::Berth, "hooks");
    assert!(
        c.create(&b).success(),
        "{}",
        std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
    );
    let pid = c.state()["pid"].as_i64().unwrap();
    ok(&c.verb("start", &[], &[]));
    c.wait_status("stopped");
    ok(&c.verb("delete", &[], &[]));
    let order = std::fs::read_to_string(log.path().join("order")).unwrap();
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order[..3], ["prestart", "createRuntime", "createContainer"]);
    assert_eq!(order[3], "startContainer");
    assert!(
        order.contains(&"main") && order.contains(&"poststart"),
        "{order:?}"
    );
    assert_eq!(order.last(), Some(&"poststop"));
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let s: Value =
            serde_json::from_slice(&std::fs::read(log.path().join(format!("{h}.json"))).unwrap())
                .unwrap_or_else(|e| panic!("{h}: {e}"));
        assert_eq!(s["id"], json!(c.id), "{h}");
        assert_eq!(s["annotations"]["org.example.hooks"], "stdin test", "{h}");
        assert!(s["ociVersion"].is_string(), "{h}");
        if h != "poststop" {
            assert!(s["pid"].as_i64().unwrap() > 0, "{h}");
        }
        if h == "prestart" || h == "createRuntime" {
            assert_eq!(s["pid"].as_i64().unwrap(), pid, "{h}");
            assert_eq!(s["status"], "created", "{h}");
        }
        if h == "poststart" {
            assert_eq!(s["status"], "running", "{h}");
            assert_eq!(s["pid"].as_i64().unwrap(), pid, "{h}");
        }
        assert_eq!(
            s["bundle"].as_str().unwrap(),
            b.path().to_str().unwrap(),
            "{h}"
        );
    }
}

#[test]
fn failing_or_slow_hook_fails_create_cleanly() {
    if !need_root("failing_or_slow_hook_fails_create_cleanly") {
        return;
    }
    for (hook, want) in [
        (
            json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}),
            "nope",
        ),
        (
            json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}),
            "timed out",
        ),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.set("/hooks", json!({"createRuntime": [hook]}));
        let c = Ctr::new(Runtime::Berth, "badhook");
        let started = std::time::Instant::now();
        assert!(!c.create(&b).success());
        assert!(started.elapsed().as_secs() < 10);
        let err = std::fs::read_to_string(b.path().join("ctr.err")).unwrap();
        assert!(
            err.contains("createRuntime hook") && err.contains(want),
            "{err}"
        );
        assert!(!c.root.path().join(&c.id).exists(), "state dir left behind");
        assert!(cgroups_named(&c.id).is_empty(), "cgroup left behind");
    }
}

#[test]
fn terminal_through_console_socket() {
    if !need_root("terminal_through_console_socket") {
        return;
    }
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;
    let dir = TempDir::new("console");
    let sock = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut b = sh("tty; stat -c %t:%T /dev/console; stty size; echo bye");
    b.set("/process/terminal", json!(true));
    b.set("/process/consoleSize", json!({"height": 33, "width": 101}));
    let c = Ctr::new(Runtime::Berth, "tty");
    let recv = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().copied();
            }
        }
        // SAFETY: the kernel just gave us this fd over SCM_RIGHTS.
        unsafe { OwnedFd::from_raw_fd(fd.expect("pty master fd")) }
    });
    assert!(
        c.create_with(&b, &["--console-socket", sock.to_str().unwrap()])
            .success(),
        "{}",
        std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
    );
    let master = recv.join().unwrap();
    ok(&c.verb("start", &[], &[]));
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    use std::io::Read;
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if text(&out).contains("bye") {
                    break;
                }
            }
        }
    }
    let out = text(&out);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(
        out.contains("88:0"),
        "/dev/console is the pty (major 136 = 0x88): {out}"
    );
    assert!(out.contains("33 101"), "console size: {out}");
}

#[test]
fn cgroup_limits_are_applied() {
    if !need_root("cgroup_limits_are_applied") {
        return;
    }
    let mut b = sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max");
    b.set(
        "/linux/resources/memory",
        json!({"limit": 33554432, "reservation": 16777216}),
    );
    b.set(
        "/linux/resources/cpu",
        json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}),
    );
    b.set("/linux/resources/pids", json!({"limit": 42}));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["33554432", "42"],
        "the container sees its own limits through /sys/fs/cgroup"
    );

    // Host side, while it runs.
    let b = Bundle::new(&["sleep", "1000"]);
    let mut b = b;
    b.set(
        "/linux/resources/cpu",
        json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}),
    );
    b.set(
        "/linux/cgroupsPath",
        json!(format!("/berth-test-cg/{}", unique_id("cg"))),
    );
    // Throttle reads from the disk under / (whole-disk major:minor, as blkio wants).
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    let (maj, min) = (libc::major(dev) as i64, 0i64);
    b.set(
        "/linux/resources/blockIO",
        json!({"throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}]}),
    );
    let c = Ctr::new(Runtime::Berth, "cg");
    assert!(
        c.create(&b).success(),
        "{}",
        std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
    );
    let cgpath = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let v1 = Path::new("/sys/fs/cgroup/cpu").join(&cgpath);
    if v1.exists() {
        assert_eq!(
            std::fs::read_to_string(v1.join("cpu.shares"))
                .unwrap()
                .trim(),
            "512"
        );
        assert_eq!(
            std::fs::read_to_string(v1.join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "50000"
        );
        let bio = Path::new("/sys/fs/cgroup/blkio").join(&cgpath);
        let t = std::fs::read_to_string(bio.join("blkio.throttle.read_bps_device")).unwrap();
        assert_eq!(t.trim(), format!("{maj}:{min} 1048576"));
        let cs = Path::new("/sys/fs/cgroup/cpuset").join(&cgpath);
        assert_eq!(
            std::fs::read_to_string(cs.join("cpuset.cpus"))
                .unwrap()
                .trim(),
            "0"
        );
    } else {
        let v2 = Path::new("/sys/fs/cgroup").join(&cgpath);
        assert_eq!(
            std::fs::read_to_string(v2.join("cpu.max")).unwrap().trim(),
            "50000 100000"
        );
    }
    drop(c);
    assert!(!v1.exists(), "cgroup removed on delete");
    // Leave no parent behind either.
    for h in [
        "cpu", "memory", "pids", "cpuset", "freezer", "devices", "blkio", "cpuacct", "systemd",
        "unified", "",
    ] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(h).join("berth-test-cg"));
    }
}

#[test]
fn oom_kill_is_reported_by_events() {
    if !need_root("oom_kill_is_reported_by_events") {
        return;
    }
    let mut b = sh("sleep 0.5; head -c 200m /dev/zero | tail > /dev/null; sleep 1000");
    b.set(
        "/linux/resources/memory",
        json!({"limit": 16777216, "swap": 16777216}),
    );
    let c = Ctr::new(Runtime::Berth, "oom");
    assert!(
        c.create(&b).success(),
        "{}",
        std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
    );
    let mut ev = c
        .cmd()
        .args(["events", "--interval", "1s", &c.id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ok(&c.verb("start", &[], &[]));
    let stdout = ev.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["type"] == "oom" {
                return true;
            }
        }
        false
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = ev.kill();
    let _ = ev.wait();
    assert!(reader.join().unwrap(), "no oom event");
}

#[test]
fn foreground_terminal_without_console_socket() {
    if !need_root("foreground_terminal_without_console_socket") || !have("script") {
        return;
    }
    // `script` gives the runtime a terminal; the runtime copies the container's pty to it.
    let mut b = sh("tty; stty size; exit 4");
    b.set("/process/terminal", json!(true));
    b.write();
    let c = Ctr::new(Runtime::Berth, "fgtty");
    let cmd = format!(
        "stty rows 21 cols 77; {} --root {} run --bundle {} {}",
        berth_runtime().display(),
        c.root.path().display(),
        b.path().display(),
        c.id
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out} {}", text(&o.stderr));
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("21 77"), "window size passed on: {out}");
    // Detached with a terminal needs a console socket: refused by name, nothing left.
    let o = c
        .cmd()
        .args(["run", "-d", "--bundle", b.path().to_str().unwrap(), &c.id])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("console-socket"),
        "{}",
        text(&o.stderr)
    );
    assert!(cgroups_named(&c.id).is_empty());
}

#[test]
fn preserve_fds_and_session_keyring() {
    if !need_root("preserve_fds_and_session_keyring") {
        return;
    }
    let b = sh("cat <&3; ls /proc/self/fd | wc -l");
    b.write();
    std::fs::write(b.path().join("fd3.txt"), "through fd 3\n").unwrap();
    let c = Ctr::new(Runtime::Berth, "keep");
    let script = format!(
        "exec 3<{}; exec {} --root {} run --preserve-fds 1 --bundle {} {}",
        b.path().join("fd3.txt").display(),
        berth_runtime().display(),
        c.root.path().display(),
        b.path().display(),
        c.id
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.starts_with("through fd 3\n"), "{out}");
    // 0 1 2 3 and the directory fd of ls.
    assert_eq!(out.lines().nth(1), Some("5"), "{out}");

    // A new session keyring per container, named after it (unless --no-new-keyring).
    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "keyring");
    assert!(c.create(&b).success());
    let keys = std::fs::read_to_string("/proc/keys").unwrap_or_default();
    assert!(keys.contains(&format!("_ses.{}", c.id)), "{keys}");
}

#[test]
fn io_priority_scheduler_affinity() {
    if !need_root("io_priority_scheduler_affinity") {
        return;
    }
    let mut b = sh("ionice; grep Cpus_allowed_list /proc/self/status; cut -d' ' -f41 /proc/self/stat; cut -d' ' -f19 /proc/self/stat");
    b.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
    );
    b.set(
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "nice": 7}),
    );
    b.set("/process/execCPUAffinity", json!({"final": "0"}));
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "best-effort: prio 6", "{out}");
    assert!(lines[1].ends_with("\t0"), "{out}");
    assert_eq!(lines[2], "3", "SCHED_BATCH policy: {out}");
    assert_eq!(lines[3], "7", "nice: {out}");
}

#[test]
fn join_user_namespace_by_path_and_exec_into_it() {
    if !need_root("join_user_namespace_by_path_and_exec_into_it") {
        return;
    }
    let maps = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let mut a_b = Bundle::new(&["sleep", "1000"]);
    a_b.push("/linux/namespaces", json!({"type": "user"}));
    a_b.set("/linux/uidMappings", maps.clone());
    a_b.set("/linux/gidMappings", maps);
    let a = Ctr::new(Runtime::Berth, "userns-a");
    assert!(
        a.create(&a_b).success(),
        "{}",
        std::fs::read_to_string(a_b.path().join("ctr.err")).unwrap()
    );
    ok(&a.verb("start", &[], &[]));
    // exec joins the user namespace first, then the rest.
    let out = ok(&a.sh("id -u; cat /proc/self/uid_map"));
    assert!(out.starts_with("0\n") && out.contains("200000"), "{out}");
    let pid = a.state()["pid"].as_i64().unwrap();
    let a_user = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();

    // A second container joins that user namespace by path, with a new pid namespace of its
    // own (the slow path: setns, unshare, fork).
    let mut b = sh("id -u; echo pid=$$; readlink /proc/self/ns/user");
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "user", "path": format!("/proc/{pid}/ns/user")},
            {"type": "network", "path": format!("/proc/{pid}/ns/net")}
        ]),
    );
    let (code, out, err) = run(&b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["0", "pid=1", a_user.to_str().unwrap()], "{out}");
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    if !need_root("failing_poststart_and_poststop_hooks_only_warn") {
        return;
    }
    let log = TempDir::new("warnhooks");
    let mark = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}/order", log.path().display())]});
    let fail = json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]});
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.set(
        "/hooks",
        json!({
            "poststart": [fail.clone(), mark("poststart-after-failure")],
            "poststop": [fail, mark("poststop-after-failure")]
        }),
    );
    let c = Ctr::new(Runtime::Berth, "warnhooks");
    assert!(c.create(&b).success());
    let o = c.verb("start", &[], &[]);
    assert!(
        o.status.success(),
        "a failing poststart hook must not fail start: {}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("poststart hook"),
        "warned: {}",
        text(&o.stderr)
    );
    assert_eq!(c.status(), "running");
    ok(&c.verb("kill", &[], &["KILL"]));
    c.wait_status("stopped");
    ok(&c.verb("delete", &[], &[]));
    let order = std::fs::read_to_string(log.path().join("order")).unwrap();
    assert_eq!(order, "poststart-after-failure\npoststop-after-failure\n");
}

#[test]
fn failing_start_container_hook_fails_start() {
    if !need_root("failing_start_container_hook_fails_start") {
        return;
    }
    // Spec: if a startContainer hook fails, generate an error and stop the container.
    let mut b = Bundle::new(&["sh", "-c", "echo must-not-run > /dev/shm/ran; sleep 1000"]);
    b.set("/hooks", json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-says-no >&2; exit 5"]}]}));
    let c = Ctr::new(Runtime::Berth, "schook");
    assert!(c.create(&b).success());
    let o = c.verb("start", &[], &[]);
    assert!(!o.status.success(), "start must fail");
    let err = text(&o.stderr);
    assert!(
        err.contains("startContainer hook") && err.contains("hook-says-no"),
        "{err}"
    );
    c.wait_status("stopped");
    ok(&c.verb("delete", &[], &[]));
    assert!(cgroups_named(&c.id).is_empty());
}
