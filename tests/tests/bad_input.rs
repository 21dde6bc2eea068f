//! Bad input: a clear error naming the problem, non-zero exit, nothing left behind.

use berth_tests::*;
use serde_json::{json, Value};

/// Create with `config` (already written) and check the failure.
fn refused(c: &Ctr, b: &Bundle, want: &str) {
    let st = c.create(b);
    let err = std::fs::read_to_string(b.path().join("ctr.err")).unwrap();
    assert!(!st.success(), "create succeeded, wanted error {want:?}");
    assert!(
        err.contains(want),
        "error {err:?} does not mention {want:?}"
    );
    assert_nothing_left(c);
}

fn assert_nothing_left(c: &Ctr) {
    assert!(
        !c.root.path().join(&c.id).exists(),
        "state dir left behind for {}",
        c.id
    );
    assert!(
        cgroups_named(&c.id).is_empty(),
        "cgroup left behind for {}",
        c.id
    );
    let procs = std::process::Command::new("pgrep")
        .args(["-f", &c.id])
        .output()
        .unwrap();
    assert!(
        text(&procs.stdout).trim().is_empty(),
        "processes left: {}",
        text(&procs.stdout)
    );
}

#[test]
fn malformed_and_invalid_configs() {
    if !need_root("malformed_and_invalid_configs") {
        return;
    }
    type Edit = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|_b: &mut Bundle| {}), "not valid JSON"),
        (
            Box::new(|b: &mut Bundle| {
                b.config.as_object_mut().unwrap().remove("ociVersion");
            }),
            "ociVersion",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/ociVersion", json!("2.0.0"));
            }),
            "only 1.x",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/root/path", json!("no-such-rootfs"));
            }),
            "root.path",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.push("/process/capabilities/bounding", json!("CAP_FLY"));
            }),
            "unknown capability \"CAP_FLY\"",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/process/args", json!([]));
            }),
            "process.args",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/process/cwd", json!("relative"));
            }),
            "process.cwd",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.push(
                    "/mounts",
                    json!({"destination": "relative", "type": "tmpfs", "source": "tmpfs"}),
                );
            }),
            "must be an absolute path",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.push("/linux/namespaces", json!({"type": "pid"}));
            }),
            "given twice",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.push("/linux/namespaces", json!({"type": "user"}));
            }),
            "uidMappings",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}));
                b.set(
                    "/linux/namespaces",
                    json!([{"type": "mount"}, {"type": "pid"}]),
                );
            }),
            "network namespace",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/process/args", json!(["/no/such/binary"]));
            }),
            "\"/no/such/binary\": no such file or directory",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set(
                    "/linux/seccomp",
                    json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
                );
            }),
            "SCMP_ACT_NOTIFY",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set(
                    "/process/rlimits",
                    json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]),
                );
            }),
            "above hard limit",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/linux/namespaces", json!([{"type": "pid"}, {"type": "network", "path": "/proc/nope/ns/net"}, {"type": "mount"}]));
            }),
            "does not exist",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.push("/mounts", json!({"destination": "/x", "type": "bind", "source": "/no/such/source", "options": ["bind"]}));
            }),
            "/no/such/source",
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.set("/linux/resources/memory", json!({"swappiness": 500}));
            }),
            "swappiness",
        ),
        (
            // The root cgroup: a `delete --force` there would kill every process in it.
            Box::new(|b: &mut Bundle| {
                b.set("/linux/cgroupsPath", json!("/"));
            }),
            "is a cgroup root",
        ),
    ];
    for (i, (edit, want)) in cases.into_iter().enumerate() {
        let mut b = Bundle::new(&["true"]);
        edit(&mut b);
        let c = Ctr::new(Runtime::Berth, &format!("bad{i}"));
        if want == "not valid JSON" {
            b.write();
            std::fs::write(b.path().join("config.json"), "{\"ociVersion\": \"1.0.2\", ").unwrap();
            let out = std::fs::File::create(b.path().join("ctr.err")).unwrap();
            let st = c
                .cmd()
                .args(["create", "--bundle", b.path().to_str().unwrap(), &c.id])
                .stderr(out)
                .status()
                .unwrap();
            assert!(!st.success());
            let err = std::fs::read_to_string(b.path().join("ctr.err")).unwrap();
            assert!(err.contains(want) && err.contains("config.json"), "{err}");
            assert_nothing_left(&c);
            continue;
        }
        refused(&c, &b, want);
    }
}

#[test]
fn missing_bundle_and_bad_ids() {
    if !need_root("missing_bundle_and_bad_ids") {
        return;
    }
    let c = Ctr::new(Runtime::Berth, "nobundle");
    let o = c.raw(&["create", "--bundle", "/no/such/bundle", &c.id]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("/no/such/bundle"),
        "{}",
        text(&o.stderr)
    );
    assert_nothing_left(&c);

    let b = Bundle::new(&["true"]);
    b.write();
    for bad in ["../escape", "a/b", "", ".", "..", "has space"] {
        let o = c.raw(&["create", "--bundle", b.path().to_str().unwrap(), bad]);
        assert!(!o.status.success(), "id {bad:?} accepted");
        let err = text(&o.stderr);
        assert!(
            err.contains("invalid container id") || err.contains("a value is required"),
            "{bad:?}: {err}"
        );
    }
    assert!(!c.root.path().parent().unwrap().join("escape").exists());
    assert_eq!(
        std::fs::read_dir(c.root.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn duplicate_id_keeps_the_original() {
    if !need_root("duplicate_id_keeps_the_original") {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "dup");
    assert!(c.create(&b).success());
    let pid = c.state()["pid"].clone();
    let st = c.create(&b);
    assert!(!st.success());
    let err = std::fs::read_to_string(b.path().join("ctr.err")).unwrap();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(c.state()["pid"], pid);
    assert_eq!(c.status(), "created");
}

#[test]
fn unknown_container_and_invalid_signal() {
    if !need_root("unknown_container_and_invalid_signal") {
        return;
    }
    let c = Ctr::new(Runtime::Berth, "ghost");
    for verb in [
        "state", "start", "kill", "pause", "resume", "ps", "delete", "events",
    ] {
        let mut args = vec![verb];
        if verb == "events" {
            args.push("--stats");
        }
        args.push(&c.id);
        let o = c.raw(&args);
        assert!(
            !o.status.success(),
            "{verb} of a missing container succeeded"
        );
        assert!(
            text(&o.stderr).contains("does not exist"),
            "{verb}: {}",
            text(&o.stderr)
        );
    }
    // delete --force of a missing container is fine (runc does the same).
    assert!(c.raw(&["delete", "--force", &c.id]).status.success());

    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "sig");
    assert!(c.create(&b).success());
    ok(&c.verb("start", &[], &[]));
    for bad in ["SIGFOO", "0", "65", "-3", "KILLL"] {
        let o = c.verb("kill", &[], &[bad]);
        assert!(!o.status.success(), "signal {bad} accepted");
        assert!(
            text(&o.stderr).contains("invalid signal"),
            "{bad}: {}",
            text(&o.stderr)
        );
    }
    assert_eq!(c.status(), "running");
    ok(&c.verb("kill", &[], &["KILL"]));
    c.wait_status("stopped");
    // Exec into a stopped container is refused by name.
    let o = c.verb("exec", &[], &["true"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("stopped"), "{}", text(&o.stderr));
}

#[test]
fn json_log_format_carries_the_error() {
    if !need_root("json_log_format_carries_the_error") {
        return;
    }
    let mut b = Bundle::new(&["true"]);
    b.push("/process/capabilities/bounding", json!("CAP_NOPE"));
    b.write();
    let c = Ctr::new(Runtime::Berth, "jsonlog");
    let log = b.path().join("log.json");
    let o = c.raw(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &c.id,
    ]);
    assert!(!o.status.success());
    let text_log = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text_log.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("CAP_NOPE"), "{line}");
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    assert_nothing_left(&c);
    // --systemd-cgroup is refused clearly.
    let o = c.raw(&["--systemd-cgroup", "list"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not supported"));
}

#[test]
fn killed_create_leaves_deletable_state() {
    if !need_root("killed_create_leaves_deletable_state") {
        return;
    }
    // A createRuntime hook that blocks lets us kill -9 the runtime half-way.
    let mut b = Bundle::new(&["true"]);
    let hook_pid = b.path().join("hook.pid");
    b.set("/hooks", json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 30", hook_pid.display())]}]}));
    b.write();
    let c = Ctr::new(Runtime::Berth, "killed");
    let mut child = c
        .cmd()
        .args(["create", "--bundle", b.path().to_str().unwrap(), &c.id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if c.root.path().join(&c.id).join("state.json").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    // The init notices its parent died (parent-death signal) and is gone.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = c.verb("state", &[], &[]);
    if o.status.success() {
        let s: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(s["status"], "stopped", "{s}");
    }
    ok(&c.verb("delete", &["--force"], &[]));
    // The orphaned hook is ours: end it by pid.
    if let Ok(p) = std::fs::read_to_string(&hook_pid) {
        if let Ok(pid) = p.trim().parse::<i32>() {
            // SAFETY: kill takes integers only.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    assert_nothing_left(&c);
}

#[test]
fn start_killed_after_releasing_the_init_reads_as_running() {
    if !need_root("start_killed_after_releasing_the_init_reads_as_running") {
        return;
    }
    // Simulate a `start` killed -9 between writing exec.fifo and removing it: write the byte
    // ourselves and leave the fifo in place.
    let b = Bundle::new(&["sleep", "1000"]);
    let c = Ctr::new(Runtime::Berth, "halfstart");
    assert!(c.create(&b).success());
    assert_eq!(c.status(), "created");
    let fifo = c.root.path().join(&c.id).join("exec.fifo");
    std::fs::write(&fifo, "0").unwrap();
    // The init executes `sleep`; the stale fifo must not keep it "created".
    c.wait_status("running");
    let o = c.verb("start", &[], &[]);
    assert!(!o.status.success(), "a second start must fail");
    ok(&c.verb("kill", &[], &["KILL"]));
    c.wait_status("stopped");
    ok(&c.verb("delete", &[], &[]));
    assert_nothing_left(&c);
}

/// An empty cgroupsPath means the default (`/<id>`), never the caller's own cgroup: a
/// forced delete then kills the container, not its caller.
#[test]
fn empty_cgroups_path_is_the_default() {
    if !need_root("empty_cgroups_path_is_the_default") {
        return;
    }
    let mut b = Bundle::new(&["sleep", "100"]);
    b.set("/linux/cgroupsPath", json!(""));
    let c = Ctr::new(Runtime::Berth, "emptycg");
    assert!(c.create(&b).success());
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(c.root.path().join(&c.id).join("state.json")).unwrap(),
    )
    .unwrap();
    for p in st["cgroup_paths"].as_array().unwrap() {
        assert!(
            p.as_str().unwrap().trim_end_matches('/').ends_with(&c.id),
            "{p} is not the container's own cgroup"
        );
    }
    let o = c.cmd().args(["delete", "--force", &c.id]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_nothing_left(&c);
}

/// A nested cgroupsPath (`parent/child/leaf`, as runtime-tools and Kubernetes use): the
/// parents create made are gone again after delete and after a create that failed; a parent
/// that existed before is left alone.
#[test]
fn nested_cgroups_path_parents_removed() {
    if !need_root("nested_cgroups_path_parents_removed") {
        return;
    }
    let top = unique_id("cgparent");
    let gone = |name: &str| cgroups_named(name).is_empty();
    // Created, then deleted.
    let mut b = Bundle::new(&["sleep", "100"]);
    b.set("/linux/cgroupsPath", json!(format!("{top}/mid/leaf")));
    let c = Ctr::new(Runtime::Berth, "nestedcg");
    assert!(c.create(&b).success());
    assert!(!gone(&top));
    ok(&c.verb("delete", &["--force"], &[]));
    assert!(gone(&top), "parents of the cgroup left behind");
    // A create that fails after making the cgroups (an impossible cpuset).
    let mut b = Bundle::new(&["true"]);
    b.set("/linux/cgroupsPath", json!(format!("{top}/mid/leaf")));
    b.set("/linux/resources/cpu", json!({"cpus": "999"}));
    let c = Ctr::new(Runtime::Berth, "nestedcg-bad");
    assert!(!c.create(&b).success());
    assert!(gone(&top), "a failed create left parents behind");
    // A parent that existed before stays.
    let mut b = Bundle::new(&["true"]);
    b.set("/linux/cgroupsPath", json!(format!("{top}/leaf")));
    let mem = std::path::Path::new("/sys/fs/cgroup/memory").join(&top);
    let pre = if mem.parent().unwrap().exists() {
        mem
    } else {
        std::path::Path::new("/sys/fs/cgroup").join(&top)
    };
    std::fs::create_dir(&pre).unwrap();
    let c = Ctr::new(Runtime::Berth, "nestedcg-pre");
    let o = c.run(&b);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(pre.exists(), "a parent that existed before was removed");
    std::fs::remove_dir(&pre).unwrap();
    remove_cgroup_tree(&top);
    assert!(gone(&top));
}
