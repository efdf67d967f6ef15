//! One segment: a writer that appends records and a reader that reads them.
//!
//! The writer is the only code that writes records. It keeps two offsets,
//! with `records_start <= synced_offset <= written_offset <= segment_size`:
//! the end of everything appended, and the end of everything made durable.
//! Readers are given the synced offset (the *flushed offset*) and never read
//! past it.

use core::ops::{Deref, Range};

use crate::checksum::ChecksumKind;
use crate::device::{BlockDevice, Error as DeviceError, Geometry};
use crate::error::{ConfigError, Corruption, Error};
use crate::format::{
    self, FLAG_BATCH_CONTINUES, FLAG_RESUMES_AFTER_HOLE, RECORD_ALIGN_MAX_BYTES,
    RECORD_ALIGN_MIN_BYTES, RECORD_HEADER_LEN, RecordDefect, RecordHeader, SEGMENT_HEADER_LEN,
    SegmentHeader, align_up, record_extent_bytes,
};
use crate::read_plan::{self, ReadHint, RecordPlan, Window};
use crate::recovery::{self, RecoveryMode, ScanReport, TailClass, TailState};

/// Zeros for padding and for wiping torn tails, shared by reference so no
/// write needs a buffer of its own.
static ZEROS: [u8; 512] = [0; 512];

/// Records an `append_batch` sends to the device in one write.
pub const BATCH_RECORDS_PER_WRITE: usize = 32;

/// Most pieces one record contributes to a write: header, payload, padding
/// (at most `RECORD_ALIGN_MAX_BYTES / ZEROS.len()` pieces of zeros).
const PIECES_PER_RECORD_MAX: usize = 2 + RECORD_ALIGN_MAX_BYTES as usize / 512;

/// How a segment is laid out; checked against the device by
/// [`SegmentWriter::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentConfig {
    /// Size of the segment, header included. At most `u32::MAX`; on a flash
    /// device a whole number of erase blocks.
    pub segment_size_bytes: u32,
    /// Bytes reserved for the application after the header.
    pub user_area_len_bytes: u32,
    /// The checksum the segment carries.
    pub checksum_kind: ChecksumKind,
    /// Largest payload; `None` allows anything that fits in the segment.
    pub record_len_max: Option<u32>,
}

impl SegmentConfig {
    /// A segment of `segment_size_bytes` with CRC32C, no user area and no
    /// payload limit beyond the segment's size.
    pub const fn new(segment_size_bytes: u32) -> Self {
        SegmentConfig {
            segment_size_bytes,
            user_area_len_bytes: 0,
            checksum_kind: ChecksumKind::Crc32c,
            record_len_max: None,
        }
    }

    /// The header this configuration gives on a device of `geometry`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the layout cannot work on the device.
    pub fn header(
        &self,
        geometry: &Geometry,
        identity: SegmentIdentity,
    ) -> Result<SegmentHeader, ConfigError> {
        if !geometry.is_valid() {
            return Err(ConfigError::Geometry);
        }
        let align = geometry.write_size_bytes.max(RECORD_ALIGN_MIN_BYTES);
        if align > RECORD_ALIGN_MAX_BYTES {
            return Err(ConfigError::Geometry);
        }
        if !self.segment_size_bytes.is_multiple_of(align) {
            return Err(ConfigError::SegmentSize);
        }
        let records_start = align_up(
            SEGMENT_HEADER_LEN as u64 + u64::from(self.user_area_len_bytes),
            u64::from(align),
        )
        .ok_or(ConfigError::UserArea)?;
        let room = u64::from(self.segment_size_bytes)
            .checked_sub(records_start + RECORD_HEADER_LEN as u64)
            .ok_or(ConfigError::UserArea)?;
        let room = u32::try_from(room).map_err(|_| ConfigError::SegmentSize)?;
        let record_len_max = match self.record_len_max {
            Some(max) if max > room => return Err(ConfigError::RecordLenMax),
            Some(max) => max,
            None => room,
        };
        let header = SegmentHeader {
            checksum_kind: self.checksum_kind,
            record_align_log2: u8::try_from(align.trailing_zeros()).unwrap_or(u8::MAX),
            user_area_len_bytes: self.user_area_len_bytes,
            sequence: identity.sequence,
            base_lsn: identity.base_lsn,
            salt: identity.salt,
            segment_size_bytes: self.segment_size_bytes,
            record_len_max,
            user_area_checksum: 0,
        };
        header.validate().map_err(|_| ConfigError::SegmentSize)?;
        Ok(header)
    }
}

/// Who a segment is: chosen by the log, recorded in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentIdentity {
    /// Segment sequence number.
    pub sequence: u64,
    /// LSN of the segment's first record.
    pub base_lsn: u64,
    /// A random value, new for every use of the space: it is what makes
    /// stale records from an earlier use fail their checksums.
    pub salt: u64,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Appended {
    /// Offset of the record in the segment: the handle to read it by.
    pub offset: u64,
    /// Payload length in bytes.
    pub len_bytes: u32,
}

/// What opening a segment for writing found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// How the records ended.
    pub tail: TailState,
    /// Valid records in the segment.
    pub record_count: u64,
    /// Offset of the last valid record.
    pub last_record_offset: Option<u64>,
}

fn check_segment_range(geometry: &Geometry, start: u64, size: u32) -> Result<(), ConfigError> {
    let end = start
        .checked_add(u64::from(size))
        .ok_or(ConfigError::SegmentRange)?;
    if end > geometry.capacity_bytes {
        return Err(ConfigError::SegmentRange);
    }
    if geometry.erase_before_write {
        let erase = u64::from(geometry.erase_size_bytes);
        if !start.is_multiple_of(erase) || !u64::from(size).is_multiple_of(erase) {
            return Err(ConfigError::SegmentRange);
        }
    } else if !start.is_multiple_of(u64::from(geometry.write_size_bytes)) {
        return Err(ConfigError::SegmentRange);
    }
    Ok(())
}

/// Reads and decodes the segment header at `start`.
///
/// # Errors
///
/// [`Error::Corrupt`] with the [`HeaderDefect`](crate::HeaderDefect) when
/// the bytes are not a usable header; [`Error::Device`] when the read fails.
pub fn read_segment_header<D: BlockDevice>(
    device: &mut D,
    start: u64,
) -> Result<SegmentHeader, Error<D::Error>> {
    let mut bytes = [0u8; SEGMENT_HEADER_LEN];
    device.read(start, &mut bytes).map_err(Error::Device)?;
    let header = SegmentHeader::decode(&bytes).map_err(|defect| Error::Corrupt {
        segment: u64::MAX,
        offset: 0,
        reason: Corruption::Header(defect),
    })?;
    let geometry = device.geometry();
    check_segment_range(&geometry, start, header.segment_size_bytes)?;
    if header.record_align_bytes() < geometry.write_size_bytes {
        return Err(Error::Config(ConfigError::Geometry));
    }
    Ok(header)
}

/// Appends records to one segment.
///
/// # Example
///
/// ```
/// # use segwal::{BlockDevice, ErrorType, Geometry, ErrorKind};
/// # struct Mem([u8; 4096]);
/// # impl ErrorType for Mem { type Error = ErrorKind; }
/// # impl BlockDevice for Mem {
/// #     fn geometry(&self) -> Geometry { Geometry::byte_addressable(4096) }
/// #     fn read(&mut self, o: u64, b: &mut [u8]) -> Result<(), ErrorKind> {
/// #         let o = o as usize; b.copy_from_slice(&self.0[o..o + b.len()]); Ok(()) }
/// #     fn write(&mut self, o: u64, p: &[&[u8]]) -> Result<(), ErrorKind> {
/// #         let mut o = o as usize;
/// #         for x in p { self.0[o..o + x.len()].copy_from_slice(x); o += x.len(); } Ok(()) }
/// #     fn erase(&mut self, _: u64, _: u64) -> Result<(), ErrorKind> { Ok(()) }
/// #     fn sync(&mut self) -> Result<(), ErrorKind> { Ok(()) }
/// # }
/// use segwal::{ReadHint, SegmentConfig, SegmentIdentity, SegmentReader, SegmentWriter};
///
/// let mut device = Mem([0; 4096]);
/// let identity = SegmentIdentity { sequence: 0, base_lsn: 1, salt: 0x5eed };
/// let mut writer = SegmentWriter::create(&mut device, 0, &SegmentConfig::new(4096), identity, &[])?;
/// let first = writer.append(b"hello")?;
/// let flushed = writer.sync()?;
///
/// let mut reader = SegmentReader::open(&mut device, 0, [0u8; 4096])?;
/// reader.set_flushed_offset(flushed);
/// let record = reader.read_record(first.offset, ReadHint::Random)?;
/// assert_eq!(&*record.payload, b"hello");
/// # Ok::<(), segwal::Error<ErrorKind>>(())
/// ```
#[derive(Debug)]
pub struct SegmentWriter<D: BlockDevice> {
    device: D,
    segment_start: u64,
    header: SegmentHeader,
    written_offset: u32,
    synced_offset: u32,
    record_count: u64,
    /// Flash only: the next record resumes after a torn tail starting here.
    hole_start: Option<u32>,
    poisoned: bool,
}

impl<D: BlockDevice> SegmentWriter<D> {
    /// Lays out a new segment at `segment_start`: erases it where the device
    /// needs it, writes the header and the user area, and syncs.
    ///
    /// Old bytes in the range are not wiped on devices that need no erase:
    /// the new salt makes any stale record fail its checksum.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the layout does not fit the device,
    /// [`Error::Device`] when a write or the sync fails.
    pub fn create(
        mut device: D,
        segment_start: u64,
        config: &SegmentConfig,
        identity: SegmentIdentity,
        user_area: &[u8],
    ) -> Result<Self, Error<D::Error>> {
        let geometry = device.geometry();
        let mut header = config.header(&geometry, identity)?;
        check_segment_range(&geometry, segment_start, config.segment_size_bytes)?;
        if user_area.len() > config.user_area_len_bytes as usize {
            return Err(Error::Config(ConfigError::UserArea));
        }
        header.user_area_checksum = user_area_checksum(&header, user_area);
        if geometry.erase_before_write {
            device
                .erase(segment_start, u64::from(config.segment_size_bytes))
                .map_err(Error::Device)?;
        }
        let records_start = header.records_start();
        let header_bytes = header.encode();
        let fill_len = records_start as usize - SEGMENT_HEADER_LEN - user_area.len();
        let mut pieces: heapless::Vec<&[u8], { 2 + RECORD_ALIGN_MAX_BYTES as usize / 512 + 2 }> =
            heapless::Vec::new();
        // Cannot overflow: header, user area, and a user-area-sized tail of zeros
        // would be too many pieces only for user areas over 64 KiB, handled below.
        let _ = pieces.push(&header_bytes);
        let _ = pieces.push(user_area);
        let mut writer = SegmentWriter {
            device,
            segment_start,
            header,
            written_offset: records_start,
            synced_offset: records_start,
            record_count: 0,
            hole_start: None,
            poisoned: false,
        };
        // The user area's unused part and the alignment padding are zeros;
        // written in bounded runs so the piece list never overflows.
        let head_len = SEGMENT_HEADER_LEN + user_area.len();
        let mut zero_from = head_len;
        let first_run = fill_len.min((pieces.capacity() - 2) * ZEROS.len());
        for chunk in zero_runs(first_run) {
            let _ = pieces.push(chunk);
        }
        zero_from += first_run;
        writer
            .device
            .write(segment_start, &pieces)
            .map_err(Error::Device)?;
        // `zero_from` is below `records_start`, a u32.
        let zero_from = u32::try_from(zero_from).unwrap_or(records_start);
        if zero_from < records_start {
            writer.write_zeros(zero_from, records_start)?;
        }
        writer.device.sync().map_err(Error::Device)?;
        Ok(writer)
    }

    /// Opens an existing segment for appending: reads its header, scans its
    /// records, makes a torn tail harmless (zeroed on devices that allow it,
    /// skipped on flash) and syncs, so that nothing written before this call
    /// is ever mistaken for acknowledged data.
    ///
    /// `scratch` is a buffer for the scan, at least
    /// [`SCAN_SCRATCH_MIN_BYTES`](crate::SCAN_SCRATCH_MIN_BYTES); 64 KiB is
    /// a good size.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for a bad header, or for damaged synced records in
    /// [`RecoveryMode::Strict`]; [`Error::Device`] when I/O fails.
    pub fn open(
        mut device: D,
        segment_start: u64,
        mode: RecoveryMode,
        scratch: &mut [u8],
    ) -> Result<(Self, Recovered), Error<D::Error>> {
        let header = read_segment_header(&mut device, segment_start)
            .map_err(|e| with_segment(e, u64::MAX))?;
        let report = recovery::scan(&mut device, segment_start, &header, scratch)?;
        let mut writer = SegmentWriter {
            device,
            segment_start,
            header,
            written_offset: report.records_end,
            synced_offset: report.records_end,
            record_count: report.record_count,
            hole_start: None,
            poisoned: false,
        };
        let tail = writer.settle_tail(&report, mode)?;
        writer.device.sync().map_err(Error::Device)?;
        let recovered = Recovered {
            tail,
            record_count: report.record_count,
            last_record_offset: report.last_record_offset.map(u64::from),
        };
        Ok((writer, recovered))
    }

    /// Applies the scan's verdict on the tail.
    fn settle_tail(
        &mut self,
        report: &ScanReport,
        mode: RecoveryMode,
    ) -> Result<TailState, Error<D::Error>> {
        let (offset, dirty_end) = match report.tail {
            TailClass::Clean => return Ok(TailState::Clean),
            TailClass::Torn { offset, dirty_end } => (offset, dirty_end),
            TailClass::Corrupt {
                offset,
                dirty_end,
                next_valid_offset,
            } => match mode {
                RecoveryMode::Strict => {
                    return Err(recovery::corrupt_error(
                        &self.header,
                        offset,
                        next_valid_offset,
                    ));
                }
                RecoveryMode::TruncateAtCorruption => (offset, dirty_end),
            },
        };
        if self.device.geometry().erase_before_write {
            // Torn flash words cannot be reprogrammed: resume past them and
            // say so in the next record, which the scan then follows.
            let resume = align_up(
                u64::from(dirty_end),
                u64::from(self.header.record_align_bytes()),
            )
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(self.header.segment_size_bytes)
            .min(self.header.segment_size_bytes);
            self.hole_start = Some(offset);
            self.written_offset = resume;
        } else {
            self.write_zeros(offset, dirty_end)?;
        }
        Ok(TailState::TruncatedAt {
            offset: u64::from(offset),
            bytes_discarded: u64::from(dirty_end - offset),
        })
    }

    /// Overwrites `[from, to)` with zeros, in bounded writes.
    fn write_zeros(&mut self, from: u32, to: u32) -> Result<(), Error<D::Error>> {
        const RUN_BYTES: usize = 128 * 512;
        let write_size = self.device.geometry().write_size_bytes;
        let end = align_up(u64::from(to), u64::from(write_size)).unwrap_or(u64::from(to));
        let mut position = u64::from(from);
        let max_steps = u64::from(self.header.segment_size_bytes) / RUN_BYTES as u64 + 2;
        for _ in 0..max_steps {
            if position >= end {
                break;
            }
            let run = usize::try_from((end - position).min(RUN_BYTES as u64)).unwrap_or(RUN_BYTES);
            let mut pieces: heapless::Vec<&[u8], 128> = heapless::Vec::new();
            for chunk in zero_runs(run) {
                let _ = pieces.push(chunk);
            }
            self.device
                .write(self.segment_start + position, &pieces)
                .map_err(Error::Device)?;
            position += run as u64;
        }
        Ok(())
    }

    /// Appends one record. It is durable once [`sync`](Self::sync) returns.
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`] or [`Error::Full`] (nothing written);
    /// [`Error::Poisoned`] after an earlier failure; [`Error::Device`] when
    /// the write fails, which poisons the writer.
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended, Error<D::Error>> {
        let range = self.append_batch(&[payload])?;
        let len_bytes = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        Ok(Appended {
            offset: range.start,
            len_bytes,
        })
    }

    /// Appends several records as one atomic batch: after a crash either all
    /// of them are there or none. Returns the offsets `[first, end)` they
    /// occupy. An empty batch writes nothing.
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append); a batch that does not fit writes
    /// nothing.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Range<u64>, Error<D::Error>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let align = self.header.record_align_bytes();
        let mut needed_bytes: u64 = 0;
        for payload in payloads {
            let len = u32::try_from(payload.len())
                .ok()
                .filter(|&len| len <= self.header.record_len_max);
            let Some(len) = len else {
                return Err(Error::RecordTooLarge {
                    len_bytes: payload.len() as u64,
                    max_bytes: u64::from(self.header.record_len_max),
                });
            };
            needed_bytes += record_extent_bytes(len, align);
        }
        let available_bytes = self.remaining_bytes();
        if needed_bytes > available_bytes {
            return Err(Error::Full {
                needed_bytes,
                available_bytes,
            });
        }
        let first = u64::from(self.written_offset);
        let total = payloads.len();
        for (chunk_index, chunk) in payloads.chunks(BATCH_RECORDS_PER_WRITE).enumerate() {
            let last_chunk = (chunk_index + 1) * BATCH_RECORDS_PER_WRITE >= total;
            self.write_chunk(chunk, last_chunk)?;
        }
        Ok(first..u64::from(self.written_offset))
    }

    /// Writes up to `BATCH_RECORDS_PER_WRITE` records in one device write.
    fn write_chunk(&mut self, chunk: &[&[u8]], ends_batch: bool) -> Result<(), Error<D::Error>> {
        let align = self.header.record_align_bytes();
        let mut headers = [[0u8; RECORD_HEADER_LEN]; BATCH_RECORDS_PER_WRITE];
        let mut pads = [0usize; BATCH_RECORDS_PER_WRITE];
        let mut offset = self.written_offset;
        for (index, payload) in chunk.iter().enumerate() {
            let is_last = ends_batch && index + 1 == chunk.len();
            let mut flags = if is_last { 0 } else { FLAG_BATCH_CONTINUES };
            let mut synced = self.synced_offset;
            if let Some(hole_start) = self.hole_start.filter(|_| index == 0) {
                flags |= FLAG_RESUMES_AFTER_HOLE;
                synced = hole_start;
            }
            headers[index] = RecordHeader::encode(&self.header, offset, synced, flags, payload);
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            let extent = record_extent_bytes(len, align);
            pads[index] = usize::try_from(extent).unwrap_or(0) - RECORD_HEADER_LEN - payload.len();
            offset += u32::try_from(extent).unwrap_or(u32::MAX);
        }
        let mut pieces: heapless::Vec<&[u8], { BATCH_RECORDS_PER_WRITE * PIECES_PER_RECORD_MAX }> =
            heapless::Vec::new();
        for (index, payload) in chunk.iter().enumerate() {
            let _ = pieces.push(&headers[index]);
            let _ = pieces.push(payload);
            for zeros in zero_runs(pads[index]) {
                let _ = pieces.push(zeros);
            }
        }
        let at = self.segment_start + u64::from(self.written_offset);
        if let Err(e) = self.device.write(at, &pieces) {
            self.poisoned = true;
            return Err(Error::Device(e));
        }
        assert!(offset <= self.header.segment_size_bytes, "room was checked");
        self.written_offset = offset;
        self.record_count += chunk.len() as u64;
        self.hole_start = None;
        Ok(())
    }

    /// Makes every appended record durable and returns the new flushed
    /// offset: the end of the records a reader may read.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after an earlier failure; [`Error::Device`] when
    /// the sync fails, which poisons the writer (the pages it covered may be
    /// lost even if a retry reports success).
    pub fn sync(&mut self) -> Result<u64, Error<D::Error>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if let Err(e) = self.device.sync() {
            self.poisoned = true;
            return Err(Error::Device(e));
        }
        assert!(self.synced_offset <= self.written_offset);
        self.synced_offset = self.written_offset;
        Ok(u64::from(self.synced_offset))
    }

    /// End of everything appended.
    pub fn written_offset(&self) -> u64 {
        u64::from(self.written_offset)
    }

    /// End of everything durable: what readers may read up to.
    pub fn flushed_offset(&self) -> u64 {
        u64::from(self.synced_offset)
    }

    /// Records in the segment.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Bytes left for records (headers and padding included).
    pub fn remaining_bytes(&self) -> u64 {
        u64::from(self.header.segment_size_bytes - self.written_offset)
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// `true` once a write or sync has failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The device, for the few things the log itself does not do.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// Gives the device back.
    pub fn into_device(self) -> D {
        self.device
    }
}

/// `len` zero bytes as a sequence of borrowed pieces of [`ZEROS`].
fn zero_runs(len: usize) -> impl Iterator<Item = &'static [u8]> {
    let full = len / ZEROS.len();
    let rest = len % ZEROS.len();
    core::iter::repeat_n(&ZEROS[..], full).chain((rest > 0).then(|| &ZEROS[..rest]))
}

fn user_area_checksum(header: &SegmentHeader, user_area: &[u8]) -> u32 {
    let mut hasher = header.checksum_kind.hasher();
    hasher.update(user_area);
    // The unused part of the area is written as zeros.
    let unused = header.user_area_len_bytes as usize - user_area.len();
    for zeros in zero_runs(unused) {
        hasher.update(zeros);
    }
    hasher.finalize()
}

fn with_segment<E: DeviceError>(error: Error<E>, segment: u64) -> Error<E> {
    match error {
        Error::Corrupt { offset, reason, .. } => Error::Corrupt {
            segment,
            offset,
            reason,
        },
        other => other,
    }
}

/// A payload: borrowed from the reader's buffer when it fits (zero-copy),
/// owned when it does not (with the `alloc` feature).
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Points into the reader's buffer.
    Borrowed(&'a [u8]),
    /// Copied out because the record is larger than the reader's buffer.
    #[cfg(feature = "alloc")]
    Owned(alloc::vec::Vec<u8>),
}

impl Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(bytes) => bytes,
            #[cfg(feature = "alloc")]
            Payload::Owned(bytes) => bytes,
        }
    }
}

/// A record read from a segment.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the record.
    pub offset: u64,
    /// Offset of the record after it (or the end of the records).
    pub next_offset: u64,
    /// The payload, checksum verified.
    pub payload: Payload<'a>,
}

/// Reads records of one segment through a buffer it owns.
///
/// The buffer decides the read sizes: at least
/// [`RANDOM_READ_BYTES`](crate::RANDOM_READ_BYTES) (header + 2 KiB), and
/// [`SEQUENTIAL_WINDOW_BYTES`](crate::SEQUENTIAL_WINDOW_BYTES) (64 KiB) for
/// full read-ahead. Records that fit come back borrowed from it.
#[derive(Debug)]
pub struct SegmentReader<D, B> {
    device: D,
    segment_start: u64,
    header: SegmentHeader,
    erased_byte: u8,
    buffer: B,
    window: Window,
    flushed_offset: u64,
}

impl<D: BlockDevice, B: AsMut<[u8]> + AsRef<[u8]>> SegmentReader<D, B> {
    /// Opens the segment at `segment_start` for reading. Nothing is readable
    /// until [`set_flushed_offset`](Self::set_flushed_offset) says how far.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a buffer under `RANDOM_READ_BYTES`;
    /// [`Error::Corrupt`] for a bad header; [`Error::Device`].
    pub fn open(mut device: D, segment_start: u64, buffer: B) -> Result<Self, Error<D::Error>> {
        let header = read_segment_header(&mut device, segment_start)?;
        let erased_byte = device.geometry().erased_byte;
        let read_size = device.geometry().read_size_bytes as usize;
        let usable = buffer.as_ref().len() - buffer.as_ref().len() % read_size;
        if (usable as u64) < read_plan::RANDOM_READ_BYTES {
            return Err(Error::Config(ConfigError::Buffer));
        }
        let flushed_offset = u64::from(header.records_start());
        Ok(SegmentReader {
            device,
            segment_start,
            header,
            erased_byte,
            buffer,
            window: Window::default(),
            flushed_offset,
        })
    }

    /// Scans the segment and makes every valid record readable: for a
    /// segment no writer holds. Returns what the scan found; nothing is
    /// written.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] when a read fails.
    pub fn recover_flushed_offset(&mut self) -> Result<ScanReport, Error<D::Error>> {
        let report = recovery::scan(
            &mut self.device,
            self.segment_start,
            &self.header,
            self.buffer.as_mut(),
        )?;
        self.window = Window::default();
        self.flushed_offset = u64::from(report.records_end);
        Ok(report)
    }

    /// Lets the reader read records that end at or before `flushed_offset`
    /// (a writer's [`flushed_offset`](SegmentWriter::flushed_offset)).
    pub fn set_flushed_offset(&mut self, flushed_offset: u64) {
        let records_start = u64::from(self.header.records_start());
        self.flushed_offset =
            flushed_offset.clamp(records_start, u64::from(self.header.segment_size_bytes));
    }

    /// How far the reader may read.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Offset of the first record.
    pub fn records_start(&self) -> u64 {
        u64::from(self.header.records_start())
    }

    /// Reads the application's user area into `out`, checking its checksum.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] when `out` is not the area's length,
    /// [`Error::Corrupt`] on a checksum mismatch, [`Error::Device`].
    pub fn read_user_area(&mut self, out: &mut [u8]) -> Result<(), Error<D::Error>> {
        let len = self.header.user_area_len_bytes as usize;
        if out.len() != len {
            return Err(Error::BufferTooSmall {
                needed_bytes: len as u64,
                len_bytes: out.len() as u64,
            });
        }
        self.device
            .read(self.segment_start + SEGMENT_HEADER_LEN as u64, out)
            .map_err(Error::Device)?;
        if self.header.checksum_kind.checksum(out) != self.header.user_area_checksum {
            return Err(Error::Corrupt {
                segment: self.header.sequence,
                offset: SEGMENT_HEADER_LEN as u64,
                reason: Corruption::UserArea,
            });
        }
        Ok(())
    }

    fn check_offset(&self, offset: u64) -> Result<(), Error<D::Error>> {
        let records_start = u64::from(self.header.records_start());
        let aligned = offset.is_multiple_of(u64::from(self.header.record_align_bytes()));
        if !aligned
            || offset < records_start
            || offset + RECORD_HEADER_LEN as u64 > self.flushed_offset
        {
            return Err(Error::OutOfRange {
                offset,
                records_start,
                flushed_offset: self.flushed_offset,
            });
        }
        Ok(())
    }

    fn fill(
        &mut self,
        start: u64,
        len_bytes: u64,
        buffer_offset: u64,
    ) -> Result<(), Error<D::Error>> {
        let from = usize::try_from(buffer_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(len_bytes).unwrap_or(usize::MAX);
        let buffer = &mut self.buffer.as_mut()[from..from + len];
        self.device
            .read(self.segment_start + start, buffer)
            .map_err(Error::Device)
    }

    fn usable_buffer_len(&self) -> u64 {
        let read_size = u64::from(self.device.geometry().read_size_bytes);
        let len = self.buffer.as_ref().len() as u64;
        len - len % read_size
    }

    /// Brings the header at `offset` into the window and decodes it.
    fn header_at(
        &mut self,
        offset: u64,
        hint: ReadHint,
    ) -> Result<(RecordHeader, [u8; RECORD_HEADER_LEN]), Error<D::Error>> {
        self.check_offset(offset)?;
        let buffer_len = self.usable_buffer_len();
        if let Some(fill) =
            read_plan::plan_header(hint, offset, self.window, self.flushed_offset, buffer_len)
        {
            // Invalidate first: a failed read leaves the buffer undefined.
            self.window = Window::default();
            self.fill(fill.start, fill.len_bytes, fill.buffer_offset)?;
            self.window = Window {
                start: fill.start,
                len_bytes: fill.len_bytes,
            };
        }
        let at = usize::try_from(offset - self.window.start).unwrap_or(usize::MAX);
        let mut bytes = [0u8; RECORD_HEADER_LEN];
        bytes.copy_from_slice(&self.buffer.as_ref()[at..at + RECORD_HEADER_LEN]);
        let offset32 = u32::try_from(offset).unwrap_or(u32::MAX);
        let not_a_record = |reason| Error::NotARecord {
            segment: self.header.sequence,
            offset,
            reason,
        };
        let header = RecordHeader::decode(&bytes, offset32, &self.header, self.erased_byte)
            .map_err(not_a_record)?;
        let record_end = offset + RECORD_HEADER_LEN as u64 + u64::from(header.len_bytes);
        if record_end > self.flushed_offset {
            return Err(not_a_record(RecordDefect::ImplausibleLength));
        }
        Ok((header, bytes))
    }

    /// Reads and checks the record at `offset`. Payloads that fit the
    /// buffer come back borrowed; larger ones owned (`alloc` feature) or,
    /// without it, as [`Error::BufferTooSmall`] (use
    /// [`read_record_into`](Self::read_record_into)).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for an offset outside the flushed records or
    /// not on a record boundary; [`Error::NotARecord`] when the bytes there
    /// do not validate; [`Error::Device`].
    pub fn read_record(
        &mut self,
        offset: u64,
        hint: ReadHint,
    ) -> Result<Record<'_>, Error<D::Error>> {
        let (header, header_bytes) = self.header_at(offset, hint)?;
        // The padded extent ends on a record boundary at or before the
        // flushed offset, so reads planned with it stay read-unit aligned.
        let record_len = header.extent_bytes(&self.header);
        let next_offset = offset + record_len;
        let buffer_len = self.usable_buffer_len();
        match read_plan::plan_record(
            hint,
            offset,
            record_len,
            self.window,
            self.flushed_offset,
            buffer_len,
        ) {
            RecordPlan::InWindow => {}
            RecordPlan::Read { fill, new_window } => {
                self.window = Window::default();
                self.fill(fill.start, fill.len_bytes, fill.buffer_offset)?;
                self.window = new_window;
            }
            RecordPlan::Spill { .. } => {
                #[cfg(feature = "alloc")]
                {
                    let mut owned = alloc::vec![0u8; header.len_bytes as usize];
                    self.read_spilled(offset, header, &header_bytes, &mut owned)?;
                    return Ok(Record {
                        offset,
                        next_offset,
                        payload: Payload::Owned(owned),
                    });
                }
                #[cfg(not(feature = "alloc"))]
                return Err(Error::BufferTooSmall {
                    needed_bytes: u64::from(header.len_bytes),
                    len_bytes: buffer_len,
                });
            }
        }
        let at =
            usize::try_from(offset - self.window.start).unwrap_or(usize::MAX) + RECORD_HEADER_LEN;
        let payload = &self.buffer.as_ref()[at..at + header.len_bytes as usize];
        let mut hasher = format::record_hasher(&self.header, offset, &header_bytes);
        hasher.update(payload);
        if format::stored_checksum(hasher.finalize()) != header.checksum {
            return Err(Error::NotARecord {
                segment: self.header.sequence,
                offset,
                reason: RecordDefect::BadChecksum,
            });
        }
        Ok(Record {
            offset,
            next_offset,
            payload: Payload::Borrowed(payload),
        })
    }

    /// Reads the record at `offset` into `out` and returns its length and the
    /// next record's offset. Works for records of any size, without `alloc`.
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record), plus
    /// [`Error::BufferTooSmall`] when `out` is shorter than the payload.
    pub fn read_record_into(
        &mut self,
        offset: u64,
        hint: ReadHint,
        out: &mut [u8],
    ) -> Result<(usize, u64), Error<D::Error>> {
        let (header, header_bytes) = self.header_at(offset, hint)?;
        let len = header.len_bytes as usize;
        if out.len() < len {
            return Err(Error::BufferTooSmall {
                needed_bytes: len as u64,
                len_bytes: out.len() as u64,
            });
        }
        self.read_spilled(offset, header, &header_bytes, &mut out[..len])?;
        Ok((len, offset + header.extent_bytes(&self.header)))
    }

    /// Copies the payload part held in the window into `out`, reads the
    /// rest straight into `out`, and checks the checksum.
    fn read_spilled(
        &mut self,
        offset: u64,
        header: RecordHeader,
        header_bytes: &[u8; RECORD_HEADER_LEN],
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let payload_start = offset + RECORD_HEADER_LEN as u64;
        let payload_end = payload_start + u64::from(header.len_bytes);
        let held_end = self.window.end().min(payload_end).max(payload_start);
        let held = usize::try_from(held_end - payload_start).unwrap_or(0);
        let at = usize::try_from(payload_start - self.window.start).unwrap_or(usize::MAX);
        out[..held].copy_from_slice(&self.buffer.as_ref()[at..at + held]);
        if held < out.len() {
            // `held_end` is the window's end, read-unit aligned; the last
            // partial unit goes through the buffer, inside the record's padding.
            let read_size = self.device.geometry().read_size_bytes as usize;
            let rest_len = out.len() - held;
            let direct = rest_len - rest_len % read_size;
            let direct_out = &mut out[held..held + direct];
            self.device
                .read(self.segment_start + held_end, direct_out)
                .map_err(Error::Device)?;
            if direct < rest_len {
                self.window = Window::default();
                self.fill(held_end + direct as u64, read_size as u64, 0)?;
                out[held + direct..].copy_from_slice(&self.buffer.as_ref()[..rest_len - direct]);
            }
        }
        let mut hasher = format::record_hasher(&self.header, offset, header_bytes);
        hasher.update(out);
        if format::stored_checksum(hasher.finalize()) != header.checksum {
            return Err(Error::NotARecord {
                segment: self.header.sequence,
                offset,
                reason: RecordDefect::BadChecksum,
            });
        }
        Ok(())
    }

    /// The device, for callers that need to hand it on.
    pub fn into_device(self) -> D {
        self.device
    }
}
