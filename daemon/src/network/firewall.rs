//! Berth's packet-filter rules: masquerading of the bridges' subnets, DNAT of published
//! ports (for traffic to the host's own non-loopback addresses and from other hosts; the
//! userland proxies serve the rest) and isolation between networks, as Docker's. IPv6 the
//! same on dual-stack networks: their subnets masqueraded, isolated, and published ports
//! DNATed to the container's IPv6 address.
//!
//! Two backends (daemon.json `firewall-backend`, as Docker 28's): nftables — one table of
//! Berth's own, `ip berth_<bridge>`, replaced whole in one `nft -f` transaction — and
//! iptables where nft is missing — chains of Berth's own (`BERTH-<bridge>-FWD|NAT|PUB`)
//! filled by one `iptables-restore --noflush` and jumped to from the built-in chains. Both
//! are removed entirely when nothing needs them.

use std::process::{Command, Stdio};

use super::ports::Rule;
use super::Network;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
    /// Neither tool found: published ports work through the proxies only.
    Off,
}

impl Backend {
    /// The configured backend, or nftables when `nft` is installed, else iptables.
    pub fn choose(setting: Option<&str>) -> Result<Backend, String> {
        match setting {
            Some("nftables") => Ok(Backend::Nftables),
            Some("iptables") => Ok(Backend::Iptables),
            Some(o) => Err(format!(
                "firewall-backend {o:?}: want \"nftables\" or \"iptables\""
            )),
            None if on_path("nft") => Ok(Backend::Nftables),
            None if on_path("iptables") && on_path("iptables-restore") => Ok(Backend::Iptables),
            None => Ok(Backend::Off),
        }
    }
}

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Berth's objects are named after the default bridge: several berthds (each with its own
/// bridge) share a host.
pub struct Firewall {
    pub backend: Backend,
    /// nftables table name.
    table: String,
    /// iptables chain prefix.
    chains: String,
    /// What was last applied (nothing is run when it has not changed) and whether the
    /// other backend's leftovers were cleared.
    last: tokio::sync::Mutex<Option<String>>,
}

/// An iptables chain Berth owns: its table, the built-in chain that jumps to it and the
/// jump's match.
struct Hook {
    table: &'static str,
    builtin: &'static str,
    suffix: &'static str,
    matches: &'static [&'static str],
}

/// The IPv4 or the IPv6 tools and the chains Berth hooks for each.
struct Family {
    tool: &'static str,
    restore: &'static str,
    hooks: &'static [Hook],
}

const V4: Family = Family {
    tool: "iptables",
    restore: "iptables-restore",
    hooks: HOOKS,
};

const V6: Family = Family {
    tool: "ip6tables",
    restore: "ip6tables-restore",
    hooks: HOOKS6,
};

const HOOKS6: &[Hook] = &[
    Hook {
        table: "filter",
        builtin: "FORWARD",
        suffix: "FWD",
        matches: &[],
    },
    Hook {
        table: "nat",
        builtin: "POSTROUTING",
        suffix: "NAT",
        matches: &[],
    },
    Hook {
        table: "nat",
        builtin: "PREROUTING",
        suffix: "PUB",
        matches: &["-m", "addrtype", "--dst-type", "LOCAL"],
    },
    Hook {
        table: "nat",
        builtin: "OUTPUT",
        suffix: "PUB",
        matches: &[
            "!",
            "-d",
            "::1/128",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
        ],
    },
];

const HOOKS: &[Hook] = &[
    Hook {
        table: "filter",
        builtin: "FORWARD",
        suffix: "FWD",
        matches: &[],
    },
    Hook {
        table: "nat",
        builtin: "POSTROUTING",
        suffix: "NAT",
        matches: &[],
    },
    Hook {
        table: "nat",
        builtin: "PREROUTING",
        suffix: "PUB",
        matches: &["-m", "addrtype", "--dst-type", "LOCAL"],
    },
    Hook {
        table: "nat",
        builtin: "OUTPUT",
        suffix: "PUB",
        matches: &[
            "!",
            "-d",
            "127.0.0.0/8",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
        ],
    },
];

impl Firewall {
    pub fn new(backend: Backend, bridge: &str) -> Firewall {
        let safe: String = bridge
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Firewall {
            backend,
            table: format!("berth_{safe}"),
            chains: format!("BERTH-{safe}"),
            last: Default::default(),
        }
    }

    /// Make the rules what `networks` and `rules` need (all of them gone when nothing
    /// does). Failures are logged: the proxies still serve published ports.
    pub async fn apply(&self, networks: &[Network], rules: &[Rule]) {
        let text = match self.backend {
            Backend::Nftables => nft_ruleset(&self.table, networks, rules),
            Backend::Iptables => iptables_ruleset(&self.chains, networks, rules),
            Backend::Off => None,
        };
        let text6 = match self.backend {
            Backend::Iptables => ip6tables_ruleset(&self.chains, networks, rules),
            _ => None,
        };
        let want = format!(
            "{}{}",
            text.clone().unwrap_or_default(),
            text6.clone().unwrap_or_default()
        );
        let mut last = self.last.lock().await;
        if last.as_deref() == Some(want.as_str()) {
            return;
        }
        let first = last.is_none();
        *last = Some(want);
        let (backend, table, chains) = (self.backend, self.table.clone(), self.chains.clone());
        let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
            if first {
                // A previous run with the other backend may have left its rules.
                match backend {
                    Backend::Nftables if on_path("iptables") => {
                        iptables_remove(&V4, &chains);
                        iptables_remove(&V6, &chains);
                    }
                    Backend::Iptables if on_path("nft") => nft_remove(&table),
                    _ => {}
                }
            }
            match (backend, text) {
                (Backend::Nftables, t) => nft_apply(&table, t.as_deref()),
                (Backend::Iptables, t) => {
                    match t {
                        Some(t) => iptables_apply(&V4, &chains, &t)?,
                        None => iptables_remove(&V4, &chains),
                    }
                    match text6 {
                        Some(t) => iptables_apply(&V6, &chains, &t),
                        None => {
                            if on_path(V6.tool) {
                                iptables_remove(&V6, &chains);
                            }
                            Ok(())
                        }
                    }
                }
                (Backend::Off, _) => Ok(()),
            }
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                backend = ?self.backend,
                "firewall rules not applied (published ports work through the proxy only): {e}"
            ),
            Err(e) => tracing::warn!("firewall: {e}"),
        }
    }
}

/// Run `cmd` with `input` on its stdin; its stderr in the error.
fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<(), String> {
    use std::io::Write;
    let name = format!("{:?}", cmd.get_program());
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {name}: {e}"))?;
    c.stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(|e| format!("{name}: {e}"))?;
    let o = c.wait_with_output().map_err(|e| format!("{name}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

/// What isolation drops, as Docker's: forwarding between two networks' bridges, and any
/// in or out of an internal network's.
enum Cut<'a> {
    Between(&'a str, &'a str),
    OutOf(&'a str),
    Into(&'a str),
}

fn cuts<'a>(bridges: &[&'a Network]) -> Vec<Cut<'a>> {
    let mut out = Vec::new();
    for n in bridges {
        if n.internal {
            out.push(Cut::OutOf(&n.bridge));
            out.push(Cut::Into(&n.bridge));
        }
        for o in bridges.iter().filter(|o| o.bridge != n.bridge) {
            out.push(Cut::Between(&n.bridge, &o.bridge));
        }
    }
    out
}

/// An nftables forward chain with the isolation cuts between `bridges`.
fn nft_forward(bridges: &[&Network]) -> String {
    let mut s = String::from(
        "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
    );
    for c in cuts(bridges) {
        s.push_str(&match c {
            Cut::Between(a, b) => format!("    iifname \"{a}\" oifname \"{b}\" drop\n"),
            Cut::OutOf(b) => format!("    iifname \"{b}\" oifname != \"{b}\" drop\n"),
            Cut::Into(b) => format!("    oifname \"{b}\" iifname != \"{b}\" drop\n"),
        });
    }
    s.push_str("  }\n");
    s
}

/// The nftables table for a set of bridge networks and rules (None: no table at all).
pub fn nft_ruleset(table: &str, networks: &[Network], rules: &[Rule]) -> Option<String> {
    let bridges: Vec<&Network> = networks.iter().filter(|n| n.driver == "bridge").collect();
    if bridges.is_empty() && rules.is_empty() {
        return None;
    }
    let mut s = format!("table ip {table} {{\n");
    s.push_str(&nft_forward(&bridges));
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in bridges.iter().filter(|n| !n.internal) {
        s.push_str(&format!(
            "    ip saddr {} oifname != \"{}\" masquerade\n",
            n.subnet, n.bridge
        ));
    }
    s.push_str("  }\n");
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump publish\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    ip daddr != 127.0.0.0/8 fib daddr type local jump publish\n  }\n");
    s.push_str("  chain publish {\n");
    for r in rules.iter().filter(|r| r.dnat_family(false)) {
        let daddr = if r.host_ip.is_unspecified() {
            String::new()
        } else {
            format!("ip daddr {} ", r.host_ip)
        };
        s.push_str(&format!(
            "    {daddr}{} dport {} dnat to {}:{}\n",
            r.proto, r.host_port, r.container_ip, r.container_port
        ));
    }
    s.push_str("  }\n}\n");
    // Dual-stack networks: the same isolation for IPv6, their IPv6 subnets masqueraded on
    // the way out, and published ports DNATed to the containers' IPv6 addresses.
    let dual: Vec<&Network> = bridges
        .iter()
        .copied()
        .filter(|n| n.subnet6.is_some())
        .collect();
    let rules6: Vec<&Rule> = rules.iter().filter(|r| r.dnat_family(true)).collect();
    if !dual.is_empty() || !rules6.is_empty() {
        s.push_str(&format!("table ip6 {table} {{\n"));
        s.push_str(&nft_forward(&dual));
        s.push_str(
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
        );
        for n in dual.iter().filter(|n| !n.internal) {
            s.push_str(&format!(
                "    ip6 saddr {} oifname != \"{}\" masquerade\n",
                n.subnet6.as_deref().unwrap_or_default(),
                n.bridge
            ));
        }
        s.push_str("  }\n");
        if !rules6.is_empty() {
            s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump publish\n  }\n");
            s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    ip6 daddr != ::1 fib daddr type local jump publish\n  }\n");
            s.push_str("  chain publish {\n");
            for r in rules6 {
                let daddr = match r.host_ip {
                    std::net::IpAddr::V6(a) if !a.is_unspecified() => format!("ip6 daddr {a} "),
                    _ => String::new(),
                };
                s.push_str(&format!(
                    "    {daddr}{} dport {} dnat to [{}]:{}\n",
                    r.proto,
                    r.host_port,
                    r.container_ip6.expect("dnat_family(true) has one"),
                    r.container_port
                ));
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
    }
    Some(s)
}

/// Replace the table (or delete it: `text` None) in one transaction.
fn nft_apply(table: &str, text: Option<&str>) -> Result<(), String> {
    // "table …; delete table …" deletes it whether or not it existed.
    let mut script = format!(
        "table ip {table}\ndelete table ip {table}\ntable ip6 {table}\ndelete table ip6 {table}\n"
    );
    script.push_str(text.unwrap_or(""));
    run_with_stdin(Command::new("nft").args(["-f", "-"]), &script)
}

fn nft_remove(table: &str) {
    let _ = nft_apply(table, None);
}

/// The `iptables-restore --noflush` input for Berth's chains (None: no chains at all).
/// Declaring a chain there empties it, so the whole set is replaced at once.
pub fn iptables_ruleset(prefix: &str, networks: &[Network], rules: &[Rule]) -> Option<String> {
    let bridges: Vec<&Network> = networks.iter().filter(|n| n.driver == "bridge").collect();
    if bridges.is_empty() && rules.is_empty() {
        return None;
    }
    let mut nat = format!("*nat\n:{prefix}-NAT - [0:0]\n:{prefix}-PUB - [0:0]\n");
    for n in bridges.iter().filter(|n| !n.internal) {
        nat.push_str(&format!(
            "-A {prefix}-NAT -s {} ! -o {} -j MASQUERADE\n",
            n.subnet, n.bridge
        ));
    }
    for r in rules.iter().filter(|r| r.dnat_family(false)) {
        let daddr = if r.host_ip.is_unspecified() {
            String::new()
        } else {
            format!("-d {}/32 ", r.host_ip)
        };
        nat.push_str(&format!(
            "-A {prefix}-PUB {daddr}-p {p} -m {p} --dport {} -j DNAT --to-destination {}:{}\n",
            r.host_port,
            r.container_ip,
            r.container_port,
            p = r.proto
        ));
    }
    nat.push_str("COMMIT\n");
    Some(nat + &iptables_filter(prefix, &bridges, "RELATED,ESTABLISHED,DNAT"))
}

/// The `ip6tables-restore --noflush` input for dual-stack networks and the published
/// ports of their containers (None: neither).
pub fn ip6tables_ruleset(prefix: &str, networks: &[Network], rules: &[Rule]) -> Option<String> {
    let dual: Vec<&Network> = networks
        .iter()
        .filter(|n| n.driver == "bridge" && n.subnet6.is_some())
        .collect();
    let rules6: Vec<&Rule> = rules.iter().filter(|r| r.dnat_family(true)).collect();
    if dual.is_empty() && rules6.is_empty() {
        return None;
    }
    let mut nat = format!("*nat\n:{prefix}-NAT - [0:0]\n:{prefix}-PUB - [0:0]\n");
    for n in dual.iter().filter(|n| !n.internal) {
        nat.push_str(&format!(
            "-A {prefix}-NAT -s {} ! -o {} -j MASQUERADE\n",
            n.subnet6.as_deref().unwrap_or_default(),
            n.bridge
        ));
    }
    for r in rules6 {
        let daddr = match r.host_ip {
            std::net::IpAddr::V6(a) if !a.is_unspecified() => format!("-d {a}/128 "),
            _ => String::new(),
        };
        nat.push_str(&format!(
            "-A {prefix}-PUB {daddr}-p {p} -m {p} --dport {} -j DNAT --to-destination [{}]:{}\n",
            r.host_port,
            r.container_ip6.expect("dnat_family(true) has one"),
            r.container_port,
            p = r.proto
        ));
    }
    nat.push_str("COMMIT\n");
    Some(nat + &iptables_filter(prefix, &dual, "RELATED,ESTABLISHED,DNAT"))
}

/// The filter table's part: isolation cuts, then — in the same FORWARD chain as other
/// software's rules, where a DROP policy (dockerd sets one) must not cut the containers
/// off — the bridges' traffic out and, in, connections in the states `ctstate`.
fn iptables_filter(prefix: &str, bridges: &[&Network], ctstate: &str) -> String {
    let mut filter = format!("*filter\n:{prefix}-FWD - [0:0]\n");
    for c in cuts(bridges) {
        filter.push_str(&match c {
            Cut::Between(a, b) => format!("-A {prefix}-FWD -i {a} -o {b} -j DROP\n"),
            Cut::OutOf(b) => format!("-A {prefix}-FWD -i {b} ! -o {b} -j DROP\n"),
            Cut::Into(b) => format!("-A {prefix}-FWD -o {b} ! -i {b} -j DROP\n"),
        });
    }
    for n in bridges.iter().filter(|n| !n.internal) {
        filter.push_str(&format!(
            "-A {prefix}-FWD -i {b} -j ACCEPT\n-A {prefix}-FWD -o {b} -m conntrack --ctstate {ctstate} -j ACCEPT\n",
            b = n.bridge
        ));
    }
    filter.push_str("COMMIT\n");
    filter
}

fn iptables(fam: &Family, args: &[&str]) -> bool {
    Command::new(fam.tool)
        .args(["-w", "5"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fill Berth's chains and make sure the built-in chains jump to them (once each).
fn iptables_apply(fam: &Family, prefix: &str, text: &str) -> Result<(), String> {
    run_with_stdin(
        Command::new(fam.restore).args(["-w", "5", "--noflush"]),
        text,
    )?;
    for h in fam.hooks {
        let chain = format!("{prefix}-{}", h.suffix);
        let mut rule: Vec<&str> = h.matches.to_vec();
        rule.extend(["-j", &chain]);
        let mut check = vec!["-t", h.table, "-C", h.builtin];
        check.extend(&rule);
        if !iptables(fam, &check) {
            let mut insert = vec!["-t", h.table, "-I", h.builtin, "1"];
            insert.extend(&rule);
            if !iptables(fam, &insert) {
                return Err(format!(
                    "{}: could not add the jump from {} ({}) to {chain}",
                    fam.tool, h.builtin, h.table
                ));
            }
        }
    }
    Ok(())
}

/// Remove the jumps to Berth's chains and the chains.
fn iptables_remove(fam: &Family, prefix: &str) {
    for h in fam.hooks {
        let chain = format!("{prefix}-{}", h.suffix);
        let mut del = vec!["-t", h.table, "-D", h.builtin];
        del.extend(h.matches);
        del.extend(["-j", &chain]);
        // A jump added twice (by hand, or by a race with another tool) goes too.
        for _ in 0..8 {
            if !iptables(fam, &del) {
                break;
            }
        }
    }
    for h in fam.hooks {
        let chain = format!("{prefix}-{}", h.suffix);
        iptables(fam, &["-t", h.table, "-F", &chain]);
        iptables(fam, &["-t", h.table, "-X", &chain]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> (Network, Network) {
        let n = Network {
            id: "x".into(),
            name: "bridge".into(),
            driver: "bridge".into(),
            bridge: "berth0".into(),
            subnet: "172.17.0.0/16".into(),
            gateway: "172.17.0.1".into(),
            internal: false,
            created: String::new(),
            labels: Default::default(),
            ip_range: None,
            mtu: 1500,
            options: Default::default(),
            subnet6: None,
            gateway6: None,
            ip_range6: None,
            aux_addresses: Default::default(),
        };
        let mut m = n.clone();
        m.name = "inside".into();
        m.bridge = "br-x".into();
        m.subnet = "172.18.0.0/16".into();
        m.internal = true;
        (n, m)
    }

    fn rule() -> Rule {
        Rule {
            proto: "tcp".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8080,
            container_ip: "172.17.0.2".parse().unwrap(),
            container_ip6: None,
            container_port: 80,
        }
    }

    #[test]
    fn nft_text() {
        let (n, m) = nets();
        let s = nft_ruleset("berth_berth0", std::slice::from_ref(&n), &[rule()]).unwrap();
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(s.contains("ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.17.0.2:80"));
        assert!(nft_ruleset("t", &[], &[]).is_none());
        let s = nft_ruleset("t", &[n, m], &[]).unwrap();
        assert!(
            s.contains("iifname \"berth0\" oifname \"br-x\" drop"),
            "{s}"
        );
        assert!(
            s.contains("iifname \"br-x\" oifname != \"br-x\" drop"),
            "{s}"
        );
        assert!(!s.contains("ip saddr 172.18.0.0/16"), "{s}");
    }

    #[test]
    fn nft_text_dual_stack() {
        let (mut a, mut b) = nets();
        let s = nft_ruleset("berth_t", &[a.clone(), b.clone()], &[]).unwrap();
        assert!(
            !s.contains("table ip6"),
            "no IPv6 network, no ip6 table: {s}"
        );
        a.subnet6 = Some("fd00:1::/64".into());
        b.subnet6 = Some("fd00:2::/64".into());
        b.internal = false;
        let s = nft_ruleset("berth_t", &[a.clone(), b.clone()], &[]).unwrap();
        let six = &s[s.find("table ip6 berth_t").expect("ip6 table")..];
        assert!(
            six.contains("ip6 saddr fd00:1::/64 oifname != \"berth0\" masquerade"),
            "{six}"
        );
        let cut = format!("iifname \"{}\" oifname \"{}\" drop", a.bridge, b.bridge);
        assert!(six.contains(&cut), "{six}");
    }

    #[test]
    fn ipv6_published_ports_dnat() {
        let (mut a, _) = nets();
        a.subnet6 = Some("fd00:1::/64".into());
        let any = Rule {
            host_ip: "0.0.0.0".parse().unwrap(),
            container_ip6: Some("fd00:1::2".parse().unwrap()),
            ..rule()
        };
        let only6 = Rule {
            host_ip: "::".parse().unwrap(),
            host_port: 8086,
            ..any.clone()
        };
        let addr6 = Rule {
            host_ip: "fd00:9::1".parse().unwrap(),
            host_port: 8087,
            ..any.clone()
        };
        let v4only = Rule {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8084,
            ..any.clone()
        };
        let no6 = Rule {
            host_port: 8085,
            container_ip6: None,
            ..any.clone()
        };
        let rules = [any, only6, addr6, v4only, no6];
        let s = nft_ruleset("berth_t", std::slice::from_ref(&a), &rules).unwrap();
        let (four, six) = s.split_at(s.find("table ip6 berth_t").expect("ip6 table"));
        assert!(
            four.contains("    tcp dport 8080 dnat to 172.17.0.2:80\n"),
            "{four}"
        );
        assert!(
            four.contains("tcp dport 8085 dnat to 172.17.0.2:80"),
            "{four}"
        );
        assert!(!four.contains("8086") && !four.contains("8087"), "{four}");
        assert!(
            six.contains("    tcp dport 8080 dnat to [fd00:1::2]:80\n"),
            "{six}"
        );
        assert!(
            six.contains("    tcp dport 8086 dnat to [fd00:1::2]:80\n"),
            "{six}"
        );
        assert!(
            six.contains("ip6 daddr fd00:9::1 tcp dport 8087 dnat to [fd00:1::2]:80"),
            "{six}"
        );
        assert!(six.contains("ip6 daddr != ::1 fib daddr type local jump publish"));
        assert!(!six.contains("8084") && !six.contains("8085"), "{six}");
        let t = ip6tables_ruleset("BERTH-b", std::slice::from_ref(&a), &rules).unwrap();
        assert!(
            t.contains("-A BERTH-b-PUB -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:1::2]:80\n"),
            "{t}"
        );
        assert!(
            t.contains("-A BERTH-b-PUB -d fd00:9::1/128 -p tcp -m tcp --dport 8087 -j DNAT"),
            "{t}"
        );
        assert!(!t.contains("8084") && !t.contains("8085"), "{t}");
        assert!(
            t.contains("--ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT"),
            "{t}"
        );
        let t4 = iptables_ruleset("BERTH-b", std::slice::from_ref(&a), &rules).unwrap();
        assert!(!t4.contains("8086") && !t4.contains("fd00"), "{t4}");
    }

    #[test]
    fn iptables_text() {
        let (n, m) = nets();
        let s = iptables_ruleset("BERTH-berth0", &[n, m], &[rule()]).unwrap();
        assert!(s.starts_with("*nat\n:BERTH-berth0-NAT - [0:0]\n"), "{s}");
        assert!(
            s.contains("-A BERTH-berth0-NAT -s 172.17.0.0/16 ! -o berth0 -j MASQUERADE\n"),
            "{s}"
        );
        assert!(!s.contains("-s 172.18.0.0/16"), "internal: no NAT: {s}");
        assert!(
            s.contains("-A BERTH-berth0-PUB -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n"),
            "{s}"
        );
        assert!(
            s.contains("-A BERTH-berth0-FWD -i berth0 -o br-x -j DROP\n"),
            "{s}"
        );
        assert!(
            s.contains("-A BERTH-berth0-FWD -i br-x ! -o br-x -j DROP\n"),
            "{s}"
        );
        assert!(
            s.contains("-A BERTH-berth0-FWD -i berth0 -j ACCEPT\n"),
            "{s}"
        );
        assert!(!s.contains("-i br-x -j ACCEPT"), "{s}");
        assert_eq!(s.matches("COMMIT\n").count(), 2);
        assert!(iptables_ruleset("P", &[], &[]).is_none());
    }

    #[test]
    fn backend_setting() {
        assert_eq!(Backend::choose(Some("iptables")), Ok(Backend::Iptables));
        assert_eq!(Backend::choose(Some("nftables")), Ok(Backend::Nftables));
        assert!(Backend::choose(Some("pf")).unwrap_err().contains("pf"));
    }
}
