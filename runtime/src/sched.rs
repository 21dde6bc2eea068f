//! Scheduling attributes of the container process: `process.ioPriority`, `process.scheduler`,
//! `process.execCPUAffinity` and `linux.memoryPolicy`, each one system call applied just before
//! `execve` (the affinity's `initial` value when the process is created).

use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};

use crate::error::{Error, Result};

fn fail(what: &str) -> Error {
    Error::sys(what.to_string(), nix::errno::Errno::last())
}

/// Parse a cpu or node list like `0-3,6` into a bitmask of u64 words.
pub fn parse_list(s: &str) -> Result<Vec<u64>> {
    let mut words = vec![0u64; 1];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let bad = || Error::config("cpu/node list", format!("invalid range {part:?} in {s:?}"));
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= 4096 {
            return Err(bad());
        }
        for i in a..=b {
            if words.len() <= i / 64 {
                words.resize(i / 64 + 1, 0);
            }
            words[i / 64] |= 1 << (i % 64);
        }
    }
    Ok(words)
}

/// Pin the calling process to the cpus in `list`.
pub fn set_affinity(list: &str) -> Result<()> {
    let mask = parse_list(list)?;
    // SAFETY: the pointer and byte length describe the live `mask` vector.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            mask.len() * 8,
            mask.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(fail(&format!("sched_setaffinity {list}")));
    }
    Ok(())
}

/// Apply ioPriority, scheduler and the final cpu affinity of `p`.
pub fn apply_process(p: &Process) -> Result<()> {
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let prio = io.priority();
        if !(0..=7).contains(&prio) {
            return Err(Error::config(
                "process.ioPriority",
                format!("priority {prio} not in 0..7"),
            ));
        }
        // SAFETY: ioprio_set takes integers only.
        let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, (class << 13) | prio) };
        if ret < 0 {
            return Err(fail("ioprio_set"));
        }
    }
    if let Some(s) = p.scheduler() {
        #[repr(C)]
        #[derive(Default)]
        struct SchedAttr {
            size: u32,
            policy: u32,
            flags: u64,
            nice: i32,
            priority: u32,
            runtime: u64,
            deadline: u64,
            period: u64,
        }
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => 0,
            LinuxSchedulerPolicy::SchedFifo => 1,
            LinuxSchedulerPolicy::SchedRr => 2,
            LinuxSchedulerPolicy::SchedBatch => 3,
            LinuxSchedulerPolicy::SchedIso => 4,
            LinuxSchedulerPolicy::SchedIdle => 5,
            LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            };
        }
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy,
            flags,
            nice: s.nice().unwrap_or(0),
            priority: s.priority().unwrap_or(0) as u32,
            runtime: s.runtime().unwrap_or(0),
            deadline: s.deadline().unwrap_or(0),
            period: s.period().unwrap_or(0),
        };
        // SAFETY: `attr` is a sched_attr whose size field matches; it outlives the call.
        let ret =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if ret < 0 {
            return Err(fail(&format!("sched_setattr policy {policy}")));
        }
    }
    if let Some(a) = p.exec_cpu_affinity() {
        if let Some(list) = a.cpu_affinity_final().as_deref().or(a.initial().as_deref()) {
            set_affinity(list)?;
        }
    }
    Ok(())
}

/// Apply `linux.memoryPolicy` (set_mempolicy).
pub fn apply_memory_policy(m: &LinuxMemoryPolicy) -> Result<()> {
    let mut mode: i64 = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    for f in m.flags().iter().flatten() {
        mode |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let nodes = match m.nodes() {
        Some(n) => parse_list(n)?,
        None => vec![0],
    };
    let (ptr, maxnode) = if m.nodes().is_some() {
        (nodes.as_ptr(), nodes.len() * 64 + 1)
    } else {
        (std::ptr::null(), 0)
    };
    // SAFETY: the node mask pointer (or null) and its bit length describe `nodes`.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if ret < 0 {
        return Err(fail("set_mempolicy"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_to_masks() {
        assert_eq!(parse_list("0").unwrap(), vec![1]);
        assert_eq!(parse_list("0-3,6").unwrap(), vec![0b100_1111]);
        assert_eq!(parse_list("64").unwrap(), vec![0, 1]);
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("x").is_err());
    }
}
