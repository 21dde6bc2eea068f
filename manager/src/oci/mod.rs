//! Image config + container options → a complete OCI runtime config with Docker's defaults:
//! the default capability set, masked and read-only paths, the default mounts and devices, a
//! seccomp profile equivalent to Docker's, PATH/HOSTNAME/TERM/HOME in the environment, and the
//! user resolved from the rootfs's `/etc/passwd` and `/etc/group`.
//!
//! Composable: [`generate`] applies small `with_*` steps in order, each a plain function on
//! the JSON spec, so callers (the daemon) can add their own.

pub mod devices;
pub mod seccomp;
use berth_fstree::users;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability this kernel generation knows (for `privileged` and "ALL").
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What an image says about how to run it (OCI image config `config`).
#[derive(Clone, Debug, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: String,
    pub volumes: Vec<String>,
}

/// How a namespace is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NsMode {
    /// A new namespace (the default).
    #[default]
    Private,
    /// The host's (no namespace entry).
    Host,
    /// Join an existing one by path (e.g. /proc/123/ns/net or a bind-mounted netns).
    Path(String),
}

/// A mount requested by the user (`-v`, `--mount`, `--tmpfs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOpt {
    pub source: String,
    pub destination: String,
    /// "bind" or "tmpfs".
    pub kind: String,
    pub read_only: bool,
    /// Extra options (e.g. "size=64m", "rprivate").
    pub options: Vec<String>,
}

/// A resource limit (`--ulimit nofile=1024:2048`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Docker-style container options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Replaces the image's Cmd (and, with `entrypoint`, the Entrypoint).
    pub args: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// KEY=VALUE, overriding the image's by key.
    pub env: Vec<String>,
    pub tty: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    pub mounts: Vec<MountOpt>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub read_only: bool,
    pub no_new_privileges: bool,
    /// No seccomp filter (`--security-opt seccomp=unconfined`).
    pub seccomp_unconfined: bool,
    pub network: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub uts: NsMode,
    /// A private cgroup namespace (Docker's default on cgroup v2 hosts).
    pub cgroupns_private: bool,
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    /// --tmpfs PATH[:OPTIONS]
    pub tmpfs: BTreeMap<String, String>,
    /// linux.cgroupsPath; default "/berth/<id>".
    pub cgroups_path: Option<String>,
    /// A Docker-format seccomp profile (`--security-opt seccomp=<json>`) instead of the
    /// default one.
    pub seccomp_profile: Option<Value>,
    /// process.apparmorProfile.
    pub apparmor: Option<String>,
    /// `--device`: host devices made in the container, with their cgroup permissions.
    pub devices: Vec<DeviceOpt>,
    /// `--device-cgroup-rule` ("c 1:3 rwm", "a *:* m").
    pub device_rules: Vec<String>,
    /// `--group-add`: group names (resolved in the rootfs) or numbers.
    pub group_add: Vec<String>,
    pub oom_score_adj: Option<i64>,
    /// Replace the default masked and read-only paths (`systempaths=unconfined` empties
    /// both).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub annotations: BTreeMap<String, String>,
    pub domainname: Option<String>,
    pub memory_reservation: Option<i64>,
    pub memory_swappiness: Option<u64>,
    pub oom_kill_disable: bool,
    pub kernel_memory_tcp: Option<i64>,
    pub cpuset_mems: Option<String>,
    /// linux.resources.blockIO, as the spec has it.
    pub block_io: Option<Value>,
    /// [height, width] of the console.
    pub console_size: Option<(u64, u64)>,
    /// The size of /dev/shm in bytes (default 64 MiB).
    pub shm_size: Option<u64>,
    /// Where /dev/shm comes from: its own tmpfs (default), a host directory bound in
    /// (shared IPC), or none at all (`--ipc none`).
    pub shm: Shm,
    /// `--init`: this init binary (on the host) runs as pid 1, the command under it.
    pub init: Option<String>,
}

/// Where a container's /dev/shm comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Shm {
    #[default]
    Private,
    /// Bind this host directory (a tmpfs the caller mounted, or the host's /dev/shm).
    Bind(String),
    None,
}

/// A host device to make in the container (`--device SRC[:DST[:PERMS]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOpt {
    pub host_path: String,
    /// Empty: the same path as on the host.
    pub container_path: String,
    /// Any of "rwm"; empty means "rwm".
    pub permissions: String,
}

/// Where `--init`'s binary is mounted, as Docker mounts docker-init.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// Errors name the offending input.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("no command: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    /// The generated document is not a valid OCI spec (a bug of ours, named).
    #[error("the generated spec is not valid: {0}")]
    NotASpec(String),
    #[error("user {user:?}: {message}")]
    User { user: String, message: String },
    #[error("capability {0:?} is not known")]
    UnknownCap(String),
    #[error("environment entry {0:?} is not KEY=VALUE")]
    BadEnv(String),
    #[error("mount {0:?}: destination must be an absolute path")]
    BadMount(String),
    #[error("ulimit {0:?} is not a known resource")]
    BadUlimit(String),
    #[error("{0}")]
    Device(String),
    #[error("seccomp profile: {0}")]
    Seccomp(String),
}

/// Build the spec for container `id` with root filesystem `rootfs` (read for /etc/passwd).
pub fn generate(
    id: &str,
    rootfs: &Path,
    image: &ImageConfig,
    opts: &Options,
) -> Result<oci_spec::runtime::Spec, Error> {
    let doc = generate_json(id, rootfs, image, opts)?;
    serde_json::from_value(doc).map_err(|e| Error::NotASpec(e.to_string()))
}

/// The spec as a JSON document, section by section.
fn generate_json(
    id: &str,
    rootfs: &Path,
    image: &ImageConfig,
    opts: &Options,
) -> Result<Value, Error> {
    let mut spec = base(id, rootfs, opts);
    with_process(&mut spec, rootfs, image, opts)?;
    with_capabilities(&mut spec, opts)?;
    with_mounts(&mut spec, image, opts)?;
    with_namespaces(&mut spec, opts);
    with_resources(&mut spec, opts);
    devices::with_devices(&mut spec, opts)?;
    with_security(&mut spec, opts)?;
    with_ulimits(&mut spec, opts)?;
    with_extras(&mut spec, opts);
    Ok(spec)
}

fn base(id: &str, rootfs: &Path, opts: &Options) -> Value {
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id.chars().take(12).collect());
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs.display().to_string(), "readonly": opts.read_only},
        "hostname": hostname,
        "process": {},
        "mounts": [],
        "linux": {
            "cgroupsPath": opts.cgroups_path.clone().unwrap_or_else(|| format!("/berth/{id}")),
            "namespaces": [],
            // Docker's: nothing but making nodes (mknod) of any char or block device; the
            // runtime adds the default devices (null, zero, tty…) to these.
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "access": "m"},
                {"allow": true, "type": "b", "access": "m"},
            ]},
            "maskedPaths": [],
            "readonlyPaths": [],
        },
    })
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Merge KEY=VALUE lists; later entries replace earlier ones with the same key, keeping order.
fn merge_env(lists: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        for e in list.iter() {
            match out.iter_mut().find(|x| env_key(x) == env_key(e)) {
                Some(x) => *x = e.clone(),
                None => out.push(e.clone()),
            }
        }
    }
    out
}

pub fn with_process(
    spec: &mut Value,
    rootfs: &Path,
    image: &ImageConfig,
    opts: &Options,
) -> Result<(), Error> {
    for e in &opts.env {
        if e.starts_with('=') || e.is_empty() {
            return Err(Error::BadEnv(e.clone()));
        }
    }
    // `NAME` without a value (docker-py sends these) names nothing to set, as in Docker.
    let given: Vec<String> = opts
        .env
        .iter()
        .filter(|e| e.contains('='))
        .cloned()
        .collect();
    let entrypoint = opts
        .entrypoint
        .clone()
        .unwrap_or_else(|| image.entrypoint.clone());
    let cmd = match (&opts.args, &opts.entrypoint) {
        (Some(a), _) => a.clone(),
        // A new entrypoint drops the image's Cmd, as Docker does.
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone(),
    };
    let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand);
    }
    if opts.init.is_some() {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let user = opts.user.clone().unwrap_or_else(|| image.user.clone());
    let ident = users::resolve(
        &user,
        &users::read_in_root(rootfs, "/etc/passwd"),
        &users::read_in_root(rootfs, "/etc/group"),
    )
    .map_err(|message| Error::User {
        user: user.clone(),
        message,
    })?;
    let hostname = spec["hostname"].as_str().unwrap_or_default().to_string();
    let mut defaults = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if opts.tty {
        defaults.push("TERM=xterm".into());
    }
    let mut env = merge_env(&[&defaults, &image.env, &given]);
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={}", ident.home));
    }
    let cwd = opts
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| image.working_dir.clone());
    let cwd = if cwd.is_empty() { "/".to_string() } else { cwd };
    let mut gids = ident.additional_gids.clone();
    if !opts.group_add.is_empty() {
        let groups = users::read_in_root(rootfs, "/etc/group");
        for g in &opts.group_add {
            let n = users::group_id(g, &groups).map_err(|message| Error::User {
                user: format!("--group-add {g}"),
                message,
            })?;
            if !gids.contains(&n) {
                gids.push(n);
            }
        }
    }
    let mut user_json = json!({"uid": ident.uid, "gid": ident.gid});
    if !gids.is_empty() {
        user_json["additionalGids"] = json!(gids);
    }
    spec["process"] = json!({
        "terminal": opts.tty,
        "user": user_json,
        "args": args,
        "env": env,
        "cwd": cwd,
        "noNewPrivileges": opts.no_new_privileges,
    });
    Ok(())
}

fn norm_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capabilities in `bounding` (the kernel's bit mask, capability n = bit n), by name.
fn caps_in_mask(bounding: u64) -> Vec<String> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// "Every capability" for `--privileged` and `--cap-add ALL`: those in our own bounding set,
/// as podman does. Where the engine itself lacks one (this host's root has no
/// CAP_SYS_RESOURCE, say), asking the runtime for it could only fail the container.
pub fn all_capabilities() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    caps_in_mask(bounding)
}

pub fn with_capabilities(spec: &mut Value, opts: &Options) -> Result<(), Error> {
    let mut caps: Vec<String> = if opts.privileged {
        all_capabilities()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    let known = |c: &str| c == "CAP_ALL" || ALL_CAPS.contains(&c);
    for c in &opts.cap_add {
        let c = norm_cap(c);
        if !known(&c) {
            return Err(Error::UnknownCap(c));
        }
        if c == "CAP_ALL" {
            caps = all_capabilities();
        } else if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in &opts.cap_drop {
        let c = norm_cap(c);
        if !known(&c) {
            return Err(Error::UnknownCap(c));
        }
        if c == "CAP_ALL" {
            caps.clear();
        } else {
            caps.retain(|x| *x != c);
        }
    }
    spec["process"]["capabilities"] = json!({
        "bounding": caps,
        "effective": caps,
        "permitted": caps,
    });
    Ok(())
}

pub fn with_mounts(spec: &mut Value, image: &ImageConfig, opts: &Options) -> Result<(), Error> {
    let cgroup_opts = if opts.privileged {
        json!(["nosuid", "noexec", "nodev", "relatime", "rw"])
    } else {
        json!(["nosuid", "noexec", "nodev", "relatime", "ro"])
    };
    let mut defaults = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if opts.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": cgroup_opts}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ];
    let shm_size = opts.shm_size.unwrap_or(64 << 20);
    match &opts.shm {
        Shm::Private => {
            defaults[6]["options"] = json!([
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                format!("size={}k", shm_size.div_ceil(1024))
            ]);
        }
        Shm::Bind(dir) => {
            defaults[6] = json!({"destination": "/dev/shm", "type": "bind", "source": dir, "options": ["rbind", "nosuid", "noexec", "nodev"]});
        }
        Shm::None => {
            defaults.remove(6);
        }
    }
    let mut mounts: Vec<Value> = Vec::new();
    let mut user_dests: Vec<String> = Vec::new();
    if let Some(init) = &opts.init {
        mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    for m in &opts.mounts {
        if !m.destination.starts_with('/') {
            return Err(Error::BadMount(m.destination.clone()));
        }
        user_dests.push(m.destination.clone());
        let mut o: Vec<String> = if m.kind == "tmpfs" {
            vec!["nosuid".into(), "nodev".into()]
        } else if m.options.iter().any(|x| x == "bind") {
            // Non-recursive: the bind alone, not the mounts under its source.
            Vec::new()
        } else {
            vec!["rbind".into()]
        };
        o.push(if m.read_only { "ro" } else { "rw" }.into());
        o.extend(m.options.iter().cloned());
        mounts.push(json!({
            "destination": m.destination,
            "type": if m.kind == "tmpfs" { "tmpfs" } else { "bind" },
            "source": if m.kind == "tmpfs" { "tmpfs" } else { m.source.as_str() },
            "options": o,
        }));
    }
    for (path, o) in &opts.tmpfs {
        if !path.starts_with('/') {
            return Err(Error::BadMount(path.clone()));
        }
        user_dests.push(path.clone());
        let mut options = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
        options.extend(o.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        mounts.push(
            json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }
    // Image volumes nobody mounted over get an empty tmpfs here (the daemon replaces these
    // with real volumes).
    for v in &image.volumes {
        if !user_dests.iter().any(|d| d == v) && v.starts_with('/') {
            mounts.push(json!({"destination": v, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
        }
    }
    // A user mount over a default one replaces it.
    defaults.retain(|m| {
        let d = m["destination"].as_str().unwrap_or_default();
        !user_dests.iter().any(|u| u == d)
    });
    defaults.extend(mounts);
    let mounts = defaults;
    spec["mounts"] = json!(mounts);
    if !opts.privileged {
        spec["linux"]["maskedPaths"] = json!(opts.masked_paths.as_deref().unwrap_or(
            &MASKED_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        ));
        spec["linux"]["readonlyPaths"] = json!(opts.readonly_paths.as_deref().unwrap_or(
            &READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        ));
    } else {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
    }
    Ok(())
}

pub fn with_namespaces(spec: &mut Value, opts: &Options) {
    let mut ns = vec![json!({"type": "mount"})];
    for (kind, mode) in [
        ("network", &opts.network),
        ("pid", &opts.pid),
        ("ipc", &opts.ipc),
        ("uts", &opts.uts),
    ] {
        match mode {
            NsMode::Private => ns.push(json!({"type": kind})),
            NsMode::Host => {}
            NsMode::Path(p) => ns.push(json!({"type": kind, "path": p})),
        }
    }
    if opts.cgroupns_private {
        ns.push(json!({"type": "cgroup"}));
    }
    if opts.uts == NsMode::Host {
        // The host's UTS namespace: the hostname cannot be set.
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    spec["linux"]["namespaces"] = json!(ns);
}

pub fn with_resources(spec: &mut Value, opts: &Options) {
    let r = &mut spec["linux"]["resources"];
    if opts.privileged {
        r["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    if let Some(m) = opts.memory {
        r["memory"]["limit"] = m.into();
        // Docker: swap defaults to twice the memory limit.
        r["memory"]["swap"] = opts.memory_swap.unwrap_or(m.saturating_mul(2)).into();
    }
    if let Some(s) = opts.cpu_shares {
        r["cpu"]["shares"] = s.into();
    }
    if let Some(q) = opts.cpu_quota {
        r["cpu"]["quota"] = q.into();
        r["cpu"]["period"] = opts.cpu_period.unwrap_or(100_000).into();
    } else if let Some(p) = opts.cpu_period {
        r["cpu"]["period"] = p.into();
    }
    if let Some(c) = &opts.cpuset_cpus {
        r["cpu"]["cpus"] = c.clone().into();
    }
    if let Some(p) = opts.pids_limit {
        r["pids"]["limit"] = p.into();
    }
    if !opts.sysctls.is_empty() {
        spec["linux"]["sysctl"] = json!(opts.sysctls);
    }
}

pub fn with_security(spec: &mut Value, opts: &Options) -> Result<(), Error> {
    if let Some(p) = &opts.apparmor {
        spec["process"]["apparmorProfile"] = json!(p);
    }
    if opts.privileged || opts.seccomp_unconfined {
        return Ok(());
    }
    let caps: Vec<String> = spec["process"]["capabilities"]["bounding"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    spec["linux"]["seccomp"] = match &opts.seccomp_profile {
        Some(p) => seccomp::from_docker(p, &caps).map_err(Error::Seccomp)?,
        None => seccomp::default_profile(&caps),
    };
    Ok(())
}

/// The fields with no step of their own: oom score, annotations, domain name, the memory,
/// cpuset and block I/O knobs, the console size.
pub fn with_extras(spec: &mut Value, opts: &Options) {
    if let Some(adj) = opts.oom_score_adj {
        spec["process"]["oomScoreAdj"] = adj.into();
    }
    if let Some((h, w)) = opts.console_size.filter(|(h, w)| *h > 0 && *w > 0) {
        spec["process"]["consoleSize"] = json!({"height": h, "width": w});
    }
    if !opts.annotations.is_empty() {
        spec["annotations"] = json!(opts.annotations);
    }
    if let Some(d) = opts.domainname.as_deref().filter(|d| !d.is_empty()) {
        spec["domainname"] = d.into();
    }
    let r = &mut spec["linux"]["resources"];
    if let Some(m) = opts.memory_reservation {
        r["memory"]["reservation"] = m.into();
    }
    if let Some(s) = opts.memory_swappiness {
        r["memory"]["swappiness"] = s.into();
    }
    if opts.oom_kill_disable {
        r["memory"]["disableOOMKiller"] = true.into();
    }
    if let Some(k) = opts.kernel_memory_tcp {
        r["memory"]["kernelTCP"] = k.into();
    }
    if let Some(m) = &opts.cpuset_mems {
        r["cpu"]["mems"] = m.clone().into();
    }
    if let Some(b) = &opts.block_io {
        r["blockIO"] = b.clone();
    }
}

pub fn with_ulimits(spec: &mut Value, opts: &Options) -> Result<(), Error> {
    const KNOWN: &[&str] = &[
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if opts.ulimits.is_empty() {
        return Ok(());
    }
    let mut rl = Vec::new();
    for u in &opts.ulimits {
        if !KNOWN.contains(&u.name.as_str()) {
            return Err(Error::BadUlimit(u.name.clone()));
        }
        rl.push(json!({
            "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
            "soft": u.soft,
            "hard": u.hard,
        }));
    }
    spec["process"]["rlimits"] = json!(rl);
    Ok(())
}

#[cfg(test)]
mod tests;
