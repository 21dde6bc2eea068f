//! Endpoints: a container's namespace, veth pair and address on a bridge network — made at
//! create (`attach`), added and taken away (`connect`, `disconnect`), released at exit and
//! plugged in again at the next start (`release`, `reattach`), removed with the container
//! (`detach`); the embedded DNS's answers (`resolve`).

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use super::*;

/// What a container asks of its endpoint.
#[derive(Clone, Debug, Default)]
pub struct EndpointRequest {
    /// Its name (for the embedded DNS) and `--network-alias`es.
    pub name: String,
    pub aliases: Vec<String>,
    /// `--ip` (user-defined networks only, like Docker).
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address`.
    pub mac: Option<[u8; 6]>,
    /// The address to take again when it is free (a restarted container's last one).
    pub prefer_ip: Option<Ipv4Addr>,
    /// `--link NAME:ALIAS` on a user-defined network: the embedded DNS answers ALIAS with
    /// NAME's address, for this container only.
    pub links: Vec<(String, String)>,
    /// `--ip6` (user-defined IPv6 networks only).
    pub ip6: Option<std::net::Ipv6Addr>,
    pub prefer_ip6: Option<std::net::Ipv6Addr>,
    /// `--link-local-ip`s.
    pub link_local_ips: Vec<std::net::IpAddr>,
    pub driver_opts: BTreeMap<String, String>,
}

/// `NAME[:ALIAS]` (or the stored `/NAME:/CONTAINER/ALIAS`) → (NAME, ALIAS).
pub fn parse_link(l: &str) -> Result<(String, String), String> {
    let (name, alias) = l.split_once(':').unwrap_or((l, l));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(format!("invalid link {l:?}: want NAME[:ALIAS]"));
    }
    Ok((name.to_string(), alias.to_string()))
}

impl EndpointRequest {
    /// From an Engine API `EndpointSettings` (`Aliases`, `IPAMConfig.IPv4Address`,
    /// `MacAddress`; `mac` is the fallback MAC, e.g. the container config's).
    pub fn from_config(
        name: &str,
        ec: &serde_json::Value,
        mac: Option<&str>,
    ) -> Result<EndpointRequest, String> {
        let ip = match ec["IPAMConfig"]["IPv4Address"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(a) => Some(
                a.parse()
                    .map_err(|_| format!("invalid IPv4 address: {a}"))?,
            ),
            None => None,
        };
        let mac = match ec["MacAddress"].as_str().or(mac).filter(|s| !s.is_empty()) {
            Some(m) => Some(parse_mac(m)?),
            None => None,
        };
        let ip6 = match ec["IPAMConfig"]["IPv6Address"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(a) => Some(
                a.parse()
                    .map_err(|_| format!("invalid IPv6 address: {a}"))?,
            ),
            None => None,
        };
        let link_local_ips = ec["IPAMConfig"]["LinkLocalIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .map(|a| {
                let ip: std::net::IpAddr = a
                    .parse()
                    .map_err(|_| format!("invalid link-local IP address: {a}"))?;
                let link_local = match ip {
                    std::net::IpAddr::V4(v) => v.is_link_local(),
                    std::net::IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
                };
                if !link_local {
                    return Err(format!(
                        "invalid link-local IP address: {a} is not link-local"
                    ));
                }
                Ok(ip)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let driver_opts = ec["DriverOpts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        Ok(EndpointRequest {
            ip6,
            prefer_ip6: None,
            link_local_ips,
            driver_opts,
            name: name.to_string(),
            aliases: ec["Aliases"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            ip,
            mac,
            prefer_ip: None,
            links: ec["Links"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .map(parse_link)
                .collect::<Result<_, _>>()?,
        })
    }

    /// What plugging `ep` in again asks for: its `--ip` and `--mac-address` if it had
    /// them, else its last address when still free.
    pub(super) fn again(ep: &Endpoint) -> EndpointRequest {
        let ip = ep.ip.parse().ok();
        EndpointRequest {
            name: ep.name.clone(),
            aliases: ep.aliases.clone(),
            ip: ip.filter(|_| ep.static_ip),
            mac: parse_mac(&ep.mac).ok().filter(|_| ep.static_mac),
            prefer_ip: ip,
            links: ep.links.clone(),
            ip6: ep.ip6.parse().ok().filter(|_| ep.static_ip6),
            prefer_ip6: ep.ip6.parse().ok(),
            link_local_ips: ep
                .link_local_ips
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            driver_opts: ep.driver_opts.clone(),
        }
    }
}

/// `aa:bb:cc:dd:ee:ff` → bytes.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut out = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("invalid MAC address: {s}"));
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC address: {s}"))?;
    }
    Ok(out)
}

/// Bytes → `aa:bb:cc:dd:ee:ff`.
pub(super) fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Net {
    /// The address a name means to container `asker` (for its embedded DNS): a container
    /// on one of the user-defined networks it is on, by name, alias or short ID.
    /// A container name, alias or short ID on one of the asker's user-defined networks:
    /// its IPv4 address, and its IPv6 one on a dual-stack network.
    pub async fn resolve(
        &self,
        asker: &str,
        name: &str,
    ) -> Option<(Ipv4Addr, Option<std::net::Ipv6Addr>)> {
        let st = self.state.lock().await;
        let nets: std::collections::HashSet<&str> = st
            .active()
            .filter(|(k, e)| k.as_str() == asker && e.network != "bridge")
            .map(|(_, e)| e.network.as_str())
            .collect();
        // The asker's own links first: ALIAS means that container, on a shared network.
        let linked = st
            .active()
            .filter(|(k, _)| k.as_str() == asker)
            .flat_map(|(_, e)| e.links.iter())
            .find(|(_, alias)| alias.eq_ignore_ascii_case(name.trim_end_matches('.')))
            .map(|(target, _)| target.clone());
        let name = linked.as_deref().unwrap_or(name);
        let hit = st
            .active()
            .filter(|(_, e)| nets.contains(e.network.as_str()))
            .find(|(id, e)| dns::matches(name, id, &e.name, &e.aliases))
            .and_then(|(_, e)| Some((e.ip.parse().ok()?, e.ip6.parse().ok())));
        hit
    }

    pub async fn endpoint(&self, id: &str) -> Option<Endpoint> {
        self.state.lock().await.endpoints.get(id).cloned()
    }

    /// Network for container `id` with `--network mode`: a namespace with only `lo` (none),
    /// the host's (host), or a namespace on the default bridge (default/bridge). Undone on
    /// failure: nothing is left half-made.
    pub async fn attach(
        self: &Arc<Self>,
        id: &str,
        mode: &str,
        req: &EndpointRequest,
    ) -> Result<Attachment, Error> {
        match mode {
            "host" => Ok(Attachment::default()),
            "none" => {
                let ns = links::netns_path(&self.netns_dir, id);
                let ns2 = ns.clone();
                tokio::task::spawn_blocking(move || links::create_netns(&ns2))
                    .await
                    .map_err(|e| e.to_string())??;
                Ok(Attachment {
                    netns: Some(ns),
                    endpoint: None,
                })
            }
            "" | "default" | "bridge" => {
                if req.ip.is_some() {
                    return Err(Error::Invalid(
                        "user specified IP address is supported on user defined networks only"
                            .into(),
                    ));
                }
                self.attach_bridge(id, "bridge", req).await
            }
            other => {
                let n = self
                    .find(other)
                    .await
                    .ok_or_else(|| Error::NoSuchNetwork(other.to_string()))?;
                let a = self.attach_bridge(id, &n.name, req).await?;
                // User-defined networks resolve their containers' names.
                if let Some(ns) = &a.netns {
                    if let Err(e) = self.serve_dns(id, ns).await {
                        self.detach(id).await;
                        return Err(e.into());
                    }
                }
                Ok(a)
            }
        }
    }

    pub(super) async fn attach_bridge(
        &self,
        id: &str,
        network: &str,
        req: &EndpointRequest,
    ) -> Result<Attachment, Error> {
        let mut st = self.state.lock().await;
        let net = match network {
            "bridge" => self.default_network(&mut st).await?,
            n => st
                .networks
                .get(n)
                .cloned()
                .ok_or_else(|| Error::NoSuchNetwork(n.to_string()))?,
        };
        let ns = links::netns_path(&self.netns_dir, id);
        let ns2 = ns.clone();
        tokio::task::spawn_blocking(move || links::create_netns(&ns2))
            .await
            .map_err(|e| e.to_string())??;
        let ep = match self.plug(&st, &net, &ns, "eth0", true, req).await {
            Ok(ep) => ep,
            Err(e) => {
                links::remove_netns(&ns);
                return Err(e);
            }
        };
        let veth = ep.veth.clone();
        st.endpoints.insert(id.to_string(), ep.clone());
        if let Err(e) = self.save(&st) {
            st.endpoints.remove(id);
            let _ = links::delete(&veth).await;
            links::remove_netns(&ns);
            return Err(e.into());
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok(Attachment {
            netns: Some(ns),
            endpoint: Some(ep),
        })
    }

    /// Allocate an address on `net` (IPAM: `req.ip`, or the lowest free one of the range or
    /// subnet) and plug a veth named `ifname` into the namespace `ns`; with `route`, the
    /// default route goes through this network's gateway.
    pub(super) async fn plug(
        &self,
        st: &Records,
        net: &Network,
        ns: &Path,
        ifname: &str,
        route: bool,
        req: &EndpointRequest,
    ) -> Result<Endpoint, Error> {
        let (subnet, prefix) = parse_cidr(&net.subnet)?;
        let gateway: Ipv4Addr = net
            .gateway
            .parse()
            .map_err(|_| format!("bad gateway {}", net.gateway))?;
        links::ensure_bridge(&net.bridge, gateway, prefix, net.mtu).await?;
        if let (Some(s6), Some(g6)) = (&net.subnet6, &net.gateway6) {
            let (_, p6) = ipam::parse_cidr6(s6)?;
            let g6 = g6.parse().map_err(|_| format!("bad IPv6 gateway {g6}"))?;
            links::ensure_bridge6(&net.bridge, g6, p6).await?;
        }
        ports::enable_forwarding();
        let used: std::collections::HashSet<Ipv4Addr> = st
            .active()
            .filter(|(_, e)| e.network == net.name)
            .filter_map(|(_, e)| e.ip.parse().ok())
            .collect();
        let base = u32::from(subnet);
        let size = 1u32 << (32 - prefix as u32);
        let usable = |a: Ipv4Addr| {
            let v = u32::from(a);
            v > base
                && v < base + size - 1
                && a != gateway
                && !used.contains(&a)
                && !net.aux_addresses.values().any(|x| x.parse() == Ok(a))
        };
        let ip = match req.ip {
            Some(a) if usable(a) => a,
            Some(a) if used.contains(&a) => {
                return Err(format!("Address already in use: {a} on network {}", net.name).into())
            }
            Some(a) => {
                return Err(Error::Invalid(format!(
                    "invalid address {a}: not a usable address of {} ({})",
                    net.subnet, net.name
                )))
            }
            None if req.prefer_ip.is_some_and(&usable) => req.prefer_ip.expect("checked"),
            None => {
                let (rb, rs) = match &net.ip_range {
                    Some(r) => {
                        let (rn, rp) = parse_cidr(r)?;
                        (u32::from(rn), 1u32 << (32 - rp as u32))
                    }
                    None => (base, size),
                };
                (0..rs)
                    .map(|o| Ipv4Addr::from(rb + o))
                    .find(|a| usable(*a))
                    .ok_or_else(|| format!("no available IPv4 addresses on network {}", net.name))?
            }
        };
        let v6 = self.address6(st, net, req)?;
        if v6.is_none() && req.ip6.is_some() {
            return Err(Error::Invalid(format!(
                "network {} has no IPv6 subnet: --ip6 needs a network made with --ipv6",
                net.name
            )));
        }
        let o = ip.octets();
        let mac = req.mac.unwrap_or([0x02, 0x42, o[0], o[1], o[2], o[3]]);
        let veth = format!("veth{}", &random_hex(7));
        links::add_veth(&links::Veth {
            host: &veth,
            peer: ifname,
            bridge: &net.bridge,
            netns: ns,
            ip,
            prefix,
            gateway: route.then_some(gateway),
            mac,
            mtu: net.mtu,
            v6: v6.map(|(a, p, g)| (a, p, route.then_some(g))),
            link_local: req.link_local_ips.clone(),
        })
        .await?;
        Ok(Endpoint {
            id: random_hex(64),
            network: net.name.clone(),
            network_id: net.id.clone(),
            ip: ip.to_string(),
            prefix,
            gateway: gateway.to_string(),
            mac: mac_text(&mac),
            veth,
            name: req.name.trim_start_matches('/').to_string(),
            aliases: req.aliases.clone(),
            ifname: ifname.to_string(),
            released: false,
            static_ip: req.ip.is_some(),
            static_mac: req.mac.is_some(),
            links: req.links.clone(),
            ip6: v6.map(|(a, _, _)| a.to_string()).unwrap_or_default(),
            prefix6: v6.map(|(_, p, _)| p).unwrap_or(0),
            gateway6: v6.map(|(_, _, g)| g.to_string()).unwrap_or_default(),
            static_ip6: req.ip6.is_some(),
            link_local_ips: req.link_local_ips.iter().map(|a| a.to_string()).collect(),
            driver_opts: req.driver_opts.clone(),
        })
    }

    /// The IPv6 address (with prefix and gateway) an endpoint on `net` gets: `--ip6`, else
    /// its last one when still free, else the lowest free one. None without IPv6.
    fn address6(
        &self,
        st: &Records,
        net: &Network,
        req: &EndpointRequest,
    ) -> Result<Option<(std::net::Ipv6Addr, u8, std::net::Ipv6Addr)>, Error> {
        let (Some(sub), Some(gw)) = (&net.subnet6, &net.gateway6) else {
            return Ok(None);
        };
        let (base, prefix) = ipam::parse_cidr6(sub).map_err(Error::Invalid)?;
        let gw: std::net::Ipv6Addr = gw
            .parse()
            .map_err(|_| Error::Invalid(format!("bad IPv6 gateway {gw}")))?;
        let used: std::collections::HashSet<std::net::Ipv6Addr> = st
            .active()
            .filter(|(_, e)| e.network == net.name)
            .filter_map(|(_, e)| e.ip6.parse().ok())
            .collect();
        let inside = |a: std::net::Ipv6Addr| ipam::contains6((base, prefix), a);
        let usable =
            |a: std::net::Ipv6Addr| inside(a) && a != base && a != gw && !used.contains(&a);
        let a = match req.ip6 {
            Some(a) if usable(a) => a,
            Some(a) if used.contains(&a) => {
                return Err(Error::Invalid(format!(
                    "Address already in use: {a} on network {}",
                    net.name
                )))
            }
            Some(a) => {
                return Err(Error::Invalid(format!(
                    "invalid address {a}: not a usable address of {sub} ({})",
                    net.name
                )))
            }
            None if req.prefer_ip6.is_some_and(&usable) => req.prefer_ip6.expect("checked"),
            None => {
                let start = match &net.ip_range6 {
                    Some(r) => u128::from(ipam::parse_cidr6(r).map_err(Error::Invalid)?.0),
                    None => u128::from(base),
                };
                (0u128..1 << 16).map(move |o| std::net::Ipv6Addr::from(start + o))
            }
            .find(|a| usable(*a))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no available IPv6 addresses on network {}",
                    net.name
                ))
            })?,
        };
        Ok(Some((a, prefix, gw)))
    }

    /// `network connect`: one more interface (eth0, eth1, …) for a container with a
    /// namespace of its own (the API refuses host, none and container: modes); the first
    /// one (after a disconnect from the creation network) carries the default route. A
    /// stopped container gets it at its next start. Returns the endpoint and whether it
    /// is the container's first.
    pub async fn connect(
        self: &Arc<Self>,
        id: &str,
        network: &str,
        req: &EndpointRequest,
    ) -> Result<(Endpoint, bool), String> {
        let n = self
            .find(network)
            .await
            .ok_or_else(|| format!("network {network} not found"))?;
        let ns = links::netns_path(&self.netns_dir, id);
        let live = ns.exists();
        let mut st = self.state.lock().await;
        if st.all().any(|(k, e)| k == id && e.network == n.name) {
            return Err(format!(
                "endpoint with name {} already exists in network {}",
                req.name.trim_start_matches('/'),
                n.name
            ));
        }
        let first = !st.endpoints.contains_key(id);
        let taken: std::collections::HashSet<String> = st
            .all()
            .filter(|(k, _)| k.as_str() == id)
            .map(|(_, e)| {
                if e.ifname.is_empty() {
                    "eth0".to_string()
                } else {
                    e.ifname.clone()
                }
            })
            .collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|f| !taken.contains(f))
            .expect("a free name");
        let ep = if live {
            self.plug(&st, &n, &ns, &ifname, first, req)
                .await
                .map_err(|e| e.to_string())?
        } else {
            // Recorded only: plugged in by `reattach` at the next start.
            Endpoint {
                id: random_hex(64),
                network: n.name.clone(),
                network_id: n.id.clone(),
                ip: req.ip.map(|a| a.to_string()).unwrap_or_default(),
                prefix: 0,
                gateway: String::new(),
                mac: req.mac.as_ref().map(mac_text).unwrap_or_default(),
                veth: String::new(),
                name: req.name.trim_start_matches('/').to_string(),
                aliases: req.aliases.clone(),
                ifname,
                released: true,
                static_ip: req.ip.is_some(),
                static_mac: req.mac.is_some(),
                links: req.links.clone(),
                ip6: req.ip6.map(|a| a.to_string()).unwrap_or_default(),
                prefix6: 0,
                gateway6: String::new(),
                static_ip6: req.ip6.is_some(),
                link_local_ips: req.link_local_ips.iter().map(|a| a.to_string()).collect(),
                driver_opts: req.driver_opts.clone(),
            }
        };
        if first {
            st.endpoints.insert(id.to_string(), ep.clone());
        } else {
            st.extras
                .entry(id.to_string())
                .or_default()
                .push(ep.clone());
        }
        if let Err(e) = self.save(&st) {
            if first {
                st.endpoints.remove(id);
            } else if let Some(v) = st.extras.get_mut(id) {
                v.retain(|x| x.id != ep.id);
            }
            if live {
                let _ = links::delete(&ep.veth).await;
            }
            return Err(e);
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        if live && n.name != "bridge" {
            if let Err(e) = self.serve_dns(id, &ns).await {
                tracing::warn!(container = %id, "embedded DNS: {e}");
            }
        }
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok((ep, first))
    }

    /// Start the embedded DNS in the namespace `ns` of container `id` (once).
    pub(super) async fn serve_dns(self: &Arc<Self>, id: &str, ns: &Path) -> Result<(), String> {
        if self.dns.lock().expect("dns map").contains_key(id) {
            return Ok(());
        }
        let ns2 = ns.to_path_buf();
        let sock = tokio::task::spawn_blocking(move || dns::bind_in(&ns2))
            .await
            .map_err(|e| e.to_string())??;
        let t = tokio::spawn(dns::serve(sock, self.clone(), id.to_string()));
        self.dns.lock().expect("dns map").insert(id.to_string(), t);
        Ok(())
    }

    /// `network disconnect`: the container's interface on `network` goes (its first one
    /// too: it is left without a default route until it is connected again). Returns the
    /// endpoint and whether it was the first.
    pub async fn disconnect(&self, id: &str, network: &str) -> Result<(Endpoint, bool), String> {
        let n = self
            .find(network)
            .await
            .ok_or_else(|| format!("network {network} not found"))?;
        let mut st = self.state.lock().await;
        let (ep, first) = if st.endpoints.get(id).is_some_and(|e| e.network == n.name) {
            (st.endpoints.remove(id).expect("checked"), true)
        } else {
            let i = st
                .extras
                .get(id)
                .and_then(|v| v.iter().position(|e| e.network == n.name))
                .ok_or_else(|| {
                    format!(
                        "container {} is not connected to network {}",
                        &id[..id.len().min(12)],
                        n.name
                    )
                })?;
            (st.extras.get_mut(id).expect("checked").remove(i), false)
        };
        if let Err(e) = self.save(&st) {
            if first {
                st.endpoints.insert(id.to_string(), ep);
            } else {
                st.extras.entry(id.to_string()).or_default().push(ep);
            }
            return Err(e);
        }
        drop(st);
        // The host end goes, and its peer in the container with it.
        if !ep.released {
            let _ = links::delete(&ep.veth).await;
        }
        Ok((ep, first))
    }

    /// At the container's exit: its veths, namespace, embedded DNS and published ports go,
    /// its addresses are free; the records stay for [`reattach`](Self::reattach).
    pub async fn release(&self, id: &str) {
        if let Some(t) = self.dns.lock().expect("dns map").remove(id) {
            t.abort();
        }
        let _ = self.ports.unpublish(id).await;
        let mut st = self.state.lock().await;
        let mut veths = Vec::new();
        let stm = &mut *st;
        let eps = stm.endpoints.get_mut(id).into_iter();
        let extras = stm.extras.get_mut(id).into_iter().flatten();
        for e in eps.chain(extras) {
            if !e.released {
                e.released = true;
                veths.push(std::mem::take(&mut e.veth));
            }
        }
        if !veths.is_empty() {
            if let Err(e) = self.save(&st) {
                tracing::warn!(container = %id, "release its endpoints: {e}");
            }
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        // In the background: unregistering a device waits for an RCU grace period.
        for v in veths.into_iter().filter(|v| !v.is_empty()) {
            tokio::spawn(async move {
                let _ = links::delete(&v).await;
            });
        }
        let ns = links::netns_path(&self.netns_dir, id);
        let _ = tokio::task::spawn_blocking(move || links::remove_netns(&ns)).await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
    }

    /// Before a (re)start: the namespace and the endpoints [`release`](Self::release) took
    /// away, made again at the same path (the spec names it). Returns the endpoints (the
    /// first one, with the default route, and the others) when it plugged any in; undone
    /// on failure.
    pub async fn reattach(
        self: &Arc<Self>,
        id: &str,
        mode: &str,
    ) -> Result<Option<(Option<Endpoint>, Vec<Endpoint>)>, String> {
        if mode == "host" || mode.starts_with("container:") {
            return Ok(None);
        }
        let ns = links::netns_path(&self.netns_dir, id);
        let mut st = self.state.lock().await;
        let first_released = st.endpoints.get(id).map(|e| e.released);
        if first_released == Some(false) && ns.exists() {
            return Ok(None);
        }
        if !ns.exists() {
            let ns2 = ns.clone();
            tokio::task::spawn_blocking(move || links::create_netns(&ns2))
                .await
                .map_err(|e| e.to_string())??;
        }
        let first = st.endpoints.get(id).cloned();
        let extras = st.extras.get(id).cloned().unwrap_or_default();
        if first.is_none() && extras.is_empty() {
            // --network none (or disconnected from everything): the namespace is all.
            return Ok(None);
        }
        let mut plugged: Vec<Endpoint> = Vec::new();
        let mut failed = None;
        let olds = first
            .iter()
            .map(|e| (e, true))
            .chain(extras.iter().map(|e| (e, false)));
        for (old, route) in olds {
            let Some(net) = st.networks.get(&old.network).cloned() else {
                failed = Some(format!(
                    "network {} not found (removed while the container was stopped)",
                    old.network
                ));
                break;
            };
            let ifname = if old.ifname.is_empty() {
                "eth0"
            } else {
                &old.ifname
            };
            match self
                .plug(&st, &net, &ns, ifname, route, &EndpointRequest::again(old))
                .await
            {
                Ok(mut ep) => {
                    ep.id = old.id.clone();
                    plugged.push(ep);
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(e) = failed {
            drop(st);
            for ep in plugged {
                let _ = links::delete(&ep.veth).await;
            }
            let _ = tokio::task::spawn_blocking(move || links::remove_netns(&ns)).await;
            return Err(e);
        }
        let mut it = plugged.into_iter();
        let first = if first.is_some() { it.next() } else { None };
        let rest: Vec<Endpoint> = it.collect();
        if let Some(f) = &first {
            st.endpoints.insert(id.to_string(), f.clone());
        }
        if !rest.is_empty() {
            st.extras.insert(id.to_string(), rest.clone());
        }
        if let Err(e) = self.save(&st) {
            tracing::warn!(container = %id, "record its endpoints: {e}");
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        if first.iter().chain(&rest).any(|e| e.network != "bridge") {
            if let Err(e) = self.serve_dns(id, &ns).await {
                tracing::warn!(container = %id, "embedded DNS: {e}");
            }
        }
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok(Some((first, rest)))
    }

    /// Remove what [`attach`](Self::attach) made for `id` (and its published ports).
    pub async fn detach(&self, id: &str) {
        if let Some(t) = self.dns.lock().expect("dns map").remove(id) {
            t.abort();
        }
        let _ = self.ports.unpublish(id).await;
        let mut st = self.state.lock().await;
        let extras = st.extras.remove(id).unwrap_or_default();
        for ep in extras.into_iter().filter(|e| !e.released) {
            tokio::spawn(async move {
                let _ = links::delete(&ep.veth).await;
            });
        }
        if let Some(ep) = st.endpoints.remove(id) {
            let _ = self.save(&st);
            // Unregistering a device waits for an RCU grace period: not on the caller's
            // path (the address is free already; the namespace is going away too).
            if !ep.released {
                tokio::spawn(async move {
                    let _ = links::delete(&ep.veth).await;
                });
            }
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        let ns = links::netns_path(&self.netns_dir, id);
        let _ = tokio::task::spawn_blocking(move || links::remove_netns(&ns)).await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
    }
}
