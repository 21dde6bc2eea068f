//! Container networking, the libnetwork role: the default `bridge` network (`berth0`),
//! per-container network namespaces and veth pairs, IP address management, `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf`, and published ports (a userland proxy for every
//! binding plus DNAT rules in Berth's own nftables table).
//!
//! Records (networks, endpoints: [`records`]) are kept in `DATA_ROOT/network/state.json`,
//! written atomically; addresses come from [`ipam`]; a container's namespace, veths and
//! endpoints are made and undone in [`endpoints`]; its /etc files in [`hosts`]; namespaces
//! are bind-mounted files under `EXEC_ROOT/netns`. At start-up [`Net::reconcile`] removes
//! what belongs to containers that are gone.

pub mod dns;
mod endpoints;
pub mod firewall;
mod hosts;
mod ipam;
pub mod links;
pub mod ports;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use endpoints::{parse_link, parse_mac, EndpointRequest};
use ipam::overlaps;
pub use ipam::{parse_cidr, parse_cidr6};
use records::Records;

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
    /// Dual stack (`--ipv6`): the IPv6 subnet and the bridge's address in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// IPv6 addresses handed out come from here (the IPv6 pool's `IPRange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<String>,
    /// IPAM `AuxiliaryAddresses`: addresses of the subnet never handed out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

fn default_mtu() -> u32 {
    MTU
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
    /// On an IPv6 network: the container's IPv6 address, its prefix and the gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip6: String,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway6: String,
    /// Asked for with `--ip6`.
    #[serde(default)]
    pub static_ip6: bool,
    /// `--link-local-ip`s: more addresses on the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// The endpoint's `DriverOpts`, as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

pub struct Net {
    dir: PathBuf,
    netns_dir: PathBuf,
    state: tokio::sync::Mutex<Records>,
    pub ports: ports::Ports,
    bip: Option<String>,
    bridge: String,
    mtu: u32,
    /// daemon.json `default-address-pools`: (base, its prefix, subnet size).
    pools: Vec<(Ipv4Addr, u8, u8)>,
    /// The default bridge is dual stack (daemon.json `ipv6`), with this subnet if given.
    ipv6: Option<Option<String>>,
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
    /// daemon.json `ipv6` (the default bridge is dual stack) and `fixed-cidr-v6` (its
    /// IPv6 subnet; a unique local /64 when absent).
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    /// `firewall-backend`: "nftables" or "iptables" (default: nftables when nft is there).
    pub firewall: Option<String>,
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
    /// `EnableIPv6`, with an IPv6 pool (`subnet6`, `gateway6`) or a ULA /64 chosen here.
    pub ipv6: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub ip_range6: Option<String>,
    pub aux_addresses: BTreeMap<String, String>,
}

/// Why a network or an attachment could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What was asked for is impossible here (`--ip` on the default bridge, an address or
    /// subnet that does not fit, a bad bridge name or MTU).
    #[error("{0}")]
    Invalid(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// Another network holds the name.
    #[error("{0}")]
    Conflict(String),
    /// Never allowed: a predefined network, one with active endpoints.
    #[error("{0}")]
    Forbidden(String),
    /// The host failed (netlink, a namespace, the state file).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::Invalid(_) => Kind::Invalid,
            Error::NoSuchNetwork(_) => Kind::NotFound,
            Error::Conflict(_) => Kind::Conflict,
            Error::Forbidden(_) => Kind::Forbidden,
            Error::Failed(_) => Kind::Internal,
        }
    }
}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error::Failed(s)
    }
}

/// What a container gets: a namespace path (None: the host's) and, on a bridge, its endpoint.
#[derive(Clone, Debug, Default)]
pub struct Attachment {
    pub netns: Option<PathBuf>,
    pub endpoint: Option<Endpoint>,
}

pub(crate) fn random_hex(n: usize) -> String {
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
            ipv6: settings.ipv6.then_some(settings.fixed_cidr_v6),
            dns: Default::default(),
        }
    }

    /// Rewrite the nftables table from the networks and the published ports.
    pub async fn refresh_rules(&self) {
        let all = self.networks().await;
        self.firewall.apply(&all, &self.ports.rules().await).await;
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
