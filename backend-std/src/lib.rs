//! # segwal-std: segwal over files
//!
//! Segments are preallocated, zero-filled files written with `pwritev` and
//! made durable with `fdatasync`; readers use `pread` and follow the
//! writer's published flushed offset, lock-free.
//!
//! - [`Writer`] / [`Reader`]: one segment file (seglog's model), with
//!   concurrent readers.
//! - [`FileDevice`]: the [`segwal::BlockDevice`] over one file.
//!
//! The crate denies `unsafe` everywhere but the few `libc` calls in its
//! `sys` module, each with a `// SAFETY:` line.

mod error;
mod file;
mod salt;
mod segment;
mod sys;

pub use error::{Error, Result};
pub use file::{FileDevice, FileError, sync_dir};
pub use segment::{FlushedOffset, Reader, Records, SegmentOptions, Writer};
