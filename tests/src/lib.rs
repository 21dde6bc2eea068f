//! Helpers for Berth's root-only end-to-end tests.
//!
//! Each test makes its own bundle (a busybox-static rootfs built at test time and a
//! `config.json` it edits as JSON), its own runtime `--root`, and unique container ids; a
//! [`Ctr`] guard force-deletes its container and a [`Bundle`] removes its files, even when the
//! test fails. [`Runtime`] runs one test body against berth-runtime, runc or crun.
//! [`stack::Stack`] is the whole daemon stack (berth-manager, berthd, a registry) the API
//! suite drives with the real clients.

pub mod stack;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

/// Is this a root-capable run? Prints why not and returns false; with BERTH_E2E=1 (CI) a
/// non-root run fails instead of skipping.
pub fn need_root(name: &str) -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("BERTH_E2E").as_deref() == Ok("1") {
        panic!("{name}: needs root, and BERTH_E2E=1 forbids skipping");
    }
    eprintln!("skipping {name}: needs root");
    false
}

/// Path of the workspace's `target/<profile>` directory holding our binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The static berth-init for `--init` tests (BERTH_INIT overrides; tests/run.sh builds it
/// with scripts/build-release.sh's flags into target/<host>/release).
pub fn static_init() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_INIT") {
        return PathBuf::from(p);
    }
    let target = bin_dir().parent().expect("target dir").to_path_buf();
    let found = std::fs::read_dir(&target)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("release/berth-init"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "no static berth-init under {}/<host>/release: run scripts/build-release.sh (or set BERTH_INIT)",
            target.display()
        )
    })
}

/// The berth-runtime binary under test (BERTH_RUNTIME overrides).
pub fn berth_runtime() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_RUNTIME") {
        return PathBuf::from(p);
    }
    let p = bin_dir().join("berth-runtime");
    assert!(
        p.exists(),
        "{} missing: run `cargo build` (or cargo test --workspace) first",
        p.display()
    );
    p
}

/// Is `prog` on PATH?
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unique container id with a readable prefix.
pub fn unique_id(tag: &str) -> String {
    format!(
        "berth-t{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A temporary directory removed (with any mounts under it lazily detached) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique_id(tag));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Never recurse into a live mount (it could be a snapshot of a running container).
        let mut under: Vec<String> = mounts_containing(&self.0.display().to_string())
            .into_iter()
            .filter(|m| Path::new(m).starts_with(&self.0))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kill what a test's berth-manager started under `tasks` (its `--state`/tasks): each shim
/// (checked by command line) and each container init whose root is inside `tasks` or is
/// `rootfs`. For Drop guards: a failing test leaves no processes behind.
pub fn kill_task_processes(tasks: &Path, rootfs: Option<&Path>) {
    let Ok(rd) = std::fs::read_dir(tasks) else {
        return;
    };
    let read_pid =
        |p: PathBuf| -> Option<i32> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let kill = |pid: i32| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    };
    for e in rd.flatten() {
        if let Some(pid) = read_pid(e.path().join("shim.pid")) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains("berth-shim") {
                kill(pid);
            }
        }
        if let Some(pid) = read_pid(e.path().join("init.pid")) {
            if let Ok(root) = std::fs::read_link(format!("/proc/{pid}/root")) {
                if root.starts_with(tasks) || Some(root.as_path()) == rootfs {
                    kill(pid);
                }
            }
        }
    }
}

/// Which runtime a test drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Berth,
    /// berth-runtime in a private mount namespace whose /sys/fs/cgroup is the cgroup2
    /// hierarchy alone: how a pure cgroup v2 host looks, on a hybrid test machine.
    BerthV2,
    Runc,
    Crun,
}

impl Runtime {
    /// The runtimes available on this machine (berth always).
    pub fn available() -> Vec<Runtime> {
        let mut v = vec![Runtime::Berth];
        if have("runc") {
            v.push(Runtime::Runc);
        }
        if have("crun") {
            v.push(Runtime::Crun);
        }
        v
    }

    /// A command running this runtime with `root` as its state directory.
    pub fn cmd(self, root: &Path) -> Command {
        match self {
            Runtime::Berth => {
                let mut c = Command::new(berth_runtime());
                c.arg("--root").arg(root);
                c
            }
            Runtime::BerthV2 => {
                let mut c = Command::new("unshare");
                c.args([
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup || exit 99; exec \"$0\" \"$@\"",
                ])
                .arg(berth_runtime())
                .arg("--root")
                .arg(root);
                c
            }
            Runtime::Runc => {
                let mut c = Command::new("runc");
                c.arg("--root").arg(root);
                c
            }
            Runtime::Crun => {
                // crun 1.8 refuses hybrid hosts: hide the unified mount in a private mount ns.
                let mut c = Command::new("unshare");
                let hybrid = Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
                let script = if hybrid {
                    "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\""
                } else {
                    "exec crun \"$@\""
                };
                c.args([
                    "-m",
                    "--propagation",
                    "unchanged",
                    "sh",
                    "-c",
                    script,
                    "crun",
                    "--root",
                ])
                .arg(root);
                c
            }
        }
    }
}

/// A bundle: busybox rootfs + config.json (edited as JSON before `write`).
pub struct Bundle {
    pub dir: TempDir,
    pub config: Value,
}

/// Build a busybox-static rootfs in `rootfs`.
pub fn make_rootfs(rootfs: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "mnt"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        if app != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// The config runc's `spec` writes, minus the terminal, with `args`.
pub fn base_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Bundle {
    /// A bundle running `args`.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = TempDir::new("bundle");
        make_rootfs(&dir.path().join("rootfs"));
        Bundle {
            dir,
            config: base_config(args),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    /// Write config.json.
    pub fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Set a value at a JSON pointer, creating objects on the way.
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        let mut cur = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur[*p] = v;
                break;
            }
            if cur.get(*p).is_none() {
                cur[*p] = json!({});
            }
            cur = cur.get_mut(*p).unwrap();
        }
        self
    }

    /// Append to an array at a JSON pointer.
    pub fn push(&mut self, pointer: &str, v: Value) -> &mut Self {
        self.config
            .pointer_mut(pointer)
            .and_then(Value::as_array_mut)
            .unwrap_or_else(|| panic!("{pointer} is not an array"))
            .push(v);
        self
    }
}

/// A container under test: deleted with --force on drop, its state root removed.
pub struct Ctr {
    pub rt: Runtime,
    pub id: String,
    pub root: TempDir,
}

impl Ctr {
    pub fn new(rt: Runtime, tag: &str) -> Ctr {
        Ctr {
            rt,
            id: unique_id(tag),
            root: TempDir::new("root"),
        }
    }

    /// The runtime command for this container's state root.
    pub fn cmd(&self) -> Command {
        self.rt.cmd(self.root.path())
    }

    /// Run `args` (the container id is not added) and return its output.
    pub fn raw(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn runtime")
    }

    /// `create` with the container's stdio sent to files in the bundle; returns the runtime's
    /// output (its own messages are in `stderr_of`).
    pub fn create(&self, b: &Bundle) -> std::process::ExitStatus {
        self.create_with(b, &[])
    }

    pub fn create_with(&self, b: &Bundle, extra: &[&str]) -> std::process::ExitStatus {
        b.write();
        let out = std::fs::File::create(b.path().join("ctr.out")).unwrap();
        let err = std::fs::File::create(b.path().join("ctr.err")).unwrap();
        self.cmd()
            .arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(b.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .expect("spawn runtime create")
    }

    /// `run` in the foreground; the container's output comes back.
    pub fn run(&self, b: &Bundle) -> Output {
        b.write();
        let o = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(b.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .expect("spawn runtime run");
        o
    }

    /// Run a verb on this container: `<verb> [args] <id> [after]`.
    pub fn verb(&self, verb: &str, args: &[&str], after: &[&str]) -> Output {
        self.cmd()
            .arg(verb)
            .args(args)
            .arg(&self.id)
            .args(after)
            .stdin(Stdio::null())
            .output()
            .expect("spawn runtime")
    }

    /// `exec <id> sh -c script`, returning the output.
    pub fn sh(&self, script: &str) -> Output {
        self.verb("exec", &[], &["sh", "-c", script])
    }

    /// The `state` JSON.
    pub fn state(&self) -> Value {
        let o = self.verb("state", &[], &[]);
        assert!(o.status.success(), "state failed: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("state is JSON")
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap_or("").to_string()
    }

    /// Wait until the status is `want` (up to 5s).
    pub fn wait_status(&self, want: &str) {
        for _ in 0..500 {
            if self.status() == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "container {} never became {want} (is {})",
            self.id,
            self.status()
        );
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Bytes as lossy text.
/// A command that failed with `want` in its stderr (what a refusal must look like).
pub fn refused(o: &Output, want: &str) {
    assert!(
        !o.status.success(),
        "accepted; wanted a refusal with {want:?}"
    );
    assert!(
        text(&o.stderr).contains(want),
        "wanted {want:?} in: {}",
        text(&o.stderr)
    );
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Stdout of a successful command, or panic with its stderr.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): stdout={} stderr={}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Cgroup directories named after `id` anywhere under /sys/fs/cgroup (should be none after
/// delete).
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in rd.flatten() {
        let p = h.path().join(id);
        if p.exists() {
            found.push(p);
        }
    }
    let p = Path::new("/sys/fs/cgroup").join(id);
    if p.exists() {
        found.push(p);
    }
    found
}

/// Mount points whose path contains `needle`.
pub fn mounts_containing(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The directories of cgroup `name` (relative to each hierarchy root) that exist.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut roots = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        roots.extend(rd.flatten().map(|e| e.path()));
    }
    roots
        .into_iter()
        .map(|r| r.join(name))
        .filter(|p| p.is_dir())
        .collect()
}

/// SIGKILL every process in cgroup `name` (and below) in every hierarchy: the last resort
/// of a test's cleanup, for containers a failed test left running.
pub fn kill_cgroup_tree(name: &str) {
    fn walk(p: &Path) {
        if let Ok(procs) = std::fs::read_to_string(p.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path());
                }
            }
        }
    }
    for p in cgroup_dirs(name) {
        walk(&p);
    }
}

/// SIGKILL every process whose command line names `dir` (a test's own state directory:
/// only what the test started can name it).
pub fn kill_processes_naming(dir: &Path) {
    // With its slash (or as a whole argument): /tmp/bs1-9 must not match /tmp/bs1-90.
    let path = dir.display().to_string();
    let inside = format!("{path}/");
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let names = cmd.split(|b| *b == 0).any(|arg| {
            let a = String::from_utf8_lossy(arg);
            a == path || a.contains(&inside)
        });
        if names {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Remove a cgroup directory tree named `name` (relative to each hierarchy root), children
/// first; cgroup files cannot be unlinked, only the directories removed.
pub fn remove_cgroup_tree(name: &str) {
    fn rm(p: &Path) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(p);
    }
    for p in cgroup_dirs(name) {
        rm(&p);
    }
}

/// The OCI JSON schemas and their validator (tests/schemas).
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Run `cmd` with `input` on its stdin; its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Validate `json` against the OCI runtime-spec `schema` (e.g. "config-schema.json");
/// panics with the validator's reasons.
pub fn validate_schema(schema: &str, json: &str) {
    let o = run_with_input(
        Command::new("python3")
            .arg(schema_dir().join("validate.py"))
            .arg(schema_dir().join("oci-runtime-spec"))
            .arg(schema),
        json.as_bytes(),
    );
    assert!(
        o.status.success(),
        "{schema}: {}{}\n{json}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry on 127.0.0.1:port, storage under `dir`, killed on drop.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    pub storage: PathBuf,
}

impl Registry {
    pub fn start(dir: &Path, auth: Option<(&str, &str)>) -> Registry {
        let port = free_port();
        let storage = dir.join(format!("registry-{port}"));
        std::fs::create_dir_all(&storage).unwrap();
        let mut cfg = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((u, p)) = auth {
            let o = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .unwrap();
            assert!(o.status.success(), "htpasswd: {}", text(&o.stderr));
            let file = storage.join("htpasswd");
            std::fs::write(&file, &o.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg_path = storage.join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(storage.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            storage,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's file for a blob (to corrupt it on purpose).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A static i386 (32-bit x86) ELF, made byte by byte (no 32-bit toolchain needed): writes
/// "ok\n" with `write` (int 0x80 number 4), then calls `keyctl(KEYCTL_GET_KEYRING_ID,
/// KEY_SPEC_SESSION_KEYRING)` (number 288) and exits 0 if that failed with EPERM (a seccomp
/// profile refused it, as Docker's default does), 1 if it succeeded.
pub fn i386_probe_elf() -> Vec<u8> {
    const BASE: u32 = 0x0804_8000;
    const HEADERS: u32 = 52 + 32;
    let code = |msg: u32| -> Vec<u8> {
        let mut c = vec![0xb8, 4, 0, 0, 0, 0xbb, 1, 0, 0, 0, 0xb9]; // eax=4 ebx=1 ecx=
        c.extend(msg.to_le_bytes());
        c.extend([0xba, 3, 0, 0, 0, 0xcd, 0x80]); // edx=3, int 0x80
        c.extend([0xb8, 0x20, 1, 0, 0, 0x31, 0xdb]); // eax=288 ebx=0
        c.extend([0xb9, 0xfd, 0xff, 0xff, 0xff, 0x31, 0xd2, 0xcd, 0x80]); // ecx=-3 edx=0 int
        c.extend([0x31, 0xdb, 0x83, 0xf8, 0xff, 0x74, 0x01, 0x43]); // ebx = (eax != -1)
        c.extend([0xb8, 1, 0, 0, 0, 0xcd, 0x80]); // exit(ebx)
        c
    };
    let len = code(0).len() as u32;
    let mut body = code(BASE + HEADERS + len);
    body.extend(b"ok\n");
    let total = HEADERS + body.len() as u32;
    let mut elf = b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    for h in [2u16, 3] {
        elf.extend(h.to_le_bytes()); // ET_EXEC, EM_386
    }
    for w in [1u32, BASE + HEADERS, 52, 0, 0] {
        elf.extend(w.to_le_bytes()); // version, entry, phoff, shoff, flags
    }
    for h in [52u16, 32, 1, 0, 0, 0] {
        elf.extend(h.to_le_bytes()); // ehsize, phentsize, phnum, sh*
    }
    for w in [1u32, 0, BASE, BASE, total, total, 5, 0x1000] {
        elf.extend(w.to_le_bytes()); // PT_LOAD of the whole file, R+X
    }
    elf.extend(body);
    elf
}
