//! The probe network's error: what the worker's shipper and the collector report, composed
//! from the layers below.

use crate::archive::keys::KeyError;
use crate::publisher::day::DayError;
use crate::store::StoreError;
use crate::sys::clock::FolderClockError;

/// Why a probe network step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input the operator must fix (a flag, `workers.toml`, a NATS URL).
    #[error("{0}")]
    Usage(String),
    /// A failure no caller repairs (JetStream, a damaged spool or store entry, a task).
    #[error("{0}")]
    Failed(String),
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
}

/// The probe network's result.
pub type Result<T> = std::result::Result<T, Error>;
