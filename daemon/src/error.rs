//! What kind of failure an error is, independent of how it is reported. Every service's
//! error enum (`containers::Error`, `images::Error`, `volumes::Error`) says its kind; the
//! HTTP layer turns a kind into a status in one place (`api::status_of`).

/// The kinds of failure a client can tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed or names something impossible.
    Invalid,
    /// The object it names does not exist.
    NotFound,
    /// The object's state (or another object) stands in the way.
    Conflict,
    /// Not allowed for this object, whatever its state.
    Forbidden,
    /// The registry refused the credentials.
    Unauthorized,
    /// The request is larger than berthd accepts.
    TooLarge,
    /// berthd, the manager or the host failed.
    Internal,
}

impl Kind {
    /// The kind of a manager (gRPC) failure.
    pub fn of_status(s: &tonic::Status) -> Kind {
        match s.code() {
            tonic::Code::NotFound => Kind::NotFound,
            tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => Kind::Conflict,
            tonic::Code::InvalidArgument => Kind::Invalid,
            tonic::Code::PermissionDenied => Kind::Forbidden,
            _ => Kind::Internal,
        }
    }
}
