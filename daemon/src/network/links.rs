//! Network namespaces, bridges, veth pairs, addresses and routes, over rtnetlink (no `ip`).
//!
//! Host-side requests use a netlink socket of berthd's own namespace. Requests inside a
//! container's namespace run on a short-lived thread that has joined it (`setns` is
//! per-thread, and a netlink socket belongs to the namespace of the thread that opens it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

pub type Result<T> = std::result::Result<T, String>;

fn nl(what: &str) -> impl Fn(rtnetlink::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

async fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("open a netlink socket: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(format!("look up link {name}: {e}")),
    }
}

/// `ip addr add ADDR/PREFIX dev IDX` (`what` names the link in errors).
async fn add_address(
    h: &Handle,
    idx: u32,
    ip: impl Into<IpAddr>,
    prefix: u8,
    what: &str,
) -> Result<()> {
    let ip = ip.into();
    h.address()
        .add(idx, ip, prefix)
        .execute()
        .await
        .map_err(nl(&format!("add {ip}/{prefix} to {what}")))
}

/// Does link `idx` have address `ip`?
async fn has_address(h: &Handle, idx: u32, ip: IpAddr) -> Result<bool> {
    use rtnetlink::packet_route::address::AddressAttribute;
    Ok(h.address()
        .get()
        .set_link_index_filter(idx)
        .execute()
        .try_collect::<Vec<_>>()
        .await
        .map_err(nl("list addresses"))?
        .iter()
        .any(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(v) if *v == ip))
        }))
}

/// `ip link set IDX up`.
async fn set_up(h: &Handle, idx: u32, what: &str) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl(&format!("bring {what} up")))
}

/// Does a link with this name exist in berthd's namespace?
pub async fn exists(name: &str) -> Result<bool> {
    let h = connect().await?;
    Ok(index_of(&h, name).await?.is_some())
}

/// Create the bridge `name` with `gateway/prefix` and bring it up (what exists is kept).
pub async fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8, mtu: u32) -> Result<()> {
    let h = connect().await?;
    let idx = match index_of(&h, name).await? {
        Some(i) => i,
        None => {
            h.link()
                .add(LinkBridge::new(name).mtu(mtu).build())
                .execute()
                .await
                .map_err(nl(&format!("create bridge {name}")))?;
            index_of(&h, name)
                .await?
                .ok_or_else(|| format!("bridge {name} vanished after creation"))?
        }
    };
    let has = has_address(&h, idx, IpAddr::V4(gateway)).await?;
    if !has {
        add_address(&h, idx, gateway, prefix, name).await?;
    }
    set_up(&h, idx, name).await
}

/// Make IPv6 usable on link `name` of the calling thread's namespace at once: enabled,
/// and without duplicate address detection (the addresses are Berth's to give; DAD would
/// leave them "tentative", unusable, for a second or more).
fn ipv6_on(name: &str) -> Result<()> {
    for (k, v) in [("disable_ipv6", "0"), ("accept_dad", "0")] {
        let p = format!("/proc/sys/net/ipv6/conf/{name}/{k}");
        std::fs::write(&p, v).map_err(|e| format!("write {p}: {e}"))?;
    }
    Ok(())
}

/// Give the bridge `name` its IPv6 gateway address (kept if it has it) and let the host
/// forward IPv6, as a dual-stack bridge network needs.
pub async fn ensure_bridge6(name: &str, gateway: Ipv6Addr, prefix: u8) -> Result<()> {
    let h = connect().await?;
    let idx = index_of(&h, name)
        .await?
        .ok_or_else(|| format!("bridge {name} is missing"))?;
    ipv6_on(name)?;
    let has = has_address(&h, idx, IpAddr::V6(gateway)).await?;
    if !has {
        add_address(&h, idx, gateway, prefix, name).await?;
    }
    let p = "/proc/sys/net/ipv6/conf/all/forwarding";
    if std::fs::read_to_string(p)
        .map(|v| v.trim() != "1")
        .unwrap_or(true)
    {
        std::fs::write(p, "1").map_err(|e| format!("enable IPv6 forwarding ({p}): {e}"))?;
    }
    Ok(())
}

/// Delete a link by name (missing is fine).
pub async fn delete(name: &str) -> Result<()> {
    let h = connect().await?;
    if let Some(idx) = index_of(&h, name).await? {
        h.link()
            .del(idx)
            .execute()
            .await
            .map_err(nl(&format!("delete link {name}")))?;
    }
    Ok(())
}

/// Run `f` with a netlink handle inside the network namespace at `ns` (on its own thread).
pub fn in_netns<T, F, Fut>(ns: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    let ns = ns.to_path_buf();
    std::thread::spawn(move || -> Result<T> {
        let fd = std::fs::File::open(&ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("join network namespace {}: {e}", ns.display()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let h = connect().await?;
            f(h).await
        })
    })
    .join()
    .map_err(|_| "network namespace worker panicked".to_string())?
}

/// A new network namespace kept alive by a bind mount at `path`, its loopback up.
pub fn create_netns(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let p = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare a network namespace: {e}"))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind the network namespace to {}: {e}", p.display()))
    })
    .join()
    .map_err(|_| "network namespace worker panicked".to_string())?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    let lo_up = in_netns(path, |h| async move {
        let idx = index_of(&h, "lo")
            .await?
            .ok_or("no lo in a new namespace")?;
        set_up(&h, idx, "lo").await
    });
    if let Err(e) = lo_up {
        remove_netns(path);
        return Err(e);
    }
    Ok(())
}

/// Unmount and remove a namespace made by [`create_netns`] (missing is fine).
pub fn remove_netns(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// What a container's interface on a bridge is.
pub struct Veth<'a> {
    pub host: &'a str,
    /// The interface's name in the container (eth0, eth1, …).
    pub peer: &'a str,
    pub bridge: &'a str,
    pub netns: &'a Path,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Its IPv6 address and prefix, and the IPv6 gateway for the default route.
    pub v6: Option<(Ipv6Addr, u8, Option<Ipv6Addr>)>,
    /// `--link-local-ip`s (169.254.0.0/16, fe80::/64).
    pub link_local: Vec<IpAddr>,
}

/// Create a veth pair: `host` on the bridge, its peer `eth0` made directly in the
/// namespace (one request; moving a device between namespaces afterwards costs an RCU
/// grace period), then the address and default route inside.
pub async fn add_veth(v: &Veth<'_>) -> Result<()> {
    use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
    let h = connect().await?;
    let bridge = index_of(&h, v.bridge)
        .await?
        .ok_or_else(|| format!("bridge {} is missing", v.bridge))?;
    let ns = std::fs::File::open(v.netns).map_err(|e| format!("{}: {e}", v.netns.display()))?;
    let peer = LinkUnspec::new_with_name(v.peer)
        .setns_by_fd(ns.as_raw_fd())
        .address(v.mac.to_vec())
        .mtu(v.mtu)
        .build();
    let msg = rtnetlink::LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(v.host.to_string())
        .mtu(v.mtu)
        .controller(bridge)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl(&format!("create veth pair {}", v.host)))?;
    let (ip, prefix, gw, ifname) = (v.ip, v.prefix, v.gateway, v.peer.to_string());
    let (v6, link_local) = (v.v6, v.link_local.clone());
    let inside = in_netns(v.netns, move |h| async move {
        let idx = index_of(&h, &ifname)
            .await?
            .ok_or_else(|| format!("{ifname} not in the namespace"))?;
        add_address(&h, idx, ip, prefix, &ifname).await?;
        if v6.is_some() {
            ipv6_on(&ifname)?;
        }
        if let Some((a, p, _)) = v6 {
            add_address(&h, idx, a, p, &ifname).await?;
        }
        for a in link_local {
            let p = if a.is_ipv4() { 16 } else { 64 };
            add_address(&h, idx, a, p, &ifname).await?;
        }
        set_up(&h, idx, &ifname).await?;
        if let Some(gw) = gw {
            h.route()
                .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build())
                .execute()
                .await
                .map_err(nl(&format!("add a default route via {gw}")))?;
        }
        if let Some((_, _, Some(gw6))) = v6 {
            h.route()
                .add(RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw6).build())
                .execute()
                .await
                .map_err(nl(&format!("add a default IPv6 route via {gw6}")))?;
        }
        Ok(())
    });
    if let Err(e) = inside {
        let _ = delete(v.host).await;
        return Err(e);
    }
    Ok(())
}

/// Where container `id`'s namespace file lives under `dir`.
pub fn netns_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(&id[..id.len().min(12)])
}

/// The host's IPv4 routes to networks (main table, default route left out): destination,
/// prefix and the interface's name. A subnet for a new network must not overlap them.
pub async fn routes() -> Result<Vec<(Ipv4Addr, u8, String)>> {
    use rtnetlink::packet_route::link::LinkAttribute;
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    let h = connect().await?;
    let mut names = std::collections::HashMap::new();
    let mut links = h.link().get().execute();
    while let Some(m) = links.try_next().await.map_err(nl("list links"))? {
        for a in &m.attributes {
            if let LinkAttribute::IfName(n) = a {
                names.insert(m.header.index, n.clone());
            }
        }
    }
    let mut out = Vec::new();
    let mut s = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(m) = s.try_next().await.map_err(nl("list routes"))? {
        let prefix = m.header.destination_prefix_length;
        let table = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(m.header.table as u32);
        if prefix == 0 || table != libc::RT_TABLE_MAIN as u32 {
            continue;
        }
        let mut dst = None;
        let mut dev = String::new();
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(*d),
                RouteAttribute::Oif(i) => dev = names.get(i).cloned().unwrap_or_default(),
                _ => {}
            }
        }
        if let Some(d) = dst {
            out.push((d, prefix, dev));
        }
    }
    Ok(out)
}
