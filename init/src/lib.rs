//! A minimal init for containers (`docker run --init`, bind-mounted as /sbin/docker-init):
//! pid 1 that starts the command (`berth-init [--] PROGRAM ARGS…`) in a process group of its
//! own (the terminal's foreground group when stdin is one), forwards every signal it can
//! catch to it, reaps every orphan that lands on it, and exits with the command's status:
//! its exit code, or 128 + the signal that killed it. When the command cannot be run it
//! exits 127 (not found) or 126 (found, not runnable), as a shell would.
//!
//! Statically linked when shipped (scripts/build-release.sh): the container's root file
//! system has no libc of ours.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, getpid, setpgid, tcsetpgrp, ForkResult, Pid};

/// Run the init; its exit status.
pub fn run(args: &[OsString]) -> i32 {
    let args = match args.first() {
        Some(a) if a == "--" => &args[1..],
        _ => args,
    };
    if args.is_empty() {
        eprintln!("berth-init: usage: berth-init [--] PROGRAM [ARGS...]");
        return 2;
    }
    let argv: Vec<CString> = match args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
    {
        Ok(v) => v,
        Err(_) => {
            eprintln!("berth-init: an argument holds a NUL byte");
            return 2;
        }
    };
    // Every signal is taken with sigwait below; the child gets the mask it had back.
    let all = SigSet::all();
    let mut old = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old)) {
        eprintln!("berth-init: block signals: {e}");
        return 1;
    }
    // Where the init is not pid 1 (`--pid host`), orphans still come to it.
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
    unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // SAFETY: the child only calls async-signal-safe functions (setpgid, tcsetpgrp,
    // sigprocmask, execvp, write, _exit) before it execs.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => exec_child(&argv, &old),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("berth-init: fork: {e}");
            return 1;
        }
    };
    supervise(child)
}

fn exec_child(argv: &[CString], mask: &SigSet) -> ! {
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // The terminal's foreground group, so ^C reaches the command (SIGTTOU is blocked).
    let stdin = std::io::stdin();
    if nix::unistd::isatty(0).unwrap_or(false) {
        let _ = tcsetpgrp(&stdin, getpid());
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
    let err = execvp(&argv[0], argv).unwrap_err();
    let name = argv[0].to_string_lossy();
    let code = if err == nix::errno::Errno::ENOENT {
        eprintln!("berth-init: exec {name}: no such file or directory");
        127
    } else {
        eprintln!("berth-init: exec {name}: {err}");
        126
    };
    // SAFETY: _exit ends the forked child without running the parent's atexit handlers.
    unsafe { nix::libc::_exit(code) }
}

/// Forward signals to `child` and reap until it exits; its status as an exit code.
fn supervise(child: Pid) -> i32 {
    let all = SigSet::all();
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // To the command alone; it may have gone already (ESRCH).
            let _ = kill(child, sig);
            continue;
        }
        // Reap every child that has exited: the command and any orphan.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
