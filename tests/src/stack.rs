//! The berthd stack the API suite drives: its own berth-manager and berthd (socket and
//! daemon.json in a temp dir, a short state path), a loopback docker-registry, a bridge and
//! subnet of its own, the real clients pointed at it (docker CLI, docker-py,
//! docker-compose, berth); dropped, it kills its daemons and containers and removes its
//! cgroups, bridge and firewall rules.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::*;

pub fn append(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap()
}

pub struct Stack {
    pub dir: TempDir,
    /// The manager's --state: a short path, as 64-hex container ids make long socket paths
    /// (`tasks/<id>/shim.sock` must fit in 107 bytes).
    pub state: TempDir,
    pub children: Vec<Child>,
    pub registry: u16,
    pub _registry: Registry,
    /// berthd's --cgroup-parent: removed with everything below it on drop.
    pub cg: String,
}

impl Stack {
    pub fn new(tag: &str) -> Stack {
        Self::with_config(tag, r#"{"registry-fallback": false}"#)
    }

    /// A stack whose berthd reads `daemon_json`.
    pub fn with_config(tag: &str, daemon_json: &str) -> Stack {
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

    pub fn wait_for(p: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.exists() {
            assert!(Instant::now() < deadline, "{} did not appear", p.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn start_manager(&mut self) {
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
                .args(["--log-level", "info"])
                .stdout(Stdio::null())
                .stderr(append(&d.join("manager.log")))
                .spawn()
                .unwrap(),
        );
        Self::wait_for(&d.join("m.sock"));
    }

    pub fn start_berthd(&mut self) {
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
    pub fn kill9_daemons(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    /// The real docker CLI against berthd, with its own (empty) client config.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("docker")
            .args(args)
            .client_of(self)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn rootfs_tar(&self) -> PathBuf {
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
pub trait ClientOf {
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
        // A shim killed mid-create leaves its runtime running, and the container init it
        // makes joins the cgroups after a first sweep: sweep until the cgroups are gone,
        // killing what still names this stack's state directory (runtime and pre-start init).
        for _ in 0..10 {
            kill_processes_naming(self.state.path());
            kill_cgroup_tree(&self.cg);
            std::thread::sleep(Duration::from_millis(200));
            remove_cgroup_tree(&self.cg);
            if cgroup_dirs(&self.cg).iter().all(|d| !d.exists()) {
                break;
            }
        }
        self.remove_network();
    }
}

impl Stack {
    /// The first three octets of the stack's default bridge subnet (from daemon.json `bip`).
    pub fn subnet_prefix(&self) -> String {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("daemon.json")).unwrap())
                .unwrap();
        let bip = cfg["bip"].as_str().expect("a stack with a bip");
        bip.rsplit_once('.').unwrap().0.to_string()
    }

    /// Does a container on network `net` get an answer to one ping of `to`? (Ping: this
    /// busybox's `wget -T` crashes, which would pass for "unreachable".)
    pub fn reaches(&self, net: &str, to: &str) -> bool {
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
    pub fn bridge(&self) -> String {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("daemon.json")).unwrap())
                .unwrap();
        cfg["bridge"].as_str().unwrap().to_string()
    }

    /// What berthd leaves on the host on purpose (like docker0 and Docker's rules): the
    /// bridge and Berth's nftables table. The namespaces go with their mounts.
    pub fn remove_network(&self) {
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
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &format!("berth_{b}")])
                .stderr(Stdio::null())
                .status();
        }
        // The iptables backend's chains, and the jumps to them (IPv4 and IPv6).
        let chains = format!("BERTH-{b}-");
        for (tool, save) in [
            ("iptables", "iptables-save"),
            ("ip6tables", "ip6tables-save"),
        ] {
            for table in ["nat", "filter"] {
                let rules = Command::new(save)
                    .args(["-t", table])
                    .output()
                    .map(|o| text(&o.stdout))
                    .unwrap_or_default();
                for l in rules.lines() {
                    if let Some(rule) = l.strip_prefix("-A ").filter(|r| r.contains(&chains)) {
                        if !rule.starts_with(&chains) {
                            let _ = Command::new(tool)
                                .args(["-t", table, "-D"])
                                .args(rule.split_whitespace())
                                .status();
                        }
                    }
                }
                for l in rules.lines() {
                    if let Some(c) = l.strip_prefix(':').filter(|c| c.starts_with(&chains)) {
                        let c = c.split_whitespace().next().unwrap_or_default();
                        let _ = Command::new(tool).args(["-t", table, "-F", c]).status();
                        let _ = Command::new(tool).args(["-t", table, "-X", c]).status();
                    }
                }
            }
        }
    }
}

/// Drives a program on a pseudo-terminal (30 rows x 100 columns): sends each `|`-separated
/// piece of input 0.7 s apart, then prints what it read (repr) and its exit code.
pub const PTY_DRIVER: &str = r#"
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
    pub fn docker_tty(&self, input: &str, args: &[&str]) -> String {
        self.on_tty(input, Path::new("docker"), args)
    }

    /// `program` (docker or berth, pointed at this stack) on a terminal, fed `input`.
    pub fn on_tty(&self, input: &str, program: &Path, args: &[&str]) -> String {
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
    pub fn docker_in(&self, input: &str, args: &[&str]) -> Output {
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

    /// The docker CLI with the file at `input` as its stdin.
    pub fn docker_stdin_file(&self, input: &Path, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("120")
            .arg("docker")
            .args(args)
            .client_of(self)
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap()
    }

    /// A new stack with the busybox image imported.
    pub fn busybox(tag: &str) -> Stack {
        let s = Stack::new(tag);
        s.import_busybox();
        s
    }

    pub fn import_busybox(&self) {
        let tar = self.rootfs_tar().display().to_string();
        ok(&self.docker(&["import", "--change", "CMD [\"sh\"]", &tar, "busybox:latest"]));
    }

    pub fn until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Stack {
    /// Our own CLI against berthd.
    pub fn berth(&self, args: &[&str]) -> Output {
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

impl Stack {
    pub fn berth_tty(&self, input: &str, args: &[&str]) -> String {
        self.on_tty(input, &bin_dir().join("berth"), args)
    }
}

impl Stack {
    /// A raw API call with curl: (status, body).
    pub fn curl(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
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

impl Stack {
    /// `DOCKER_BUILDKIT=0 docker build <args>` in `ctx`.
    pub fn build(&self, ctx: &Path, args: &[&str]) -> Output {
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

pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Interfaces (`ip -o link show master BRIDGE`) on a bridge.
pub fn ports_on(bridge: &str) -> usize {
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

impl Stack {
    /// Debian's docker-compose (1.29, Python) against berthd, run by the system Python
    /// with the docker-py it was packaged with (a newer one from pip would break it).
    pub fn compose(&self, dir: &Path, args: &[&str]) -> Output {
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
