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

/// CVE-2019-5736 for every container: the runtime re-executes from a sealed memfd copy of
/// itself before any container process exists, so `/proc/<pid>/exe` of its init and of its
/// exec'd processes never names the host's binary. Host-side check first (even host root
/// cannot write what a container's runtime process runs from), then the published attack:
/// the container's entrypoint is `#!/proc/self/exe` (so `exec` makes the runtime run inside
/// the container), and a process in the container holding CAP_SYS_PTRACE (so non-dumpable
/// does not stop it) opens `/proc/<pid>/exe` of every process it sees and keeps trying to
/// write it after that process exits. Runs a copy of the binary, so a failure cannot
/// corrupt the one other tests use.
#[test]
fn cve_2019_5736_binary_overwrite_through_proc_self_exe() {
    if !need_root("cve_2019_5736_binary_overwrite_through_proc_self_exe") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let work = TempDir::new("cve5736");
    let bin = work.path().join("berth-runtime");
    std::fs::copy(berth_runtime(), &bin).unwrap();
    let before = sha(&bin);
    let root = work.path().join("root");
    let rt = |args: &[&str]| {
        std::process::Command::new(&bin)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // The attacker: pid 1 of the container. Shell builtins only (no fork per try), so it
    // catches short-lived processes.
    let attack = r#"
        : > /tmp/captured
        while [ ! -e /tmp/stop ]; do
          for d in /proc/[0-9]*; do
            [ "$d" = /proc/$$ ] && continue
            [ "$d/exe" -ef /bin/busybox ] && continue
            exec 3< "$d/exe" 2>/dev/null || continue
            echo "$d" >> /tmp/captured
            i=0
            while [ $i -lt 2000 ]; do
              if { echo pwned >> /proc/self/fd/3; } 2>/dev/null; then echo "wrote via $d" >> /tmp/wrote; break; fi
              i=$((i+1))
            done
            exec 3<&-
          done
        done
    "#;
    let mut b = Bundle::new(&["sh", "-c", attack]);
    let entry = b.rootfs().join("entry");
    std::fs::write(&entry, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).unwrap();
    for set in ["bounding", "effective", "permitted"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SYS_PTRACE"),
        );
    }
    b.write();
    let id = unique_id("cve5736");
    let bundle = b.path().to_str().unwrap().to_string();
    // The init keeps its stdio until start: files, not pipes.
    let st = std::process::Command::new(&bin)
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle", &bundle, &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(work.path().join("out")).unwrap())
        .stderr(std::fs::File::create(work.path().join("err")).unwrap())
        .status()
        .unwrap();
    let err = std::fs::read_to_string(work.path().join("err")).unwrap();
    assert!(st.success(), "create: {err}");
    struct Gone<'a>(&'a dyn Fn(&[&str]) -> std::process::Output, &'a str);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            (self.0)(&["delete", "--force", self.1]);
        }
    }
    let _gone = Gone(&rt, &id);
    // Host side, while created: the waiting init runs from the sealed memfd, which even the
    // host's root cannot write.
    let state: serde_json::Value = serde_json::from_slice(&rt(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let exe = format!("/proc/{pid}/exe");
    let link = std::fs::read_link(&exe).unwrap();
    assert!(
        link.to_string_lossy().starts_with("/memfd:berth-runtime"),
        "init runs from {}",
        link.display()
    );
    let w = std::fs::OpenOptions::new()
        .append(true)
        .open(&exe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"pwned"));
    assert!(w.is_err(), "host root could write the init's executable");
    let o = rt(&["start", &id]);
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    // The attack: every exec runs the runtime's code inside the container (the exec child
    // until execve, then the runtime again as /entry's interpreter).
    for _ in 0..60 {
        let _ = rt(&["exec", &id, "/entry"]);
    }
    std::fs::write(b.rootfs().join("tmp/stop"), "").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let captured = std::fs::read_to_string(b.rootfs().join("tmp/captured")).unwrap_or_default();
    let wrote = std::fs::read_to_string(b.rootfs().join("tmp/wrote")).unwrap_or_default();
    eprintln!(
        "attacker opened the exe of {} runtime processes",
        captured.lines().count()
    );
    let first: Vec<&str> = wrote.lines().take(3).collect();
    assert!(
        wrote.is_empty(),
        "the container wrote an executable: {first:?}"
    );
    assert_eq!(sha(&bin), before, "berth-runtime was modified");
}

/// Run `b` in the foreground with a terminal (`script` provides one).
fn run_on_tty(c: &Ctr, b: &Bundle) -> std::process::Output {
    b.write();
    let cmd = format!(
        "{} --root {} run --bundle {} {}",
        berth_runtime().display(),
        c.root.path().display(),
        b.path().display(),
        c.id
    );
    std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// CVE-2025-52565: /dev/console is bound through descriptors. A container whose /dev holds a
/// `console` symlink (here to /proc/sys/kernel/core_pattern, through a /dev bound from its own
/// directory) must not get the pty bound over the link's target; a plain terminal container
/// still gets its pty as /dev/console.
#[test]
fn cve_2025_52565_console_symlink_refused() {
    if !need_root("cve_2025_52565_console_symlink_refused") || !have("script") {
        return;
    }
    let mut b = Bundle::new(&["sh", "-c", "grep -c pts /proc/self/mountinfo; exit 3"]);
    b.set("/process/terminal", json!(true));
    let devdir = b.path().join("devdir");
    std::fs::create_dir(&devdir).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", devdir.join("console")).unwrap();
    std::os::unix::fs::symlink("pts/ptmx", devdir.join("ptmx")).unwrap();
    // A real null device, so masking works and only the console can stop the container.
    nix::sys::stat::mknod(
        &devdir.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    mounts.push(json!({"destination": "/dev", "type": "bind", "source": devdir, "options": ["rbind", "rw"]}));
    mounts.push(json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]}));
    let c = Ctr::new(Runtime::Berth, "console-link");
    let o = run_on_tty(&c, &b);
    let out = text(&o.stdout);
    assert_ne!(o.status.code(), Some(3), "the container ran: {out}");
    assert!(out.contains("/dev/console"), "{out}");
    assert!(mounts_containing("core_pattern").is_empty());
    assert!(cgroups_named(&c.id).is_empty());
    // The ordinary case: the pty is /dev/console.
    let b = {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "[ /dev/console -ef /proc/self/fd/0 ] && echo console-is-pty; exit 3",
        ]);
        b.set("/process/terminal", json!(true));
        b
    };
    let c = Ctr::new(Runtime::Berth, "console");
    let o = run_on_tty(&c, &b);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("console-is-pty"),
        "{}",
        text(&o.stdout)
    );
}

/// CVE-2025-52565/52881 class: a mount over a /proc sub-path (which would undo masking or
/// redirect the runtime's /proc writes) is refused, except the files runc allows (lxcfs-style
/// views); a non-proc mount on /proc itself is refused. Sysctls are written through a procfs
/// of the runtime's own, so they apply even with no /proc in the container at all.
#[test]
fn proc_mounts_refused_and_sysctls_through_own_procfs() {
    if !need_root("proc_mounts_refused_and_sysctls_through_own_procfs") {
        return;
    }
    let victim = TempDir::new("procvictim");
    std::fs::write(victim.path().join("f"), "0\n").unwrap();
    for dest in [
        "/proc/sys/kernel/core_pattern",
        "/proc/sysrq-trigger",
        "/proc/self/attr/exec",
        "/proc",
    ] {
        let mut b = Bundle::new(&["true"]);
        b.push(
            "/mounts",
            json!({"destination": dest, "type": "bind", "source": victim.path().join("f"), "options": ["bind"]}),
        );
        let c = Ctr::new(Runtime::Berth, "procmnt");
        let o = c.run(&b);
        assert!(!o.status.success(), "{dest} accepted");
        assert!(
            text(&o.stderr).contains(dest),
            "{dest}: {}",
            text(&o.stderr)
        );
        assert!(cgroups_named(&c.id).is_empty());
    }
    // Allowed: a view of /proc/uptime (what lxcfs does).
    std::fs::write(victim.path().join("uptime"), "12345.00 0.00\n").unwrap();
    let mut b = Bundle::new(&["cat", "/proc/uptime"]);
    b.push(
        "/mounts",
        json!({"destination": "/proc/uptime", "type": "bind", "source": victim.path().join("uptime"), "options": ["bind", "ro"]}),
    );
    let c = Ctr::new(Runtime::Berth, "lxcfs");
    assert_eq!(ok(&c.run(&b)), "12345.00 0.00\n");
    // No /proc in the container: the sysctl still lands (and in the container's namespace).
    let mut b = Bundle::new(&["uname", "-n"]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    b.set("/linux/sysctl", json!({"kernel.hostname": "from-sysctl"}));
    let c = Ctr::new(Runtime::Berth, "sysctl-noproc");
    assert_eq!(ok(&c.run(&b)), "from-sysctl\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "from-sysctl");
}
