//! The container service's errors: each variant names the container, image, network or
//! option it is about, and says its [`Kind`].

use crate::error::Kind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers match the ID prefix {0}")]
    AmbiguousPrefix(String),
    #[error("Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("You cannot remove a running container {0}. Stop the container before attempting removal or force remove")]
    RemoveRunning(String),
    /// The request (a field, an option, a value) is wrong; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The container's state, or another container's, forbids the operation.
    #[error("{0}")]
    Conflict(String),
    /// Never allowed for this container (network connect of a host-mode one).
    #[error("{0}")]
    Forbidden(String),
    /// The manager refused or failed; its message names the object. (Not a `source`:
    /// the message is already the text, and a status's own Display would repeat it.)
    #[error("{}", .0.message())]
    Manager(tonic::Status),
    #[error(transparent)]
    Image(#[from] crate::images::Error),
    #[error(transparent)]
    Volume(#[from] crate::volumes::Error),
    /// berthd or the host failed: what it was doing, and why.
    #[error("{0}")]
    Internal(String),
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Manager(s)
    }
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Error::NoSuchContainer(_)
            | Error::NoSuchImage(_)
            | Error::NoSuchNetwork(_)
            | Error::NoSuchExec(_) => Kind::NotFound,
            Error::AmbiguousPrefix(_) | Error::BadName(_) | Error::Invalid(_) => Kind::Invalid,
            Error::NameInUse { .. }
            | Error::NotRunning(_)
            | Error::RemoveRunning(_)
            | Error::Conflict(_) => Kind::Conflict,
            Error::Forbidden(_) => Kind::Forbidden,
            Error::Manager(s) => Kind::of_status(s),
            Error::Image(e) => e.kind(),
            Error::Volume(e) => e.kind(),
            Error::Internal(_) => Kind::Internal,
        }
    }

    /// A failure of berthd or the host, with what was being done.
    pub fn internal(e: impl std::fmt::Display) -> Error {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
