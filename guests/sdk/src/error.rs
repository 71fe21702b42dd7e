//! The error a collector run ends with: one case per WIT `collect-error` case.

use std::fmt;

/// Why a run failed. Each case maps to the WIT `collect-error` case of the
/// same name and carries a message for the operator; the host adds the source
/// and collector names, so messages need not repeat them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A setting or secret is missing or malformed.
    Config(String),
    /// The vendor rejected the credentials or their scope (HTTP 401/403).
    Auth(String),
    /// The vendor does not know a configured resource (HTTP 404).
    NotFound(String),
    /// The vendor kept rate limiting past the collector's retry budget.
    RateLimited(String),
    /// The vendor sent a response the collector cannot use.
    Vendor(String),
    /// The request could not be sent or no response arrived.
    Transport(String),
    /// A host import (`sink` or `checkpoint`) refused an operation.
    Host(String),
}

impl Error {
    /// The WIT case name, e.g. `rate-limited`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Auth(_) => "auth",
            Error::NotFound(_) => "not-found",
            Error::RateLimited(_) => "rate-limited",
            Error::Vendor(_) => "vendor",
            Error::Transport(_) => "transport",
            Error::Host(_) => "host",
        }
    }

    /// The operator message without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Config(m)
            | Error::Auth(m)
            | Error::NotFound(m)
            | Error::RateLimited(m)
            | Error::Vendor(m)
            | Error::Transport(m)
            | Error::Host(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<crate::http::HttpError> for Error {
    /// A request that got no response is a transport failure. (A response
    /// with an error status is not an `HttpError`: the collector decides what
    /// it means.)
    fn from(e: crate::http::HttpError) -> Self {
        Error::Transport(e.to_string())
    }
}
