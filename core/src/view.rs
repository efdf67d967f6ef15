//! One segment seen through a buffer: the record reads and checks that the
//! recovery scan and the reader share, so the two cannot disagree on what a
//! valid record is, and a firmware carries one copy of them.
//!
//! What to read is decided by [`read_plan`]; this module carries it out,
//! decodes record headers and verifies checksums. It never returns the
//! log's [`Error`](crate::Error): the scan and the reader each say in their
//! own terms what a [`RecordDefect`] means.

use core::ops::Range;

use crate::device::BlockDevice;
use crate::format::{
    FLAG_MARKER, RECORD_HEADER_LEN, RecordDefect, RecordHeader, SegmentHeader, record_hasher,
    stored_checksum,
};
use crate::read_plan::{self, ReadHint, RecordPlan, Window};

/// A record header as [`SegmentView::header_at`] found it, with its bytes
/// (the checksum covers them).
pub(crate) type FoundHeader = (RecordHeader, [u8; RECORD_HEADER_LEN]);

/// What [`SegmentView::record`] found of a record's body.
pub(crate) enum Body {
    /// The record is whole in the buffer and its checksum matches: the
    /// payload is at this range of the buffer.
    Valid(Range<usize>),
    /// The record is whole in the buffer and its checksum does not match.
    BadChecksum,
    /// The record is larger than the buffer: the window holds its start,
    /// the rest is `rest_len_bytes` from segment offset `rest_start`.
    Spill {
        /// Segment offset of the first byte not in the window.
        rest_start: u32,
        /// Bytes of the record after the window.
        rest_len_bytes: u32,
    },
}

/// Where [`SegmentView::bring_record`] left a record's body.
pub(crate) enum Brought {
    /// The record is whole in the buffer, its payload at this range; its
    /// checksum is not checked yet.
    InBuffer(Range<usize>),
    /// The record is larger than the buffer: as [`Body::Spill`].
    Spill {
        /// Segment offset of the first byte not in the window.
        rest_start: u32,
        /// Bytes of the record after the window.
        rest_len_bytes: u32,
    },
}

/// How much of a buffer of `len` bytes reads use: whole read units, and
/// no more than a segment can hold (segment offsets are `u32`).
pub(crate) fn usable_len_bytes(len: usize, read_size_bytes: u32) -> u32 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    len - len % read_size_bytes
}

/// A segment of a device seen through a buffer, of which `window` says
/// what it holds. Borrowed from its owner (the scan's scratch, a reader's
/// cursor) for one call or one scan.
pub(crate) struct SegmentView<'a> {
    /// Where the segment starts on its device.
    pub(crate) segment_start: u64,
    /// The segment's header.
    pub(crate) header: &'a SegmentHeader,
    /// The buffer; only its first `buffer_len_bytes` are used.
    pub(crate) buffer: &'a mut [u8],
    /// The buffer's length in whole read units.
    pub(crate) buffer_len_bytes: u32,
    /// What the buffer holds.
    pub(crate) window: &'a mut Window,
}

impl SegmentView<'_> {
    /// Reads `len_bytes` from segment offset `start` into the buffer at
    /// `buffer_offset`. The window is emptied first: a failed read leaves
    /// the buffer undefined.
    pub(crate) fn fill<D: BlockDevice>(
        &mut self,
        device: &mut D,
        start: u32,
        len_bytes: u32,
        buffer_offset: u32,
    ) -> Result<(), D::Error> {
        *self.window = Window::default();
        let from = buffer_offset as usize;
        let target = &mut self.buffer[from..from + len_bytes as usize];
        device.read(self.segment_start + u64::from(start), target)
    }

    /// Brings the header of the record at `offset` into the window and
    /// decodes it. The record must end at or before `limit` (a multiple of
    /// the record alignment, which no read passes). A marker is a defect
    /// unless `allow_marker`.
    // Out of line on bare metal: the scan and the reader both call it, and
    // one copy is the point. Left to the compiler on hosts, where every
    // record read and scanned calls it.
    // Inline on hosts: returned through memory, its header and bytes were
    // stored piece by piece and loaded back in wider words, which stalls.
    #[cfg_attr(target_os = "none", inline(never))]
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn header_at<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u32,
        limit: u32,
        hint: ReadHint,
        allow_marker: bool,
    ) -> Result<Result<FoundHeader, RecordDefect>, D::Error> {
        if u64::from(offset) + RECORD_HEADER_LEN as u64 > u64::from(limit) {
            return Ok(Err(RecordDefect::ImplausibleLength));
        }
        // The device's units from the device, not copies kept beside it:
        // a flash's are constants, and the compiler then plans with them.
        let geometry = device.geometry();
        if let Some(fill) = read_plan::plan_header(
            hint,
            offset,
            *self.window,
            limit,
            self.buffer_len_bytes,
            geometry.read_size_bytes,
        ) {
            self.fill(device, fill.start, fill.len_bytes, fill.buffer_offset)?;
            *self.window = Window {
                start: fill.start,
                len_bytes: fill.len_bytes,
            };
        }
        let at = (offset - self.window.start) as usize;
        let mut bytes = [0u8; RECORD_HEADER_LEN];
        bytes.copy_from_slice(&self.buffer[at..at + RECORD_HEADER_LEN]);
        let header = match RecordHeader::decode(&bytes, offset, self.header, geometry.erased_byte) {
            Ok(header) => header,
            Err(defect) => return Ok(Err(defect)),
        };
        if header.flags & FLAG_MARKER != 0 && !allow_marker {
            return Ok(Err(RecordDefect::Marker));
        }
        // The padded extent: `limit` is aligned, so this is the same test
        // for the unpadded end, and reads planned with it stay aligned.
        if u64::from(offset) + header.extent_bytes(self.header) > u64::from(limit) {
            return Ok(Err(RecordDefect::ImplausibleLength));
        }
        Ok(Ok((header, bytes)))
    }

    /// Brings the whole record whose header [`header_at`](Self::header_at)
    /// found at `offset` into the window, if the buffer can hold it, and
    /// checks its checksum.
    #[cfg_attr(target_os = "none", inline(never))]
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn record<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u32,
        found: &FoundHeader,
        limit: u32,
        hint: ReadHint,
    ) -> Result<Body, D::Error> {
        let payload = match self.bring_record(device, offset, found, limit, hint)? {
            Brought::InBuffer(payload) => payload,
            Brought::Spill {
                rest_start,
                rest_len_bytes,
            } => {
                return Ok(Body::Spill {
                    rest_start,
                    rest_len_bytes,
                });
            }
        };
        let (header, header_bytes) = found;
        let mut hasher = record_hasher(self.header, u64::from(offset), header_bytes);
        hasher.update(&self.buffer[payload.clone()]);
        if stored_checksum(hasher.finalize()) == header.checksum {
            Ok(Body::Valid(payload))
        } else {
            Ok(Body::BadChecksum)
        }
    }

    /// Brings the whole record whose header [`header_at`](Self::header_at)
    /// found at `offset` into the window, if the buffer can hold it, and
    /// says where its payload is, unchecked: [`record`](Self::record)
    /// checks it, or a reader checks several at once.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub(crate) fn bring_record<D: BlockDevice>(
        &mut self,
        device: &mut D,
        offset: u32,
        found: &FoundHeader,
        limit: u32,
        hint: ReadHint,
    ) -> Result<Brought, D::Error> {
        let header = &found.0;
        // Fits: `header_at` checked that the record ends by `limit`.
        let extent = u32::try_from(header.extent_bytes(self.header)).unwrap_or(u32::MAX);
        match read_plan::plan_record(
            hint,
            offset,
            extent,
            *self.window,
            limit,
            self.buffer_len_bytes,
        ) {
            RecordPlan::InWindow => {}
            RecordPlan::Read { fill, new_window } => {
                self.fill(device, fill.start, fill.len_bytes, fill.buffer_offset)?;
                *self.window = new_window;
            }
            RecordPlan::Spill {
                rest_start,
                rest_len_bytes,
            } => {
                return Ok(Brought::Spill {
                    rest_start,
                    rest_len_bytes,
                });
            }
        }
        let at = (offset - self.window.start) as usize + RECORD_HEADER_LEN;
        Ok(Brought::InBuffer(at..at + header.len_bytes as usize))
    }
}
