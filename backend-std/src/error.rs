//! The error of the std facade: the core's error over files, plus what
//! only a file system can do to us.

use std::io;
use std::path::PathBuf;

use crate::dir::DirError;
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
    /// Another writer holds the log directory, in this process or another.
    #[error("log directory {path} is locked by {holder}; stop that writer, or open the log read-only", holder = holder_pid.map_or_else(|| "another writer".to_string(), |pid| format!("process {pid}")))]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The holder's process id, when it recorded one.
        holder_pid: Option<u32>,
    },
    /// The path exists but is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The log itself refused or failed (corruption, full, too large,
    /// poisoned, a device error, ...).
    #[error(transparent)]
    Log(#[from] segwal::Error<FileError>),
}

impl From<DirError> for Error {
    fn from(error: DirError) -> Self {
        match error {
            DirError::Locked { path, holder_pid } => Error::Locked { path, holder_pid },
            DirError::NotADirectory(path) => Error::NotADirectory(path),
            DirError::Io { path, source } => Error::Io { path, source },
        }
    }
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
            _ => None,
        }
    }
}

/// The result of a segwal-std operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
