//! berth-shim: one process per container, between the manager and a runc-compatible runtime.
//!
//! The shim detaches from whoever started it (own session, re-parented away), becomes the
//! child subreaper of the container's processes, and serves `berth.shim.v1.Shim` on a unix
//! socket in its state directory. It drives the runtime binary (berth-runtime, runc, crun…)
//! only through its command line ([`driver`]), holds each process's stdio — pipes, or the pty
//! master received on a console socket ([`stdio`]) — so containers never see EOF or SIGPIPE
//! when clients go away, writes the init's output to a Docker json-file log ([`jsonlog`]),
//! reaps every child ([`reaper`]) and records the init's exit status in an exit file.
//!
//! What it leaves to neighbours: the bundle (written by the manager), metadata and restart
//! policy (manager/daemon). The [`client`] module is how a manager dials a shim.
//!
//! State directory (given by `--dir`, owned by the shim until `Delete`):
//! `shim.sock`, `shim.pid`, `init.pid` (written by the runtime), `exit` (JSON exit status of
//! the init, written atomically), `runtime.log` (the runtime's JSON log), `shim.log`.

pub mod client;
pub mod daemon;
pub mod driver;
pub mod jsonlog;
pub mod logfwd;
pub mod oom;
pub mod reaper;
pub mod service;
pub mod stdio;
pub mod sys;

/// Longest path a unix socket address can hold (sun_path is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// File names in the shim's state directory.
pub mod files {
    pub const SOCKET: &str = "shim.sock";
    pub const PID: &str = "shim.pid";
    pub const INIT_PID: &str = "init.pid";
    pub const EXIT: &str = "exit";
    pub const RUNTIME_LOG: &str = "runtime.log";
    pub const SHIM_LOG: &str = "shim.log";
}

/// Exit status like a shell's `$?` from a wait status.
pub fn exit_status(ws: nix::sys::wait::WaitStatus) -> Option<u32> {
    use nix::sys::wait::WaitStatus;
    match ws {
        WaitStatus::Exited(_, code) => Some(code as u32),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as u32),
        _ => None,
    }
}
