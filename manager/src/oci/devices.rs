//! Devices: `--device SRC[:DST[:PERMS]]` (a host device, or every device under a host
//! directory), `--device-cgroup-rule`, and `--privileged`'s every host device, as
//! linux.devices entries and linux.resources.devices rules.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_json::{json, Value};

use super::{Error, Options};

/// One device node found on the host.
struct Node {
    kind: &'static str,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn node(path: &Path) -> Result<Option<Node>, std::io::Error> {
    let md = std::fs::metadata(path)?;
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    Ok(Some(Node {
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    }))
}

/// The device nodes under `dir`, recursively (not following symlinks), with their paths.
fn nodes_under(dir: &Path, out: &mut Vec<(std::path::PathBuf, Node)>, skip: &[&str]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if skip.iter().any(|s| p == Path::new(s)) {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            nodes_under(&p, out, skip);
        } else if ft.is_char_device() || ft.is_block_device() {
            if let Ok(Some(n)) = node(&p) {
                out.push((p, n));
            }
        }
    }
}

fn valid_perms(p: &str) -> bool {
    !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// "c 1:3 rwm", "b 8:* r", "a *:* m" → a linux.resources.devices allow rule.
pub fn parse_rule(rule: &str) -> Result<Value, Error> {
    let bad = || {
        Error::Device(format!(
            "invalid device cgroup rule {rule:?}: want e.g. \"c 1:3 rwm\""
        ))
    };
    let f: Vec<&str> = rule.split_whitespace().collect();
    let [kind, numbers, access] = f[..] else {
        return Err(bad());
    };
    if !matches!(kind, "a" | "b" | "c") || !valid_perms(access) {
        return Err(bad());
    }
    let (ma, mi) = numbers.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Value, Error> {
        if s == "*" {
            Ok(Value::Null)
        } else {
            s.parse::<i64>().map(Value::from).map_err(|_| bad())
        }
    };
    let mut r = json!({"allow": true, "type": kind, "access": access});
    let (ma, mi) = (num(ma)?, num(mi)?);
    if !ma.is_null() {
        r["major"] = ma;
    }
    if !mi.is_null() {
        r["minor"] = mi;
    }
    Ok(r)
}

fn device_entry(path: &str, n: &Node) -> Value {
    json!({
        "path": path, "type": n.kind, "major": n.major, "minor": n.minor,
        "fileMode": n.mode, "uid": n.uid, "gid": n.gid,
    })
}

fn allow(n: &Node, access: &str) -> Value {
    json!({"allow": true, "type": n.kind, "major": n.major, "minor": n.minor, "access": access})
}

pub fn with_devices(spec: &mut Value, opts: &Options) -> Result<(), Error> {
    let mut devices: Vec<Value> = Vec::new();
    let mut rules: Vec<Value> = Vec::new();
    if opts.privileged {
        // Every host device, as podman does (the cgroup allows all: see with_resources).
        let mut found = Vec::new();
        nodes_under(
            Path::new("/dev"),
            &mut found,
            &[
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/dev/console",
                "/dev/ptmx",
            ],
        );
        for (p, n) in &found {
            devices.push(device_entry(&p.display().to_string(), n));
        }
    }
    for d in &opts.devices {
        let perms = if d.permissions.is_empty() {
            "rwm"
        } else {
            d.permissions.as_str()
        };
        if !valid_perms(perms) {
            return Err(Error::Device(format!(
                "device {}: invalid permissions {perms:?} (any of r, w, m)",
                d.host_path
            )));
        }
        let dest = if d.container_path.is_empty() {
            d.host_path.as_str()
        } else {
            d.container_path.as_str()
        };
        if !dest.starts_with('/') {
            return Err(Error::Device(format!(
                "device {}: {dest:?} is not an absolute path",
                d.host_path
            )));
        }
        let host = Path::new(&d.host_path);
        let md = std::fs::metadata(host).map_err(|e| {
            Error::Device(format!(
                "error gathering device information while adding custom device {:?}: {e}",
                d.host_path
            ))
        })?;
        if md.is_dir() {
            let mut found = Vec::new();
            nodes_under(host, &mut found, &[]);
            for (p, n) in &found {
                let rel = p.strip_prefix(host).unwrap_or(p);
                let path = Path::new(dest).join(rel).display().to_string();
                devices.push(device_entry(&path, n));
                rules.push(allow(n, perms));
            }
            continue;
        }
        let n = node(host)
            .map_err(|e| Error::Device(format!("device {}: {e}", d.host_path)))?
            .ok_or_else(|| Error::Device(format!("{:?} is not a device node", d.host_path)))?;
        devices.retain(|x| x["path"] != dest);
        devices.push(device_entry(dest, &n));
        rules.push(allow(&n, perms));
    }
    for r in &opts.device_rules {
        rules.push(parse_rule(r)?);
    }
    if !devices.is_empty() {
        spec["linux"]["devices"] = json!(devices);
    }
    if !rules.is_empty() && !opts.privileged {
        if let Some(list) = spec["linux"]["resources"]["devices"].as_array_mut() {
            list.extend(rules);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_docker() {
        assert_eq!(
            parse_rule("c 1:3 rw").unwrap(),
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
        );
        assert_eq!(
            parse_rule("a *:* m").unwrap(),
            json!({"allow": true, "type": "a", "access": "m"})
        );
        for bad in ["c 1:3", "x 1:3 rw", "c 1-3 rw", "c 1:3 rwx", "c a:3 r"] {
            assert!(parse_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_device_gets_a_node_and_a_rule() {
        let mut spec =
            json!({"linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}});
        let opts = Options {
            devices: vec![super::super::DeviceOpt {
                host_path: "/dev/null".into(),
                container_path: "/dev/xnull".into(),
                permissions: "r".into(),
            }],
            ..Default::default()
        };
        with_devices(&mut spec, &opts).unwrap();
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/xnull");
        assert_eq!(spec["linux"]["devices"][0]["major"], 1);
        assert_eq!(spec["linux"]["resources"]["devices"][1]["access"], "r");
        let opts = Options {
            devices: vec![super::super::DeviceOpt {
                host_path: "/etc/hostname".into(),
                container_path: String::new(),
                permissions: String::new(),
            }],
            ..Default::default()
        };
        assert!(with_devices(&mut spec, &opts).is_err());
    }
}
