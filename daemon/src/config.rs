//! daemon.json: the settings berthd shares with dockerd (registry mirrors, insecure
//! registries, data root, …) plus `registry-fallback`, which Docker lacks: false means a
//! docker.io image is looked up only on the mirrors, never on Docker Hub itself (tests and
//! air-gapped hosts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Config {
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    /// Try Docker Hub after the mirrors (Docker's behaviour). Default true.
    pub registry_fallback: bool,
    pub data_root: Option<PathBuf>,
    /// Parallel layer downloads per pull (Docker's max-concurrent-downloads).
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub debug: bool,
    /// "json-file" (default) or "none".
    pub log_driver: Option<String>,
    /// json-file options: max-size ("10m"), max-file ("3").
    pub log_opts: BTreeMap<String, String>,
    /// Ulimits for containers that set none of that name: {"nofile": {"Name": "nofile",
    /// "Soft": 1024, "Hard": 2048}}.
    pub default_ulimits: BTreeMap<String, serde_json::Value>,
    /// The default bridge's address and prefix ("172.17.0.1/16" when unset).
    pub bip: Option<String>,
    /// The default bridge's interface name ("berth0" when unset).
    pub bridge: Option<String>,
    /// MTU of the default bridge and its veths (1500 when unset).
    pub mtu: Option<u32>,
    /// The default bridge is dual stack, with `fixed-cidr-v6` as its IPv6 subnet (a unique
    /// local /64 when unset).
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    /// Where networks made without a subnet (and the default bridge without `bip`) get
    /// theirs: `[{"base": "10.10.0.0/16", "size": 24}]`.
    pub default_address_pools: Vec<AddressPool>,
    /// "nftables" or "iptables" (Docker 28's setting); unset: nftables when `nft` is
    /// installed, else iptables.
    pub firewall_backend: Option<String>,
    /// Containers get no-new-privileges unless they ask otherwise.
    pub no_new_privileges: bool,
    /// A Docker-format seccomp profile file, "unconfined" or "builtin".
    pub seccomp_profile: Option<String>,
    /// /dev/shm's size when a container does not say ("64M").
    pub default_shm_size: Option<String>,
    /// "private" (the default) or "shareable".
    pub default_ipc_mode: Option<String>,
    /// "host" or "private" (default: private on cgroup v2 hosts, host on v1).
    pub default_cgroupns_mode: Option<String>,
    /// Run an init in every container (`--init` by default).
    pub init: bool,
    /// The init binary (default: berth-init beside berthd).
    pub init_path: Option<PathBuf>,
    /// Inter-container communication on the default bridge (only true is supported).
    pub icc: Option<bool>,
    /// Restart every container whose health check turns unhealthy (per container: the
    /// `berth.restart-on-unhealthy` label).
    pub restart_on_unhealthy: bool,
    /// OCI runtimes by name (dockerd's `{"name": {"path": "/usr/bin/x"}}`), beside the
    /// built-in berth-runtime, runc and crun.
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    /// The runtime of containers that name none (default berth-runtime).
    pub default_runtime: Option<String>,
    /// User namespace remapping (not supported: refused when set).
    pub userns_remap: Option<String>,
    /// Caps on every archive a client sends (`load`, `import`, `cp` into a container, build
    /// contexts) and on `ADD <url>` downloads: total uncompressed bytes ("64g") and entries
    /// (Berth's own keys; Docker has no such bound).
    pub archive_max_size: Option<String>,
    pub archive_max_entries: Option<u64>,
    /// Every other daemon.json key, kept (and ignored here) so a dockerd file loads.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registry_mirrors: Vec::new(),
            insecure_registries: Vec::new(),
            registry_fallback: true,
            data_root: None,
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            debug: false,
            log_driver: None,
            bip: None,
            bridge: None,
            mtu: None,
            ipv6: false,
            fixed_cidr_v6: None,
            default_address_pools: Vec::new(),
            firewall_backend: None,
            log_opts: BTreeMap::new(),
            default_ulimits: BTreeMap::new(),
            no_new_privileges: false,
            seccomp_profile: None,
            default_shm_size: None,
            default_ipc_mode: None,
            default_cgroupns_mode: None,
            init: false,
            init_path: None,
            icc: None,
            restart_on_unhealthy: false,
            runtimes: BTreeMap::new(),
            default_runtime: None,
            userns_remap: None,
            archive_max_size: None,
            archive_max_entries: None,
            other: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    pub path: String,
    #[serde(default, rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

/// "10m" → bytes (k, m, g; base 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (n, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    n.parse::<u64>().ok().and_then(|v| v.checked_mul(mult))
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read config file {}: {e}", path.display()))?;
        let c: Config = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        for m in &c.registry_mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                anyhow::bail!(
                    "config file {}: registry mirror {m:?} must be an http:// or https:// URL",
                    path.display()
                );
            }
        }
        crate::containers::check_log_driver(
            c.log_driver.as_deref().unwrap_or("json-file"),
            &c.log_opts,
        )
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        if let Some(sz) = c.log_opts.get("max-size") {
            if parse_size(sz).is_none() {
                anyhow::bail!(
                    "config file {}: log-opts max-size {sz:?}: want e.g. 10m",
                    path.display()
                );
            }
        }
        c.network_settings()
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        c.check_security()
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        c.archive_limits()
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        if c.max_concurrent_downloads == 0 {
            anyhow::bail!(
                "config file {}: max-concurrent-downloads must be at least 1",
                path.display()
            );
        }
        Ok(c)
    }

    /// The bounds on client archives and downloads (defaults: 64 GiB, 10 million entries).
    pub fn archive_limits(&self) -> Result<berth_fstree::layer::Limits, String> {
        let mut l = berth_fstree::layer::Limits::default();
        if let Some(s) = &self.archive_max_size {
            l.max_bytes = parse_size(s)
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("archive-max-size {s:?}: want a size such as 20g"))?;
        }
        if let Some(n) = self.archive_max_entries {
            if n == 0 {
                return Err("archive-max-entries must be at least 1".into());
            }
            l.max_entries = n;
        }
        Ok(l)
    }

    /// The container-defaults part, checked: what cannot be honoured is refused here, at
    /// start, rather than dropped.
    fn check_security(&self) -> Result<(), String> {
        self.seccomp()?;
        if let Some(s) = &self.default_shm_size {
            parse_size(s).ok_or_else(|| format!("default-shm-size {s:?}: want e.g. 64M"))?;
        }
        match self.default_ipc_mode.as_deref() {
            None | Some("private" | "shareable") => {}
            Some(m) => {
                return Err(format!(
                    "default-ipc-mode {m:?}: want \"private\" or \"shareable\""
                ))
            }
        }
        match self.default_cgroupns_mode.as_deref() {
            None | Some("private" | "host") => {}
            Some(m) => {
                return Err(format!(
                    "default-cgroupns-mode {m:?}: want \"private\" or \"host\""
                ))
            }
        }
        if self.icc == Some(false) {
            return Err("icc false (no traffic between containers on the default bridge) is not supported by Berth".into());
        }
        for (name, r) in &self.runtimes {
            if !r.runtime_args.is_empty() {
                return Err(format!(
                    "runtimes.{name}.runtimeArgs is not supported by Berth"
                ));
            }
        }
        if let Some(d) = &self.default_runtime {
            self.runtime(d)?;
        }
        if self.userns_remap.as_deref().is_some_and(|u| !u.is_empty()) {
            return Err("userns-remap is not supported by Berth".into());
        }
        Ok(())
    }

    /// The runtimes containers may name: (name, binary).
    pub fn runtime_names(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = ["berth-runtime", "runc", "crun"]
            .iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect();
        for (n, r) in &self.runtimes {
            out.retain(|(x, _)| x != n);
            out.push((n.clone(), r.path.clone()));
        }
        out
    }

    /// A runtime by name → its binary, with dockerd's message for unknown ones.
    pub fn runtime(&self, name: &str) -> Result<String, String> {
        self.runtime_names()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .ok_or_else(|| format!("Unknown runtime specified {name}"))
    }

    /// daemon.json's seccomp-profile: None for the built-in profile, Some(None) for
    /// unconfined, Some(Some(profile)) for a profile file's document.
    pub fn seccomp(&self) -> Result<Option<Option<serde_json::Value>>, String> {
        match self.seccomp_profile.as_deref() {
            None | Some("" | "builtin") => Ok(None),
            Some("unconfined") => Ok(Some(None)),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("seccomp-profile {path}: {e}"))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| format!("seccomp-profile {path}: not a JSON profile: {e}"))?;
                berth_manager::oci::seccomp::from_docker(&v, &[])
                    .map_err(|e| format!("seccomp-profile {path}: {e}"))?;
                Ok(Some(Some(v)))
            }
        }
    }

    /// The networking part, checked: pools within their base, a known firewall backend.
    pub fn network_settings(&self) -> Result<crate::network::Settings, String> {
        let mut pools = Vec::new();
        for p in &self.default_address_pools {
            let (base, bp) = crate::network::parse_cidr(&p.base)
                .map_err(|e| format!("default-address-pools: {e}"))?;
            if p.size < bp || p.size > 30 {
                return Err(format!(
                    "default-address-pools: size {} for base {}: want {bp} to 30",
                    p.size, p.base
                ));
            }
            pools.push((base, bp, p.size));
        }
        if let Some(b) = &self.firewall_backend {
            crate::network::firewall::Backend::choose(Some(b))?;
        }
        if let Some(c) = &self.fixed_cidr_v6 {
            if !self.ipv6 {
                return Err("fixed-cidr-v6 is set but ipv6 is not true".into());
            }
            crate::network::parse_cidr6(c).map_err(|e| format!("fixed-cidr-v6: {e}"))?;
        }
        Ok(crate::network::Settings {
            bip: self.bip.clone(),
            bridge: self.bridge.clone(),
            mtu: self.mtu,
            pools,
            ipv6: self.ipv6,
            fixed_cidr_v6: self.fixed_cidr_v6.clone(),
            firewall: self.firewall_backend.clone(),
        })
    }

    /// Is `host` (host[:port]) to be reached over plain HTTP / unverified TLS? Loopback
    /// registries are, as with Docker; so are hosts and CIDRs listed in insecure-registries.
    pub fn insecure(&self, host: &str) -> bool {
        let bare = host_only(host);
        if bare == "localhost" {
            return true;
        }
        let ip = bare
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        if ip.is_some_and(|i| i.is_loopback()) {
            return true;
        }
        self.insecure_registries.iter().any(|r| {
            if r == host || r == bare {
                return true;
            }
            match (ip, r.split_once('/')) {
                (Some(std::net::IpAddr::V4(a)), Some((net, bits))) => {
                    let (Ok(n), Ok(b)) = (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>())
                    else {
                        return false;
                    };
                    if b > 32 {
                        return false;
                    }
                    let mask = if b == 0 { 0 } else { u32::MAX << (32 - b) };
                    u32::from(a) & mask == u32::from(n) & mask
                }
                _ => false,
            }
        })
    }
}

fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_hosts() {
        let c = Config {
            insecure_registries: vec!["reg.example:5000".into(), "10.1.0.0/16".into()],
            ..Default::default()
        };
        assert!(c.insecure("127.0.0.1:5000"));
        assert!(c.insecure("localhost:1"));
        assert!(c.insecure("[::1]:5000"));
        assert!(c.insecure("reg.example:5000"));
        assert!(c.insecure("10.1.2.3:443"));
        assert!(!c.insecure("10.2.0.1"));
        assert!(!c.insecure("docker.io"));
    }

    #[test]
    fn network_settings_checked() {
        let load = |json: &str| -> Result<Config, String> {
            let dir = std::env::temp_dir().join(format!("berth-cfg-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(format!("{}.json", json.len()));
            std::fs::write(&p, json).unwrap();
            let r = Config::load(&p).map_err(|e| e.to_string());
            let _ = std::fs::remove_dir_all(&dir);
            r
        };
        let c = load(r#"{"default-address-pools": [{"base": "10.10.0.0/16", "size": 24}], "firewall-backend": "iptables"}"#).unwrap();
        let n = c.network_settings().unwrap();
        assert_eq!(n.pools, [("10.10.0.0".parse().unwrap(), 16, 24)]);
        assert_eq!(n.firewall.as_deref(), Some("iptables"));
        let e = load(r#"{"default-address-pools": [{"base": "10.10.0.0/16", "size": 8}]}"#)
            .unwrap_err();
        assert!(e.contains("size 8 for base 10.10.0.0/16"), "{e}");
        let e =
            load(r#"{"default-address-pools": [{"base": "10.10.0/16", "size": 24}]}"#).unwrap_err();
        assert!(e.contains("10.10.0/16"), "{e}");
        let e = load(r#"{"firewall-backend": "pf"}"#).unwrap_err();
        assert!(e.contains("firewall-backend \"pf\""), "{e}");
    }
}
