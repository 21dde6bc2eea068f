//! The manager's errors. [`Error::code`] is the one place they map to gRPC codes.

use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} not found")]
    ContainerNotFound(String),
    #[error("container {0:?} already exists")]
    ContainerExists(String),
    #[error("task {0:?} not found")]
    TaskNotFound(String),
    #[error("task {0:?} already exists")]
    TaskExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("metadata store {path}")]
    Store {
        path: String,
        #[source]
        err: Box<redb::Error>,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("task {id}: start shim {shim}: {message}")]
    ShimStart {
        id: String,
        shim: String,
        message: String,
    },
    #[error("task {id}: {}", status.message())]
    Shim { id: String, status: tonic::Status },
    #[error(transparent)]
    Images(Box<crate::images::Error>),
    #[error("task {id}: shim at {socket}")]
    ShimGone {
        id: String,
        socket: String,
        #[source]
        err: tonic::transport::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(what: &'static str, path: impl AsRef<std::path::Path>, err: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.as_ref().display().to_string(),
            err,
        }
    }

    pub fn shim(id: &str, status: tonic::Status) -> Self {
        Error::Shim {
            id: id.to_string(),
            status,
        }
    }

    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::ContainerNotFound(_) | Error::TaskNotFound(_) => Code::NotFound,
            Error::ContainerExists(_) | Error::TaskExists(_) => Code::AlreadyExists,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Shim { status, .. } => status.code(),
            Error::ShimGone { .. } => Code::Unavailable,
            Error::Images(e) => e.code(),
            Error::Store { .. } | Error::Io { .. } | Error::ShimStart { .. } => Code::Internal,
        }
    }

    /// The message with its causes, for a gRPC status.
    pub fn message(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    }

    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(self.code(), self.message())
    }
}
