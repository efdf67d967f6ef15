//! One segment: a writer that appends records and a reader that reads them.
//!
//! The writer is the only code that writes records. It keeps two offsets,
//! with `records_start <= synced_offset <= written_offset <= segment_size`:
//! the end of everything appended, and the end of everything made durable.
//! Readers are given the synced offset (the *flushed offset*) and never read
//! past it.

use core::ops::Range;

use crate::checksum::ChecksumKind;
use crate::device::{BlockDevice, Error as DeviceError, Geometry, is_multiple_of_u32};
use crate::error::{ConfigError, Corruption, Error};
use crate::format::{
    FLAG_BATCH_CONTINUES, FLAG_MARKER, FLAG_RESUMES_AFTER_HOLE, RECORD_ALIGN_MAX_BYTES,
    RECORD_ALIGN_MIN_BYTES, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader,
    align_up, record_extent_bytes,
};
use crate::recovery::{self, RecoveryMode, ScanReport, TailClass, TailState};

/// Zeros for padding and for wiping torn tails, shared by reference so no
/// write needs a buffer of its own.
static ZEROS: [u8; RECORD_ALIGN_MAX_BYTES as usize] = [0; RECORD_ALIGN_MAX_BYTES as usize];

/// Records an `append_batch` sends to the device in one write.
pub const BATCH_RECORDS_PER_WRITE: usize = 64;

/// Most pieces one record contributes to a write: header, payload, padding
/// (padding is below the alignment, so one piece of [`ZEROS`]).
const PIECES_PER_RECORD_MAX: usize = 3;

/// Largest user area: the header, the user area and the padding to the
/// first record go to the device in one write of boundedly many pieces.
pub const USER_AREA_MAX_BYTES: u32 = 4096;

/// Pieces of that one write: header, user area, and zero runs covering the
/// unused user area plus at most one record alignment of padding.
const HEAD_PIECES_MAX: usize =
    2 + (USER_AREA_MAX_BYTES + RECORD_ALIGN_MAX_BYTES) as usize / ZEROS.len() + 1;

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
            prev_sequence: identity.prev_sequence,
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
    /// Sequence of the segment this one follows in the log; `sequence`
    /// itself for the first segment of a log (or a lone segment).
    pub prev_sequence: u64,
}

impl SegmentIdentity {
    /// The identity of a lone segment, or the first of a log.
    pub const fn first(sequence: u64, base_lsn: u64, salt: u64) -> Self {
        SegmentIdentity {
            sequence,
            base_lsn,
            salt,
            prev_sequence: sequence,
        }
    }
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Appended {
    /// Offset of the record in the segment: the handle to read it by.
    pub offset: u64,
    /// Payload length in bytes.
    pub len_bytes: u32,
    /// Bytes the record occupies: header, payload and padding.
    pub extent_bytes: u32,
}

impl Appended {
    /// The hint that reads this record back in one device read of exactly
    /// its extent, whatever its size up to the reader's buffer: pass it
    /// with [`offset`](Self::offset) to `read_record`.
    pub fn read_hint(&self) -> crate::ReadHint {
        crate::ReadHint::Extent(u64::from(self.extent_bytes))
    }
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
        let erase = geometry.erase_size_bytes;
        if !is_multiple_of_u32(start, erase) || !is_multiple_of_u32(u64::from(size), erase) {
            return Err(ConfigError::SegmentRange);
        }
    } else if !is_multiple_of_u32(start, geometry.write_size_bytes) {
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
    // Reads cover whole read units: a 512-byte sector holds the header.
    let read_size = device.geometry().read_size_bytes as usize;
    let mut unit = [0u8; RECORD_ALIGN_MAX_BYTES as usize];
    let read_len = SEGMENT_HEADER_LEN.next_multiple_of(read_size.max(1));
    let Some(read_buf) = unit.get_mut(..read_len) else {
        return Err(Error::Config(ConfigError::Geometry));
    };
    device.read(start, read_buf).map_err(Error::Device)?;
    let mut bytes = [0u8; SEGMENT_HEADER_LEN];
    bytes.copy_from_slice(&unit[..SEGMENT_HEADER_LEN]);
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

/// The state of one segment being appended to, without its device: the
/// log passes the device to each call, so one device (a flash region) can
/// hold many segments and a store can hand out devices as it likes.
#[derive(Debug, Clone)]
pub struct SegmentAppender {
    segment_start: u64,
    header: SegmentHeader,
    written_offset: u32,
    synced_offset: u32,
    record_count: u64,
    /// Flash only: the next record resumes after a torn tail starting here.
    hole_start: Option<u32>,
    /// A clean-close marker starts here (at the written offset) and must be
    /// wiped, durably, before anything is written after it: otherwise a
    /// crash could leave the marker valid with newer bytes beyond it.
    marker_to_wipe: Option<u32>,
    poisoned: bool,
}

impl SegmentAppender {
    /// Lays out a new segment at `segment_start`: erases it where the device
    /// needs it, writes the header and the user area in one write, and
    /// syncs.
    ///
    /// Old bytes in the range are not wiped on devices that need no erase:
    /// the new salt makes any stale record fail its checksum.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the layout does not fit the device or the
    /// user area is over [`USER_AREA_MAX_BYTES`]; [`Error::Device`] when a
    /// write or the sync fails.
    pub fn create<D: BlockDevice>(
        device: &mut D,
        segment_start: u64,
        config: &SegmentConfig,
        identity: SegmentIdentity,
        user_area: &[u8],
    ) -> Result<Self, Error<D::Error>> {
        let geometry = device.geometry();
        let mut header = config.header(&geometry, identity)?;
        check_segment_range(&geometry, segment_start, config.segment_size_bytes)?;
        if user_area.len() > config.user_area_len_bytes as usize
            || config.user_area_len_bytes > USER_AREA_MAX_BYTES
        {
            return Err(Error::Config(ConfigError::UserArea));
        }
        header.user_area_checksum = user_area_checksum(config, user_area);
        if geometry.erase_before_write {
            device
                .erase(segment_start, u64::from(config.segment_size_bytes))
                .map_err(Error::Device)?;
        }
        let records_start = header.records_start();
        let header_bytes = header.encode();
        // The unused user area and the padding to `records_start` are zeros.
        let fill_len = records_start as usize - SEGMENT_HEADER_LEN - user_area.len();
        let mut pieces: heapless::Vec<&[u8], HEAD_PIECES_MAX> = heapless::Vec::new();
        let _ = pieces.push(&header_bytes);
        let _ = pieces.push(user_area);
        for zeros in zero_runs(fill_len) {
            // Capacity covers the largest user area plus one alignment.
            pieces
                .push(zeros)
                .map_err(|_| Error::Config(ConfigError::UserArea))?;
        }
        device
            .write(segment_start, &pieces)
            .map_err(Error::Device)?;
        device.sync().map_err(Error::Device)?;
        Ok(Self::resumed(segment_start, header, records_start, 0))
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
    pub fn open<D: BlockDevice>(
        device: &mut D,
        segment_start: u64,
        mode: RecoveryMode,
        scratch: &mut [u8],
    ) -> Result<(Self, Recovered), Error<D::Error>> {
        let header = read_segment_header(device, segment_start)?;
        let report = recovery::scan(device, segment_start, &header, scratch)?;
        let mut appender = Self::resumed(
            segment_start,
            header,
            report.records_end,
            report.record_count,
        );
        let tail = appender.settle_tail(device, &report, mode)?;
        // The records end on a clean-close marker (a scan-path open after a
        // clean close, with or without garbage after it): resume at the
        // marker, wiping it before the next write, so it never ends up
        // between records. Not after a flash hole, which resumes past it.
        if let (None, Some(marker)) = (appender.hole_start, report.trailing_marker) {
            appender.written_offset = marker;
            appender.synced_offset = marker;
            appender.marker_to_wipe = Some(marker);
        }
        device.sync().map_err(Error::Device)?;
        let recovered = Recovered {
            tail,
            record_count: report.record_count,
            last_record_offset: report.last_record_offset.map(u64::from),
        };
        Ok((appender, recovered))
    }

    /// Opens a cleanly closed segment without reading its records: finds
    /// the clean-close marker (see [`recovery::find_clean_close`]) and
    /// resumes at it. `Ok(None)` when there is no valid marker: use
    /// [`open`](Self::open), which scans.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for a bad header; [`Error::Device`].
    pub fn open_clean<D: BlockDevice>(
        device: &mut D,
        segment_start: u64,
        scratch: &mut [u8],
    ) -> Result<Option<(Self, Recovered)>, Error<D::Error>> {
        let header = read_segment_header(device, segment_start)?;
        let Some(clean) = recovery::find_clean_close(device, segment_start, &header, scratch)?
        else {
            return Ok(None);
        };
        let mut appender = Self::resumed(
            segment_start,
            header,
            clean.marker_offset,
            clean.record_count,
        );
        appender.marker_to_wipe = Some(clean.marker_offset);
        let recovered = Recovered {
            tail: TailState::Clean,
            record_count: clean.record_count,
            last_record_offset: None,
        };
        Ok(Some((appender, recovered)))
    }

    /// Writes a clean-close marker after the records and syncs, so the next
    /// open need not read them. Returns `false` (and writes nothing) on
    /// devices that never get markers (flash). The appender can go on
    /// appending afterwards: the marker is wiped first.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the marker does not fit (the segment is then
    /// scanned at the next open); [`Error::Poisoned`]; [`Error::Device`],
    /// which poisons.
    pub fn write_close_marker<D: BlockDevice>(
        &mut self,
        device: &mut D,
    ) -> Result<bool, Error<D::Error>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if self.marker_to_wipe.is_some() {
            // Already closed cleanly and nothing written since.
            return Ok(true);
        }
        // Everything appended is made durable whether or not a marker
        // follows: a close that cannot write one still acknowledges.
        self.sync(device)?;
        let geometry = device.geometry();
        let align = self.header.record_align_bytes();
        let Some(extent) = recovery::marker_extent_bytes(align, geometry.erase_before_write) else {
            return Ok(false);
        };
        if extent as usize - RECORD_HEADER_LEN > self.header.record_len_max as usize {
            // A marker is a record too, and this segment's records are too
            // small to hold one: the next open scans instead.
            return Ok(false);
        }
        let available_bytes = self.remaining_bytes();
        if u64::from(extent) > available_bytes {
            return Err(Error::Full {
                needed_bytes: u64::from(extent),
                available_bytes,
            });
        }
        let mut buffer = [0u8; recovery::MARKER_ALIGN_MAX_BYTES as usize];
        let payload = recovery::marker_payload(self.record_count, extent, &mut buffer);
        let offset = self.written_offset;
        let header = RecordHeader::encode(
            &self.header,
            offset,
            self.synced_offset,
            FLAG_MARKER,
            payload,
        );
        let result = device
            .write(self.segment_start + u64::from(offset), &[&header, payload])
            .and_then(|()| device.sync());
        if let Err(e) = result {
            self.poisoned = true;
            return Err(Error::Device(e));
        }
        self.marker_to_wipe = Some(offset);
        Ok(true)
    }

    /// Wipes a clean-close marker, durably, before the first write after it.
    fn wipe_marker<D: BlockDevice>(&mut self, device: &mut D) -> Result<(), Error<D::Error>> {
        let Some(offset) = self.marker_to_wipe else {
            return Ok(());
        };
        let align = self.header.record_align_bytes();
        // One piece of `ZEROS`, not `write_zeros`' runs: the extent is at
        // most one record alignment (512 bytes, `validate` checked), a
        // multiple of the write unit. 336 bytes of Thumb code less in
        // firmware (examples/firmware/FIGURES.md).
        let extent = recovery::marker_extent_bytes(align, false).unwrap_or(align) as usize;
        let at = self.segment_start + u64::from(offset);
        let result = device
            .write(at, &[&ZEROS[..extent]])
            .and_then(|()| device.sync());
        if let Err(e) = result {
            self.poisoned = true;
            return Err(Error::Device(e));
        }
        self.marker_to_wipe = None;
        Ok(())
    }

    /// The state of a segment as a scan found it, for reading only: nothing
    /// is repaired or written (a read-only open of a log another process
    /// writes). Appending through it is refused by the log.
    pub fn from_scan(segment_start: u64, header: SegmentHeader, report: &ScanReport) -> Self {
        let mut appender = Self::resumed(
            segment_start,
            header,
            report.records_end,
            report.record_count,
        );
        appender.poisoned = true;
        appender
    }

    /// An appender resuming at `end` with `record_count` records before it,
    /// all durable.
    fn resumed(segment_start: u64, header: SegmentHeader, end: u32, record_count: u64) -> Self {
        SegmentAppender {
            segment_start,
            header,
            written_offset: end,
            synced_offset: end,
            record_count,
            hole_start: None,
            marker_to_wipe: None,
            poisoned: false,
        }
    }

    /// Applies the scan's verdict on the tail.
    fn settle_tail<D: BlockDevice>(
        &mut self,
        device: &mut D,
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
        if device.geometry().erase_before_write {
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
            write_zeros(
                device,
                self.segment_start,
                u64::from(offset),
                u64::from(dirty_end),
            )?;
        }
        Ok(TailState::TruncatedAt {
            offset: u64::from(offset),
            bytes_discarded: u64::from(dirty_end - offset),
        })
    }

    /// Appends one record. It is durable once [`sync`](Self::sync) returns.
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`] or [`Error::Full`] (nothing written);
    /// [`Error::Poisoned`] after an earlier failure; [`Error::Device`] when
    /// the write fails, which poisons the appender.
    pub fn append<D: BlockDevice>(
        &mut self,
        device: &mut D,
        payload: &[u8],
    ) -> Result<Appended, Error<D::Error>> {
        let range = self.append_batch(device, &[payload])?;
        // Both fit: the record is inside a segment of at most 4 GiB.
        let len_bytes = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let extent_bytes = u32::try_from(range.end - range.start).unwrap_or(u32::MAX);
        Ok(Appended {
            offset: range.start,
            len_bytes,
            extent_bytes,
        })
    }

    /// Bytes `payloads` would take, headers and padding included, or why
    /// they cannot be appended at all.
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`] for a payload over `record_len_max`.
    pub fn batch_extent_bytes<E: DeviceError>(&self, payloads: &[&[u8]]) -> Result<u64, Error<E>> {
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
        Ok(needed_bytes)
    }

    /// Appends several records as one atomic batch: after a crash either all
    /// of them are there or none. Returns the offsets `[first, end)` they
    /// occupy. An empty batch writes nothing.
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append); a batch that does not fit writes
    /// nothing.
    pub fn append_batch<D: BlockDevice>(
        &mut self,
        device: &mut D,
        payloads: &[&[u8]],
    ) -> Result<Range<u64>, Error<D::Error>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let needed_bytes = self.batch_extent_bytes(payloads)?;
        self.append_measured_batch(device, payloads, needed_bytes)
    }

    /// [`append_batch`](Self::append_batch) of a batch whose extent the
    /// caller has just measured with
    /// [`batch_extent_bytes`](Self::batch_extent_bytes), which also checked
    /// every length: the log measures a batch before it decides to rotate,
    /// and need not measure it twice.
    pub(crate) fn append_measured_batch<D: BlockDevice>(
        &mut self,
        device: &mut D,
        payloads: &[&[u8]],
        needed_bytes: u64,
    ) -> Result<Range<u64>, Error<D::Error>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let available_bytes = self.remaining_bytes();
        if needed_bytes > available_bytes {
            return Err(Error::Full {
                needed_bytes,
                available_bytes,
            });
        }
        if payloads.is_empty() {
            return Ok(u64::from(self.written_offset)..u64::from(self.written_offset));
        }
        self.wipe_marker(device)?;
        let first = u64::from(self.written_offset);
        if let [payload] = payloads {
            // Most appends are one record: no batch arrays to fill.
            self.write_one(device, payload)?;
            return Ok(first..u64::from(self.written_offset));
        }
        let total = payloads.len();
        for (chunk_index, chunk) in payloads.chunks(BATCH_RECORDS_PER_WRITE).enumerate() {
            let last_chunk = (chunk_index + 1) * BATCH_RECORDS_PER_WRITE >= total;
            self.write_chunk(device, chunk, last_chunk)?;
        }
        Ok(first..u64::from(self.written_offset))
    }

    /// The header of a record at `offset`, the `index`-th of one device
    /// write; `ends_batch` for the last record of its batch.
    // Inline on hosts: called for every record from the generic appender,
    // which the backend's crate instantiates (a call across the crate
    // boundary otherwise).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn record_header(
        &self,
        offset: u32,
        index: usize,
        ends_batch: bool,
        payload: &[u8],
    ) -> [u8; RECORD_HEADER_LEN] {
        let mut flags = if ends_batch { 0 } else { FLAG_BATCH_CONTINUES };
        let mut synced = self.synced_offset;
        if let Some(hole_start) = self.hole_start.filter(|_| index == 0) {
            flags |= FLAG_RESUMES_AFTER_HOLE;
            synced = hole_start;
        }
        RecordHeader::encode(&self.header, offset, synced, flags, payload)
    }

    /// Zero padding after a payload of `len_bytes`, up to the record
    /// alignment (below it, so within [`ZEROS`]).
    #[cfg_attr(not(target_os = "none"), inline)]
    fn padding(&self, len_bytes: usize) -> &'static [u8] {
        let align = self.header.record_align_bytes() as usize;
        let unpadded = RECORD_HEADER_LEN + len_bytes;
        &ZEROS[..unpadded.next_multiple_of(align) - unpadded]
    }

    /// Writes one record, a batch of its own, in one device write.
    fn write_one<D: BlockDevice>(
        &mut self,
        device: &mut D,
        payload: &[u8],
    ) -> Result<(), Error<D::Error>> {
        let header = self.record_header(self.written_offset, 0, true, payload);
        let padding = self.padding(payload.len());
        let pieces: [&[u8]; PIECES_PER_RECORD_MAX] = [&header, payload, padding];
        let pieces = if padding.is_empty() {
            &pieces[..2]
        } else {
            &pieces[..]
        };
        let extent_bytes = RECORD_HEADER_LEN + payload.len() + padding.len();
        // Room was checked: the record ends inside the segment (u32).
        let end = self.written_offset + u32::try_from(extent_bytes).unwrap_or(u32::MAX);
        self.commit_write(device, pieces, end, 1)
    }

    /// Writes up to `BATCH_RECORDS_PER_WRITE` records in one device write.
    fn write_chunk<D: BlockDevice>(
        &mut self,
        device: &mut D,
        chunk: &[&[u8]],
        ends_batch: bool,
    ) -> Result<(), Error<D::Error>> {
        assert!(chunk.len() <= BATCH_RECORDS_PER_WRITE);
        let align = self.header.record_align_bytes();
        // heapless, not arrays: an array for the largest chunk would be
        // zeroed on every append.
        let mut headers: heapless::Vec<[u8; RECORD_HEADER_LEN], BATCH_RECORDS_PER_WRITE> =
            heapless::Vec::new();
        let mut offset = self.written_offset;
        for (index, payload) in chunk.iter().enumerate() {
            let is_last = ends_batch && index + 1 == chunk.len();
            let _ = headers.push(self.record_header(offset, index, is_last, payload));
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            offset += u32::try_from(record_extent_bytes(len, align)).unwrap_or(u32::MAX);
        }
        let mut pieces: heapless::Vec<&[u8], { BATCH_RECORDS_PER_WRITE * PIECES_PER_RECORD_MAX }> =
            heapless::Vec::new();
        for (header, payload) in headers.iter().zip(chunk) {
            // Capacity covers the worst case: header, payload, padding.
            let _ = pieces.push(header);
            let _ = pieces.push(payload);
            let padding = self.padding(payload.len());
            if !padding.is_empty() {
                let _ = pieces.push(padding);
            }
        }
        self.commit_write(device, &pieces, offset, chunk.len())
    }

    /// Hands `pieces` (the records `written_offset..end`, `records` of them)
    /// to the device as one write, and counts them written.
    fn commit_write<D: BlockDevice>(
        &mut self,
        device: &mut D,
        pieces: &[&[u8]],
        end: u32,
        records: usize,
    ) -> Result<(), Error<D::Error>> {
        let at = self.segment_start + u64::from(self.written_offset);
        if let Err(e) = device.write(at, pieces) {
            self.poisoned = true;
            return Err(Error::Device(e));
        }
        assert!(end <= self.header.segment_size_bytes, "room was checked");
        self.written_offset = end;
        self.record_count += records as u64;
        self.hole_start = None;
        Ok(())
    }

    /// Makes every appended record durable and returns the new flushed
    /// offset: the end of the records a reader may read.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after an earlier failure; [`Error::Device`] when
    /// the sync fails, which poisons the appender (the pages it covered may
    /// be lost even if a retry reports success).
    pub fn sync<D: BlockDevice>(&mut self, device: &mut D) -> Result<u64, Error<D::Error>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if let Err(e) = device.sync() {
            self.poisoned = true;
            return Err(Error::Device(e));
        }
        Ok(self.mark_synced(self.written_offset()))
    }

    /// Records that a sync made everything up to `offset` durable (for a
    /// caller that synced the device itself, outside a lock). Returns the
    /// flushed offset, which never moves back.
    pub fn mark_synced(&mut self, offset: u64) -> u64 {
        assert!(
            offset <= self.written_offset(),
            "cannot sync what was not written"
        );
        let offset = u32::try_from(offset).unwrap_or(self.written_offset);
        self.synced_offset = self.synced_offset.max(offset);
        u64::from(self.synced_offset)
    }

    /// Poisons the appender: a sync done by the caller failed.
    pub fn poison(&mut self) {
        self.poisoned = true;
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

    /// Where the segment starts on its device.
    pub fn segment_start(&self) -> u64 {
        self.segment_start
    }

    /// `true` once a write or sync has failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// `true` while the next record will resume after a torn tail skipped
    /// on flash.
    pub fn is_resuming_after_hole(&self) -> bool {
        self.hole_start.is_some()
    }
}

/// Overwrites `[from, to)` of the segment at `segment_start` with zeros, in
/// bounded writes (`to` is rounded up to the write unit).
fn write_zeros<D: BlockDevice>(
    device: &mut D,
    segment_start: u64,
    from: u64,
    to: u64,
) -> Result<(), Error<D::Error>> {
    const RUN_PIECES: usize = 128;
    let run_bytes = (RUN_PIECES * ZEROS.len()) as u64;
    let write_size = u64::from(device.geometry().write_size_bytes);
    let end = align_up(to, write_size).unwrap_or(to);
    let mut position = from;
    // Bounded: each step covers `run_bytes` of a range below 4 GiB.
    let max_steps = (end.saturating_sub(from)) / run_bytes + 1;
    for _ in 0..max_steps {
        if position >= end {
            break;
        }
        let run = usize::try_from((end - position).min(run_bytes)).unwrap_or(0);
        let mut pieces: heapless::Vec<&[u8], RUN_PIECES> = heapless::Vec::new();
        for chunk in zero_runs(run) {
            let _ = pieces.push(chunk);
        }
        device
            .write(segment_start + position, &pieces)
            .map_err(Error::Device)?;
        position += run as u64;
    }
    Ok(())
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
/// let identity = SegmentIdentity::first(0, 1, 0x5eed);
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
    appender: SegmentAppender,
}

impl<D: BlockDevice> SegmentWriter<D> {
    /// Lays out a new segment; see [`SegmentAppender::create`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentAppender::create`].
    pub fn create(
        mut device: D,
        segment_start: u64,
        config: &SegmentConfig,
        identity: SegmentIdentity,
        user_area: &[u8],
    ) -> Result<Self, Error<D::Error>> {
        let appender =
            SegmentAppender::create(&mut device, segment_start, config, identity, user_area)?;
        Ok(SegmentWriter { device, appender })
    }

    /// Opens an existing segment for appending; see [`SegmentAppender::open`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentAppender::open`].
    pub fn open(
        mut device: D,
        segment_start: u64,
        mode: RecoveryMode,
        scratch: &mut [u8],
    ) -> Result<(Self, Recovered), Error<D::Error>> {
        let (appender, recovered) =
            SegmentAppender::open(&mut device, segment_start, mode, scratch)?;
        Ok((SegmentWriter { device, appender }, recovered))
    }

    /// Appends one record; see [`SegmentAppender::append`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentAppender::append`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended, Error<D::Error>> {
        self.appender.append(&mut self.device, payload)
    }

    /// Appends an atomic batch; see [`SegmentAppender::append_batch`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentAppender::append_batch`].
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Range<u64>, Error<D::Error>> {
        self.appender.append_batch(&mut self.device, payloads)
    }

    /// Makes every appended record durable; see [`SegmentAppender::sync`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentAppender::sync`].
    pub fn sync(&mut self) -> Result<u64, Error<D::Error>> {
        self.appender.sync(&mut self.device)
    }

    /// The segment's state: offsets, counts, header.
    pub fn appender(&self) -> &SegmentAppender {
        &self.appender
    }

    /// End of everything appended.
    pub fn written_offset(&self) -> u64 {
        self.appender.written_offset()
    }

    /// End of everything durable: what readers may read up to.
    pub fn flushed_offset(&self) -> u64 {
        self.appender.flushed_offset()
    }

    /// Records in the segment.
    pub fn record_count(&self) -> u64 {
        self.appender.record_count()
    }

    /// Bytes left for records (headers and padding included).
    pub fn remaining_bytes(&self) -> u64 {
        self.appender.remaining_bytes()
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        self.appender.header()
    }

    /// `true` once a write or sync has failed.
    pub fn is_poisoned(&self) -> bool {
        self.appender.is_poisoned()
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

/// The checksum of the user area `config` lays out, holding `user_area`.
/// From the configuration, not the header made of it: a caller's constant
/// configuration (a log's segments have no user area) then folds the zero
/// runs away, 152 bytes of Thumb code in firmware
/// (examples/firmware/FIGURES.md).
fn user_area_checksum(config: &SegmentConfig, user_area: &[u8]) -> u32 {
    let mut hasher = config.checksum_kind.hasher();
    hasher.update(user_area);
    // The unused part of the area is written as zeros.
    let unused = config.user_area_len_bytes as usize - user_area.len();
    for zeros in zero_runs(unused) {
        hasher.update(zeros);
    }
    hasher.finalize()
}
