//! The records: networks and endpoints as `state.json` holds them (saved atomically after
//! every change), network create/remove/list, and start-up reconciliation.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;

#[derive(Default, Serialize, Deserialize)]
pub(super) struct Records {
    pub(super) networks: BTreeMap<String, Network>,
    /// Container ID → its endpoint on a bridge network (eth0).
    pub(super) endpoints: BTreeMap<String, Endpoint>,
    /// Container ID → endpoints added by `network connect` (eth1, …).
    #[serde(default)]
    pub(super) extras: BTreeMap<String, Vec<Endpoint>>,
}

impl Records {
    /// Every endpoint, with its container's ID.
    pub(super) fn all(&self) -> impl Iterator<Item = (&String, &Endpoint)> {
        self.endpoints.iter().chain(
            self.extras
                .iter()
                .flat_map(|(k, v)| v.iter().map(move |e| (k, e))),
        )
    }

    /// The endpoints plugged in now (those of running or created containers).
    pub(super) fn active(&self) -> impl Iterator<Item = (&String, &Endpoint)> {
        self.all().filter(|(_, e)| !e.released)
    }
}

impl Net {
    pub(super) fn save(&self, st: &Records) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let p = self.dir.join("state.json");
        berth_fstree::write_atomic(&p, &serde_json::to_vec_pretty(st).expect("json"), 0o644)
            .map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The default bridge network's record (created in the state on first use: `bip`, or
    /// the first free subnet of the pools).
    pub(super) async fn default_network(&self, st: &mut Records) -> Result<Network, String> {
        if let Some(n) = st.networks.get("bridge") {
            return Ok(n.clone());
        }
        let (subnet, gateway) = match &self.bip {
            Some(bip) => {
                let (gw, p) = bip
                    .split_once('/')
                    .ok_or_else(|| format!("daemon.json bip {bip:?}: want ADDRESS/PREFIX"))?;
                let (net, p) = parse_cidr(&format!("{gw}/{p}"))?;
                (format!("{net}/{p}"), gw.to_string())
            }
            None => {
                let (net, p) = self.free_subnet(st).await?;
                (
                    format!("{net}/{p}"),
                    Ipv4Addr::from(u32::from(net) + 1).to_string(),
                )
            }
        };
        let n = Network {
            id: random_hex(64),
            name: "bridge".into(),
            driver: "bridge".into(),
            bridge: self.bridge.clone(),
            subnet,
            gateway,
            internal: false,
            created: crate::clock::now_rfc3339(),
            labels: Default::default(),
            ip_range: None,
            mtu: self.mtu,
            options: Default::default(),
            subnet6: None,
            gateway6: None,
            ip_range6: None,
            aux_addresses: Default::default(),
        };
        let mut n = n;
        if let Some(v6) = &self.ipv6 {
            let (net6, p6) = match v6 {
                Some(c) => {
                    ipam::parse_cidr6(c).map_err(|e| format!("daemon.json fixed-cidr-v6: {e}"))?
                }
                None => ipam::random_ula(),
            };
            n.subnet6 = Some(format!("{net6}/{p6}"));
            n.gateway6 = Some(std::net::Ipv6Addr::from(u128::from(net6) + 1).to_string());
        }
        st.networks.insert("bridge".into(), n.clone());
        // Saved at once: a subnet picked from the pools must not change at the next start.
        self.save(st)?;
        Ok(n)
    }

    /// The networks berthd knows (the default bridge included once it exists).
    pub async fn networks(&self) -> Vec<Network> {
        let mut st = self.state.lock().await;
        let _ = self.default_network(&mut st).await;
        st.networks.values().cloned().collect()
    }

    /// A network by name, full ID or ID prefix.
    pub async fn find(&self, what: &str) -> Option<Network> {
        let mut st = self.state.lock().await;
        let _ = self.default_network(&mut st).await;
        if let Some(n) = st.networks.get(what) {
            return Some(n.clone());
        }
        let hits: Vec<&Network> = st
            .networks
            .values()
            .filter(|n| n.id == what || (what.len() >= 3 && n.id.starts_with(what)))
            .collect();
        (hits.len() == 1).then(|| hits[0].clone())
    }

    /// Containers (IDs) with an endpoint on network `name`.
    /// Container `id`'s plugged-in endpoints, its first one first.
    pub async fn endpoints_of(&self, id: &str) -> Vec<Endpoint> {
        let st = self.state.lock().await;
        st.active()
            .filter(|(k, _)| k.as_str() == id)
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub async fn members(&self, name: &str) -> Vec<(String, Endpoint)> {
        let st = self.state.lock().await;
        st.active()
            .filter(|(_, e)| e.network == name)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// A user-defined bridge network, its bridge created now.
    pub async fn create_network(&self, req: NewNetwork) -> Result<Network, Error> {
        if matches!(req.name.as_str(), "bridge" | "host" | "none" | "default")
            || req.name.is_empty()
        {
            return Err(Error::Forbidden(format!(
                "network name {:?} is reserved",
                req.name
            )));
        }
        let mut st = self.state.lock().await;
        self.default_network(&mut st).await?;
        if st.networks.contains_key(&req.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let (subnet, prefix) = match &req.subnet {
            Some(s) => {
                let c = parse_cidr(s).map_err(Error::Invalid)?;
                let taken: Vec<(Ipv4Addr, u8)> = st
                    .networks
                    .values()
                    .filter_map(|n| parse_cidr(&n.subnet).ok())
                    .collect();
                if overlaps(c, &taken) {
                    return Err(Error::Invalid(format!("invalid pool request: Pool overlaps with other one on this address space ({s})")));
                }
                c
            }
            None => self.free_subnet(&st).await.map_err(Error::Invalid)?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let g: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Error::Invalid(format!("invalid gateway {g}")))?;
                let m = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
                if u32::from(g) & m != u32::from(subnet) {
                    return Err(Error::Invalid(format!(
                        "gateway {g} is not in subnet {subnet}/{prefix}"
                    )));
                }
                g
            }
            None => Ipv4Addr::from(u32::from(subnet) + 1),
        };
        if let Some(r) = &req.ip_range {
            let (rn, rp) = parse_cidr(r).map_err(Error::Invalid)?;
            let m = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            if rp < prefix || u32::from(rn) & m != u32::from(subnet) {
                return Err(Error::Invalid(format!(
                    "ip-range {r} is not in subnet {subnet}/{prefix}"
                )));
            }
        }
        // Dual stack: an IPv6 pool given, or a unique local /64 of its own.
        let (subnet6, gateway6) = if req.ipv6 {
            let (n6, p6) = match &req.subnet6 {
                Some(s6) => ipam::parse_cidr6(s6).map_err(Error::Invalid)?,
                None => loop {
                    let c = ipam::random_ula();
                    let clash = st
                        .networks
                        .values()
                        .filter_map(|n| n.subnet6.as_deref())
                        .any(|o| ipam::parse_cidr6(o).is_ok_and(|o| ipam::overlaps6(o, c)));
                    if !clash {
                        break c;
                    }
                },
            };
            if let Some(o) = st
                .networks
                .values()
                .filter_map(|n| n.subnet6.as_deref())
                .find(|o| ipam::parse_cidr6(o).is_ok_and(|o| ipam::overlaps6(o, (n6, p6))))
            {
                return Err(Error::Invalid(format!(
                    "invalid pool request: Pool overlaps with other one on this address space ({n6}/{p6} and {o})"
                )));
            }
            let g6 = match &req.gateway6 {
                Some(g) => {
                    let g: std::net::Ipv6Addr = g
                        .parse()
                        .map_err(|_| Error::Invalid(format!("invalid IPv6 gateway {g}")))?;
                    if !ipam::contains6((n6, p6), g) {
                        return Err(Error::Invalid(format!(
                            "gateway {g} is not in subnet {n6}/{p6}"
                        )));
                    }
                    g
                }
                None => std::net::Ipv6Addr::from(u128::from(n6) + 1),
            };
            if let Some(r) = &req.ip_range6 {
                let rc = ipam::parse_cidr6(r).map_err(Error::Invalid)?;
                if rc.1 < p6 || !ipam::contains6((n6, p6), rc.0) {
                    return Err(Error::Invalid(format!(
                        "ip-range {r} is not in subnet {n6}/{p6}"
                    )));
                }
            }
            (Some(format!("{n6}/{p6}")), Some(g6.to_string()))
        } else {
            if let Some(s6) = &req.subnet6 {
                return Err(Error::Invalid(format!(
                    "IPv6 pool {s6} given, but the network is not IPv6-enabled (EnableIPv6, --ipv6)"
                )));
            }
            (None, None)
        };
        let mtu = req.mtu.unwrap_or(self.mtu);
        if !(68..=65535).contains(&mtu) {
            return Err(Error::Invalid(format!("invalid MTU {mtu}")));
        }
        let id = random_hex(64);
        let bridge = match req.bridge {
            Some(b) => {
                if b.is_empty() || b.len() > 15 || b.contains(['/', ' ', ':']) {
                    return Err(Error::Invalid(format!(
                        "invalid bridge name {b:?}: 1 to 15 characters, no '/', ':' or spaces"
                    )));
                }
                if st.networks.values().any(|n| n.bridge == b) || b == self.bridge {
                    return Err(Error::Invalid(format!(
                        "bridge name {b} is used by another network"
                    )));
                }
                if links::exists(&b).await? {
                    return Err(Error::Invalid(format!(
                        "bridge name {b}: an interface of that name exists"
                    )));
                }
                b
            }
            None => format!("br-{}", &id[..12]),
        };
        let n = Network {
            ip_range: req.ip_range.clone(),
            mtu,
            bridge,
            options: req.options,
            id,
            name: req.name.clone(),
            driver: "bridge".into(),
            subnet: format!("{subnet}/{prefix}"),
            gateway: gateway.to_string(),
            internal: req.internal,
            created: crate::clock::now_rfc3339(),
            labels: req.labels,
            subnet6,
            gateway6,
            ip_range6: req.ip_range6.filter(|_| req.ipv6),
            aux_addresses: req.aux_addresses,
        };
        links::ensure_bridge(&n.bridge, gateway, prefix, n.mtu).await?;
        if let (Some(s6), Some(g6)) = (&n.subnet6, &n.gateway6) {
            let (_, p6) = ipam::parse_cidr6(s6).map_err(Error::Invalid)?;
            let g6 = g6.parse().expect("made above");
            if let Err(e) = links::ensure_bridge6(&n.bridge, g6, p6).await {
                let _ = links::delete(&n.bridge).await;
                return Err(e.into());
            }
        }
        st.networks.insert(n.name.clone(), n.clone());
        if let Err(e) = self.save(&st) {
            st.networks.remove(&n.name);
            let _ = links::delete(&n.bridge).await;
            return Err(e.into());
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok(n)
    }

    /// Remove a user-defined network (refused while containers are on it).
    pub async fn remove_network(&self, what: &str) -> Result<Network, Error> {
        let n = self
            .find(what)
            .await
            .ok_or_else(|| Error::NoSuchNetwork(what.to_string()))?;
        if n.name == "bridge" {
            return Err(Error::Forbidden(
                "bridge is a pre-defined network and cannot be removed".into(),
            ));
        }
        let mut st = self.state.lock().await;
        if st.active().any(|(_, e)| e.network == n.name) {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        st.networks.remove(&n.name);
        self.save(&st)?;
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        let _ = links::delete(&n.bridge).await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok(n)
    }

    /// After a crash: remove the endpoints of containers that are gone (not in `exist`),
    /// release those of containers that are not running (not in `active`: they exited
    /// while berthd was down), and remove namespaces nothing runs in.
    pub async fn reconcile(
        &self,
        exist: &std::collections::HashSet<String>,
        active: &std::collections::HashSet<String>,
    ) {
        let (gone, idle): (Vec<String>, Vec<String>) = {
            let st = self.state.lock().await;
            let gone = st
                .endpoints
                .keys()
                .filter(|k| !exist.contains(*k))
                .cloned()
                .collect();
            let idle = st
                .active()
                .filter(|(k, _)| exist.contains(*k) && !active.contains(*k))
                .map(|(k, _)| k.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            (gone, idle)
        };
        for id in gone {
            self.detach(&id).await;
        }
        for id in idle {
            self.release(&id).await;
        }
        let short: std::collections::HashSet<String> = active
            .iter()
            .map(|a| a[..a.len().min(12)].to_string())
            .collect();
        if let Ok(rd) = std::fs::read_dir(&self.netns_dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !short.contains(&n) {
                    links::remove_netns(&e.path());
                }
            }
        }
        let all = self.networks().await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
    }
}
