//! OCI seccomp profile → classic BPF, compiled with `seccompiler`.
//!
//! seccompiler builds filters with one match and one mismatch action, while an OCI profile gives
//! each rule its own action. We compile one filter per action and install them all: the kernel
//! runs every filter and keeps the highest-precedence verdict. The "default" filter returns
//! ALLOW for every syscall some rule names (with its argument conditions) and the default action
//! otherwise; each other action gets a filter returning that action for its rules and ALLOW
//! otherwise. A syscall named by a rule therefore gets that rule's action, any other the default.
//!
//! A profile whose `architectures` name `SCMP_ARCH_X86` (Docker's default does) also filters
//! i386 system calls, by their own numbers: each program then starts by dispatching on the
//! audit architecture to an x86_64 part and an i386 part (seccompiler builds x86_64 filters
//! only; the i386 part is built from the i386 table and its architecture check retargeted).
//! Without it i386 calls fail the architecture check and kill the process, like libseccomp's
//! native-only default. x32 numbers get ENOSYS (or the default action).
//!
//! Syscalls unknown on every filtered architecture are skipped with a warning (profiles list
//! syscalls of newer kernels and other arches).

mod x86;
mod x86_64;

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::{Error, Result};

type Table = &'static [(&'static str, i64)];

fn lookup(table: Table, name: &str) -> Option<i64> {
    table
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table[i].1)
}

/// The number of the syscall `name` on this machine's architecture.
pub fn syscall_number(name: &str) -> Option<i64> {
    if cfg!(target_arch = "x86_64") {
        lookup(x86_64::SYSCALLS, name)
    } else {
        None
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

fn target_arch() -> Result<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else {
        Err(Error::Unsupported(
            "seccomp on this CPU architecture".into(),
        ))
    }
}

/// The actions berth-runtime can compile, for `features`.
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// The comparison operators berth-runtime can compile, for `features`.
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(
                "SCMP_ACT_NOTIFY (seccomp user notification) is not supported".into(),
            ))
        }
    })
}

/// Check a profile without compiling it (for `create`'s early validation).
pub fn check(s: &LinuxSeccomp) -> Result<()> {
    action(s.default_action(), s.default_errno_ret())?;
    for rule in s.syscalls().iter().flatten() {
        action(rule.action(), rule.errno_ret())?;
        if rule.names().is_empty() {
            return Err(Error::Seccomp("a syscall rule has no names".into()));
        }
        for arg in rule.args().iter().flatten() {
            if arg.index() > 5 {
                return Err(Error::Seccomp(format!(
                    "argument index {} of {:?} is above 5",
                    arg.index(),
                    rule.names()
                )));
            }
        }
    }
    Ok(())
}

fn condition(arg: &oci_spec::runtime::LinuxSeccompArg) -> Result<SeccompCondition> {
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(arg.index() as u8, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| Error::Seccomp(format!("argument {}: {e}", arg.index())))
}

/// Rules of one filter: syscall number → alternatives (empty = unconditional).
type RuleMap = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add_rule(map: &mut RuleMap, nr: i64, rule: Option<SeccompRule>) {
    let entry = map.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (entry.as_mut(), rule) {
        // Already unconditional: stays so.
        (None, _) => {}
        (Some(_), None) => *entry = None,
        (Some(v), Some(r)) => v.push(r),
    }
}

/// A compiled profile: programs to install in order, and the filter flags.
pub struct Compiled {
    pub programs: Vec<BpfProgram>,
    pub flags: u32,
}

/// The rule maps of one architecture: the default filter's (syscalls some rule names) and
/// one per other action, in `acts` order.
fn rule_maps(
    s: &LinuxSeccomp,
    default: &SeccompAction,
    acts: &[SeccompAction],
    table: Table,
    unknown: &mut std::collections::BTreeSet<String>,
) -> Result<(RuleMap, Vec<RuleMap>)> {
    let mut allow_map = RuleMap::new();
    let mut others: Vec<RuleMap> = acts.iter().map(|_| RuleMap::new()).collect();
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == *default {
            continue;
        }
        let conds = rule
            .args()
            .iter()
            .flatten()
            .map(condition)
            .collect::<Result<Vec<_>>>()?;
        let srule = if conds.is_empty() {
            None
        } else {
            Some(SeccompRule::new(conds).map_err(|e| Error::Seccomp(e.to_string()))?)
        };
        for name in rule.names() {
            let Some(nr) = lookup(table, name) else {
                unknown.insert(name.clone());
                continue;
            };
            add_rule(&mut allow_map, nr, srule.clone());
            if let Some(i) = acts.iter().position(|a| *a == act) {
                add_rule(&mut others[i], nr, srule.clone());
            }
        }
    }
    Ok((allow_map, others))
}

/// The programs of one architecture, in install order.
fn programs_for(
    allow_map: RuleMap,
    others: Vec<RuleMap>,
    default: &SeccompAction,
    acts: &[SeccompAction],
    arch: TargetArch,
) -> Result<Vec<BpfProgram>> {
    let mut programs = Vec::new();
    if *default != SeccompAction::Allow {
        programs.push(build(
            allow_map,
            default.clone(),
            SeccompAction::Allow,
            arch,
        )?);
    }
    for (act, map) in acts.iter().zip(others) {
        programs.push(build(map, SeccompAction::Allow, act.clone(), arch)?);
    }
    if programs.is_empty() {
        // Default ALLOW and no rules: still deny foreign ABIs.
        programs.push(build(
            RuleMap::new(),
            SeccompAction::Allow,
            SeccompAction::KillProcess,
            arch,
        )?);
    }
    Ok(programs)
}

/// Compile an OCI profile. Unknown syscalls are skipped and their names passed to `warn`.
pub fn compile(s: &LinuxSeccomp, warn: &mut dyn FnMut(&str)) -> Result<Compiled> {
    use oci_spec::runtime::Arch;
    let arch = target_arch()?;
    let archs = s.architectures().clone().unwrap_or_default();
    if !archs.is_empty()
        && !archs
            .iter()
            .any(|a| matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative))
    {
        return Err(Error::Seccomp(
            "architectures does not include this machine's (x86_64)".into(),
        ));
    }
    let i386 = archs.contains(&Arch::ScmpArchX86);
    let default = action(s.default_action(), s.default_errno_ret())?;
    // Every action other than the default, in the order the profile first names it.
    let mut acts: Vec<SeccompAction> = Vec::new();
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act != default && act != SeccompAction::Allow && !acts.contains(&act) {
            acts.push(act);
        }
    }
    let mut unknown = std::collections::BTreeSet::new();
    let (allow_map, others) = rule_maps(s, &default, &acts, x86_64::SYSCALLS, &mut unknown)?;
    let mut programs = programs_for(allow_map, others, &default, &acts, arch)?;
    let x32_action = match &default {
        SeccompAction::Allow | SeccompAction::Log => SeccompAction::Errno(libc::ENOSYS as u32),
        d => d.clone(),
    };
    for p in &mut programs {
        deny_x32(p, &x32_action);
    }
    if i386 {
        let mut unknown32 = std::collections::BTreeSet::new();
        let (allow_map, others) = rule_maps(s, &default, &acts, x86::SYSCALLS, &mut unknown32)?;
        // seccompiler only targets 64-bit arches: build with the i386 numbers, then point
        // the architecture check at i386.
        let mut programs32 = programs_for(allow_map, others, &default, &acts, arch)?;
        for p in &mut programs32 {
            retarget_arch(p, AUDIT_ARCH_I386)?;
        }
        programs = programs
            .into_iter()
            .zip(programs32)
            .map(|(p64, p32)| dispatch(p64, p32))
            .collect::<Result<_>>()?;
        unknown.retain(|n| unknown32.contains(n));
    }
    for name in &unknown {
        warn(name);
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            #[allow(unreachable_patterns)]
            _ => 0,
        } as u32;
    }
    Ok(Compiled { programs, flags })
}

/// Point seccompiler's leading architecture check (`jeq AUDIT_ARCH_X86_64`) at `audit_arch`.
fn retarget_arch(prog: &mut BpfProgram, audit_arch: u32) -> Result<()> {
    let check = prog
        .iter_mut()
        .take(4)
        .find(|i| i.code == 0x15 && i.k == AUDIT_ARCH_X86_64)
        .ok_or_else(|| Error::Seccomp("no architecture check in a compiled filter".into()))?;
    check.k = audit_arch;
    Ok(())
}

/// One program from an x86_64 and an i386 one: load the audit architecture, jump over the
/// x86_64 part to the i386 part when it is i386. Both parts end every path in a return, so
/// their own (relative) jumps stay valid.
fn dispatch(p64: BpfProgram, p32: BpfProgram) -> Result<BpfProgram> {
    const BPF_MAXINSNS: usize = 4096;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| seccompiler::sock_filter { code, jt, jf, k };
    let mut out = vec![
        ins(0x20, 0, 0, 4),                // ld [4]: seccomp_data.arch
        ins(0x15, 0, 1, AUDIT_ARCH_I386),  // jeq i386: next, else skip the jump
        ins(0x05, 0, 0, p64.len() as u32), // ja over the x86_64 part
    ];
    out.extend(p64);
    out.extend(p32);
    if out.len() > BPF_MAXINSNS {
        return Err(Error::Seccomp(format!(
            "the x86_64 and i386 filter is {} instructions, above the kernel's {BPF_MAXINSNS}",
            out.len()
        )));
    }
    Ok(out)
}

fn build(
    map: RuleMap,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram> {
    let rules = map
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(rules, mismatch, matched, arch)
        .map_err(|e| Error::Seccomp(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| Error::Seccomp(e.to_string()))
}

/// After seccompiler's 3-instruction architecture check, refuse x32 syscall numbers, which
/// share the x86_64 audit arch and would otherwise bypass number-based deny rules.
fn deny_x32(prog: &mut BpfProgram, act: &SeccompAction) {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let ld = seccompiler::sock_filter {
        code: 0x20, // BPF_LD | BPF_W | BPF_ABS
        jt: 0,
        jf: 0,
        k: 0, // offsetof(seccomp_data, nr)
    };
    let jge = seccompiler::sock_filter {
        code: 0x35, // BPF_JMP | BPF_JGE | BPF_K
        jt: 0,
        jf: 1,
        k: X32_SYSCALL_BIT,
    };
    let ret = seccompiler::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: u32::from(act.clone()),
    };
    let at = 3.min(prog.len());
    prog.splice(at..at, [ld, jge, ret]);
}

/// Install compiled programs on the calling thread.
pub fn install(c: &Compiled) -> Result<()> {
    for p in &c.programs {
        crate::sys::seccomp_set_filter(p, c.flags)
            .map_err(|e| Error::Seccomp(format!("install filter: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn table_is_sorted_and_known() {
        assert!(x86_64::SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("mkdir"), Some(83));
        assert_eq!(syscall_number("no_such_call"), None);
    }

    #[test]
    fn one_filter_per_action_and_unknown_skipped() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write","frobnicate"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                {"names":["kill"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":1,"value":9,"op":"SCMP_CMP_EQ"}]}
            ]}"#,
        );
        let mut warned = Vec::new();
        let c = compile(&p, &mut |w| warned.push(w.to_string())).unwrap();
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("frobnicate"));
        assert_eq!(c.programs.len(), 3);
    }

    #[test]
    fn i386_gets_its_own_numbers_when_asked() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["read","chown32","frobnicate"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let mut warned = Vec::new();
        let c = compile(&p, &mut |w| warned.push(w.to_string())).unwrap();
        // chown32 exists on i386: only the name no architecture has is reported.
        assert_eq!(warned, ["frobnicate"]);
        let prog = &c.programs[0];
        assert_eq!((prog[1].code, prog[1].k), (0x15, AUDIT_ARCH_I386));
        let jump = prog[2].k as usize;
        // The jump lands on the i386 part's architecture check.
        assert!(prog[3..4 + 3].iter().any(|i| i.k == AUDIT_ARCH_X86_64));
        assert!(prog[3 + jump..3 + jump + 3]
            .iter()
            .any(|i| i.k == AUDIT_ARCH_I386));
        // i386 numbers: chown32 is 212 there, read is 3 (x86_64: 0).
        let ks: Vec<u32> = prog[3 + jump..].iter().map(|i| i.k).collect();
        assert!(ks.contains(&212) && ks.contains(&3), "{ks:?}");
        // Native only without SCMP_ARCH_X86: no dispatch.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","chown32"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let mut warned = Vec::new();
        let c = compile(&p, &mut |w| warned.push(w.to_string())).unwrap();
        assert_eq!(warned, ["chown32"]);
        assert!(!c.programs[0].iter().any(|i| i.k == AUDIT_ARCH_I386));
    }

    #[test]
    fn notify_is_refused_by_name() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(check(&p)
            .unwrap_err()
            .to_string()
            .contains("SCMP_ACT_NOTIFY"));
    }
}
