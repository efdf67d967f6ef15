//! Opening a log directory for the commands that only read it: the checks
//! that turn a wrong path into a clear message, and the core log over the
//! directory, read-only (no lock, nothing written).
//!
//! The tool opens the core [`segwal::Wal`] over a [`DirStore`] itself,
//! rather than through `segwal_std::Wal`, for two things the facade does not
//! hand out: the segment devices (to walk records with their offsets and
//! measure each segment's fill) and a hook on every read (to drive the
//! progress bar of `verify` from the log's own full scan). The open is the
//! one `segwal_std::Wal::open_read_only` does: a read-only store and the
//! default configuration with `read_only` set.

use std::fs;
use std::path::Path;

use anyhow::bail;
use indicatif::ProgressBar;
use segwal::{
    BlockDevice, ErrorType, Geometry, SegmentId, SegmentStore, TailClass, WalConfig, WalTailState,
    recovery,
};
use segwal_std::{AccessMode, DirStore, FileDevice, FileError, MAX_SEGMENTS};
use serde::Serialize;

use crate::error::{Describe, describe_io};

/// The read buffer: one sequential read-ahead window, as `segwal_std` uses.
pub const BUFFER_BYTES: usize = 64 * 1024;
const _: () = assert!(BUFFER_BYTES as u64 == segwal::SEQUENTIAL_WINDOW_BYTES);

/// The core log over a directory, as the read-only commands open it.
pub type CoreLog = segwal::Wal<MeteredStore, Box<[u8]>, MAX_SEGMENTS>;

/// Refuses, with a message that says what is wrong and where, a path that
/// is missing, a file, or a directory without segment files.
///
/// # Errors
///
/// One of those three, or a directory that cannot be listed.
pub fn check_log_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::metadata(dir) {
        Err(error) => bail!("{}", describe_io(dir, &error)),
        Ok(metadata) if !metadata.is_dir() => {
            bail!("{}: is a file, not a log directory", dir.display())
        }
        Ok(_) => {}
    }
    if !segwal_std::is_log_dir(dir).describe(dir)? {
        bail!(
            "{}: not a segwal log (no segment files `*.seg` in it)",
            dir.display()
        );
    }
    Ok(())
}

/// Opens the log in `dir` read-only; every byte read is added to
/// `progress`, when there is one.
///
/// # Errors
///
/// As for [`check_log_dir`]; a log that does not open (damaged headers, a
/// broken chain), worded with the segment and offset.
pub fn open_read_only(dir: &Path, progress: Option<ProgressBar>) -> anyhow::Result<Box<CoreLog>> {
    check_log_dir(dir)?;
    let store = DirStore::open(dir, AccessMode::ReadOnly)
        .map_err(segwal_std::Error::from)
        .describe(dir)?;
    let config = WalConfig {
        read_only: true,
        ..WalConfig::default()
    };
    let buffer = vec![0u8; BUFFER_BYTES].into_boxed_slice();
    let store = MeteredStore {
        dir: store,
        current: None,
        progress,
    };
    Ok(Box::new(
        segwal::Wal::open(store, config, buffer).describe(dir)?,
    ))
}

/// The holder of the log's lock, for display: `Ok(None)` when the lock is
/// free (or its holder recorded no pid).
///
/// # Errors
///
/// When `LOCK` exists but cannot be probed.
pub fn lock_holder(dir: &Path) -> anyhow::Result<Option<u32>> {
    DirStore::lock_holder(dir)
        .map_err(|error| anyhow::anyhow!("{}", describe_io(&dir.join("LOCK"), &error)))
}

/// How the newest segment's records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TailFinding {
    /// Blank after the last record.
    Clean,
    /// Bytes a writer was writing when it stopped: never acknowledged, cut
    /// by the next read-write open.
    Torn {
        /// Sequence number of the segment.
        segment: u64,
        /// Offset of the first byte after the records.
        offset: u64,
        /// Bytes from there to the last non-blank one.
        bytes: u64,
    },
    /// Damaged bytes followed by a record written after they had been
    /// synced: acknowledged records were damaged.
    Damaged {
        /// Sequence number of the segment.
        segment: u64,
        /// Offset of the damage.
        offset: u64,
        /// Bytes from there to the last non-blank one.
        bytes: u64,
        /// Offset of the valid record after the damage.
        next_valid_offset: u64,
    },
}

/// How the newest segment's records end. The read-only open reports a torn
/// tail and damage alike as `TruncatedAt`; a second scan of that segment
/// tells them apart, and runs only then.
///
/// # Errors
///
/// A failed read.
pub fn newest_tail(log: &mut CoreLog, dir: &Path) -> anyhow::Result<TailFinding> {
    if log.tail_state() == WalTailState::Clean {
        return Ok(TailFinding::Clean);
    }
    let Some(info) = log.segments().last().copied() else {
        return Ok(TailFinding::Clean);
    };
    let mut scratch = vec![0u8; BUFFER_BYTES];
    let (device, start) = log
        .store_mut()
        .device(info.id)
        .map_err(segwal::Error::Device)
        .describe(dir)?;
    let report = recovery::scan(device, start, &info.header, &mut scratch).describe(dir)?;
    let segment = info.header.sequence;
    Ok(match report.tail {
        TailClass::Clean => TailFinding::Clean,
        TailClass::Torn { offset, dirty_end } => TailFinding::Torn {
            segment,
            offset: u64::from(offset),
            bytes: u64::from(dirty_end - offset),
        },
        TailClass::Corrupt {
            offset,
            dirty_end,
            next_valid_offset,
        } => TailFinding::Damaged {
            segment,
            offset: u64::from(offset),
            bytes: u64::from(dirty_end - offset),
            next_valid_offset: u64::from(next_valid_offset),
        },
    })
}

/// A [`DirStore`] whose devices add every byte they read to a progress bar.
#[derive(Debug)]
pub struct MeteredStore {
    dir: DirStore,
    /// The device handed out last, with its start: the log reads one
    /// segment at a time, and keeping one handle bounds the descriptors.
    current: Option<(SegmentId, u64, MeteredDevice)>,
    progress: Option<ProgressBar>,
}

/// A segment file whose reads advance a progress bar.
#[derive(Debug)]
pub struct MeteredDevice {
    file: FileDevice,
    progress: Option<ProgressBar>,
}

impl ErrorType for MeteredDevice {
    type Error = FileError;
}

impl BlockDevice for MeteredDevice {
    fn geometry(&self) -> Geometry {
        self.file.geometry()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FileError> {
        self.file.read(offset, buf)?;
        if let Some(progress) = &self.progress {
            progress.inc(buf.len() as u64);
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), FileError> {
        self.file.write(offset, pieces)
    }

    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), FileError> {
        self.file.erase(offset, len_bytes)
    }

    fn sync(&mut self) -> Result<(), FileError> {
        self.file.sync()
    }
}

impl ErrorType for MeteredStore {
    type Error = FileError;
}

impl SegmentStore for MeteredStore {
    type Device = MeteredDevice;

    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), FileError> {
        self.dir.segment_ids(visit)
    }

    fn device(&mut self, id: SegmentId) -> Result<(&mut MeteredDevice, u64), FileError> {
        let entry = match self.current.take() {
            Some(entry) if entry.0 == id => entry,
            _ => {
                let (file, start) = self.dir.device(id)?;
                let device = MeteredDevice {
                    file: file.clone(),
                    progress: self.progress.clone(),
                };
                (id, start, device)
            }
        };
        let (_, start, device) = self.current.insert(entry);
        Ok((device, *start))
    }

    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, FileError> {
        // The store is read-only (this fails); the cached handle goes all the
        // same, so an id can never point at a file that was replaced.
        self.current = None;
        self.dir.allocate(sequence, size_bytes)
    }

    fn release(&mut self, id: SegmentId) -> Result<(), FileError> {
        self.current = None;
        self.dir.release(id)
    }

    fn fresh_salt(&mut self) -> u64 {
        self.dir.fresh_salt()
    }

    fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> {
        self.dir.id_for_sequence(sequence)
    }
}
