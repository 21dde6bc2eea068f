//! A container's networking, as the container service drives it: its namespace and
//! endpoint at create (`--network`, `--link`, `--ip`), its /etc files, published ports at
//! each start, its endpoint plugged in again after an exit, network connect/disconnect,
//! and, at berthd's start, the ports of running containers published again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_manager::oci::{MountOpt, NsMode, Options};

use super::doc::{Config, HostConfig, NetDoc, PortBinding};
use super::{all, dir, find, state_name, task, update_doc, Container, Error, Result};
use crate::network::ports::Want;
use crate::network::Net;
use crate::state::State;

fn user_network(mode: &str) -> bool {
    !matches!(mode, "" | "default" | "bridge" | "none" | "host")
}

/// The container's network (`--network`): its namespace in the spec, its /etc/hosts,
/// /etc/hostname and /etc/resolv.conf bind-mounted. Returns what the record keeps.
pub(super) async fn attach(
    d: &State,
    id: &str,
    name: &str,
    cfg: &Config,
    host: &HostConfig,
    opts: &mut Options,
) -> Result<NetDoc> {
    let mode = host.network_mode().to_string();
    if mode == "host" && opts.hostname.is_none() {
        // Like dockerd: the host's name on the host's network.
        opts.hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
    }
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let etc_dir = dir(d, id);
    let mut shared_etc = None;
    let mut endpoint = None;
    if let Some(other) = mode.strip_prefix("container:") {
        let o = find(d, other).await?;
        let pid = task(d, &o.id)
            .await
            .filter(|t| t.pid > 0 && matches!(state_name(Some(t)), "running" | "paused"))
            .map(|t| t.pid)
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "cannot join network namespace of a non running container: {}",
                    o.id
                ))
            })?;
        opts.network = NsMode::Path(format!("/proc/{pid}/ns/net"));
        shared_etc = Some(dir(d, &o.id));
    } else {
        if user_network(&mode) && d.net.find(&mode).await.is_none() {
            return Err(Error::NoSuchNetwork(mode));
        }
        let settings = cfg
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.get(&mode))
            .cloned()
            .unwrap_or_default();
        let mut req = crate::network::EndpointRequest::from_config(
            name,
            &settings,
            cfg.mac_address.as_deref(),
        )
        .map_err(Error::Invalid)?;
        let links = links_of(d, host).await?;
        if !links.is_empty() && matches!(mode.as_str(), "none" | "host") {
            return Err(Error::Invalid(format!(
                "conflicting options: {mode} type networking can't be used with links"
            )));
        }
        if user_network(&mode) {
            // On a user-defined network a link is a name only the linking container sees.
            req.links.extend(links);
        }
        let a = d.net.attach(id, &mode, &req).await.map_err(|e| match e {
            crate::network::Error::Invalid(m) | crate::network::Error::Conflict(m) => {
                Error::Invalid(m)
            }
            crate::network::Error::NoSuchNetwork(n) => Error::NoSuchNetwork(n),
            crate::network::Error::Forbidden(m) => Error::Forbidden(m),
            crate::network::Error::Failed(m) => Error::Internal(m),
        })?;
        if let Some(ns) = &a.netns {
            opts.network = NsMode::Path(ns.display().to_string());
        }
        endpoint = a.endpoint;
    }
    let files = match &shared_etc {
        Some(dir) => ["hosts", "hostname", "resolv.conf"]
            .iter()
            .map(|f| (format!("/etc/{f}"), dir.join(f)))
            .filter(|(_, p)| p.exists())
            .collect(),
        None => {
            let mut dns = host.dns.clone().unwrap_or_default();
            if user_network(&mode) && dns.is_empty() {
                // The embedded DNS (it forwards what it does not know).
                dns.push(crate::network::dns::ADDR.to_string());
            }
            let made = Net::etc_files(
                &etc_dir,
                &hostname,
                endpoint.as_ref(),
                mode == "host",
                &host.extra_hosts.clone().unwrap_or_default(),
                &dns,
            );
            match made {
                Ok(f) => f,
                Err(e) => {
                    d.net.detach(id).await;
                    return Err(Error::Invalid(e));
                }
            }
        }
    };
    for (dest, src) in files {
        opts.mounts.push(MountOpt {
            source: src.display().to_string(),
            destination: dest,
            kind: "bind".into(),
            read_only: false,
            options: vec!["rbind".into(), "rprivate".into()],
        });
    }
    Ok(NetDoc {
        mode: if mode.is_empty() {
            "default".to_string()
        } else {
            mode
        },
        endpoint,
        extra: Vec::new(),
    })
}

/// `HostConfig.Links` (`--link NAME[:ALIAS]`), each naming an existing container.
async fn links_of(d: &State, host: &HostConfig) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for l in host.links.iter().flatten() {
        let (name, alias) = crate::network::parse_link(l).map_err(Error::Invalid)?;
        if find(d, &name).await.is_err() {
            return Err(Error::Invalid(format!(
                "could not get container for {name}"
            )));
        }
        out.push((name, alias));
    }
    Ok(out)
}

/// On the default bridge, `--link`s are lines of /etc/hosts, written at each start with
/// the linked containers' current addresses (they must run, as with Docker), and Docker's
/// legacy link variables for the process's environment (returned).
pub(super) async fn link_hosts(d: &State, c: &Container) -> Result<Vec<String>> {
    if !matches!(c.doc.net.mode(), "default" | "bridge") {
        return Ok(Vec::new());
    }
    let links = links_of(d, &c.doc.host_config).await?;
    let mut entries = Vec::new();
    let mut env = Vec::new();
    for (name, alias) in links {
        let target = find(d, &name).await?;
        let ip = d
            .net
            .endpoint(&target.id)
            .await
            .filter(|e| !e.released)
            .map(|e| e.ip)
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "Cannot link to a non running container: /{name} AS {}/{alias}",
                    c.name
                ))
            })?;
        env.extend(link_env(&c.name, &target, &alias, &ip));
        entries.push((ip, alias, name));
    }
    if entries.is_empty() {
        return Ok(env);
    }
    Net::link_hosts(&dir(d, &c.id), &entries).map_err(Error::Internal)?;
    Ok(env)
}

/// The legacy link variables of a container being created (`name`): for the linked
/// containers running now (a start later checks them all and refreshes the variables).
pub(super) async fn create_link_env(
    d: &State,
    name: &str,
    host: &HostConfig,
) -> Result<Vec<String>> {
    if !matches!(
        host.network_mode.as_deref().unwrap_or("default"),
        "default" | "bridge" | ""
    ) {
        return Ok(Vec::new());
    }
    let mut env = Vec::new();
    for (target, alias) in links_of(d, host).await? {
        let t = find(d, &target).await?;
        if let Some(e) = d.net.endpoint(&t.id).await.filter(|e| !e.released) {
            env.extend(link_env(name, &t, &alias, &e.ip));
        }
    }
    Ok(env)
}

/// Docker's legacy link variables for `target` linked as `alias` into container `name`:
/// `ALIAS_NAME=/c/alias`, `ALIAS_PORT[_80_TCP[_ADDR|_PORT|_PROTO]]` for its exposed ports
/// (lowest first) and `ALIAS_ENV_X` for its environment but HOME and PATH.
fn link_env(name: &str, target: &Container, alias: &str, ip: &str) -> Vec<String> {
    let a = alias.to_uppercase().replace('-', "_");
    let mut out = vec![format!(
        "{a}_NAME=/{}/{alias}",
        name.trim_start_matches('/')
    )];
    let mut ports: Vec<(u16, String)> = target
        .doc
        .config
        .exposed()
        .iter()
        .filter_map(|k| port_key(k))
        .collect();
    ports.sort();
    if let Some((p, proto)) = ports.first() {
        out.push(format!("{a}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let k = format!("{a}_PORT_{p}_{}", proto.to_uppercase());
        out.push(format!("{k}={proto}://{ip}:{p}"));
        out.push(format!("{k}_ADDR={ip}"));
        out.push(format!("{k}_PORT={p}"));
        out.push(format!("{k}_PROTO={proto}"));
    }
    for e in target.doc.config.env.iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            if k != "HOME" && k != "PATH" {
                out.push(format!("{a}_ENV_{k}={v}"));
            }
        }
    }
    out
}

/// `80/tcp` → (80, "tcp").
fn port_key(k: &str) -> Option<(u16, String)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    Some((p.parse().ok()?, proto.to_string()))
}

/// Bind the container's published ports (`-p`, `-P`): at start, released at exit.
pub(super) async fn publish_ports(
    d: &State,
    c: &Container,
) -> Result<BTreeMap<String, Vec<PortBinding>>> {
    let Some(ep) = d.net.endpoint(&c.id).await else {
        return Ok(BTreeMap::new());
    };
    let host = &c.doc.host_config;
    let publish_all = host.publish_all_ports.unwrap_or(false);
    let mut wants = Vec::new();
    let mut exposed: BTreeSet<String> = c.doc.config.exposed().into_iter().collect();
    if publish_all {
        if let Ok(img) = d.images.find(&c.doc.image).await {
            if let Ok(r) = d.images.resolve_record(&img).await {
                for k in r
                    .config
                    .config
                    .and_then(|c| c.exposed_ports)
                    .unwrap_or_default()
                    .keys()
                {
                    exposed.insert(k.clone());
                }
            }
        }
    }
    let bindings = host.port_bindings.clone().unwrap_or_default();
    for (k, list) in &bindings {
        let Some((port, proto)) = port_key(k) else {
            continue;
        };
        for b in list.iter().flatten() {
            let ip = Some(b.host_ip.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("0.0.0.0");
            let host_ip = ip
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid host IP {ip:?} for port {k}")))?;
            let hp = &b.host_port;
            let host_port = if hp.is_empty() {
                0
            } else {
                hp.parse()
                    .map_err(|_| Error::Invalid(format!("invalid host port {hp:?} for port {k}")))?
            };
            wants.push(Want {
                proto: proto.clone(),
                container_port: port,
                host_ip,
                host_port,
            });
        }
    }
    if publish_all {
        for k in &exposed {
            if bindings.contains_key(k) {
                continue;
            }
            if let Some((port, proto)) = port_key(k) {
                wants.push(Want {
                    proto,
                    container_port: port,
                    host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                    host_port: 0,
                });
            }
        }
    }
    if wants.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ip = ep.ip.parse().map_err(Error::internal)?;
    let ip6 = ep.ip6.parse().ok();
    let rules = d
        .net
        .ports
        .publish(&c.id, ip, ip6, &wants)
        .await
        .map_err(Error::Internal)?;
    d.net.refresh_rules().await;
    let mut ports: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for r in rules {
        ports
            .entry(format!("{}/{}", r.container_port, r.proto))
            .or_default()
            .push(PortBinding {
                host_ip: r.host_ip.to_string(),
                host_port: r.host_port.to_string(),
            });
    }
    Ok(ports)
}

/// At berthd's start: drop what belongs to containers that are gone, and publish again the
/// ports of the running ones (live restore: the proxies lived in the old berthd).
pub async fn restore(d: &State) {
    let mut cs = None;
    for _ in 0..100 {
        if let Ok(l) = all(d).await {
            cs = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(cs) = cs else { return };
    // Exits are handled after this (their release then undoes what is published here).
    let _g = d.exit_lock.lock().await;
    let exist = cs.iter().map(|c| c.id.clone()).collect();
    let mut states = std::collections::HashMap::new();
    for c in &cs {
        states.insert(c.id.clone(), state_name(task(d, &c.id).await.as_ref()));
    }
    let active = states
        .iter()
        .filter(|(_, s)| matches!(**s, "running" | "paused" | "created"))
        .map(|(k, _)| k.clone())
        .collect();
    d.net.reconcile(&exist, &active).await;
    for c in cs {
        let running = matches!(states.get(&c.id).copied(), Some("running" | "paused"));
        if c.doc.published_ports.is_empty() {
            continue;
        }
        // (Not if its exit was handled meanwhile: the endpoint is released then.)
        let Some(ep) = d
            .net
            .endpoint(&c.id)
            .await
            .filter(|e| running && !e.released)
        else {
            continue;
        };
        let mut wants = Vec::new();
        for (k, list) in &c.doc.published_ports {
            let Some((container_port, proto)) = port_key(k) else {
                continue;
            };
            for b in list {
                if let (Ok(host_ip), Ok(host_port)) = (b.host_ip.parse(), b.host_port.parse()) {
                    wants.push(Want {
                        proto: proto.clone(),
                        container_port,
                        host_ip,
                        host_port,
                    });
                }
            }
        }
        if let Ok(ip) = ep.ip.parse() {
            let ip6 = ep.ip6.parse().ok();
            if let Err(e) = d.net.ports.publish(&c.id, ip, ip6, &wants).await {
                tracing::warn!(container_id = %c.id, "publish its ports again: {e}");
            }
        }
    }
    d.net.refresh_rules().await;
}

/// The network a stopped container had, plugged in again (see `Net::reattach`); its
/// record and /etc/hosts follow when an address changed.
pub(super) async fn reattach(d: &State, c: &Container) -> Result<()> {
    let Some((first, extra)) = d
        .net
        .reattach(&c.id, c.doc.net.mode())
        .await
        .map_err(Error::Internal)?
    else {
        return Ok(());
    };
    let old = c
        .doc
        .net
        .endpoint
        .as_ref()
        .map(|e| e.ip.as_str())
        .unwrap_or("");
    let new = first.as_ref().map(|e| e.ip.as_str()).unwrap_or("");
    if old != new {
        Net::retarget_hosts(&dir(d, &c.id), old, new).map_err(Error::Internal)?;
    }
    update_doc(d, &c.id, None, |doc| {
        doc.net.endpoint = first;
        doc.net.extra = extra;
    })
    .await
}

/// host, none and container: modes have no interfaces of their own to add or take away.
fn own_namespace(c: &Container) -> Result<()> {
    let why = match c.doc.net.mode() {
        "host" => "container cannot be disconnected from host network or connected to host network",
        "none" => "container cannot be connected to multiple networks with one of the networks in private (none) mode",
        m if m.starts_with("container:") => "container sharing network namespace with another container or host cannot be connected to any other network",
        _ => return Ok(()),
    };
    Err(Error::Forbidden(why.into()))
}

/// The record of the container's endpoint on `network` (the first one, or one of the
/// connected ones): replaced by `ep`, or removed (None).
fn record_endpoint(
    net: &mut NetDoc,
    network: &str,
    first: bool,
    ep: Option<crate::network::Endpoint>,
) {
    if first {
        net.endpoint = ep;
        return;
    }
    net.extra.retain(|e| e.network != network);
    net.extra.extend(ep);
}

/// `docker network connect`: one more interface for a container (running or not).
pub async fn connect(
    d: &State,
    c: &Container,
    network: &crate::network::Network,
    settings: &serde_json::Value,
) -> Result<()> {
    own_namespace(c)?;
    let req = crate::network::EndpointRequest::from_config(&c.name, settings, None)
        .map_err(Error::Invalid)?;
    let (ep, first) = d
        .net
        .connect(&c.id, &network.name, &req)
        .await
        .map_err(Error::Forbidden)?;
    let dir = dir(d, &c.id);
    if network.name != "bridge" {
        // Names on the new network resolve through the embedded DNS (rewritten in place:
        // the file is bind-mounted).
        let p = dir.join("resolv.conf");
        let cur = std::fs::read_to_string(&p).unwrap_or_default();
        if !cur.contains(crate::network::dns::ADDR) {
            let _ = std::fs::write(&p, format!("nameserver {}\n", crate::network::dns::ADDR));
        }
    }
    if first {
        let old = c
            .doc
            .net
            .endpoint
            .as_ref()
            .map(|e| e.ip.as_str())
            .unwrap_or("");
        Net::retarget_hosts(&dir, old, &ep.ip).map_err(Error::Internal)?;
    }
    update_doc(d, &c.id, None, |doc| {
        record_endpoint(&mut doc.net, &network.name, first, Some(ep))
    })
    .await?;
    crate::events::publish_network(d, "connect", &network.id, &network.name);
    Ok(())
}

/// `docker network disconnect`.
pub async fn disconnect(d: &State, c: &Container, network: &crate::network::Network) -> Result<()> {
    own_namespace(c)?;
    let (ep, first) = d
        .net
        .disconnect(&c.id, &network.name)
        .await
        .map_err(Error::Forbidden)?;
    if first {
        Net::retarget_hosts(&dir(d, &c.id), &ep.ip, "").map_err(Error::Internal)?;
    }
    update_doc(d, &c.id, None, |doc| {
        record_endpoint(&mut doc.net, &network.name, first, None)
    })
    .await?;
    crate::events::publish_network(d, "disconnect", &network.id, &network.name);
    Ok(())
}
