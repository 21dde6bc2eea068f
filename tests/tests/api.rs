//! The Docker Engine API served by berthd, driven by the real clients: the `docker` CLI and
//! docker-py. Each test runs its own berth-manager and berthd (socket in a temp dir), and a
//! loopback docker-registry; daemon.json turns Docker Hub fallback off, so nothing leaves
//! the machine. This part covers the system and image endpoints.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::*;

struct Stack {
    dir: TempDir,
    /// The manager's --state: a short path, as 64-hex container ids make long socket paths
    /// (`tasks/<id>/shim.sock` must fit in 107 bytes).
    state: TempDir,
    children: Vec<Child>,
    registry: u16,
    _registry: Registry,
    /// berthd's --cgroup-parent: removed with everything below it on drop.
    cg: String,
}

impl Stack {
    fn new(tag: &str) -> Stack {
        let dir = TempDir::new(tag);
        let d = dir.path().to_path_buf();
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let state = TempDir(PathBuf::from(format!(
            "/tmp/bs{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )));
        let mut children = Vec::new();
        let reg = Registry::start(&d, None);
        let registry = reg.port;
        children.push(
            Command::new(bin_dir().join("berth-manager"))
                .arg("--address")
                .arg(d.join("m.sock"))
                .arg("--root")
                .arg(d.join("root"))
                .arg("--state")
                .arg(state.path())
                .args(["--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("manager.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        std::fs::write(d.join("daemon.json"), r#"{"registry-fallback": false}"#).unwrap();
        let wait = |p: &Path| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !p.exists() {
                assert!(Instant::now() < deadline, "{} did not appear", p.display());
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait(&d.join("m.sock"));
        let cg = unique_id("cg");
        children.push(
            Command::new(bin_dir().join("berthd"))
                .arg("--manager")
                .arg(d.join("m.sock"))
                .arg("--config-file")
                .arg(d.join("daemon.json"))
                .arg("-H")
                .arg(format!("unix://{}", d.join("berth.sock").display()))
                .arg("--data-root")
                .arg(d.join("data"))
                .arg("--cgroup-parent")
                .arg(format!("/{cg}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("berthd.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        wait(&d.join("berth.sock"));
        std::fs::create_dir_all(d.join("docker-config")).unwrap();
        Stack {
            dir,
            state,
            children,
            registry,
            _registry: reg,
            cg,
        }
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    /// The real docker CLI against berthd, with its own (empty) client config.
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn rootfs_tar(&self) -> PathBuf {
        let rootfs = self.dir.path().join("rootfs");
        make_rootfs(&rootfs);
        let tar = self.dir.path().join("rootfs.tar");
        let o = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(o.status.success());
        tar
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_task_processes(&self.state.path().join("tasks"), None);
        std::thread::sleep(Duration::from_millis(100));
        remove_cgroup_tree(&self.cg);
    }
}

/// The docker CLI's image commands against berthd: version, info, import, images, tag,
/// push, rmi, pull, inspect, history, save, load, image prune; errors as Docker reports them.
#[test]
fn docker_cli_image_commands() {
    if !need_root("docker_cli_image_commands") {
        return;
    }
    assert!(have("docker"), "the docker CLI (v28) is expected on PATH");
    let s = Stack::new("api-cli");
    let v = ok(&s.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]));
    assert_eq!(v.trim(), "1.45 linux");
    let info = ok(&s.docker(&["info", "--format", "{{.OSType}} {{.Images}}"]));
    assert_eq!(info.trim(), "linux 0");
    let name = format!("127.0.0.1:{}/cli/busybox:1", s.registry);
    let tar = s.rootfs_tar().display().to_string();
    let id = ok(&s.docker(&["import", &tar, &name])).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let images = ok(&s.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    assert!(
        images.contains(&format!(
            "127.0.0.1:{}/cli/busybox:1 {}",
            s.registry,
            &id[7..19]
        )),
        "{images}"
    );
    ok(&s.docker(&["tag", &name, "mybox:latest"]));
    let push = ok(&s.docker(&["push", &name]));
    assert!(push.contains("digest: sha256:"), "{push}");
    let rmi = ok(&s.docker(&["rmi", &name, "mybox"]));
    assert!(
        rmi.contains("Untagged: mybox:latest") && rmi.contains(&format!("Deleted: {id}")),
        "{rmi}"
    );
    let pull = ok(&s.docker(&["pull", &name]));
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");
    let insp = ok(&s.docker(&[
        "image",
        "inspect",
        &name,
        "--format",
        "{{.Id}} {{.Os}} {{index .RepoDigests 0}}",
    ]));
    assert!(
        insp.starts_with(&format!(
            "{id} linux 127.0.0.1:{}/cli/busybox@sha256:",
            s.registry
        )),
        "{insp}"
    );
    let hist = ok(&s.docker(&["history", &name, "--format", "{{.CreatedBy}}"]));
    assert_eq!(hist.trim(), "berth import");
    let saved = s.dir.path().join("saved.tar");
    let sv = saved.display().to_string();
    ok(&s.docker(&["save", "-o", &sv, &name]));
    ok(&s.docker(&["rmi", &name]));
    let load = ok(&s.docker(&["load", "-i", &sv]));
    assert!(load.contains(&format!("Loaded image: {name}")), "{load}");
    assert_eq!(
        ok(&s.docker(&["image", "inspect", &name, "--format", "{{.Id}}"])).trim(),
        id
    );
    ok(&s.docker(&["image", "prune", "-f"]));
    // Errors: unknown image 404 named, bad reference 400 named, missing repository named.
    let o = s.docker(&["rmi", "nope"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("no such image: nope"),
        "{}",
        text(&o.stderr)
    );
    let o = s.docker(&["image", "inspect", "nope"]);
    assert!(!o.status.success());
    let o = s.docker(&["pull", &format!("127.0.0.1:{}/missing:1", s.registry)]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("not found"),
        "{}",
        text(&o.stderr)
    );
    // Docker Hub is never contacted: no mirror and fallback off fails at once, naming why.
    let t = Instant::now();
    let o = s.docker(&["pull", "busybox"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("registry-fallback"),
        "{}",
        text(&o.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// docker-py (the SDK) against berthd: ping, version, pull, list, tag, inspect, remove.
#[test]
fn docker_py_image_calls() {
    if !need_root("docker_py_image_calls") {
        return;
    }
    let s = Stack::new("api-py");
    let name = format!("127.0.0.1:{}/py/busybox", s.registry);
    let tar = s.rootfs_tar().display().to_string();
    // Seed the registry through the CLI-free path: berthd's own import and push.
    let berthd = |args: &[&str]| {
        Command::new(bin_dir().join("berthd"))
            .arg("--manager")
            .arg(s.dir.path().join("m.sock"))
            .arg("--config-file")
            .arg(s.dir.path().join("daemon.json"))
            .args(args)
            .output()
            .unwrap()
    };
    ok(&berthd(&["image", "import", &tar, &format!("{name}:1")]));
    ok(&berthd(&["image", "push", &format!("{name}:1")]));
    ok(&berthd(&["image", "rm", &format!("{name}:1")]));
    let script = format!(
        r#"
import docker, sys
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
assert c.ping() is True
assert c.version()["ApiVersion"] == "1.45"
img = c.images.pull("{name}", tag="1")
assert img.id.startswith("sha256:"), img.id
assert "{name}:1" in img.tags, img.tags
assert any(i.id == img.id for i in c.images.list())
img.tag("py/other", "v2")
assert "py/other:v2" in c.images.get("py/other:v2").tags
assert c.images.get(img.id).attrs["Os"] == "linux"
c.images.remove("py/other:v2")
try:
    c.images.get("does-not-exist")
    sys.exit("expected ImageNotFound")
except docker.errors.ImageNotFound:
    pass
print("ok")
"#,
        sock = s.sock().display(),
        name = name
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
}

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
    ok(&s.docker(&["start", "web"]));
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "web"])).trim(),
        "running"
    );
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
}

/// docker-py runs a container to completion and reads its output.
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
