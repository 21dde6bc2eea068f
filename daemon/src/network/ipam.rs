//! IP address management: subnets for new networks (daemon.json's address pools, skipping
//! what host routes and other networks use), parsing of CIDR notation.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// Do `a` and any of `taken` share addresses?
pub(super) fn overlaps((a, p): (Ipv4Addr, u8), taken: &[(Ipv4Addr, u8)]) -> bool {
    taken.iter().any(|(b, q)| {
        let m = u32::MAX.checked_shl(32 - (p.min(*q)) as u32).unwrap_or(0);
        u32::from(a) & m == u32::from(*b) & m
    })
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

/// `2001:db8::/64` → (network address, prefix); prefixes of 48 to 120 bits.
pub fn parse_cidr6(s: &str) -> Result<(Ipv6Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid IPv6 CIDR address: {s}"))?;
    let a: Ipv6Addr = a
        .parse()
        .map_err(|_| format!("invalid IPv6 CIDR address: {s}"))?;
    let p: u8 = p
        .parse()
        .ok()
        .filter(|p| (48..=120).contains(p))
        .ok_or_else(|| format!("invalid IPv6 CIDR prefix: {s} (48 to 120 bits)"))?;
    Ok((Ipv6Addr::from(u128::from(a) & mask6(p)), p))
}

fn mask6(p: u8) -> u128 {
    u128::MAX.checked_shl(128 - p as u32).unwrap_or(0)
}

/// Is `a` inside `net`?
pub fn contains6((n, p): (Ipv6Addr, u8), a: Ipv6Addr) -> bool {
    u128::from(a) & mask6(p) == u128::from(n)
}

/// Do two IPv6 subnets share addresses?
pub(super) fn overlaps6((a, p): (Ipv6Addr, u8), (b, q): (Ipv6Addr, u8)) -> bool {
    let m = mask6(p.min(q));
    u128::from(a) & m == u128::from(b) & m
}

/// A unique local /64 (RFC 4193: fd00::/8 with a random 40-bit global ID) for an IPv6
/// network made without a subnet.
pub(super) fn random_ula() -> (Ipv6Addr, u8) {
    let hex = random_hex(10);
    let id = u64::from_str_radix(&hex, 16).unwrap_or(0) & 0xff_ffff_ffff;
    let prefix = (0xfdu128 << 120) | ((id as u128) << 80);
    (Ipv6Addr::from(prefix), 64)
}

impl Net {
    /// Subnets for networks made without one, in order: daemon.json
    /// `default-address-pools` cut into subnets of their `size`, or Docker's defaults
    /// (172.17–31.0.0/16, then 192.168.0.0/16 in /20s).
    pub(super) fn candidates(&self) -> Vec<(Ipv4Addr, u8)> {
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
    pub(super) async fn free_subnet(&self, st: &Records) -> Result<(Ipv4Addr, u8), String> {
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
}
