//! What a container changed: commit, diff, export; volumes and events alongside.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::stack::*;
use berth_tests::*;

/// commit (with --change), diff, export/import, history; volumes (named, anonymous, image
/// VOLUME seeded, read-only, --volumes-from, rm -v, prune); system df; events; restart
/// policies; update; stats.
#[test]
fn docker_cli_commit_volumes_events() {
    if !need_root("docker_cli_commit_volumes_events") {
        return;
    }
    let s = Stack::busybox("api-commit");
    let since = now_secs().to_string();
    ok(&s.docker(&["run", "-d", "--name", "base", "busybox", "sleep", "1000"]));
    ok(&s.docker(&[
        "exec",
        "base",
        "sh",
        "-c",
        "echo data > /tmp/new; rm /bin/wc; echo x >> /etc/passwd",
    ]));
    let diff = ok(&s.docker(&["diff", "base"]));
    for line in ["A /tmp/new", "D /bin/wc", "C /etc/passwd"] {
        assert!(diff.lines().any(|l| l == line), "{line} in {diff}");
    }
    assert!(
        !diff.contains("/proc") && !diff.contains("/dev"),
        "mount points hidden: {diff}"
    );
    let id = ok(&s.docker(&[
        "commit",
        "-c",
        "ENV FOO=bar",
        "-c",
        "CMD [\"cat\", \"/tmp/new\"]",
        "-m",
        "my change",
        "base",
        "committed:v1",
    ]));
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(ok(&s.docker(&["run", "--rm", "committed:v1"])), "data\n");
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "echo $FOO; test -e /bin/wc || echo gone"
        ])),
        "bar\ngone\n"
    );
    let hist = ok(&s.docker(&["history", "committed:v1"]));
    assert!(hist.contains("my change"), "{hist}");
    // export → import keeps the change.
    let tar = s.dir.path().join("exp.tar").display().to_string();
    ok(&s.docker(&["export", "-o", &tar, "base"]));
    ok(&s.docker(&["import", &tar, "exported:v1"]));
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "exported:v1", "cat", "/tmp/new"])),
        "data\n"
    );
    ok(&s.docker(&["rm", "-f", "base"]));

    // Volumes: named, read-only, seeded, anonymous from an image VOLUME, --volumes-from.
    ok(&s.docker(&["volume", "create", "vol1"]));
    ok(&s.docker(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]));
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ])),
        "kept\n"
    );
    let o = s.docker(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert!(!o.status.success(), "a read-only volume");
    let mp = ok(&s.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol1"]));
    assert_eq!(
        std::fs::read_to_string(Path::new(mp.trim()).join("f")).unwrap(),
        "kept\n"
    );
    ok(&s.docker(&["run", "--rm", "-v", "etcvol:/etc", "busybox", "true"]));
    let mp = ok(&s.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "etcvol"]));
    assert!(
        Path::new(mp.trim()).join("passwd").exists(),
        "a new volume is seeded from the image"
    );
    ok(&s.docker(&["create", "--name", "holder", "busybox", "true"]));
    ok(&s.docker(&[
        "commit",
        "-c",
        "VOLUME /cache",
        "-c",
        "CMD [\"sleep\", \"1000\"]",
        "holder",
        "withvol:v1",
    ]));
    ok(&s.docker(&["rm", "holder"]));
    ok(&s.docker(&["run", "-d", "--name", "vh", "withvol:v1"]));
    let m = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}",
        "vh",
    ]));
    assert_eq!(m.trim(), "volume /cache");
    ok(&s.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "vh",
        "busybox",
        "sh",
        "-c",
        "echo shared > /cache/x",
    ]));
    assert_eq!(
        ok(&s.docker(&["exec", "vh", "cat", "/cache/x"])),
        "shared\n"
    );
    let o = s.docker(&["volume", "rm", "vol1"]);
    assert!(o.status.success(), "unused: {}", text(&o.stderr));
    let before = ok(&s.docker(&["volume", "ls", "-q"])).lines().count();
    let df = ok(&s.docker(&["system", "df"]));
    assert!(
        df.contains("Images") && df.contains("Local Volumes"),
        "{df}"
    );
    ok(&s.docker(&["rm", "-fv", "vh"]));
    let after = ok(&s.docker(&["volume", "ls", "-q"])).lines().count();
    assert_eq!(after + 1, before, "rm -v removed the anonymous volume");
    ok(&s.docker(&["volume", "prune", "-af"]));
    assert_eq!(ok(&s.docker(&["volume", "ls", "-q"])).trim(), "");
    let o = s.docker(&["run", "--rm", "-v", "bad name:/x", "busybox", "true"]);
    assert!(!o.status.success() && text(&o.stderr).contains("invalid characters"));

    // Restart policies: on-failure:2 gives up after two restarts; always comes back after
    // the process dies but not after `docker stop`.
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]));
    s.until("two restarts", || {
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "flaky",
        ]))
        .trim()
            == "2 exited"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.ExitCode}}",
            "flaky"
        ]))
        .trim(),
        "2 3"
    );
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]));
    let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "always"]));
    let pid: i32 = pid.trim().parse().unwrap();
    // SAFETY: kill(2) on the container's init, which this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    s.until("the always container back up", || {
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "always",
        ]))
        .trim()
            == "1 running"
    });
    ok(&s.docker(&["stop", "-t", "1", "always"]));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "always"])).trim(),
        "exited",
        "a stopped container stays stopped"
    );
    // update: resources on the running task, the policy in the config.
    ok(&s.docker(&["start", "always"]));
    ok(&s.docker(&["update", "--memory", "64m", "--restart", "no", "always"]));
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
            "always",
        ]))
        .trim(),
        "67108864 no"
    );
    let st = ok(&s.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "always",
    ]));
    assert!(st.starts_with("always ") && st.contains("64MiB"), "{st}");

    // Events seen so far, filtered.
    let until = (now_secs() + 1).to_string();
    let ev = ok(&s.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=flaky",
        "--format",
        "{{.Action}}",
    ]));
    let actions: Vec<&str> = ev.lines().collect();
    assert_eq!(actions.iter().filter(|a| **a == "die").count(), 3, "{ev}");
    assert!(
        actions.contains(&"create") && actions.contains(&"restart"),
        "{ev}"
    );
    assert_eq!(
        ok(&s.docker(&["info", "-f", "{{.Containers}} {{.ContainersRunning}}"])).trim(),
        "2 1"
    );
    ok(&s.docker(&["rm", "-f", "always"]));
    let pruned = ok(&s.docker(&["system", "prune", "-f"]));
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "");
}

/// docker-py through the SDK: exec_run (output, exit code, user, stream), put/get_archive,
/// volumes, commit, diff, top, pause, logs, events.
#[test]
fn docker_py_exec_archive_volumes_commit() {
    if !need_root("docker_py_exec_archive_volumes_commit") {
        return;
    }
    let s = Stack::busybox("api-pymore");
    let script = format!(
        r#"
import docker, io, tarfile, time, faulthandler
# A hang shows where it is (every thread's stack on stderr), then ends the script.
faulthandler.dump_traceback_later(120, exit=True)
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
ctr = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="py2")
r = ctr.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
assert r.exit_code == 3 and b"out" in r.output and b"err" in r.output, r
r = ctr.exec_run("id -u", user="nobody")
assert r.output.strip() == b"65534", r
r = ctr.exec_run(["sh", "-c", "echo $A"], environment={{"A": "b"}}, workdir="/tmp")
assert r.output == b"b\n", r
r = ctr.exec_run(["sh", "-c", "echo s1; echo s2"], stream=True)
assert b"".join(r.output) == b"s1\ns2\n"
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"from-py\n"
    info = tarfile.TarInfo("py.txt"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert ctr.put_archive("/tmp", buf.getvalue())
assert ctr.exec_run("cat /tmp/py.txt").output == b"from-py\n"
bits, stat = ctr.get_archive("/tmp/py.txt")
raw = b"".join(bits)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    assert t.extractfile("py.txt").read() == b"from-py\n"
assert stat["name"] == "py.txt" and stat["size"] == 8, stat
assert any(d["Path"] == "/tmp/py.txt" and d["Kind"] == 1 for d in ctr.diff())
top = ctr.top()
assert any("sleep" in " ".join(p) for p in top["Processes"]), top
ctr.pause(); ctr.reload(); assert ctr.status == "paused"
ctr.unpause(); ctr.reload(); assert ctr.status == "running"
img = ctr.commit(repository="pycommit", tag="v1", changes=["CMD cat /tmp/py.txt"])
assert c.containers.run("pycommit:v1", remove=True) == b"from-py\n"
v = c.volumes.create("pyvol", labels={{"k": "v"}})
assert c.volumes.get("pyvol").attrs["Labels"] == {{"k": "v"}}
out = c.containers.run("busybox", ["sh", "-c", "echo v > /d/f; cat /d/f"], volumes={{"pyvol": {{"bind": "/d", "mode": "rw"}}}}, remove=True)
assert out == b"v\n", out
assert [x.name for x in c.volumes.list(filters={{"label": "k=v"}})] == ["pyvol"]
v.remove()
assert c.volumes.list() == []
ctr.stop(timeout=1)
ctr.remove()
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
