//! Reading records of one segment: checked, zero-copy where they fit.
//!
//! What to read is decided by [`read_plan`](crate::read_plan) and carried
//! out, every checksum verified, by the record check this module shares
//! with the recovery scan (`view`); this module adds the reader's rules
//! (offsets on record boundaries below the flushed offset, no markers).

use core::ops::Deref;

use crate::checksum::CRC_LANES;
use crate::device::{BlockDevice, Error as DeviceError, Geometry};
use crate::error::{ConfigError, Corruption, Error};
use crate::format::{
    self, RECORD_HEADER_LEN, RecordDefect, RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader,
};
use crate::read_plan::{self, ReadHint, Window};
use crate::recovery::{self, RecoveryMode, ScanReport, TailClass};
use crate::segment::read_segment_header;
use crate::view::{Body, Brought, FoundHeader, SegmentView, usable_len_bytes};

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

/// Where `locate_record` left a payload.
enum Where {
    /// In the reader's buffer.
    Buffer(core::ops::Range<usize>),
    /// Copied out: larger than the buffer.
    #[cfg(feature = "alloc")]
    Owned(alloc::vec::Vec<u8>),
}

/// A checked record, before its payload is borrowed.
struct Located {
    offset: u64,
    next_offset: u64,
    payload: Where,
}

/// Whether a sequential read checks the rest of the window with the
/// record it was asked for ([`SegmentCursor::checked_run_end`]), so that
/// the reads after it are lookups. On hosts, where an installed kernel
/// computes the checksums side by side; not on bare metal, where the
/// checksums are the tables' one after another either way and the run
/// would only add code.
pub(crate) const CHECK_AHEAD: bool = cfg!(not(target_os = "none"));

/// The records of the window that a sequential read has already checked in
/// full (header decoded, bounds, checksum; [`SegmentCursor::checked_run_end`]),
/// as a chain: the record at segment offset `next`, and each one after it
/// up to `end`; and the record before `next`, at `last`, the one checked
/// or given out most recently (a walk that found a record, then the read
/// of it, take it twice). Valid for the bytes the buffer held then and for
/// the flushed offset of then: every fill forgets it, and so does a
/// flushed offset lowered into it.
#[derive(Debug, Clone, Copy, Default)]
struct CheckedRun {
    next: u32,
    end: u32,
    // Not on bare metal, where no run is made: a larger cursor costs
    // firmware code where it is moved (about 0.4 KiB for `minimal`).
    #[cfg(not(target_os = "none"))]
    last: u32,
}

impl CheckedRun {
    /// Whether the record at `offset` is the next one of the run, or the
    /// one given out last.
    #[inline]
    fn holds(&self, offset: u64) -> bool {
        // The next one first: a scan's step.
        let held = offset == u64::from(self.next) && self.next < self.end;
        #[cfg(not(target_os = "none"))]
        let held = held || (offset == u64::from(self.last) && self.last < self.end);
        held
    }

    /// Holds nothing from now on. Nothing to do on bare metal, where no
    /// run is ever made (and firmware should not pay for clearing one).
    #[inline]
    fn forget(&mut self) {
        if CHECK_AHEAD {
            *self = CheckedRun::default();
        }
    }
}

/// A record [`SegmentCursor::take_checked`] gave out: checked, in the
/// window, to be borrowed with [`SegmentCursor::checked_record`]. Only the
/// cursor makes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedRecord(VerifiedRecord);

/// A record of a [`CheckedRun`]: where it is and how long.
#[derive(Debug, Clone, Copy)]
struct VerifiedRecord {
    next_offset: u64,
    len_bytes: u32,
    flags: u32,
}

/// A record whole in the window, its header decoded
/// ([`SegmentCursor::peek_in_window`]); its checksum not yet checked.
struct Peeked<'a> {
    header: RecordHeader,
    /// The record as the window holds it: header, then payload.
    record: &'a [u8],
    /// Offset of the record after it.
    next: u64,
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

/// The records of one window that [`SegmentCursor::read_batch`] checked
/// together, in order, each borrowed from the cursor's buffer: a
/// sequential scan without a call into the cursor per record.
///
/// Every record it yields was checked as [`SegmentCursor::read_record`]
/// checks one (header fields, bounds, below the flushed offset, checksum)
/// before the batch was handed out, and the buffer cannot change while the
/// batch borrows it.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The window's bytes, from segment offset `window_start`.
    window: &'a [u8],
    window_start: u64,
    /// Offset of the next record to yield from the window.
    position: u64,
    /// End of the checked records in the window.
    checked_end: u64,
    record_align_bytes: u32,
    /// A record read the long way (too large for the window, or checked
    /// alone), yielded first.
    single: Option<Record<'a>>,
    /// Where the record after the batch starts.
    next_offset: u64,
}

impl<'a> Batch<'a> {
    /// Offset of the record after the last one of the batch: where the
    /// next [`SegmentCursor::read_batch`] starts.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }
}

impl<'a> Iterator for Batch<'a> {
    type Item = Record<'a>;

    #[inline]
    fn next(&mut self) -> Option<Record<'a>> {
        // Tested before `take`, which would move the whole record in and
        // out on every step.
        if self.single.is_some() {
            return self.single.take();
        }
        if self.position >= self.checked_end {
            return None;
        }
        // Checked before the batch was made (`checked_run_end`): the
        // header and the payload lie in the window. Read with `get` all
        // the same, so that no byte can make this panic.
        let at = usize::try_from(self.position - self.window_start).ok()?;
        let header = self.window.get(at..)?.first_chunk::<RECORD_HEADER_LEN>()?;
        let len_bytes = format::le_u32(header, format::RECORD_LEN);
        let payload_at = at + RECORD_HEADER_LEN;
        let payload = self
            .window
            .get(payload_at..payload_at + len_bytes as usize)?;
        let offset = self.position;
        let next_offset = offset + format::record_extent_bytes(len_bytes, self.record_align_bytes);
        self.position = next_offset;
        Some(Record {
            offset,
            next_offset,
            payload: Payload::Borrowed(payload),
        })
    }
}

/// The state of reading one segment, without its device: the buffer, what
/// it holds, and how far the reader may read. The log passes the device to
/// each call; [`SegmentReader`] bundles the two.
///
/// The buffer decides the read sizes: at least
/// [`RANDOM_READ_BYTES`](crate::RANDOM_READ_BYTES) (header + 2 KiB), and
/// [`SEQUENTIAL_WINDOW_BYTES`](crate::SEQUENTIAL_WINDOW_BYTES) (64 KiB) for
/// full read-ahead. Records that fit come back borrowed from it.
#[derive(Debug)]
pub struct SegmentCursor<B> {
    segment_start: u64,
    header: SegmentHeader,
    /// `header.records_start()`, kept: every record read checks against it.
    records_start: u32,
    read_size_bytes: u32,
    buffer: B,
    /// The buffer's length in whole read units, kept for the same reason.
    buffer_len_bytes: u32,
    window: Window,
    flushed_offset: u32,
    run: CheckedRun,
}

impl<B: AsMut<[u8]> + AsRef<[u8]>> SegmentCursor<B> {
    /// Opens the segment at `segment_start` for reading. Nothing is readable
    /// until [`set_flushed_offset`](Self::set_flushed_offset) says how far.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a buffer under `RANDOM_READ_BYTES`;
    /// [`Error::Corrupt`] for a bad header; [`Error::Device`].
    pub fn open<D: BlockDevice>(
        device: &mut D,
        segment_start: u64,
        buffer: B,
    ) -> Result<Self, Error<D::Error>> {
        let header = read_segment_header(device, segment_start)?;
        Self::with_header(&device.geometry(), segment_start, header, buffer)
    }

    /// A cursor on a segment whose header the caller has already read and
    /// checked (the log keeps every segment's header).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a buffer under `RANDOM_READ_BYTES`.
    pub fn with_header<E: DeviceError>(
        geometry: &Geometry,
        segment_start: u64,
        header: SegmentHeader,
        buffer: B,
    ) -> Result<Self, Error<E>> {
        let usable = usable_len_bytes(buffer.as_ref().len(), geometry.read_size_bytes);
        if u64::from(usable) < read_plan::RANDOM_READ_BYTES {
            return Err(Error::Config(ConfigError::Buffer));
        }
        let records_start = header.records_start();
        Ok(SegmentCursor {
            segment_start,
            header,
            records_start,
            read_size_bytes: geometry.read_size_bytes,
            buffer,
            buffer_len_bytes: usable,
            window: Window::default(),
            flushed_offset: records_start,
            run: CheckedRun::default(),
        })
    }

    /// Points the cursor at another segment on a device of the same
    /// geometry, keeping the buffer; nothing is read.
    pub fn retarget(&mut self, segment_start: u64, header: SegmentHeader, flushed_offset: u64) {
        self.segment_start = segment_start;
        self.header = header;
        self.records_start = header.records_start();
        self.window = Window::default();
        self.run.forget();
        self.set_flushed_offset(flushed_offset);
    }

    /// The offset after the record (or marker) at `offset`, from its header
    /// alone: for walking to a record without checking each checksum on the
    /// way (the record finally read is checked). Also says whether it was a
    /// marker, which is not a record of the log.
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record), for the header only.
    pub fn skip_record<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
    ) -> Result<(u64, bool), Error<D::Error>> {
        let (header, _) = self.header_at(device, offset, ReadHint::Sequential, true)?;
        let is_marker = header.flags & format::FLAG_MARKER != 0;
        Ok((offset + header.extent_bytes(&self.header), is_marker))
    }

    /// Scans the segment and makes every valid record readable: for a
    /// segment no writer holds. A clean-close marker after the records (a
    /// log's segment closed cleanly) is where reading stops. Returns what
    /// the scan found; nothing is written.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] in [`RecoveryMode::Strict`] when synced records
    /// are damaged (the records before the damage are not passed off as the
    /// whole segment); [`Error::Device`] when a read fails.
    pub fn recover_flushed_offset<D: BlockDevice>(
        &mut self,
        device: &mut D,
        mode: RecoveryMode,
    ) -> Result<ScanReport, Error<D::Error>> {
        let report = recovery::scan(
            device,
            self.segment_start,
            &self.header,
            self.buffer.as_mut(),
        )?;
        self.window = Window::default();
        self.run.forget();
        if let (
            TailClass::Corrupt {
                offset,
                next_valid_offset,
                ..
            },
            RecoveryMode::Strict,
        ) = (report.tail, mode)
        {
            return Err(recovery::corrupt_error(
                &self.header,
                offset,
                next_valid_offset,
            ));
        }
        // A clean-close marker ends the records: it is not one to read.
        self.flushed_offset = report.trailing_marker.unwrap_or(report.records_end);
        self.run.forget();
        Ok(report)
    }

    /// Lets the reader read records that end at or before `flushed_offset`
    /// (a writer's [`flushed_offset`](crate::segment::SegmentWriter::flushed_offset)).
    ///
    /// A value between record boundaries is rounded down to one: records
    /// end on the alignment, and a bound inside a record's padding would let
    /// the reader accept a record it must not read whole.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn set_flushed_offset(&mut self, flushed_offset: u64) {
        // The alignment is a power of two (`1 << record_align_log2`).
        let align = u64::from(self.header.record_align_bytes());
        let aligned = flushed_offset & !(align - 1);
        let segment_end = self.header.segment_size_bytes;
        let clamped = aligned.clamp(u64::from(self.records_start), u64::from(segment_end));
        self.flushed_offset = u32::try_from(clamped).unwrap_or(segment_end);
        // Lowered (a truncation): records checked up to the old offset
        // may not be served past the new one.
        if CHECK_AHEAD && self.run.end > self.flushed_offset {
            self.run.forget();
        }
    }

    /// How far the reader may read.
    pub fn flushed_offset(&self) -> u64 {
        u64::from(self.flushed_offset)
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Offset of the first record.
    pub fn records_start(&self) -> u64 {
        u64::from(self.records_start)
    }

    /// Reads the application's user area into `out`, checking its checksum.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] when `out` is not the area's length,
    /// [`Error::Corrupt`] on a checksum mismatch, [`Error::Device`].
    pub fn read_user_area<D: BlockDevice>(
        &mut self,
        device: &mut D,
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let len = self.header.user_area_len_bytes as usize;
        if out.len() != len {
            return Err(Error::BufferTooSmall {
                needed_bytes: len as u64,
                len_bytes: out.len() as u64,
            });
        }
        // Through the buffer, in whole read units: the area starts at byte
        // 64, inside the first unit of a sector device.
        let read_size = u64::from(self.read_size_bytes);
        let area_end = SEGMENT_HEADER_LEN as u64 + len as u64;
        let read_end = area_end.next_multiple_of(read_size);
        let chunk = u64::from(self.usable_buffer_len());
        self.window = Window::default();
        let mut position = 0u64;
        while position < read_end {
            let this = chunk.min(read_end - position);
            self.fill(device, position, this, 0)?;
            let lo = position.max(SEGMENT_HEADER_LEN as u64);
            let hi = (position + this).min(area_end);
            if lo < hi {
                let from = usize::try_from(lo - position).unwrap_or(0);
                let to = usize::try_from(hi - position).unwrap_or(0);
                let out_at = usize::try_from(lo).unwrap_or(0) - SEGMENT_HEADER_LEN;
                out[out_at..out_at + (to - from)].copy_from_slice(&self.buffer.as_ref()[from..to]);
            }
            position += this;
        }
        if self.header.checksum_kind.checksum(out) != self.header.user_area_checksum {
            return Err(Error::Corrupt {
                segment: self.header.sequence,
                offset: SEGMENT_HEADER_LEN as u64,
                reason: Corruption::UserArea,
            });
        }
        Ok(())
    }

    fn check_offset<E: DeviceError>(&self, offset: u64) -> Result<(), Error<E>> {
        let records_start = u64::from(self.records_start);
        let flushed_offset = u64::from(self.flushed_offset);
        // The alignment is a power of two (`1 << record_align_log2`).
        let aligned = offset & (u64::from(self.header.record_align_bytes()) - 1) == 0;
        let header_end = offset.checked_add(RECORD_HEADER_LEN as u64);
        if !aligned || offset < records_start || header_end.is_none_or(|end| end > flushed_offset) {
            return Err(Error::OutOfRange {
                offset,
                records_start,
                flushed_offset,
            });
        }
        Ok(())
    }

    fn fill<D: BlockDevice>(
        &mut self,
        device: &mut D,
        start: u64,
        len_bytes: u64,
        buffer_offset: u64,
    ) -> Result<(), Error<D::Error>> {
        self.run.forget();
        let from = usize::try_from(buffer_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(len_bytes).unwrap_or(usize::MAX);
        let buffer = &mut self.buffer.as_mut()[from..from + len];
        device
            .read(self.segment_start + start, buffer)
            .map_err(Error::Device)
    }

    fn usable_buffer_len(&self) -> u32 {
        self.buffer_len_bytes
    }

    /// The segment through this cursor's buffer, for one call. The view
    /// may fill the buffer: the records checked ahead are forgotten.
    fn view(&mut self) -> SegmentView<'_> {
        self.run.forget();
        SegmentView {
            segment_start: self.segment_start,
            header: &self.header,
            buffer: self.buffer.as_mut(),
            buffer_len_bytes: self.buffer_len_bytes,
            window: &mut self.window,
        }
    }

    /// Brings the header at `offset` into the window and decodes it.
    // Inline on hosts, as `SegmentView::header_at` is, for the same reason.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn header_at<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
        hint: ReadHint,
        allow_marker: bool,
    ) -> Result<FoundHeader, Error<D::Error>> {
        self.check_offset(offset)?;
        // Below the flushed offset (just checked), so a u32.
        let offset32 = u32::try_from(offset).unwrap_or(u32::MAX);
        let limit = self.flushed_offset;
        match self
            .view()
            .header_at(device, offset32, limit, hint, allow_marker)
        {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(reason)) => Err(Error::NotARecord {
                segment: self.header.sequence,
                offset,
                reason,
            }),
            Err(e) => Err(Error::Device(e)),
        }
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
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn read_record<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
        hint: ReadHint,
    ) -> Result<Record<'_>, Error<D::Error>> {
        // The common step of a scan, kept small enough to inline: the
        // record was checked with the one read before it.
        if let Some(checked) = self.take_checked(offset) {
            return Ok(self.checked_record(offset, checked));
        }
        let located = self.locate_record(device, offset, hint)?;
        Ok(self.record_of(located))
    }

    /// Reads the record at `offset` and every record after it that the
    /// same sequential window holds whole, and checks them together: the
    /// fast way to scan a segment. Loop over the batch, then read the next
    /// batch at [`Batch::next_offset`] until it reaches the flushed offset.
    ///
    /// The batch holds at least the record at `offset`. It ends before the
    /// first record that is not whole in the window, ends past the flushed
    /// offset, is a marker or does not check; the next batch starts there,
    /// and reports that record's defect if it has one (as
    /// [`read_record`](Self::read_record) would).
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record).
    pub fn read_batch<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
    ) -> Result<Batch<'_>, Error<D::Error>> {
        let checked_end = if CHECK_AHEAD && self.run.holds(offset) {
            u64::from(self.run.end)
        } else {
            let located = self.locate_record(device, offset, ReadHint::Sequential)?;
            if !matches!(located.payload, Where::Buffer(_)) {
                // Larger than the buffer: alone, the long way.
                let next_offset = located.next_offset;
                return Ok(Batch {
                    window: &[],
                    window_start: offset,
                    position: offset,
                    checked_end: offset,
                    record_align_bytes: self.header.record_align_bytes(),
                    single: Some(self.record_of(located)),
                    next_offset,
                });
            }
            // The record, and the run checked with it when there is one.
            if CHECK_AHEAD && self.run.holds(located.next_offset) {
                u64::from(self.run.end)
            } else {
                located.next_offset
            }
        };
        // The batch takes the run: its records are read through it.
        self.run.forget();
        let window_len = self.window.len_bytes as usize;
        Ok(Batch {
            window: &self.buffer.as_ref()[..window_len],
            window_start: u64::from(self.window.start),
            position: offset,
            checked_end,
            record_align_bytes: self.header.record_align_bytes(),
            single: None,
            next_offset: checked_end,
        })
    }

    /// End of the run of records from `position` (its header in the
    /// window) that are whole in the window, below the flushed offset and
    /// not markers, with headers that decode ([`peek_in_window`]) and
    /// checksums that match, checked [`CRC_LANES`] at a time side by side.
    /// `position` itself when the first one fails. Reads nothing.
    ///
    /// [`peek_in_window`]: Self::peek_in_window
    fn checked_run_end(&self, mut position: u64, erased_byte: u8) -> u64 {
        let (bounds, limit) = self.peek_limits(erased_byte);
        loop {
            let mut inputs = [format::ChecksumInput {
                offset: 0,
                record: &[],
            }; CRC_LANES];
            let mut stored = [0u32; CRC_LANES];
            let mut ends = [0u64; CRC_LANES];
            let mut count = 0;
            let mut next = position;
            while count < CRC_LANES {
                let Some(peeked) = self.peek_in_window(next, &bounds, limit) else {
                    break;
                };
                inputs[count] = format::ChecksumInput {
                    offset: next,
                    record: peeked.record,
                };
                stored[count] = peeked.header.checksum;
                ends[count] = peeked.next;
                count += 1;
                next = peeked.next;
            }
            if count == 0 {
                return position;
            }
            let computed = format::stored_checksums(&self.header, &inputs[..count]);
            for lane in 0..count {
                if computed[lane] != stored[lane] {
                    return position;
                }
                position = ends[lane];
            }
            if count < CRC_LANES {
                return position;
            }
        }
    }

    /// The record at `offset`, when a sequential read checked it ahead and
    /// the window still holds it (then taken: the next one is next); `None`
    /// otherwise. Reads nothing: the log's iterator asks this before it
    /// looks up the segment's device.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub(crate) fn take_checked(&mut self, offset: u64) -> Option<CheckedRecord> {
        if !CHECK_AHEAD || !self.run.holds(offset) {
            // A read elsewhere forgets the run.
            self.run.forget();
            return None;
        }
        // Checked when the run was made: the header lies in the window.
        // Read with `get` all the same, so that no byte can make this panic.
        let at = usize::try_from(offset - u64::from(self.window.start)).ok()?;
        let header = self
            .buffer
            .as_ref()
            .get(at..)?
            .first_chunk::<RECORD_HEADER_LEN>()?;
        let len_bytes = format::le_u32(header, format::RECORD_LEN);
        let next_offset =
            offset + format::record_extent_bytes(len_bytes, self.header.record_align_bytes());
        // Both at most the run's end, u32s.
        #[cfg(not(target_os = "none"))]
        {
            self.run.last = u32::try_from(offset).unwrap_or(u32::MAX);
        }
        self.run.next = u32::try_from(next_offset).unwrap_or(u32::MAX);
        Some(CheckedRecord(VerifiedRecord {
            next_offset,
            len_bytes,
            flags: format::le_u32(header, format::RECORD_FLAGS),
        }))
    }

    /// The record [`take_checked`](Self::take_checked) found at `offset`,
    /// borrowed from the window.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn checked_record(&self, offset: u64, checked: CheckedRecord) -> Record<'_> {
        let CheckedRecord(verified) = checked;
        let at = usize::try_from(offset - u64::from(self.window.start)).unwrap_or(usize::MAX)
            + RECORD_HEADER_LEN;
        let payload = &self.buffer.as_ref()[at..at + verified.len_bytes as usize];
        Record {
            offset,
            next_offset: verified.next_offset,
            payload: Payload::Borrowed(payload),
        }
    }

    /// The record `locate_record` found, borrowing the buffer.
    fn record_of(&self, located: Located) -> Record<'_> {
        let payload = match located.payload {
            Where::Buffer(range) => Payload::Borrowed(&self.buffer.as_ref()[range]),
            #[cfg(feature = "alloc")]
            Where::Owned(owned) => Payload::Owned(owned),
        };
        Record {
            offset: located.offset,
            next_offset: located.next_offset,
            payload,
        }
    }

    /// Reads and checks the record at `offset`, and says where its payload
    /// is, without borrowing the buffer: a caller can then try elsewhere
    /// on failure (a flash hole) before it borrows.
    ///
    /// Out of line on hosts: the long way, kept off the inlined fast path of
    /// [`read_record`](Self::read_record) (firmware leaves it to the
    /// compiler, for size).
    #[cfg_attr(not(target_os = "none"), inline(never))]
    fn locate_record<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
        hint: ReadHint,
    ) -> Result<Located, Error<D::Error>> {
        let found = self.header_at(device, offset, hint, false)?;
        let header = found.0;
        let next_offset = offset + header.extent_bytes(&self.header);
        let limit = self.flushed_offset;
        // Below the flushed offset (`header_at` checked), so a u32.
        let offset32 = u32::try_from(offset).unwrap_or(u32::MAX);
        let body = if CHECK_AHEAD && hint == ReadHint::Sequential {
            let brought = self
                .view()
                .bring_record(device, offset32, &found, limit, hint)
                .map_err(Error::Device)?;
            match brought {
                Brought::InBuffer(payload) => {
                    // The record and the rest of the window, checked
                    // together; the reads after this one take the run.
                    let run_end = self.checked_run_end(offset, device.geometry().erased_byte);
                    if run_end > offset {
                        self.run = CheckedRun {
                            #[cfg(not(target_os = "none"))]
                            last: offset32,
                            // Both within the window, below the flushed
                            // offset: u32s.
                            next: u32::try_from(next_offset).unwrap_or(u32::MAX),
                            end: u32::try_from(run_end).unwrap_or(0),
                        };
                        Body::Valid(payload)
                    } else {
                        // The record itself does not check: the one-record
                        // check says how.
                        self.view()
                            .record(device, offset32, &found, limit, hint)
                            .map_err(Error::Device)?
                    }
                }
                Brought::Spill {
                    rest_start,
                    rest_len_bytes,
                } => Body::Spill {
                    rest_start,
                    rest_len_bytes,
                },
            }
        } else {
            self.view()
                .record(device, offset32, &found, limit, hint)
                .map_err(Error::Device)?
        };
        match body {
            Body::Valid(range) => Ok(Located {
                offset,
                next_offset,
                payload: Where::Buffer(range),
            }),
            Body::BadChecksum => Err(Error::NotARecord {
                segment: self.header.sequence,
                offset,
                reason: RecordDefect::BadChecksum,
            }),
            Body::Spill { .. } => {
                #[cfg(feature = "alloc")]
                {
                    let mut owned = alloc::vec![0u8; header.len_bytes as usize];
                    self.read_spilled(device, offset, header, &found.1, &mut owned)?;
                    Ok(Located {
                        offset,
                        next_offset,
                        payload: Where::Owned(owned),
                    })
                }
                #[cfg(not(feature = "alloc"))]
                Err(Error::BufferTooSmall {
                    needed_bytes: u64::from(header.len_bytes),
                    len_bytes: u64::from(self.usable_buffer_len()),
                })
            }
        }
    }

    /// What [`peek_in_window`](Self::peek_in_window) checks each record
    /// against, worked out once for a run of peeks: the segment's record
    /// bounds, and the end of what may be peeked (the window's end or the
    /// flushed offset, whichever comes first).
    #[inline]
    fn peek_limits(&self, erased_byte: u8) -> (format::RecordBounds, u64) {
        let window_end = u64::from(self.window.end());
        let limit = window_end.min(u64::from(self.flushed_offset));
        (self.header.record_bounds(erased_byte), limit)
    }

    /// The record at `position` as the window holds it, when the window
    /// holds the whole record, it ends at or before `limit` (from
    /// [`peek_limits`](Self::peek_limits), with `bounds`), and its header
    /// decodes (as [`SegmentView::header_at`] would have it: not a marker);
    /// `None` otherwise. Reads nothing.
    #[inline]
    fn peek_in_window(
        &self,
        position: u64,
        bounds: &format::RecordBounds,
        limit: u64,
    ) -> Option<Peeked<'_>> {
        let window_start = u64::from(self.window.start);
        if position < window_start || position + RECORD_HEADER_LEN as u64 > limit {
            return None;
        }
        let at = usize::try_from(position - window_start).ok()?;
        let from_header = self.buffer.as_ref().get(at..)?;
        let header_bytes = from_header.first_chunk::<RECORD_HEADER_LEN>()?;
        let offset32 = u32::try_from(position).ok()?;
        let header = RecordHeader::decode_within(header_bytes, offset32, bounds).ok()?;
        let next = position + header.extent_bytes(&self.header);
        if header.flags & format::FLAG_MARKER != 0 || next > limit {
            return None;
        }
        Some(Peeked {
            header,
            record: from_header.get(..RECORD_HEADER_LEN + header.len_bytes as usize)?,
            next,
        })
    }

    /// Checks the record (or marker) at `offset` in full, checksum
    /// included, and returns the next offset and its flags: the step of a
    /// walk that must agree with the recovery scan (on flash, where torn
    /// records stay in place).
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record).
    pub fn check_record<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
    ) -> Result<(u64, u32), Error<D::Error>> {
        // Checked with the run of the check before (hosts): a walk through
        // a window checks it once, not its rest again at every step.
        if CHECK_AHEAD && let Some(CheckedRecord(verified)) = self.take_checked(offset) {
            return Ok((verified.next_offset, verified.flags));
        }
        let (header, _) = self.header_at(device, offset, ReadHint::Sequential, true)?;
        let next = offset + header.extent_bytes(&self.header);
        if header.flags & format::FLAG_MARKER == 0 {
            self.locate_record(device, offset, ReadHint::Sequential)?;
        }
        Ok((next, header.flags))
    }

    /// The first record after `hole_start` that says it resumes after a
    /// hole starting there, if any. Bounded by the readable bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] when a read fails.
    pub fn find_resume<D: BlockDevice>(
        &mut self,
        device: &mut D,
        hole_start: u64,
    ) -> Result<Option<u64>, Error<D::Error>> {
        let align = u64::from(self.header.record_align_bytes());
        let mut position = hole_start + align;
        while position + RECORD_HEADER_LEN as u64 <= u64::from(self.flushed_offset) {
            let resumes = match self.header_at(device, position, ReadHint::Sequential, false) {
                Ok((header, _)) => {
                    header.flags & format::FLAG_RESUMES_AFTER_HOLE != 0
                        && u64::from(header.synced_offset) == hole_start
                }
                Err(Error::Device(e)) => return Err(Error::Device(e)),
                Err(_) => false,
            };
            if resumes {
                match self.locate_record(device, position, ReadHint::Sequential) {
                    Ok(_) => return Ok(Some(position)),
                    Err(Error::Device(e)) => return Err(Error::Device(e)),
                    Err(_) => {}
                }
            }
            position += align;
        }
        Ok(None)
    }

    /// Reads the record at `offset` into `out` and returns its length and the
    /// next record's offset. Works for records of any size, without `alloc`.
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record), plus
    /// [`Error::BufferTooSmall`] when `out` is shorter than the payload.
    pub fn read_record_into<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
        hint: ReadHint,
        out: &mut [u8],
    ) -> Result<(usize, u64), Error<D::Error>> {
        let (header, header_bytes) = self.header_at(device, offset, hint, false)?;
        let len = header.len_bytes as usize;
        if out.len() < len {
            return Err(Error::BufferTooSmall {
                needed_bytes: len as u64,
                len_bytes: out.len() as u64,
            });
        }
        self.read_spilled(device, offset, header, &header_bytes, &mut out[..len])?;
        Ok((len, offset + header.extent_bytes(&self.header)))
    }

    /// Copies the payload part held in the window into `out`, reads the
    /// rest straight into `out`, and checks the checksum.
    fn read_spilled<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u64,
        header: RecordHeader,
        header_bytes: &[u8; RECORD_HEADER_LEN],
        out: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let payload_start = offset + RECORD_HEADER_LEN as u64;
        let payload_end = payload_start + u64::from(header.len_bytes);
        let held_end = u64::from(self.window.end())
            .min(payload_end)
            .max(payload_start);
        let held = usize::try_from(held_end - payload_start).unwrap_or(0);
        let at =
            usize::try_from(payload_start - u64::from(self.window.start)).unwrap_or(usize::MAX);
        out[..held].copy_from_slice(&self.buffer.as_ref()[at..at + held]);
        if held < out.len() {
            // `held_end` is the window's end, read-unit aligned; the last
            // partial unit goes through the buffer, inside the record's padding.
            let read_size = self.read_size_bytes as usize;
            let rest_len = out.len() - held;
            let direct = rest_len - rest_len % read_size;
            let direct_out = &mut out[held..held + direct];
            device
                .read(self.segment_start + held_end, direct_out)
                .map_err(Error::Device)?;
            if direct < rest_len {
                self.window = Window::default();
                self.fill(device, held_end + direct as u64, read_size as u64, 0)?;
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

    /// The buffer as scratch space for a scan; what it held is forgotten.
    pub fn scratch(&mut self) -> &mut [u8] {
        self.window = Window::default();
        self.run.forget();
        self.buffer.as_mut()
    }

    /// Gives the buffer back.
    pub fn into_buffer(self) -> B {
        self.buffer
    }
}

/// Reads records of one segment through a buffer it owns.
///
/// The buffer decides the read sizes: at least
/// [`RANDOM_READ_BYTES`](crate::RANDOM_READ_BYTES) (header + 2 KiB), and
/// [`SEQUENTIAL_WINDOW_BYTES`](crate::SEQUENTIAL_WINDOW_BYTES) (64 KiB) for
/// full read-ahead. Records that fit come back borrowed from it.
///
/// # Example
///
/// Reading back a segment whose writer is gone: a scan finds how far the
/// valid records go, then the reader walks them.
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
/// use segwal::{ReadHint, RecoveryMode, SegmentConfig, SegmentIdentity, SegmentReader, SegmentWriter};
///
/// let mut device = Mem([0; 4096]);
/// let identity = SegmentIdentity::first(0, 1, 0x5eed);
/// let mut writer = SegmentWriter::create(&mut device, 0, &SegmentConfig::new(4096), identity, &[])?;
/// writer.append(b"one")?;
/// writer.append(b"two")?;
/// writer.sync()?;
/// drop(writer);
///
/// // A scan needs `SCAN_SCRATCH_MIN_BYTES` of buffer; 8 KiB is plenty.
/// let mut reader = SegmentReader::open(&mut device, 0, [0u8; 8192])?;
/// reader.recover_flushed_offset(RecoveryMode::Strict)?;
/// let mut payloads = Vec::new();
/// let mut offset = reader.records_start();
/// while offset < reader.flushed_offset() {
///     let record = reader.read_record(offset, ReadHint::Sequential)?;
///     payloads.push(record.payload.to_vec());
///     offset = record.next_offset;
/// }
/// assert_eq!(payloads, [b"one", b"two"]);
/// # Ok::<(), segwal::Error<ErrorKind>>(())
/// ```
#[derive(Debug)]
pub struct SegmentReader<D, B> {
    device: D,
    cursor: SegmentCursor<B>,
}

impl<D: BlockDevice, B: AsMut<[u8]> + AsRef<[u8]>> SegmentReader<D, B> {
    /// Opens the segment at `segment_start`; see [`SegmentCursor::open`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentCursor::open`].
    pub fn open(mut device: D, segment_start: u64, buffer: B) -> Result<Self, Error<D::Error>> {
        let cursor = SegmentCursor::open(&mut device, segment_start, buffer)?;
        Ok(SegmentReader { device, cursor })
    }

    /// Scans the segment to make every valid record readable; see
    /// [`SegmentCursor::recover_flushed_offset`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentCursor::recover_flushed_offset`].
    pub fn recover_flushed_offset(
        &mut self,
        mode: RecoveryMode,
    ) -> Result<ScanReport, Error<D::Error>> {
        self.cursor.recover_flushed_offset(&mut self.device, mode)
    }

    /// Lets the reader read records that end at or before `flushed_offset`.
    pub fn set_flushed_offset(&mut self, flushed_offset: u64) {
        self.cursor.set_flushed_offset(flushed_offset);
    }

    /// How far the reader may read.
    pub fn flushed_offset(&self) -> u64 {
        self.cursor.flushed_offset()
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        self.cursor.header()
    }

    /// Offset of the first record.
    pub fn records_start(&self) -> u64 {
        self.cursor.records_start()
    }

    /// Reads the user area; see [`SegmentCursor::read_user_area`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentCursor::read_user_area`].
    pub fn read_user_area(&mut self, out: &mut [u8]) -> Result<(), Error<D::Error>> {
        self.cursor.read_user_area(&mut self.device, out)
    }

    /// Reads and checks the record at `offset`; see
    /// [`SegmentCursor::read_record`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentCursor::read_record`].
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn read_record(
        &mut self,
        offset: u64,
        hint: ReadHint,
    ) -> Result<Record<'_>, Error<D::Error>> {
        self.cursor.read_record(&mut self.device, offset, hint)
    }

    /// Reads the records of one window from `offset`, checked together;
    /// see [`SegmentCursor::read_batch`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentCursor::read_batch`].
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn read_batch(&mut self, offset: u64) -> Result<Batch<'_>, Error<D::Error>> {
        self.cursor.read_batch(&mut self.device, offset)
    }

    /// Reads the record at `offset` into `out`; see
    /// [`SegmentCursor::read_record_into`].
    ///
    /// # Errors
    ///
    /// As for [`SegmentCursor::read_record_into`].
    pub fn read_record_into(
        &mut self,
        offset: u64,
        hint: ReadHint,
        out: &mut [u8],
    ) -> Result<(usize, u64), Error<D::Error>> {
        self.cursor
            .read_record_into(&mut self.device, offset, hint, out)
    }

    /// The device, for callers that need to hand it on.
    pub fn into_device(self) -> D {
        self.device
    }
}
