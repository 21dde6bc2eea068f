//! A container's Config and HostConfig → the manager's spec options, its log settings and
//! the checks Docker makes of ports; a `docker update` applied to a stored spec.

use berth_manager::oci::{DeviceOpt, NsMode, Options, Ulimit};
use berth_proto::manager as pb;

use super::doc::{Config, HostConfig};
use super::{Error, Result};
use crate::state::Daemon;

/// Config + HostConfig → the spec generator's options (networking and mounts are added
/// by `create`).
pub(super) fn options(cfg: &Config, host: &HostConfig) -> Options {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let mut o = Options {
        args: cfg.cmd.clone().filter(|c| !c.is_empty()),
        // `--entrypoint ""` (sent as [""]) resets the image's entrypoint to none.
        entrypoint: cfg.entrypoint.clone().filter(|c| !c.is_empty()).map(|c| {
            if c == [""] {
                Vec::new()
            } else {
                c
            }
        }),
        env: cfg.env.clone().unwrap_or_default(),
        tty: cfg.tty(),
        user: nonempty(&cfg.user),
        workdir: nonempty(&cfg.working_dir),
        hostname: nonempty(&cfg.hostname),
        privileged: host.privileged.unwrap_or(false),
        read_only: host.readonly_rootfs.unwrap_or(false),
        cap_add: host.cap_add.clone().unwrap_or_default(),
        cap_drop: host.cap_drop.clone().unwrap_or_default(),
        ..Default::default()
    };
    // The namespace itself is set up by `create` (see network::attach), which also checks
    // that a named network exists.
    if host.network_mode() == "host" {
        o.network = NsMode::Host;
    }
    if let Some(m) = host.memory.filter(|m| *m > 0) {
        o.memory = Some(m);
        o.memory_swap = host.memory_swap.filter(|s| *s != 0);
    }
    if let Some(s) = host.cpu_shares.filter(|s| *s > 0) {
        o.cpu_shares = Some(s as u64);
    }
    if let Some(n) = host.nano_cpus.filter(|n| *n > 0) {
        o.cpu_period = Some(100_000);
        o.cpu_quota = Some(n / 10_000);
    }
    if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
        o.pids_limit = Some(p);
    }
    o.tmpfs = host.tmpfs.clone().unwrap_or_default();
    o.sysctls = host.sysctls.clone().unwrap_or_default();
    o.group_add = host.group_add.clone().unwrap_or_default();
    o.devices = host
        .devices
        .iter()
        .flatten()
        .map(|d| DeviceOpt {
            host_path: d.path_on_host.clone(),
            container_path: d.path_in_container.clone(),
            permissions: d.cgroup_permissions.clone(),
        })
        .collect();
    o.device_rules = host.device_cgroup_rules.clone().unwrap_or_default();
    o.oom_score_adj = host.oom_score_adj.filter(|a| *a != 0);
    o.masked_paths = host.masked_paths.clone();
    o.readonly_paths = host.readonly_paths.clone();
    o.annotations = host.annotations.clone().unwrap_or_default();
    o.domainname = nonempty(&cfg.domainname);
    o.memory_reservation = host.memory_reservation.filter(|m| *m > 0);
    o.memory_swappiness = host.memory_swappiness.filter(|s| *s >= 0).map(|s| s as u64);
    o.oom_kill_disable = host.oom_kill_disable.unwrap_or(false);
    o.kernel_memory_tcp = host.kernel_memory_tcp.filter(|k| *k > 0);
    o.cpuset_cpus = nonempty(&host.cpuset_cpus);
    o.cpuset_mems = nonempty(&host.cpuset_mems);
    if let Some(q) = host.cpu_quota.filter(|q| *q != 0) {
        o.cpu_quota = Some(q);
    }
    if let Some(p) = host.cpu_period.filter(|p| *p > 0) {
        o.cpu_period = Some(p as u64);
    }
    o.console_size = match host.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some((*h, *w)),
        _ => None,
    };
    for u in host.ulimits.iter().flatten() {
        o.ulimits.push(Ulimit {
            name: u.name.clone(),
            soft: u.soft.max(0) as u64,
            hard: u.hard.max(0) as u64,
        });
    }
    o
}

/// Options that need more than a copy: resource values Docker range-checks, block I/O by
/// device, sysctls (namespaced ones only, none of the host's namespaces).
pub(super) fn checked(host: &HostConfig, o: &mut Options) -> Result<()> {
    // (As dockerd: NanoCpus with a period or a quota of its own is refused; `--cpus`
    // itself becomes a period and a quota above.)
    if let Some(n) = host.nano_cpus.filter(|n| *n > 0) {
        if host.cpu_period.is_some_and(|p| p > 0) {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
            ));
        }
        if host.cpu_quota.is_some_and(|q| q > 0) {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |c| c.get()) as i64;
        if n < 10_000_000 || n > cpus * 1_000_000_000 {
            return Err(Error::Invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if let Some(m) = o.memory.filter(|m| *m < 6 * 1024 * 1024) {
        return Err(Error::Invalid(format!(
            "Minimum memory limit allowed is 6MB (HostConfig.Memory {m})"
        )));
    }
    if let Some(p) = o.cpu_period.filter(|p| !(1000..=1_000_000).contains(p)) {
        return Err(Error::Invalid(format!(
            "CPU cfs period {p} can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )));
    }
    if let Some(q) = o.cpu_quota.filter(|q| *q > 0 && *q < 1000) {
        return Err(Error::Invalid(format!(
            "CPU cfs quota {q} can not be less than 1ms (i.e. 1000)"
        )));
    }
    if let Some(s) = host.memory_swappiness.filter(|s| *s < -1 || *s > 100) {
        return Err(Error::Invalid(format!(
            "Invalid value: {s}, valid memory swappiness range is 0-100"
        )));
    }
    if let (Some(r), Some(m)) = (o.memory_reservation, o.memory) {
        if r > m {
            return Err(Error::Invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
                    .into(),
            ));
        }
    }
    if let Some(a) = o.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        return Err(Error::Invalid(format!(
            "Invalid value {a}, range for oom score adj is [-1000, 1000]"
        )));
    }
    o.block_io = block_io(host)?;
    for k in o.sysctls.keys() {
        sysctl_allowed(k, host)?;
    }
    Ok(())
}

fn block_io(host: &HostConfig) -> Result<Option<serde_json::Value>> {
    use serde_json::json;
    let dev = |path: &str| -> Result<(u64, u64)> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::metadata(path)
            .map_err(|e| Error::Invalid(format!("block device {path}: {e}")))?;
        if !md.file_type().is_block_device() {
            return Err(Error::Invalid(format!("{path} is not a block device")));
        }
        Ok((
            nix::sys::stat::major(md.rdev()),
            nix::sys::stat::minor(md.rdev()),
        ))
    };
    let mut b = serde_json::Map::new();
    let weighted = host.blkio_weight.is_some_and(|w| w > 0)
        || host
            .blkio_weight_device
            .as_ref()
            .is_some_and(|d| !d.is_empty());
    if weighted && !kernel_has_io_weight() {
        return Err(Error::Invalid(
            "HostConfig.BlkioWeight: this kernel has no block I/O weight (no blkio.weight or io.weight: the BFQ scheduler is not in use)".into(),
        ));
    }
    if let Some(w) = host.blkio_weight.filter(|w| *w > 0) {
        if !(10..=1000).contains(&w) {
            return Err(Error::Invalid(format!(
                "Range of blkio weight is from 10 to 1000, got {w}"
            )));
        }
        b.insert("weight".into(), w.into());
    }
    let mut weights = Vec::new();
    for w in host.blkio_weight_device.iter().flatten() {
        let (major, minor) = dev(&w.path)?;
        weights.push(json!({"major": major, "minor": minor, "weight": w.weight}));
    }
    if !weights.is_empty() {
        b.insert("weightDevice".into(), weights.into());
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &host.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &host.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &host.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &host.blkio_device_write_iops),
    ] {
        let mut out = Vec::new();
        for t in list.iter().flatten() {
            let (major, minor) = dev(&t.path)?;
            out.push(json!({"major": major, "minor": minor, "rate": t.rate}));
        }
        if !out.is_empty() {
            b.insert(key.into(), out.into());
        }
    }
    Ok((!b.is_empty()).then_some(b.into()))
}

/// Whether block I/O weights can be set here (cgroup v1 blkio.weight or
/// blkio.bfq.weight; v2 io.weight or io.bfq.weight at the root's children).
fn kernel_has_io_weight() -> bool {
    [
        "/sys/fs/cgroup/blkio/blkio.weight",
        "/sys/fs/cgroup/blkio/blkio.bfq.weight",
        "/sys/fs/cgroup/io.weight",
        "/sys/fs/cgroup/io.bfq.weight",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
            && std::fs::read_dir("/sys/fs/cgroup").is_ok_and(|d| {
                d.flatten().any(|e| {
                    e.path().join("io.weight").exists() || e.path().join("io.bfq.weight").exists()
                })
            })
}

/// Docker's rule for `--sysctl`: the IPC ones (kernel.msg*, kernel.sem, kernel.shm*,
/// fs.mqueue.*) unless the container shares the host's IPC namespace, net.* unless it
/// shares the host's network; nothing else is namespaced.
fn sysctl_allowed(k: &str, host: &HostConfig) -> Result<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&k) || k.starts_with("fs.mqueue.") {
        if host.ipc_mode.as_deref() == Some("host") {
            return Err(Error::Invalid(format!(
                "sysctl {k:?} is not allowed in host IPC namespace"
            )));
        }
        return Ok(());
    }
    if k.starts_with("net.") {
        if host.network_mode() == "host" {
            return Err(Error::Invalid(format!(
                "sysctl {k:?} not allowed in host network namespace"
            )));
        }
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "sysctl {k:?} is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*) can be set for a container"
    )))
}

/// `HostConfig.SecurityOpt` (`key=value`, or the old `key:value`) over daemon.json's
/// no-new-privileges and seccomp-profile.
pub(super) fn security(d: &Daemon, host: &HostConfig, o: &mut Options) -> Result<()> {
    let cfg = &d.images.reg.cfg;
    o.no_new_privileges = cfg.no_new_privileges;
    match cfg.seccomp().map_err(Error::Invalid)? {
        None => {}
        Some(None) => o.seccomp_unconfined = true,
        Some(Some(p)) => o.seccomp_profile = Some(p),
    }
    for opt in host.security_opt.iter().flatten() {
        let (k, v) = match (opt.split_once('='), opt.split_once(':')) {
            (Some((k, v)), Some((k2, _))) if k.len() < k2.len() => (k, Some(v)),
            (_, Some((k, v))) => (k, Some(v)),
            (Some((k, v)), None) => (k, Some(v)),
            (None, None) => (opt.as_str(), None),
        };
        match (k, v) {
            ("no-new-privileges", None) => o.no_new_privileges = true,
            ("no-new-privileges", Some(b)) => {
                o.no_new_privileges = b.parse::<bool>().map_err(|_| {
                    Error::Invalid(format!(
                        "invalid --security-opt {opt:?}: no-new-privileges takes true or false"
                    ))
                })?
            }
            ("seccomp", Some("unconfined")) => {
                o.seccomp_unconfined = true;
                o.seccomp_profile = None;
            }
            ("seccomp", Some("builtin")) => {
                o.seccomp_unconfined = false;
                o.seccomp_profile = None;
            }
            ("seccomp", Some(json)) => {
                let p: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                    Error::Invalid(format!(
                        "security-opt seccomp: the profile is not JSON ({e}); the docker CLI sends a profile file's content, other clients must send the JSON itself"
                    ))
                })?;
                berth_manager::oci::seccomp::from_docker(&p, &[])
                    .map_err(|e| Error::Invalid(format!("security-opt seccomp: {e}")))?;
                o.seccomp_unconfined = false;
                o.seccomp_profile = Some(p);
            }
            ("apparmor", Some(profile)) => {
                let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                    .is_ok_and(|s| s.trim() == "Y");
                if profile == "unconfined" {
                    o.apparmor = None;
                } else if !enabled {
                    return Err(Error::Invalid(format!(
                        "security-opt apparmor={profile}: AppArmor is not enabled on this host"
                    )));
                } else {
                    o.apparmor = Some(profile.to_string());
                }
            }
            ("label", Some("disable")) => {}
            ("label", Some(_)) => {
                return Err(Error::Invalid(format!(
                    "security-opt {opt}: SELinux labels are not supported by Berth (only label=disable)"
                )))
            }
            ("systempaths", Some("unconfined")) => {
                o.masked_paths = Some(Vec::new());
                o.readonly_paths = Some(Vec::new());
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "Invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    Ok(())
}

/// The daemon's default-ulimits for names the container did not set.
pub(super) fn default_ulimits(d: &Daemon, o: &mut Options) {
    for (name, u) in &d.images.reg.cfg.default_ulimits {
        if !o.ulimits.iter().any(|x| &x.name == name) {
            o.ulimits.push(Ulimit {
                name: name.clone(),
                soft: u["Soft"].as_u64().unwrap_or(0),
                hard: u["Hard"].as_u64().unwrap_or(0),
            });
        }
    }
}

/// HostConfig.LogConfig over daemon.json's log-driver/log-opts (the daemon's options apply
/// to its own driver only): json-file (max-size, max-file, compress), local (Docker's
/// defaults: 20m × 5, compressed), syslog and journald (with a local copy for `docker logs`,
/// kept as `local` with the cache-* options), none. `c` names the container for tags.
pub(super) fn log_config(d: &Daemon, host: &HostConfig, c: &LogTarget) -> Result<pb::LogConfig> {
    let cfg = &d.images.reg.cfg;
    let lc = host.log_config.clone().unwrap_or_default();
    let daemon_driver = cfg.log_driver.as_deref().unwrap_or("json-file");
    let driver = Some(lc.r#type.as_str())
        .filter(|t| !t.is_empty())
        .unwrap_or(daemon_driver);
    check_log_driver(driver, &lc.config)?;
    let mut opts = lc.config.clone();
    if driver == daemon_driver {
        for (k, v) in &cfg.log_opts {
            opts.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let opt = |k: &str| opts.get(k).cloned();
    let size = |k: &str, default: u64| -> Result<u64> {
        match opt(k) {
            Some(s) => crate::config::parse_size(&s)
                .ok_or_else(|| Error::Invalid(format!("invalid log-opt {k} {s:?}"))),
            None => Ok(default),
        }
    };
    let files = |k: &str, default: u32| -> Result<u32> {
        match opt(k) {
            Some(n) => n
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| Error::Invalid(format!("invalid log-opt {k} {n:?}"))),
            None => Ok(default),
        }
    };
    let flag = |k: &str, default: bool| -> Result<bool> {
        match opt(k) {
            Some(v) => v
                .parse::<bool>()
                .map_err(|_| Error::Invalid(format!("invalid log-opt {k} {v:?}: true or false"))),
            None => Ok(default),
        }
    };
    let dir = &c.dir;
    let mut out = pb::LogConfig {
        disabled: driver == "none",
        ..Default::default()
    };
    match driver {
        "json-file" | "none" => {
            out.path = dir.join(format!("{}-json.log", c.id)).display().to_string();
            out.max_size = size("max-size", 0)?;
            out.max_files = files("max-file", 1)?;
            out.compress = flag("compress", false)?;
        }
        "local" => {
            out.path = dir
                .join("local-logs")
                .join("container.log")
                .display()
                .to_string();
            out.format = "local".into();
            out.max_size = size("max-size", 20 << 20)?;
            out.max_files = files("max-file", 5)?;
            out.compress = flag("compress", true)?;
        }
        forward => {
            // The local copy (Docker's "dual logging" cache).
            out.path = dir.join("container-cached.log").display().to_string();
            out.format = "local".into();
            out.max_size = size("cache-max-size", 20 << 20)?;
            out.max_files = files("cache-max-file", 5)?;
            out.compress = flag("cache-compress", true)?;
            out.forward = forward.into();
            let tag = expand_tag(opt("tag").as_deref().unwrap_or("{{.ID}}"), c)?;
            out.options.insert("tag".into(), tag);
            if forward == "syslog" {
                for k in ["syslog-address", "syslog-format"] {
                    if let Some(v) = opt(k) {
                        out.options.insert(k.into(), v);
                    }
                }
                if let Some(f) = opt("syslog-facility") {
                    out.options
                        .insert("syslog-facility".into(), facility(&f)?.to_string());
                }
                validate_syslog_address(opt("syslog-address").as_deref().unwrap_or(""))?;
                match opt("syslog-format").as_deref() {
                    None | Some("" | "rfc3164" | "rfc5424" | "rfc5424micro") => {}
                    Some(f) => {
                        return Err(Error::Invalid(format!(
                            "Invalid syslog format: {f}; valid formats are rfc3164, rfc5424, rfc5424micro"
                        )))
                    }
                }
            } else {
                if !std::path::Path::new(berth_proto_journal_socket()).exists() {
                    return Err(Error::Invalid(
                        "journald is not enabled on this host (no /run/systemd/journal/socket)"
                            .into(),
                    ));
                }
                out.options
                    .insert("container-id".into(), c.id[..12].to_string());
                out.options.insert("container-id-full".into(), c.id.clone());
                out.options.insert(
                    "container-name".into(),
                    c.name.trim_start_matches('/').into(),
                );
                out.options.insert("image-name".into(), c.image.clone());
            }
        }
    }
    Ok(out)
}

fn berth_proto_journal_socket() -> &'static str {
    "/run/systemd/journal/socket"
}

/// What a log tag may name.
pub(super) struct LogTarget {
    pub id: String,
    /// With its leading '/'.
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub dir: std::path::PathBuf,
}

/// Docker's tag template fields: {{.ID}}, {{.FullID}}, {{.Name}}, {{.ImageName}},
/// {{.ImageID}}, {{.ImageFullID}}, {{.DaemonName}}.
fn expand_tag(t: &str, c: &LogTarget) -> Result<String> {
    let mut out = t.to_string();
    let image_id = c.image_id.trim_start_matches("sha256:");
    for (k, v) in [
        ("{{.ID}}", &c.id[..12]),
        ("{{.FullID}}", c.id.as_str()),
        ("{{.Name}}", c.name.trim_start_matches('/')),
        ("{{.ImageName}}", c.image.as_str()),
        ("{{.ImageID}}", &image_id[..image_id.len().min(12)]),
        ("{{.ImageFullID}}", image_id),
        ("{{.DaemonName}}", "docker"),
    ] {
        out = out.replace(k, v);
    }
    if out.contains("{{") {
        return Err(Error::Invalid(format!(
            "log-opt tag {t:?}: only {{{{.ID}}}}, {{{{.FullID}}}}, {{{{.Name}}}}, {{{{.ImageName}}}}, {{{{.ImageID}}}}, {{{{.ImageFullID}}}} and {{{{.DaemonName}}}} are supported"
        )));
    }
    Ok(out)
}

fn facility(f: &str) -> Result<u8> {
    const NAMES: &[&str] = &[
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp",
    ];
    if let Some(i) = NAMES.iter().position(|n| *n == f) {
        return Ok(i as u8);
    }
    if let Some(n) = f
        .strip_prefix("local")
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| *n < 8)
    {
        return Ok(16 + n);
    }
    match f.parse::<u8>() {
        Ok(n) if n < 24 => Ok(n),
        _ => Err(Error::Invalid(format!(
            "invalid syslog facility value: {f}"
        ))),
    }
}

fn validate_syslog_address(a: &str) -> Result<()> {
    if a.is_empty() {
        return Ok(());
    }
    let (scheme, rest) = a
        .split_once("://")
        .ok_or_else(|| Error::Invalid(format!("syslog-address {a:?}: want unix://PATH, unixgram://PATH, udp://HOST:PORT or tcp://HOST:PORT")))?;
    match scheme {
        "unix" | "unixgram" if rest.starts_with('/') => Ok(()),
        "udp" | "tcp" if !rest.is_empty() => Ok(()),
        "tcp+tls" => Err(Error::Invalid(format!(
            "syslog-address {a:?}: tcp+tls is not supported by Berth"
        ))),
        _ => Err(Error::Invalid(format!(
            "syslog-address {a:?}: unsupported scheme or address"
        ))),
    }
}

/// Docker's logging drivers berthd does not have (refused as such); any other name is
/// refused with Docker's own message.
const OTHER_DRIVERS: &[&str] = &[
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// A driver and its options as berthd can honour them; every other option is refused,
/// naming it.
pub fn check_log_driver(
    driver: &str,
    opts: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    const UNSUPPORTED: &[&str] = &["labels", "labels-regex", "env", "env-regex"];
    let known: &[&str] = match driver {
        "json-file" => &["max-size", "max-file", "compress"],
        "local" => &["max-size", "max-file", "compress"],
        "syslog" => &[
            "syslog-address", "syslog-facility", "syslog-format", "tag", "cache-max-size",
            "cache-max-file", "cache-compress",
        ],
        "journald" => &["tag", "cache-max-size", "cache-max-file", "cache-compress"],
        "none" => &[],
        d if OTHER_DRIVERS.contains(&d) => {
            return Err(Error::Invalid(format!(
                "logging driver {d:?} is not supported by Berth (json-file, local, syslog, journald or none)"
            )))
        }
        d => {
            return Err(Error::Invalid(format!(
                "logger: no log driver named '{d}' is registered"
            )))
        }
    };
    for (k, v) in opts {
        if known.contains(&k.as_str()) {
            continue;
        }
        if driver != "none"
            && (UNSUPPORTED.contains(&k.as_str())
                || k.starts_with("syslog-tls-")
                || (driver == "json-file" && k == "tag")
                || k == "cache-disabled")
        {
            return Err(Error::Invalid(format!(
                "log-opt {k}={v} is not supported by Berth for the {driver} driver"
            )));
        }
        return Err(Error::Invalid(format!(
            "unknown log opt '{k}' for {driver} log driver"
        )));
    }
    Ok(())
}

/// PortBindings as Docker checks them: keys `port[-port][/tcp|udp|sctp]`, host ports
/// numeric (or a range) or empty, host addresses IP addresses.
pub(super) fn validate_ports(host: &HostConfig) -> Result<()> {
    let port_ok = |p: &str| {
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(x), Ok(y)) if x > 0 && x <= y)
    };
    for (k, v) in host.port_bindings.iter().flatten() {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        if !port_ok(port) || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(Error::Invalid(format!(
                "invalid port specification: \"{k}\""
            )));
        }
        for b in v.iter().flatten() {
            if !b.host_port.is_empty() && !port_ok(&b.host_port) {
                return Err(Error::Invalid(format!(
                    "invalid port specification: \"{}\"",
                    b.host_port
                )));
            }
            if !b.host_ip.is_empty() && b.host_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::Invalid(format!("invalid IP address: {}", b.host_ip)));
            }
        }
    }
    Ok(())
}

/// The resource fields of a HostConfig onto a spec (a `docker update` is kept for the next
/// start).
pub(super) fn patch_resources(spec: &mut oci_spec::runtime::Spec, host: &HostConfig) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut mem = res.memory().unwrap_or_default();
    if let Some(m) = host.memory.filter(|m| *m > 0) {
        mem.set_limit(Some(m));
    }
    if let Some(s) = host.memory_swap.filter(|m| *m != 0) {
        mem.set_swap(Some(s));
    }
    res.set_memory(Some(mem));
    let mut cpu = res.cpu().clone().unwrap_or_default();
    if let Some(v) = host.cpu_shares.filter(|v| *v > 0) {
        cpu.set_shares(Some(v as u64));
    }
    if let Some(n) = host.nano_cpus.filter(|n| *n > 0) {
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(n / 10_000));
    }
    res.set_cpu(Some(cpu));
    if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
        let mut pids = res.pids().unwrap_or_default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_drivers_and_options_are_honoured_or_named() {
        let opts = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        check_log_driver(
            "json-file",
            &opts(&[("max-size", "1m"), ("max-file", "2"), ("compress", "true")]),
        )
        .unwrap();
        check_log_driver("local", &opts(&[("max-size", "1m")])).unwrap();
        check_log_driver(
            "syslog",
            &opts(&[("syslog-address", "udp://127.0.0.1:5514"), ("tag", "x")]),
        )
        .unwrap();
        check_log_driver("none", &opts(&[])).unwrap();
        let err =
            |d: &str, kv: &[(&str, &str)]| check_log_driver(d, &opts(kv)).unwrap_err().to_string();
        assert!(err("none", &[("max-size", "1m")]).contains("unknown log opt 'max-size' for none"));
        assert!(err("json-file", &[("labels", "a")]).contains("labels=a is not supported"));
        assert!(err("syslog", &[("syslog-tls-cert", "x")]).contains("not supported"));
        assert!(err("gelf", &[]).contains("\"gelf\" is not supported by Berth"));
        assert!(err("nosuch", &[]).contains("no log driver named 'nosuch'"));
        assert_eq!(facility("local3").unwrap(), 19);
        assert_eq!(facility("daemon").unwrap(), 3);
        assert!(facility("local9").is_err());
        let t = LogTarget {
            id: "0123456789abcdef".repeat(4),
            name: "/web".into(),
            image: "busybox".into(),
            image_id: "sha256:".to_string() + &"ab".repeat(32),
            dir: Default::default(),
        };
        assert_eq!(
            expand_tag("{{.Name}}/{{.ID}}", &t).unwrap(),
            "web/0123456789ab"
        );
        assert!(expand_tag("{{.Nope}}", &t).is_err());
    }
}
