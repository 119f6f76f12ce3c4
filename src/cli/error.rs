//! The command line's error, and the exit code each kind means: the only place where the
//! layers' errors become exit codes (2: input the user must fix; 3: a refused publication,
//! the record in force stands; 4: a certification ran and a tier was not met, its certificate
//! written; 1: everything else). Each layer below owns its typed error;
//! this module only composes them.

use crate::config::ConfigError;
use crate::store::StoreError;

/// What a command failed with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The providers file is wrong (exit 2: fix the input).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A command-line value is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP client error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Failed(String),
    /// The publication policy refused (exit 3): the record in force stands.
    #[error("{0}")]
    Refused(String),
    /// A certification ran to the end and a tier was not met (exit 4): the certificate and
    /// its reports are written and say why.
    #[error("{0}")]
    NotMet(String),
}

impl From<crate::archive::mirror::MirrorError> for Error {
    fn from(e: crate::archive::mirror::MirrorError) -> Error {
        match e {
            crate::archive::mirror::MirrorError::Usage(u) => Error::Usage(u),
            e => Error::Failed(e.to_string()),
        }
    }
}

impl From<crate::oversight::attest::AttestError> for Error {
    fn from(e: crate::oversight::attest::AttestError) -> Error {
        match e {
            e @ crate::oversight::attest::AttestError::Refused { .. } => {
                Error::Usage(e.to_string())
            }
            e => Error::Failed(e.to_string()),
        }
    }
}

impl From<crate::determine::DetermineError> for Error {
    fn from(e: crate::determine::DetermineError) -> Self {
        match e {
            crate::determine::DetermineError::Store(s) => Error::Store(s),
            e => Error::Failed(e.to_string()),
        }
    }
}

impl From<crate::publisher::PublishError> for Error {
    fn from(e: crate::publisher::PublishError) -> Self {
        use crate::publisher::PublishError as P;
        match e {
            P::Refused(r) => Error::Refused(r.to_string()),
            e @ (P::UnknownTier { .. } | P::NoObservations { .. }) => Error::Usage(e.to_string()),
            P::Store(s) => Error::Store(s),
            e @ (P::Archive(_) | P::Version(_) | P::Record { .. } | P::Notices(_)) => {
                Error::Failed(e.to_string())
            }
        }
    }
}

impl From<crate::publisher::notices::NoticeError> for Error {
    fn from(e: crate::publisher::notices::NoticeError) -> Self {
        use crate::publisher::notices::NoticeError as N;
        match e {
            e @ (N::Refused(_) | N::Draft(_) | N::WrongKey(_)) => Error::Usage(e.to_string()),
            e @ (N::Archive(_) | N::Inconsistent(_)) => Error::Failed(e.to_string()),
        }
    }
}

impl From<crate::publisher::day::DayError> for Error {
    fn from(e: crate::publisher::day::DayError) -> Self {
        use crate::publisher::day::DayError as D;
        match e {
            D::Publish(p) => p.into(),
            D::Config(c) => Error::Config(c),
            D::Store(s) => Error::Store(s),
            D::Io(e) => Error::Io(e),
            e @ (D::Archive { .. } | D::Bundle { .. } | D::Notices(_)) => {
                Error::Failed(e.to_string())
            }
        }
    }
}

impl From<crate::sys::clock::FolderClockError> for Error {
    fn from(e: crate::sys::clock::FolderClockError) -> Self {
        use crate::sys::clock::FolderClockError as F;
        match e {
            F::Usage(u) => Error::Usage(u),
            F::Io(e) => Error::Io(e),
            e @ F::Damaged(_) => Error::Failed(e.to_string()),
        }
    }
}

impl From<crate::worker::ClientError> for Error {
    fn from(e: crate::worker::ClientError) -> Self {
        use crate::worker::ClientError as C;
        match e {
            e @ C::CaFile { .. } => Error::Usage(e.to_string()),
            e @ C::Tls(_) => Error::Failed(e.to_string()),
        }
    }
}

impl From<crate::archive::keys::KeyError> for Error {
    fn from(e: crate::archive::keys::KeyError) -> Self {
        Error::Usage(e.to_string())
    }
}

impl From<crate::service::Error> for Error {
    fn from(e: crate::service::Error) -> Self {
        use crate::service::Error as S;
        match e {
            S::Usage(u) => Error::Usage(u),
            S::Failed(f) => Error::Failed(f),
            S::Config(c) => Error::Config(c),
            S::Store(s) => Error::Store(s),
            S::Io(e) => Error::Io(e),
            S::Day(d) => d.into(),
            S::Clock(c) => c.into(),
            S::Key(k) => k.into(),
            S::Client(c) => c.into(),
            S::Network(n) => n.into(),
            S::Run(r) => r.into(),
        }
    }
}

impl From<crate::network::Error> for Error {
    fn from(e: crate::network::Error) -> Self {
        use crate::network::Error as N;
        match e {
            N::Usage(u) => Error::Usage(u),
            N::Failed(f) => Error::Failed(f),
            N::Store(s) => Error::Store(s),
            N::Io(e) => Error::Io(e),
            N::Day(d) => d.into(),
            N::Clock(c) => c.into(),
            N::Key(k) => k.into(),
        }
    }
}

impl From<crate::worker::runner::Error> for Error {
    fn from(e: crate::worker::runner::Error) -> Self {
        match e {
            crate::worker::runner::Error::Failed(f) => Error::Failed(f),
        }
    }
}

impl From<crate::certify::Error> for Error {
    fn from(e: crate::certify::Error) -> Self {
        match e {
            crate::certify::Error::Failed(f) => Error::Failed(f),
        }
    }
}

impl Error {
    /// 2 for input the user must fix, 3 for a refused publication, 4 for a tier not met, 1 for
    /// everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Refused(_) => 3,
            Error::NotMet(_) => 4,
            _ => 1,
        }
    }
}

/// A command's result.
pub type Result<T> = std::result::Result<T, Error>;
