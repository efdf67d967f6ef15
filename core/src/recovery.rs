//! The recovery scan: find where a segment's valid records end, and decide
//! what the bytes after them are.
//!
//! # The walk
//!
//! From the first record position, validate one record after another
//! (plausible header, checksum over salt, offset and payload) until a
//! position fails. A batch whose last record (the one without
//! [`FLAG_BATCH_CONTINUES`]) is missing
//! is discarded whole: the records end where the batch began. That offset is
//! the *records end*.
//!
//! # The probe
//!
//! Then every aligned position from the records end to the segment's end is
//! looked at: blank units (all erased or all zero) are skipped, other bytes
//! mark the *dirty end*, and any position holding a valid record is a *later
//! record*. Its `synced` field says how far the segment was durable when it
//! was written. A later record flagged
//! [`FLAG_RESUMES_AFTER_HOLE`] whose
//! `synced` equals the records end is the writer's own mark that it skipped a
//! torn tail it could not erase (flash): the walk continues from it.
//!
//! # Decision table
//!
//! | bytes after the records end                         | class          | why                                                       |
//! |-----------------------------------------------------|----------------|-----------------------------------------------------------|
//! | all blank                                           | clean          | nothing was written past the last record                  |
//! | dirty, no later record                              | torn           | a write in flight at the cut, never acknowledged          |
//! | dirty, later records all with `synced <= end`       | torn           | unsynced writes that landed out of order; none was acked  |
//! | a later record with `synced > end`                  | corrupt middle | the bad bytes had been synced when that record was written|
//! | a `RESUMES_AFTER_HOLE` record with `synced == end`  | hole, continue | the writer skipped a torn tail it could not erase         |
//!
//! A torn tail is made harmless by the writer before its next write (zeroed
//! on files, skipped with a `RESUMES_AFTER_HOLE` record on flash). A corrupt
//! middle is an error in [`RecoveryMode::Strict`]; with
//! [`RecoveryMode::TruncateAtCorruption`] it is treated as a torn tail and
//! the discarded bytes are reported.
//!
//! One case no log can tell from a torn write: damage to the records of the
//! very last sync, with nothing written after them. It is reported as a torn
//! tail with the bytes discarded, never silently.
//!
//! Every loop is bounded by the segment size divided by the record alignment.

use crate::device::BlockDevice;
use crate::error::{Corruption, Error};
use crate::format::{
    FLAG_BATCH_CONTINUES, FLAG_MARKER, FLAG_RESUMES_AFTER_HOLE, MARKER_MAGIC,
    MARKER_PAYLOAD_MIN_BYTES, RECORD_HEADER_LEN, RECORD_HEADER_LEN_U32, RecordDefect, RecordHeader,
    SegmentHeader, is_blank, record_hasher, stored_checksum,
};
use crate::read_plan::{self, ReadHint, Window};
use crate::view::{Body, FoundHeader, SegmentView, usable_len_bytes};

/// What recovery does with a corrupt middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Corruption of synced data is an error naming the segment and offset;
    /// nothing synced is ever dropped.
    #[default]
    Strict,
    /// Point-in-time recovery: cut the log at the first corruption and report
    /// how much was dropped.
    TruncateAtCorruption,
}

/// How the records of a segment end, as reported to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailState {
    /// The records end in blank space.
    Clean,
    /// Bytes after the last valid record were discarded.
    TruncatedAt {
        /// Offset of the first discarded byte.
        offset: u64,
        /// How many bytes were discarded (up to the last non-blank unit).
        bytes_discarded: u64,
    },
}

/// The class of the bytes after the records end: the decision table's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailClass {
    /// Blank to the segment's end.
    Clean,
    /// Unacknowledged bytes from `offset` up to `dirty_end`.
    Torn {
        /// The records end.
        offset: u32,
        /// One past the last non-blank byte (rounded to the record alignment).
        dirty_end: u32,
    },
    /// Synced records were damaged at `offset`.
    Corrupt {
        /// The records end.
        offset: u32,
        /// One past the last non-blank byte.
        dirty_end: u32,
        /// A record written after `offset` was synced.
        next_valid_offset: u32,
    },
}

/// What the valid records found after the records end say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaterRecord {
    /// Offset of the first of them.
    pub offset: u32,
    /// The largest `synced` field among them.
    pub synced_offset: u32,
}

/// The decision table: classify the bytes after `records_end`.
///
/// `latest` sums up the valid records after the records end, if any.
pub const fn classify_tail(
    records_end: u32,
    dirty_end: u32,
    latest: Option<LaterRecord>,
) -> TailClass {
    if let Some(later) = latest
        && later.synced_offset > records_end
    {
        return TailClass::Corrupt {
            offset: records_end,
            dirty_end,
            next_valid_offset: later.offset,
        };
    }
    if dirty_end <= records_end {
        TailClass::Clean
    } else {
        TailClass::Torn {
            offset: records_end,
            dirty_end,
        }
    }
}

/// What the scan found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    /// Where the next record goes once the tail is dealt with.
    pub records_end: u32,
    /// Valid records before `records_end`.
    pub record_count: u64,
    /// Offset of the last valid record.
    pub last_record_offset: Option<u32>,
    /// The class of the bytes after `records_end`.
    pub tail: TailClass,
    /// Torn tails skipped inside the records (flash holes already marked).
    pub holes_skipped: u32,
    /// The records end with a clean-close marker starting here: a writer
    /// resumes at it (wiping it first) rather than after it.
    pub trailing_marker: Option<u32>,
}

/// `true` when a buffer of `len` bytes is at least [`SCAN_SCRATCH_MIN_BYTES`]
/// and, trimmed to whole read units of `read_size_bytes`, still holds what
/// a scan reads at once: one random read (header + 2 KiB) in whole units.
/// Used wherever a buffer meets a device.
// Out of line: inlined at each of those places it cost 84 more bytes of
// Thumb code in firmware (examples/firmware/FIGURES.md).
#[inline(never)]
pub fn scratch_fits(len: usize, read_size_bytes: u32) -> bool {
    if len < SCAN_SCRATCH_MIN_BYTES {
        return false;
    }
    let unit = u64::from(read_size_bytes.max(1));
    let needed = read_plan::RANDOM_READ_BYTES.next_multiple_of(unit);
    let len = len as u64;
    len - len % unit >= needed
}

/// A scratch buffer of this size fits every device with read units up to
/// 2 KiB; larger units need [`scratch_fits`] to hold.
// The cast is exact: the constant is 4128.
#[allow(clippy::cast_possible_truncation)]
pub const SCAN_SCRATCH_MIN_BYTES: usize = 2 * read_plan::RANDOM_READ_BYTES as usize;

/// Reads and checks records of one segment through a scratch buffer.
pub(crate) struct Validator<'a, D> {
    pub(crate) device: &'a mut D,
    /// The segment through the scratch buffer (its usable part).
    pub(crate) view: SegmentView<'a>,
    /// Zeros count as blank (devices that need no erase).
    pub(crate) zero_is_blank: bool,
}

impl<D: BlockDevice> Validator<'_, D> {
    /// Validates the record at `offset`, reading ahead up to `limit`.
    /// Returns its header, or why it is not a record. The checks are the
    /// reader's ([`SegmentView`]), markers included as records.
    pub(crate) fn check(
        &mut self,
        offset: u32,
        limit: u32,
    ) -> Result<Result<RecordHeader, RecordDefect>, D::Error> {
        let hint = ReadHint::Sequential;
        let found = match self
            .view
            .header_at(self.device, offset, limit, hint, true)?
        {
            Ok(found) => found,
            Err(defect) => return Ok(Err(defect)),
        };
        match self.view.record(self.device, offset, &found, limit, hint)? {
            Body::Valid(_) => Ok(Ok(found.0)),
            Body::BadChecksum => Ok(Err(RecordDefect::BadChecksum)),
            Body::Spill {
                rest_start,
                rest_len_bytes,
            } => self.check_spilled(offset, &found, rest_start, rest_len_bytes),
        }
    }

    /// A record larger than the buffer: hashes what the window holds, then
    /// streams the rest through the buffer in bounded chunks.
    fn check_spilled(
        &mut self,
        offset: u32,
        found: &FoundHeader,
        rest_start: u32,
        rest_len_bytes: u32,
    ) -> Result<Result<RecordHeader, RecordDefect>, D::Error> {
        let (header, header_bytes) = found;
        let view = &mut self.view;
        let mut hasher = record_hasher(view.header, u64::from(offset), header_bytes);
        let at = (offset - view.window.start) as usize;
        // Within the segment (`header_at` checked the extent), so a u32.
        let payload_end = offset + RECORD_HEADER_LEN_U32 + header.len_bytes;
        let held_end = view.window.end().min(payload_end);
        let held = (held_end - offset) as usize;
        hasher.update(&view.buffer[at + RECORD_HEADER_LEN..at + held]);
        let mut next = rest_start;
        let end = rest_start + rest_len_bytes;
        while next < end {
            let chunk = (end - next).min(view.buffer_len_bytes);
            view.fill(self.device, next, chunk, 0)?;
            *view.window = Window {
                start: next,
                len_bytes: chunk,
            };
            let hashed = payload_end.saturating_sub(next).min(chunk);
            hasher.update(&view.buffer[..hashed as usize]);
            next += chunk;
        }
        if stored_checksum(hasher.finalize()) == header.checksum {
            Ok(Ok(*header))
        } else {
            Ok(Err(RecordDefect::BadChecksum))
        }
    }
}

/// The walk's result before the probe.
struct Walk {
    records_end: u32,
    record_count: u64,
    last_record_offset: Option<u32>,
    /// The walk ended on a clean-close marker that starts here.
    trailing_marker: Option<u32>,
}

/// Walks valid records from `from`, discarding an unfinished batch.
fn walk<D: BlockDevice>(
    validator: &mut Validator<'_, D>,
    from: u32,
    record_count: u64,
    last_record_offset: Option<u32>,
) -> Result<Walk, D::Error> {
    let header = validator.view.header;
    let segment_end = header.segment_size_bytes;
    let mut walk = Walk {
        records_end: from,
        record_count,
        last_record_offset,
        trailing_marker: None,
    };
    let mut position = from;
    let mut count = record_count;
    let mut last = last_record_offset;
    let max_steps = segment_end / header.record_align_bytes() + 1;
    for _ in 0..max_steps {
        let Ok(record) = validator.check(position, segment_end)? else {
            break;
        };
        // A clean-close marker takes room but is not a record of the log.
        if record.flags & FLAG_MARKER == 0 {
            count += 1;
            last = Some(position);
        }
        // Extents are bounded by the segment end, checked in `check`.
        let start = position;
        position =
            u32::try_from(u64::from(position) + record.extent_bytes(header)).unwrap_or(u32::MAX);
        if record.flags & FLAG_BATCH_CONTINUES == 0 {
            walk = Walk {
                records_end: position,
                record_count: count,
                last_record_offset: last,
                trailing_marker: (record.flags & FLAG_MARKER != 0).then_some(start),
            };
        }
        if position >= segment_end {
            break;
        }
    }
    Ok(walk)
}

/// What the probe found after the records end.
struct Probe {
    dirty_end: u32,
    latest: Option<LaterRecord>,
    resume: Option<u32>,
}

/// Looks at every aligned unit from `from` to the segment's end.
fn probe<D: BlockDevice>(validator: &mut Validator<'_, D>, from: u32) -> Result<Probe, D::Error> {
    let header = validator.view.header;
    let align = header.record_align_bytes();
    let segment_end = header.segment_size_bytes;
    let erased = validator.device.geometry().erased_byte;
    let mut found = Probe {
        dirty_end: from,
        latest: None,
        resume: None,
    };
    let mut position = from;
    let max_steps = segment_end / align + 1;
    for _ in 0..max_steps {
        if position >= segment_end {
            break;
        }
        let unit_len = align.min(segment_end - position);
        if let Some(blank_bytes) = unit_is_blank(validator, position, unit_len, erased)? {
            position = position.saturating_add(blank_bytes);
            continue;
        }
        found.dirty_end = position + unit_len;
        match validator.check(position, segment_end)? {
            Ok(record) => {
                let later = LaterRecord {
                    offset: position,
                    synced_offset: record.synced_offset,
                };
                if record.flags & FLAG_RESUMES_AFTER_HOLE != 0 && record.synced_offset == from {
                    found.resume = Some(position);
                    return Ok(found);
                }
                // Report the first later record; decide on the largest
                // `synced` (the fields only grow in write order).
                found.latest = Some(match found.latest {
                    None => later,
                    Some(first) => LaterRecord {
                        offset: first.offset,
                        synced_offset: first.synced_offset.max(later.synced_offset),
                    },
                });
                let end = u64::from(position) + record.extent_bytes(header);
                found.dirty_end = u32::try_from(end).unwrap_or(segment_end);
                position = found.dirty_end;
            }
            Err(_) => position += align,
        }
    }
    Ok(found)
}

/// `true` when the `unit_len` bytes at `position` are blank. Reads through
/// the validator's window so consecutive units cost one device read per
/// window; when the unit is blank, also returns how far the blank run goes
/// inside the window, so the probe can skip clean space a window at a time.
fn unit_is_blank<D: BlockDevice>(
    validator: &mut Validator<'_, D>,
    position: u32,
    unit_len: u32,
    erased: u8,
) -> Result<Option<u32>, D::Error> {
    let view = &mut validator.view;
    if !view.window.contains(position, unit_len) {
        let segment_end = view.header.segment_size_bytes;
        let want = view.buffer_len_bytes.min(segment_end - position);
        view.fill(validator.device, position, want, 0)?;
        *view.window = Window {
            start: position,
            len_bytes: want,
        };
    }
    let at = (position - view.window.start) as usize;
    let held = view.window.len_bytes as usize;
    let unit = unit_len as usize;
    if !is_blank(&view.buffer[at..at + unit], erased, validator.zero_is_blank) {
        return Ok(None);
    }
    // Skip every whole unit up to the first byte that is not erased: a
    // byte search the compiler vectorises, instead of a call per unit.
    let rest = &view.buffer[at..held];
    let clean = rest.iter().position(|&b| b != erased).unwrap_or(rest.len());
    let skip = (clean - clean % unit).max(unit);
    Ok(Some(u32::try_from(skip).unwrap_or(unit_len)))
}

/// Scans a segment: walks its records, probes the rest, classifies the tail.
///
/// `scratch` must hold at least [`SCAN_SCRATCH_MIN_BYTES`]; a larger one
/// (64 KiB) means fewer, larger device reads. The device is only read.
///
/// # Errors
///
/// [`Error::Device`] when a read fails.
pub fn scan<D: BlockDevice>(
    device: &mut D,
    segment_start: u64,
    header: &SegmentHeader,
    scratch: &mut [u8],
) -> Result<ScanReport, Error<D::Error>> {
    let geometry = device.geometry();
    if !scratch_fits(scratch.len(), geometry.read_size_bytes) {
        return Err(Error::Config(crate::error::ConfigError::Buffer));
    }
    let usable = usable_len_bytes(scratch.len(), geometry.read_size_bytes);
    let mut window = Window::default();
    let mut validator = Validator {
        device,
        view: SegmentView {
            segment_start,
            header,
            buffer: &mut scratch[..usable as usize],
            buffer_len_bytes: usable,
            window: &mut window,
        },
        zero_is_blank: !geometry.erase_before_write,
    };
    let mut from = header.records_start();
    let mut record_count = 0;
    let mut last_record_offset = None;
    let mut holes_skipped = 0;
    let max_holes = header.segment_size_bytes / header.record_align_bytes() + 1;
    loop {
        let walked =
            walk(&mut validator, from, record_count, last_record_offset).map_err(Error::Device)?;
        let found = probe(&mut validator, walked.records_end).map_err(Error::Device)?;
        match found.resume {
            Some(resume) if holes_skipped < max_holes => {
                holes_skipped += 1;
                from = resume;
                record_count = walked.record_count;
                last_record_offset = walked.last_record_offset;
            }
            _ => {
                return Ok(ScanReport {
                    records_end: walked.records_end,
                    record_count: walked.record_count,
                    last_record_offset: walked.last_record_offset,
                    tail: classify_tail(walked.records_end, found.dirty_end, found.latest),
                    holes_skipped,
                    trailing_marker: walked.trailing_marker,
                });
            }
        }
    }
}

/// The error for a corrupt middle found in strict mode.
pub(crate) fn corrupt_error<E: crate::device::Error>(
    header: &SegmentHeader,
    offset: u32,
    next_valid_offset: u32,
) -> Error<E> {
    Error::Corrupt {
        segment: header.sequence,
        offset: u64::from(offset),
        reason: Corruption::SyncedDataDamaged {
            next_valid_offset: u64::from(next_valid_offset),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let later = |offset, synced_offset| {
            Some(LaterRecord {
                offset,
                synced_offset,
            })
        };
        let torn = TailClass::Torn {
            offset: 100,
            dirty_end: 200,
        };
        let rows = [
            // Blank after the records end.
            ((100, 100, None), TailClass::Clean),
            // Dirty bytes, nothing valid after them.
            (
                (100, 180, None),
                TailClass::Torn {
                    offset: 100,
                    dirty_end: 180,
                },
            ),
            // Valid records after, written before the bad bytes were synced.
            ((100, 200, later(160, 100)), torn),
            ((100, 200, later(160, 64)), torn),
            // A record written after the bad bytes had been synced.
            (
                (100, 200, later(160, 120)),
                TailClass::Corrupt {
                    offset: 100,
                    dirty_end: 200,
                    next_valid_offset: 160,
                },
            ),
        ];
        for ((end, dirty_end, latest), expected) in rows {
            assert_eq!(
                classify_tail(end, dirty_end, latest),
                expected,
                "{end} {dirty_end} {latest:?}"
            );
        }
    }
}

#[cfg(test)]
mod scan_tests {
    use std::vec::Vec;

    use super::*;
    use crate::segment::{SegmentConfig, SegmentIdentity, SegmentWriter};
    use crate::test_device::MemDevice;

    const SEGMENT: u32 = 4096;

    fn identity() -> SegmentIdentity {
        SegmentIdentity::first(3, 1, 0xABCD)
    }

    /// A segment with `count` records of 20 bytes, synced after each; returns
    /// the device and the record offsets.
    fn written(mut device: MemDevice, count: usize) -> (MemDevice, Vec<u64>) {
        let config = SegmentConfig::new(SEGMENT);
        let mut writer = SegmentWriter::create(&mut device, 0, &config, identity(), &[]).unwrap();
        let mut offsets = Vec::new();
        for i in 0..count {
            offsets.push(
                writer
                    .append(&[u8::try_from(i).unwrap(); 20])
                    .unwrap()
                    .offset,
            );
            writer.sync().unwrap();
        }
        (device, offsets)
    }

    fn scan_of(device: &mut MemDevice) -> ScanReport {
        let header = crate::segment::read_segment_header(device, 0).unwrap();
        let mut scratch = [0u8; SCAN_SCRATCH_MIN_BYTES];
        scan(device, 0, &header, &mut scratch).unwrap()
    }

    #[test]
    fn clean_segment_scans_to_its_last_record() {
        let (mut device, offsets) = written(MemDevice::file_like(u64::from(SEGMENT)), 5);
        let report = scan_of(&mut device);
        assert_eq!(report.record_count, 5);
        assert_eq!(
            report.last_record_offset,
            Some(u32::try_from(offsets[4]).unwrap())
        );
        assert_eq!(report.tail, TailClass::Clean);
    }

    #[test]
    fn a_cut_at_every_byte_of_the_last_record_is_a_torn_tail() {
        let (full, offsets) = written(MemDevice::file_like(u64::from(SEGMENT)), 4);
        let last = usize::try_from(offsets[3]).unwrap();
        let end = last + 16 + 20; // the padding after it carries nothing
        for cut in last..end {
            for fill in [0x00u8, 0xA5] {
                let mut device = full.clone();
                device.bytes[cut..end].fill(fill);
                let report = scan_of(&mut device);
                assert_eq!(report.record_count, 3, "cut {cut} fill {fill:#x}");
                assert_eq!(u64::from(report.records_end), offsets[3]);
                let expected_dirty = cut > last || fill != 0;
                match report.tail {
                    TailClass::Clean => assert!(!expected_dirty, "cut {cut} fill {fill:#x}"),
                    TailClass::Torn { offset, .. } => {
                        assert!(expected_dirty);
                        assert_eq!(u64::from(offset), offsets[3]);
                    }
                    other => panic!("cut {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn damage_before_synced_records_is_corruption_not_a_tail() {
        let (mut device, offsets) = written(MemDevice::file_like(u64::from(SEGMENT)), 4);
        let second = usize::try_from(offsets[1]).unwrap();
        device.bytes[second + 20] ^= 0x10;
        let report = scan_of(&mut device);
        assert_eq!(report.record_count, 1);
        assert_eq!(
            report.tail,
            TailClass::Corrupt {
                offset: u32::try_from(offsets[1]).unwrap(),
                dirty_end: u32::try_from(offsets[3]).unwrap() + 40,
                next_valid_offset: u32::try_from(offsets[2]).unwrap(),
            }
        );
    }

    #[test]
    fn unsynced_records_after_a_lost_one_are_a_torn_tail() {
        // Records 1..3 written without a sync in between; record 1 is lost
        // but 2 and 3 reached the medium: nothing of it was acknowledged.
        let mut device = MemDevice::file_like(u64::from(SEGMENT));
        let config = SegmentConfig::new(SEGMENT);
        let mut writer = SegmentWriter::create(&mut device, 0, &config, identity(), &[]).unwrap();
        let first = writer.append(b"zero").unwrap().offset;
        writer.sync().unwrap();
        let lost = writer.append(b"one").unwrap().offset;
        writer.append(b"two").unwrap();
        writer.append(b"three").unwrap();
        let lost = usize::try_from(lost).unwrap();
        device.bytes[lost..lost + 24].fill(0);
        let report = scan_of(&mut device);
        assert_eq!(report.record_count, 1);
        assert!(first < lost as u64);
        assert!(matches!(report.tail, TailClass::Torn { offset, .. } if offset as usize == lost));
    }

    #[test]
    fn an_unfinished_batch_is_discarded_whole() {
        let mut device = MemDevice::file_like(u64::from(SEGMENT));
        let config = SegmentConfig::new(SEGMENT);
        let mut writer = SegmentWriter::create(&mut device, 0, &config, identity(), &[]).unwrap();
        writer.append(b"before").unwrap();
        writer.sync().unwrap();
        let batch = writer.append_batch(&[b"a", b"b", b"c"]).unwrap();
        // Lose the batch's last record only.
        let last_record = usize::try_from(batch.end).unwrap() - 24;
        device.bytes[last_record..last_record + 24].fill(0);
        let report = scan_of(&mut device);
        assert_eq!(report.record_count, 1);
        assert_eq!(u64::from(report.records_end), batch.start);
        assert!(matches!(report.tail, TailClass::Torn { .. }));
    }

    #[test]
    fn flash_torn_tail_is_skipped_and_the_next_record_survives_reboots() {
        let mut device = MemDevice::nor(8192, 4, 4096);
        let config = SegmentConfig::new(SEGMENT);
        let mut writer = SegmentWriter::create(&mut device, 0, &config, identity(), &[]).unwrap();
        writer.append(b"kept").unwrap();
        writer.sync().unwrap();
        let torn = writer.append(&[0x11; 40]).unwrap().offset;
        // Power cut half-way through programming: some words hold garbage.
        let at = usize::try_from(torn).unwrap();
        device.bytes[at + 8..at + 56].fill(0xFF);
        device.bytes[at + 30] = 0x5A;
        for reboot in 0..3 {
            let mut scratch = [0u8; SCAN_SCRATCH_MIN_BYTES];
            let (mut writer, recovered) =
                SegmentWriter::open(&mut device, 0, RecoveryMode::Strict, &mut scratch).unwrap();
            assert_eq!(recovered.record_count, 1 + reboot, "reboot {reboot}");
            if reboot == 0 {
                assert!(
                    matches!(recovered.tail, TailState::TruncatedAt { offset, .. } if offset == torn)
                );
            } else {
                assert_eq!(recovered.tail, TailState::Clean);
            }
            writer.append(b"after").unwrap();
            writer.sync().unwrap();
        }
        let report = scan_of(&mut device);
        assert_eq!(report.record_count, 4);
        assert_eq!(report.holes_skipped, 1);
    }

    #[test]
    fn scan_never_panics_on_arbitrary_bytes_after_a_valid_header() {
        let (template, _) = written(MemDevice::file_like(u64::from(SEGMENT)), 0);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200 {
            let mut device = template.clone();
            for byte in &mut device.bytes[64..] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state.to_le_bytes()[0];
            }
            let report = scan_of(&mut device);
            assert_eq!(report.record_count, 0);
        }
    }
}

/// Extent of a clean-close marker at this record alignment, if the log
/// writes markers on such a device: not on flash (a marker there could not
/// be wiped before the next append) and not for alignments over 64 bytes.
pub fn marker_extent_bytes(record_align_bytes: u32, erase_before_write: bool) -> Option<u32> {
    if erase_before_write || record_align_bytes > MARKER_ALIGN_MAX_BYTES {
        return None;
    }
    let unpadded = RECORD_HEADER_LEN as u64 + MARKER_PAYLOAD_MIN_BYTES as u64;
    crate::format::align_up(unpadded, u64::from(record_align_bytes))
        .and_then(|v| u32::try_from(v).ok())
}

/// Largest record alignment for which markers are written.
pub const MARKER_ALIGN_MAX_BYTES: u32 = 64;

/// Bytes per probe of the blank-boundary search.
const BOUNDARY_BLOCK_BYTES: u32 = 4096;

/// A clean-close marker found at the end of a segment's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanClose {
    /// Where the marker starts: the next record goes here once it is wiped.
    pub marker_offset: u32,
    /// Records in the segment, as the marker says.
    pub record_count: u64,
}

/// Looks for a clean-close marker without reading the records: a binary
/// search over 4 KiB blocks for the first blank one, then the marker must
/// end exactly at the last non-blank unit before it. About
/// `log2(segment / 4 KiB) + 2` reads.
///
/// `None` means "scan instead": no marker, a marker that does not validate,
/// or a device that never gets markers. A marker is only ever trusted when
/// it validates (checksum over salt and offset, flag, magic).
///
/// # Errors
///
/// [`Error::Device`] when a read fails; [`Error::Config`] for a scratch
/// buffer under [`SCAN_SCRATCH_MIN_BYTES`].
pub fn find_clean_close<D: BlockDevice>(
    device: &mut D,
    segment_start: u64,
    header: &SegmentHeader,
    scratch: &mut [u8],
) -> Result<Option<CleanClose>, Error<D::Error>> {
    let geometry = device.geometry();
    let align = header.record_align_bytes();
    let Some(extent) = marker_extent_bytes(align, geometry.erase_before_write) else {
        return Ok(None);
    };
    // The same rule as `scan`: the buffer, trimmed to whole read units, must
    // hold the minimum, so a log that opens from its marker can also scan.
    if !scratch_fits(scratch.len(), geometry.read_size_bytes) || geometry.read_size_bytes > align {
        return Err(Error::Config(crate::error::ConfigError::Buffer));
    }
    let records_start = header.records_start();
    let segment_end = header.segment_size_bytes;
    let erased = geometry.erased_byte;
    let blocks = (segment_end - records_start).div_ceil(BOUNDARY_BLOCK_BYTES);
    let mut block_blank = |index: u32, scratch: &mut [u8]| -> Result<bool, D::Error> {
        let start = records_start + index * BOUNDARY_BLOCK_BYTES;
        let len = BOUNDARY_BLOCK_BYTES.min(segment_end - start) as usize;
        device.read(segment_start + u64::from(start), &mut scratch[..len])?;
        Ok(scratch[..len].iter().all(|&b| b == erased))
    };
    // The first blank block; blocks before it hold the records.
    let (mut low, mut high) = (0u32, blocks);
    while low < high {
        let middle = low + (high - low) / 2;
        if block_blank(middle, scratch).map_err(Error::Device)? {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    if low == 0 {
        return Ok(None);
    }
    // The last non-blank unit of the last non-blank block ends the marker.
    let block_start = records_start + (low - 1) * BOUNDARY_BLOCK_BYTES;
    let block_len = BOUNDARY_BLOCK_BYTES.min(segment_end - block_start) as usize;
    device
        .read(
            segment_start + u64::from(block_start),
            &mut scratch[..block_len],
        )
        .map_err(Error::Device)?;
    let Some(last_dirty) = scratch[..block_len].iter().rposition(|&b| b != erased) else {
        return Ok(None);
    };
    let dirty_end = block_start + u32::try_from(last_dirty).unwrap_or(0) + 1;
    let end =
        u32::try_from(crate::format::align_up(u64::from(dirty_end), u64::from(align)).unwrap_or(0))
            .unwrap_or(0);
    let Some(marker_offset) = end.checked_sub(extent).filter(|&m| m >= records_start) else {
        return Ok(None);
    };
    let mut marker = [0u8; MARKER_ALIGN_MAX_BYTES as usize];
    let marker = &mut marker[..extent as usize];
    device
        .read(segment_start + u64::from(marker_offset), marker)
        .map_err(Error::Device)?;
    Ok(
        decode_marker(header, marker_offset, marker, erased).map(|record_count| CleanClose {
            marker_offset,
            record_count,
        }),
    )
}

/// The record count a marker at `offset` carries, if the bytes are a valid
/// marker.
fn decode_marker(header: &SegmentHeader, offset: u32, bytes: &[u8], erased: u8) -> Option<u64> {
    let mut header_bytes = [0u8; RECORD_HEADER_LEN];
    header_bytes.copy_from_slice(bytes.get(..RECORD_HEADER_LEN)?);
    let record = RecordHeader::decode(&header_bytes, offset, header, erased).ok()?;
    let payload = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + record.len_bytes as usize)?;
    let mut hasher = record_hasher(header, u64::from(offset), &header_bytes);
    hasher.update(payload);
    let valid = record.flags & FLAG_MARKER != 0
        && stored_checksum(hasher.finalize()) == record.checksum
        && payload.len() >= MARKER_PAYLOAD_MIN_BYTES
        && payload[payload.len() - MARKER_MAGIC.len()..] == MARKER_MAGIC;
    let mut count = [0u8; 8];
    count.copy_from_slice(payload.get(..8)?);
    valid.then_some(u64::from_le_bytes(count))
}

/// The payload of a marker for `record_count` records filling `extent`.
pub(crate) fn marker_payload(
    record_count: u64,
    extent: u32,
    out: &mut [u8; MARKER_ALIGN_MAX_BYTES as usize],
) -> &[u8] {
    let len = extent as usize - RECORD_HEADER_LEN;
    let payload = &mut out[..len];
    payload.fill(0);
    payload[..8].copy_from_slice(&record_count.to_le_bytes());
    payload[len - MARKER_MAGIC.len()..].copy_from_slice(&MARKER_MAGIC);
    payload
}

#[cfg(test)]
// Host-only tests: offsets into small in-memory images fit any usize.
#[allow(clippy::cast_possible_truncation)]
mod marker_tests {
    use super::*;
    use crate::segment::{SegmentAppender, SegmentConfig, SegmentIdentity};
    use crate::test_device::MemDevice;

    #[test]
    fn a_cleanly_closed_segment_opens_from_its_marker_and_appends_after_wiping_it() {
        let mut device = MemDevice::file_like(1 << 16);
        let config = SegmentConfig::new(1 << 16);
        let identity = SegmentIdentity::first(0, 1, 42);
        let mut appender = SegmentAppender::create(&mut device, 0, &config, identity, &[]).unwrap();
        for i in 0..300u32 {
            appender
                .append(&mut device, &i.to_le_bytes().repeat(i as usize % 50))
                .unwrap();
        }
        let end = appender.written_offset();
        assert!(appender.write_close_marker(&mut device).unwrap());
        let mut scratch = [0u8; SCAN_SCRATCH_MIN_BYTES];
        let (mut reopened, recovered) = SegmentAppender::open_clean(&mut device, 0, &mut scratch)
            .unwrap()
            .expect("marker found");
        assert_eq!(recovered.record_count, 300);
        assert_eq!(reopened.written_offset(), end);
        // The full scan agrees, and does not count the marker.
        let header = *reopened.header();
        let report = scan(&mut device, 0, &header, &mut scratch).unwrap();
        assert_eq!(
            (report.record_count, u64::from(report.records_end)),
            (300, end + 32)
        );
        // Appending wipes the marker first: a scan then sees 301 records and
        // no marker to open from until the next clean close.
        reopened.append(&mut device, b"after").unwrap();
        assert!(
            device.bytes[end as usize..end as usize + 16]
                .iter()
                .any(|&b| b != 0)
        );
        assert_eq!(
            SegmentAppender::open_clean(&mut device, 0, &mut scratch)
                .unwrap()
                .map(|r| r.1),
            None
        );
        let report = scan(&mut device, 0, &header, &mut scratch).unwrap();
        assert_eq!(report.record_count, 301);
        assert_eq!(report.tail, TailClass::Clean);
    }

    #[test]
    fn a_damaged_marker_is_never_trusted() {
        let mut device = MemDevice::file_like(1 << 16);
        let config = SegmentConfig::new(1 << 16);
        let mut appender = SegmentAppender::create(
            &mut device,
            0,
            &config,
            SegmentIdentity::first(0, 1, 7),
            &[],
        )
        .unwrap();
        appender.append(&mut device, b"one").unwrap();
        let marker_at = appender.written_offset() as usize;
        appender.write_close_marker(&mut device).unwrap();
        for byte in marker_at..marker_at + 32 {
            let mut damaged = device.clone();
            damaged.bytes[byte] ^= 0x04;
            let mut scratch = [0u8; SCAN_SCRATCH_MIN_BYTES];
            let found = SegmentAppender::open_clean(&mut damaged, 0, &mut scratch).unwrap();
            assert!(found.is_none(), "flipped byte {byte} still trusted");
        }
    }

    #[test]
    fn flash_gets_no_marker() {
        let mut device = MemDevice::nor(8192, 4, 4096);
        let config = SegmentConfig::new(4096);
        let mut appender = SegmentAppender::create(
            &mut device,
            0,
            &config,
            SegmentIdentity::first(0, 1, 7),
            &[],
        )
        .unwrap();
        appender.append(&mut device, b"one").unwrap();
        assert!(!appender.write_close_marker(&mut device).unwrap());
    }
}
