//! # segwal: a crash-safe segment log and write-ahead log, `no_std` core
//!
//! This crate holds everything that decides what bytes go where: the
//! on-disk [format], the CRC32C and CRC-32 checks, the
//! recovery scan, read planning and the segment writer and reader. It is
//! written against the [`BlockDevice`] trait and knows nothing of files:
//! `segwal-std` brings files, `segwal-ram` an in-memory fault-injecting
//! device.
//!
//! `#![no_std]`, no `unsafe`, and no allocation unless the `alloc` feature
//! is on (it only lets readers return records larger than their buffer as
//! owned vectors).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod checksum;
mod device;
mod error;
pub mod format;
pub mod read_plan;
mod reader;
mod record_io;
pub mod recovery;
mod segment;
mod store;
mod view;
mod wal;
#[cfg(feature = "alloc")]
mod wal_index;

pub use checksum::{CRC_LANES, ChecksumKind, Hasher};
#[cfg(feature = "hw-crc")]
pub use checksum::{Crc32cKernel, install_crc32c_kernel, use_accelerated};
pub use device::{BlockDevice, Error as DeviceError, ErrorKind, ErrorType, Geometry, check_range};
pub use error::{ChainDefect, ConfigError, Corruption, Error};
pub use format::{HeaderDefect, RecordDefect, SegmentHeader};
pub use read_plan::{RANDOM_READ_BYTES, ReadHint, SEQUENTIAL_WINDOW_BYTES};
pub use reader::{Batch, Payload, Record, SegmentCursor, SegmentReader};
pub use record_io::{AppendRecord, RecordIoError, RecordReader, RecordWriter};
pub use recovery::{RecoveryMode, SCAN_SCRATCH_MIN_BYTES, ScanReport, TailClass, TailState};
pub use segment::{
    Appended, BATCH_RECORDS_PER_WRITE, Recovered, SegmentAppender, SegmentConfig, SegmentIdentity,
    SegmentWriter, USER_AREA_MAX_BYTES, read_segment_header,
};
pub use store::{SegmentId, SegmentStore};
pub use wal::{
    Durability, FIRST_LSN, Lsn, OpenVerification, SegmentInfo, SyncTicket, VERIFY_PROBLEMS_KEPT,
    VerifyProblem, VerifyProblemKind, VerifyReport, Wal, WalConfig, WalItem, WalIter, WalTailState,
};

#[cfg(any(test, feature = "hw-crc"))]
extern crate std;
#[cfg(test)]
mod test_device;
