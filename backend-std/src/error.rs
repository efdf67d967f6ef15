//! The error of the std facade: the core's error over files, plus what
//! only a file system can do to us.

use std::io;
use std::path::PathBuf;

use crate::file::FileError;

/// Everything a segwal-std operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, opening or listing a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The log itself refused or failed (corruption, full, too large,
    /// poisoned, a device error, ...).
    #[error(transparent)]
    Log(#[from] segwal::Error<FileError>),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The core error, when this is one.
    pub fn as_log(&self) -> Option<&segwal::Error<FileError>> {
        match self {
            Error::Log(error) => Some(error),
            Error::Io { .. } => None,
        }
    }
}

/// The result of a segwal-std operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
