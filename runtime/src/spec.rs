//! Loading and checking an OCI bundle's `config.json`.
//!
//! `oci-spec` gives the types; this module adds the semantic checks the types cannot express
//! (absolute paths, namespace/mapping consistency, known capabilities, hook paths …) so that a
//! bad bundle is refused before anything is created, with an error naming the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};

/// A loaded and checked bundle.
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// The parsed configuration.
    pub spec: Spec,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
    /// The config.json bytes as read (kept as the container's frozen copy).
    pub text: Vec<u8>,
}

/// Check a container id the way runc does: non-empty, only `[A-Za-z0-9_+\-.]`, not `.`/`..`.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." {
        return bad("must not be . or ..");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return bad("only letters, digits, _ + - . are allowed");
    }
    Ok(())
}

/// Load `config.json` from `bundle`, check it, and resolve the rootfs.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).ctx("open bundle", bundle)?;
    let path = dir.join("config.json");
    let text = std::fs::read(&path).ctx("read", &path)?;
    let spec = parse_config(&path, &text)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config(&path, "root: missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| Error::config(&path, format!("root.path {}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(Error::config(
            &path,
            format!("root.path {} is not a directory", rootfs.display()),
        ));
    }
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        text,
    })
}

/// Parse and check a config.json text; `path` is only used in messages.
pub fn parse_config(path: &Path, text: &[u8]) -> Result<Spec> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| Error::config(path, format!("not valid JSON: {e}")))?;
    check_raw(path, &value)?;
    let spec: Spec = from_value(path, value)?;
    check_spec(path, &spec)?;
    Ok(spec)
}

/// Deserialize an OCI type from a JSON value. Every OCI type is read through this one
/// deserializer so its code exists once in the binary (size is resident memory here).
pub fn from_value<T: serde::de::DeserializeOwned>(path: &Path, value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::config(path, format!("does not match the OCI runtime spec: {e}")))
}

/// Read a JSON file of an OCI type (`config.json` copy, `process.json`, resources).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, text: &[u8]) -> Result<T> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| Error::config(path, format!("not valid JSON: {e}")))?;
    from_value(path, value)
}

/// Checks easier to give good messages for on the raw JSON than after typed parsing.
fn check_raw(path: &Path, v: &Value) -> Result<()> {
    let Some(obj) = v.as_object() else {
        return Err(Error::config(path, "top level must be a JSON object"));
    };
    match obj.get("ociVersion").and_then(Value::as_str) {
        None => return Err(Error::config(path, "ociVersion: missing")),
        Some(ver) if !ver.starts_with("1.") => {
            return Err(Error::config(
                path,
                format!("ociVersion {ver:?}: only 1.x is supported"),
            ))
        }
        _ => {}
    }
    if let Some(caps) = v
        .pointer("/process/capabilities")
        .and_then(Value::as_object)
    {
        for (set, list) in caps {
            for cap in list.as_array().into_iter().flatten() {
                let name = cap.as_str().unwrap_or_default();
                if parse_capability(name).is_err() {
                    return Err(Error::config(
                        path,
                        format!("process.capabilities.{set}: unknown capability {cap}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Parse a capability name, with or without the `CAP_` prefix, any case.
pub fn parse_capability(name: &str) -> Result<caps::Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&full).map_err(|_| Error::UnknownCapability(name.to_string()))
}

fn check_spec(path: &Path, spec: &Spec) -> Result<()> {
    let bad = |why: String| Err(Error::config(path, why));
    if let Some(p) = spec.process() {
        match p.args() {
            Some(a) if !a.is_empty() => {}
            _ => {
                if p.command_line().is_none() {
                    return bad("process.args: must not be empty".into());
                }
            }
        }
        if !p.cwd().is_absolute() {
            return bad(format!(
                "process.cwd {:?}: must be an absolute path",
                p.cwd()
            ));
        }
        if let Some(rl) = p.rlimits() {
            let mut seen = HashSet::new();
            for r in rl {
                if !seen.insert(format!("{:?}", r.typ())) {
                    return bad(format!("process.rlimits: {:?} given twice", r.typ()));
                }
                if r.soft() > r.hard() {
                    return bad(format!(
                        "process.rlimits: {:?} soft limit {} above hard limit {}",
                        r.typ(),
                        r.soft(),
                        r.hard()
                    ));
                }
            }
        }
    }
    for m in spec.mounts().iter().flatten() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return bad(format!(
                "mounts: {:?}: id-mapped mounts (uidMappings/gidMappings) are not supported",
                m.destination()
            ));
        }
        if !m.destination().is_absolute() {
            return bad(format!(
                "mounts: destination {:?} must be an absolute path",
                m.destination()
            ));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let all = [
            hooks.prestart(),
            hooks.create_runtime(),
            hooks.create_container(),
            hooks.start_container(),
            hooks.poststart(),
            hooks.poststop(),
        ];
        for h in all.into_iter().flatten().flatten() {
            if !h.path().is_absolute() {
                return bad(format!("hooks: path {:?} must be absolute", h.path()));
            }
            if let Some(t) = h.timeout() {
                if t <= 0 {
                    return bad(format!(
                        "hooks: timeout {t} for {:?} must be positive",
                        h.path()
                    ));
                }
            }
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        let mut has_user = false;
        let mut has_net = false;
        let mut has_ipc = false;
        let mut has_uts = false;
        for ns in linux.namespaces().iter().flatten() {
            if !seen.insert(ns.typ()) {
                return bad(format!("linux.namespaces: {:?} given twice", ns.typ()));
            }
            match ns.typ() {
                LinuxNamespaceType::User => has_user = true,
                LinuxNamespaceType::Network => has_net = true,
                LinuxNamespaceType::Ipc => has_ipc = true,
                LinuxNamespaceType::Uts => has_uts = true,
                _ => {}
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return bad(format!(
                        "linux.namespaces: {:?} path {:?} must be absolute",
                        ns.typ(),
                        p
                    ));
                }
                if !p.exists() {
                    return bad(format!(
                        "linux.namespaces: {:?} path {:?} does not exist",
                        ns.typ(),
                        p
                    ));
                }
            }
        }
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        let new_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if maps && !has_user {
            return bad("linux.uidMappings/gidMappings given without a user namespace".into());
        }
        if new_user && !maps {
            return bad(
                "linux.namespaces: a new user namespace needs uidMappings and gidMappings".into(),
            );
        }
        for (key, _) in linux.sysctl().iter().flatten() {
            if key.starts_with("net.") && !has_net {
                return bad(format!(
                    "linux.sysctl: {key} needs a network namespace of its own"
                ));
            }
            let ipc = key.starts_with("kernel.msg")
                || key.starts_with("kernel.sem")
                || key.starts_with("kernel.shm")
                || key.starts_with("fs.mqueue.");
            if ipc && !has_ipc {
                return bad(format!(
                    "linux.sysctl: {key} needs an ipc namespace of its own"
                ));
            }
            if (key == "kernel.hostname" || key == "kernel.domainname") && !has_uts {
                return bad(format!(
                    "linux.sysctl: {key} needs a uts namespace of its own"
                ));
            }
        }
        if spec.hostname().is_some() && !has_uts {
            return bad("hostname: set without a uts namespace".into());
        }
        if let Some(prop) = linux.rootfs_propagation() {
            if crate::rootfs::propagation_flag(prop).is_none() {
                return bad(format!("linux.rootfsPropagation {prop:?}: unknown"));
            }
        }
        if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return bad(
                "linux.netDevices: moving network devices is not supported by berth-runtime".into(),
            );
        }
        if linux.intel_rdt().is_some() {
            return bad(
                "linux.intelRdt: Intel RDT (resctrl) is not supported by berth-runtime".into(),
            );
        }
        if let Some(seccomp) = linux.seccomp() {
            crate::seccomp::check(seccomp).map_err(|e| Error::config(path, e.to_string()))?;
        }
    }
    Ok(())
}

/// Default `config.json` as `berth-runtime spec` writes it: runc's default (a `sh` on a
/// terminal, read-only root, the usual mounts, masked and read-only paths), without
/// inheritable or ambient capabilities (CVE-2022-29162). `rootless` adds a user namespace
/// mapping the caller and drops the network namespace, like `runc spec --rootless`.
pub fn default_spec(rootless: bool) -> Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    // 1.0.2 like runc's: older runtimes (crun 1.8) refuse bundles that say 1.2.
    let mut spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
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
    });
    if rootless {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        spec["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        spec["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        spec["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}]);
        spec["linux"]
            .as_object_mut()
            .expect("object")
            .remove("resources");
        // Without a network namespace of its own, sysfs is bound from the host.
        spec["mounts"][5] = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        spec["mounts"][2]["options"] = serde_json::json!([
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620"
        ]);
    }
    spec
}
