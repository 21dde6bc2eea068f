//! Control groups for containers on cgroup v1, v2 and hybrid hosts.
//!
//! The host layout is detected once: pure v2 (`/sys/fs/cgroup` is cgroup2), or v1 with each
//! controller mounted under `/sys/fs/cgroup/<ctl>` and, on hybrid hosts, an empty v2 hierarchy
//! at `/sys/fs/cgroup/unified` that only tracks membership. A [`Cgroup`] is the set of
//! directories one container lives in; it applies `linux.resources`, moves processes, freezes,
//! reads statistics and removes itself.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use serde_json::{json, Value};

use crate::error::{Error, Result};

mod apply;

/// Which kind of host we are on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy only, mounted at this path.
    V2(PathBuf),
    /// Legacy controllers (name → mount point), plus the unified mount on hybrid hosts.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
    },
}

impl Layout {
    /// Detect the host's layout from /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        let root = Path::new("/sys/fs/cgroup");
        if let Ok(st) = nix::sys::statfs::statfs(root) {
            if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
                return Ok(Layout::V2(root.to_path_buf()));
            }
        }
        let info = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
        let mut controllers = BTreeMap::new();
        let mut unified = None;
        for line in info.lines() {
            // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut l = left.split(' ');
            let mountpoint = l.nth(4).unwrap_or_default();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let superopts = r.nth(1).unwrap_or_default();
            match fstype {
                "cgroup2" if unified.is_none() => {
                    unified = Some(PathBuf::from(unescape(mountpoint)));
                }
                "cgroup" => {
                    for opt in superopts.split(',') {
                        let name = match opt {
                            "rw" | "ro" | "relatime" | "noexec" | "nosuid" | "nodev"
                            | "clone_children" | "xattr" => continue,
                            o if o.starts_with("release_agent=") => continue,
                            o => o,
                        };
                        controllers
                            .entry(name.to_string())
                            .or_insert_with(|| PathBuf::from(unescape(mountpoint)));
                    }
                }
                _ => {}
            }
        }
        if controllers.is_empty() {
            if let Some(u) = unified {
                return Ok(Layout::V2(u));
            }
            return Err(Error::cgroup(
                "/sys/fs/cgroup",
                "no cgroup file system is mounted",
                None,
            ));
        }
        Ok(Layout::V1 {
            controllers,
            unified,
        })
    }

    /// Short name for messages and `features`.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::V2(_) => "v2",
            Layout::V1 {
                unified: Some(_), ..
            } => "hybrid",
            Layout::V1 { .. } => "v1",
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

/// The cgroup directories of one container.
#[derive(Clone, Debug)]
pub struct Cgroup {
    /// (controller, directory) for v1; ("", directory) for the v2/unified one.
    pub dirs: Vec<(String, PathBuf)>,
    pub v2: bool,
}

/// Resolve a spec `cgroupsPath` (absolute, or relative to our own cgroup) for a container.
fn relative_path(cgroups_path: Option<&Path>, id: &str, own: &str) -> PathBuf {
    // An empty cgroupsPath is no cgroupsPath: the default, never our own cgroup (whose
    // processes a `delete --force` would then kill).
    let cgroups_path = cgroups_path.filter(|p| !p.as_os_str().is_empty());
    match cgroups_path {
        Some(p) if p.is_absolute() => p.strip_prefix("/").unwrap_or(p).to_path_buf(),
        Some(p) => Path::new(own.trim_start_matches('/')).join(p),
        None => PathBuf::from(id),
    }
}

/// Our own cgroup in each hierarchy, from /proc/self/cgroup (key "" for v2).
fn own_cgroups() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
    {
        let mut parts = line.splitn(3, ':');
        let (_, ctls, path) = (parts.next(), parts.next(), parts.next());
        let (Some(ctls), Some(path)) = (ctls, path) else {
            continue;
        };
        for c in ctls.split(',') {
            out.insert(c.trim_start_matches("name=").to_string(), path.to_string());
        }
        if ctls.is_empty() {
            out.insert(String::new(), path.to_string());
        }
    }
    out
}

impl Cgroup {
    /// Whether `cgroups_path` resolves to a hierarchy's root (a container there would
    /// share its cgroup with every process of the host).
    pub fn at_root(layout: &Layout, cgroups_path: Option<&Path>, id: &str) -> bool {
        let own = own_cgroups();
        let keys: Vec<&str> = match layout {
            Layout::V2(_) => vec![""],
            Layout::V1 { controllers, .. } => controllers.keys().map(String::as_str).collect(),
        };
        keys.iter().any(|k| {
            relative_path(cgroups_path, id, own.get(*k).map_or("/", |s| s))
                .as_os_str()
                .is_empty()
        })
    }

    /// Where a container's cgroups are (not created).
    pub fn locate(layout: &Layout, cgroups_path: Option<&Path>, id: &str) -> Cgroup {
        let own = own_cgroups();
        let mut dirs = Vec::new();
        match layout {
            Layout::V2(root) => {
                let rel = relative_path(cgroups_path, id, own.get("").map_or("/", |s| s));
                dirs.push((String::new(), root.join(rel)));
                Cgroup { dirs, v2: true }
            }
            Layout::V1 {
                controllers,
                unified,
            } => {
                let mut seen = std::collections::HashSet::new();
                for (name, mount) in controllers {
                    let rel =
                        relative_path(cgroups_path, id, own.get(name.as_str()).map_or("/", |s| s));
                    let dir = mount.join(rel);
                    if seen.insert(dir.clone()) {
                        dirs.push((name.clone(), dir));
                    }
                }
                if let Some(u) = unified {
                    let rel = relative_path(cgroups_path, id, own.get("").map_or("/", |s| s));
                    dirs.push((String::new(), u.join(rel)));
                }
                Cgroup { dirs, v2: false }
            }
        }
    }

    /// The cgroups a running process is in (from `/proc/<pid>/cgroup`), in the host's
    /// hierarchies: how a shim finds a container's cgroups whatever runtime made them.
    pub fn of_pid(layout: &Layout, pid: i32) -> Result<Cgroup> {
        let file = format!("/proc/{pid}/cgroup");
        let text = fs::read_to_string(&file).map_err(|e| Error::io("read", &file, e))?;
        let mut dirs = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            match layout {
                Layout::V2(root) if ctls.is_empty() => {
                    return Ok(Cgroup {
                        dirs: vec![(String::new(), root.join(rel))],
                        v2: true,
                    });
                }
                Layout::V2(_) => {}
                Layout::V1 {
                    controllers,
                    unified,
                } => {
                    if ctls.is_empty() {
                        if let Some(u) = unified {
                            dirs.push((String::new(), u.join(rel)));
                        }
                        continue;
                    }
                    for c in ctls.split(',') {
                        let c = c.trim_start_matches("name=");
                        if let Some(mount) = controllers.get(c) {
                            dirs.push((c.to_string(), mount.join(rel)));
                        }
                    }
                }
            }
        }
        Ok(Cgroup {
            v2: matches!(layout, Layout::V2(_)),
            dirs,
        })
    }

    /// Rebuild from paths remembered in the state file.
    pub fn from_paths(paths: &[PathBuf]) -> Cgroup {
        let v2 = paths.len() == 1 && is_cgroup2(&paths[0]);
        let dirs = paths
            .iter()
            .map(|p| {
                let name = if is_cgroup2(p) {
                    String::new()
                } else {
                    controller_of(p)
                };
                (name, p.clone())
            })
            .collect();
        Cgroup { dirs, v2 }
    }

    /// The directories, for the state file.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, p)| p.clone()).collect()
    }

    fn dir(&self, ctl: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(n, _)| n == ctl)
            .map(|(_, p)| p.as_path())
    }

    /// The v2 (or hybrid unified) directory.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.dir("")
    }

    /// Create every directory (parents included), preparing cpuset and v2 controllers.
    /// The parent directories that do not exist yet (the `a/b` of a `cgroupsPath` of
    /// `a/b/leaf`): what [`Cgroup::create`] will make besides the leaves, for
    /// [`remove_parents`] to take away again.
    pub fn missing_parents(&self) -> Vec<PathBuf> {
        let mut made = Vec::new();
        for (_, dir) in &self.dirs {
            let mut p = dir.parent();
            while let Some(d) = p {
                if d.exists() {
                    break;
                }
                made.push(d.to_path_buf());
                p = d.parent();
            }
        }
        made
    }

    /// Create every directory.
    pub fn create(&self) -> Result<()> {
        self.create_dirs()
    }

    fn create_dirs(&self) -> Result<()> {
        for (ctl, dir) in &self.dirs {
            if ctl == "cpuset" {
                create_cpuset(dir)?;
            } else if ctl.is_empty() && self.v2 {
                create_v2(dir)?;
            } else {
                fs::create_dir_all(dir).map_err(|e| Error::cgroup(dir, "create", Some(e)))?;
            }
        }
        Ok(())
    }

    /// Move `pid` into every directory.
    pub fn add(&self, pid: i32) -> Result<()> {
        for (_, dir) in &self.dirs {
            write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Add `pid` to the hierarchies `which` selects (by controller name, "" = unified).
    pub fn add_where(&self, pid: i32, which: impl Fn(&str) -> bool) -> Result<()> {
        for (ctl, dir) in &self.dirs {
            if which(ctl) {
                write(dir, "cgroup.procs", &pid.to_string())?;
            }
        }
        Ok(())
    }

    /// Pids in the container (from the first hierarchy that lists any).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut best = Vec::new();
        for (_, dir) in &self.dirs {
            let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) else {
                continue;
            };
            let pids: Vec<i32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if pids.len() > best.len() {
                best = pids;
            }
        }
        Ok(best)
    }

    /// Remove the directories, waiting briefly for exiting processes to leave them.
    pub fn destroy(&self) -> Result<()> {
        for (_, dir) in self.dirs.iter().rev() {
            let mut tries = 0;
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    // Busy until the last exiting process has left: usually well under a
                    // millisecond, so poll finely (up to a second in all).
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 2000 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_micros(500));
                    }
                    Err(e) => return Err(Error::cgroup(dir, "remove", Some(e))),
                }
            }
        }
        Ok(())
    }

    /// Freeze (pause) or thaw (resume) every process, waiting until the kernel confirms.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        if let Some(dir) = self.dir("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            for _ in 0..2000 {
                write(dir, "freezer.state", want)?;
                let now = read(dir, "freezer.state")?;
                if now.trim() == want {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::cgroup(dir, format!("did not become {want}"), None));
        }
        if let Some(dir) = self.unified_dir() {
            write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
            for _ in 0..2000 {
                let ev = read(dir, "cgroup.events")?;
                let is = ev.lines().any(|l| l == "frozen 1");
                if is == frozen {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::cgroup(dir, "freeze did not settle", None));
        }
        Err(Error::Unsupported("pause without a freezer cgroup".into()))
    }

    /// Is the container frozen?
    pub fn frozen(&self) -> bool {
        if let Some(dir) = self.dir("freezer") {
            return read(dir, "freezer.state").is_ok_and(|s| s.trim() == "FROZEN");
        }
        if let Some(dir) = self.unified_dir() {
            return read(dir, "cgroup.freeze").is_ok_and(|s| s.trim() == "1");
        }
        false
    }

    /// Where the memory controller reports OOM kills: the v1 memory directory (`false`), or
    /// the v2 directory with `memory.events` (`true`). None without a memory controller.
    pub fn memory_dir(&self) -> Option<(&Path, bool)> {
        if let Some(dir) = self.dir("memory") {
            return Some((dir, false));
        }
        if self.v2 {
            return self.unified_dir().map(|d| (d, true));
        }
        None
    }

    /// How many times the OOM killer fired in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let from = |text: String, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
                .unwrap_or(0)
        };
        if let Some(dir) = self.dir("memory") {
            return from(
                read(dir, "memory.oom_control").unwrap_or_default(),
                "oom_kill ",
            );
        }
        if self.v2 {
            if let Some(dir) = self.unified_dir() {
                return from(read(dir, "memory.events").unwrap_or_default(), "oom_kill ");
            }
        }
        0
    }

    /// Statistics in the shape `runc events --stats` prints under `data`.
    pub fn stats(&self) -> Value {
        let mut data = json!({
            "cpu": {"usage": {}, "throttling": {}},
            "memory": {"usage": {}, "swap": {}, "kernel": {}, "kernelTCP": {}, "raw": {}},
            "pids": {},
            "blkio": {},
            "hugetlb": {},
            "intel_rdt": {},
            "network_interfaces": null,
        });
        if self.v2 {
            let dir = self.unified_dir().expect("v2 dir");
            let cpu = kv(&read(dir, "cpu.stat").unwrap_or_default());
            data["cpu"]["usage"] = json!({
                "total": cpu.get("usage_usec").copied().unwrap_or(0) * 1000,
                "kernel": cpu.get("system_usec").copied().unwrap_or(0) * 1000,
                "user": cpu.get("user_usec").copied().unwrap_or(0) * 1000,
            });
            data["cpu"]["throttling"] = json!({
                "periods": cpu.get("nr_periods").copied().unwrap_or(0),
                "throttled_periods": cpu.get("nr_throttled").copied().unwrap_or(0),
                "throttled_time": cpu.get("throttled_usec").copied().unwrap_or(0) * 1000,
            });
            data["memory"]["usage"] = json!({
                "usage": num(dir, "memory.current"),
                "max": num(dir, "memory.peak"),
                "limit": limit_num(dir, "memory.max"),
            });
            data["memory"]["swap"] = json!({
                "usage": num(dir, "memory.swap.current"),
                "limit": limit_num(dir, "memory.swap.max"),
            });
            data["memory"]["raw"] = json!(kv(&read(dir, "memory.stat").unwrap_or_default()));
            data["pids"] =
                json!({"current": num(dir, "pids.current"), "limit": limit_num(dir, "pids.max")});
        } else {
            if let Some(dir) = self.dir("cpuacct") {
                let percpu: Vec<u64> = read(dir, "cpuacct.usage_percpu")
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                let st = kv(&read(dir, "cpuacct.stat").unwrap_or_default());
                // cpuacct.stat is in USER_HZ ticks; runc reports nanoseconds.
                let tick = 10_000_000u64;
                data["cpu"]["usage"] = json!({
                    "total": num(dir, "cpuacct.usage"),
                    "percpu": percpu,
                    "kernel": st.get("system").copied().unwrap_or(0) * tick,
                    "user": st.get("user").copied().unwrap_or(0) * tick,
                });
            }
            if let Some(dir) = self.dir("cpu") {
                let st = kv(&read(dir, "cpu.stat").unwrap_or_default());
                data["cpu"]["throttling"] = json!({
                    "periods": st.get("nr_periods").copied().unwrap_or(0),
                    "throttled_periods": st.get("nr_throttled").copied().unwrap_or(0),
                    "throttled_time": st.get("throttled_time").copied().unwrap_or(0),
                });
            }
            if let Some(dir) = self.dir("memory") {
                let entry = |p: &str| {
                    json!({
                        "usage": num(dir, &format!("{p}usage_in_bytes")),
                        "max": num(dir, &format!("{p}max_usage_in_bytes")),
                        "failcnt": num(dir, &format!("{p}failcnt")),
                        "limit": num(dir, &format!("{p}limit_in_bytes")),
                    })
                };
                data["memory"]["usage"] = entry("memory.");
                data["memory"]["swap"] = entry("memory.memsw.");
                data["memory"]["kernel"] = entry("memory.kmem.");
                data["memory"]["kernelTCP"] = entry("memory.kmem.tcp.");
                data["memory"]["raw"] = json!(kv(&read(dir, "memory.stat").unwrap_or_default()));
            }
            if let Some(dir) = self.dir("pids") {
                data["pids"] = json!({"current": num(dir, "pids.current"), "limit": limit_num(dir, "pids.max")});
            }
        }
        data
    }
}

/// Remove parent directories [`Cgroup::create`] made, deepest first; one still in use (another
/// container's cgroup below it) stays.
pub fn remove_parents(made: &[PathBuf]) {
    let mut v: Vec<&PathBuf> = made.iter().collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in v {
        let _ = fs::remove_dir(d);
    }
}

fn kv(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn limit_num(dir: &Path, file: &str) -> u64 {
    match read(dir, file) {
        Ok(s) if s.trim() == "max" => 0,
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142
}

fn is_cgroup2(p: &Path) -> bool {
    p.ancestors()
        .filter_map(|a| nix::sys::statfs::statfs(a).ok())
        .next()
        .is_some_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

fn controller_of(p: &Path) -> String {
    // /sys/fs/cgroup/<controller>/...
    p.strip_prefix("/sys/fs/cgroup")
        .ok()
        .and_then(|r| r.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    fs::read_to_string(&p).map_err(|e| Error::cgroup(p, "read", Some(e)))
}

/// Move the calling thread into the legacy (v1) hierarchies among `dirs` by writing "0" to
/// their `tasks` files. A thread moving itself is the one migration the kernel does without
/// write-locking its global threadgroup semaphore, whose first write-lock waits an RCU grace
/// period: `cgroup.procs` written with another process's pid cost 3–25 ms here, this costs
/// microseconds. Only right for a single-threaded caller (its one thread is the process).
pub fn join_self_v1(dirs: &[(String, PathBuf)]) -> Result<()> {
    for (ctl, dir) in dirs {
        if !ctl.is_empty() {
            write(dir, "tasks", "0")?;
        }
    }
    Ok(())
}

/// Write a cgroup file that must exist: opened without O_CREAT, so a file the kernel does
/// not have is reported as missing (ENOENT), not as kernfs's "Permission denied".
fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    use std::io::Write;
    let p = dir.join(file);
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| Error::cgroup(p, format!("write {value:?}"), Some(e)))
}

fn create_cpuset(dir: &Path) -> Result<()> {
    // A new v1 cpuset has empty cpus/mems: copy the parent's down every new level.
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        cur = match cur.parent() {
            Some(p) => p,
            None => break,
        };
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::cgroup(d, "create", Some(e))),
        }
        let parent = d.parent().expect("cpuset dir has a parent");
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if read(d, f)?.trim().is_empty() {
                write(d, f, read(parent, f)?.trim())?;
            }
        }
    }
    Ok(())
}

fn create_v2(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::cgroup(dir, "create", Some(e)))?;
    // Enable every available controller down the path so the leaf can be limited.
    let mut chain: Vec<&Path> = dir.ancestors().skip(1).collect();
    chain.reverse();
    for p in chain {
        if !p.join("cgroup.subtree_control").exists() {
            continue;
        }
        let avail = read(p, "cgroup.controllers").unwrap_or_default();
        let want: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
        if !want.is_empty() {
            // Best effort: a controller busy elsewhere must not stop the container.
            let _ = write(p, "cgroup.subtree_control", &want.join(" "));
        }
    }
    Ok(())
}

fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let t = match rule.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        _ => "a",
    };
    let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
    if t == "a" && rule.major().is_none() && rule.minor().is_none() {
        return "a".into();
    }
    format!("{t} {}:{} {access}", n(rule.major()), n(rule.minor()))
}

/// Devices every container may use, as runc allows them (null, zero, full, tty, random,
/// urandom, ptmx, pts/*).
pub fn default_allowed() -> Vec<LinuxDeviceCgroup> {
    let c = |maj: i64, min: Option<i64>| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(LinuxDeviceType::C));
        d.set_major(Some(maj));
        d.set_minor(min);
        d.set_access(Some("rwm".into()));
        d
    };
    vec![
        c(1, Some(3)),
        c(1, Some(5)),
        c(1, Some(7)),
        c(5, Some(0)),
        c(1, Some(8)),
        c(1, Some(9)),
        c(5, Some(2)),
        c(136, None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("berth-cg-unit-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn res(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn get(dir: &Path, f: &str) -> String {
        fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    /// The files a cgroup directory has (writes never create files: a missing one is ENOENT).
    fn touch(dir: &Path, files: &[&str]) {
        for f in files {
            fs::write(dir.join(f), "").unwrap();
        }
    }

    /// v2 writes, checked in a plain directory standing in for the cgroup (no root needed).
    #[test]
    fn v2_files_and_conversions() {
        let d = scratch("v2");
        touch(
            &d,
            &[
                "memory.max",
                "memory.low",
                "memory.swap.max",
                "memory.high",
                "cpu.weight",
                "cpu.max",
                "cpuset.cpus",
                "cpuset.mems",
                "pids.max",
                "io.weight",
                "io.max",
                "hugetlb.2MB.max",
            ],
        );
        let cg = Cgroup {
            dirs: vec![(String::new(), d.clone())],
            v2: true,
        };
        cg.apply(
            &res(json!({
                "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
                "pids": {"limit": 0},
                "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
                "unified": {"memory.high": "90000000"}
            })),
            &[],
        )
        .unwrap();
        assert_eq!(get(&d, "memory.max"), "104857600");
        assert_eq!(get(&d, "memory.low"), "52428800");
        assert_eq!(
            get(&d, "memory.swap.max"),
            "104857600",
            "v2 swap excludes memory"
        );
        assert_eq!(get(&d, "cpu.weight"), "39");
        assert_eq!(get(&d, "cpu.max"), "50000 100000");
        assert_eq!(get(&d, "cpuset.cpus"), "0-1");
        assert_eq!(get(&d, "pids.max"), "max");
        // runc's conversion: 1 + (w - 10) * 9999 / 990.
        assert_eq!(get(&d, "io.weight"), "default 4950");
        assert_eq!(get(&d, "io.max"), "8:0 rbps=1048576");
        assert_eq!(get(&d, "hugetlb.2MB.max"), "4194304");
        assert_eq!(get(&d, "memory.high"), "90000000");
        // Keys that would escape the directory or touch core files are refused.
        let bad = cg.apply(&res(json!({"unified": {"../x": "1"}})), &[]);
        assert!(bad.is_err());
        let _ = fs::remove_dir_all(&d);
    }

    /// v1 writes go to each controller's directory; a missing controller is a clear error.
    #[test]
    fn v1_files_per_controller() {
        let base = scratch("v1");
        let mut dirs = Vec::new();
        for c in ["memory", "cpu", "cpuset", "pids", "blkio", "devices"] {
            fs::create_dir_all(base.join(c)).unwrap();
            dirs.push((c.to_string(), base.join(c)));
        }
        touch(
            &base.join("memory"),
            &[
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.swappiness",
            ],
        );
        touch(
            &base.join("cpu"),
            &["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
        );
        touch(&base.join("cpuset"), &["cpuset.cpus"]);
        touch(&base.join("pids"), &["pids.max"]);
        touch(&base.join("devices"), &["devices.allow", "devices.deny"]);
        let cg = Cgroup { dirs, v2: false };
        cg.apply(
            &res(json!({
                "memory": {"limit": 104857600, "swap": 209715200, "swappiness": 10},
                "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0"},
                "pids": {"limit": 64},
                "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}]
            })),
            &[],
        )
        .unwrap();
        assert_eq!(
            get(&base.join("memory"), "memory.limit_in_bytes"),
            "104857600"
        );
        assert_eq!(
            get(&base.join("memory"), "memory.memsw.limit_in_bytes"),
            "209715200"
        );
        assert_eq!(get(&base.join("memory"), "memory.swappiness"), "10");
        assert_eq!(get(&base.join("cpu"), "cpu.shares"), "512");
        assert_eq!(get(&base.join("cpu"), "cpu.cfs_period_us"), "50000");
        assert_eq!(get(&base.join("cpu"), "cpu.cfs_quota_us"), "20000");
        assert_eq!(get(&base.join("pids"), "pids.max"), "64");
        // A plain file keeps only the last write: the default allow list ends with pts.
        assert_eq!(get(&base.join("devices"), "devices.allow"), "c 136:* rwm");
        let err = cg.apply(
            &res(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})),
            &[],
        );
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("hugetlb controller is not available"));
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(1024), 39);
    }

    #[test]
    fn relative_and_absolute_paths() {
        assert_eq!(
            relative_path(Some(Path::new("/a/b")), "x", "/own"),
            PathBuf::from("a/b")
        );
        assert_eq!(
            relative_path(Some(Path::new("a/b")), "x", "/own"),
            PathBuf::from("own/a/b")
        );
        assert_eq!(relative_path(None, "x", "/own"), PathBuf::from("x"));
    }

    #[test]
    fn device_rules_format() {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(false);
        assert_eq!(device_rule(&d), "a");
        assert_eq!(device_rule(&default_allowed()[0]), "c 1:3 rwm");
        assert_eq!(device_rule(&default_allowed()[7]), "c 136:* rwm");
    }
}
