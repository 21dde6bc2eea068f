//! Published ports. Every binding gets a userland proxy in berthd (a TCP or UDP listener on
//! the host address and port, forwarding to the container's address): binding it first is
//! also how a port already in use is refused before anything is set up, and it is what makes
//! `127.0.0.1:PORT` work. Traffic from other hosts and to the host's own non-loopback
//! addresses is DNATed by Berth's firewall rules (see [`super::firewall`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub proto: String,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    /// The container's IPv6 address on a dual-stack network: IPv6 traffic to the host
    /// port is DNATed to it (without one, the proxy serves IPv6 clients over IPv4).
    pub container_ip6: Option<std::net::Ipv6Addr>,
    pub container_port: u16,
}

impl Rule {
    /// Does the rule take IPv4 (`v6` false) or IPv6 traffic to the host by DNAT?
    /// 0.0.0.0 means both families, as Docker's; `::` IPv6 alone.
    pub fn dnat_family(&self, v6: bool) -> bool {
        match (v6, self.host_ip) {
            (false, IpAddr::V4(_)) => true,
            (false, IpAddr::V6(_)) => false,
            (true, IpAddr::V4(a)) => a.is_unspecified() && self.container_ip6.is_some(),
            (true, IpAddr::V6(_)) => self.container_ip6.is_some(),
        }
    }
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
    pub host_ip: IpAddr,
    pub host_port: u16,
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

/// A listener on `addr`; on 0.0.0.0, one socket for IPv4 and IPv6 alike ([::] without
/// IPV6_V6ONLY) where the host has IPv6, as dockerd listens on both.
fn listen(proto: &str, addr: SocketAddr) -> std::io::Result<Listener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let dual = addr.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let open = |a: SocketAddr, v6only: Option<bool>| -> std::io::Result<Socket> {
        let (ty, pr) = match proto {
            "tcp" => (Type::STREAM, Protocol::TCP),
            _ => (Type::DGRAM, Protocol::UDP),
        };
        let s = Socket::new(Domain::for_address(a), ty.cloexec(), Some(pr))?;
        if let Some(only) = v6only {
            s.set_only_v6(only)?;
        }
        if proto == "tcp" {
            s.set_reuse_address(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&a.into())?;
        if proto == "tcp" {
            s.listen(1024)?;
        }
        Ok(s)
    };
    let sock = if dual {
        let any6 = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), addr.port());
        match open(any6, Some(false)) {
            Ok(s) => s,
            // No IPv6 on this host: IPv4 only.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                open(addr, None)?
            }
            Err(e) => return Err(e),
        }
    } else {
        open(addr, addr.is_ipv6().then_some(true))?
    };
    Ok(match proto {
        "tcp" => Listener::Tcp(tokio::net::TcpListener::from_std(sock.into())?),
        _ => Listener::Udp(tokio::net::UdpSocket::from_std(sock.into())?),
    })
}

impl Ports {
    /// Bind every wanted port (all or none), start their proxies; the rules, host ports
    /// filled in.
    pub async fn publish(
        &self,
        id: &str,
        container_ip: Ipv4Addr,
        container_ip6: Option<std::net::Ipv6Addr>,
        wants: &[Want],
    ) -> Result<Vec<Rule>, String> {
        let mut bound = Vec::new();
        for w in wants {
            let addr = SocketAddr::new(w.host_ip, w.host_port);
            if !matches!(w.proto.as_str(), "tcp" | "udp") {
                return Err(format!(
                    "protocol {} is not supported for publishing",
                    w.proto
                ));
            }
            let l = listen(&w.proto, addr);
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
                    container_ip6,
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

async fn proxy_tcp(l: tokio::net::TcpListener, to: SocketAddr) {
    loop {
        let Ok((client, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(upstream) = tokio::net::TcpStream::connect(to).await {
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                // Each direction until its EOF (then the write side of the other socket
                // is shut), or an error on either, which ends both.
                let _ = tokio::try_join!(
                    splice_copy(&client, &upstream),
                    splice_copy(&upstream, &client)
                );
            }
        });
    }
}

/// What one splice moves at most (the pipe is sized to it).
const SPLICE_CHUNK: usize = 1 << 20;

/// Copy `from` → `to` through a pipe with splice(2): the bytes stay in the kernel (as
/// docker-proxy's Go io.Copy does); readiness from tokio, EAGAIN waits for it again.
async fn splice_copy(
    from: &tokio::net::TcpStream,
    to: &tokio::net::TcpStream,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    let (rd, wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: F_SETPIPE_SZ on a pipe we own; failure only leaves the default size.
    unsafe {
        libc::fcntl(
            wr.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            SPLICE_CHUNK as libc::c_int,
        )
    };
    let splice = |fd_in: i32, fd_out: i32, len: usize| -> std::io::Result<usize> {
        // SAFETY: plain descriptors owned by this function's sockets and pipe; null
        // offsets (both ends are streams).
        let n = unsafe {
            libc::splice(
                fd_in,
                std::ptr::null_mut(),
                fd_out,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    };
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    loop {
        // The pipe is empty here: EAGAIN means the socket has nothing to read.
        let mut held = from
            .async_io(Interest::READABLE, || {
                splice(src, wr.as_raw_fd(), SPLICE_CHUNK)
            })
            .await?;
        if held == 0 {
            // EOF: the peer writes no more; tell the other side the same.
            // SAFETY: shutdown(2) of our own connected socket.
            unsafe { libc::shutdown(dst, libc::SHUT_WR) };
            return Ok(());
        }
        while held > 0 {
            held -= to
                .async_io(Interest::WRITABLE, || splice(rd.as_raw_fd(), dst, held))
                .await?;
        }
    }
}

/// UDP flows one published port keeps at once (each idle one expires after a minute).
const MAX_UDP_FLOWS: usize = 512;

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
                    // A bound on the flows (each a socket and a task) a flood of sources
                    // can open; past it new sources are dropped until flows expire.
                    if f.len() >= MAX_UDP_FLOWS {
                        continue;
                    }
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
