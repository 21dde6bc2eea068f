//! Container networking, the libnetwork role: the default `bridge` network (`berth0`),
//! per-container network namespaces and veth pairs, IP address management, `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf`, and published ports (a userland proxy for every
//! binding plus DNAT rules in Berth's own nftables table).
//!
//! State (networks, endpoints) is kept in `DATA_ROOT/network/state.json`, written
//! atomically; namespaces are bind-mounted files under `EXEC_ROOT/netns`. At start-up
//! [`Net::reconcile`] removes what belongs to containers that are gone.

pub mod dns;
pub mod firewall;
pub mod links;
pub mod ports;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub const DEFAULT_BRIDGE: &str = "berth0";
const MTU: u32 = 1500;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub internal: bool,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Addresses handed out come from here (`--ip-range`), inside the subnet.
    #[serde(default)]
    pub ip_range: Option<String>,
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Driver options as given at creation (`-o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_mtu() -> u32 {
    MTU
}

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
        Ok(EndpointRequest {
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
    fn again(ep: &Endpoint) -> EndpointRequest {
        let ip = ep.ip.parse().ok();
        EndpointRequest {
            name: ep.name.clone(),
            aliases: ep.aliases.clone(),
            ip: ip.filter(|_| ep.static_ip),
            mac: parse_mac(&ep.mac).ok().filter(|_| ep.static_mac),
            prefer_ip: ip,
            links: ep.links.clone(),
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
fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network: String,
    #[serde(default)]
    pub network_id: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub mac: String,
    pub veth: String,
    /// The container's name (without '/') and its network aliases, for the embedded DNS.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its interface in the container.
    #[serde(default)]
    pub ifname: String,
    /// Released at the container's exit (no veth, no namespace, address free); plugged in
    /// again at its next start.
    #[serde(default)]
    pub released: bool,
    /// Asked for with `--ip` / `--mac-address` (kept across restarts).
    #[serde(default)]
    pub static_ip: bool,
    #[serde(default)]
    pub static_mac: bool,
    /// `--link`s on a user-defined network: (container name, alias).
    #[serde(default)]
    pub links: Vec<(String, String)>,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    networks: BTreeMap<String, Network>,
    /// Container ID → its endpoint on a bridge network (eth0).
    endpoints: BTreeMap<String, Endpoint>,
    /// Container ID → endpoints added by `network connect` (eth1, …).
    #[serde(default)]
    extras: BTreeMap<String, Vec<Endpoint>>,
}

impl State {
    /// Every endpoint, with its container's ID.
    fn all(&self) -> impl Iterator<Item = (&String, &Endpoint)> {
        self.endpoints.iter().chain(
            self.extras
                .iter()
                .flat_map(|(k, v)| v.iter().map(move |e| (k, e))),
        )
    }

    /// The endpoints plugged in now (those of running or created containers).
    fn active(&self) -> impl Iterator<Item = (&String, &Endpoint)> {
        self.all().filter(|(_, e)| !e.released)
    }
}

pub struct Net {
    dir: PathBuf,
    netns_dir: PathBuf,
    state: tokio::sync::Mutex<State>,
    pub ports: ports::Ports,
    bip: Option<String>,
    bridge: String,
    mtu: u32,
    /// daemon.json `default-address-pools`: (base, its prefix, subnet size).
    pools: Vec<(Ipv4Addr, u8, u8)>,
    /// Masquerading, DNAT and isolation rules (nftables or iptables).
    pub firewall: firewall::Firewall,
    /// Embedded DNS servers by container.
    dns: std::sync::Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

/// daemon.json's networking settings.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The default bridge's gateway address and prefix ("172.18.0.1/16").
    pub bip: Option<String>,
    /// The default bridge's interface name (`berth0`).
    pub bridge: Option<String>,
    pub mtu: Option<u32>,
    /// `default-address-pools`: (base, its prefix, subnet size).
    pub pools: Vec<(Ipv4Addr, u8, u8)>,
    /// `firewall-backend`: "nftables" or "iptables" (default: nftables when nft is there).
    pub firewall: Option<String>,
}

/// Do `a` and any of `taken` share addresses?
fn overlaps((a, p): (Ipv4Addr, u8), taken: &[(Ipv4Addr, u8)]) -> bool {
    taken.iter().any(|(b, q)| {
        let m = u32::MAX.checked_shl(32 - (p.min(*q)) as u32).unwrap_or(0);
        u32::from(a) & m == u32::from(*b) & m
    })
}

/// What `POST /networks/create` asks for.
#[derive(Clone, Debug, Default)]
pub struct NewNetwork {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub ip_range: Option<String>,
    pub mtu: Option<u32>,
    /// Its bridge's name (`com.docker.network.bridge.name`; default `br-<id>`).
    pub bridge: Option<String>,
    pub options: BTreeMap<String, String>,
}

/// Why a container could not be attached to its network.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// What the container asked for is impossible here (`--ip` on the default bridge, an
    /// address outside the network).
    #[error("{0}")]
    Invalid(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// The host failed (netlink, a namespace, the state file).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for AttachError {
    fn from(s: String) -> AttachError {
        AttachError::Failed(s)
    }
}

/// What a container gets: a namespace path (None: the host's) and, on a bridge, its endpoint.
#[derive(Clone, Debug, Default)]
pub struct Attachment {
    pub netns: Option<PathBuf>,
    pub endpoint: Option<Endpoint>,
}

pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
    let a: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("invalid CIDR address: {s}"))?;
    let p: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 30)
        .ok_or_else(|| format!("invalid CIDR prefix: {s}"))?;
    let mask = u32::MAX.checked_shl(32 - p as u32).unwrap_or(0);
    Ok((Ipv4Addr::from(u32::from(a) & mask), p))
}

fn random_hex(n: usize) -> String {
    use sha2::Digest;
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    let h = format!("{:x}", sha2::Sha256::digest(seed.as_bytes()));
    h[..n].to_string()
}

impl Net {
    /// `data_root/network` for state, `exec_root/netns` for namespaces, `settings` from
    /// daemon.json.
    pub fn new(data_root: &Path, exec_root: &Path, settings: Settings) -> Net {
        let dir = data_root.join("network");
        let state = std::fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let bridge = settings
            .bridge
            .clone()
            .unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        let backend = firewall::Backend::choose(settings.firewall.as_deref()).unwrap_or_else(|e| {
            tracing::warn!("{e}: no firewall rules");
            firewall::Backend::Off
        });
        if backend == firewall::Backend::Off {
            tracing::warn!("neither nft nor iptables found: published ports work through the proxy only, no masquerading or isolation rules");
        }
        Net {
            dir,
            netns_dir: exec_root.join("netns"),
            state: tokio::sync::Mutex::new(state),
            ports: ports::Ports::default(),
            firewall: firewall::Firewall::new(backend, &bridge),
            bip: settings.bip,
            bridge,
            mtu: settings.mtu.unwrap_or(MTU),
            pools: settings.pools,
            dns: Default::default(),
        }
    }

    /// Subnets for networks made without one, in order: daemon.json
    /// `default-address-pools` cut into subnets of their `size`, or Docker's defaults
    /// (172.17–31.0.0/16, then 192.168.0.0/16 in /20s).
    fn candidates(&self) -> Vec<(Ipv4Addr, u8)> {
        let default = [
            (Ipv4Addr::new(172, 17, 0, 0), 16, 16),
            (Ipv4Addr::new(172, 18, 0, 0), 15, 16),
            (Ipv4Addr::new(172, 20, 0, 0), 14, 16),
            (Ipv4Addr::new(172, 24, 0, 0), 13, 16),
            (Ipv4Addr::new(192, 168, 0, 0), 16, 20),
        ];
        let pools: Vec<(Ipv4Addr, u8, u8)> = if self.pools.is_empty() {
            default.to_vec()
        } else {
            self.pools.clone()
        };
        let mut out = Vec::new();
        for (base, bp, size) in pools {
            let n = 1u32 << (size - bp).min(16);
            for i in 0..n {
                let a = u32::from(base) + (i << (32 - size as u32));
                out.push((Ipv4Addr::from(a), size));
            }
        }
        out
    }

    /// The first candidate subnet that overlaps no other network and no route of the host
    /// (other than to Berth's own bridges).
    async fn free_subnet(&self, st: &State) -> Result<(Ipv4Addr, u8), String> {
        let ours: std::collections::HashSet<&str> =
            st.networks.values().map(|n| n.bridge.as_str()).collect();
        let mut taken: Vec<(Ipv4Addr, u8)> = st
            .networks
            .values()
            .filter_map(|n| parse_cidr(&n.subnet).ok())
            .collect();
        match links::routes().await {
            Ok(r) => taken.extend(
                r.into_iter()
                    .filter(|(_, _, dev)| !ours.contains(dev.as_str()) && *dev != self.bridge)
                    .map(|(a, p, _)| (a, p)),
            ),
            Err(e) => tracing::warn!("host routes not checked for a new subnet: {e}"),
        }
        self.candidates()
            .into_iter()
            .find(|c| !overlaps(*c, &taken))
            .ok_or_else(|| "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".to_string())
    }

    fn save(&self, st: &State) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let p = self.dir.join("state.json");
        crate::write_atomic(&p, &serde_json::to_vec_pretty(st).expect("json"))
            .map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The default bridge network's record (created in the state on first use: `bip`, or
    /// the first free subnet of the pools).
    async fn default_network(&self, st: &mut State) -> Result<Network, String> {
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
        };
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
    pub async fn members(&self, name: &str) -> Vec<(String, Endpoint)> {
        let st = self.state.lock().await;
        st.active()
            .filter(|(_, e)| e.network == name)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// A user-defined bridge network, its bridge created now.
    pub async fn create_network(&self, req: NewNetwork) -> Result<Network, String> {
        if matches!(req.name.as_str(), "bridge" | "host" | "none" | "default")
            || req.name.is_empty()
        {
            return Err(format!("network name {:?} is reserved", req.name));
        }
        let mut st = self.state.lock().await;
        self.default_network(&mut st).await?;
        if st.networks.contains_key(&req.name) {
            return Err(format!("network with name {} already exists", req.name));
        }
        let (subnet, prefix) = match &req.subnet {
            Some(s) => {
                let c = parse_cidr(s)?;
                let taken: Vec<(Ipv4Addr, u8)> = st
                    .networks
                    .values()
                    .filter_map(|n| parse_cidr(&n.subnet).ok())
                    .collect();
                if overlaps(c, &taken) {
                    return Err(format!("invalid pool request: Pool overlaps with other one on this address space ({s})"));
                }
                c
            }
            None => self.free_subnet(&st).await?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| format!("invalid gateway {g}"))?;
                let m = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
                if u32::from(g) & m != u32::from(subnet) {
                    return Err(format!("gateway {g} is not in subnet {subnet}/{prefix}"));
                }
                g
            }
            None => Ipv4Addr::from(u32::from(subnet) + 1),
        };
        if let Some(r) = &req.ip_range {
            let (rn, rp) = parse_cidr(r)?;
            let m = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            if rp < prefix || u32::from(rn) & m != u32::from(subnet) {
                return Err(format!("ip-range {r} is not in subnet {subnet}/{prefix}"));
            }
        }
        let mtu = req.mtu.unwrap_or(self.mtu);
        if !(68..=65535).contains(&mtu) {
            return Err(format!("invalid MTU {mtu}"));
        }
        let id = random_hex(64);
        let bridge = match req.bridge {
            Some(b) => {
                if b.is_empty() || b.len() > 15 || b.contains(['/', ' ', ':']) {
                    return Err(format!(
                        "invalid bridge name {b:?}: 1 to 15 characters, no '/', ':' or spaces"
                    ));
                }
                if st.networks.values().any(|n| n.bridge == b) || b == self.bridge {
                    return Err(format!("bridge name {b} is used by another network"));
                }
                if links::exists(&b).await? {
                    return Err(format!("bridge name {b}: an interface of that name exists"));
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
        };
        links::ensure_bridge(&n.bridge, gateway, prefix, n.mtu).await?;
        st.networks.insert(n.name.clone(), n.clone());
        if let Err(e) = self.save(&st) {
            st.networks.remove(&n.name);
            let _ = links::delete(&n.bridge).await;
            return Err(e);
        }
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok(n)
    }

    /// Remove a user-defined network (refused while containers are on it).
    pub async fn remove_network(&self, what: &str) -> Result<Network, String> {
        let n = self
            .find(what)
            .await
            .ok_or_else(|| format!("network {what} not found"))?;
        if n.name == "bridge" {
            return Err("bridge is a pre-defined network and cannot be removed".into());
        }
        let mut st = self.state.lock().await;
        if st.active().any(|(_, e)| e.network == n.name) {
            return Err(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            ));
        }
        st.networks.remove(&n.name);
        self.save(&st)?;
        let all = st.networks.values().cloned().collect::<Vec<_>>();
        drop(st);
        let _ = links::delete(&n.bridge).await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
        Ok(n)
    }

    /// The address a name means to container `asker` (for its embedded DNS): a container
    /// on one of the user-defined networks it is on, by name, alias or short ID.
    pub async fn resolve(&self, asker: &str, name: &str) -> Option<Ipv4Addr> {
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
            .and_then(|(_, e)| e.ip.parse().ok());
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
    ) -> Result<Attachment, AttachError> {
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
                    return Err(AttachError::Invalid(
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
                    .ok_or_else(|| AttachError::NoSuchNetwork(other.to_string()))?;
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

    async fn attach_bridge(
        &self,
        id: &str,
        network: &str,
        req: &EndpointRequest,
    ) -> Result<Attachment, AttachError> {
        let mut st = self.state.lock().await;
        let net = match network {
            "bridge" => self.default_network(&mut st).await?,
            n => st
                .networks
                .get(n)
                .cloned()
                .ok_or_else(|| AttachError::NoSuchNetwork(n.to_string()))?,
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
    async fn plug(
        &self,
        st: &State,
        net: &Network,
        ns: &Path,
        ifname: &str,
        route: bool,
        req: &EndpointRequest,
    ) -> Result<Endpoint, AttachError> {
        let (subnet, prefix) = parse_cidr(&net.subnet)?;
        let gateway: Ipv4Addr = net
            .gateway
            .parse()
            .map_err(|_| format!("bad gateway {}", net.gateway))?;
        links::ensure_bridge(&net.bridge, gateway, prefix, net.mtu).await?;
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
            v > base && v < base + size - 1 && a != gateway && !used.contains(&a)
        };
        let ip = match req.ip {
            Some(a) if usable(a) => a,
            Some(a) if used.contains(&a) => {
                return Err(format!("Address already in use: {a} on network {}", net.name).into())
            }
            Some(a) => {
                return Err(AttachError::Invalid(format!(
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
        })
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
    async fn serve_dns(self: &Arc<Self>, id: &str, ns: &Path) -> Result<(), String> {
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

    /// Rewrite the nftables table from the networks and the published ports.
    pub async fn refresh_rules(&self) {
        let all = self.networks().await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
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

    /// Edit a container's /etc/hosts (in `dir`): the lines `drop` picks go, `add` is
    /// appended. In place: the file is bind-mounted into a running container.
    fn edit_hosts(dir: &Path, drop: impl Fn(&str) -> bool, add: &[String]) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("172.17.0.1/16").unwrap(),
            ("172.17.0.0".parse().unwrap(), 16)
        );
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/31").is_err());
    }

    #[test]
    fn links() {
        let l = |s: &str| parse_link(s).unwrap();
        assert_eq!(l("db:database"), ("db".into(), "database".into()));
        assert_eq!(l("db"), ("db".into(), "db".into()));
        assert_eq!(l("/db:/web/database"), ("db".into(), "database".into()));
        assert!(parse_link(":x").is_err());
    }
}
