//! A container's Config and HostConfig → the manager's spec options, its log settings and
//! the checks Docker makes of ports; a `docker update` applied to a stored spec.

use berth_manager::oci::{NsMode, Options, Ulimit};
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
    for u in host.ulimits.iter().flatten() {
        o.ulimits.push(Ulimit {
            name: u.name.clone(),
            soft: u.soft.max(0) as u64,
            hard: u.hard.max(0) as u64,
        });
    }
    o
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

/// HostConfig.LogConfig over daemon.json's log-driver/log-opts: json-file with rotation
/// (max-size, max-file) or none.
pub(super) fn log_config(
    d: &Daemon,
    host: &HostConfig,
    path: &std::path::Path,
) -> Result<pb::LogConfig> {
    let cfg = &d.images.reg.cfg;
    let lc = host.log_config.clone().unwrap_or_default();
    let driver = Some(lc.r#type.as_str())
        .filter(|t| !t.is_empty())
        .or(cfg.log_driver.as_deref())
        .unwrap_or("json-file");
    if driver != "json-file" && driver != "none" {
        return Err(Error::Invalid(format!(
            "logging driver {driver:?} is not supported (json-file or none)"
        )));
    }
    let opt = |k: &str| -> Option<String> {
        lc.config
            .get(k)
            .cloned()
            .or_else(|| cfg.log_opts.get(k).cloned())
    };
    let max_size = match opt("max-size") {
        Some(s) => crate::config::parse_size(&s)
            .ok_or_else(|| Error::Invalid(format!("invalid log-opt max-size {s:?}")))?,
        None => 0,
    };
    let max_files = match opt("max-file") {
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Error::Invalid(format!("invalid log-opt max-file {n:?}")))?,
        None => 1,
    };
    Ok(pb::LogConfig {
        path: path.display().to_string(),
        max_size,
        max_files,
        disabled: driver == "none",
    })
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
