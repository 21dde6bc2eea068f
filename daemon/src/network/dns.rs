//! The embedded DNS server of user-defined networks: a UDP socket on 127.0.0.11:53 inside
//! each container's namespace (made by a thread that joined it), served by a task in
//! berthd. It answers A queries for the names, network aliases and short IDs of the
//! containers on the user-defined networks the asking container is on; other queries go to the host's resolvers (asked from
//! berthd's own namespace, so loopback resolvers work too).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata::A, rdata::AAAA, RData, Record, RecordType};

use super::Net;

pub const ADDR: &str = "127.0.0.11";

/// A socket bound to 127.0.0.11:53 in the namespace at `ns`.
pub fn bind_in(ns: &Path) -> Result<std::net::UdpSocket, String> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || -> Result<std::net::UdpSocket, String> {
        let fd = std::fs::File::open(&ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("join network namespace {}: {e}", ns.display()))?;
        let s = std::net::UdpSocket::bind((ADDR, 53))
            .map_err(|e| format!("bind {ADDR}:53 for the embedded DNS: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    })
    .join()
    .map_err(|_| "DNS socket worker panicked".to_string())?
}

/// The host's resolvers (those berthd itself uses).
fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Serve the queries of container `asker` on `sock` until the task is aborted.
pub async fn serve(sock: std::net::UdpSocket, net: Arc<Net>, asker: String) {
    let Ok(sock) = tokio::net::UdpSocket::from_std(sock) else {
        return;
    };
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let q = buf[..n].to_vec();
        let (sock, net, asker) = (sock.clone(), net.clone(), asker.clone());
        tokio::spawn(async move {
            if let Some(reply) = answer(&q, &net, &asker).await {
                let _ = sock.send_to(&reply, from).await;
            }
        });
    }
}

async fn answer(query: &[u8], net: &Net, asker: &str) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    let q = req.queries().first()?.clone();
    let name = q.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let local = net.resolve(asker, &name).await;
    if local.is_none() {
        if let Some(r) = forward(query).await {
            return Some(r);
        }
    }
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .add_query(q.clone());
    match local {
        Some((ip, ip6)) => {
            resp.set_authoritative(true);
            if q.query_type() == RecordType::A {
                resp.add_answer(Record::from_rdata(q.name().clone(), 600, RData::A(A(ip))));
            }
            if let (RecordType::AAAA, Some(ip6)) = (q.query_type(), ip6) {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    600,
                    RData::AAAA(AAAA(ip6)),
                ));
            }
            resp.set_response_code(ResponseCode::NoError);
        }
        None => {
            resp.set_response_code(ResponseCode::ServFail);
        }
    }
    resp.to_vec().ok()
}

/// Ask the host's resolvers (from berthd's namespace); None if none answers in 2 s.
async fn forward(query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams() {
        let bind = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let Ok(s) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if s.send_to(query, up).await.is_err() {
            continue;
        }
        let mut b = vec![0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(std::time::Duration::from_secs(2), s.recv_from(&mut b)).await
        {
            return Some(b[..n].to_vec());
        }
    }
    None
}

/// The container address a name means on `network` (name, alias or short ID).
pub fn matches(name: &str, container_id: &str, ep_name: &str, aliases: &[String]) -> bool {
    name == ep_name.to_ascii_lowercase()
        || aliases.iter().any(|a| a.to_ascii_lowercase() == name)
        || (name.len() >= 12 && container_id.starts_with(name))
}
