//! The errors of the log, one enum for every operation of a segment.

use crate::device::{Error as DeviceError, ErrorKind};
use crate::format::{HeaderDefect, RecordDefect};

/// What is wrong with bytes read from a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The segment header is unusable.
    Header(HeaderDefect),
    /// A record is unusable.
    Record(RecordDefect),
    /// A bad record is followed by a record written after the bad one had
    /// been synced: acknowledged data was damaged, not a torn write.
    SyncedDataDamaged {
        /// Offset of the first valid record after the damage.
        next_valid_offset: u64,
    },
    /// The user area does not match its checksum.
    UserArea,
}

impl core::fmt::Display for Corruption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Corruption::Header(defect) => defect.fmt(f),
            Corruption::Record(defect) => defect.fmt(f),
            Corruption::SyncedDataDamaged { next_valid_offset } => write!(
                f,
                "synced records damaged (a valid record written after them starts at {next_valid_offset})"
            ),
            Corruption::UserArea => f.write_str("user area checksum mismatch"),
        }
    }
}

/// A configuration that cannot work on the device it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The device reports a geometry that breaks its own rules.
    #[error("device geometry is invalid")]
    Geometry,
    /// The segment does not start or end on an erase block boundary, or
    /// does not fit on the device.
    #[error("segment range does not fit the device's erase blocks or capacity")]
    SegmentRange,
    /// The segment is too small, too large (over 4 GiB) or not a multiple of
    /// the record alignment.
    #[error("segment size is unusable")]
    SegmentSize,
    /// The user area leaves no room for records.
    #[error("user area too large for the segment")]
    UserArea,
    /// `record_len_max` is larger than a segment can hold.
    #[error("record_len_max larger than a segment can hold")]
    RecordLenMax,
    /// A buffer handed to the log is too small for the device's units.
    #[error("buffer too small")]
    Buffer,
}

/// Everything a segment operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E: DeviceError> {
    /// The device failed; its kind says how.
    #[error("device error ({kind}): {0:?}", kind = .0.kind())]
    Device(E),
    /// Bytes on the device are damaged. Nothing was dropped silently.
    #[error("corrupt data in segment {segment} at offset {offset}: {reason}")]
    Corrupt {
        /// Sequence number of the segment.
        segment: u64,
        /// Byte offset in the segment.
        offset: u64,
        /// What is wrong.
        reason: Corruption,
    },
    /// The record does not fit in the room left; nothing was written.
    #[error("segment full: {needed_bytes} bytes needed, {available_bytes} left")]
    Full {
        /// Bytes the write needs, headers and padding included.
        needed_bytes: u64,
        /// Bytes left in the segment.
        available_bytes: u64,
    },
    /// The payload is larger than the configured maximum; nothing was written.
    #[error("record of {len_bytes} bytes exceeds the maximum of {max_bytes}")]
    RecordTooLarge {
        /// Payload length asked for.
        len_bytes: u64,
        /// Configured `record_len_max`.
        max_bytes: u64,
    },
    /// No valid record starts at this offset: a wrong offset, or damage.
    #[error("no valid record at offset {offset} of segment {segment} ({reason})")]
    NotARecord {
        /// Sequence number of the segment.
        segment: u64,
        /// Offset asked for.
        offset: u64,
        /// What the bytes there failed.
        reason: RecordDefect,
    },
    /// The offset is outside the durable records (before the first record,
    /// not on a record boundary, or at or past the flushed offset).
    #[error(
        "offset {offset} is outside the flushed records (first {records_start}, flushed up to {flushed_offset})"
    )]
    OutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Offset of the first record.
        records_start: u64,
        /// End of the durable records.
        flushed_offset: u64,
    },
    /// The caller's buffer is too small for the record.
    #[error("buffer of {len_bytes} bytes too small, {needed_bytes} needed")]
    BufferTooSmall {
        /// Bytes the record needs.
        needed_bytes: u64,
        /// Bytes the buffer has.
        len_bytes: u64,
    },
    /// The configuration cannot work with this device.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// An earlier write or sync failed; the log refuses writes until it is
    /// reopened, because a retried sync could report lost pages as clean.
    #[error("log poisoned by an earlier failed write or sync; reopen it to recover")]
    Poisoned,
    /// The LSN is outside the log's records `[first_lsn, next_lsn)` (or, for
    /// a truncation, outside `[first_lsn - 1, next_lsn)`).
    #[error("LSN {lsn} is outside the log (first {first_lsn}, next {next_lsn})")]
    LsnOutOfRange {
        /// LSN asked for.
        lsn: u64,
        /// First LSN still in the log.
        first_lsn: u64,
        /// LSN the next append gets.
        next_lsn: u64,
    },
    /// The log holds as many segments as it can track; checkpoint first.
    #[error("too many segments (at most {max}); checkpoint to release some")]
    TooManySegments {
        /// The limit.
        max: u64,
    },
    /// The segments do not form one log: a gap, a duplicate, or LSNs that do
    /// not grow. Names the segment where the chain breaks.
    #[error("segment {segment} breaks the log's chain: {reason}")]
    Chain {
        /// Sequence number of the segment.
        segment: u64,
        /// What is wrong.
        reason: ChainDefect,
    },
    /// The log was opened read-only.
    #[error("log is open read-only")]
    ReadOnly,
}

/// How the segments of a log fail to form one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainDefect {
    /// Two segments carry the same sequence number.
    DuplicateSequence,
    /// A segment older than the chain's start exists: one in between is missing.
    MissingPredecessor {
        /// The missing sequence number.
        missing: u64,
    },
    /// A segment's `base_lsn` is not above its predecessor's.
    LsnNotIncreasing,
    /// The store names the segment by a sequence its header does not carry
    /// (a renamed or copied segment file).
    NameMismatch {
        /// The store's id for the segment.
        id: u64,
    },
    /// A sealed segment holds fewer records than the next segment's `base_lsn` says.
    MissingRecords {
        /// Records expected.
        expected: u64,
        /// Records found.
        found: u64,
    },
}

impl core::fmt::Display for ChainDefect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChainDefect::DuplicateSequence => f.write_str("duplicate sequence number"),
            ChainDefect::MissingPredecessor { missing } => {
                write!(f, "segment {missing} is missing while older segments exist")
            }
            ChainDefect::LsnNotIncreasing => {
                f.write_str("base LSN not above the previous segment's")
            }
            ChainDefect::MissingRecords { expected, found } => {
                write!(f, "{found} records where {expected} were expected")
            }
            ChainDefect::NameMismatch { id } => {
                write!(f, "it is stored under the name of segment {id}")
            }
        }
    }
}

impl<E: DeviceError> Error<E> {
    /// The device error kind, if this is a device error.
    pub fn device_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Device(e) => Some(e.kind()),
            _ => None,
        }
    }
}
