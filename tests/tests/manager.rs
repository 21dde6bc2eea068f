//! berth-manager + berth-shim end to end: run/exec/logs through the CLI client, each runtime
//! (berth-runtime, runc, crun) driven by the shim, kill -9 of the manager with containers
//! running (output kept, exits reported), a shim killed -9, lost /run state, bad input.
//! Each test runs its own manager under a temp dir and removes what it made on drop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::*;

struct Mgr {
    dir: TempDir,
    child: Option<Child>,
    crun: bool,
    /// cgroupsPath parent for this test's containers.
    cg: String,
    rootfs: PathBuf,
}

impl Mgr {
    fn new(tag: &str, crun: bool) -> Mgr {
        let dir = TempDir::new(tag);
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs);
        let mut m = Mgr {
            cg: unique_id("cg"),
            dir,
            child: None,
            crun,
            rootfs,
        };
        m.start();
        m
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("m.sock")
    }

    fn start(&mut self) {
        let bin = bin_dir().join("berth-manager");
        let d = self.dir.path();
        let args = [
            "--address".to_string(),
            self.sock().display().to_string(),
            "--root".into(),
            d.join("root").display().to_string(),
            "--state".into(),
            d.join("st").display().to_string(),
            "--log-level".into(),
            "warn".into(),
        ];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("manager.log"))
            .unwrap();
        let mut c = if self.crun {
            // crun 1.8 refuses hybrid hosts: hide the unified mount in a private mount ns
            // that the manager and its shims share.
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "unchanged", "sh", "-c"])
                .arg("umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"")
                .arg("sh")
                .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let _ = std::fs::remove_file(self.sock());
        let child = c
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.sock().exists() && self.cli(&["ps"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("manager did not come up: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("manager.log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("60")
            .arg(bin_dir().join("berth-manager"))
            .arg("--address")
            .arg(self.sock())
            .args(args);
        c
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn cg_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.cg)
    }

    /// `run` with our rootfs and cgroup parent.
    fn run(&self, id: &str, extra: &[&str], args: &[&str]) -> Output {
        let cg = self.cg_path(id);
        let rootfs = self.rootfs.display().to_string();
        let mut a = vec!["run", "--rootfs", &rootfs, "--cgroup", &cg];
        a.extend_from_slice(extra);
        a.push(id);
        a.extend_from_slice(args);
        self.cli(&a)
    }

    fn task_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("st/tasks").join(id)
    }

    fn log_of(&self, id: &str) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join("root/containers")
                .join(id)
                .join(format!("{id}-json.log")),
        )
        .unwrap_or_default()
    }

    fn ps(&self) -> String {
        ok(&self.cli(&["ps"]))
    }
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn cmdline_has(pid: i32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

impl Drop for Mgr {
    fn drop(&mut self) {
        self.kill9();
        // Shims and container inits this test started (checked by command line / our dirs).
        kill_task_processes(&self.dir.path().join("st/tasks"), Some(&self.rootfs));
        std::thread::sleep(Duration::from_millis(100));
        remove_cgroup_tree(&self.cg);
    }
}

fn each_runtime() -> Vec<(&'static str, bool)> {
    let mut v = vec![("", false), ("runc", false)];
    if have("crun") {
        v.push(("crun", true));
    }
    v.retain(|(r, _)| r.is_empty() || have(r));
    v
}

#[test]
fn run_exec_logs_with_each_runtime() {
    if !need_root("run_exec_logs_with_each_runtime") {
        return;
    }
    for (runtime, crun) in each_runtime() {
        let m = Mgr::new("mrun", crun);
        let rt: Vec<&str> = if runtime.is_empty() {
            vec![]
        } else {
            vec!["--runtime", runtime]
        };
        let o = m.run(
            "c1",
            &rt,
            &["sh", "-c", "echo out; echo err >&2; hostname; exit 3"],
        );
        assert_eq!(o.status.code(), Some(3), "{runtime}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "out\nc1\n", "{runtime}");
        assert_eq!(text(&o.stderr), "err\n", "{runtime}");
        // The json-file log holds both streams, one entry a line.
        let log = m.log_of("c1");
        let entries: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 3, "{log}");
        assert!(entries
            .iter()
            .any(|e| e["log"] == "err\n" && e["stream"] == "stderr"));
        assert!(entries[0]["time"].as_str().unwrap().ends_with('Z'));
        let logs = m.cli(&["logs", "c1"]);
        assert_eq!(text(&logs.stdout), "out\nc1\n");
        assert!(m.ps().contains("stopped"), "{}", m.ps());
        ok(&m.cli(&["rm", "c1"]));

        // Detached, then exec with its own exit code and output.
        let o = m.run("c2", &[&rt[..], &["-d"]].concat(), &["sleep", "1000"]);
        assert!(o.status.success(), "{runtime}: {}", text(&o.stderr));
        let o = m.cli(&["exec", "c2", "sh", "-c", "echo in-exec; exit 5"]);
        assert_eq!(o.status.code(), Some(5), "{runtime}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "in-exec\n");
        assert!(
            !m.log_of("c2").contains("in-exec"),
            "exec output is not logged"
        );
        // The spec the manager generated (Docker's defaults) is valid per the OCI schema.
        validate_schema(
            "config-schema.json",
            &std::fs::read_to_string(m.task_dir("c2").join("config.json")).unwrap(),
        );
        // Pause, resume and stats go through the shim to the runtime and the cgroups.
        ok(&m.cli(&["pause", "c2"]));
        assert!(m.ps().contains("paused"), "{runtime}: {}", m.ps());
        ok(&m.cli(&["resume", "c2"]));
        assert!(m.ps().contains("running"), "{runtime}: {}", m.ps());
        let st: serde_json::Value = serde_json::from_str(&ok(&m.cli(&["stats", "c2"]))).unwrap();
        assert!(st["memory_usage"].as_u64().unwrap() > 0, "{runtime}: {st}");
        assert!(st["pids_current"].as_u64().unwrap() >= 1, "{runtime}: {st}");
        ok(&m.cli(&["kill", "-s", "KILL", "c2"]));
        let w = m.cli(&["wait", "c2"]);
        assert_eq!(text(&w.stdout).trim(), "137");
        ok(&m.cli(&["rm", "c2"]));
        assert!(!m.task_dir("c2").exists(), "task dir removed");
        assert!(!m.ps().contains("c2"));
    }
}

#[test]
fn manager_kill9_keeps_containers_output_and_exits() {
    if !need_root("manager_kill9_keeps_containers_output_and_exits") {
        return;
    }
    let mut m = Mgr::new("mkill", false);
    ok(&m.run(
        "printer",
        &["-d"],
        &[
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.02; done",
        ],
    ));
    ok(&m.run("exiter", &["-d"], &["sh", "-c", "sleep 1.5; exit 42"]));
    ok(&m.run(
        "reader",
        &["-d", "-i"],
        &[
            "sh",
            "-c",
            "while read l; do echo got $l; done; echo EOF; exit 9",
        ],
    ));
    // An attached client with stdin.
    let mut att = m
        .cmd(&["attach", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    att.stdin.as_mut().unwrap().write_all(b"one\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.log_of("reader").contains("got one") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(m.log_of("reader").contains("got one"));
    let printer_pid: i32 = read_pid(&m.task_dir("printer").join("init.pid")).unwrap();

    m.kill9();
    // The attach client loses its manager; the container must not see EOF.
    let _ = att.kill();
    let _ = att.wait();
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(printer_pid), "container survives the manager");
    m.start();

    let ps = m.ps();
    assert!(
        ps.lines()
            .any(|l| l.starts_with("printer") && l.contains("running")),
        "{ps}"
    );
    assert!(
        ps.lines().any(|l| l.starts_with("exiter")
            && l.contains("stopped")
            && l.trim_end().ends_with("42")),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.starts_with("reader") && l.contains("running")),
        "{ps}"
    );
    assert_eq!(text(&m.cli(&["wait", "exiter"]).stdout).trim(), "42");

    // Stdin still works through a new attach, and never hit EOF.
    let mut att = m
        .cmd(&["attach", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    att.stdin.as_mut().unwrap().write_all(b"two\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.log_of("reader").contains("got two") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rl = m.log_of("reader");
    assert!(rl.contains("got two") && !rl.contains("EOF"), "{rl}");
    let _ = att.kill();
    let _ = att.wait();

    // No line of the printer was lost while the manager was down.
    ok(&m.cli(&["kill", "-s", "KILL", "printer"]));
    m.cli(&["wait", "printer"]);
    let nums: Vec<u64> = m
        .log_of("printer")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["log"]
                .as_str()
                .unwrap()
                .trim()
                .trim_start_matches("line ")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        nums.len() > 100,
        "printed through the downtime: {}",
        nums.len()
    );
    for (i, n) in nums.iter().enumerate() {
        assert_eq!(*n, i as u64, "line {i} missing or out of order");
    }
    for id in ["printer", "exiter", "reader"] {
        ok(&m.cli(&["rm", "-f", id]));
    }
    assert!(!alive(printer_pid));
}

#[test]
fn shim_killed_reports_137_and_cleans_up() {
    if !need_root("shim_killed_reports_137_and_cleans_up") {
        return;
    }
    let m = Mgr::new("mshim", false);
    ok(&m.run("victim", &["-d"], &["sleep", "1000"]));
    let shim = read_pid(&m.task_dir("victim").join("shim.pid")).unwrap();
    let init = read_pid(&m.task_dir("victim").join("init.pid")).unwrap();
    assert!(cmdline_has(shim, "berth-shim"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let w = m.cli(&["wait", "victim"]);
    assert_eq!(text(&w.stdout).trim(), "137", "{}", text(&w.stderr));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(init) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(init), "the container was killed with its shim");
    ok(&m.cli(&["rm", "victim"]));
    assert!(!m.task_dir("victim").exists());
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(
            !h.path().join(&m.cg).join("victim").exists(),
            "cgroup left in {h:?}"
        );
    }
}

#[test]
fn lost_run_state_marks_tasks_stopped() {
    if !need_root("lost_run_state_marks_tasks_stopped") {
        return;
    }
    let mut m = Mgr::new("mlost", false);
    ok(&m.run("gone", &["-d"], &["sleep", "1000"]));
    let shim = read_pid(&m.task_dir("gone").join("shim.pid")).unwrap();
    let init = read_pid(&m.task_dir("gone").join("init.pid")).unwrap();
    // A reboot: every process and all of /run are gone.
    m.kill9();
    for pid in [shim, init] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    std::fs::remove_dir_all(m.dir.path().join("st")).unwrap();
    remove_cgroup_tree(&m.cg);
    m.start();
    let ps = m.ps();
    assert!(
        ps.lines().any(|l| l.starts_with("gone")
            && l.contains("stopped")
            && l.trim_end().ends_with("255")),
        "{ps}"
    );
    ok(&m.cli(&["rm", "gone"]));
    assert!(!m.ps().contains("gone"));
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    if !need_root("bad_input_is_named_and_leaves_nothing") {
        return;
    }
    let m = Mgr::new("mbad", false);
    // A runtime that does not exist.
    let o = m.run("norun", &["--runtime", "/nonexistent/runc"], &["true"]);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(
        e.contains("/nonexistent/runc") && e.contains("no such file"),
        "{e}"
    );
    assert!(!m.task_dir("norun").exists(), "no task dir left");
    ok(&m.cli(&["rm", "norun"]));
    // A runtime that fails: its own error is quoted.
    let o = m.run("badcmd", &[], &["/no/such/binary"]);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("/no/such/binary"), "{e}");
    assert!(!m.task_dir("badcmd").exists());
    ok(&m.cli(&["rm", "badcmd"]));
    // Duplicate ids.
    ok(&m.run("dup", &["-d"], &["sleep", "1000"]));
    let o = m.run("dup", &["-d"], &["true"]);
    assert!(
        text(&o.stderr).contains("already exists"),
        "{}",
        text(&o.stderr)
    );
    ok(&m.cli(&["rm", "-f", "dup"]));
    // Bad ids and unknown users.
    let o = m.run("../evil", &[], &["true"]);
    assert!(
        text(&o.stderr).contains("container id"),
        "{}",
        text(&o.stderr)
    );
    let o = m.run("u1", &["-u", "ghost"], &["true"]);
    assert!(
        text(&o.stderr).contains("unable to find user ghost"),
        "{}",
        text(&o.stderr)
    );
    // A socket path too long for sun_path.
    let long = m.dir.path().join("x".repeat(120)).join("m.sock");
    let o = Command::new(bin_dir().join("berth-manager"))
        .arg("--address")
        .arg(&long)
        .args(["--root", "/nonexistent-root-not-used"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("a unix socket path holds at most"),
        "{}",
        text(&o.stderr)
    );
    // Concurrent create and delete of one id: each call succeeds or fails cleanly.
    let mut kids = Vec::new();
    for i in 0..4 {
        let mut c = if i % 2 == 0 {
            let cg = m.cg_path("race");
            let rootfs = m.rootfs.display().to_string();
            m.cmd(&[
                "run", "-d", "--rootfs", &rootfs, "--cgroup", &cg, "race", "sleep", "1000",
            ])
        } else {
            m.cmd(&["rm", "-f", "race"])
        };
        kids.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut k in kids {
        k.wait().unwrap();
    }
    let _ = m.cli(&["rm", "-f", "race"]);
    assert!(!m.ps().contains("race"));
    assert!(!m.task_dir("race").exists());
    let shims = Command::new("pgrep")
        .args([
            "-f",
            &format!("berth-shim --id race --dir {}", m.dir.path().display()),
        ])
        .output()
        .unwrap();
    assert!(text(&shims.stdout).trim().is_empty(), "no shim left");
}

/// A tmpfs mounted for one test, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn log_disk_full_keeps_container_running() {
    if !need_root("log_disk_full_keeps_container_running") {
        return;
    }
    let m = Mgr::new("mfull", false);
    let logs = m.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &logs,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )
    .unwrap();
    let _t = Tmpfs(logs.clone());
    let events_out = m.dir.path().join("events.out");
    let mut events = m
        .cmd(&["events"])
        .stdout(std::fs::File::create(&events_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = logs.join("full.log");
    let log_s = log.display().to_string();
    ok(&m.run(
        "full",
        &["-d", "--log-path", &log_s],
        &["sh", "-c", "i=0; while true; do echo line $i 0123456789012345678901234567890123456789; i=$((i+1)); done"],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !std::fs::read_to_string(&events_out)
            .unwrap_or_default()
            .contains("/tasks/log-error")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ev = std::fs::read_to_string(&events_out).unwrap_or_default();
    let _ = events.kill();
    let _ = events.wait();
    let line = ev
        .lines()
        .find(|l| l.contains("/tasks/log-error"))
        .unwrap_or_else(|| panic!("no log-error event: {ev}"));
    assert!(line.contains("full.log"), "the error names the log: {line}");
    // The container keeps running (its output is dropped, it is not blocked or killed).
    std::thread::sleep(Duration::from_millis(500));
    let ps = m.ps();
    assert!(
        ps.lines()
            .any(|l| l.starts_with("full") && l.contains("running")),
        "{ps}"
    );
    ok(&m.cli(&["rm", "-f", "full"]));
}

/// A container that outgrows its memory limit is OOM-killed: the shim sees it in the cgroup
/// (eventfd on v1, memory.events on v2), the manager publishes /tasks/oom before the exit, and
/// the exit status is 137.
#[test]
fn oom_kill_is_reported_with_each_runtime() {
    if !need_root("oom_kill_is_reported_with_each_runtime") {
        return;
    }
    for (runtime, crun) in each_runtime() {
        let m = Mgr::new("moom", crun);
        let events_out = m.dir.path().join("events.out");
        let mut events = m
            .cmd(&["events"])
            .stdout(std::fs::File::create(&events_out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut extra = vec!["-m", "16m"];
        if !runtime.is_empty() {
            extra.extend(["--runtime", runtime]);
        }
        // dd's 64 MiB block is allocated and filled from /dev/zero: far over 16 MiB.
        let o = m.run(
            "hog",
            &extra,
            &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        );
        assert_eq!(o.status.code(), Some(137), "{runtime}: {}", text(&o.stderr));
        // A well-behaved container under the same limit sees no OOM event.
        let o = m.run("calm", &extra, &["sh", "-c", "exit 0"]);
        assert_eq!(o.status.code(), Some(0), "{runtime}: {}", text(&o.stderr));
        let deadline = Instant::now() + Duration::from_secs(10);
        let has = |id: &str, topic: &str| {
            std::fs::read_to_string(&events_out)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(topic) && l.contains(&format!("\"id\":\"{id}\"")))
        };
        while Instant::now() < deadline && !has("calm", "/tasks/exit") {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = events.kill();
        let _ = events.wait();
        let ev = std::fs::read_to_string(&events_out).unwrap_or_default();
        assert!(has("hog", "/tasks/oom"), "{runtime}: no oom event: {ev}");
        assert!(!has("calm", "/tasks/oom"), "{runtime}: {ev}");
        let topics: Vec<&str> = ev
            .lines()
            .filter(|l| l.contains("\"id\":\"hog\""))
            .filter_map(|l| l.split("\"topic\":\"").nth(1)?.split('"').next())
            .collect();
        let oom = topics.iter().position(|t| *t == "/tasks/oom").unwrap();
        let exit = topics.iter().position(|t| *t == "/tasks/exit").unwrap();
        assert!(oom < exit, "{runtime}: oom before exit: {topics:?}");
        ok(&m.cli(&["rm", "hog"]));
        ok(&m.cli(&["rm", "calm"]));
    }
}
