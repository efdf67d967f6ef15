//! The errors of the log store, and how they reach openraft.

use std::io;
use std::path::PathBuf;

use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId, StorageError, StorageIOError};

/// Everything the segwal log store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segwal log refused or failed (corruption naming segment and
    /// offset, a full disk, a poisoned log, another writer holding the
    /// directory, ...).
    #[error(transparent)]
    Log(#[from] segwal_std::Error),
    /// Creating, reading, writing or syncing a file of the store failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A log record passed its checksum but does not decode as an entry:
    /// written by something else, or by an incompatible version.
    #[error("the record at LSN {lsn} is not a log entry: {reason}")]
    BadRecord {
        /// The record's LSN.
        lsn: u64,
        /// Why it does not decode.
        reason: String,
    },
    /// A record decodes, but holds another log index than its place in the
    /// log says: the index <-> LSN mapping and the log disagree.
    #[error("the record at LSN {lsn} should hold log index {expected} but holds {found}")]
    Misplaced {
        /// The record's LSN.
        lsn: u64,
        /// The index the mapping gives that LSN.
        expected: u64,
        /// The index inside the record.
        found: u64,
    },
    /// Both slots of the vote file are damaged (at most one is ever being
    /// written, so at least one held a synced state), or the state they
    /// hold does not fit the log.
    #[error("{path}: {reason}")]
    MetaCorrupt {
        /// The slot file, or the store directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The vote, committed id and mapping do not fit in one slot: a node id
    /// type whose encoding is too large.
    #[error("the store state takes {len_bytes} bytes; a slot holds {max_bytes}")]
    MetaTooLarge {
        /// Encoded size.
        len_bytes: usize,
        /// Slot capacity.
        max_bytes: usize,
    },
    /// An append that does not continue the log (openraft never asks for
    /// one: a bug in the caller).
    #[error("append of log index {first} does not continue the log: the next index is {expected}")]
    NotContiguous {
        /// The first index appended.
        first: u64,
        /// The index the log expects.
        expected: u64,
    },
    /// A log index or LSN would leave `u64`.
    #[error("log index {index} is out of the range the store can map")]
    IndexOverflow {
        /// The index involved.
        index: u64,
    },
    /// Encoding an entry or the store state failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// A snapshot file is damaged or does not decode.
    #[error("{path}: {reason}")]
    BadSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blocking I/O task panicked or was cancelled.
    #[error("a blocking storage task did not finish: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error as openraft's [`StorageError`], naming what was being
    /// done to what.
    pub fn into_storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

/// The result of a log store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
