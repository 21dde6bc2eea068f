//! Device access control on cgroup v2: the v1 `devices.allow/deny` lists compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program and attached to the container's cgroup.
//!
//! Rules keep v1's meaning: later rules override earlier ones. The program therefore checks
//! them from last to first and returns on the first that matches: an allow rule matches when it
//! covers every requested access (mknod/read/write), a deny rule when it covers any of them.
//! Nothing matching means deny.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high nibble
    off: i16,
    imm: i32,
}

const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_ALU64_AND_K: u8 = 0x57;
const BPF_ALU64_RSH_K: u8 = 0x77;
const BPF_ALU64_MOV_K: u8 = 0xb7;
const BPF_ALU64_MOV_X: u8 = 0xbf;
const BPF_JMP_JNE_K: u8 = 0x55;
const BPF_JMP_JEQ_K: u8 = 0x15;
const BPF_EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn access_bits(access: Option<&str>) -> i32 {
    let a = access.unwrap_or("rwm");
    let mut bits = 0;
    if a.contains('m') {
        bits |= ACC_MKNOD;
    }
    if a.contains('r') {
        bits |= ACC_READ;
    }
    if a.contains('w') {
        bits |= ACC_WRITE;
    }
    bits
}

/// Compile `rules` (in v1 order) into a program.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    // r1 = ctx: { u32 access_type (access << 16 | type); u32 major; u32 minor; }
    let mut p = vec![
        insn(BPF_LDX_MEM_W, 2, 1, 0, 0),        // r2 = access_type
        insn(BPF_ALU64_AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(BPF_LDX_MEM_W, 3, 1, 0, 0),        // r3 = access_type
        insn(BPF_ALU64_RSH_K, 3, 0, 0, 16),     // r3 = access
        insn(BPF_LDX_MEM_W, 4, 1, 4, 0),        // r4 = major
        insn(BPF_LDX_MEM_W, 5, 1, 8, 0),        // r5 = minor
    ];
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        let ty = match rule.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            // Fifos are not device nodes: the kernel never asks about them.
            Some(LinuxDeviceType::P) => continue,
            _ => None,
        };
        let acc = access_bits(rule.access().as_deref());
        // Each check jumps to the end of this block (patched below) when it fails.
        if let Some(t) = ty {
            block.push(insn(BPF_JMP_JNE_K, 2, 0, 0, t));
        }
        block.push(insn(BPF_ALU64_MOV_X, 1, 3, 0, 0)); // r1 = access
        if rule.allow() {
            block.push(insn(BPF_ALU64_AND_K, 1, 0, 0, !acc & 7)); // asked beyond the rule?
            block.push(insn(BPF_JMP_JNE_K, 1, 0, 0, 0));
        } else {
            block.push(insn(BPF_ALU64_AND_K, 1, 0, 0, acc)); // asked any of the rule's?
            block.push(insn(BPF_JMP_JEQ_K, 1, 0, 0, 0));
        }
        if let Some(m) = rule.major().filter(|m| *m >= 0) {
            block.push(insn(BPF_JMP_JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = rule.minor().filter(|m| *m >= 0) {
            block.push(insn(BPF_JMP_JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(BPF_ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow())));
        block.push(insn(BPF_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == BPF_JMP_JNE_K || ins.code == BPF_JMP_JEQ_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(BPF_ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(BPF_EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    _pad: [u64; 8],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _pad: [u32; 11],
}

fn load(prog: &[Insn], log: Option<&mut Vec<u8>>) -> std::io::Result<i64> {
    let license = c"Apache-2.0";
    let (log_level, log_size, log_buf) = match log {
        Some(l) => (1, l.len() as u32, l.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for BPF_PROG_LOAD; the instruction array, the
    // license string and the log buffer it points to all outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Load the program for `rules` and attach it to the cgroup v2 directory `dir`.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = compile(rules);
    let fd = match load(&prog, None) {
        Ok(fd) => fd,
        Err(err) => {
            // Load again with a verifier log, only to explain the failure.
            let mut log = vec![0u8; 1 << 16];
            let _ = load(&prog, Some(&mut log));
            let log = String::from_utf8_lossy(&log);
            let last = log
                .trim_end_matches('\0')
                .trim()
                .lines()
                .last()
                .unwrap_or("")
                .to_string();
            return Err(Error::cgroup(
                dir,
                format!("load the device filter program (verifier: {last})"),
                Some(err),
            ));
        }
    };
    // SAFETY: the kernel just returned this fd to us.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| Error::cgroup(dir, "open", Some(e)))?;
    let att = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: `att` is a valid bpf_attr prefix for BPF_PROG_ATTACH and both fds are open.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &att as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if ret < 0 {
        return Err(Error::cgroup(
            dir,
            "attach the device filter program",
            Some(std::io::Error::last_os_error()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        t: Option<LinuxDeviceType>,
        maj: Option<i64>,
        min: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(allow);
        d.set_typ(t);
        d.set_major(maj);
        d.set_minor(min);
        d.set_access(Some(acc.into()));
        d
    }

    /// A tiny interpreter for the subset of eBPF `compile` emits, to check the logic
    /// without loading anything into the kernel.
    fn run(p: &[Insn], ty: i32, acc: i32, major: i32, minor: i32) -> i64 {
        let ctx = [(acc << 16 | ty) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                BPF_LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as i64,
                BPF_ALU64_AND_K => r[dst] &= i.imm as i64,
                BPF_ALU64_RSH_K => r[dst] >>= i.imm,
                BPF_ALU64_MOV_K => r[dst] = i.imm as i64,
                BPF_ALU64_MOV_X => r[dst] = r[src],
                BPF_JMP_JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                BPF_JMP_JEQ_K => {
                    if r[dst] == i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                BPF_EXIT => return r[0],
                c => panic!("unknown op {c:#x}"),
            }
        }
    }

    #[test]
    fn later_rules_win_and_default_is_deny() {
        let rules = vec![
            rule(false, None, None, None, "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
            rule(true, Some(LinuxDeviceType::C), Some(136), None, "rw"),
            rule(false, Some(LinuxDeviceType::C), Some(1), Some(3), "w"),
        ];
        let p = compile(&rules);
        let (r, w, m) = (ACC_READ, ACC_WRITE, ACC_MKNOD);
        assert_eq!(run(&p, DEV_CHAR, r, 1, 3), 1, "read /dev/null");
        assert_eq!(run(&p, DEV_CHAR, w, 1, 3), 0, "the later deny of w wins");
        assert_eq!(run(&p, DEV_CHAR, r | w, 136, 7), 1, "pts wildcard minor");
        assert_eq!(run(&p, DEV_CHAR, m, 136, 7), 0, "mknod not granted on pts");
        assert_eq!(run(&p, DEV_BLOCK, r, 8, 0), 0, "unlisted block device");
        assert_eq!(run(&p, DEV_BLOCK, r, 1, 3), 0, "type must match");
    }

    #[test]
    fn allow_all() {
        let p = compile(&[rule(true, None, None, None, "rwm")]);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 1), 1);
    }
}
