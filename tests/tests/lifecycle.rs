//! Lifecycle verbs, one body per runtime (berth-runtime, and runc/crun when installed, to
//! prove the test means what runc means).

use berth_tests::*;
use serde_json::{json, Value};

fn each_runtime(name: &str, body: impl Fn(Runtime)) {
    if !need_root(name) {
        return;
    }
    for rt in Runtime::available() {
        eprintln!("{name}: {rt:?}");
        body(rt);
    }
}

#[test]
fn run_returns_output_and_exit_code() {
    each_runtime("run_returns_output_and_exit_code", |rt| {
        let b = Bundle::new(&["sh", "-c", "echo hello from $(hostname); exit 3"]);
        let c = Ctr::new(rt, "run");
        let o = c.run(&b);
        assert_eq!(o.status.code(), Some(3), "{rt:?}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout).trim(), "hello from berth");
        // run (without --keep/-d) removes the container.
        assert!(!c.verb("state", &[], &[]).status.success());
        assert!(
            cgroups_named(&c.id).is_empty(),
            "{rt:?}: cgroup left behind"
        );
    });
}

#[test]
fn create_start_kill_delete() {
    each_runtime("create_start_kill_delete", |rt| {
        let b = Bundle::new(&["sh", "-c", "echo started > /dev/shm/x; exec sleep 1000"]);
        let c = Ctr::new(rt, "life");
        let st = c.create(&b);
        assert!(
            st.success(),
            "{rt:?} create: {}",
            std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
        );
        let s = c.state();
        assert_eq!(s["status"], "created");
        assert_eq!(s["id"], json!(c.id));
        let pid = s["pid"].as_i64().unwrap();
        assert!(pid > 0);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(s["bundle"].as_str().unwrap(), b.path().to_str().unwrap());
        // The user process has not run yet.
        assert!(!b.rootfs().join("started").exists());

        ok(&c.verb("start", &[], &[]));
        c.wait_status("running");
        assert_eq!(
            c.state()["pid"].as_i64().unwrap(),
            pid,
            "{rt:?}: start keeps the init pid"
        );
        // The init runs the user's program: `sh` first, which then execs `sleep`; wait for
        // the exec rather than racing it.
        let mut cmdline = Vec::new();
        for _ in 0..200 {
            cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            if text(&cmdline).starts_with("sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert!(
            text(&cmdline).starts_with("sleep"),
            "{rt:?}: {}",
            text(&cmdline)
        );
        // Starting twice is refused.
        assert!(!c.verb("start", &[], &[]).status.success());
        // Deleting a running container without --force is refused and changes nothing.
        assert!(!c.verb("delete", &[], &[]).status.success());
        assert_eq!(c.status(), "running");

        ok(&c.verb("kill", &[], &["KILL"]));
        c.wait_status("stopped");
        assert_eq!(
            c.state()["pid"],
            json!(0),
            "{rt:?}: a stopped container has pid 0"
        );
        ok(&c.verb("delete", &[], &[]));
        assert!(!c.verb("state", &[], &[]).status.success());
        assert!(
            cgroups_named(&c.id).is_empty(),
            "{rt:?}: cgroup left behind"
        );
    });
}

#[test]
fn exec_joins_the_container() {
    each_runtime("exec_joins_the_container", |rt| {
        let b = Bundle::new(&["sleep", "1000"]);
        let c = Ctr::new(rt, "exec");
        assert!(c.create(&b).success());
        ok(&c.verb("start", &[], &[]));
        let out = ok(&c.sh(
            "hostname; echo $$ > /dev/null; ps -o pid,comm | grep -c sleep; readlink /proc/1/exe",
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "berth");
        assert_eq!(
            lines[1], "1",
            "{rt:?}: exec sees the init in its pid namespace"
        );
        assert_eq!(lines[2], "/bin/busybox");
        // Exit codes come back.
        assert_eq!(c.sh("exit 42").status.code(), Some(42));
        // -e, --cwd, -u.
        let out = ok(&c.verb(
            "exec",
            &[
                "-e",
                "FOO=bar",
                "-e",
                "PATH=/bin",
                "--cwd",
                "/tmp",
                "-u",
                "65534:65534",
            ],
            &["sh", "-c", "echo $FOO; pwd; id -u; id -g"],
        ));
        assert_eq!(out, "bar\n/tmp\n65534\n65534\n", "{rt:?}");
        // Detached exec with a pid file.
        let pidfile = b.path().join("exec.pid");
        // The detached process inherits our stdio: give it none, or reading our output waits.
        let st = c
            .cmd()
            .args([
                "exec",
                "-d",
                "--pid-file",
                pidfile.to_str().unwrap(),
                &c.id,
                "sleep",
                "500",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let epid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let procs: Vec<i64> = serde_json::from_slice::<Vec<i64>>(
            &ok(&c.verb("ps", &["--format", "json"], &[])).into_bytes(),
        )
        .unwrap();
        assert!(
            procs.contains(&(epid as i64)),
            "{rt:?}: exec'd pid {epid} in {procs:?}"
        );
        // --process FILE
        let proc_json = json!({"args": ["/bin/sh", "-c", "echo from-process-file $X"], "env": ["X=1", "PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
        let pf = b.path().join("process.json");
        std::fs::write(&pf, proc_json.to_string()).unwrap();
        let out = ok(&c.verb("exec", &["--process", pf.to_str().unwrap()], &[]));
        assert_eq!(out.trim(), "from-process-file 1");
        // kill --all reaches the exec'd process too.
        ok(&c.verb("kill", &["--all"], &["KILL"]));
        c.wait_status("stopped");
        assert!(
            !std::path::Path::new(&format!("/proc/{epid}/cmdline")).exists()
                || std::fs::read(format!("/proc/{epid}/cmdline"))
                    .unwrap()
                    .is_empty()
        );
        ok(&c.verb("delete", &[], &[]));
    });
}

#[test]
fn pause_resume_and_ps() {
    each_runtime("pause_resume_and_ps", |rt| {
        let b = Bundle::new(&[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/n.t; mv /dev/shm/n.t /dev/shm/n; sleep 0.05; done",
        ]);
        let c = Ctr::new(rt, "pause");
        assert!(c.create(&b).success());
        ok(&c.verb("start", &[], &[]));
        ok(&c.verb("pause", &[], &[]));
        assert_eq!(c.status(), "paused");
        if rt != Runtime::Crun {
            // A paused container cannot be paused again (crun 1.8 allows it).
            assert!(!c.verb("pause", &[], &[]).status.success());
        }
        ok(&c.verb("resume", &[], &[]));
        assert_eq!(c.status(), "running");
        if rt != Runtime::Crun {
            assert!(!c.verb("resume", &[], &[]).status.success());
        }
        let table = ok(&c.verb("ps", &[], &[]));
        assert!(table.lines().next().unwrap().contains("PID"), "{table}");
        if rt != Runtime::Crun {
            // crun 1.8 prints bare pids.
            assert!(table.contains("sh -c"), "{rt:?}: {table}");
        }
        // The loop renames each count into place, so a read sees a whole number;
        // the first one may not have been written yet.
        let count = || {
            for _ in 0..100 {
                let o = c.sh("cat /dev/shm/n");
                if let Ok(n) = String::from_utf8_lossy(&o.stdout).trim().parse::<u64>() {
                    return n;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            panic!("{rt:?}: /dev/shm/n never held a count");
        };
        let n1 = count();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let n2 = count();
        assert!(n2 > n1, "{rt:?}: the loop runs again after resume");
    });
}

#[test]
fn list_and_events_and_update() {
    each_runtime("list_and_events_and_update", |rt| {
        let mut b = Bundle::new(&["sleep", "1000"]);
        b.set("/linux/resources/memory", json!({"limit": 64 << 20}));
        b.set("/linux/resources/pids", json!({"limit": 50}));
        let c = Ctr::new(rt, "upd");
        assert!(
            c.create(&b).success(),
            "{}",
            std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
        );
        ok(&c.verb("start", &[], &[]));
        let list: Value = serde_json::from_str(&ok(&c.raw(&["list", "--format", "json"]))).unwrap();
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == json!(c.id))
            .expect("listed");
        assert_eq!(entry["status"], "running");
        let quiet = ok(&c.raw(&["list", "-q"]));
        assert!(quiet.lines().any(|l| l == c.id));
        if rt == Runtime::Crun {
            return; // crun 1.8 has no `events`
        }
        let ev: Value =
            serde_json::from_str(ok(&c.verb("events", &["--stats"], &[])).trim()).unwrap();
        assert_eq!(ev["type"], "stats");
        assert_eq!(ev["id"], json!(c.id));
        assert!(
            ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
            "{ev}"
        );
        assert_eq!(ev["data"]["pids"]["current"].as_u64(), Some(1));
        assert_eq!(ev["data"]["pids"]["limit"].as_u64(), Some(50));
        ok(&c.verb("update", &["--pids-limit", "77", "--memory", "96m"], &[]));
        let ev: Value =
            serde_json::from_str(ok(&c.verb("events", &["--stats"], &[])).trim()).unwrap();
        assert_eq!(ev["data"]["pids"]["limit"].as_u64(), Some(77), "{rt:?}");
        // update --resources - (stdin), as containerd does it.
        let mut cmd = c.cmd();
        cmd.args(["update", "--resources", "-", &c.id]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"pids":{"limit":88}}"#)
            .unwrap();
        let o = child.wait_with_output().unwrap();
        ok(&o);
        let ev: Value =
            serde_json::from_str(ok(&c.verb("events", &["--stats"], &[])).trim()).unwrap();
        assert_eq!(ev["data"]["pids"]["limit"].as_u64(), Some(88), "{rt:?}");
    });
}

#[test]
fn spec_and_features() {
    if !need_root("spec_and_features") {
        return;
    }
    let d = TempDir::new("spec");
    let c = Ctr::new(Runtime::Berth, "spec");
    ok(&c.raw(&["spec", "--bundle", d.path().to_str().unwrap()]));
    let spec: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["process"]["terminal"], json!(true));
    assert!(
        spec["process"]["capabilities"].get("inheritable").is_none(),
        "CVE-2022-29162: no inheritable by default"
    );
    // Writing over an existing config is refused.
    assert!(!c
        .raw(&["spec", "--bundle", d.path().to_str().unwrap()])
        .status
        .success());
    let d2 = TempDir::new("spec-rootless");
    ok(&c.raw(&[
        "spec",
        "--rootless",
        "--bundle",
        d2.path().to_str().unwrap(),
    ]));
    let spec: Value =
        serde_json::from_slice(&std::fs::read(d2.path().join("config.json")).unwrap()).unwrap();
    assert!(spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    assert!(spec["linux"]["uidMappings"].is_array());
    let f: Value = serde_json::from_str(&ok(&c.raw(&["features"]))).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["hooks"].as_array().unwrap().len() == 6);
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("time")));
    assert!(f["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("CAP_SYS_ADMIN")));
    assert_eq!(f["linux"]["seccomp"]["enabled"], json!(true));
    let v = ok(&c.raw(&["--version"]));
    assert!(v.contains("spec: 1.2.0"), "{v}");
}

/// Shell-quote a command for `script -c`.
fn shell_line(c: &std::process::Command) -> String {
    let q = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    std::iter::once(q(c.get_program()))
        .chain(c.get_args().map(q))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bundles people start with: the *unmodified* output of `runc spec` and `crun spec`
/// (terminal on, `sh`, ambient capabilities without inheritable ones, a read-only root), run
/// in the foreground on a pty (`script`) by every runtime, typed to like a user would.
#[test]
fn unmodified_runc_and_crun_spec_bundles() {
    each_runtime("unmodified_runc_and_crun_spec_bundles", |rt| {
        for tool in ["runc", "crun"] {
            if !have(tool) || !have("script") {
                eprintln!("skipping {tool} spec: {tool} or script missing");
                continue;
            }
            let d = TempDir::new("spec-bundle");
            make_rootfs(&d.path().join("rootfs"));
            let o = std::process::Command::new(tool)
                .arg("spec")
                .current_dir(d.path())
                .output()
                .unwrap();
            assert!(o.status.success(), "{tool} spec: {}", text(&o.stderr));
            let c = Ctr::new(rt, "spec-bundle");
            let mut cmd = c.cmd();
            cmd.args(["run", "--bundle", d.path().to_str().unwrap(), &c.id]);
            let o = run_with_input(
                std::process::Command::new("timeout").args([
                    "30",
                    "script",
                    "-q",
                    "-e",
                    "-c",
                    &shell_line(&cmd),
                    "/dev/null",
                ]),
                b"id -u; grep -E '^Cap(Eff|Amb)' /proc/self/status; touch /x || echo read-only; exit 7\n",
            );
            let out = text(&o.stdout);
            assert_eq!(
                o.status.code(),
                Some(7),
                "{rt:?} on {tool} spec: {out} {}",
                text(&o.stderr)
            );
            // Root in the container, the spec's three capabilities, no ambient ones (they
            // cannot be raised without inheritable ones: skipped, as runc does).
            assert!(out.contains("\n0\r\n"), "{rt:?} on {tool} spec: {out}");
            assert!(
                out.contains("CapEff:\t0000000020000420"),
                "{rt:?} on {tool} spec: {out}"
            );
            assert!(
                out.contains("CapAmb:\t0000000000000000"),
                "{rt:?} on {tool} spec: {out}"
            );
            assert!(out.contains("read-only"), "{rt:?} on {tool} spec: {out}");
            assert!(cgroups_named(&c.id).is_empty(), "{rt:?}: cgroup left");
        }
    });
}
