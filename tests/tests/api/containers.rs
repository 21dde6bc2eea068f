//! Containers through the docker CLI and docker-py: the run lifecycle, privileged and i386
//! containers, bad input, daemon.json options, live restore after kill -9, one container's
//! life in berthd's and the manager's logs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::stack::*;
use berth_tests::*;

/// `docker run` and friends with the real CLI: foreground run (attach before start, exit
/// code, stdout/stderr split, --rm), detached run, ps, logs, inspect, stop, start again,
/// rm -f, a bind mount written from inside and read outside, and Docker's errors.
#[test]
fn docker_cli_run_lifecycle() {
    if !need_root("docker_cli_run_lifecycle") {
        return;
    }
    assert!(have("docker"), "the docker CLI (v28) is expected on PATH");
    let s = Stack::new("api-run");
    let tar = s.rootfs_tar().display().to_string();
    ok(&s.docker(&["import", "--change", "CMD [\"sh\"]", &tar, "busybox:latest"]));
    let o = s.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "out\n");
    assert!(text(&o.stderr).contains("err"), "{}", text(&o.stderr));
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "", "--rm removed it");
    // Detached, logs, inspect, stop, start again, rm -f.
    let id = ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]));
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = ok(&s.docker(&["ps", "--format", "{{.Names}} {{.Image}} {{.State}}"]));
    assert_eq!(ps.trim(), "web busybox running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok(&s.docker(&["logs", "web"])) != "started\n" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok(&s.docker(&["logs", "web"])), "started\n");
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Running}} {{.Name}}", "web"])).trim(),
        "true /web"
    );
    let o = s.docker(&["rm", "web"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("cannot remove a running container"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&["stop", "-t", "1", "web"]));
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web"
        ]))
        .trim(),
        "exited 137"
    );
    std::thread::sleep(Duration::from_millis(3100));
    ok(&s.docker(&["start", "web"]));
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "web"])).trim(),
        "running"
    );
    // "Up" counts from this start, not from the creation (over 3 s ago).
    let st = ok(&s.docker(&["ps", "--format", "{{.Status}}"]));
    assert!(
        ["Up Less than a second", "Up 1 second", "Up 2 seconds"].contains(&st.trim()),
        "{st}"
    );
    // Sizes on request (`-s`): the writable layer, and it with the image.
    ok(&s.docker(&[
        "exec",
        "web",
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=300",
    ]));
    let sz = ok(&s.docker(&["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "web"]));
    let v: Vec<i64> = sz
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(-1))
        .collect();
    assert!(
        v.len() == 2 && v[0] >= 300 * 1024 && v[1] > v[0],
        "SizeRw SizeRootFs: {sz}"
    );
    let ps = ok(&s.docker(&["ps", "-s", "--format", "{{.Size}}"]));
    assert!(ps.contains("(virtual "), "{ps}");
    ok(&s.docker(&["rm", "-f", "web"]));
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "");
    // A bind mount: written inside, read outside.
    let host_dir = s.dir.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    let bind = format!("{}:/data", host_dir.display());
    ok(&s.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo from-container > /data/f",
    ]));
    assert_eq!(
        std::fs::read_to_string(host_dir.join("f")).unwrap(),
        "from-container\n"
    );
    // Errors, Docker's way.
    ok(&s.docker(&["create", "--name", "taken", "busybox", "true"]));
    let o = s.docker(&["run", "--name", "taken", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o.stderr).contains("is already in use by container"),
        "{}",
        text(&o.stderr)
    );
    let o = s.docker(&["run", "--name", "bad name!", "busybox", "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("Invalid container name"),
        "{}",
        text(&o.stderr)
    );
    let o = s.docker(&["run", "--rm", "no-such-image:1", "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("no-such-image"),
        "{}",
        text(&o.stderr)
    );
    // A command that does not exist: docker's exit code, the runtime's reason once, and
    // no container left behind.
    let before = ok(&s.docker(&["ps", "-aq"]));
    let o = s.docker(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(
        err.matches("executable file not found").count(),
        1,
        "the reason, once: {err}"
    );
    assert!(!err.contains("code: '"), "no gRPC status text: {err}");
    assert_eq!(ok(&s.docker(&["ps", "-aq"])), before);
    let o = s.docker(&["stop", "nope"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("No such container: nope"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&["rm", "taken"]));
    assert!(
        mounts_containing(&s.state.path().display().to_string()).is_empty(),
        "no container rootfs left mounted"
    );

    // `logs -f` of a container removed right after it exits (docker-py's run(remove=True)
    // does that before reading the followed logs) ends, with all the output.
    for _ in 0..3 {
        let id = ok(&s.docker(&["run", "-d", "busybox", "sh", "-c", "sleep 0.5; echo done"]));
        let id = id.trim();
        let follow = Command::new("timeout")
            .args(["20", "docker", "logs", "-f", id])
            .client_of(&s)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        ok(&s.docker(&["wait", id]));
        ok(&s.docker(&["rm", id]));
        let o = follow.wait_with_output().unwrap();
        assert!(o.status.success(), "logs -f ended: {:?}", o.status);
        assert_eq!(text(&o.stdout), "done\n");
    }
}

/// docker-py runs a container to completion and reads its output.
/// `docker run --privileged` on a host whose root lacks a capability (this VM's root has no
/// CAP_SYS_RESOURCE; dockerd + runc fail here with "capset failure"): the container gets
/// every capability the engine holds (its bounding set, as podman does), /sys writable, and
/// no seccomp filter. `--cap-add ALL` the same.
#[test]
fn docker_cli_privileged() {
    if !need_root("docker_cli_privileged") {
        return;
    }
    let s = Stack::new("api-priv");
    let tar = s.rootfs_tar().display().to_string();
    ok(&s.docker(&["import", "--change", "CMD [\"sh\"]", &tar, "busybox:latest"]));
    let ours = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let script = "grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1";
    let out = ok(&s.docker(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script]));
    assert!(
        out.contains(&format!("CapEff:\t{ours}\n")),
        "{out} (engine: {ours})"
    );
    assert!(out.contains(&format!("CapBnd:\t{ours}\n")), "{out}");
    assert!(out.contains("Seccomp:\t0\n"), "{out}");
    assert!(out.ends_with("rw\n"), "/sys not writable: {out}");
    let out = ok(&s.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]));
    assert_eq!(out, format!("CapEff:\t{ours}\n"));
    // The default stays Docker's list (CAP_CHOWN … CAP_AUDIT_WRITE: 0xa80425fb).
    let out = ok(&s.docker(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]));
    assert_eq!(out, "CapEff:\t00000000a80425fb\n");
}

/// 32-bit (i386) programs run under Docker's default seccomp profile, whose architectures
/// include SCMP_ARCH_X86, and the profile applies to them by their own numbers (keyctl is
/// refused with EPERM, as for 64-bit programs), as under dockerd + runc.
#[test]
fn docker_cli_i386_under_default_seccomp() {
    if !need_root("docker_cli_i386_under_default_seccomp") {
        return;
    }
    let s = Stack::new("api-i386");
    // An image holding just the static probe.
    let dir = s.dir.path().join("probe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("probe32"), i386_probe_elf()).unwrap();
    let tar = s.dir.path().join("probe.tar");
    let st = std::process::Command::new("tar")
        .args(["--mode=755", "-C"])
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg("probe32")
        .status()
        .unwrap();
    assert!(st.success());
    ok(&s.docker(&[
        "import",
        "--change",
        "CMD [\"/probe32\"]",
        tar.to_str().unwrap(),
        "probe32",
    ]));
    ok(&s.docker(&["create", "--name", "p32", "probe32"]));
    let o = s.docker(&["start", "-a", "p32"]);
    assert_eq!(text(&o.stdout), "ok\n", "{}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "keyctl was not refused");
}

#[test]
fn docker_py_runs_a_container() {
    if !need_root("docker_py_runs_a_container") {
        return;
    }
    let s = Stack::new("api-pyrun");
    let tar = s.rootfs_tar().display().to_string();
    let o = Command::new(bin_dir().join("berthd"))
        .arg("--manager")
        .arg(s.dir.path().join("m.sock"))
        .arg("--config-file")
        .arg(s.dir.path().join("daemon.json"))
        .args(["image", "import", &tar, "busybox:latest", "--cmd", "sh"])
        .output()
        .unwrap();
    ok(&o);
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
out = c.containers.run("busybox", ["sh", "-c", "echo hi from py"], remove=True)
assert out == b"hi from py\n", out
ctr = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="py1")
ctr.reload()
assert ctr.status == "running", ctr.status
assert any(x.name == "py1" for x in c.containers.list())
ctr.kill()
assert ctr.wait()["StatusCode"] == 137
ctr.remove()
assert c.containers.list(all=True) == []
print("ok")
"#,
        sock = s.sock().display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
}

/// Live restore: kill -9 berthd and the manager while containers run, start them again.
/// Running containers keep running (and logging: output printed meanwhile is in `logs`),
/// exits that happened meanwhile are recorded, `--rm` containers removed, restart policies
/// applied; exec, stop and attach work afterwards.
#[test]
fn live_restore_after_kill_9() {
    if !need_root("live_restore_after_kill_9") {
        return;
    }
    let mut s = Stack::busybox("api-live");
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ]));
    ok(&s.docker(&[
        "run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "2",
    ]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "ends",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 9",
    ]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "retry",
        "--restart",
        "on-failure",
        "busybox",
        "sh",
        "-c",
        "sleep 2; test -f /tmp/ok && exec sleep 1000; touch /tmp/ok; exit 1",
    ]));
    let ticker_pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "ticker"]));
    s.kill9_daemons();
    std::thread::sleep(Duration::from_secs(4));
    s.start_manager();
    s.start_berthd();
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Pid}}",
            "ticker"
        ]))
        .trim(),
        format!("running {}", ticker_pid.trim()),
        "the same process runs on"
    );
    let logs = ok(&s.docker(&["logs", "ticker"]));
    assert!(
        logs.lines().count() >= 20,
        "4 s of output while the daemons were down are in the log: {} lines",
        logs.lines().count()
    );
    assert_eq!(
        ok(&s.docker(&["exec", "ticker", "echo", "alive"])),
        "alive\n"
    );
    // ps filters and logs --since are applied by the daemon.
    assert_eq!(
        ok(&s.docker(&["ps", "--filter", "name=tick", "--format", "{{.Names}}"])).trim(),
        "ticker"
    );
    s.until("the exit recorded", || {
        ok(&s.docker(&["ps", "-a", "--filter", "exited=9", "--format", "{{.Names}}"])).trim()
            == "ends"
    });
    let future = (now_secs() + 3600).to_string();
    assert_eq!(ok(&s.docker(&["logs", "--since", &future, "ticker"])), "");
    s.until("the --rm container removed", || {
        !ok(&s.docker(&["ps", "-a", "--format", "{{.Names}}"])).contains("gone")
    });
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "ends"
        ]))
        .trim(),
        "exited 9"
    );
    s.until("the on-failure container restarted", || {
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "retry",
        ]))
        .trim()
            == "1 running"
    });
    // Attach to the live container sees new output.
    let o = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "2",
            "docker",
            "attach",
            "--no-stdin",
            "--sig-proxy=false",
            "ticker",
        ])
        .client_of(&s)
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains("tick"), "{}", text(&o.stderr));
    ok(&s.docker(&["stop", "-t", "1", "ticker"]));
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "ticker"])).trim(),
        "exited"
    );
    ok(&s.docker(&["rm", "-f", "ticker", "ends", "retry"]));
}

/// Bad input gets Docker's status codes and a message naming the problem, and leaves
/// nothing behind: malformed JSON, wrong types, a huge body, bad names, bad ports, unknown
/// objects, conflicts; a user outside root and the berth group cannot use the socket.
#[test]
fn api_bad_input() {
    if !need_root("api_bad_input") {
        return;
    }
    let s = Stack::busybox("api-bad");
    let create = |body: &str| s.curl("POST", "/containers/create", Some(body.as_bytes()));
    let cases: Vec<(&str, u16, &str)> = vec![
        ("{not json", 400, "invalid JSON"),
        ("[1,2]", 400, "want an object"),
        (r#"{"Image": 5}"#, 400, "Image"),
        (r#"{"Image": "busybox", "Cmd": 7}"#, 400, "Cmd"),
        (
            r#"{"Image": "busybox", "HostConfig": "x"}"#,
            400,
            "HostConfig",
        ),
        (
            r#"{"Image": "busybox", "HostConfig": {"PortBindings": {"http/tcp": []}}}"#,
            400,
            "invalid port specification",
        ),
        (
            r#"{"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}}}"#,
            400,
            "invalid port specification",
        ),
        (
            r#"{"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}"#,
            400,
            "restart policy",
        ),
        (
            r#"{"Image": "busybox", "HostConfig": {"Binds": ["rel:ative:/x:zz"]}}"#,
            400,
            "invalid",
        ),
        (
            r#"{"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}]}}"#,
            400,
            "does not exist",
        ),
        (r#"{"Image": "no-such-image:1"}"#, 404, "No such image"),
    ];
    for (body, status, msg) in cases {
        let (code, out) = create(body);
        assert_eq!(code, status, "{body} → {out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert!(
            v["message"].as_str().unwrap_or("").contains(msg),
            "{body} → {out}"
        );
    }
    let huge = vec![b' '; 5 << 20];
    assert_eq!(create(std::str::from_utf8(&huge).unwrap()).0, 413);
    let (code, _) = s.curl(
        "POST",
        "/containers/create?name=bad%20name",
        Some(br#"{"Image": "busybox"}"#),
    );
    assert_eq!(code, 400);
    for (m, p, status) in [
        ("GET", "/containers/nope/json", 404),
        ("POST", "/containers/nope/start", 404),
        ("GET", "/volumes/nope", 404),
        ("DELETE", "/volumes/nope", 404),
        ("GET", "/images/nope/json", 404),
        ("GET", "/exec/nope/json", 404),
        ("GET", "/containers/nope/archive?path=/", 404),
        ("GET", "/no/such/endpoint", 404),
        ("POST", "/volumes/create", 201),
    ] {
        let body: Option<&[u8]> = if m == "POST" { Some(b"{}") } else { None };
        assert_eq!(s.curl(m, p, body).0, status, "{m} {p}");
    }
    let (code, out) = s.curl("POST", "/volumes/create", Some(br#"{"Name": "../x"}"#));
    assert_eq!(code, 400, "{out}");
    // Query strings that once took berthd down (a byte index inside a character), and
    // their neighbours: a 400 each, and berthd still answers.
    for q in [
        "/events?since=1.%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
        "/events?until=1.%E9",
        "/events?since=99999999999999999999999999999999999999999",
        "/containers/json?filters=%E9%%",
        "/containers/json?all=%C3%28&filters=%7B%22name%22%3A%5B%22%C3%A9",
        "/images/json?filters=%7B%22reference%22%3A%7B%22%C3%A9%25%22%3Atrue%7D%7D",
    ] {
        let (code, out) = s.curl("GET", q, None);
        assert!(code == 400 || code == 200, "{q}: {code} {out}");
        assert!(!out.is_empty(), "{q}: no answer");
        assert_eq!(
            s.curl("GET", "/_ping", None),
            (200, "OK".to_string()),
            "{q}"
        );
    }
    // Conflicts.
    ok(&s.docker(&["create", "--name", "taken", "busybox", "true"]));
    let (code, out) = s.curl(
        "POST",
        "/containers/create?name=taken",
        Some(br#"{"Image": "busybox"}"#),
    );
    assert_eq!(code, 409, "{out}");
    ok(&s.docker(&["volume", "create", "used"]));
    ok(&s.docker(&[
        "create", "--name", "user", "-v", "used:/u", "busybox", "true",
    ]));
    let (code, out) = s.curl("DELETE", "/volumes/used", None);
    assert!(code == 409 && out.contains("in use"), "{code} {out}");
    // Nothing half-created by the failures above.
    let names = ok(&s.docker(&["ps", "-a", "--format", "{{.Names}}"]));
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, vec!["taken", "user"]);
    ok(&s.docker(&["rm", "taken", "user"]));
    // The socket: root and the berth group only.
    let mode = std::fs::metadata(s.sock()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o660);
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
            "--unix-socket",
        ])
        .arg(s.sock())
        .arg("http://berth/_ping")
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o.stdout) != "OK",
        "nobody must not reach the API"
    );
}

/// daemon.json's log-opts (json-file rotation) and default-ulimits apply to new containers;
/// a container's own --log-opt / --ulimit / --log-driver none win.
#[test]
fn daemon_json_log_opts_and_ulimits() {
    if !need_root("daemon_json_log_opts_and_ulimits") {
        return;
    }
    let s = Stack::with_config(
        "api-logopts",
        r#"{"registry-fallback": false, "log-opts": {"max-size": "2k", "max-file": "2"},
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1111, "Hard": 2222}}}"#,
    );
    s.import_busybox();
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ])),
        "1111\n2222\n"
    );
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=300:400",
            "busybox",
            "sh",
            "-c",
            "ulimit -n"
        ])),
        "300\n"
    );
    ok(&s.docker(&[
        "run",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done",
    ]));
    let log = ok(&s.docker(&["inspect", "-f", "{{.LogPath}}", "chatty"]));
    let dir = Path::new(log.trim()).parent().unwrap().to_path_buf();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .collect();
    assert!(files.len() <= 2, "max-file 2: {files:?}");
    for f in &files {
        assert!(
            f.metadata().unwrap().len() < 4096,
            "max-size 2k: {:?}",
            f.path()
        );
    }
    let logs = ok(&s.docker(&["logs", "chatty"]));
    assert!(
        logs.ends_with("line-299-padding-padding-padding\n"),
        "the newest lines are kept"
    );
    assert!(!logs.contains("line-0-"), "the oldest were rotated away");
    ok(&s.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "x",
    ]));
    // Like dockerd: nothing was kept, and logs says so instead of printing nothing.
    let o = s.docker(&["logs", "quiet"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("does not support reading"),
        "logs of a --log-driver none container: {}",
        text(&o.stderr)
    );
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "quiet"])).trim(),
        "none"
    );
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "chatty"])).trim(),
        "json-file",
        "the driver in effect is shown, the daemon's default included"
    );
    // Drivers and options berthd lacks are refused, named; unknown ones with Docker's words.
    for (args, want) in [
        (
            &["--log-driver", "gelf"][..],
            "logging driver \"gelf\" is not supported",
        ),
        (
            &["--log-driver", "nosuch"][..],
            "no log driver named 'nosuch' is registered",
        ),
        (
            &["--log-opt", "labels=a"][..],
            "log-opt labels=a is not supported",
        ),
        (
            &["--log-opt", "bogus=1"][..],
            "unknown log opt 'bogus' for json-file log driver",
        ),
    ] {
        let o = s.docker(&[&["run", "--rm"][..], args, &["busybox", "true"]].concat());
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    ok(&s.docker(&["rm", "chatty", "quiet"]));
}

/// One container's life can be followed by its id through berthd's and the manager's logs:
/// each side's lines about it carry `container_id=<id>` (tracing spans on every call that
/// crosses a process boundary).
#[test]
fn a_containers_life_is_in_both_logs() {
    if !need_root("a_containers_life_is_in_both_logs") {
        return;
    }
    let s = Stack::busybox("api-logs");
    let id = ok(&s.docker(&["run", "-d", "busybox", "sh", "-c", "exit 7"]))
        .trim()
        .to_string();
    let o = s.docker(&["wait", &id]);
    assert_eq!(ok(&o).trim(), "7");
    ok(&s.docker(&["rm", &id]));
    let lines = |file: &str| -> Vec<String> {
        std::fs::read_to_string(s.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("container_id={id}")))
            .map(String::from)
            .collect()
    };
    let has = |ls: &[String], what: &str| ls.iter().any(|l| l.contains(what));
    let deadline = Instant::now() + Duration::from_secs(10);
    for want in ["created", "started", "exited exit_code=7", "removed"] {
        while !has(&lines("berthd.log"), want) {
            assert!(
                Instant::now() < deadline,
                "berthd.log lacks {want:?} for {id}: {:#?}",
                std::fs::read_to_string(s.dir.path().join("berthd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let manager = lines("manager.log");
    for want in ["task created", "started", "exited exit_status=7"] {
        assert!(
            has(&manager, want),
            "manager.log lacks {want:?} for {id}: {manager:#?}"
        );
    }
}
