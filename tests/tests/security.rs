//! Regression tests for known container-escape CVEs: each shows the attack failing.

use std::path::Path;

use berth_tests::*;
use serde_json::json;

fn sha(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// CVE-2019-5736: the container must not reach the runtime binary through /proc/<pid>/exe of
/// a runtime process that sits in its pid namespace (the waiting init, or an exec).
#[test]
fn cve_2019_5736_runtime_binary_not_reachable() {
    if !need_root("cve_2019_5736_runtime_binary_not_reachable") {
        return;
    }
    let bin = berth_runtime();
    let before = sha(&bin);
    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "cve5736");
    assert!(c.create(&b).success());
    // While `created`, pid 1 of the container is the runtime's forked init, still running
    // berth-runtime's code. It is non-dumpable until execve: its exe, environ and memory are
    // closed to the container (which lacks CAP_SYS_PTRACE).
    let out = text(
        &c.sh("readlink /proc/1/exe && echo exe-readable; cat /proc/1/environ >/dev/null 2>&1 && echo environ-readable; echo pwned >> /proc/1/exe 2>/dev/null && echo exe-writable; readlink /proc/1/fd/0 && echo fds-listable; echo end")
            .stdout,
    );
    assert!(out.ends_with("end\n"), "{out}");
    for bad in [
        "exe-readable",
        "environ-readable",
        "exe-writable",
        "fds-listable",
    ] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    assert_eq!(sha(&bin), before, "berth-runtime was modified");
    // After start the container's own program is pid 1 and dumpable again (it is theirs).
    ok(&c.verb("start", &[], &[]));
    let out = text(&c.sh("readlink /proc/1/exe").stdout);
    assert_eq!(out.trim(), "/bin/busybox");
    assert_eq!(sha(&bin), before);
}

/// CVE-2024-21626: no host fd leaks into the container, and a cwd naming a leaked fd cannot
/// put the process outside the root.
#[test]
fn cve_2024_21626_no_fd_leak_no_cwd_escape() {
    if !need_root("cve_2024_21626_no_fd_leak_no_cwd_escape") {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
    let c = Ctr::new(Runtime::Berth, "fds");
    let o = c.run(&b);
    // 0 1 2 and the fd ls uses to read the directory.
    assert_eq!(
        text(&o.stdout).trim(),
        "0 1 2 3",
        "stderr: {}",
        text(&o.stderr)
    );

    // The attack: cwd = /proc/self/fd/N where N is a leaked directory fd of the runtime.
    for n in 3..12 {
        let mut b = Bundle::new(&["sh", "-c", "pwd; ls .. | head -3"]);
        b.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
        let c = Ctr::new(Runtime::Berth, "cwd");
        let o = c.run(&b);
        let out = text(&o.stdout);
        assert!(
            !out.contains("(unreachable)"),
            "cwd escaped the root with fd {n}: {out}"
        );
        assert!(!o.status.success() || out.starts_with('/'), "fd {n}: {out}");
        assert!(cgroups_named(&c.id).is_empty());
    }
    // Same through exec --cwd.
    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "execcwd");
    assert!(c.create(&b).success());
    ok(&c.verb("start", &[], &[]));
    for n in 3..12 {
        let cwd = format!("/proc/self/fd/{n}");
        let o = c.verb("exec", &["--cwd", &cwd], &["pwd"]);
        assert!(
            !text(&o.stdout).contains("(unreachable)"),
            "exec cwd escaped with fd {n}"
        );
    }
    // --preserve-fds passes exactly the asked fds.
    let out = text(
        &c.verb("exec", &[], &["sh", "-c", "ls /proc/self/fd | wc -l"])
            .stdout,
    );
    assert_eq!(out.trim(), "4");
}

/// CVE-2021-30465 class: a symlink in the rootfs must not redirect a mount to the host.
#[test]
fn symlinked_mount_destination_stays_in_rootfs() {
    if !need_root("symlinked_mount_destination_stays_in_rootfs") {
        return;
    }
    let victim = TempDir::new("victim");
    let b0 = Bundle::new(&["sh", "-c", "ls /evil/ | head; echo ok"]);
    let mut b = b0;
    // rootfs/evil -> <victim host path>; with a naive join it would mount over the host dir.
    std::os::unix::fs::symlink(victim.path(), b.rootfs().join("evil")).unwrap();
    // A relative escape too.
    std::os::unix::fs::symlink(
        "../../../../../../../../..".to_string() + victim.path().to_str().unwrap(),
        b.rootfs().join("evil2"),
    )
    .unwrap();
    b.push(
        "/mounts",
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    b.push("/mounts", json!({"destination": "/evil2/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let c = Ctr::new(Runtime::Berth, "symlink");
    let o = c.run(&b);
    // The host directory got no mount and no new entries.
    assert!(mounts_containing(victim.path().to_str().unwrap()).is_empty());
    assert_eq!(
        std::fs::read_dir(victim.path()).unwrap().count(),
        0,
        "victim dir was written to"
    );
    // The dangling in-root target is refused (or, had it existed, used inside the rootfs).
    if o.status.success() {
        assert!(b
            .rootfs()
            .join(victim.path().strip_prefix("/").unwrap())
            .exists());
    } else {
        assert!(text(&o.stderr).contains("/evil"), "{}", text(&o.stderr));
    }
    // When the in-root target exists, the mount lands there, still inside the rootfs.
    std::fs::create_dir_all(
        b.rootfs()
            .join(victim.path().strip_prefix("/").unwrap())
            .join("sub"),
    )
    .unwrap();
    let c = Ctr::new(Runtime::Berth, "symlink2");
    let mut b2 = b;
    b2.set(
        "/process/args",
        json!(["sh", "-c", "grep -c tmpfs /proc/self/mountinfo"]),
    );
    let o = c.run(&b2);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(mounts_containing(victim.path().to_str().unwrap()).is_empty());
    assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 0);
}

/// CVE-2025-31133: masking binds /dev/null; if the container made /dev/null a symlink (here
/// through a /dev bound from its own rootfs), the runtime must refuse rather than bind the
/// symlink's target writable over a masked path.
#[test]
fn cve_2025_31133_dev_null_symlink_refused() {
    if !need_root("cve_2025_31133_dev_null_symlink_refused") {
        return;
    }
    let mut b = Bundle::new(&["sh", "-c", "echo ran"]);
    let devdir = b.path().join("devdir");
    std::fs::create_dir(&devdir).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", devdir.join("null")).unwrap();
    // Replace the tmpfs /dev by a bind of the attacker-controlled directory.
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    mounts.push(json!({"destination": "/dev", "type": "bind", "source": devdir, "options": ["rbind", "rw"]}));
    b.set("/linux/maskedPaths", json!(["/etc/passwd"]));
    let core_before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let c = Ctr::new(Runtime::Berth, "devnull");
    let o = c.run(&b);
    assert!(!o.status.success(), "must refuse: {}", text(&o.stdout));
    assert!(text(&o.stderr).contains("/dev/null"), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_before
    );
    assert!(!c.root.path().join(&c.id).exists());
    assert!(cgroups_named(&c.id).is_empty());
}

/// CVE-2022-29162: inheritable (and ambient) capabilities stay empty unless asked, so a
/// non-root process cannot gain capabilities by executing a file-capability binary.
#[test]
fn cve_2022_29162_inheritable_empty_unless_asked() {
    if !need_root("cve_2022_29162_inheritable_empty_unless_asked") {
        return;
    }
    let mut b = Bundle::new(&["sh", "-c", "grep -E '^Cap(Inh|Amb)' /proc/self/status"]);
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let all = json!(["CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": all, "effective": all, "permitted": all}),
    );
    let c = Ctr::new(Runtime::Berth, "inh");
    let out = ok(&c.run(&b));
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000000"), "{out}");
}

/// CVE-2019-5736 for containers that may ptrace (CAP_SYS_PTRACE): non-dumpable is not enough
/// there, so the runtime re-executes from a sealed memfd copy of itself, and what the
/// container reaches through /proc/<pid>/exe can never be written.
#[test]
fn cve_2019_5736_sealed_copy_for_ptrace_capable_containers() {
    if !need_root("cve_2019_5736_sealed_copy_for_ptrace_capable_containers") {
        return;
    }
    let bin = berth_runtime();
    let before = sha(&bin);
    let mut b = Bundle::new(&["sleep", "1000"]);
    for set in ["bounding", "effective", "permitted"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SYS_PTRACE"),
        );
    }
    let c = Ctr::new(Runtime::Berth, "sealed");
    assert!(
        c.create(&b).success(),
        "{}",
        std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
    );
    let out = text(
        &c.sh("readlink /proc/1/exe; echo pwned >> /proc/1/exe 2>/dev/null && echo exe-writable; echo end")
            .stdout,
    );
    assert!(out.starts_with("/memfd:berth-runtime"), "{out}");
    assert!(!out.contains("exe-writable"), "{out}");
    ok(&c.verb("start", &[], &[]));
    assert_eq!(sha(&bin), before, "berth-runtime was modified");
}
