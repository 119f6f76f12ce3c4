//! `sit run`'s error, composed from the layers below.

use crate::archive::keys::KeyError;
use crate::config::ConfigError;
use crate::publisher::day::DayError;
use crate::store::StoreError;
use crate::sys::clock::FolderClockError;
use crate::worker::ClientError;

/// Why `sit run` (or `sit worker`) stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input the operator must fix (a flag, the data folder, the providers' keys).
    #[error("{0}")]
    Usage(String),
    /// A failure no caller repairs (the message says what failed).
    #[error("{0}")]
    Failed(String),
    /// The providers file is wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The observation store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A file or socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A day's publication failed.
    #[error("{0}")]
    Day(#[from] DayError),
    /// The data folder's clock cannot be had.
    #[error("{0}")]
    Clock(#[from] FolderClockError),
    /// A key file cannot be used.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The probe client cannot be built.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The probe network (a worker's shipping) failed.
    #[error("{0}")]
    Network(#[from] crate::network::Error),
    /// A run of probes failed.
    #[error("{0}")]
    Run(#[from] crate::worker::runner::Error),
}

/// `sit run`'s result.
pub type Result<T> = std::result::Result<T, Error>;
