//! The Docker Engine API served by berthd, driven by the real clients: the `docker` CLI and
//! docker-py. Each test runs its own berth-manager and berthd (socket in a temp dir), and a
//! loopback docker-registry; daemon.json turns Docker Hub fallback off, so nothing leaves
//! the machine. This part covers the system and image endpoints.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::*;

fn append(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap()
}

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
        Self::with_config(tag, r#"{"registry-fallback": false}"#)
    }

    /// A stack whose berthd reads `daemon_json`.
    fn with_config(tag: &str, daemon_json: &str) -> Stack {
        let dir = TempDir::new(tag);
        let d = dir.path().to_path_buf();
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let state = TempDir(PathBuf::from(format!(
            "/tmp/bs{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )));
        let reg = Registry::start(&d, None);
        let registry = reg.port;
        // Every stack has its own default bridge and subnet: stacks run side by side.
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut cfg: serde_json::Value = serde_json::from_str(daemon_json).unwrap();
        let bridge = format!("bt{}x{seq}", std::process::id() % 100_000);
        if cfg["bridge"].is_null() {
            cfg["bridge"] = bridge.clone().into();
        }
        // (`"bip": null` asks for none: the default bridge's subnet comes from the pools.)
        if cfg.get("bip").is_none() {
            let n = (std::process::id() as usize * 7 + seq) % 250;
            cfg["bip"] = format!("10.{}.{}.1/24", 200 + n % 50, n).into();
        }
        std::fs::write(d.join("daemon.json"), cfg.to_string()).unwrap();
        std::fs::create_dir_all(d.join("docker-config")).unwrap();
        let mut s = Stack {
            dir,
            state,
            children: Vec::new(),
            registry,
            _registry: reg,
            cg: unique_id("cg"),
        };
        s.start_manager();
        s.start_berthd();
        s
    }

    fn wait_for(p: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.exists() {
            assert!(Instant::now() < deadline, "{} did not appear", p.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_manager(&mut self) {
        let d = self.dir.path().to_path_buf();
        let _ = std::fs::remove_file(d.join("m.sock"));
        self.children.push(
            Command::new(bin_dir().join("berth-manager"))
                .arg("--address")
                .arg(d.join("m.sock"))
                .arg("--root")
                .arg(d.join("root"))
                .arg("--state")
                .arg(self.state.path())
                .args(["--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(append(&d.join("manager.log")))
                .spawn()
                .unwrap(),
        );
        Self::wait_for(&d.join("m.sock"));
    }

    fn start_berthd(&mut self) {
        let d = self.dir.path().to_path_buf();
        let _ = std::fs::remove_file(d.join("berth.sock"));
        self.children.push(
            Command::new(bin_dir().join("berthd"))
                .arg("--manager")
                .arg(d.join("m.sock"))
                .arg("--config-file")
                .arg(d.join("daemon.json"))
                .arg("-H")
                .arg(format!("unix://{}", d.join("berth.sock").display()))
                .arg("--data-root")
                .arg(d.join("data"))
                .arg("--exec-root")
                .arg(d.join("exec"))
                .arg("--cgroup-parent")
                .arg(format!("/{}", self.cg))
                .stdout(Stdio::null())
                .stderr(append(&d.join("berthd.log")))
                .spawn()
                .unwrap(),
        );
        Self::wait_for(&d.join("berth.sock"));
    }

    /// kill -9 berthd and the manager (the shims and containers live on).
    fn kill9_daemons(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
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
            .client_of(self)
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

/// The docker CLI's (and docker-py's, docker-compose's) environment for a stack: its
/// berthd's socket and an empty client configuration of its own.
trait ClientOf {
    fn client_of(&mut self, s: &Stack) -> &mut Self;
}

impl ClientOf for Command {
    fn client_of(&mut self, s: &Stack) -> &mut Command {
        self.env("DOCKER_HOST", format!("unix://{}", s.sock().display()))
            .env("DOCKER_CONFIG", s.dir.path().join("docker-config"))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_task_processes(&self.state.path().join("tasks"), None);
        kill_cgroup_tree(&self.cg);
        std::thread::sleep(Duration::from_millis(200));
        remove_cgroup_tree(&self.cg);
        self.remove_network();
    }
}

impl Stack {
    /// The first three octets of the stack's default bridge subnet (from daemon.json `bip`).
    fn subnet_prefix(&self) -> String {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("daemon.json")).unwrap())
                .unwrap();
        let bip = cfg["bip"].as_str().expect("a stack with a bip");
        bip.rsplit_once('.').unwrap().0.to_string()
    }

    /// Does a container on network `net` get an answer to one ping of `to`? (Ping: this
    /// busybox's `wget -T` crashes, which would pass for "unreachable".)
    fn reaches(&self, net: &str, to: &str) -> bool {
        self.docker(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "ping",
            "-c1",
            "-W1",
            to,
        ])
        .status
        .success()
    }

    /// The stack's default bridge (from its daemon.json).
    fn bridge(&self) -> String {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("daemon.json")).unwrap())
                .unwrap();
        cfg["bridge"].as_str().unwrap().to_string()
    }

    /// What berthd leaves on the host on purpose (like docker0 and Docker's rules): the
    /// bridge and Berth's nftables table. The namespaces go with their mounts.
    fn remove_network(&self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("exec").join("netns")) {
            for e in rd.flatten() {
                let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_file(e.path());
            }
        }
        let b = self.bridge();
        // The default bridge and the stack's user-defined networks' bridges.
        let state: serde_json::Value = std::fs::read(
            self.dir
                .path()
                .join("data")
                .join("network")
                .join("state.json"),
        )
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
        let mut bridges = vec![b.clone()];
        for n in state["networks"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .values()
        {
            if let Some(br) = n["bridge"].as_str() {
                bridges.push(br.to_string());
            }
        }
        for br in bridges {
            let _ = Command::new("ip")
                .args(["link", "del", &br])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("berth_{b}")])
            .stderr(Stdio::null())
            .status();
        // The iptables backend's chains, and the jumps to them.
        let chains = format!("BERTH-{b}-");
        for table in ["nat", "filter"] {
            let rules = Command::new("iptables-save")
                .args(["-t", table])
                .output()
                .map(|o| text(&o.stdout))
                .unwrap_or_default();
            for l in rules.lines() {
                if let Some(rule) = l.strip_prefix("-A ").filter(|r| r.contains(&chains)) {
                    if !rule.starts_with(&chains) {
                        let _ = Command::new("iptables")
                            .args(["-t", table, "-D"])
                            .args(rule.split_whitespace())
                            .status();
                    }
                }
            }
            for l in rules.lines() {
                if let Some(c) = l.strip_prefix(':').filter(|c| c.starts_with(&chains)) {
                    let c = c.split_whitespace().next().unwrap_or_default();
                    let _ = Command::new("iptables")
                        .args(["-t", table, "-F", c])
                        .status();
                    let _ = Command::new("iptables")
                        .args(["-t", table, "-X", c])
                        .status();
                }
            }
        }
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
    // search lists the registry's catalog entries that contain the term.
    let found = ok(&s.docker(&[
        "search",
        "--format",
        "{{.Name}}",
        &format!("127.0.0.1:{}/busy", s.registry),
    ]));
    assert_eq!(
        found.trim(),
        format!("127.0.0.1:{}/cli/busybox", s.registry)
    );
    let none = ok(&s.docker(&[
        "search",
        &format!("127.0.0.1:{}/nothing-like-it", s.registry),
    ]));
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
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
        !o.status.success() && text(&o.stderr).contains("No such image: nope"),
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

/// Drives a program on a pseudo-terminal (30 rows x 100 columns): sends each `|`-separated
/// piece of input 0.7 s apart, then prints what it read (repr) and its exit code.
const PTY_DRIVER: &str = r#"
import os, pty, sys, time, select, fcntl, termios, struct
pieces = sys.argv[1].encode().decode('unicode_escape').split('|')
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))
out = b''
def drain(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
for p in pieces:
    drain(0.7)
    os.write(fd, p.encode('latin-1'))
drain(8)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode('latin-1').replace('\r', ''))
print("\nexit=%d" % os.waitstatus_to_exitcode(st))
"#;

impl Stack {
    /// The docker CLI on a terminal, fed `input` (see PTY_DRIVER).
    fn docker_tty(&self, input: &str, args: &[&str]) -> String {
        self.on_tty(input, Path::new("docker"), args)
    }

    /// `program` (docker or berth, pointed at this stack) on a terminal, fed `input`.
    fn on_tty(&self, input: &str, program: &Path, args: &[&str]) -> String {
        let o = Command::new("timeout")
            .arg("60")
            .arg("python3")
            .arg("-c")
            .arg(PTY_DRIVER)
            .arg(input)
            .arg(program)
            .args(args)
            .client_of(self)
            .env("BERTH_HOST", format!("unix://{}", self.sock().display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        text(&o.stdout)
    }

    /// The docker CLI with `input` on its stdin.
    fn docker_in(&self, input: &str, args: &[&str]) -> Output {
        use std::io::Write;
        let mut c = Command::new("timeout")
            .arg("60")
            .arg("docker")
            .args(args)
            .client_of(self)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    /// A new stack with the busybox image imported.
    fn busybox(tag: &str) -> Stack {
        let s = Stack::new(tag);
        s.import_busybox();
        s
    }

    fn import_busybox(&self) {
        let tar = self.rootfs_tar().display().to_string();
        ok(&self.docker(&["import", "--change", "CMD [\"sh\"]", &tar, "busybox:latest"]));
    }

    fn until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The seeds' interactive commands with the real CLI: `run -it` on a terminal (size
/// passed, exit code kept), ctrl-p ctrl-q detach and `attach` back, `exec` in all its
/// forms, `top`, `pause`/`unpause`, `rename`, `restart`.
#[test]
fn docker_cli_interactive_and_exec() {
    if !need_root("docker_cli_interactive_and_exec") {
        return;
    }
    let s = Stack::busybox("api-tty");
    let out = s.docker_tty(
        r"echo hello-$((6*7)); stty size\n|exit 5\n",
        &["run", "-it", "--name", "tty1", "busybox", "sh"],
    );
    assert!(out.contains("hello-42"), "{out}");
    assert!(
        out.contains("30 100"),
        "the terminal size reached the container: {out}"
    );
    assert!(out.contains("exit=5"), "{out}");
    // Detach with ctrl-p ctrl-q, the shell keeps running; attach again and leave it.
    let out = s.docker_tty(
        r"echo one\n|\x10\x11",
        &["run", "-it", "--name", "det", "busybox", "sh"],
    );
    assert!(out.contains("one") && out.contains("exit=0"), "{out}");
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "det"])).trim(),
        "running"
    );
    let out = s.docker_tty(r"echo two\n|exit 4\n", &["attach", "det"]);
    assert!(out.contains("two") && out.contains("exit=4"), "{out}");
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "det"
        ]))
        .trim(),
        "exited 4"
    );
    // Piped stdin without a terminal: stdin closes at its end.
    let o = s.docker_in("piped\n", &["run", "--rm", "-i", "busybox", "cat"]);
    assert_eq!(text(&o.stdout), "piped\n", "{}", text(&o.stderr));

    // exec: output, exit codes, user, env, workdir, stdin, tty, detached, missing program.
    ok(&s.docker(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]));
    assert_eq!(ok(&s.docker(&["exec", "web", "echo", "hi"])), "hi\n");
    assert_eq!(
        s.docker(&["exec", "web", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(
        ok(&s.docker(&["exec", "-u", "nobody", "web", "id", "-u"])).trim(),
        "65534"
    );
    assert_eq!(
        ok(&s.docker(&[
            "exec",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $FOO; pwd"
        ])),
        "bar\n/tmp\n"
    );
    let o = s.docker_in("to-stdin\n", &["exec", "-i", "web", "cat"]);
    assert_eq!(text(&o.stdout), "to-stdin\n");
    let out = s.docker_tty(r"tty; stty size\n|exit 3\n", &["exec", "-it", "web", "sh"]);
    assert!(
        out.contains("/dev/pts/") && out.contains("30 100") && out.contains("exit=3"),
        "{out}"
    );
    ok(&s.docker(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d"]));
    s.until("the detached exec", || {
        s.docker(&["exec", "web", "cat", "/tmp/d"]).status.success()
    });
    let o = s.docker(&["exec", "web", "no-such-program"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no-such-program"),
        "{}",
        text(&o.stderr)
    );
    // A user without privileges still gets the default seccomp profile (installed before
    // the uid changes).
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "-u", "65534:65534", "busybox", "id", "-g"])).trim(),
        "65534"
    );

    // top, pause/unpause, rename, restart.
    let top = ok(&s.docker(&["top", "web"]));
    assert!(top.contains("PID") && top.contains("sleep 1000"), "{top}");
    assert!(
        !top.contains("/sbin/init"),
        "only the container's processes: {top}"
    );
    ok(&s.docker(&["pause", "web"]));
    assert!(ok(&s.docker(&["ps"])).contains("(Paused)"));
    let o = s.docker(&["exec", "web", "true"]);
    assert!(!o.status.success() && text(&o.stderr).contains("paused"));
    ok(&s.docker(&["unpause", "web"]));
    ok(&s.docker(&["rename", "web", "web2"]));
    assert_eq!(
        ok(&s.docker(&["ps", "--format", "{{.Names}}"])).trim(),
        "web2"
    );
    let before = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "web2"]));
    ok(&s.docker(&["restart", "-t", "1", "web2"]));
    let after = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}} {{.State.Status}}", "web2"]));
    assert!(
        after.ends_with("running\n") && !after.starts_with(before.trim()),
        "{after}"
    );
    ok(&s.docker(&["rm", "-f", "web2", "det", "tty1"]));
}

/// `docker cp` both ways, for running and stopped containers; a symlink planted in the
/// container cannot send a copy to the host (CVE-2018-15664 class).
#[test]
fn docker_cli_cp() {
    if !need_root("docker_cli_cp") {
        return;
    }
    let s = Stack::busybox("api-cp");
    let host = s.dir.path().join("cp");
    std::fs::create_dir_all(host.join("d/sub")).unwrap();
    std::fs::write(host.join("d/sub/f"), "deep\n").unwrap();
    std::fs::write(host.join("file"), "top\n").unwrap();
    ok(&s.docker(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]));
    let h = |p: &str| host.join(p).display().to_string();
    ok(&s.docker(&["cp", &h("file"), "c1:/tmp/"]));
    ok(&s.docker(&["cp", &h("d"), "c1:/tmp/dd"]));
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "cat", "/tmp/file", "/tmp/dd/sub/f"])),
        "top\ndeep\n"
    );
    ok(&s.docker(&["cp", "c1:/etc/passwd", &h("pw")]));
    assert!(std::fs::read_to_string(host.join("pw"))
        .unwrap()
        .starts_with("root:x:0:0"));
    ok(&s.docker(&["cp", "c1:/tmp/dd", &h("back")]));
    assert_eq!(
        std::fs::read_to_string(host.join("back/sub/f")).unwrap(),
        "deep\n"
    );
    let o = s.docker(&["cp", "c1:/nope", &h("x")]);
    assert!(!o.status.success() && text(&o.stderr).contains("Could not find the file /nope"));
    // Symlinks inside the container resolve inside it.
    let victim = s.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let v = victim.display().to_string();
    ok(&s.docker(&["exec", "c1", "ln", "-s", &v, "/tmp/evil"]));
    ok(&s.docker(&["exec", "c1", "ln", "-s", "/", "/tmp/root"]));
    ok(&s.docker(&["cp", &h("file"), "c1:/tmp/root/"]));
    ok(&s.docker(&["exec", "c1", "mkdir", "-p", &v]));
    ok(&s.docker(&["cp", &h("file"), "c1:/tmp/evil/"]));
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "nothing was written to the host through the container's symlink"
    );
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "cat", "/file", &format!("{v}/file")])),
        "top\ntop\n"
    );
    ok(&s.docker(&["exec", "c1", "ln", "-s", "/etc/hostname", "/tmp/hn"]));
    ok(&s.docker(&["cp", "c1:/tmp/root/etc/passwd", &h("pw2")]));
    assert!(
        std::fs::read_to_string(host.join("pw2"))
            .unwrap()
            .contains("nobody:x:65534"),
        "the container's /etc/passwd, not the host's"
    );
    // Stopped: from and into its filesystem.
    ok(&s.docker(&["stop", "-t", "1", "c1"]));
    ok(&s.docker(&["cp", "c1:/tmp/file", &h("stopped")]));
    assert_eq!(
        std::fs::read_to_string(host.join("stopped")).unwrap(),
        "top\n"
    );
    ok(&s.docker(&["cp", &h("file"), "c1:/while-stopped"]));
    ok(&s.docker(&["start", "c1"]));
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "cat", "/while-stopped"])),
        "top\n"
    );
    ok(&s.docker(&["rm", "-f", "c1"]));
    assert!(mounts_containing(&s.dir.path().display().to_string()).is_empty());
}

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

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

impl Stack {
    /// Our own CLI against berthd.
    fn berth(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg(bin_dir().join("berth"))
            .args(args)
            .env("BERTH_HOST", format!("unix://{}", self.sock().display()))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// The `berth` CLI through the whole stack: run (attached, -d, --rm, -it on a terminal with
/// detach), ps, logs, exec, cp, commit, diff, images, tag, push, rmi, pull, volumes, df,
/// inspect, stop, rm; errors exit 125 with the daemon's message.
#[test]
fn berth_cli_through_the_stack() {
    if !need_root("berth_cli_through_the_stack") {
        return;
    }
    let s = Stack::busybox("api-berth");
    let o = s.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(text(&o.stderr), "err\n");
    let id = ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "b1",
        "-e",
        "X=1",
        "busybox",
        "sh",
        "-c",
        "echo up $X; exec sleep 1000",
    ]));
    assert_eq!(id.trim().len(), 64);
    let ps = ok(&s.berth(&["ps"]));
    assert!(
        ps.starts_with("CONTAINER ID   IMAGE") && ps.contains(" b1\n"),
        "{ps}"
    );
    assert_eq!(ok(&s.berth(&["ps", "-q"])).trim(), &id.trim()[..12]);
    assert_eq!(
        ok(&s.berth(&["ps", "--format", "{{.Names}} {{.State}}"])).trim(),
        "b1 running"
    );
    s.until("the log", || ok(&s.berth(&["logs", "b1"])) == "up 1\n");
    let o = s.berth(&["exec", "b1", "sh", "-c", "echo in; exit 4"]);
    assert_eq!(
        (o.status.code(), text(&o.stdout).as_str()),
        (Some(4), "in\n")
    );
    let f = s.dir.path().join("f.txt");
    std::fs::write(&f, "to-container\n").unwrap();
    ok(&s.berth(&["cp", &f.display().to_string(), "b1:/tmp/"]));
    assert_eq!(
        ok(&s.berth(&["exec", "b1", "cat", "/tmp/f.txt"])),
        "to-container\n"
    );
    let back = s.dir.path().join("back.txt");
    ok(&s.berth(&["cp", "b1:/tmp/f.txt", &back.display().to_string()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "to-container\n");
    assert!(ok(&s.berth(&["diff", "b1"])).contains("A /tmp/f.txt"));
    let img = ok(&s.berth(&["commit", "-c", "CMD cat /tmp/f.txt", "b1", "bcommit:v1"]));
    assert!(img.starts_with("sha256:"));
    assert_eq!(
        ok(&s.berth(&["run", "--rm", "bcommit:v1"])),
        "to-container\n"
    );
    // Interactive on a terminal, detach, attach.
    let out = s.berth_tty(
        r"echo hi-$((1+2))\n|\x10\x11",
        &["run", "-it", "--name", "b2", "busybox", "sh"],
    );
    assert!(out.contains("hi-3") && out.contains("exit=0"), "{out}");
    assert_eq!(
        ok(&s.berth(&["inspect", "-f", "{{.State.Status}}", "b2"])).trim(),
        "running"
    );
    let out = s.berth_tty(r"stty size\n|exit 6\n", &["attach", "b2"]);
    assert!(out.contains("30 100") && out.contains("exit=6"), "{out}");
    // Images to and from the registry.
    let reference = format!("127.0.0.1:{}/bcommit:v1", s.registry);
    ok(&s.berth(&["tag", "bcommit:v1", &reference]));
    ok(&s.berth(&["push", &reference]));
    ok(&s.berth(&["rmi", &reference]));
    let pulled = ok(&s.berth(&["pull", &reference]));
    assert!(
        pulled.contains("Pull complete") || pulled.contains("Already exists"),
        "{pulled}"
    );
    let images = ok(&s.berth(&["images"]));
    assert!(
        images.starts_with("REPOSITORY") && images.contains("bcommit"),
        "{images}"
    );
    // Volumes and df.
    ok(&s.berth(&["volume", "create", "bv"]));
    ok(&s.berth(&[
        "run",
        "--rm",
        "-v",
        "bv:/v",
        "busybox",
        "sh",
        "-c",
        "echo x > /v/x",
    ]));
    assert_eq!(ok(&s.berth(&["volume", "ls", "-q"])).trim(), "bv");
    assert!(ok(&s.berth(&["system", "df"])).contains("Local Volumes   1"));
    // Errors: docker's exit code and message.
    let o = s.berth(&["stop", "nope"]);
    assert!(
        text(&o.stderr).contains("No such container: nope"),
        "{}",
        text(&o.stderr)
    );
    let o = s.berth(&["run", "-p", "80:http", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains("invalid port specification"));
    ok(&s.berth(&["rm", "-f", "b1", "b2"]));
    ok(&s.berth(&["volume", "rm", "bv"]));
    assert_eq!(ok(&s.berth(&["ps", "-aq"])).trim(), "");
}

impl Stack {
    fn berth_tty(&self, input: &str, args: &[&str]) -> String {
        self.on_tty(input, &bin_dir().join("berth"), args)
    }
}

impl Stack {
    /// A raw API call with curl: (status, body).
    fn curl(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        use std::io::Write;
        let mut c = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg("--unix-socket")
            .arg(self.sock())
            .args(["-H", "Content-Type: application/json"])
            .args(if body.is_some() {
                vec!["--data-binary", "@-"]
            } else {
                vec![]
            })
            .arg(format!("http://berth/v1.45{path}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        if let Some(b) = body {
            let _ = stdin.write_all(b);
        }
        drop(stdin);
        let o = c.wait_with_output().unwrap();
        let out = text(&o.stdout);
        let (b, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), b.to_string())
    }
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

/// `-H tcp://`: served with TLS only. With --tlsverify the docker CLI connects with a client
/// certificate signed by the CA, and is refused without one; plain TCP is refused at start
/// unless forced.
#[test]
fn tcp_needs_tls() {
    if !need_root("tcp_needs_tls") {
        return;
    }
    let s = Stack::new("api-tls");
    let d = s.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let sh = |script: &str| {
        let o = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(&d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=127.0.0.1 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile server.ext 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout client-key.pem -out client.csr -subj /CN=client 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null");
    let port = free_port();
    let berthd = |extra: &[&str]| {
        Command::new(bin_dir().join("berthd"))
            .arg("--manager")
            .arg(s.dir.path().join("m.sock"))
            .arg("--config-file")
            .arg(s.dir.path().join("daemon.json"))
            .arg("--data-root")
            .arg(s.dir.path().join("data-tls"))
            .arg("-H")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Plain TCP is refused, naming the fix.
    let o = berthd(&[]).wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--tlsverify"),
        "{}",
        text(&o.stderr)
    );
    let p = |f: &str| d.join(f).display().to_string();
    let mut child = berthd(&[
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("cert.pem"),
        "--tlskey",
        &p("key.pem"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "berthd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let docker = |tls: &[String]| {
        Command::new("timeout")
            .args(["30", "docker"])
            .args(tls)
            .args([
                "-H",
                &format!("tcp://127.0.0.1:{port}"),
                "version",
                "-f",
                "{{.Server.Version}}",
            ])
            .env("DOCKER_CONFIG", s.dir.path().join("docker-config"))
            .output()
            .unwrap()
    };
    let with_cert: Vec<String> = vec![
        "--tlsverify".into(),
        format!("--tlscacert={}", p("ca.pem")),
        format!("--tlscert={}", p("client.pem")),
        format!("--tlskey={}", p("client-key.pem")),
    ];
    let o = docker(&with_cert);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), env!("CARGO_PKG_VERSION"));
    let o = docker(&["--tlsverify".into(), format!("--tlscacert={}", p("ca.pem"))]);
    assert!(
        !o.status.success(),
        "a client without a certificate is refused"
    );
    let _ = child.kill();
    let _ = child.wait();
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
    let o = s.docker(&["run", "--rm", "--log-driver", "syslog", "busybox", "true"]);
    assert!(!o.status.success() && text(&o.stderr).contains("not supported"));
    ok(&s.docker(&["rm", "chatty", "quiet"]));
}

/// berthd's answers have the shapes the Engine API's Swagger spec declares (v1.45, in
/// tests/schemas): containers, images, volumes, exec, system, events.
#[test]
fn api_responses_match_the_engine_schema() {
    if !need_root("api_responses_match_the_engine_schema") {
        return;
    }
    let s = Stack::busybox("api-schema");
    ok(&s.docker(&["volume", "create", "sv"]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "sc",
        "-v",
        "sv:/data",
        "-e",
        "A=1",
        "-p",
        "8080:80",
        "--restart",
        "on-failure:2",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&s.docker(&["exec", "sc", "touch", "/new"]));
    ok(&s.docker(&["create", "--name", "stopped", "busybox", "true"]));
    let (code, exec) = s.curl(
        "POST",
        "/containers/sc/exec",
        Some(br#"{"Cmd": ["true"], "AttachStdout": true}"#),
    );
    assert_eq!(code, 201, "{exec}");
    let exec_id = serde_json::from_str::<serde_json::Value>(&exec).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let since = now_secs().saturating_sub(600).to_string();
    let until = (now_secs() + 1).to_string();
    let checks: Vec<(String, &str)> = vec![
        ("/containers/json?all=1".into(), "ContainerSummary[]"),
        (
            "/containers/sc/json".into(),
            "GET /containers/{id}/json 200",
        ),
        (
            "/containers/stopped/json".into(),
            "GET /containers/{id}/json 200",
        ),
        ("/containers/sc/top".into(), "GET /containers/{id}/top 200"),
        (
            "/containers/sc/changes".into(),
            "GET /containers/{id}/changes 200",
        ),
        (
            "/containers/sc/stats?stream=false&one-shot=true".into(),
            "GET /containers/{id}/stats 200",
        ),
        ("/images/json".into(), "ImageSummary[]"),
        ("/images/busybox/json".into(), "ImageInspect"),
        (
            "/images/busybox/history".into(),
            "GET /images/{name}/history 200",
        ),
        ("/volumes".into(), "VolumeListResponse"),
        ("/volumes/sv".into(), "Volume"),
        (format!("/exec/{exec_id}/json"), "GET /exec/{id}/json 200"),
        ("/info".into(), "SystemInfo"),
        ("/version".into(), "SystemVersion"),
        ("/system/df".into(), "GET /system/df 200"),
    ];
    let mut failures = Vec::new();
    for (path, what) in &checks {
        let (code, body) = s.curl("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        if let Err(why) = validate_engine(what, &body) {
            failures.push(format!("{path} as {what}:\n{why}"));
        }
    }
    // Events: one JSON object per line.
    let (_, events) = s.curl("GET", &format!("/events?since={since}&until={until}"), None);
    assert!(events.lines().count() >= 4, "{events}");
    for line in events.lines() {
        if let Err(why) = validate_engine("EventMessage", line) {
            failures.push(format!("event {line}:\n{why}"));
        }
    }
    let (code, created) = s.curl(
        "POST",
        "/containers/create",
        Some(br#"{"Image": "busybox"}"#),
    );
    assert_eq!(code, 201);
    if let Err(why) = validate_engine("ContainerCreateResponse", &created) {
        failures.push(format!("create: {why}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    ok(&s.docker(&["rm", "-f", "sc", "stopped"]));
    ok(&s.docker(&["container", "prune", "-f"]));
}

fn validate_engine(what: &str, json: &str) -> Result<(), String> {
    let o = run_with_input(
        Command::new("python3")
            .arg(schema_dir().join("engine_validate.py"))
            .arg(schema_dir().join("docker-engine-api-v1.45.yaml"))
            .arg(what),
        json.as_bytes(),
    );
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", text(&o.stdout), text(&o.stderr)))
    }
}

// ---- Builds: POST /build with `DOCKER_BUILDKIT=0 docker build` and docker-py ----

impl Stack {
    /// `DOCKER_BUILDKIT=0 docker build <args>` in `ctx`.
    fn build(&self, ctx: &Path, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("120")
            .arg("docker")
            .arg("build")
            .args(args)
            .arg(ctx)
            .env("DOCKER_BUILDKIT", "0")
            .client_of(self)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Write `files` (path, content) under a new context directory.
fn context(s: &Stack, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = s.dir.path().join(name);
    for (p, c) in files {
        let f = d.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    d
}

/// The seeds' example (WORKDIR, COPY, RUN, CMD) with build args, ENV, LABEL, .dockerignore
/// and ADD of a local tar: the image runs, has the config the Dockerfile says, and a rebuild
/// comes from the cache until a file changes — then exactly the steps from its COPY on run.
#[test]
fn docker_build_classic_builder_and_cache() {
    if !need_root("docker_build_classic_builder_and_cache") {
        return;
    }
    let s = Stack::busybox("api-build");
    let ctx = context(
        &s,
        "ctx",
        &[
            ("app/hello.txt", "hello\n"),
            ("app/secret.log", "must not be sent\n"),
            (".dockerignore", "**/*.log\n"),
            (
                "Dockerfile",
                "# syntax=docker/dockerfile:1\n\
                 ARG BASE=busybox\n\
                 FROM $BASE\n\
                 ARG VER=1.0\n\
                 ENV APP=/srv/app \\\n    MODE=\"prod mode\"\n\
                 WORKDIR $APP\n\
                 COPY app/ ./\n\
                 ADD files.tar /opt/\n\
                 RUN echo \"built $VER in $MODE\" > built.txt && ls\n\
                 LABEL version=$VER\n\
                 EXPOSE 8080/tcp\n\
                 USER 65534:65534\n\
                 CMD [\"cat\", \"built.txt\", \"hello.txt\"]\n",
            ),
        ],
    );
    let tarball = Command::new("tar")
        .args(["-C", s.dir.path().to_str().unwrap(), "-cf"])
        .arg(ctx.join("files.tar"))
        .arg("ctx/app/hello.txt")
        .output()
        .unwrap();
    ok(&tarball);
    let o = s.build(&ctx, &["-t", "seed:1", "--build-arg", "VER=2.5"]);
    let out = ok(&o);
    assert!(out.contains("Step 1/12 : ARG BASE=busybox"), "{out}");
    assert!(out.contains("Step 8/12 : RUN"), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.contains("Successfully built "), "{out}");
    assert!(out.contains("Successfully tagged seed:1"), "{out}");
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "seed:1"])),
        "built 2.5 in prod mode\nhello\n"
    );
    let ls = ok(&s.docker(&["run", "--rm", "seed:1", "ls", "/srv/app", "/opt/ctx/app"]));
    assert!(
        !ls.contains("secret.log"),
        ".dockerignore'd file was copied: {ls}"
    );
    assert!(ls.contains("hello.txt"), "ADD extracts a local tar: {ls}");
    let cfg = ok(&s.docker(&["inspect", "-f", "{{json .Config}}", "seed:1"]));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["User"], "65534:65534");
    assert_eq!(cfg["Labels"]["version"], "2.5");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "MODE=prod mode"));
    // A build arg is not kept in the image's environment.
    assert!(!cfg["Env"].to_string().contains("VER="));
    let hist = ok(&s.docker(&["history", "--no-trunc", "seed:1"]));
    assert!(hist.contains("|1 VER=2.5 /bin/sh -c echo"), "{hist}");

    // Unchanged: every step after FROM from the cache, same image.
    let id1 = ok(&s.docker(&["images", "-q", "seed:1"]));
    let out = ok(&s.build(&ctx, &["-t", "seed:2", "--build-arg", "VER=2.5"]));
    assert_eq!(out.matches("Using cache").count(), 9, "{out}");
    assert_eq!(ok(&s.docker(&["images", "-q", "seed:2"])), id1);
    // A changed file: its COPY and every later step run again, the ones before come cached.
    std::fs::write(ctx.join("app/hello.txt"), "changed\n").unwrap();
    let out = ok(&s.build(&ctx, &["-t", "seed:3", "--build-arg", "VER=2.5"]));
    assert_eq!(
        out.matches("Using cache").count(),
        2,
        "ENV, WORKDIR cached: {out}"
    );
    assert!(out.contains(" ---> Running in "), "RUN ran again: {out}");
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "seed:3"])),
        "built 2.5 in prod mode\nchanged\n"
    );
    // --no-cache runs everything.
    let out = ok(&s.build(&ctx, &["--no-cache", "-q", "--build-arg", "VER=2.5"]));
    assert!(out.trim().starts_with("sha256:"), "-q prints the ID: {out}");
    // `docker builder prune`: the cache is gone, tagged images stay.
    let pruned = ok(&s.docker(&["builder", "prune", "-f"]));
    assert!(pruned.contains("sha256:"), "{pruned}");
    let out = ok(&s.build(&ctx, &["-t", "seed:4", "--build-arg", "VER=2.5"]));
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "seed:1"])),
        "built 2.5 in prod mode\nhello\n"
    );
}

/// Multi-stage builds, --target, COPY --from with --chown/--chmod, ONBUILD, SHELL,
/// HEALTHCHECK; a two-service image like the seeds' ssh+nginx one (here busybox httpd and
/// telnetd started by a script) runs both services.
#[test]
fn docker_build_multi_stage_and_services() {
    if !need_root("docker_build_multi_stage_and_services") {
        return;
    }
    let s = Stack::busybox("api-build2");
    let ctx = context(
        &s,
        "ms",
        &[
            (
                "start.sh",
                "#!/bin/sh\nhttpd -p 127.0.0.1:$HTTP_PORT -h /www\ntelnetd -p $TELNET_PORT -b 127.0.0.1 -l /bin/sh\nexec sleep 1000\n",
            ),
            (
                "Dockerfile",
                "FROM busybox AS builder\n\
                 RUN mkdir /out && echo compiled > /out/app && chmod 600 /out/app\n\
                 ONBUILD RUN echo triggered > /trigger\n\
                 FROM builder AS child\n\
                 RUN test -f /trigger\n\
                 FROM busybox AS final\n\
                 MAINTAINER Berth Tests <tests@berth>\n\
                 WORKDIR /srv/www\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 COPY --from=builder --chown=65534:65534 --chmod=640 /out/app /app/bin\n\
                 RUN test \"$(stat -c '%u:%g %a' /app/bin)\" = '65534:65534 640'\n\
                 RUN ip -o -4 addr show eth0 | grep -q inet\n\
                 COPY start.sh /start.sh\n\
                 RUN chmod +x /start.sh && mkdir /www && echo served > /www/index.html\n\
                 EXPOSE 22 80\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- http://127.0.0.1:$HTTP_PORT/\n\
                 CMD [\"/start.sh\"]\n\
                 FROM final AS extra\n\
                 RUN echo never\n",
            ),
        ],
    );
    let out = ok(&s.build(&ctx, &["-t", "svc", "--target", "final"]));
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert!(!out.contains("never"), "--target stops at its stage: {out}");
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.Author}}", "svc"])).trim(),
        "Berth Tests <tests@berth>"
    );
    // WORKDIR made the directory in the image (no later step created it).
    assert_eq!(ok(&s.docker(&["run", "--rm", "svc", "pwd"])), "/srv/www\n");
    // And `docker run -w` of a missing directory creates it, as dockerd does.
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "-w", "/made/by/run", "busybox", "pwd"])),
        "/made/by/run\n"
    );
    let hc = ok(&s.docker(&["inspect", "-f", "{{json .Config.Healthcheck}}", "svc"]));
    let hc: serde_json::Value = serde_json::from_str(&hc).unwrap();
    assert_eq!(hc["Test"][0], "CMD-SHELL");
    assert_eq!(hc["Interval"], 5_000_000_000u64);
    assert_eq!(hc["Retries"], 2);
    // On the host's network (ports from the environment), both services on free loopback
    // ports the host reaches directly.
    let (http, telnet) = (free_port(), free_port());
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "svc1",
        "--network",
        "host",
        "-e",
        &format!("HTTP_PORT={http}"),
        "-e",
        &format!("TELNET_PORT={telnet}"),
        "svc",
    ]));
    s.until("both services up", || {
        let ps = text(&s.docker(&["exec", "svc1", "ps"]).stdout);
        ps.contains("httpd") && ps.contains("telnetd")
    });
    let url = format!("http://127.0.0.1:{http}/");
    assert_eq!(
        ok(&s.docker(&["exec", "svc1", "wget", "-q", "-O-", &url])),
        "served\n"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", telnet)).is_ok(),
        "telnetd listens"
    );
    ok(&s.docker(&["rm", "-f", "svc1"]));
}

/// Bad Dockerfiles and failing steps: errors that name the line or the command, a non-zero
/// exit, and (with --force-rm; without it Docker keeps a failed step's container) no
/// container left behind.
#[test]
fn docker_build_errors() {
    if !need_root("docker_build_errors") {
        return;
    }
    let s = Stack::busybox("api-build3");
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN true\nFROBNICATE x\n",
            "line 3: unknown instruction: FROBNICATE",
        ),
        ("RUN true\n", "FROM"),
        ("FROM busybox\nCOPY missing.txt /x\n", "missing.txt"),
        (
            "FROM busybox\nCOPY ../outside /x\n",
            "outside the build context",
        ),
        ("FROM busybox\nRUN exit 3\n", "returned a non-zero code: 3"),
        ("FROM busybox\nENV A=\"unterminated\n", "double-quote"),
        ("FROM no-such-image-here\n", "no-such-image-here"),
        (
            "FROM busybox\nCOPY --bogus=1 a b\n",
            "unknown flag: --bogus",
        ),
    ];
    for (n, (df, want)) in cases.iter().enumerate() {
        let ctx = context(&s, &format!("bad{n}"), &[("Dockerfile", df)]);
        let o = s.build(&ctx, &["--force-rm"]);
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(!o.status.success(), "{df:?} built: {all}");
        assert!(all.contains(want), "{df:?}: wanted {want:?} in {all}");
    }
    assert_eq!(
        ok(&s.docker(&["ps", "-aq"])),
        "",
        "with --force-rm a failed RUN leaves no container"
    );
}

/// docker-py's images.build: the image and the streamed log it returns.
#[test]
fn docker_py_build() {
    if !need_root("docker_py_build") {
        return;
    }
    let s = Stack::busybox("api-pybuild");
    let ctx = context(
        &s,
        "py",
        &[
            ("msg", "from py\n"),
            ("Dockerfile", "FROM busybox\nARG WHO=nobody\nCOPY msg /msg\nRUN echo \"$WHO\" >> /msg\nCMD [\"cat\", \"/msg\"]\n"),
        ],
    );
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
img, logs = c.images.build(path="{ctx}", tag="pyimg:1", buildargs={{"WHO": "docker-py"}}, rm=True)
text = "".join(l.get("stream", "") for l in logs)
assert "Successfully built" in text, text
assert "pyimg:1" in img.tags, img.tags
out = c.containers.run("pyimg:1", remove=True)
assert out == b"from py\ndocker-py\n", out
print("ok")
"#,
        sock = s.sock().display(),
        ctx = ctx.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
}

/// `berth build`: tags, build args, a Dockerfile outside the context, --target, -q.
#[test]
fn berth_cli_build() {
    if !need_root("berth_cli_build") {
        return;
    }
    let s = Stack::busybox("api-bbuild");
    let ctx = context(&s, "bctx", &[("data.txt", "payload\n")]);
    let df = s.dir.path().join("Other.dockerfile");
    std::fs::write(
        &df,
        "FROM busybox AS one\nARG GREETING=hi\nCOPY data.txt /data.txt\nRUN echo \"$GREETING\" >> /data.txt\nCMD [\"cat\", \"/data.txt\"]\nFROM one AS two\nRUN false\n",
    )
    .unwrap();
    let out = ok(&s.berth(&[
        "build",
        "-t",
        "cli:1",
        "-t",
        "cli:2",
        "-f",
        df.to_str().unwrap(),
        "--build-arg",
        "GREETING=hello",
        "--target",
        "one",
        ctx.to_str().unwrap(),
    ]));
    assert!(out.contains("Step 1/5 : FROM busybox AS one"), "{out}");
    assert!(out.contains("Successfully tagged cli:2"), "{out}");
    assert_eq!(ok(&s.berth(&["run", "--rm", "cli:2"])), "payload\nhello\n");
    let q = ok(&s.berth(&[
        "build",
        "-q",
        "-f",
        df.to_str().unwrap(),
        "--target",
        "one",
        ctx.to_str().unwrap(),
    ]));
    assert!(q.trim().starts_with("sha256:"), "{q}");
    // A failing step: non-zero exit and the daemon's message.
    let o = s.berth(&["build", "-f", df.to_str().unwrap(), ctx.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("returned a non-zero code: 1"),
        "{}",
        text(&o.stderr)
    );
}

/// kill -9 of the daemons in the middle of a build: the next berthd removes what the build
/// had (its tmpfs context mount and work directory); the step's container is an ordinary
/// container that can be removed (dockerd leaves it too).
#[test]
fn build_interrupted_by_kill9_leaves_nothing_mounted() {
    if !need_root("build_interrupted_by_kill9_leaves_nothing_mounted") {
        return;
    }
    let mut s = Stack::busybox("api-build-k9");
    let ctx = context(
        &s,
        "k9",
        &[
            ("f", "x\n"),
            ("Dockerfile", "FROM busybox\nCOPY f /f\nRUN sleep 30\n"),
        ],
    );
    let mut build = Command::new("docker")
        .args(["build", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .client_of(&s)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.until("the RUN step's container runs", || {
        !text(&s.docker(&["ps", "-q"]).stdout).trim().is_empty()
    });
    let data = s.dir.path().join("data");
    let mounted = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.contains(data.to_str().unwrap()) && l.contains("/build-"))
            .count()
    };
    assert_eq!(mounted(), 1, "the context is on a tmpfs while building");
    s.kill9_daemons();
    let _ = build.wait();
    s.start_manager();
    s.start_berthd();
    assert_eq!(
        mounted(),
        0,
        "the new berthd unmounted the old build's context"
    );
    let left: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("build-")),
        "{left:?}"
    );
    let ids = ok(&s.docker(&["ps", "-aq"]));
    for id in ids.split_whitespace() {
        ok(&s.docker(&["rm", "-f", id]));
    }
}

// ---- Networking: the default bridge, none, host, container:, published ports ----

fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The seeds' networking with the docker CLI: each container on the default bridge has its
/// own stack (eth0 in the bridge's subnet, /etc/hosts and resolv.conf); `-p ip:port:port`,
/// `-P` and udp reach it from the host's loopback; `docker port`; `--network none` has only
/// lo, `host` the host's interfaces, `container:` shares a stack; a port in use is refused
/// with nothing half-made; published ports survive a berthd restart (live restore); and
/// removing the containers removes their interfaces, namespaces and rules.
#[test]
fn docker_cli_networking() {
    if !need_root("docker_cli_networking") {
        return;
    }
    let mut s = Stack::busybox("api-net");
    let bridge = s.bridge();
    let (p1, p3) = (free_port(), free_port());
    let web = "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "--add-host",
        "db.example:10.9.9.9",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "--expose",
        "8080",
        "-P",
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    s.until("httpd answers on the published port", || {
        http_get(p1).is_some_and(|r| r.contains("hello-web"))
    });
    // The container's own stack, on the stack's bridge subnet.
    let ip = ok(&s.docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]));
    let ip = ip.trim().to_string();
    let prefix = s.subnet_prefix();
    assert!(
        ip.starts_with(&format!("{prefix}.")),
        "{ip} in {prefix}.0/24"
    );
    let addr = ok(&s.docker(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth0"]));
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let hosts = ok(&s.docker(&["exec", "web", "cat", "/etc/hosts", "/etc/hostname"]));
    assert!(hosts.contains(&format!("{ip}\twebhost")), "{hosts}");
    assert!(hosts.contains("10.9.9.9\tdb.example"), "{hosts}");
    assert!(hosts.ends_with("webhost\n"), "{hosts}");
    let resolv = ok(&s.docker(&["exec", "web", "cat", "/etc/resolv.conf"]));
    assert!(
        !resolv.contains("nameserver 127."),
        "loopback resolvers are dropped: {resolv}"
    );
    // -P published the exposed 8080 on a random port; docker port shows both.
    let ports = ok(&s.docker(&["port", "web"]));
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{p1}")),
        "{ports}"
    );
    assert!(ports.contains("8080/tcp -> 0.0.0.0:"), "{ports}");
    let ps = ok(&s.docker(&["ps", "--format", "{{.Ports}}"]));
    assert!(ps.contains(&format!("127.0.0.1:{p1}->80/tcp")), "{ps}");
    // The NAT rules are in Berth's own table.
    let table = ok(&Command::new("nft")
        .args(["list", "table", "ip", &format!("berth_{bridge}")])
        .output()
        .unwrap());
    assert!(
        table.contains(&format!("tcp dport {p1} dnat to {ip}:80")),
        "{table}"
    );

    // udp: an echo server in the container's namespace, reached through the published port.
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        &format!("127.0.0.1:{p3}:7/udp"),
        "busybox",
        "sleep",
        "1000",
    ]));
    let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "udp"]));
    let mut echo = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
        .args(["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',7))\nd,a=s.recvfrom(100)\ns.sendto(d.upper(),a)"])
        .spawn()
        .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = String::new();
    for _ in 0..20 {
        sock.send_to(b"ping-udp", ("127.0.0.1", p3)).unwrap();
        let mut b = [0u8; 64];
        if let Ok((n, _)) = sock.recv_from(&mut b) {
            got = String::from_utf8_lossy(&b[..n]).into_owned();
            break;
        }
    }
    let _ = echo.kill();
    let _ = echo.wait();
    assert_eq!(got, "PING-UDP");

    // none: only lo (and it is up); host: the host's interfaces; container: shares web's.
    let none = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]));
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    let host_links = text(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    );
    let hl = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]));
    assert!(
        hl.contains(&format!(": {bridge}:")),
        "the host's bridge is visible: {hl}"
    );
    assert!(host_links.lines().count() >= 2);
    let host_name = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "--network", "host", "busybox", "hostname"])).trim(),
        host_name,
        "the host's name on the host's network"
    );
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1/"
        ])),
        "hello-web\n"
    );
    // From one container to another over the bridge.
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "busybox",
            "wget",
            "-q",
            "-O-",
            &format!("http://{ip}/")
        ])),
        "hello-web\n"
    );

    // --link on the default bridge: the alias and the name in /etc/hosts.
    let linked = ok(&s.docker(&[
        "run",
        "--rm",
        "--link",
        "web:site",
        "busybox",
        "sh",
        "-c",
        "grep site /etc/hosts; wget -q -O- http://site/",
    ]));
    assert_eq!(linked, format!("{ip}\tsite web\nhello-web\n"));
    let o = s.docker(&["run", "--rm", "--link", "nosuch:x", "busybox", "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("could not get container for nosuch"),
        "{}",
        text(&o.stderr)
    );

    // A port in use: a clear error, the container stays created, nothing bound or ruled.
    let o = s.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("port is already allocated"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "clash"])).trim(),
        "created"
    );
    ok(&s.docker(&["rm", "clash"]));
    assert!(
        http_get(p1).is_some_and(|r| r.contains("hello-web")),
        "web still serves"
    );

    // Live restore: berthd and the manager killed and started again; the port still answers.
    s.kill9_daemons();
    s.start_manager();
    s.start_berthd();
    s.until("the published port answers again", || {
        http_get(p1).is_some_and(|r| r.contains("hello-web"))
    });

    // A user-defined network: containers reach each other by name and by alias (the
    // embedded DNS); it cannot be removed while in use; network ls/inspect show it.
    let base = prefix.replace("10.2", "10.1");
    let sub = format!("{base}.0/24");
    let range = format!("{base}.128/25");
    ok(&s.docker(&[
        "network",
        "create",
        "--subnet",
        &sub,
        "--ip-range",
        &range,
        "-o",
        "com.docker.network.driver.mtu=1400",
        "--label",
        "purpose=test",
        "appnet",
    ]));
    // --ip and --mac-address on it; --ip on the default bridge is refused like Docker.
    let fixed = format!("{base}.10");
    let eth = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--ip",
        &fixed,
        "--mac-address",
        "02:42:ac:11:00:99",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip -o link show eth0",
    ]));
    assert!(eth.contains(&format!("{fixed}/24")), "{eth}");
    assert!(eth.contains("02:42:ac:11:00:99"), "{eth}");
    assert!(eth.contains("mtu 1400"), "{eth}");
    let o = s.docker(&["run", "--rm", "--ip", &fixed, "busybox", "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("user defined networks only"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "appnet",
        "--network-alias",
        "backend",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo from-api > /www/index.html && exec httpd -f -p 80 -h /www",
    ]));
    s.until("api serves on appnet", || {
        s.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://api/",
        ])
        .stdout
            == b"from-api\n"
    });
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://backend/"
        ])),
        "from-api\n"
    );
    // --link on a user-defined network: a name only the linking container resolves.
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "--link",
            "api:apilink",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://apilink/"
        ])),
        "from-api\n"
    );
    assert!(!s.reaches("appnet", "apilink"));
    let ls = ok(&s.docker(&[
        "network",
        "ls",
        "--filter",
        "label=purpose=test",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]));
    assert_eq!(ls.trim(), "appnet bridge");
    let members = ok(&s.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]));
    assert_eq!(members.trim(), "api");
    // network connect: web (on the default bridge) gets eth1 on appnet and its name (and
    // the alias given) resolves there; disconnect takes both away.
    ok(&s.docker(&["network", "connect", "--alias", "front", "appnet", "web"]));
    let eth1 = ok(&s.docker(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth1"]));
    assert!(eth1.contains(&format!(" {base}.")), "{eth1}");
    for name in ["web", "front"] {
        assert_eq!(
            ok(&s.docker(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                "busybox",
                "wget",
                "-q",
                "-O-",
                &format!("http://{name}/"),
            ])),
            "hello-web\n"
        );
    }
    let nets = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "web",
    ]));
    assert_eq!(nets.trim(), "appnet bridge", "{nets}");
    ok(&s.docker(&["network", "disconnect", "appnet", "web"]));
    assert!(!s
        .docker(&["exec", "web", "ip", "link", "show", "eth1"])
        .status
        .success());
    assert!(!s.reaches("appnet", "web"));
    // Automatic addresses come from the --ip-range.
    let api_ip = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
        "api",
    ]));
    assert_eq!(api_ip.trim(), format!("{base}.128"));
    // Isolation: another network's containers and an internal network's reach nothing
    // across bridges (web, on the default bridge, answers its own bridge only).
    let (b1, third) = base.rsplit_once('.').unwrap();
    let sealed = format!("{b1}.{}.0/24", (third.parse::<u32>().unwrap() + 128) % 256);
    ok(&s.docker(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &sealed,
        "sealed",
    ]));
    assert!(s.reaches("bridge", &ip), "web answers on its own bridge");
    for net in ["sealed", "appnet"] {
        assert!(
            !s.reaches(net, &ip),
            "{net} reached the default bridge's web"
        );
    }
    ok(&s.docker(&["network", "rm", "sealed"]));
    let o = s.docker(&["network", "rm", "appnet"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("active endpoints"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&["rm", "-f", "api"]));
    ok(&s.docker(&["network", "rm", "appnet"]));
    let o = s.docker(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert!(!o.status.success());

    // Removal: proxies closed, rules, veths and namespaces gone.
    ok(&s.docker(&["rm", "-f", "web", "udp"]));
    assert!(http_get(p1).is_none(), "the port is closed after rm");
    let table = text(
        &Command::new("nft")
            .args(["list", "table", "ip", &format!("berth_{bridge}")])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!table.contains("dnat"), "no DNAT rule left: {table}");
    // (The host ends are deleted in the background: unregistering waits for RCU.)
    s.until("no veth left on the bridge", || {
        text(
            &Command::new("ip")
                .args(["-o", "link", "show", "master", &bridge])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .is_empty()
    });
    let ns = std::fs::read_dir(s.dir.path().join("exec").join("netns"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(ns, 0, "no namespace left");
}

/// `berth run -p/-P/--expose/--add-host` and `berth port`.
#[test]
fn berth_cli_ports() {
    if !need_root("berth_cli_ports") {
        return;
    }
    let s = Stack::busybox("api-bports");
    let p = free_port();
    let web = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "ww",
        "-p",
        &format!("127.0.0.1:{p}:80"),
        "--expose",
        "81",
        "-P",
        "--add-host",
        "x.test:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    s.until("httpd answers", || {
        http_get(p).is_some_and(|r| r.contains("hi"))
    });
    assert_eq!(
        ok(&s.berth(&["port", "ww", "80"])).trim(),
        format!("127.0.0.1:{p}")
    );
    let ps = ok(&s.berth(&["ps", "--format", "{{.Ports}}"]));
    assert!(ps.contains(&format!("127.0.0.1:{p}->80/tcp")), "{ps}");
    let all = ok(&s.berth(&["port", "ww"]));
    assert!(all.contains("81/tcp -> 0.0.0.0:"), "{all}");
    assert!(ok(&s.berth(&["exec", "ww", "cat", "/etc/hosts"])).contains("10.1.2.3\tx.test"));
    let o = s.berth(&["port", "ww", "9999"]);
    assert!(!o.status.success());
    let linked = ok(&s.berth(&[
        "run",
        "--rm",
        "--link",
        "ww:w2",
        "busybox",
        "grep",
        "w2 ww",
        "/etc/hosts",
    ]));
    assert_eq!(linked.lines().count(), 1, "{linked}");
    ok(&s.berth(&["rm", "-f", "ww"]));

    // 8 MiB through the proxy (spliced): every byte arrives, and the client's EOF reaches
    // the container (nc ends, the checksum is written).
    let p2 = free_port();
    ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "sink",
        "-p",
        &format!("127.0.0.1:{p2}:9000"),
        "busybox",
        "sh",
        "-c",
        "nc -l -p 9000 | md5sum > /tmp/sum; sleep 1000",
    ]));
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sent = false;
    for _ in 0..50 {
        use std::io::Write;
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", p2)) {
            c.write_all(&data).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            sent = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent);
    let want = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&data)?;
            c.wait_with_output()
        })
        .unwrap();
    let want = text(&want.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    s.until("the container's checksum of what it got", || {
        s.berth(&["exec", "sink", "cat", "/tmp/sum"])
            .stdout
            .starts_with(want.as_bytes())
    });
    ok(&s.berth(&["rm", "-f", "sink"]));
}

/// `berth network create/ls/inspect/connect/disconnect/rm/prune` and `berth run --network
/// --network-alias --ip`.
#[test]
fn berth_cli_networks() {
    if !need_root("berth_cli_networks") {
        return;
    }
    let s = Stack::busybox("api-bnet");
    let base = s.subnet_prefix().replace("10.2", "10.1");
    ok(&s.berth(&[
        "network",
        "create",
        "--subnet",
        &format!("{base}.0/24"),
        "--label",
        "k=v",
        "bn1",
    ]));
    ok(&s.berth(&["network", "create", "bn2"]));
    let ls = ok(&s.berth(&["network", "ls", "--format", "{{.Name}}"]));
    for n in ["bridge", "host", "none", "bn1", "bn2"] {
        assert!(ls.lines().any(|l| l == n), "{n} in {ls}");
    }
    let web = "mkdir -p /www && echo via-alias > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--network",
        "bn1",
        "--network-alias",
        "alias1",
        "--ip",
        &format!("{base}.50"),
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    assert_eq!(
        ok(&s.berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.bn1.IPAddress}}",
            "svc"
        ]))
        .trim(),
        format!("{base}.50")
    );
    s.until("svc answers by alias", || {
        s.berth(&[
            "run",
            "--rm",
            "--network",
            "bn1",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://alias1/",
        ])
        .stdout
            == b"via-alias\n"
    });
    // Connected to bn2 too: reachable by name from there; disconnected: not any more.
    ok(&s.berth(&["network", "connect", "bn2", "svc"]));
    assert_eq!(
        ok(&s.berth(&[
            "run",
            "--rm",
            "--network",
            "bn2",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://svc/"
        ])),
        "via-alias\n"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&ok(&s.berth(&["network", "inspect", "bn2"]))).unwrap();
    let names: Vec<&str> = inspected[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(names, ["svc"]);
    ok(&s.berth(&["network", "disconnect", "bn2", "svc"]));
    assert!(!s
        .berth(&["exec", "svc", "ip", "link", "show", "eth1"])
        .status
        .success());
    assert!(
        !s.berth(&["network", "rm", "bn1"]).status.success(),
        "in use"
    );
    ok(&s.berth(&["rm", "-f", "svc"]));
    let pruned = ok(&s.berth(&["network", "prune", "-f"]));
    assert!(pruned.contains("bn1") && pruned.contains("bn2"), "{pruned}");
    let ls = ok(&s.berth(&["network", "ls", "-q"]));
    assert_eq!(ls.lines().count(), 3, "bridge, host, none: {ls}");
}

/// Interfaces (`ip -o link show master BRIDGE`) on a bridge.
fn ports_on(bridge: &str) -> usize {
    text(
        &Command::new("ip")
            .args(["-o", "link", "show", "master", bridge])
            .output()
            .unwrap()
            .stdout,
    )
    .lines()
    .count()
}

/// A container's network lives while it runs, like Docker's: at stop its veths, namespace,
/// published ports and DNAT rules go and its addresses are free for others; at start they
/// come back (the same address when still free, a new one written into /etc/hosts when
/// not), with the networks connected meanwhile; a container that died while berthd was
/// down is cleaned up when berthd starts again.
#[test]
fn network_released_at_stop() {
    if !need_root("network_released_at_stop") {
        return;
    }
    let mut s = Stack::busybox("api-netrel");
    let bridge = s.bridge();
    let base = s.subnet_prefix().replace("10.2", "10.1");
    ok(&s.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{base}.0/24"),
        "relnet",
    ]));
    let relbr = format!(
        "br-{}",
        &ok(&s.docker(&["network", "inspect", "-f", "{{.Id}}", "relnet"])).trim()[..12]
    );
    let port = free_port();
    let web = "mkdir -p /www && echo kept > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--network",
        "relnet",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    ok(&s.docker(&["network", "connect", "bridge", "keep"]));
    s.until("keep serves", || {
        http_get(port).is_some_and(|r| r.contains("kept"))
    });
    let ip_of = |s: &Stack, net: &str| {
        ok(&s.docker(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
            "keep",
        ]))
        .trim()
        .to_string()
    };
    let ip = ip_of(&s, "relnet");
    assert!(ip.starts_with(&format!("{base}.")), "{ip}");
    assert_eq!((ports_on(&relbr), ports_on(&bridge)), (1, 1));
    let netns = s.dir.path().join("exec").join("netns");
    let count = |p: &Path| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    assert_eq!(count(&netns), 1);
    let table = || {
        text(
            &Command::new("nft")
                .args(["list", "table", "ip", &format!("berth_{bridge}")])
                .output()
                .unwrap()
                .stdout,
        )
    };
    assert!(table().contains(&format!("dnat to {ip}:80")), "{}", table());

    // Stopped: nothing of its network is left on the host; its address is free.
    ok(&s.docker(&["stop", "-t", "1", "keep"]));
    assert!(http_get(port).is_none(), "the port is closed at stop");
    assert_eq!(count(&netns), 0, "its namespace is gone at stop");
    assert!(!table().contains("dnat"), "{}", table());
    s.until("its veths are gone", || {
        ports_on(&relbr) == 0 && ports_on(&bridge) == 0
    });
    assert_eq!(
        ip_of(&s, "relnet"),
        "",
        "a stopped container shows no address"
    );
    let took = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "relnet",
        "--ip",
        &ip,
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    assert!(took.contains(&format!("{ip}/24")), "{took}");
    // Connected while stopped: plugged in at the next start.
    ok(&s.docker(&["network", "create", "late"]));
    ok(&s.docker(&["network", "connect", "late", "keep"]));

    // Started again: the same address, its port, eth1 (bridge) and eth2 (late), its name.
    ok(&s.docker(&["start", "keep"]));
    s.until("keep serves again", || {
        http_get(port).is_some_and(|r| r.contains("kept"))
    });
    assert_eq!(ip_of(&s, "relnet"), ip);
    let links = ok(&s.docker(&["exec", "keep", "ip", "-o", "link"]));
    for i in ["eth0", "eth1", "eth2"] {
        assert!(links.contains(&format!(": {i}@")), "{i}: {links}");
    }
    assert!(!ip_of(&s, "late").is_empty());
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "late",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://keep/"
        ])),
        "kept\n"
    );

    // Its address taken while it was stopped: a new one, in inspect and /etc/hosts.
    ok(&s.docker(&["stop", "-t", "1", "keep"]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "squat",
        "--network",
        "relnet",
        "--ip",
        &ip,
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&s.docker(&["start", "keep"]));
    let ip2 = ip_of(&s, "relnet");
    assert!(ip2.starts_with(&format!("{base}.")) && ip2 != ip, "{ip2}");
    let hosts = ok(&s.docker(&["exec", "keep", "cat", "/etc/hosts"]));
    assert!(
        hosts.contains(&format!("{ip2}\t")) && !hosts.contains(&format!("{ip}\t")),
        "{hosts}"
    );
    ok(&s.docker(&["rm", "-f", "squat"]));

    // It dies while berthd and the manager are down: berthd's next start releases it all.
    let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "keep"]));
    s.kill9_daemons();
    let _ = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    s.start_manager();
    s.start_berthd();
    s.until("the dead container's network is released", || {
        count(&netns) == 0
            && ports_on(&relbr) == 0
            && ports_on(&bridge) == 0
            && !table().contains("dnat")
    });
    ok(&s.docker(&["start", "keep"]));
    s.until("keep serves after the crash", || {
        http_get(port).is_some_and(|r| r.contains("kept"))
    });

    // Disconnected from the network it was created on (docker-compose does this to every
    // container it makes): eth0, its address and the default route go; connected again,
    // they come back.
    ok(&s.docker(&["network", "disconnect", "relnet", "keep"]));
    let links = ok(&s.docker(&["exec", "keep", "ip", "-o", "link"]));
    assert!(!links.contains(": eth0@"), "{links}");
    let nets = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "keep",
    ]));
    assert_eq!(nets.trim(), "bridge late", "{nets}");
    ok(&s.docker(&[
        "network",
        "connect",
        "--alias",
        "kept-again",
        "relnet",
        "keep",
    ]));
    let ip3 = ip_of(&s, "relnet");
    let route = ok(&s.docker(&["exec", "keep", "ip", "route", "show", "default"]));
    assert!(route.contains(&format!("via {base}.1 dev eth0")), "{route}");
    let hosts = ok(&s.docker(&["exec", "keep", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&format!("{ip3}\t")), "{hosts}");
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "relnet",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://kept-again/"
        ])),
        "kept\n"
    );
    ok(&s.docker(&["rm", "-f", "keep"]));
    for n in ["relnet", "late"] {
        ok(&s.docker(&["network", "rm", n]));
    }
}

/// A network namespace standing for another host: a veth from the host
/// (`HOST_ADDR/30`) to its `eth0` (`PEER_ADDR/30`, default route back). Removed on drop.
struct Outside {
    ns: String,
    link: String,
    host: String,
    peer: String,
}

impl Outside {
    fn new() -> Outside {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}x{seq}", std::process::id() % 100_000);
        let n = (std::process::id() as usize * 3 + seq) % 250;
        let o = Outside {
            ns: format!("bo{tag}"),
            link: format!("vo{tag}"),
            host: format!("10.254.{n}.1"),
            peer: format!("10.254.{n}.2"),
        };
        let ip = |args: &[&str]| ok(&Command::new("ip").args(args).output().unwrap());
        ip(&["netns", "add", &o.ns]);
        ip(&[
            "link", "add", &o.link, "type", "veth", "peer", "name", "eth0", "netns", &o.ns,
        ]);
        ip(&["addr", "add", &format!("{}/30", o.host), "dev", &o.link]);
        ip(&["link", "set", &o.link, "up"]);
        for args in [
            vec!["addr", "add", &*format!("{}/30", o.peer), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", &o.host],
        ] {
            let mut a = vec!["-n", &o.ns];
            a.extend(args);
            ip(&a);
        }
        o
    }

    /// Run python `code` in the namespace.
    fn python(&self, code: &str) -> Output {
        Command::new("timeout")
            .args(["20", "ip", "netns", "exec", &self.ns, "python3", "-c", code])
            .output()
            .unwrap()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// iptables-nft makes the nat and filter tables it needs: on drop (even after a failure),
/// they go again if they were not there before and hold no rules (Berth's chains and jumps
/// go with its stack).
struct XtablesTables(String);

impl XtablesTables {
    fn remember() -> XtablesTables {
        XtablesTables(text(
            &Command::new("nft")
                .args(["list", "tables"])
                .output()
                .unwrap()
                .stdout,
        ))
    }
}

impl Drop for XtablesTables {
    fn drop(&mut self) {
        for t in ["nat", "filter"] {
            if self.0.contains(&format!("table ip {t}\n")) {
                continue;
            }
            let rules = Command::new("iptables")
                .args(["-t", t, "-S"])
                .output()
                .map(|o| text(&o.stdout))
                .unwrap_or_default();
            if rules.lines().all(|l| l.starts_with("-P ")) {
                let _ = Command::new("nft")
                    .args(["delete", "table", "ip", t])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A TCP server that answers each connection with the address it came from.
const WHO_SERVER: &str = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',PORT))\ns.listen(5)\nfor _ in range(COUNT):\n c,a=s.accept()\n c.sendall(a[0].encode())\n c.close()";

fn who_client(addr: &str, port: u16) -> String {
    format!("import socket,time\nfor i in range(50):\n try:\n  c=socket.create_connection(('{addr}',{port}),timeout=2)\n  print(c.recv(100).decode())\n  break\n except OSError:\n  time.sleep(0.1)")
}

/// Berth's firewall rules, both backends (daemon.json `firewall-backend`), seen from
/// another "host" (a namespace this test makes): its connection to a published port on
/// the host's address is DNATed straight to the container (the server sees the outside
/// address, not the proxy's); the container's own connections out are masqueraded (the
/// outside sees the host's address); containers on two networks cannot reach each other
/// (a positive control on the same network); the rules are where the backend keeps them.
#[test]
fn firewall_backends_nat_and_isolation() {
    if !need_root("firewall_backends_nat_and_isolation") {
        return;
    }
    let _tables = XtablesTables::remember();
    for backend in ["nftables", "iptables"] {
        let s = Stack::with_config(
            &format!("api-fw-{backend}"),
            &format!(r#"{{"registry-fallback": false, "firewall-backend": "{backend}"}}"#),
        );
        s.import_busybox();
        let out = Outside::new();
        let port = free_port();
        ok(&s.docker(&[
            "run",
            "-d",
            "--name",
            "who",
            "-p",
            &format!("{port}:80"),
            "busybox",
            "sleep",
            "1000",
        ]));
        let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "who"]));
        let mut server = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
            .args([
                "python3",
                "-c",
                &WHO_SERVER.replace("PORT", "80").replace("COUNT", "1"),
            ])
            .spawn()
            .unwrap();
        let seen = out.python(&who_client(&out.host, port));
        let _ = server.kill();
        let _ = server.wait();
        assert_eq!(
            text(&seen.stdout).trim(),
            out.peer,
            "{backend}: DNAT: {}",
            text(&seen.stderr)
        );

        // Out: the container's connection reaches the outside from the host's address.
        let oport = free_port();
        let mut outside_server = Command::new("ip")
            .args(["netns", "exec", &out.ns, "python3", "-c"])
            .arg(
                WHO_SERVER
                    .replace("PORT", &oport.to_string())
                    .replace("COUNT", "1"),
            )
            .spawn()
            .unwrap();
        let mut seen = String::new();
        for _ in 0..50 {
            let o = s.docker(&[
                "exec",
                "who",
                "sh",
                "-c",
                &format!("nc {} {oport} </dev/null", out.peer),
            ]);
            seen = text(&o.stdout);
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = outside_server.kill();
        let _ = outside_server.wait();
        assert_eq!(seen.trim(), out.host, "{backend}: masquerade");

        // Isolation between networks, with a positive control.
        let base = s.subnet_prefix().replace("10.2", "10.1");
        ok(&s.docker(&[
            "network",
            "create",
            "--subnet",
            &format!("{base}.0/24"),
            "fwa",
        ]));
        ok(&s.docker(&["network", "create", "fwb"]));
        ok(&s.docker(&[
            "run",
            "-d",
            "--name",
            "ina",
            "--network",
            "fwa",
            "busybox",
            "sleep",
            "1000",
        ]));
        let ina = ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fwa.IPAddress}}",
            "ina",
        ]));
        assert!(s.reaches("fwa", ina.trim()), "{backend}: same network");
        assert!(!s.reaches("fwb", ina.trim()), "{backend}: across networks");

        let bridge = s.bridge();
        match backend {
            "nftables" => {
                let t = ok(&Command::new("nft")
                    .args(["list", "table", "ip", &format!("berth_{bridge}")])
                    .output()
                    .unwrap());
                assert!(t.contains("dnat to"), "{t}");
            }
            _ => {
                let nat = ok(&Command::new("iptables")
                    .args(["-t", "nat", "-S"])
                    .output()
                    .unwrap());
                assert!(
                    nat.contains(&format!(
                        "-A BERTH-{bridge}-PUB -p tcp -m tcp --dport {port} -j DNAT"
                    )),
                    "{nat}"
                );
                assert!(
                    nat.contains(&format!("-A POSTROUTING -j BERTH-{bridge}-NAT")),
                    "{nat}"
                );
                let filter = ok(&Command::new("iptables")
                    .args(["-S", "FORWARD"])
                    .output()
                    .unwrap());
                assert!(
                    filter.contains(&format!("-j BERTH-{bridge}-FWD")),
                    "{filter}"
                );
                assert!(
                    Command::new("nft")
                        .args(["list", "table", "ip", &format!("berth_{bridge}")])
                        .output()
                        .map(|o| !o.status.success())
                        .unwrap_or(true),
                    "no nftables table with the iptables backend"
                );
            }
        }
        ok(&s.docker(&["rm", "-f", "who", "ina"]));
        let nat = text(
            &Command::new("iptables")
                .args(["-t", "nat", "-S"])
                .output()
                .unwrap()
                .stdout,
        );
        assert!(
            !nat.contains(&format!("--dport {port} ")),
            "{backend}: DNAT rule left: {nat}"
        );
        ok(&s.docker(&["network", "rm", "fwa", "fwb"]));
    }
}

/// A link (a veth pair: this kernel may lack `dummy`) with an address: a route of the
/// host's (removed on drop).
struct Dummy(String);

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// daemon.json `default-address-pools` gives the default bridge (without `bip`) and new
/// networks their subnets, skipping one the host already routes (like docker0 clashing
/// with a LAN) and the ones taken; a pool used up is a clear error.
#[test]
fn default_address_pools_skip_host_routes() {
    if !need_root("default_address_pools_skip_host_routes") {
        return;
    }
    let k = std::process::id() % 250;
    let base = format!("10.253.{k}");
    let dummy = Dummy(format!("bd{}", std::process::id() % 100_000));
    for args in [
        vec![
            "link",
            "add",
            &dummy.0,
            "type",
            "veth",
            "peer",
            "name",
            &*format!("{}p", dummy.0),
        ],
        vec!["addr", "add", &*format!("{base}.1/26"), "dev", &dummy.0],
        vec!["link", "set", &*format!("{}p", dummy.0), "up"],
        vec!["link", "set", &dummy.0, "up"],
    ] {
        ok(&Command::new("ip").args(&args).output().unwrap());
    }
    let s = Stack::with_config(
        "api-pools",
        &format!(
            r#"{{"registry-fallback": false, "bip": null,
                "default-address-pools": [{{"base": "{base}.0/24", "size": 26}}]}}"#
        ),
    );
    s.import_busybox();
    let subnet_of = |net: &str| {
        ok(&s.docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            net,
        ]))
        .trim()
        .to_string()
    };
    assert_eq!(subnet_of("bridge"), format!("{base}.64/26"));
    let addr = ok(&s.docker(&[
        "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]));
    assert!(addr.contains(&format!(" {base}.66/26")), "{addr}");
    ok(&s.docker(&["network", "create", "pool1"]));
    ok(&s.docker(&["network", "create", "pool2"]));
    assert_eq!(subnet_of("pool1"), format!("{base}.128/26"));
    assert_eq!(subnet_of("pool2"), format!("{base}.192/26"));
    let o = s.docker(&["network", "create", "pool3"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("non-overlapping"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&["network", "rm", "pool1", "pool2"]));
    drop(s);
    drop(dummy);
}

impl Stack {
    /// Debian's docker-compose (1.29, Python) against berthd, run by the system Python
    /// with the docker-py it was packaged with (a newer one from pip would break it).
    fn compose(&self, dir: &Path, args: &[&str]) -> Output {
        const MAIN: &str = "import sys; sys.path = [p for p in sys.path if not p.startswith('/usr/local')]; sys.argv[0] = 'docker-compose'; from compose.cli.main import main; main()";
        Command::new("timeout")
            .args(["120", "/usr/bin/python3", "-c", MAIN])
            .args(args)
            .current_dir(dir)
            .client_of(self)
            .env_remove("PYTHONPATH")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// docker-compose (Debian's 1.29) brings a project up and down against berthd: its own
/// network (with a bridge name from driver_opts) where services reach each other by
/// service name and alias, a published port, a named volume, environment, depends_on;
/// `exec`, `ps`, `logs`, `restart` (names still resolve after it); `down -v` removes the
/// containers, the network, its bridge and the volume.
#[test]
fn docker_compose_up_and_down() {
    if !need_root("docker_compose_up_and_down") {
        return;
    }
    let s = Stack::busybox("api-compose");
    let port = free_port();
    let proj = s.dir.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let bridge = format!("bc{}", std::process::id() % 100_000);
    let base = s.subnet_prefix().replace("10.2", "10.1");
    std::fs::write(
        proj.join("docker-compose.yml"),
        format!(
            r#"version: "3.8"
services:
  web:
    image: busybox
    command: sh -c 'mkdir -p /www && echo "hello $$GREETING" > /www/index.html && exec httpd -f -p 80 -h /www'
    environment:
      GREETING: compose
    ports:
      - "127.0.0.1:{port}:80"
    networks:
      app:
        aliases: [frontend]
  client:
    image: busybox
    command: sh -c 'echo started > /data/mark; exec sleep 1000'
    depends_on: [web]
    volumes:
      - data:/data
    networks: [app]
networks:
  app:
    driver_opts:
      com.docker.network.bridge.name: {bridge}
    ipam:
      config:
        - subnet: {base}.0/24
volumes:
  data: {{}}
"#
        ),
    )
    .unwrap();
    let p = "bcp";
    let up = s.compose(&proj, &["-p", p, "up", "-d"]);
    assert!(up.status.success(), "up: {}", text(&up.stderr));
    s.until("web answers on its published port", || {
        http_get(port).is_some_and(|r| r.contains("hello compose"))
    });
    let fetch = |name: &str| {
        let o = s.compose(
            &proj,
            &[
                "-p",
                p,
                "exec",
                "-T",
                "client",
                "wget",
                "-q",
                "-O-",
                &format!("http://{name}/"),
            ],
        );
        text(&o.stdout)
    };
    assert_eq!(fetch("web"), "hello compose\n");
    assert_eq!(fetch("frontend"), "hello compose\n");
    let ps = s.compose(&proj, &["-p", p, "ps"]);
    let ps = text(&ps.stdout);
    assert!(
        ps.contains("bcp_web_1") && ps.contains("bcp_client_1"),
        "{ps}"
    );
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    let addr = ok(&s.docker(&[
        "exec",
        "bcp_web_1",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    assert!(addr.contains(&format!(" {base}.")), "{addr}");
    assert_eq!(ports_on(&bridge), 2, "both services on the {bridge} bridge");
    let vol = ok(&s.docker(&[
        "run",
        "--rm",
        "-v",
        "bcp_data:/d",
        "busybox",
        "cat",
        "/d/mark",
    ]));
    assert_eq!(vol, "started\n");
    let restart = s.compose(&proj, &["-p", p, "restart", "-t", "1", "web"]);
    assert!(restart.status.success(), "{}", text(&restart.stderr));
    s.until("web answers by name after its restart", || {
        fetch("web") == "hello compose\n"
    });
    assert!(http_get(port).is_some_and(|r| r.contains("hello compose")));

    let down = s.compose(&proj, &["-p", p, "down", "-v", "-t", "1"]);
    assert!(down.status.success(), "down: {}", text(&down.stderr));
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "");
    let nets = ok(&s.docker(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(!nets.contains("bcp_app"), "{nets}");
    assert!(!ok(&s.docker(&["volume", "ls", "-q"])).contains("bcp_data"));
    assert!(
        !Command::new("ip")
            .args(["link", "show", &bridge])
            .output()
            .unwrap()
            .status
            .success(),
        "the network's bridge is gone"
    );
    assert!(http_get(port).is_none());
}
