//! The write-ahead log: dense LSNs over a chain of segments in a
//! [`SegmentStore`].
//!
//! # Invariants
//!
//! - Segments form one chain (see FORMAT.md): each header names its
//!   predecessor, `base_lsn` grows strictly along it, and the record count
//!   of a sealed segment is the next segment's `base_lsn` minus its own.
//! - LSNs are dense: `first_lsn <= lsn < next_lsn` are all readable, and no
//!   LSN is ever handed out twice (not after checkpoint, truncation or
//!   reopening): the next LSN is derived from the newest segment's header
//!   and record count alone.
//! - A sealed segment is durable before its successor exists, so only the
//!   newest segment can have a torn tail.
//! - After a failed write or sync the log is poisoned: it refuses writes
//!   until reopened, so no half-written record or duplicate LSN can follow.
//!
//! Every operation is bounded by the number of segments (at most
//! `MAX_SEGMENTS`) and the segment size.

use core::ops::Range;

use crate::checksum::ChecksumKind;
use crate::device::{BlockDevice, Error as DeviceError};
use crate::error::{ChainDefect, ConfigError, Corruption, Error};
use crate::format::{RECORD_HEADER_LEN, SegmentHeader, is_blank};
use crate::read_plan::ReadHint;
use crate::reader::{Payload, SegmentCursor};
use crate::recovery::{self, RecoveryMode, SCAN_SCRATCH_MIN_BYTES, TailClass, TailState};
use crate::segment::{SegmentAppender, SegmentConfig, SegmentIdentity, read_segment_header};
use crate::store::{SegmentId, SegmentStore};

/// A log sequence number: the position of a record in the log, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl core::fmt::Display for Lsn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

/// When an append is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every `append` and `append_batch` is synced before it returns `Ok`.
    #[default]
    Sync,
    /// Appends are durable once the caller's `sync` returns.
    Manual,
}

/// How much of the log open reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OpenVerification {
    /// Headers of every segment and the tail of the newest (nothing at all
    /// past its clean-close marker): open time does not grow with the log.
    #[default]
    Tail,
    /// Also scan every sealed segment and check its record count.
    Full,
}

/// How a log is laid out and behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// Size of each segment, header included (default 64 MiB).
    pub segment_size_bytes: u32,
    /// Checksum of new segments (existing ones keep theirs).
    pub checksum_kind: ChecksumKind,
    /// Largest payload; `None` allows anything a segment can hold.
    pub record_len_max: Option<u32>,
    /// When appends are durable.
    pub durability: Durability,
    /// What to do with corruption in the middle of the newest segment.
    pub recovery_mode: RecoveryMode,
    /// How much open verifies.
    pub verification: OpenVerification,
    /// Open without writing anything: no repair, no deletion, every write
    /// refused with [`Error::ReadOnly`]. For following a log another
    /// process writes ([`Wal::refresh`]).
    pub read_only: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size_bytes: 64 << 20,
            checksum_kind: ChecksumKind::Crc32c,
            record_len_max: None,
            durability: Durability::Sync,
            recovery_mode: RecoveryMode::Strict,
            verification: OpenVerification::Tail,
            read_only: false,
        }
    }
}

impl WalConfig {
    fn segment_config(&self) -> SegmentConfig {
        SegmentConfig {
            segment_size_bytes: self.segment_size_bytes,
            user_area_len_bytes: 0,
            checksum_kind: self.checksum_kind,
            record_len_max: self.record_len_max,
        }
    }
}

/// How the log's records ended when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalTailState {
    /// Clean: nothing was discarded.
    Clean,
    /// A torn tail (or, in point-in-time recovery, a corrupt one) was cut.
    TruncatedAt {
        /// Sequence number of the segment.
        segment: u64,
        /// Offset of the first discarded byte in it.
        offset: u64,
        /// Bytes discarded: exact for a torn tail; for a cut in a sealed
        /// segment, the space from the cut to the end of the log.
        bytes_discarded: u64,
        /// Records discarded that the log had counted: 0 for a torn tail
        /// (its bytes were never acknowledged), the records from the damage
        /// on for point-in-time recovery.
        records_discarded: u64,
    },
}

/// One problem [`Wal::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProblem {
    /// Sequence number of the segment.
    pub segment: u64,
    /// Offset in the segment.
    pub offset: u64,
    /// LSN of the record that should be there.
    pub lsn: u64,
    /// What is wrong.
    pub kind: VerifyProblemKind,
}

/// What [`Wal::verify`] found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyProblemKind {
    /// Damaged bytes where records should be.
    Corrupt,
    /// A sealed segment ends before its last record.
    MissingRecords {
        /// Records expected.
        expected: u64,
        /// Records found.
        found: u64,
    },
    /// The segment header could not be read.
    Header,
}

/// Problems kept in a report; more are counted, not kept.
pub const VERIFY_PROBLEMS_KEPT: usize = 16;

/// What a full checksum scan found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Segments scanned.
    pub segments: u64,
    /// Records whose checksum was verified.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The first problems found.
    pub problems: heapless::Vec<VerifyProblem, VERIFY_PROBLEMS_KEPT>,
    /// All problems found.
    pub problem_count: u64,
}

impl VerifyReport {
    /// `true` when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    fn push(&mut self, problem: VerifyProblem) {
        self.problem_count += 1;
        let _ = self.problems.push(problem);
    }
}

/// What the log knows of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The store's name for it.
    pub id: SegmentId,
    /// Its header.
    pub header: SegmentHeader,
}

/// A sync to be done outside a lock: see [`Wal::begin_sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTicket {
    /// The segment to sync.
    pub segment_id: SegmentId,
    sequence: u64,
    written_offset: u64,
    next_lsn: u64,
}

impl SyncTicket {
    /// The LSN below which every record is durable once this ticket's sync
    /// has succeeded: what was appended before the ticket was taken (the
    /// segments before the ticket's were synced whole when the log rotated
    /// past them).
    pub fn durable_end(&self) -> Lsn {
        Lsn(self.next_lsn)
    }
}

/// A write-ahead log over a [`SegmentStore`].
///
/// `B` is the buffer for reads and scans (at least
/// [`SCAN_SCRATCH_MIN_BYTES`]; 64 KiB gives full read-ahead); at most
/// `MAX_SEGMENTS` segments are tracked (checkpoint releases them).
///
/// # Example
///
/// Over a minimal in-memory store (hidden below: a `Vec<u8>` per segment,
/// durable on write). `segwal_std::Wal` wraps this log over a directory of
/// files; `segwal_ram::RamStore` is the full in-memory store, with power
/// cuts (its documentation shows the log surviving one).
///
/// ```
/// # use std::collections::BTreeMap;
/// # use segwal::{BlockDevice, ErrorKind, ErrorType, Geometry, SegmentId, SegmentStore};
/// # #[derive(Debug, Default)]
/// # struct MemStore { segments: BTreeMap<u64, Mem>, salt: u64 }
/// # #[derive(Debug)]
/// # struct Mem(Vec<u8>);
/// # impl ErrorType for Mem { type Error = ErrorKind; }
/// # impl BlockDevice for Mem {
/// #     fn geometry(&self) -> Geometry { Geometry::byte_addressable(self.0.len() as u64) }
/// #     fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
/// #         let start = offset as usize;
/// #         buf.copy_from_slice(self.0.get(start..start + buf.len()).ok_or(ErrorKind::OutOfBounds)?);
/// #         Ok(())
/// #     }
/// #     fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), ErrorKind> {
/// #         let mut at = offset as usize;
/// #         for piece in pieces {
/// #             self.0.get_mut(at..at + piece.len()).ok_or(ErrorKind::OutOfBounds)?.copy_from_slice(piece);
/// #             at += piece.len();
/// #         }
/// #         Ok(())
/// #     }
/// #     fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), ErrorKind> {
/// #         let (start, end) = (offset as usize, (offset + len_bytes) as usize);
/// #         self.0.get_mut(start..end).ok_or(ErrorKind::OutOfBounds)?.fill(0);
/// #         Ok(())
/// #     }
/// #     fn sync(&mut self) -> Result<(), ErrorKind> { Ok(()) }
/// # }
/// # impl ErrorType for MemStore { type Error = ErrorKind; }
/// # impl SegmentStore for MemStore {
/// #     type Device = Mem;
/// #     fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), ErrorKind> {
/// #         self.segments.keys().for_each(|&id| visit(id));
/// #         Ok(())
/// #     }
/// #     fn device(&mut self, id: SegmentId) -> Result<(&mut Mem, u64), ErrorKind> {
/// #         Ok((self.segments.get_mut(&id).ok_or(ErrorKind::Other)?, 0))
/// #     }
/// #     fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, ErrorKind> {
/// #         self.segments.insert(sequence, Mem(vec![0; size_bytes as usize]));
/// #         Ok(sequence)
/// #     }
/// #     fn release(&mut self, id: SegmentId) -> Result<(), ErrorKind> {
/// #         self.segments.remove(&id);
/// #         Ok(())
/// #     }
/// #     fn fresh_salt(&mut self) -> u64 { self.salt += 1; self.salt }
/// #     fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> { Some(sequence) }
/// # }
/// use segwal::{Lsn, Wal, WalConfig};
///
/// let config = WalConfig {
///     segment_size_bytes: 4096,
///     ..WalConfig::default()
/// };
/// // Up to 16 segments, reading through a 64 KiB buffer (full read-ahead).
/// let mut wal: Wal<MemStore, Vec<u8>, 16> =
///     Wal::open(MemStore::default(), config, vec![0; 64 * 1024])?;
/// let first = wal.append(b"first")?; // synced when it returns
/// let batch = wal.append_batch(&[b"second", b"third"])?; // all or nothing
/// assert_eq!((first, batch), (Lsn(1), Lsn(2)..Lsn(4)));
/// assert_eq!(&*wal.read(Lsn(2))?, b"second");
///
/// let mut iter = wal.iter_from(Lsn(2))?; // a lending iterator
/// while let Some(entry) = iter.next_record() {
///     let (lsn, payload) = entry?;
///     println!("{lsn}: {}", String::from_utf8_lossy(&payload));
/// }
///
/// wal.truncate_after(Lsn(2))?; // "third" is gone, durably
/// let store = wal.close()?; // clean close gives the store back
/// let wal: Wal<MemStore, Vec<u8>, 16> = Wal::open(store, config, vec![0; 64 * 1024])?;
/// assert_eq!(wal.next_lsn(), Lsn(3));
/// # Ok::<(), segwal::Error<ErrorKind>>(())
/// ```
#[derive(Debug)]
pub struct Wal<S: SegmentStore, B, const MAX_SEGMENTS: usize> {
    store: S,
    config: WalConfig,
    /// Oldest first; the last one is being appended to.
    segments: heapless::Vec<SegmentInfo, MAX_SEGMENTS>,
    active: SegmentAppender,
    next_lsn: u64,
    durable_lsn: u64,
    tail: WalTailState,
    poisoned: bool,
    read_only: bool,
    /// The store was told the next segment will be needed.
    prepare_hinted: bool,
    /// The device keeps torn bytes in place (flash): reads follow the
    /// checked walk, not record lengths.
    holes_possible: bool,
    cursor: SegmentCursor<B>,
    /// Which segment the cursor points at, by sequence.
    cursor_sequence: Option<u64>,
    /// Where the last read by LSN found its record, with its segment's
    /// sequence: without the offset index (`alloc` off) a flash read of a
    /// later record of that segment walks on from there, so reads that
    /// move forward walk each segment about once. A segment's records
    /// never move while its sequence lives, so the anchor cannot go stale.
    read_anchor: Option<(u64, WalkFrom)>,
    #[cfg(feature = "alloc")]
    index: crate::wal_index::IndexCache,
}

/// A segment's device and the cursor reading it, borrowed together.
type DeviceAndCursor<'a, S, B> = (
    &'a mut <S as SegmentStore>::Device,
    &'a mut SegmentCursor<B>,
);

/// Where a checked walk of a segment begins ([`Wal::locate`]): a record
/// position and how many records of the segment lie before it. Everything
/// before it was settled by an earlier walk (whole records and skipped
/// holes), and a batch open there was walked to its end by that walk.
#[derive(Debug, Clone, Copy)]
struct WalkFrom {
    offset: u64,
    ordinal: u64,
}

/// Where [`Wal::locate`] found a record.
#[derive(Debug, Clone, Copy)]
struct RecordPosition {
    /// The record's offset in its segment.
    offset: u64,
    /// Where the walk that found it stopped: the records from `offset` up
    /// to here are whole and follow each other (a batch is walked to its
    /// end before any of its records is given out), and a walk for a
    /// later record can begin here.
    checked_end: u64,
}

impl RecordPosition {
    /// A record found without walking: nothing after it is known.
    fn alone(offset: u64) -> Self {
        RecordPosition {
            offset,
            checked_end: offset,
        }
    }
}

/// One step of a [`WalIter`].
pub type WalItem<'a, E> = Result<(Lsn, Payload<'a>), Error<E>>;

/// The first LSN of a new log.
pub const FIRST_LSN: u64 = 1;

/// Every segment must be scannable with the log's buffer (by `verify`, by
/// a later open), whatever its device's read unit: the buffer, trimmed to
/// whole read units, must hold one random read ([`recovery::scratch_fits`]).
// Left to the compiler: once a flash's geometry was a constant, inlining
// let it decide this at compile time, 60 bytes less in firmware than out
// of line (examples/firmware/FIGURES.md).
fn check_scratch<E: DeviceError>(len: usize, geometry: &crate::Geometry) -> Result<(), Error<E>> {
    if recovery::scratch_fits(len, geometry.read_size_bytes) {
        Ok(())
    } else {
        Err(Error::Config(ConfigError::Buffer))
    }
}

/// The sequence number after `header`'s: a header from a device may carry
/// the last one there is.
fn next_sequence<E: DeviceError>(header: &SegmentHeader) -> Result<u64, Error<E>> {
    header
        .sequence
        .checked_add(1)
        .ok_or(Error::TooManySegments { max: u64::MAX })
}

/// `segments.insert(at, info)`, shifting by swaps: heapless's `insert`
/// and `remove` shift with `ptr::copy`, which links compiler-builtins'
/// `memmove` (about 1.5 KiB of Thumb code) into firmware, for a list of at
/// most `MAX_SEGMENTS`. A full list is left as it is (as `insert` does).
/// Out of line, as is [`remove_first_by_swaps`]: inlined, the swap loops
/// cost 216 more bytes of Thumb code in firmware.
#[inline(never)]
fn insert_by_swaps<const N: usize>(
    segments: &mut heapless::Vec<SegmentInfo, N>,
    at: usize,
    info: SegmentInfo,
) {
    if segments.push(info).is_ok() {
        for i in (at + 1..segments.len()).rev() {
            segments.swap(i - 1, i);
        }
    }
}

/// `segments.remove(0)` by swaps, for the reason of [`insert_by_swaps`].
#[inline(never)]
fn remove_first_by_swaps<const N: usize>(segments: &mut heapless::Vec<SegmentInfo, N>) {
    for i in 1..segments.len() {
        segments.swap(i - 1, i);
    }
    segments.pop();
}

fn chain_error<E: DeviceError>(segment: u64, reason: ChainDefect) -> Error<E> {
    Error::Chain { segment, reason }
}

impl<S: SegmentStore, B: AsMut<[u8]> + AsRef<[u8]>, const MAX_SEGMENTS: usize>
    Wal<S, B, MAX_SEGMENTS>
{
    /// Opens the log in `store`, creating it if the store is empty.
    ///
    /// Reads every segment header, checks the chain, deletes what an
    /// interrupted truncation or rotation left, then opens the newest
    /// segment: from its clean-close marker when it has one, else by
    /// scanning it (and repairing a torn tail).
    ///
    /// # Errors
    ///
    /// [`Error::Chain`] and [`Error::Corrupt`] for a log that is not
    /// consistent; [`Error::TooManySegments`]; [`Error::Config`];
    /// [`Error::Device`].
    pub fn open(mut store: S, config: WalConfig, mut buffer: B) -> Result<Self, Error<S::Error>> {
        if buffer.as_mut().len() < SCAN_SCRATCH_MIN_BYTES {
            return Err(Error::Config(ConfigError::Buffer));
        }
        // Refuse a layout that cannot work before anything is allocated
        // (the device's own rules are checked again when a segment is made).
        let size = u64::from(config.segment_size_bytes);
        let probe = SegmentIdentity::first(1, FIRST_LSN, 0);
        config
            .segment_config()
            .header(&crate::Geometry::byte_addressable(size), probe)?;
        let mut unfinished = heapless::Vec::new();
        let mut segments = heapless::Vec::new();
        Self::read_headers(
            &mut store,
            buffer.as_mut(),
            &mut segments,
            &mut unfinished,
            config.read_only,
        )?;
        Self::settle_chain(&mut store, &mut segments, &unfinished, config.read_only)?;
        let mut tail = WalTailState::Clean;
        // The arms give the appender alone: the active segment is the
        // list's last either way, and moving its `SegmentInfo` out of each
        // arm too cost bytes of Thumb code in firmware (with `create_segment`
        // giving the id, not a second copy of the header: 40 in `minimal`,
        // 144 in the sensor-log firmware).
        let active = match segments.last().copied() {
            None if config.read_only => return Err(Error::ReadOnly),
            Some(info) if config.read_only => {
                let (device, start) = store.device(info.id).map_err(Error::Device)?;
                let report = recovery::scan(device, start, &info.header, buffer.as_mut())?;
                if let TailClass::Torn { offset, dirty_end }
                | TailClass::Corrupt {
                    offset, dirty_end, ..
                } = report.tail
                {
                    tail = WalTailState::TruncatedAt {
                        segment: info.header.sequence,
                        offset: u64::from(offset),
                        bytes_discarded: u64::from(dirty_end - offset),
                        records_discarded: 0,
                    };
                }
                SegmentAppender::from_scan(start, info.header, &report)
            }
            None => {
                let identity = SegmentIdentity::first(1, FIRST_LSN, store.fresh_salt());
                let (appender, id) = Self::create_segment(&mut store, &config, identity)?;
                let _ = segments.push(SegmentInfo {
                    id,
                    header: *appender.header(),
                });
                appender
            }
            Some(info) => {
                let (device, start) = store.device(info.id).map_err(Error::Device)?;
                // A device that erases before writing never gets a
                // clean-close marker (`recovery::marker_extent_bytes`):
                // there it scans at once, without reading the header twice.
                let markers = !device.geometry().erase_before_write;
                let clean = match config.verification {
                    OpenVerification::Tail if markers => {
                        SegmentAppender::open_clean(device, start, buffer.as_mut())?
                    }
                    OpenVerification::Tail | OpenVerification::Full => None,
                };
                match clean {
                    Some((appender, _)) => appender,
                    None => {
                        let (appender, recovered) = SegmentAppender::open(
                            device,
                            start,
                            config.recovery_mode,
                            buffer.as_mut(),
                        )?;
                        if let TailState::TruncatedAt {
                            offset,
                            bytes_discarded,
                        } = recovered.tail
                        {
                            tail = WalTailState::TruncatedAt {
                                segment: info.header.sequence,
                                offset,
                                bytes_discarded,
                                records_discarded: 0,
                            };
                        }
                        appender
                    }
                }
            }
        };
        // Never empty here: the last arm pushed one if it was.
        let active_id = segments.last().map_or(0, |info| info.id);
        let active_header = *active.header();
        let geometry = store.device(active_id).map_err(Error::Device)?.0.geometry();
        check_scratch(buffer.as_mut().len(), &geometry)?;
        let cursor =
            SegmentCursor::with_header(&geometry, active.segment_start(), active_header, buffer)?;
        // Bytes from a device: a base LSN near the top of the range must
        // not wrap.
        let next_lsn = active_header
            .base_lsn
            .checked_add(active.record_count())
            .ok_or(chain_error(
                active_header.sequence,
                ChainDefect::LsnNotIncreasing,
            ))?;
        let mut wal = Wal {
            store,
            config,
            segments,
            active,
            next_lsn,
            durable_lsn: next_lsn,
            tail,
            poisoned: false,
            read_only: config.read_only,
            prepare_hinted: false,
            holes_possible: geometry.erase_before_write,
            cursor,
            cursor_sequence: None,
            read_anchor: None,
            #[cfg(feature = "alloc")]
            index: crate::wal_index::IndexCache::default(),
        };
        if config.verification == OpenVerification::Full {
            wal.settle_verified()?;
        }
        Ok(wal)
    }

    /// After a full verification at open: strict mode refuses a damaged
    /// log; point-in-time recovery cuts it just before the first damaged
    /// record and reports what was dropped.
    fn settle_verified(&mut self) -> Result<(), Error<S::Error>> {
        let report = self.verify()?;
        let Some(problem) = report.problems.first().copied() else {
            return Ok(());
        };
        if self.config.recovery_mode == RecoveryMode::Strict || self.read_only {
            return Err(problem_error(&problem));
        }
        let Some(cut) = problem.lsn.checked_sub(1) else {
            return Err(problem_error(&problem));
        };
        let records_discarded = self.next_lsn.saturating_sub(problem.lsn);
        let index = self.segment_index_of(problem.lsn).unwrap_or(0);
        let mut bytes_discarded =
            u64::from(self.segments[index].header.segment_size_bytes) - problem.offset;
        for info in &self.segments[index + 1..] {
            bytes_discarded += u64::from(info.header.segment_size_bytes);
        }
        self.truncate_after(Lsn(cut))?;
        self.tail = WalTailState::TruncatedAt {
            segment: problem.segment,
            offset: problem.offset,
            bytes_discarded,
            records_discarded,
        };
        Ok(())
    }

    /// Reads the header of every segment in the store into `segments`
    /// (empty when called), oldest first. Blank or half-written headers (an
    /// allocation cut short) are listed in `unfinished`, to be released
    /// once the chain checks out. The list is filled in place rather than
    /// returned: a returned list is copied out of the `Result`, 200 bytes
    /// of Thumb code in firmware.
    // Out of line with `settle_chain`: inlined into `open` (itself inlined
    // into a firmware's caller) the two cost 468 more bytes of Thumb code
    // (examples/firmware/FIGURES.md).
    #[inline(never)]
    fn read_headers(
        store: &mut S,
        scratch: &mut [u8],
        segments: &mut heapless::Vec<SegmentInfo, MAX_SEGMENTS>,
        unfinished: &mut heapless::Vec<SegmentId, MAX_SEGMENTS>,
        read_only: bool,
    ) -> Result<(), Error<S::Error>> {
        let mut ids: heapless::Vec<SegmentId, MAX_SEGMENTS> = heapless::Vec::new();
        let mut overflow = false;
        store
            .segment_ids(&mut |id| overflow |= ids.push(id).is_err())
            .map_err(Error::Device)?;
        if overflow {
            return Err(Error::TooManySegments {
                max: MAX_SEGMENTS as u64,
            });
        }
        for &id in &ids {
            let (device, start) = match store.device(id) {
                Ok(found) => found,
                // A reader beside a live writer: the segment was listed, then
                // checkpointed away before it could be opened.
                Err(_) if read_only => continue,
                Err(e) => return Err(Error::Device(e)),
            };
            let geometry = device.geometry();
            check_scratch(scratch.len(), &geometry)?;
            let capacity = geometry.capacity_bytes;
            if capacity.saturating_sub(start) < crate::format::SEGMENT_HEADER_LEN as u64 {
                // Shorter than a header: a creation cut short.
                let _ = unfinished.push(id);
                continue;
            }
            match read_segment_header(device, start) {
                Ok(header) => {
                    if store
                        .id_for_sequence(header.sequence)
                        .is_some_and(|expected| expected != id)
                    {
                        return Err(chain_error(
                            header.sequence,
                            ChainDefect::NameMismatch { id },
                        ));
                    }
                    // In sequence order as they come (a store lists in any
                    // order): a binary search and a shift instead of a sort
                    // afterwards, which would link core's sort (about
                    // 3 KiB of Thumb code, and recursive) into firmware.
                    let at =
                        segments.partition_point(|info| info.header.sequence <= header.sequence);
                    insert_by_swaps(segments, at, SegmentInfo { id, header });
                }
                Err(Error::Corrupt {
                    reason: Corruption::Header(defect),
                    ..
                }) => {
                    if !Self::is_unfinished_allocation(device, start, scratch)? {
                        return Err(Error::Corrupt {
                            segment: id,
                            offset: 0,
                            reason: Corruption::Header(defect),
                        });
                    }
                    let _ = unfinished.push(id);
                }
                Err(other) => return Err(other),
            }
        }
        for pair in segments.windows(2) {
            if pair[0].header.sequence == pair[1].header.sequence {
                return Err(chain_error(
                    pair[1].header.sequence,
                    ChainDefect::DuplicateSequence,
                ));
            }
        }
        Ok(())
    }

    /// A segment whose header is unusable and whose first record position
    /// is blank never held a record: its allocation was cut short, and it
    /// can go. Anything else with a bad header is corruption.
    fn is_unfinished_allocation(
        device: &mut S::Device,
        start: u64,
        scratch: &mut [u8],
    ) -> Result<bool, Error<S::Error>> {
        // Whatever the header's defect (a torn header can read as any
        // version, or as a bad magic), what decides is whether a record was
        // ever written after it: an allocation cut short never got one.
        let geometry = device.geometry();
        // The first record starts within the first 4 KiB + alignment for
        // any user area this crate writes; blank there means no record.
        let probe = scratch
            .len()
            .min(4096 + 4096)
            .min(usize::try_from(geometry.capacity_bytes - start).unwrap_or(0));
        let probe = probe - probe % geometry.read_size_bytes as usize;
        device
            .read(start, &mut scratch[..probe])
            .map_err(Error::Device)?;
        let after_header = &scratch[crate::format::SEGMENT_HEADER_LEN.min(probe)..probe];
        Ok(after_header
            .chunks(RECORD_HEADER_LEN)
            .all(|unit| is_blank(unit, geometry.erased_byte, !geometry.erase_before_write)))
    }

    /// Keeps the chain that ends at the newest segment; deletes segments an
    /// interrupted truncation cut off; rejects gaps and LSNs that do not
    /// grow. Nothing is deleted unless the whole chain checks out.
    // Out of line: see `read_headers`.
    #[inline(never)]
    fn settle_chain(
        store: &mut S,
        segments: &mut heapless::Vec<SegmentInfo, MAX_SEGMENTS>,
        unfinished: &[SegmentId],
        read_only: bool,
    ) -> Result<(), Error<S::Error>> {
        let mut on_chain = [false; MAX_SEGMENTS];
        let mut index = segments.len();
        if let Some(newest) = index.checked_sub(1) {
            index = newest;
            for _ in 0..segments.len() {
                on_chain[index] = true;
                let current = &segments[index].header;
                if current.prev_sequence == current.sequence {
                    break;
                }
                let Ok(prev) =
                    segments.binary_search_by_key(&current.prev_sequence, |i| i.header.sequence)
                else {
                    break; // checkpointed away
                };
                // Equal is an empty sealed segment (rotated away from before a
                // record fit, after a torn tail filled it on flash).
                if segments[prev].header.base_lsn > current.base_lsn {
                    return Err(chain_error(current.sequence, ChainDefect::LsnNotIncreasing));
                }
                index = prev;
            }
        }
        let oldest_on_chain = index;
        // Off the chain: cut off by a truncation when the next newer chain
        // segment starts at or below its base LSN; otherwise a gap.
        let mut cut_off: heapless::Vec<SegmentId, MAX_SEGMENTS> = heapless::Vec::new();
        for i in 0..segments.len() {
            if on_chain[i] {
                continue;
            }
            let info = &segments[i].header;
            let successor = (i + 1..segments.len()).find(|&j| on_chain[j]);
            if successor.is_some_and(|j| segments[j].header.base_lsn <= info.base_lsn) {
                let _ = cut_off.push(segments[i].id);
            } else {
                let missing = segments[oldest_on_chain].header.prev_sequence;
                return Err(chain_error(
                    segments[oldest_on_chain].header.sequence,
                    ChainDefect::MissingPredecessor { missing },
                ));
            }
        }
        // Newest first, as truncation itself deletes them.
        for &id in cut_off
            .iter()
            .rev()
            .chain(unfinished)
            .filter(|_| !read_only)
        {
            store.release(id).map_err(Error::Device)?;
        }
        let mut kept: heapless::Vec<SegmentInfo, MAX_SEGMENTS> = heapless::Vec::new();
        for (i, info) in segments.iter().enumerate() {
            if on_chain[i] {
                let _ = kept.push(*info);
            }
        }
        *segments = kept;
        Ok(())
    }

    /// Allocates and lays out a new segment; returns its appender and id
    /// (the header is the appender's).
    fn create_segment(
        store: &mut S,
        config: &WalConfig,
        identity: SegmentIdentity,
    ) -> Result<(SegmentAppender, SegmentId), Error<S::Error>> {
        let id = store
            .allocate(identity.sequence, config.segment_size_bytes)
            .map_err(Error::Device)?;
        let (device, start) = store.device(id).map_err(Error::Device)?;
        let appender =
            SegmentAppender::create(device, start, &config.segment_config(), identity, &[])?;
        Ok((appender, id))
    }

    fn active_info(&self) -> SegmentInfo {
        // The list is never empty once open.
        self.segments.last().copied().unwrap_or(SegmentInfo {
            id: 0,
            header: *self.active.header(),
        })
    }

    fn poison_on<T>(&mut self, result: Result<T, Error<S::Error>>) -> Result<T, Error<S::Error>> {
        if matches!(result, Err(Error::Device(_) | Error::Poisoned)) {
            self.poisoned = true;
        }
        result
    }

    /// Appends one record and returns its LSN. With [`Durability::Sync`] it
    /// is durable when this returns.
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`] (a payload over `record_len_max` or larger
    /// than a segment can hold) and [`Error::TooManySegments`] write
    /// nothing; [`Error::Poisoned`] after an earlier failure;
    /// [`Error::Device`], which poisons the log.
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, Error<S::Error>> {
        Ok(self.append_batch(&[payload])?.start)
    }

    /// Appends records as one atomic batch, in one write (up to
    /// [`BATCH_RECORDS_PER_WRITE`](crate::BATCH_RECORDS_PER_WRITE) records
    /// per write) and, with [`Durability::Sync`], one sync. After a crash
    /// either every record of the batch is there or none is.
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append); a batch larger than a segment can
    /// hold is [`Error::RecordTooLarge`].
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Range<Lsn>, Error<S::Error>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if payloads.is_empty() {
            return Ok(Lsn(self.next_lsn)..Lsn(self.next_lsn));
        }
        let needed_bytes = self.active.batch_extent_bytes(payloads)?;
        let count = payloads.len() as u64;
        if self.next_lsn.checked_add(count).is_none() {
            return Err(self.out_of_range(u64::MAX));
        }
        if needed_bytes > self.active.remaining_bytes() {
            // What a new segment (no user area) holds; saturating, since the
            // configured size may be smaller than the segment on disk.
            let align = u64::from(self.active.header().record_align_bytes());
            let first_record =
                crate::format::align_up(crate::format::SEGMENT_HEADER_LEN as u64, align)
                    .unwrap_or(u64::MAX);
            let fresh = u64::from(self.config.segment_size_bytes).saturating_sub(first_record);
            if needed_bytes > fresh {
                return Err(Error::RecordTooLarge {
                    len_bytes: needed_bytes,
                    max_bytes: fresh,
                });
            }
            self.rotate()?;
        }
        let id = self.active_info().id;
        let (device, _) = self.store.device(id).map_err(Error::Device)?;
        let result = self
            .active
            .append_measured_batch(device, payloads, needed_bytes);
        let offsets = self.poison_on(result)?;
        let first = self.next_lsn;
        self.next_lsn += count;
        if !self.prepare_hinted
            && self.active.remaining_bytes() < u64::from(self.config.segment_size_bytes) / 4
        {
            self.prepare_hinted = true;
            if let Some(next) = self.active.header().sequence.checked_add(1) {
                self.store.prepare(next, self.config.segment_size_bytes);
            }
        }
        #[cfg(feature = "alloc")]
        self.index
            .note_appended(self.active.header(), offsets.start, payloads);
        #[cfg(not(feature = "alloc"))]
        let _ = offsets;
        if self.config.durability == Durability::Sync {
            self.sync()?;
        }
        Ok(Lsn(first)..Lsn(self.next_lsn))
    }

    /// Seals the active segment (synced) and starts the next one.
    fn rotate(&mut self) -> Result<(), Error<S::Error>> {
        if self.segments.len() >= MAX_SEGMENTS {
            return Err(Error::TooManySegments {
                max: MAX_SEGMENTS as u64,
            });
        }
        self.sync()?;
        let previous = *self.active.header();
        let identity = SegmentIdentity {
            sequence: next_sequence(&previous)?,
            base_lsn: self.next_lsn,
            salt: self.store.fresh_salt(),
            prev_sequence: previous.sequence,
        };
        // A full device poisons like any failed write: the caller learns of
        // it once, and reopens when there is room (a flash ring that drops
        // its oldest segment checks for room before it appends).
        let created = Self::create_segment(&mut self.store, &self.config, identity);
        let (appender, id) = self.poison_on(created)?;
        let _ = self.segments.push(SegmentInfo {
            id,
            header: *appender.header(),
        });
        self.active = appender;
        self.prepare_hinted = false;
        Ok(())
    }

    /// Makes every appended record durable.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`]; [`Error::Device`], which poisons the log.
    pub fn sync(&mut self) -> Result<(), Error<S::Error>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let id = self.active_info().id;
        let result = match self.store.device(id) {
            Ok((device, _)) => self.active.sync(device).map(|_| ()),
            Err(e) => Err(Error::Device(e)),
        };
        self.poison_on(result)?;
        self.durable_lsn = self.next_lsn;
        Ok(())
    }

    /// Starts a sync to be done by the caller outside a lock (group commit):
    /// sync the device of `ticket.segment_id`, then call
    /// [`finish_sync`](Self::finish_sync). Records appended after this call
    /// are not covered.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`].
    pub fn begin_sync(&self) -> Result<SyncTicket, Error<S::Error>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(SyncTicket {
            segment_id: self.active_info().id,
            sequence: self.active.header().sequence,
            written_offset: self.active.written_offset(),
            next_lsn: self.next_lsn,
        })
    }

    /// Records the outcome of a sync started with
    /// [`begin_sync`](Self::begin_sync). Returns the LSN below which every
    /// record is durable.
    ///
    /// # Errors
    ///
    /// The sync's own error, which poisons the log.
    pub fn finish_sync(
        &mut self,
        ticket: SyncTicket,
        outcome: Result<(), S::Error>,
    ) -> Result<Lsn, Error<S::Error>> {
        if let Err(e) = outcome {
            self.poisoned = true;
            self.active.poison();
            return Err(Error::Device(e));
        }
        // A rotation in between synced the ticket's segment whole.
        if ticket.sequence == self.active.header().sequence {
            self.active.mark_synced(ticket.written_offset);
        }
        self.durable_lsn = self.durable_lsn.max(ticket.next_lsn);
        Ok(Lsn(self.durable_lsn))
    }

    /// Durably removes every sealed segment whose records are all at or
    /// below `lsn`; never the segment being appended to. Returns how many
    /// segments were removed.
    ///
    /// # Errors
    ///
    /// [`Error::LsnOutOfRange`] for an LSN outside the log (nothing
    /// changes); [`Error::Device`] when a removal fails (the segments
    /// before it are gone, the rest stay: the log is consistent either way).
    pub fn checkpoint(&mut self, lsn: Lsn) -> Result<usize, Error<S::Error>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let first = self.first_lsn().0;
        if lsn.0 < first || lsn.0 >= self.next_lsn {
            return Err(self.out_of_range(lsn.0));
        }
        let mut removed = 0;
        // Oldest first, so a crash part-way leaves a log without a gap.
        while self.segments.len() > 1 && self.segments[1].header.base_lsn <= lsn.0 + 1 {
            let oldest = self.segments[0];
            self.store.release(oldest.id).map_err(Error::Device)?;
            remove_first_by_swaps(&mut self.segments);
            #[cfg(feature = "alloc")]
            self.index.forget(oldest.header.sequence);
            removed += 1;
        }
        Ok(removed)
    }

    /// Durably removes every record after `lsn` (Raft suffix truncation).
    /// The next append gets `lsn + 1`. A crash in the middle leaves the old
    /// log or the new one: the cut is one segment header written and synced
    /// (see FORMAT.md), the segments it cuts off are deleted afterwards,
    /// newest first.
    ///
    /// # Errors
    ///
    /// [`Error::LsnOutOfRange`] unless `first_lsn - 1 <= lsn < next_lsn`;
    /// [`Error::TooManySegments`]; [`Error::Poisoned`]; [`Error::Device`],
    /// which poisons the log.
    pub fn truncate_after(&mut self, lsn: Lsn) -> Result<(), Error<S::Error>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let first = self.first_lsn().0;
        // The upper bound first: it makes `lsn + 1` safe.
        if lsn.0 >= self.next_lsn || lsn.0 + 1 < first {
            return Err(self.out_of_range(lsn.0));
        }
        if lsn.0 + 1 == self.next_lsn {
            return Ok(());
        }
        if self.segments.len() >= MAX_SEGMENTS {
            return Err(Error::TooManySegments {
                max: MAX_SEGMENTS as u64,
            });
        }
        // What stays must be durable before the cut claims it.
        self.sync()?;
        let keep = self.segment_index_of(lsn.0);
        let sequence = next_sequence(self.active.header())?;
        let prev_sequence = keep.map_or(sequence, |k| self.segments[k].header.sequence);
        let identity = SegmentIdentity {
            sequence,
            base_lsn: lsn.0 + 1,
            salt: self.store.fresh_salt(),
            prev_sequence,
        };
        let created = Self::create_segment(&mut self.store, &self.config, identity);
        let (appender, id) = self.poison_on(created)?;
        // The cut is durable: drop what it cut off, newest first.
        let keep_count = keep.map_or(0, |k| k + 1);
        let mut release_error = None;
        while self.segments.len() > keep_count {
            if let Some(cut) = self.segments.pop() {
                #[cfg(feature = "alloc")]
                self.index.forget(cut.header.sequence);
                if let Err(e) = self.store.release(cut.id) {
                    // Left for the next open to delete; the cut stands.
                    release_error.get_or_insert(e);
                }
            }
        }
        #[cfg(feature = "alloc")]
        if let Some(k) = keep {
            let kept = self.segments[k].header;
            self.index
                .truncate(kept.sequence, lsn.0 + 1 - kept.base_lsn);
        }
        let _ = self.segments.push(SegmentInfo {
            id,
            header: *appender.header(),
        });
        self.active = appender;
        self.prepare_hinted = false;
        self.next_lsn = lsn.0 + 1;
        self.durable_lsn = self.next_lsn;
        self.cursor_sequence = None;
        let _ = release_error;
        Ok(())
    }

    /// Index in `segments` of the segment holding `lsn`, if any.
    fn segment_index_of(&self, lsn: u64) -> Option<usize> {
        let after = self
            .segments
            .partition_point(|info| info.header.base_lsn <= lsn);
        after.checked_sub(1)
    }

    fn out_of_range(&self, lsn: u64) -> Error<S::Error> {
        Error::LsnOutOfRange {
            lsn,
            first_lsn: self.first_lsn().0,
            next_lsn: self.next_lsn,
        }
    }

    /// Records in segment `index`: the next segment's base minus its own.
    fn record_count_of(&self, index: usize) -> u64 {
        match self.segments.get(index + 1) {
            Some(next) => next.header.base_lsn - self.segments[index].header.base_lsn,
            None => self.active.record_count(),
        }
    }

    /// Where reads of segment `index` may go up to: everything written to
    /// the active segment (the log reads its own writes), a sealed one whole.
    fn readable_end(&self, index: usize) -> u64 {
        if index + 1 == self.segments.len() {
            self.active.written_offset()
        } else {
            u64::from(self.segments[index].header.segment_size_bytes)
        }
    }

    /// The device of segment `index` and the cursor pointed at it: split
    /// borrows of two fields, so both can be used at once.
    fn device_and_cursor(
        &mut self,
        index: usize,
    ) -> Result<DeviceAndCursor<'_, S, B>, Error<S::Error>> {
        let info = self.segments[index];
        let readable_end = self.readable_end(index);
        let (device, start) = self.store.device(info.id).map_err(Error::Device)?;
        if self.cursor_sequence == Some(info.header.sequence) {
            self.cursor.set_flushed_offset(readable_end);
        } else {
            self.cursor.retarget(start, info.header, readable_end);
            self.cursor_sequence = Some(info.header.sequence);
        }
        Ok((device, &mut self.cursor))
    }

    /// Where record `ordinal` (0-based) of segment `index` is: from the
    /// offset index when it has the segment (`alloc`), else by walking
    /// record headers, bounded by the segment's record count: from the
    /// segment's start, or from `from`, where the caller's last walk of
    /// this segment stopped. With `alloc` the walk covers the whole segment
    /// from its start and is kept.
    fn locate(
        &mut self,
        index: usize,
        ordinal: u64,
        from: Option<WalkFrom>,
    ) -> Result<RecordPosition, Error<S::Error>> {
        let info = self.segments[index];
        #[cfg(feature = "alloc")]
        if let Some(offset) = self.index.lookup(info.header.sequence, ordinal) {
            return Ok(RecordPosition::alone(offset));
        }
        let start = u64::from(info.header.records_start());
        if ordinal == 0 && !self.holes_possible {
            // Where no hole can sit before it, a segment's first record is
            // at its start: an iteration from the start of the log (or of a
            // segment) begins without walking the segment's headers.
            return Ok(RecordPosition::alone(start));
        }
        let from = match from {
            Some(from) if !cfg!(feature = "alloc") => from,
            _ => WalkFrom {
                offset: start,
                ordinal: 0,
            },
        };
        let count = self.record_count_of(index);
        #[cfg(feature = "alloc")]
        let target = count;
        #[cfg(not(feature = "alloc"))]
        let target = ordinal + 1;
        #[cfg(feature = "alloc")]
        let mut offsets = alloc::vec::Vec::new();
        let (device, cursor) = self.device_and_cursor(index)?;
        // On flash, torn records stay in place: every record is checked and
        // an unfinished batch before a hole is dropped, as the scan does.
        let checked = device.geometry().erase_before_write;
        let mut offset = from.offset;
        let mut found = None;
        let mut seen = from.ordinal;
        // Where an unfinished batch began, and what was counted before it.
        let mut batch: Option<(u64, u64)> = None;
        // Where the records from the found one stop following each other:
        // the first hole the walk went past after it (`alloc` walks on).
        let mut contiguous_end = None;
        let max_steps = info.header.segment_size_bytes / 8 + 1;
        for _ in 0..max_steps {
            // Records of a batch still open may yet be dropped.
            if seen >= target && batch.is_none() {
                break;
            }
            let step = if checked {
                cursor
                    .check_record(device, offset)
                    .map(|(next, flags)| (next, flags, offset))
            } else {
                cursor.skip_record(device, offset).map(|(next, marker)| {
                    (
                        next,
                        if marker {
                            crate::format::FLAG_MARKER
                        } else {
                            0
                        },
                        offset,
                    )
                })
            };
            let (next, flags, at) = match step {
                Ok(step) => step,
                Err(Error::NotARecord { .. }) if checked => {
                    // An unfinished batch is dropped whole; the hole, if the
                    // writer skipped it, starts where the batch began.
                    let (hole, before) = batch.take().unwrap_or((offset, seen));
                    seen = before;
                    if ordinal >= before {
                        found = None;
                    }
                    if found.is_some() && contiguous_end.is_none() {
                        contiguous_end = Some(hole);
                    }
                    #[cfg(feature = "alloc")]
                    offsets.truncate(usize::try_from(before).unwrap_or(usize::MAX));
                    let Some(resume) = cursor.find_resume(device, hole)? else {
                        break;
                    };
                    offset = resume;
                    continue;
                }
                // Damage further on does not hide the records before it.
                Err(e) if found.is_none() => return Err(e),
                Err(_) => break,
            };
            if flags & crate::format::FLAG_MARKER == 0 {
                if flags & crate::format::FLAG_BATCH_CONTINUES == 0 {
                    batch = None;
                } else if batch.is_none() {
                    batch = Some((at, seen));
                }
                if seen == ordinal {
                    found = Some(at);
                }
                #[cfg(feature = "alloc")]
                offsets.push(u32::try_from(at).unwrap_or(u32::MAX));
                seen += 1;
            }
            offset = next;
        }
        // Only a walk that saw every record is kept.
        #[cfg(feature = "alloc")]
        if seen >= target {
            self.index.insert(info.header.sequence, offsets);
        }
        let checked_end = contiguous_end.unwrap_or(offset);
        found
            .map(|offset| RecordPosition {
                offset,
                checked_end,
            })
            .ok_or(Error::Chain {
                segment: info.header.sequence,
                reason: ChainDefect::MissingRecords {
                    expected: count,
                    found: seen,
                },
            })
    }

    /// Reads the record at `lsn`, checksum verified: seeks the segment in
    /// O(log segments), then the record within it: through the offset
    /// index (`alloc`), by record lengths, or on flash by a checked walk of
    /// the segment's records (without `alloc`: on from the record the read
    /// before found, when that was an earlier one of the same segment).
    ///
    /// # Errors
    ///
    /// [`Error::LsnOutOfRange`] for an LSN not in the log (checkpointed away
    /// or not yet written); [`Error::NotARecord`] or [`Error::Chain`] for
    /// damaged data; [`Error::Device`].
    pub fn read(&mut self, lsn: Lsn) -> Result<Payload<'_>, Error<S::Error>> {
        let (index, found) = self.position_of(lsn.0)?;
        let offset = found.offset;
        let hint = self.random_read_hint(index, lsn.0, offset);
        let (device, cursor) = self.device_and_cursor(index)?;
        Ok(cursor.read_record(device, offset, hint)?.payload)
    }

    /// How much a read of record `lsn`, at `offset` of segment `index`,
    /// takes: exactly the record when the offset index has the record after
    /// it (the distance between the two is the extent), else a header and
    /// 2 KiB.
    fn random_read_hint(&self, index: usize, lsn: u64, offset: u64) -> ReadHint {
        #[cfg(feature = "alloc")]
        {
            let header = &self.segments[index].header;
            let next = self.index.peek(header.sequence, lsn - header.base_lsn + 1);
            if let Some(extent_bytes) = next.and_then(|next| next.checked_sub(offset)) {
                return ReadHint::Extent(extent_bytes);
            }
        }
        #[cfg(not(feature = "alloc"))]
        let _ = (index, lsn, offset);
        ReadHint::Random
    }

    /// Segment index and position of `lsn`, walking on from the last read
    /// when it found an earlier record of the same segment.
    fn position_of(&mut self, lsn: u64) -> Result<(usize, RecordPosition), Error<S::Error>> {
        let (index, ordinal) = self.ordinal_of(lsn)?;
        let sequence = self.segments[index].header.sequence;
        let from = match self.read_anchor {
            Some((anchor_sequence, from))
                if anchor_sequence == sequence && from.ordinal <= ordinal =>
            {
                Some(from)
            }
            _ => None,
        };
        let found = self.locate(index, ordinal, from)?;
        self.read_anchor = Some((
            sequence,
            WalkFrom {
                offset: found.offset,
                ordinal,
            },
        ));
        Ok((index, found))
    }

    /// Segment index of `lsn` and its ordinal (0-based) in that segment.
    fn ordinal_of(&self, lsn: u64) -> Result<(usize, u64), Error<S::Error>> {
        if lsn < self.first_lsn().0 || lsn >= self.next_lsn {
            return Err(self.out_of_range(lsn));
        }
        let index = self
            .segment_index_of(lsn)
            .ok_or_else(|| self.out_of_range(lsn))?;
        Ok((index, lsn - self.segments[index].header.base_lsn))
    }

    /// Iterates from the first record.
    pub fn iter(&mut self) -> WalIter<'_, S, B, MAX_SEGMENTS> {
        let first = self.first_lsn();
        WalIter {
            wal: self,
            next: first,
            position: None,
            checked_end: 0,
            failed: false,
        }
    }

    /// Iterates from `lsn`, found without reading earlier segments.
    ///
    /// # Errors
    ///
    /// [`Error::LsnOutOfRange`] unless `first_lsn <= lsn <= next_lsn`.
    pub fn iter_from(
        &mut self,
        lsn: Lsn,
    ) -> Result<WalIter<'_, S, B, MAX_SEGMENTS>, Error<S::Error>> {
        if lsn.0 < self.first_lsn().0 || lsn.0 > self.next_lsn {
            return Err(self.out_of_range(lsn.0));
        }
        Ok(WalIter {
            wal: self,
            next: lsn,
            position: None,
            checked_end: 0,
            failed: false,
        })
    }

    /// Scans every segment and checks every checksum and record count.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] when a read fails; damage is reported, not returned.
    pub fn verify(&mut self) -> Result<VerifyReport, Error<S::Error>> {
        let mut report = VerifyReport::default();
        for index in 0..self.segments.len() {
            let info = self.segments[index];
            let expected = self.record_count_of(index);
            let (device, start) = self.store.device(info.id).map_err(Error::Device)?;
            self.cursor_sequence = None;
            let scan = recovery::scan(device, start, &info.header, self.cursor.scratch())?;
            report.segments += 1;
            report.records += scan.record_count.min(expected);
            report.bytes += u64::from(scan.records_end);
            let is_active = index + 1 == self.segments.len();
            let lsn = info.header.base_lsn.saturating_add(scan.record_count);
            if scan.record_count < expected {
                let problem_offset = u64::from(scan.records_end);
                let kind = match scan.tail {
                    TailClass::Clean => VerifyProblemKind::MissingRecords {
                        expected,
                        found: scan.record_count,
                    },
                    _ => VerifyProblemKind::Corrupt,
                };
                report.push(VerifyProblem {
                    segment: info.header.sequence,
                    offset: problem_offset,
                    lsn,
                    kind,
                });
            } else if is_active
                && !matches!(scan.tail, TailClass::Clean)
                && !self.is_skipped_hole(scan.tail)
            {
                report.push(VerifyProblem {
                    segment: info.header.sequence,
                    offset: u64::from(scan.records_end),
                    lsn,
                    kind: VerifyProblemKind::Corrupt,
                });
            }
        }
        Ok(report)
    }

    /// Writes a clean-close marker (so the next open reads no records) and
    /// gives the store back.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] when the final sync fails: the records appended
    /// since the last successful sync may then be lost.
    pub fn close(mut self) -> Result<S, Error<S::Error>> {
        self.close_in_place()?;
        Ok(self.store)
    }

    /// Writes the clean-close marker, leaving the log usable (the marker is
    /// wiped before the next append). For owners that cannot move the log.
    ///
    /// # Errors
    ///
    /// As for [`close`](Self::close).
    pub fn close_in_place(&mut self) -> Result<(), Error<S::Error>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let id = self.active_info().id;
        let (device, _) = self.store.device(id).map_err(Error::Device)?;
        let result = match self.active.write_close_marker(device) {
            // No room for a marker: the next open scans instead.
            Ok(_) | Err(Error::Full { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        self.poison_on(result)?;
        self.durable_lsn = self.next_lsn;
        Ok(())
    }

    /// Read-only logs: re-reads the store to see what another process has
    /// written since (new records, new segments, checkpoints, truncations).
    /// Costs what an open costs: every header and a scan of the newest
    /// segment.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnly`] the other way round: on a writable log there is
    /// nothing to refresh from. Otherwise as for [`open`](Self::open).
    pub fn refresh(self) -> Result<Self, Error<S::Error>> {
        if !self.read_only {
            return Err(Error::ReadOnly);
        }
        let buffer = self.cursor.into_buffer();
        Self::open(self.store, self.config, buffer)
    }

    /// A torn tail the writer already stepped past on flash (its next record
    /// will say so): not damage, as long as nothing was written in it.
    ///
    /// A read-only log repairs nothing, so a torn tail of its newest
    /// segment (never acknowledged) is expected there too.
    fn is_skipped_hole(&self, tail: TailClass) -> bool {
        let torn = matches!(tail, TailClass::Torn { .. });
        let skipped = matches!(tail, TailClass::Torn { dirty_end, .. } if u64::from(dirty_end) <= self.active.written_offset())
            && self.active.is_resuming_after_hole();
        skipped || (torn && self.read_only)
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        Lsn(self
            .segments
            .first()
            .map_or(self.next_lsn, |info| info.header.base_lsn))
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.next_lsn)
    }

    /// Every LSN below this is durable.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.durable_lsn)
    }

    /// How the records ended when the log was opened.
    pub fn tail_state(&self) -> WalTailState {
        self.tail
    }

    /// Segments in the log.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// `true` once a write or sync has failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The configuration.
    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    /// The store, for what the log does not do itself (such as syncing a
    /// segment's device outside a lock).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Bytes written to the active segment (headers included).
    pub fn active_written_bytes(&self) -> u64 {
        self.active.written_offset()
    }
}

fn problem_error<E: DeviceError>(problem: &VerifyProblem) -> Error<E> {
    match problem.kind {
        VerifyProblemKind::MissingRecords { expected, found } => Error::Chain {
            segment: problem.segment,
            reason: ChainDefect::MissingRecords { expected, found },
        },
        VerifyProblemKind::Corrupt | VerifyProblemKind::Header => Error::Corrupt {
            segment: problem.segment,
            offset: problem.offset,
            reason: Corruption::SyncedDataDamaged {
                next_valid_offset: problem.offset,
            },
        },
    }
}

/// A lending iterator over `(lsn, payload)`: payloads borrow the log's
/// buffer, so call [`next_record`](WalIter::next_record) in a `while let` loop.
#[derive(Debug)]
pub struct WalIter<'w, S: SegmentStore, B, const MAX_SEGMENTS: usize> {
    wal: &'w mut Wal<S, B, MAX_SEGMENTS>,
    next: Lsn,
    /// Segment index and offset of `next`, once found.
    position: Option<(usize, u64)>,
    /// Where the last checked walk stopped in `position`'s segment
    /// ([`RecordPosition::checked_end`]): the records up to it are read
    /// without walking again.
    checked_end: u64,
    failed: bool,
}

impl<S: SegmentStore, B: AsMut<[u8]> + AsRef<[u8]>, const MAX_SEGMENTS: usize>
    WalIter<'_, S, B, MAX_SEGMENTS>
{
    /// The next record, or `None` at the end of the log (as of this call)
    /// or after an error.
    // Inline on hosts: the item then reaches the caller's loop in registers
    // (returned through memory, each wrapper re-laid the 40-byte item, and
    // the loads of what was just stored stalled: about 15 ns a record).
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn next_record(&mut self) -> Option<WalItem<'_, S::Error>> {
        if self.failed || self.next.0 >= self.wal.next_lsn {
            return None;
        }
        match self.step() {
            Ok((index, offset)) => {
                let lsn = self.next;
                // A record the last read checked ahead comes straight from
                // the cursor's window, without finding the segment's device
                // (on hosts: bare metal checks nothing ahead).
                let sequence = self.wal.segments[index].header.sequence;
                if crate::reader::CHECK_AHEAD
                    && self.wal.cursor_sequence == Some(sequence)
                    && let Some(checked) = self.wal.cursor.take_checked(offset)
                {
                    let record = self.wal.cursor.checked_record(offset, checked);
                    self.position = Some((index, record.next_offset));
                    self.next = Lsn(lsn.0 + 1);
                    return Some(Ok((lsn, record.payload)));
                }
                let (device, cursor) = match self.wal.device_and_cursor(index) {
                    Ok(pair) => pair,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                };
                match cursor.read_record(device, offset, ReadHint::Sequential) {
                    Ok(record) => {
                        self.position = Some((index, record.next_offset));
                        self.next = Lsn(lsn.0 + 1);
                        Some(Ok((lsn, record.payload)))
                    }
                    Err(e) => {
                        self.failed = true;
                        Some(Err(e))
                    }
                }
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    /// Segment index and offset of the record `self.next`.
    fn step(&mut self) -> Result<(usize, u64), Error<S::Error>> {
        let lsn = self.next.0;
        let in_segment = self.position.filter(|&(index, _)| {
            let segment_end = self.wal.segments.get(index + 1).map(|n| n.header.base_lsn);
            segment_end.is_none_or(|end| lsn < end)
        });
        let (index, ordinal, from) = match in_segment {
            Some((index, offset)) if !self.wal.holes_possible || offset < self.checked_end => {
                return Ok((index, offset));
            }
            Some((index, offset)) => {
                // On flash a torn record or an unfinished batch can sit
                // between records: only the checked walk knows where the
                // next one is. It goes on from the record before, so an
                // iteration walks each segment once.
                let ordinal = lsn - self.wal.segments[index].header.base_lsn;
                (index, ordinal, Some(WalkFrom { offset, ordinal }))
            }
            None => {
                // The first step, or past the segment's last record: the
                // segment that holds `lsn`, which need not be the next one
                // (recovery can leave a segment with no records, when it
                // starts a new segment at the same LSN).
                let (index, ordinal) = self.wal.ordinal_of(lsn)?;
                (index, ordinal, None)
            }
        };
        let found = self.wal.locate(index, ordinal, from)?;
        self.checked_end = found.checked_end;
        Ok((index, found.offset))
    }
}

#[cfg(test)]
// Host-only tests: offsets into small in-memory images fit any usize.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::test_device::MemStore;

    type TestWal = Wal<MemStore, [u8; 8192], 64>;

    fn config() -> WalConfig {
        WalConfig {
            segment_size_bytes: 4096,
            durability: Durability::Manual,
            ..WalConfig::default()
        }
    }

    fn open(store: MemStore) -> TestWal {
        Wal::open(store, config(), [0u8; 8192]).unwrap()
    }

    fn payload(lsn: u64) -> Vec<u8> {
        let len = usize::try_from(lsn % 97).unwrap();
        (0..len)
            .map(|i| u8::try_from((lsn as usize + i) % 251).unwrap())
            .collect()
    }

    /// Appends records up to `last` (inclusive), synced.
    fn fill<B: AsMut<[u8]> + AsRef<[u8]>>(wal: &mut Wal<MemStore, B, 64>, last: u64) {
        while wal.next_lsn().0 <= last {
            let lsn = wal.next_lsn().0;
            assert_eq!(wal.append(&payload(lsn)).unwrap(), Lsn(lsn));
        }
        wal.sync().unwrap();
    }

    /// Every record of the log reads back by LSN, in order.
    fn check_reads<B: AsMut<[u8]> + AsRef<[u8]>>(wal: &mut Wal<MemStore, B, 64>) {
        let (first, next) = (wal.first_lsn().0, wal.next_lsn().0);
        for lsn in first..next {
            assert_eq!(
                &*wal.read(Lsn(lsn)).unwrap(),
                &payload(lsn)[..],
                "lsn {lsn}"
            );
        }
    }

    /// Iteration gives every record of the log, in order, and ends there.
    fn check_iteration<B: AsMut<[u8]> + AsRef<[u8]>>(wal: &mut Wal<MemStore, B, 64>) {
        let (first, next) = (wal.first_lsn().0, wal.next_lsn().0);
        let mut iter = wal.iter();
        let mut expected = first;
        while let Some(item) = iter.next_record() {
            let (lsn, data) = item.unwrap();
            assert_eq!((lsn.0, &*data), (expected, &payload(expected)[..]));
            expected += 1;
        }
        assert_eq!(expected, next, "iteration ended at the log's end");
    }

    fn check_all(wal: &mut TestWal) {
        check_reads(wal);
        check_iteration(wal);
    }

    #[test]
    fn a_checked_run_gives_out_its_next_record_and_again_the_one_just_given() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 20);
        let start = u64::from(wal.segments()[0].header.records_start());
        let (device, cursor) = wal.device_and_cursor(0).unwrap();
        // A sequential read checks the rest of the window with its record.
        let second = cursor
            .read_record(device, start, ReadHint::Sequential)
            .unwrap()
            .next_offset;
        let payload_at = |cursor: &mut SegmentCursor<[u8; 8192]>, offset: u64| {
            let checked = cursor.take_checked(offset)?;
            let record = cursor.checked_record(offset, checked);
            Some((record.payload.to_vec(), record.next_offset))
        };
        // The next record of the run, then the same one again (a walk that
        // found it, then the read of it), then the one after.
        let (first_take, third) = payload_at(cursor, second).expect("the run's next record");
        assert_eq!(first_take, payload(2));
        let again = payload_at(cursor, second).expect("the record just given out");
        assert_eq!(again, (payload(2), third));
        let (after, _) = payload_at(cursor, third).expect("the run goes on after it");
        assert_eq!(after, payload(3));
        // An offset that is neither is not taken, and forgets the run.
        assert!(payload_at(cursor, start).is_none());
        assert!(payload_at(cursor, third).is_none(), "the run is forgotten");
        // The checked walk's step agrees with a full check.
        let (checked_next, _) = cursor.check_record(device, second).unwrap();
        assert_eq!(checked_next, third);
    }

    #[test]
    fn lsns_are_dense_across_rotations_and_reopens() {
        let mut wal = open(MemStore::default());
        assert_eq!(wal.next_lsn(), Lsn(1));
        fill(&mut wal, 300);
        assert!(wal.segment_count() >= 4, "rotated: {}", wal.segment_count());
        check_all(&mut wal);
        // Clean close: reopened from the marker.
        let store = wal.close().unwrap();
        let mut wal = open(store);
        assert_eq!(
            (wal.next_lsn(), wal.tail_state()),
            (Lsn(301), WalTailState::Clean)
        );
        fill(&mut wal, 400);
        check_all(&mut wal);
        // Crash (no close): reopened by scanning.
        let store = wal.store_mut().clone();
        drop(wal);
        let mut wal = open(store);
        assert_eq!(wal.next_lsn(), Lsn(401));
        check_all(&mut wal);
    }

    #[test]
    fn iter_from_seeks_into_any_segment() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 200);
        for start in [1u64, 2, 57, 150, 200, 201] {
            let mut iter = wal.iter_from(Lsn(start)).unwrap();
            let mut expected = start;
            while let Some(item) = iter.next_record() {
                assert_eq!(item.unwrap().0, Lsn(expected));
                expected += 1;
            }
            assert_eq!(expected, 201);
        }
        assert!(matches!(
            wal.iter_from(Lsn(202)),
            Err(Error::LsnOutOfRange { .. })
        ));
    }

    #[test]
    fn checkpoint_removes_whole_segments_and_lsns_survive_reopen() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 300);
        let before = wal.segment_count();
        let removed = wal.checkpoint(Lsn(150)).unwrap();
        assert!(removed > 0 && wal.segment_count() == before - removed);
        assert!(
            wal.first_lsn().0 <= 151,
            "nothing above the checkpoint is gone"
        );
        assert!(matches!(wal.read(Lsn(1)), Err(Error::LsnOutOfRange { .. })));
        check_all(&mut wal);
        // Everything but the active segment.
        wal.checkpoint(Lsn(300)).unwrap();
        assert_eq!(wal.segment_count(), 1);
        let first = wal.first_lsn();
        let store = wal.store_mut().clone();
        drop(wal);
        let mut wal = open(store);
        assert_eq!((wal.first_lsn(), wal.next_lsn()), (first, Lsn(301)));
        assert_eq!(wal.append(b"next").unwrap(), Lsn(301));
        assert!(matches!(
            wal.checkpoint(Lsn(302)),
            Err(Error::LsnOutOfRange { .. })
        ));
    }

    #[test]
    fn truncate_after_cuts_atomically_and_lsns_continue_from_the_cut() {
        for cut in [0u64, 1, 10, 100, 299, 300] {
            let mut wal = open(MemStore::default());
            fill(&mut wal, 300);
            wal.truncate_after(Lsn(cut)).unwrap();
            assert_eq!(wal.next_lsn(), Lsn(cut + 1), "cut {cut}");
            check_all(&mut wal);
            let store = wal.store_mut().clone();
            drop(wal);
            let mut wal = open(store);
            assert_eq!(wal.next_lsn(), Lsn(cut + 1), "cut {cut} after reopen");
            fill(&mut wal, cut + 50);
            check_all(&mut wal);
        }
    }

    #[test]
    fn a_truncation_interrupted_after_its_cut_finishes_at_open() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 300);
        let before = wal.store_mut().clone();
        wal.truncate_after(Lsn(42)).unwrap();
        // The crash: the new segment exists, the cut-off ones were not yet
        // deleted.
        let mut crashed = wal.store_mut().clone();
        for (id, device) in before.segments {
            crashed.segments.entry(id).or_insert(device);
        }
        let mut wal = open(crashed);
        assert_eq!(wal.next_lsn(), Lsn(43));
        check_all(&mut wal);
        assert!(
            wal.store_mut().segments.len() == wal.segment_count(),
            "cut-off segments deleted"
        );
    }

    #[test]
    fn a_missing_middle_segment_is_a_gap() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 300);
        let mut store = wal.store_mut().clone();
        let middle = *store.segments.keys().nth(2).unwrap();
        store.segments.remove(&middle);
        let error =
            Wal::<MemStore, [u8; 8192], 64>::open(store, config(), [0u8; 8192]).unwrap_err();
        assert!(
            matches!(error, Error::Chain { reason: ChainDefect::MissingPredecessor { missing }, .. } if missing == middle)
        );
    }

    #[test]
    fn an_allocation_cut_short_is_discarded_at_open() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 100);
        let mut store = wal.store_mut().clone();
        let newest = *store.segments.keys().last().unwrap();
        store
            .segments
            .insert(newest + 1, crate::test_device::MemDevice::file_like(4096));
        let mut wal = open(store);
        assert_eq!(wal.next_lsn(), Lsn(101));
        assert!(!wal.store_mut().segments.contains_key(&(newest + 1)));
    }

    #[test]
    fn bad_input_changes_nothing() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 10);
        assert!(matches!(
            wal.append(&[0u8; 5000]),
            Err(Error::RecordTooLarge { .. })
        ));
        assert!(matches!(
            wal.truncate_after(Lsn(11)),
            Err(Error::LsnOutOfRange { .. })
        ));
        assert!(matches!(
            wal.read(Lsn(11)),
            Err(Error::LsnOutOfRange { .. })
        ));
        assert!(matches!(wal.read(Lsn(0)), Err(Error::LsnOutOfRange { .. })));
        assert_eq!(wal.next_lsn(), Lsn(11));
        check_all(&mut wal);
    }

    /// The checksum path (CPU instructions or tables) never shows on disk:
    /// the same history written through each gives the same bytes, for
    /// both kinds, and each path reads the other's log.
    #[cfg(feature = "hw-crc")]
    #[test]
    fn both_checksum_paths_write_identical_segments() {
        for kind in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
            let write = |accelerated: bool| {
                crate::checksum::use_accelerated(accelerated);
                let mut wal: TestWal = Wal::open(
                    MemStore::default(),
                    WalConfig {
                        checksum_kind: kind,
                        ..config()
                    },
                    [0u8; 8192],
                )
                .unwrap();
                fill(&mut wal, 150);
                wal.close().unwrap()
            };
            let accelerated = write(true);
            let tables = write(false);
            crate::checksum::use_accelerated(true);
            assert!(accelerated.segments.len() > 2, "several segments");
            for (id, device) in &accelerated.segments {
                assert_eq!(
                    device.bytes, tables.segments[id].bytes,
                    "{kind:?} segment {id}"
                );
            }
            crate::checksum::use_accelerated(false);
            let mut reopened = open(accelerated);
            crate::checksum::use_accelerated(true);
            assert!(reopened.verify().unwrap().is_clean());
        }
    }

    #[test]
    fn a_failed_write_poisons_until_reopen() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 10);
        let active = *wal.store_mut().segments.keys().last().unwrap();
        wal.store_mut()
            .segments
            .get_mut(&active)
            .unwrap()
            .writes_before_failure = Some(0);
        assert!(matches!(wal.append(b"x"), Err(Error::Device(_))));
        assert!(matches!(wal.append(b"y"), Err(Error::Poisoned)));
        assert!(matches!(wal.sync(), Err(Error::Poisoned)));
        let mut store = wal.store_mut().clone();
        store
            .segments
            .get_mut(&active)
            .unwrap()
            .writes_before_failure = None;
        let mut wal = open(store);
        assert_eq!(
            wal.append(b"z").unwrap(),
            Lsn(11),
            "no LSN skipped or reused"
        );
    }

    #[test]
    fn full_verification_agrees_with_the_log() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 200);
        let report = wal.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records, 200);
        // Damage a sealed segment's record.
        let mut store = wal.store_mut().clone();
        let sealed = *store.segments.keys().nth(1).unwrap();
        store.segments.get_mut(&sealed).unwrap().bytes[200] ^= 1;
        let mut wal = open(store.clone());
        let report = wal.verify().unwrap();
        assert_eq!(report.problem_count, 1);
        assert_eq!(report.problems[0].segment, sealed);
        let full = WalConfig {
            verification: OpenVerification::Full,
            ..config()
        };
        assert!(Wal::<MemStore, [u8; 8192], 64>::open(store, full, [0u8; 8192]).is_err());
    }

    #[test]
    fn read_only_open_reads_everything_and_writes_nothing() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 150);
        wal.append(b"unsynced tail").unwrap();
        let store = wal.store_mut().clone();
        let before = store.segments.clone();
        let read_only = WalConfig {
            read_only: true,
            ..config()
        };
        let mut reader =
            Wal::<MemStore, [u8; 8192], 64>::open(store, read_only, [0u8; 8192]).unwrap();
        assert_eq!(reader.next_lsn(), Lsn(152));
        assert!(matches!(reader.append(b"x"), Err(Error::ReadOnly)));
        assert!(matches!(reader.checkpoint(Lsn(10)), Err(Error::ReadOnly)));
        assert!(matches!(
            reader.truncate_after(Lsn(10)),
            Err(Error::ReadOnly)
        ));
        for lsn in 1..=150 {
            assert_eq!(&*reader.read(Lsn(lsn)).unwrap(), &payload(lsn)[..]);
        }
        let after = &reader.store_mut().segments;
        assert_eq!(after.len(), before.len());
        for (id, device) in after {
            assert_eq!(device.bytes, before[id].bytes, "segment {id} untouched");
        }
    }

    #[test]
    fn point_in_time_recovery_cuts_before_damage_in_a_sealed_segment() {
        let mut wal = open(MemStore::default());
        fill(&mut wal, 200);
        let mut store = wal.store_mut().clone();
        let sealed = *store.segments.keys().nth(1).unwrap();
        let base = wal.segments()[1].header.base_lsn;
        store.segments.get_mut(&sealed).unwrap().bytes[200] ^= 1;
        let config = WalConfig {
            verification: OpenVerification::Full,
            recovery_mode: RecoveryMode::TruncateAtCorruption,
            ..config()
        };
        let mut wal = Wal::<MemStore, [u8; 8192], 64>::open(store, config, [0u8; 8192]).unwrap();
        let WalTailState::TruncatedAt {
            segment,
            records_discarded,
            ..
        } = wal.tail_state()
        else {
            panic!("expected a cut, got {:?}", wal.tail_state());
        };
        let cut = wal.next_lsn().0;
        assert_eq!(segment, sealed);
        assert!(cut > base && cut < 200, "cut at {cut}");
        assert_eq!(records_discarded, 201 - cut);
        check_all(&mut wal);
        assert!(wal.verify().unwrap().is_clean());
    }

    #[test]
    fn the_store_hears_of_the_next_segment_once_the_active_one_is_three_quarters_full() {
        let mut wal = open(MemStore::default());
        let mut hinted_before_rotation = Vec::new();
        while wal.segment_count() < 4 {
            let segments = wal.segment_count();
            let lsn = wal.next_lsn().0;
            wal.append(&payload(lsn)).unwrap();
            if wal.segment_count() > segments {
                let new_sequence = wal.segments().last().unwrap().header.sequence;
                hinted_before_rotation.push(
                    wal.store_mut()
                        .prepare_hints
                        .contains(&(new_sequence, 4096)),
                );
            } else if wal.active_written_bytes() < 3 * 4096 / 4 {
                let active = wal.segments().last().unwrap().header.sequence;
                assert!(
                    !wal.store_mut().prepare_hints.contains(&(active + 1, 4096)),
                    "hinted too early"
                );
            }
        }
        assert_eq!(hinted_before_rotation, [true, true, true]);
        let hints = &wal.store_mut().prepare_hints;
        let mut sequences: Vec<u64> = hints.iter().map(|h| h.0).collect();
        sequences.dedup();
        assert_eq!(
            sequences.len(),
            hints.len(),
            "one hint per segment: {hints:?}"
        );
    }

    /// A flash log of 16 KiB segments read through the smallest buffer, so
    /// that walks reach the device.
    type FlashWal = Wal<MemStore, [u8; crate::SCAN_SCRATCH_MIN_BYTES], 64>;

    fn open_flash(store: MemStore) -> FlashWal {
        let config = WalConfig {
            segment_size_bytes: 16 * 1024,
            ..config()
        };
        Wal::open(store, config, [0u8; crate::SCAN_SCRATCH_MIN_BYTES]).unwrap()
    }

    /// Programs zeros (NOR: bits cleared, as a torn write leaves them) over
    /// `len` bytes at `offset` of the active segment, after closing.
    fn tear(wal: FlashWal, offset: u64, len: usize) -> MemStore {
        let mut store = wal.close().unwrap();
        let active = store.segments.values_mut().last().unwrap();
        let at = usize::try_from(offset).unwrap();
        active.bytes[at..at + len].fill(0);
        store
    }

    #[test]
    fn flash_iteration_steps_over_a_segment_with_no_records() {
        let mut wal = open_flash(MemStore {
            flash: true,
            ..MemStore::default()
        });
        fill(&mut wal, 50);
        // A cut leaves an active segment with no records (its base LSN 46),
        // and torn bytes over all its room: the next open seals it empty
        // and starts a segment at the same LSN.
        wal.truncate_after(Lsn(45)).unwrap();
        let header = wal.segments().last().unwrap().header;
        let start = u64::from(header.records_start());
        let room = (header.segment_size_bytes - header.records_start()) as usize;
        let mut wal = open_flash(tear(wal, start, room));
        fill(&mut wal, 120);
        let segments = wal.segments();
        let empty = segments
            .windows(2)
            .any(|pair| pair[0].header.base_lsn == pair[1].header.base_lsn);
        assert!(empty, "a segment with no records: {segments:?}");
        assert_eq!((wal.first_lsn(), wal.next_lsn()), (Lsn(1), Lsn(121)));
        // Iteration goes past the empty segment.
        check_iteration(&mut wal);
        check_reads(&mut wal);
    }

    #[test]
    fn flash_iteration_follows_holes_and_walks_each_segment_once() {
        let mut wal = open_flash(MemStore {
            flash: true,
            ..MemStore::default()
        });
        fill(&mut wal, 40);
        // A batch whose last record is damaged is dropped whole at open;
        // the log resumes after the torn bytes it cannot erase.
        let before_batch = wal.active_written_bytes();
        let batch: Vec<Vec<u8>> = (41..=43).map(|lsn| std::vec![0xA5; 40 + lsn]).collect();
        let pieces: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        assert_eq!(wal.append_batch(&pieces).unwrap(), Lsn(41)..Lsn(44));
        wal.sync().unwrap();
        let align = u64::from(wal.segments().last().unwrap().header.record_align_bytes());
        let first_two: u64 = pieces[..2]
            .iter()
            .map(|p| crate::format::record_extent_bytes(p.len() as u32, align as u32))
            .sum();
        let last_payload = before_batch + first_two + crate::format::RECORD_HEADER_LEN as u64;
        let mut wal = open_flash(tear(wal, last_payload, 8));
        assert_eq!(wal.next_lsn(), Lsn(41), "the unfinished batch is dropped");
        fill(&mut wal, 300);
        // A torn single record: a word of zeros after the last one.
        let end = wal.active_written_bytes();
        let mut wal = open_flash(tear(wal, end, 4));
        assert_eq!(wal.next_lsn(), Lsn(301));
        fill(&mut wal, 700);
        let mut wal = open_flash(wal.close().unwrap());
        assert!(wal.segment_count() >= 3, "the records span segments");

        assert_eq!(
            (wal.first_lsn(), wal.next_lsn()),
            (Lsn(1), Lsn(701)),
            "every record, none of the dropped batch"
        );
        let store = wal.store_mut();
        store.segments.values_mut().for_each(|d| d.bytes_read = 0);
        check_iteration(&mut wal);
        // Each record is read by the checked walk and by the read, through
        // windows that overlap: a few times the segments' bytes, not a walk
        // from the segment's start for every record.
        let store = wal.store_mut();
        let read: u64 = store.segments.values().map(|d| d.bytes_read).sum();
        let stored: u64 = store.segments.values().map(|d| d.bytes.len() as u64).sum();
        assert!(read <= 3 * stored, "{read} bytes read for {stored} stored");
        // Reads by LSN in order walk on from the read before (without
        // `alloc`) or look the record up in the offset index: again a few
        // times the segments' bytes.
        let store = wal.store_mut();
        store.segments.values_mut().for_each(|d| d.bytes_read = 0);
        check_reads(&mut wal);
        let store = wal.store_mut();
        let read: u64 = store.segments.values().map(|d| d.bytes_read).sum();
        assert!(read <= 3 * stored, "{read} bytes read for {stored} stored");
        // And out of order: forward in jumps (the walk goes on from the
        // read before), backwards (it starts again at the segment), and the
        // records next to the holes.
        let forward = (1..=700).step_by(13);
        let backward = (1..=700).rev().step_by(13);
        for lsn in forward.chain(backward).chain([41, 43, 44, 300, 301, 700]) {
            assert_eq!(
                &*wal.read(Lsn(lsn)).unwrap(),
                &payload(lsn)[..],
                "lsn {lsn}"
            );
        }
    }
}
