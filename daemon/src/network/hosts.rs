//! A container's /etc/hosts, /etc/hostname and /etc/resolv.conf (written at create,
//! bind-mounted into it, edited in place when addresses or links change).

use std::path::{Path, PathBuf};

use super::*;

impl Net {
    /// Edit a container's /etc/hosts (in `dir`): the lines `drop` picks go, `add` is
    /// appended. In place: the file is bind-mounted into a running container.
    pub(super) fn edit_hosts(
        dir: &Path,
        drop: impl Fn(&str) -> bool,
        add: &[String],
    ) -> Result<(), String> {
        let p = dir.join("hosts");
        let Ok(text) = std::fs::read_to_string(&p) else {
            return Ok(());
        };
        let mut out: String = text
            .lines()
            .filter(|l| !drop(l))
            .map(|l| format!("{l}\n"))
            .collect();
        for l in add {
            out.push_str(l);
            out.push('\n');
        }
        if out != text {
            std::fs::write(&p, out).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// The container's own line of its /etc/hosts (in `dir`) when its first address
    /// changes: `old`'s lines go (none: ""), `new` gets one with its hostname (none: "").
    pub fn retarget_hosts(dir: &Path, old: &str, new: &str) -> Result<(), String> {
        let hostname = std::fs::read_to_string(dir.join("hostname")).unwrap_or_default();
        let addr = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
        let mine = |a: &str| !a.is_empty() && (a == old || a == new);
        let add: Vec<String> = (!new.is_empty())
            .then(|| format!("{new}\t{}", hostname.trim()))
            .into_iter()
            .collect();
        Self::edit_hosts(dir, |l| mine(&addr(l)), &add)
    }

    /// The `--link` lines of a container's /etc/hosts (in `dir`; default bridge): each
    /// (address, alias, name) replaces the lines naming that alias.
    pub fn link_hosts(dir: &Path, links: &[(String, String, String)]) -> Result<(), String> {
        let alias_of = |l: &str| l.split_whitespace().nth(1).unwrap_or("").to_string();
        let add: Vec<String> = links
            .iter()
            .map(|(ip, alias, name)| {
                if alias == name {
                    format!("{ip}\t{alias}")
                } else {
                    format!("{ip}\t{alias} {name}")
                }
            })
            .collect();
        Self::edit_hosts(
            dir,
            |l| links.iter().any(|(_, a, _)| *a == alias_of(l)),
            &add,
        )
    }

    /// Write the container's /etc/hosts, /etc/hostname and /etc/resolv.conf into `dir`;
    /// returns (destination, source) bind mounts for its spec.
    pub fn etc_files(
        dir: &Path,
        hostname: &str,
        ep: Option<&Endpoint>,
        host_network: bool,
        extra_hosts: &[String],
        dns: &[String],
    ) -> Result<Vec<(String, PathBuf)>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let w = |name: &str, text: String| -> Result<PathBuf, String> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        let mut hosts = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
        };
        for h in extra_hosts {
            // docker's --add-host name:ip (or name=ip)
            let (name, ip) = h
                .split_once(['=', ':'])
                .ok_or_else(|| format!("invalid argument {h:?} for --add-host: want host:ip"))?;
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        if let Some(ep) = ep {
            hosts.push_str(&format!("{}\t{hostname}\n", ep.ip));
            if !ep.ip6.is_empty() {
                hosts.push_str(&format!("{}\t{hostname}\n", ep.ip6));
            }
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = if !dns.is_empty() {
            dns.iter().map(|d| format!("nameserver {d}\n")).collect()
        } else if host_network {
            host_resolv
        } else {
            // The host's resolvers, minus loopback ones (unreachable from a namespace).
            let mut out = String::new();
            let mut servers = 0;
            for l in host_resolv.lines() {
                let t = l.trim();
                if let Some(s) = t.strip_prefix("nameserver") {
                    let s = s.trim();
                    if s.starts_with("127.") || s == "::1" {
                        continue;
                    }
                    servers += 1;
                }
                out.push_str(l);
                out.push('\n');
            }
            if servers == 0 {
                out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
            }
            out
        };
        Ok(vec![
            ("/etc/hosts".into(), w("hosts", hosts)?),
            (
                "/etc/hostname".into(),
                w("hostname", format!("{hostname}\n"))?,
            ),
            ("/etc/resolv.conf".into(), w("resolv.conf", resolv)?),
        ])
    }
}
