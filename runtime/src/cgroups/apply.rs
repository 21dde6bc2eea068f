//! `linux.resources` written into a container's cgroups: the v1 controllers' files (with
//! the devices controller's allow/deny lists) or the v2 unified hierarchy's (with the
//! device filter as a BPF program).

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::*;

impl Cgroup {
    /// Apply `linux.resources`. `devices` extra device rules come from `linux.devices`.
    pub fn apply(&self, res: &LinuxResources, extra_devices: &[LinuxDeviceCgroup]) -> Result<()> {
        if self.v2 {
            self.apply_v2(res, extra_devices)
        } else {
            self.apply_v1(res, extra_devices)
        }
    }

    pub(super) fn need(&self, ctl: &str) -> Result<&Path> {
        self.dir(ctl).ok_or_else(|| {
            Error::cgroup(
                "/sys/fs/cgroup",
                format!("the {ctl} controller is not available on this host"),
                None,
            )
        })
    }

    pub(super) fn apply_v1(
        &self,
        res: &LinuxResources,
        extra_devices: &[LinuxDeviceCgroup],
    ) -> Result<()> {
        if let Some(m) = res.memory() {
            let dir = self.need("memory")?;
            if let Some(r) = m.reservation() {
                write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
            }
            let limit = m.limit();
            let swap = m.swap();
            // memsw must stay >= limit at every step: order the writes accordingly.
            let set_limit = |l: i64| write(dir, "memory.limit_in_bytes", &l.to_string());
            let set_swap = |s: i64| write(dir, "memory.memsw.limit_in_bytes", &s.to_string());
            match (limit, swap) {
                (Some(l), Some(s)) => {
                    if s == -1 || set_limit(l).is_err() {
                        set_swap(s)?;
                        set_limit(l)?;
                    } else {
                        set_swap(s)?;
                    }
                }
                (Some(l), None) => set_limit(l)?,
                (None, Some(s)) => set_swap(s)?,
                (None, None) => {}
            }
            if let Some(sw) = m.swappiness() {
                if sw > 100 {
                    return Err(Error::cgroup(
                        dir,
                        format!("swappiness {sw} above 100"),
                        None,
                    ));
                }
                write(dir, "memory.swappiness", &sw.to_string())?;
            }
            if m.disable_oom_killer() == Some(true) {
                write(dir, "memory.oom_control", "1")?;
            }
            // Kernel memory limits (deprecated by the spec, still honoured where the kernel
            // has them; newer kernels dropped memory.kmem.limit_in_bytes).
            if let Some(k) = m.kernel() {
                write(dir, "memory.kmem.limit_in_bytes", &k.to_string())?;
            }
            if let Some(k) = m.kernel_tcp() {
                write(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
            }
        }
        if let Some(c) = res.cpu() {
            if c.shares().is_some()
                || c.quota().is_some()
                || c.period().is_some()
                || c.realtime_runtime().is_some()
                || c.realtime_period().is_some()
            {
                let dir = self.need("cpu")?;
                if let Some(s) = c.shares() {
                    write(dir, "cpu.shares", &s.to_string())?;
                }
                if let Some(p) = c.period() {
                    write(dir, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = c.quota() {
                    write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                }
                if let Some(p) = c.realtime_period() {
                    write(dir, "cpu.rt_period_us", &p.to_string())?;
                }
                if let Some(r) = c.realtime_runtime() {
                    write(dir, "cpu.rt_runtime_us", &r.to_string())?;
                }
            }
            if c.cpus().is_some() || c.mems().is_some() {
                let dir = self.need("cpuset")?;
                if let Some(cpus) = c.cpus() {
                    write(dir, "cpuset.cpus", cpus)?;
                }
                if let Some(mems) = c.mems() {
                    write(dir, "cpuset.mems", mems)?;
                }
            }
        }
        if let Some(p) = res.pids() {
            let dir = self.need("pids")?;
            write(dir, "pids.max", &pids_max(p.limit()))?;
        }
        if let Some(b) = res.block_io() {
            let dir = self.need("blkio")?;
            // Weight 0 means "not set" (dockerd sends it for every container, as runc reads it).
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                // Kernels without CFQ have the BFQ scheduler's file only.
                let file = if !dir.join("blkio.weight").exists()
                    && dir.join("blkio.bfq.weight").exists()
                {
                    "blkio.bfq.weight"
                } else {
                    "blkio.weight"
                };
                write(dir, file, &w.to_string())?;
            }
            if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
                write(dir, "blkio.leaf_weight", &w.to_string())?;
            }
            for d in b.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    write(
                        dir,
                        "blkio.weight_device",
                        &format!("{}:{} {w}", d.major(), d.minor()),
                    )?;
                }
            }
            let throttles = [
                (
                    b.throttle_read_bps_device(),
                    "blkio.throttle.read_bps_device",
                ),
                (
                    b.throttle_write_bps_device(),
                    "blkio.throttle.write_bps_device",
                ),
                (
                    b.throttle_read_iops_device(),
                    "blkio.throttle.read_iops_device",
                ),
                (
                    b.throttle_write_iops_device(),
                    "blkio.throttle.write_iops_device",
                ),
            ];
            for (list, file) in throttles {
                for t in list.iter().flatten() {
                    write(
                        dir,
                        file,
                        &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                    )?;
                }
            }
        }
        for h in res.hugepage_limits().iter().flatten() {
            let dir = self.need("hugetlb")?;
            write(
                dir,
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        if let Some(n) = res.network() {
            if let Some(id) = n.class_id() {
                let dir = self.need("net_cls")?;
                write(dir, "net_cls.classid", &id.to_string())?;
            }
            for p in n.priorities().iter().flatten() {
                let dir = self.need("net_prio")?;
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        if let Some(devs) = res.devices() {
            if let Some(dir) = self.dir("devices") {
                for rule in devs
                    .iter()
                    .chain(extra_devices)
                    .chain(default_allowed().iter())
                {
                    let file = if rule.allow() {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    write(dir, file, &device_rule(rule))?;
                }
            }
        }
        if let Some(u) = res.unified() {
            if !u.is_empty() {
                return Err(Error::Unsupported(
                    "linux.resources.unified on a cgroup v1 host".into(),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn apply_v2(
        &self,
        res: &LinuxResources,
        extra_devices: &[LinuxDeviceCgroup],
    ) -> Result<()> {
        let dir = self.unified_dir().expect("v2 cgroup has a directory");
        if let Some(devs) = res.devices() {
            // v2 has no devices files: the same rules become an eBPF program.
            let rules: Vec<LinuxDeviceCgroup> = devs
                .iter()
                .chain(extra_devices)
                .cloned()
                .chain(default_allowed())
                .collect();
            crate::bpf_devices::attach(dir, &rules)?;
        }
        if let Some(m) = res.memory() {
            if let Some(r) = m.reservation() {
                write(dir, "memory.low", &max_or(r))?;
            }
            if let Some(l) = m.limit() {
                write(dir, "memory.max", &max_or(l))?;
            }
            if let Some(s) = m.swap() {
                // OCI swap is memory+swap; v2 limits swap alone.
                let v = match (s, m.limit()) {
                    (-1, _) => "max".to_string(),
                    (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                write(dir, "memory.swap.max", &v)?;
            }
            if m.disable_oom_killer() == Some(true) {
                return Err(Error::Unsupported("disableOOMKiller on cgroup v2".into()));
            }
            // v2 has no separate kernel memory limits (kernel memory is part of memory.max),
            // so there is nothing to write; say so rather than pretend.
            if m.kernel().is_some() || m.kernel_tcp().is_some() {
                tracing::warn!(
                    "linux.resources.memory.kernel/kernelTCP: cgroup v2 has no kernel memory limits (counted in memory.max); not applied"
                );
            }
        }
        if let Some(c) = res.cpu() {
            if let Some(s) = c.shares() {
                write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = c
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".into(), |q| q.to_string());
                let p = c.period().unwrap_or(100000);
                write(dir, "cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(i) = c.idle() {
                write(dir, "cpu.idle", &i.to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                write(dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(dir, "cpuset.mems", mems)?;
            }
        }
        if let Some(p) = res.pids() {
            write(dir, "pids.max", &pids_max(p.limit()))?;
        }
        if let Some(b) = res.block_io() {
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                let w2 = 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990;
                write(dir, "io.weight", &format!("default {w2}"))?;
            }
            let throttles = [
                (b.throttle_read_bps_device(), "rbps"),
                (b.throttle_write_bps_device(), "wbps"),
                (b.throttle_read_iops_device(), "riops"),
                (b.throttle_write_iops_device(), "wiops"),
            ];
            for (list, key) in throttles {
                for t in list.iter().flatten() {
                    write(
                        dir,
                        "io.max",
                        &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                    )?;
                }
            }
        }
        for h in res.hugepage_limits().iter().flatten() {
            write(
                dir,
                &format!("hugetlb.{}.max", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        for (k, v) in res.unified().iter().flatten() {
            if k.contains('/') || k.starts_with("cgroup.") && k != "cgroup.freeze" {
                return Err(Error::cgroup(
                    dir,
                    format!("unified key {k:?} not allowed"),
                    None,
                ));
            }
            write(dir, k, v)?;
        }
        Ok(())
    }
}
