//! The runtime's error type. Every variant names the object it is about; causes travel in
//! `source` so that `{:#}` (anyhow) prints each exactly once.

use std::path::PathBuf;

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while running containers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("invalid {path}: {why}")]
    InvalidConfig { path: PathBuf, why: String },
    #[error("container {id} is {status}: cannot {op}")]
    BadState {
        id: String,
        status: String,
        op: &'static str,
    },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        err: nix::Error,
    },
    #[error("container {id}: {msg}")]
    Init { id: String, msg: String },
    /// The process's program cannot be executed (runc's words: Docker tells "not found"
    /// from "permission denied" by them).
    #[error("exec {program:?}: {why}")]
    Program { program: String, why: &'static str },
    #[error("{kind} hook {} failed: {why}", path.display())]
    Hook {
        kind: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("cgroup {}: {what}", path.display())]
    Cgroup {
        path: PathBuf,
        what: String,
        #[source]
        err: Option<std::io::Error>,
    },
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("{0} is not supported by berth-runtime")]
    Unsupported(String),
}

impl Error {
    /// An io error about `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            err,
        }
    }

    /// A failed system call, described by `what`.
    pub fn sys(what: impl Into<String>, err: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            err,
        }
    }

    /// A config problem in `path`.
    pub fn config(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        Error::InvalidConfig {
            path: path.into(),
            why: why.into(),
        }
    }

    /// A cgroup problem, with an optional io cause.
    pub fn cgroup(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        err: Option<std::io::Error>,
    ) -> Self {
        Error::Cgroup {
            path: path.into(),
            what: what.into(),
            err,
        }
    }
}

/// The error and all its causes on one line, `a: b: c`, for messages that cross a process
/// boundary as data (init → runtime).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Extension to attach "what/which path" to io results.
pub trait IoContext<T> {
    /// Wrap an io error with what was attempted on which path.
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}

/// Extension to attach a description to nix results.
pub trait SysContext<T> {
    /// Wrap a nix error with a description of the call.
    fn sys(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
