//! berth-runtime: a runc-compatible OCI runtime for Linux.
//!
//! This crate is the container engine proper; the `berth-runtime` binary is a thin clap front
//! end over it with runc's command line, and `berth-shim` drives that binary. It owns the
//! runtime state directory (`--root`, default `/run/berth-runtime`) and everything between an
//! OCI bundle and a running process: namespaces ([`container`], [`init`]), the file system view
//! ([`rootfs`]), cgroups v1/v2 ([`cgroups`]), capabilities and identity ([`process`]), seccomp
//! ([`seccomp`]) and hooks ([`hooks`]). It leaves image handling, stdio/log keeping and restart
//! supervision to the layers above.
//!
//! `create` forks the container's init with one `clone3` that creates every namespace at once;
//! the init builds the root file system, reports `ready` over a socket pair, and blocks on
//! `exec.fifo` until `start`. `create`, `run` and `exec` first re-execute once from a sealed
//! memfd copy of the binary, so no container process can reach the host's binary
//! (CVE-2019-5736); the init itself is a fork, never an exec.

pub mod bpf_devices;
pub mod cgroups;
pub mod channel;
pub mod container;
pub mod error;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod init;
pub mod process;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;
pub mod tty;

pub use error::{Error, Result};

/// Default state directory, like runc's /run/runc.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";
