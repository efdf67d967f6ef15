//! # segwal-std: segwal over files
//!
//! Segments are preallocated, zero-filled files written with `pwritev` and
//! made durable with `fdatasync`; readers use `pread` and follow the
//! writer's published flushed offset, lock-free.
//!
//! - [`Wal`]: the write-ahead log in a directory of segment files (walogs'
//!   model and beyond): dense LSNs, rotation, checkpoint, `truncate_after`,
//!   seek by LSN, one writer per directory.
//! - [`SharedWal`]: the same log for many threads, with group commit.
//! - [`Writer`] / [`Reader`]: one segment file (seglog's model), with
//!   concurrent readers.
//! - [`FileDevice`]: the [`segwal::BlockDevice`] over one file.
//!
//! The crate denies `unsafe` everywhere but the few `libc` calls in its
//! `sys` module, each with a `// SAFETY:` line.

mod dir;
mod error;
mod file;
mod salt;
mod segment;
mod sys;
mod wal;
mod writeback;

pub use dir::{AccessMode, DirError, DirStore};
pub use error::{Error, Result};
pub use file::{FileDevice, FileError, sync_dir};
pub use segment::{FlushedOffset, Reader, Records, SegmentOptions, Writer};
pub use wal::{Iter, MAX_SEGMENTS, SharedWal, Wal, WalOptions, is_log_dir};
