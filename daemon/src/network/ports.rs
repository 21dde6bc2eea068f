//! Published ports. Every binding gets a userland proxy in berthd (a TCP or UDP listener on
//! the host address and port, forwarding to the container's address): binding it first is
//! also how a port already in use is refused before anything is set up, and it is what makes
//! `127.0.0.1:PORT` work. Traffic from other hosts and to the host's own non-loopback
//! addresses is DNATed by rules in Berth's own nftables table (`ip berth_<bridge>`), with
//! masquerading for the bridges' subnets; the table is rewritten whole, atomically, on every
//! change, and deleted when it would be empty.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::Network;

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub proto: String,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

struct Published {
    rule: Rule,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
pub struct Ports {
    by_container: tokio::sync::Mutex<HashMap<String, Vec<Published>>>,
}

/// One wanted binding: `container_port/proto` → `host_ip:host_port` (0: any free port).
#[derive(Clone, Debug)]
pub struct Want {
    pub proto: String,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

impl Ports {
    /// Bind every wanted port (all or none), start their proxies; the rules, host ports
    /// filled in.
    pub async fn publish(
        &self,
        id: &str,
        container_ip: Ipv4Addr,
        wants: &[Want],
    ) -> Result<Vec<Rule>, String> {
        let mut bound = Vec::new();
        for w in wants {
            let addr = SocketAddr::new(IpAddr::V4(w.host_ip), w.host_port);
            let l = match w.proto.as_str() {
                "tcp" => tokio::net::TcpListener::bind(addr).await.map(Listener::Tcp),
                "udp" => tokio::net::UdpSocket::bind(addr).await.map(Listener::Udp),
                p => return Err(format!("protocol {p} is not supported for publishing")),
            };
            let l = l.map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!(
                        "driver failed programming external connectivity on endpoint {}: Bind for {addr} failed: port is already allocated",
                        &id[..id.len().min(12)]
                    )
                } else {
                    format!("bind {addr}/{}: {e}", w.proto)
                }
            })?;
            let port = match &l {
                Listener::Tcp(t) => t.local_addr(),
                Listener::Udp(u) => u.local_addr(),
            }
            .map_err(|e| e.to_string())?
            .port();
            bound.push((
                Rule {
                    proto: w.proto.clone(),
                    host_ip: w.host_ip,
                    host_port: port,
                    container_ip,
                    container_port: w.container_port,
                },
                l,
            ));
        }
        let mut out = Vec::new();
        let mut pubs = Vec::new();
        for (rule, l) in bound {
            let to = SocketAddr::new(IpAddr::V4(rule.container_ip), rule.container_port);
            let task = match l {
                Listener::Tcp(t) => tokio::spawn(proxy_tcp(t, to)),
                Listener::Udp(u) => tokio::spawn(proxy_udp(u, to)),
            };
            out.push(rule.clone());
            pubs.push(Published { rule, task });
        }
        self.by_container
            .lock()
            .await
            .entry(id.to_string())
            .or_default()
            .extend(pubs);
        Ok(out)
    }

    /// Stop the proxies of container `id` (its ports are free again). Did it have any?
    pub async fn unpublish(&self, id: &str) -> bool {
        match self.by_container.lock().await.remove(id) {
            Some(pubs) => {
                for p in pubs {
                    p.task.abort();
                }
                true
            }
            None => false,
        }
    }

    pub async fn rules(&self) -> Vec<Rule> {
        self.by_container
            .lock()
            .await
            .values()
            .flatten()
            .map(|p| p.rule.clone())
            .collect()
    }
}

const PROXY_BUF: usize = 256 << 10;

async fn proxy_tcp(l: tokio::net::TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut client, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut upstream) = tokio::net::TcpStream::connect(to).await {
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                // Large buffers: fewer, bigger reads and writes per byte proxied.
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut upstream,
                    PROXY_BUF,
                    PROXY_BUF,
                )
                .await;
            }
        });
    }
}

async fn proxy_udp(l: tokio::net::UdpSocket, to: SocketAddr) {
    let l = Arc::new(l);
    let flows: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>>> =
        Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = l.recv_from(&mut buf).await else {
            continue;
        };
        let up = {
            let mut f = flows.lock().await;
            match f.get(&from) {
                Some(s) => s.clone(),
                None => {
                    let Ok(s) = tokio::net::UdpSocket::bind("0.0.0.0:0").await else {
                        continue;
                    };
                    if s.connect(to).await.is_err() {
                        continue;
                    }
                    let s = Arc::new(s);
                    f.insert(from, s.clone());
                    // Replies go back to the client until the flow is idle for a minute.
                    let (s2, l2, flows2) = (s.clone(), l.clone(), flows.clone());
                    tokio::spawn(async move {
                        let mut b = vec![0u8; 65536];
                        let idle = std::time::Duration::from_secs(60);
                        while let Ok(Ok(n)) = tokio::time::timeout(idle, s2.recv(&mut b)).await {
                            let _ = l2.send_to(&b[..n], from).await;
                        }
                        flows2.lock().await.remove(&from);
                    });
                    s
                }
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

/// Containers reach out through the host: IPv4 forwarding on, as Docker does.
pub fn enable_forwarding() {
    let p = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(p).is_ok_and(|v| v.trim() != "1") {
        let _ = std::fs::write(p, "1");
    }
}

/// The nftables table for a set of bridge networks and rules (None: no table at all).
pub fn ruleset(table: &str, networks: &[Network], rules: &[Rule]) -> Option<String> {
    let bridges: Vec<&Network> = networks.iter().filter(|n| n.driver == "bridge").collect();
    let nat: Vec<&Network> = bridges.iter().copied().filter(|n| !n.internal).collect();
    if bridges.is_empty() && rules.is_empty() {
        return None;
    }
    let mut s = format!("table ip {table} {{\n");
    // Isolation, as Docker's: no forwarding between two networks' bridges, and none in or
    // out of an internal network's.
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    for n in &bridges {
        if n.internal {
            s.push_str(&format!(
                "    iifname \"{b}\" oifname != \"{b}\" drop\n    oifname \"{b}\" iifname != \"{b}\" drop\n",
                b = n.bridge
            ));
        }
        for o in &bridges {
            if o.bridge != n.bridge {
                s.push_str(&format!(
                    "    iifname \"{}\" oifname \"{}\" drop\n",
                    n.bridge, o.bridge
                ));
            }
        }
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in &nat {
        s.push_str(&format!(
            "    ip saddr {} oifname != \"{}\" masquerade\n",
            n.subnet, n.bridge
        ));
    }
    s.push_str("  }\n");
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump publish\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    ip daddr != 127.0.0.0/8 fib daddr type local jump publish\n  }\n");
    s.push_str("  chain publish {\n");
    for r in rules {
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
    Some(s)
}

/// Replace Berth's table (named after the default bridge) with what `networks` and `rules`
/// need, in one `nft` transaction. Without nft, a warning: the proxies still serve.
pub async fn apply_rules(
    last: &tokio::sync::Mutex<String>,
    bridge: &str,
    networks: &[Network],
    rules: &[Rule],
) {
    let table = format!(
        "berth_{}",
        bridge
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    );
    let mut script = format!("table ip {table}\ndelete table ip {table}\n");
    if let Some(r) = ruleset(&table, networks, rules) {
        script.push_str(&r);
    }
    // Nothing changed since the last transaction: no nft run (the common case for a
    // container without published ports).
    let mut last = last.lock().await;
    if *last == script {
        return;
    }
    *last = script.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
        use std::io::Write;
        let mut c = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("run nft: {e}"))?;
        c.stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())
            .map_err(|e| e.to_string())?;
        let o = c.wait_with_output().map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        Ok(())
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            "nftables rules not applied (published ports work through the proxy only): {e}"
        ),
        Err(e) => tracing::warn!("nftables: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_text() {
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
        };
        let r = Rule {
            proto: "tcp".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8080,
            container_ip: "172.17.0.2".parse().unwrap(),
            container_port: 80,
        };
        let s = ruleset("berth_berth0", std::slice::from_ref(&n), &[r]).unwrap();
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(s.contains("ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.17.0.2:80"));
        assert!(ruleset("t", &[], &[]).is_none());
        let mut m = n.clone();
        m.name = "inside".into();
        m.bridge = "br-x".into();
        m.internal = true;
        let s = ruleset("t", &[n, m], &[]).unwrap();
        assert!(
            s.contains("iifname \"berth0\" oifname \"br-x\" drop"),
            "{s}"
        );
        assert!(
            s.contains("iifname \"br-x\" oifname != \"br-x\" drop"),
            "{s}"
        );
        assert!(
            !s.contains("ip saddr 172.17.0.0/16 oifname != \"br-x\""),
            "{s}"
        );
    }
}
