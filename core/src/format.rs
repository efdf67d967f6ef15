//! The on-disk format, version 1. All integers are little-endian.
//!
//! A segment is a fixed-size region of a device: a header, an optional user
//! area, then records, then clean (erased or zero) space.
//!
//! ```text
//! segment
//! ┌──────────────────┬──────────────────────┬─────┬──────────┬──────────┬─────┬─────────────┐
//! │ header, 64 bytes │ user area (optional) │ pad │ record 0 │ record 1 │ ... │ clean space │
//! └──────────────────┴──────────────────────┴─────┴──────────┴──────────┴─────┴─────────────┘
//!                                                 ^ records_start: a multiple of record_align
//! ```
//!
//! # Segment header (64 bytes)
//!
//! | bytes  | field                 | type   | meaning                                            |
//! |--------|-----------------------|--------|----------------------------------------------------|
//! | 0..8   | magic                 | bytes  | `SEGWAL` `0x00` `0x1A`                             |
//! | 8..10  | format_version        | u16    | 1                                                  |
//! | 10     | checksum_kind         | u8     | 1 = CRC32C, 2 = CRC-32/IEEE                        |
//! | 11     | record_align_log2     | u8     | records start on multiples of `1 << this` (3..=9)  |
//! | 12..16 | user_area_len_bytes   | u32    | bytes reserved for the application after the header |
//! | 16..24 | sequence              | u64    | segment sequence number                            |
//! | 24..32 | base_lsn              | u64    | log position of the segment's first record         |
//! | 32..40 | salt                  | u64    | random, new for every use of the space             |
//! | 40..44 | segment_size_bytes    | u32    | size of the whole segment, header included         |
//! | 44..48 | record_len_max        | u32    | largest payload a record may carry                 |
//! | 48..52 | user_area_checksum    | u32    | checksum of the user area                          |
//! | 52..60 | prev_sequence         | u64    | the segment this one follows; its own for a first  |
//! | 60..64 | header_checksum       | u32    | checksum of bytes 0..60                            |
//!
//! Both checksums use the segment's `checksum_kind`.
//!
//! # Record (16-byte header, then the payload, then zero padding)
//!
//! ```text
//! ┌────────────┬──────────────┬───────────────┬─────────────┬──────────────────┬─────────┐
//! │ len: u32   │ checksum: u32│ synced: u32   │ flags: u32  │ payload: len B   │ padding │
//! └────────────┴──────────────┴───────────────┴─────────────┴──────────────────┴─────────┘
//!  0..4         4..8           8..12           12..16        16..16+len         to record_align
//! ```
//!
//! - `len`: payload bytes. Never more than `record_len_max`, never past the
//!   segment's end: a length that breaks either rule is bad data, and is
//!   never used to allocate or read.
//! - `checksum`: over `salt (8) ‖ offset (8) ‖ len (4) ‖ synced (4) ‖ flags (4)
//!   ‖ payload`, where `offset` is the record's byte offset from the start of
//!   the segment (as a u64). A value of 0 is stored as 1, so a zeroed header
//!   can never validate; an erased (`0xFF`) header fails the `len` rule. The
//!   salt and the offset make a stale record from an earlier use of the space,
//!   or a record read at the wrong place, fail the check.
//! - `synced`: the segment offset up to which the writer had made the segment
//!   durable when it wrote this record. Recovery uses it to tell a torn tail
//!   (bad bytes that were never acknowledged) from corruption of acknowledged
//!   data (a later record says the bad bytes had been synced).
//! - `flags`: bit 0 [`FLAG_BATCH_CONTINUES`]: another record of the same
//!   atomic batch follows; a batch whose last record is missing is discarded
//!   whole. Bit 1 [`FLAG_RESUMES_AFTER_HOLE`]: the bytes from `synced` up to
//!   this record are a torn tail that could not be erased in place (flash);
//!   the scan skips them. Bit 2 [`FLAG_MARKER`]: a clean-close marker, not
//!   user data (see [`MARKER_MAGIC`]). Other bits must be zero.
//! - padding: zeros up to the next multiple of `record_align`, so every
//!   record starts aligned and a device never sees a partial write unit.

use core::ops::Range;

use crate::checksum::ChecksumKind;

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SEGWAL\x00\x1A";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Segment header field: magic.
pub const HEADER_MAGIC: Range<usize> = 0..8;
/// Segment header field: format version.
pub const HEADER_VERSION: Range<usize> = HEADER_MAGIC.end..HEADER_MAGIC.end + 2;
/// Segment header field: checksum kind code.
pub const HEADER_CHECKSUM_KIND: Range<usize> = HEADER_VERSION.end..HEADER_VERSION.end + 1;
/// Segment header field: log2 of the record alignment.
pub const HEADER_ALIGN_LOG2: Range<usize> = HEADER_CHECKSUM_KIND.end..HEADER_CHECKSUM_KIND.end + 1;
/// Segment header field: length of the user area.
pub const HEADER_USER_AREA_LEN: Range<usize> = HEADER_ALIGN_LOG2.end..HEADER_ALIGN_LOG2.end + 4;
/// Segment header field: segment sequence number.
pub const HEADER_SEQUENCE: Range<usize> = HEADER_USER_AREA_LEN.end..HEADER_USER_AREA_LEN.end + 8;
/// Segment header field: LSN of the first record.
pub const HEADER_BASE_LSN: Range<usize> = HEADER_SEQUENCE.end..HEADER_SEQUENCE.end + 8;
/// Segment header field: salt.
pub const HEADER_SALT: Range<usize> = HEADER_BASE_LSN.end..HEADER_BASE_LSN.end + 8;
/// Segment header field: segment size.
pub const HEADER_SEGMENT_SIZE: Range<usize> = HEADER_SALT.end..HEADER_SALT.end + 4;
/// Segment header field: largest payload.
pub const HEADER_RECORD_LEN_MAX: Range<usize> =
    HEADER_SEGMENT_SIZE.end..HEADER_SEGMENT_SIZE.end + 4;
/// Segment header field: checksum of the user area.
pub const HEADER_USER_AREA_CHECKSUM: Range<usize> =
    HEADER_RECORD_LEN_MAX.end..HEADER_RECORD_LEN_MAX.end + 4;
/// Segment header field: sequence of the preceding segment in the log.
pub const HEADER_PREV_SEQUENCE: Range<usize> =
    HEADER_USER_AREA_CHECKSUM.end..HEADER_USER_AREA_CHECKSUM.end + 8;
/// Segment header field: checksum of everything before it.
pub const HEADER_CHECKSUM: Range<usize> = HEADER_PREV_SEQUENCE.end..HEADER_PREV_SEQUENCE.end + 4;
/// Size of the fixed segment header.
pub const SEGMENT_HEADER_LEN: usize = HEADER_CHECKSUM.end;
const _: () = assert!(SEGMENT_HEADER_LEN == 64);

/// Record header field: payload length.
pub const RECORD_LEN: Range<usize> = 0..4;
/// Record header field: checksum.
pub const RECORD_CHECKSUM: Range<usize> = RECORD_LEN.end..RECORD_LEN.end + 4;
/// Record header field: synced offset when written.
pub const RECORD_SYNCED: Range<usize> = RECORD_CHECKSUM.end..RECORD_CHECKSUM.end + 4;
/// Record header field: flags.
pub const RECORD_FLAGS: Range<usize> = RECORD_SYNCED.end..RECORD_SYNCED.end + 4;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = RECORD_FLAGS.end;
const _: () = assert!(RECORD_HEADER_LEN == 16);
/// [`RECORD_HEADER_LEN`] as a `u32`, the width of segment offsets.
// The cast is exact: the header is 16 bytes.
#[allow(clippy::cast_possible_truncation)]
pub(crate) const RECORD_HEADER_LEN_U32: u32 = RECORD_HEADER_LEN as u32;

/// Flag: the next record belongs to the same atomic batch.
pub const FLAG_BATCH_CONTINUES: u32 = 1 << 0;
/// Flag: the bytes between `synced` and this record are a skipped torn tail.
pub const FLAG_RESUMES_AFTER_HOLE: u32 = 1 << 1;
/// Flag: a clean-close marker written by the log, not user data. Its payload
/// is the segment's record count (u64), zeros, and [`MARKER_MAGIC`] in the
/// last four bytes, sized so the marker fills its aligned extent: the last
/// non-blank unit before clean space is then the marker's own last unit.
pub const FLAG_MARKER: u32 = 1 << 2;
const FLAGS_KNOWN: u32 = FLAG_BATCH_CONTINUES | FLAG_RESUMES_AFTER_HOLE | FLAG_MARKER;
/// The last four bytes of a marker's payload.
pub const MARKER_MAGIC: [u8; 4] = *b"SWCL";
/// Smallest marker payload: the record count and the magic.
pub const MARKER_PAYLOAD_MIN_BYTES: usize = 12;

/// Smallest record alignment: 8 bytes, so a scan looking for record starts
/// in damaged space tests one position in eight.
pub const RECORD_ALIGN_MIN_BYTES: u32 = 8;
/// Largest record alignment: a 512-byte sector, the largest write unit of
/// the devices segwal targets (NOR words are 1 to 256 bytes). It bounds the
/// padding of a record to one piece of a static zero buffer, and so the
/// stack a batch write needs.
pub const RECORD_ALIGN_MAX_BYTES: u32 = 512;

/// Why bytes that should hold a segment header do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderDefect {
    /// Every byte is the erased value or zero: no segment was ever written here.
    Blank,
    /// The magic is wrong: this is not a segwal segment.
    BadMagic,
    /// A segment of a format version this crate cannot read.
    UnsupportedVersion(u16),
    /// The header checksum does not match.
    BadChecksum,
    /// A field holds a value that version 1 never writes.
    BadField(&'static str),
}

impl core::fmt::Display for HeaderDefect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderDefect::Blank => f.write_str("no segment header (blank space)"),
            HeaderDefect::BadMagic => f.write_str("not a segwal segment (bad magic)"),
            HeaderDefect::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            HeaderDefect::BadChecksum => f.write_str("segment header checksum mismatch"),
            HeaderDefect::BadField(name) => write!(f, "segment header field `{name}` is invalid"),
        }
    }
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Checksum used by the header and the records.
    pub checksum_kind: ChecksumKind,
    /// log2 of the record alignment.
    pub record_align_log2: u8,
    /// Bytes reserved for the application right after the header.
    pub user_area_len_bytes: u32,
    /// Segment sequence number.
    pub sequence: u64,
    /// Log position (LSN) of the first record.
    pub base_lsn: u64,
    /// Random per-use salt mixed into every record checksum.
    pub salt: u64,
    /// Size of the whole segment.
    pub segment_size_bytes: u32,
    /// Largest payload a record may carry.
    pub record_len_max: u32,
    /// Checksum of the user area.
    pub user_area_checksum: u32,
    /// Sequence of the segment this one follows in the log; equal to
    /// `sequence` for the first segment of a log.
    pub prev_sequence: u64,
}

fn read_u16(bytes: &[u8; SEGMENT_HEADER_LEN], range: Range<usize>) -> u16 {
    let mut out = [0u8; 2];
    out.copy_from_slice(&bytes[range]);
    u16::from_le_bytes(out)
}

/// Reads a little-endian u32 at `range` (which must be 4 bytes long).
// Inline on hosts: the record decode and encode, inlined into the generic
// log's crate, call it for every field.
#[cfg_attr(not(target_os = "none"), inline)]
pub(crate) fn le_u32(bytes: &[u8], range: Range<usize>) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[range]);
    u32::from_le_bytes(out)
}

#[cfg_attr(not(target_os = "none"), inline)]
fn le_u64(bytes: &[u8], range: Range<usize>) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[range]);
    u64::from_le_bytes(out)
}

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on
/// overflow.
#[cfg_attr(not(target_os = "none"), inline)]
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

impl SegmentHeader {
    /// Record alignment in bytes.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub const fn record_align_bytes(&self) -> u32 {
        1u32 << self.record_align_log2
    }

    /// Offset of the first record: header and user area, aligned up.
    // Out of line on bare metal: inlined at its dozens of callers it cost
    // about 0.4 KiB of Thumb code in firmware (examples/firmware/FIGURES.md).
    // Left to the compiler on hosts, where reads and appends call it.
    #[cfg_attr(target_os = "none", inline(never))]
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn records_start(&self) -> u32 {
        let end = SEGMENT_HEADER_LEN as u64 + u64::from(self.user_area_len_bytes);
        let aligned = align_up(end, u64::from(self.record_align_bytes())).unwrap_or(u64::MAX);
        // `decode` and `validate` guarantee it fits inside the segment.
        u32::try_from(aligned).unwrap_or(u32::MAX)
    }

    /// The bytes of the header; the header checksum is computed here.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[HEADER_MAGIC].copy_from_slice(&MAGIC);
        out[HEADER_VERSION].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[HEADER_CHECKSUM_KIND.start] = self.checksum_kind.code();
        out[HEADER_ALIGN_LOG2.start] = self.record_align_log2;
        out[HEADER_USER_AREA_LEN].copy_from_slice(&self.user_area_len_bytes.to_le_bytes());
        out[HEADER_SEQUENCE].copy_from_slice(&self.sequence.to_le_bytes());
        out[HEADER_BASE_LSN].copy_from_slice(&self.base_lsn.to_le_bytes());
        out[HEADER_SALT].copy_from_slice(&self.salt.to_le_bytes());
        out[HEADER_SEGMENT_SIZE].copy_from_slice(&self.segment_size_bytes.to_le_bytes());
        out[HEADER_RECORD_LEN_MAX].copy_from_slice(&self.record_len_max.to_le_bytes());
        out[HEADER_USER_AREA_CHECKSUM].copy_from_slice(&self.user_area_checksum.to_le_bytes());
        out[HEADER_PREV_SEQUENCE].copy_from_slice(&self.prev_sequence.to_le_bytes());
        let checksum = self.checksum_kind.checksum(&out[..HEADER_CHECKSUM.start]);
        out[HEADER_CHECKSUM].copy_from_slice(&checksum.to_le_bytes());
        debug_assert_eq!(Self::decode(&out), Ok(*self), "encode/decode disagree");
        out
    }

    /// Decodes and checks header bytes read from a device. Never panics.
    ///
    /// # Errors
    ///
    /// The [`HeaderDefect`] that makes the bytes unusable.
    pub fn decode(bytes: &[u8; SEGMENT_HEADER_LEN]) -> Result<Self, HeaderDefect> {
        if bytes.iter().all(|&b| b == 0x00) || bytes.iter().all(|&b| b == 0xFF) {
            return Err(HeaderDefect::Blank);
        }
        if bytes[HEADER_MAGIC] != MAGIC {
            return Err(HeaderDefect::BadMagic);
        }
        let version = read_u16(bytes, HEADER_VERSION);
        if version != FORMAT_VERSION {
            return Err(HeaderDefect::UnsupportedVersion(version));
        }
        let checksum_kind = ChecksumKind::from_code(bytes[HEADER_CHECKSUM_KIND.start])
            .ok_or(HeaderDefect::BadField("checksum_kind"))?;
        let stored = le_u32(bytes, HEADER_CHECKSUM);
        if checksum_kind.checksum(&bytes[..HEADER_CHECKSUM.start]) != stored {
            return Err(HeaderDefect::BadChecksum);
        }
        let header = SegmentHeader {
            checksum_kind,
            record_align_log2: bytes[HEADER_ALIGN_LOG2.start],
            user_area_len_bytes: le_u32(bytes, HEADER_USER_AREA_LEN),
            sequence: le_u64(bytes, HEADER_SEQUENCE),
            base_lsn: le_u64(bytes, HEADER_BASE_LSN),
            salt: le_u64(bytes, HEADER_SALT),
            segment_size_bytes: le_u32(bytes, HEADER_SEGMENT_SIZE),
            record_len_max: le_u32(bytes, HEADER_RECORD_LEN_MAX),
            user_area_checksum: le_u32(bytes, HEADER_USER_AREA_CHECKSUM),
            prev_sequence: le_u64(bytes, HEADER_PREV_SEQUENCE),
        };
        header.validate().map(|()| header)
    }

    /// Checks the rules between fields, for a header about to be written as
    /// much as for one just read.
    ///
    /// # Errors
    ///
    /// [`HeaderDefect::BadField`] naming the first field that breaks a rule.
    pub fn validate(&self) -> Result<(), HeaderDefect> {
        if self.prev_sequence > self.sequence {
            return Err(HeaderDefect::BadField("prev_sequence"));
        }
        let align_log2 = u32::from(self.record_align_log2);
        if align_log2 < RECORD_ALIGN_MIN_BYTES.trailing_zeros()
            || align_log2 > RECORD_ALIGN_MAX_BYTES.trailing_zeros()
        {
            return Err(HeaderDefect::BadField("record_align_log2"));
        }
        let align = u64::from(self.record_align_bytes());
        if !self
            .segment_size_bytes
            .is_multiple_of(self.record_align_bytes())
        {
            return Err(HeaderDefect::BadField("segment_size_bytes"));
        }
        let records_start = align_up(
            SEGMENT_HEADER_LEN as u64 + u64::from(self.user_area_len_bytes),
            align,
        )
        .ok_or(HeaderDefect::BadField("user_area_len_bytes"))?;
        let first_record_end = records_start + RECORD_HEADER_LEN as u64;
        if first_record_end > u64::from(self.segment_size_bytes) {
            return Err(HeaderDefect::BadField("user_area_len_bytes"));
        }
        let payload_room = u64::from(self.segment_size_bytes) - first_record_end;
        if u64::from(self.record_len_max) > payload_room {
            return Err(HeaderDefect::BadField("record_len_max"));
        }
        Ok(())
    }
}

/// A decoded record header. Plausibility is checked by [`RecordHeader::decode`];
/// the checksum needs the payload and is checked by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub len_bytes: u32,
    /// Stored checksum.
    pub checksum: u32,
    /// Segment offset that was durable when the record was written.
    pub synced_offset: u32,
    /// Flag bits.
    pub flags: u32,
}

/// Why bytes at a record position are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordDefect {
    /// The whole header is erased or zero: the end of the written records.
    Blank,
    /// The length is over `record_len_max` or runs past the segment's end.
    ImplausibleLength,
    /// Unknown flags, or a `synced` offset the record cannot have been written with.
    BadField,
    /// The checksum does not match.
    BadChecksum,
    /// A valid clean-close marker, which carries no user data.
    Marker,
}

impl core::fmt::Display for RecordDefect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RecordDefect::Blank => "blank record header",
            RecordDefect::ImplausibleLength => "implausible record length",
            RecordDefect::BadField => "invalid record header field",
            RecordDefect::BadChecksum => "record checksum mismatch",
            RecordDefect::Marker => "a clean-close marker, not a record",
        })
    }
}

/// `true` when `bytes` hold nothing: every byte is `erased`, or, on a
/// device that needs no erase (`zero_is_blank`), every byte is zero (the
/// log wipes torn tails with zeros there). On flash a zero is a programmed
/// bit, never blank: a writer must not resume over it.
#[inline]
pub fn is_blank(bytes: &[u8], erased: u8, zero_is_blank: bool) -> bool {
    bytes.iter().all(|&b| b == erased) || (zero_is_blank && bytes.iter().all(|&b| b == 0))
}

/// [`is_blank`] for exactly one record header, either blank value (zeros,
/// or `erased_word`'s byte), as two wide compares.
#[cfg_attr(not(target_os = "none"), inline)]
fn is_blank_header(bytes: &[u8; RECORD_HEADER_LEN], erased_word: u64) -> bool {
    let word = u128::from_ne_bytes(*bytes);
    word == 0 || word == u128::from(erased_word) << 64 | u128::from(erased_word)
}

/// What the header of any record of one segment must satisfy, worked out
/// once from the segment's header ([`SegmentHeader::record_bounds`]): a
/// scan or a batch of reads decodes many headers against the same bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBounds {
    /// Largest payload.
    pub record_len_max: u32,
    /// Size of the segment: no record ends past it.
    pub segment_size_bytes: u32,
    /// Offset of the first record: no synced offset is below it.
    pub records_start: u32,
    /// Eight bytes of the device's erased value.
    pub erased_word: u64,
}

impl SegmentHeader {
    /// The bounds of this segment's records on a device whose erased byte
    /// is `erased_byte`.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn record_bounds(&self, erased_byte: u8) -> RecordBounds {
        RecordBounds {
            record_len_max: self.record_len_max,
            segment_size_bytes: self.segment_size_bytes,
            records_start: self.records_start(),
            erased_word: u64::from(erased_byte) * 0x0101_0101_0101_0101,
        }
    }
}

impl RecordHeader {
    /// Decodes the header of a record at `offset` of a segment described by
    /// `segment`, checking everything but the checksum. Never panics.
    ///
    /// # Errors
    ///
    /// The [`RecordDefect`] that rules the bytes out.
    // Inline on hosts: every record read decodes one, across the crate
    // boundary (the log is generic, so it is compiled in the caller's crate).
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn decode(
        bytes: &[u8; RECORD_HEADER_LEN],
        offset: u32,
        segment: &SegmentHeader,
        erased_byte: u8,
    ) -> Result<Self, RecordDefect> {
        Self::decode_within(bytes, offset, &segment.record_bounds(erased_byte))
    }

    /// [`decode`](Self::decode) against bounds worked out beforehand.
    ///
    /// # Errors
    ///
    /// The [`RecordDefect`] that rules the bytes out.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub fn decode_within(
        bytes: &[u8; RECORD_HEADER_LEN],
        offset: u32,
        bounds: &RecordBounds,
    ) -> Result<Self, RecordDefect> {
        let header = RecordHeader {
            len_bytes: le_u32(bytes, RECORD_LEN),
            checksum: le_u32(bytes, RECORD_CHECKSUM),
            synced_offset: le_u32(bytes, RECORD_SYNCED),
            flags: le_u32(bytes, RECORD_FLAGS),
        };
        let end = u64::from(offset) + RECORD_HEADER_LEN as u64 + u64::from(header.len_bytes);
        let length_plausible = header.len_bytes <= bounds.record_len_max
            && end <= u64::from(bounds.segment_size_bytes);
        let fields_plausible = header.flags & !FLAGS_KNOWN == 0
            && header.synced_offset <= offset
            && header.synced_offset >= bounds.records_start;
        // A header of zeros or of the erased byte is not a record on any
        // device (on flash the probe, not this label, decides whether it
        // may be written over). Such a header never passes the checks
        // above, so the blank test is made only for a header that failed
        // them: erased bytes `b != 0` give flags `b * 0x0101_0101`, which
        // has unknown bits; zeros give a synced offset of 0, below the
        // records of every segment (which start after its header). Bounds
        // whose records start at 0 (no segment header gives them) are the
        // one exception, checked in the condition. A scan decodes a header
        // per record: this keeps the 16-byte compares off its way.
        if length_plausible
            && fields_plausible
            && (bounds.records_start != 0 || u128::from_ne_bytes(*bytes) != 0)
        {
            return Ok(header);
        }
        Err(if is_blank_header(bytes, bounds.erased_word) {
            RecordDefect::Blank
        } else if !length_plausible {
            RecordDefect::ImplausibleLength
        } else {
            RecordDefect::BadField
        })
    }

    /// Bytes the record occupies on the device, padding included.
    pub fn extent_bytes(&self, segment: &SegmentHeader) -> u64 {
        record_extent_bytes(self.len_bytes, segment.record_align_bytes())
    }

    /// The header bytes for a payload, with its checksum.
    // Inline on hosts: every record appended encodes one.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub fn encode(
        segment: &SegmentHeader,
        offset: u32,
        synced_offset: u32,
        flags: u32,
        payload: &[u8],
    ) -> [u8; RECORD_HEADER_LEN] {
        let len_bytes = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        assert!(
            len_bytes <= segment.record_len_max,
            "caller checks the length"
        );
        assert!(synced_offset <= offset && flags & !FLAGS_KNOWN == 0);
        let mut out = [0u8; RECORD_HEADER_LEN];
        out[RECORD_LEN].copy_from_slice(&len_bytes.to_le_bytes());
        out[RECORD_SYNCED].copy_from_slice(&synced_offset.to_le_bytes());
        out[RECORD_FLAGS].copy_from_slice(&flags.to_le_bytes());
        let mut hasher = record_hasher(segment, u64::from(offset), &out);
        hasher.update(payload);
        let checksum = stored_checksum(hasher.finalize());
        out[RECORD_CHECKSUM].copy_from_slice(&checksum.to_le_bytes());
        out
    }
}

/// Bytes a record with a `len_bytes` payload occupies, padding included.
// Out of line on bare metal: inlined at its many callers (scan, reader,
// appender) it cost 212 more bytes of Thumb code in firmware. Left to the
// compiler on hosts, where every record read or appended calls it.
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline)]
pub fn record_extent_bytes(len_bytes: u32, record_align_bytes: u32) -> u64 {
    let unpadded = RECORD_HEADER_LEN as u64 + u64::from(len_bytes);
    // Cannot overflow: both terms are far below u64::MAX.
    align_up(unpadded, u64::from(record_align_bytes)).unwrap_or(u64::MAX)
}

/// A hasher primed with everything a record checksum covers before the
/// payload: salt, offset and the header fields other than the checksum.
///
/// The 28 prefix bytes go in as one piece: table-driven CRCs handle short
/// pieces a byte at a time, so five small updates cost a third more.
// Out of line on bare metal: inlined into the record check, the scan's
// spill path and the appender it cost 340 more bytes of Thumb code in
// firmware (examples/firmware/FIGURES.md). Inline on hosts, where every
// record read and appended calls it, across the crate boundary.
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline)]
pub fn record_hasher(
    segment: &SegmentHeader,
    offset: u64,
    header_bytes: &[u8; RECORD_HEADER_LEN],
) -> crate::checksum::Hasher {
    let mut hasher = segment.checksum_kind.hasher();
    hasher.update(&ChecksumPrefix::new(segment, offset, header_bytes).0);
    hasher
}

/// What a record checksum covers before the payload: salt, offset, and the
/// header fields other than the checksum (28 bytes).
///
/// Eight-byte aligned: hardware CRC takes bytes before the first aligned
/// word one at a time, so an unaligned prefix costs up to seven more steps
/// on every record.
#[repr(align(8))]
struct ChecksumPrefix([u8; CHECKSUM_PREFIX_LEN]);

/// Bytes of a [`ChecksumPrefix`]: salt (8), offset (8), then the header's
/// length, synced offset and flags (4 each).
const CHECKSUM_PREFIX_LEN: usize = 28;

impl ChecksumPrefix {
    #[cfg_attr(not(target_os = "none"), inline)]
    fn new(segment: &SegmentHeader, offset: u64, header_bytes: &[u8; RECORD_HEADER_LEN]) -> Self {
        let mut prefix = ChecksumPrefix([0u8; CHECKSUM_PREFIX_LEN]);
        let bytes = &mut prefix.0;
        bytes[0..8].copy_from_slice(&segment.salt.to_le_bytes());
        bytes[8..16].copy_from_slice(&offset.to_le_bytes());
        bytes[16..20].copy_from_slice(&header_bytes[RECORD_LEN]);
        bytes[20..CHECKSUM_PREFIX_LEN]
            .copy_from_slice(&header_bytes[RECORD_SYNCED.start..RECORD_FLAGS.end]);
        prefix
    }
}

/// One record's share of [`stored_checksums`]: what its checksum covers.
#[derive(Debug, Clone, Copy)]
pub struct ChecksumInput<'a> {
    /// The record's offset in its segment.
    pub offset: u64,
    /// The record as on the device: its header (the checksum field is not
    /// covered), then its payload.
    pub record: &'a [u8],
}

/// The checksums to store ([`stored_checksum`]) of up to
/// [`CRC_LANES`](crate::CRC_LANES) records of `segment`, in order, computed
/// side by side where the host installed a kernel for it (see
/// [`ChecksumKind::checksum_lanes`](crate::ChecksumKind::checksum_lanes)):
/// a sequential read checks a window's records this way. Lanes past
/// `records.len()`, and those of records shorter than a header, are
/// unspecified.
///
/// # Panics
///
/// When given more than `CRC_LANES` records: a bug of the caller.
#[cfg_attr(not(target_os = "none"), inline)]
pub fn stored_checksums(
    segment: &SegmentHeader,
    records: &[ChecksumInput<'_>],
) -> [u32; crate::CRC_LANES] {
    /// The prefix up to the synced offset (salt, offset, length, synced
    /// offset: three words). The rest of what the checksum covers, the
    /// flags and the payload, lies on the device as it is covered, so it
    /// is taken from there: for payloads of `8n + 4` bytes both pieces are
    /// whole words, which a kernel taking eight bytes a step prefers.
    const LEAD_BYTES: usize = 24;
    #[repr(align(8))]
    #[derive(Clone, Copy)]
    struct Lead([u8; LEAD_BYTES]);
    // The flags end the header and the prefix: what follows the lead in
    // the prefix is where the header ends on the device.
    const _: () = assert!(
        RECORD_FLAGS.end == RECORD_HEADER_LEN
            && LEAD_BYTES + (RECORD_FLAGS.end - RECORD_FLAGS.start) == CHECKSUM_PREFIX_LEN
    );
    assert!(records.len() <= crate::CRC_LANES, "one record per lane");
    let mut leads = [Lead([0; LEAD_BYTES]); crate::CRC_LANES];
    let mut rests: [&[u8]; crate::CRC_LANES] = [&[]; crate::CRC_LANES];
    for ((lead, rest), record) in leads.iter_mut().zip(&mut rests).zip(records) {
        let Some((header_bytes, _)) = record.record.split_first_chunk::<RECORD_HEADER_LEN>() else {
            continue;
        };
        let prefix = ChecksumPrefix::new(segment, record.offset, header_bytes);
        lead.0.copy_from_slice(&prefix.0[..LEAD_BYTES]);
        *rest = &record.record[RECORD_FLAGS.start..];
    }
    let lead_pieces: [&[u8]; crate::CRC_LANES] = core::array::from_fn(|lane| &leads[lane].0[..]);
    segment
        .checksum_kind
        .checksum_lanes(&[lead_pieces, rests])
        .map(stored_checksum)
}

/// The value stored for a computed checksum: 0 becomes 1, so that zeroed
/// bytes never validate.
pub const fn stored_checksum(computed: u32) -> u32 {
    if computed == 0 { 1 } else { computed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> SegmentHeader {
        SegmentHeader {
            checksum_kind: ChecksumKind::Crc32c,
            record_align_log2: 3,
            user_area_len_bytes: 10,
            sequence: 7,
            base_lsn: 100,
            salt: 0x1234_5678_9ABC_DEF0,
            segment_size_bytes: 4096,
            record_len_max: 1024,
            user_area_checksum: 0,
            prev_sequence: 6,
        }
    }

    /// The side-by-side checksums are the ones `encode` stores, for any
    /// number of records up to the lanes and payloads of other lengths.
    #[test]
    fn stored_checksums_are_the_encoded_ones() {
        for kind in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
            let seg = SegmentHeader {
                checksum_kind: kind,
                ..segment()
            };
            let payloads: [&[u8]; crate::CRC_LANES] = [b"", b"one", &[7u8; 100], &[9u8; 33]];
            let offsets = [128u32, 136, 160, 280];
            let headers: [[u8; RECORD_HEADER_LEN]; crate::CRC_LANES] = core::array::from_fn(|i| {
                RecordHeader::encode(
                    &seg,
                    offsets[i],
                    128,
                    if i % 2 == 1 { FLAG_BATCH_CONTINUES } else { 0 },
                    payloads[i],
                )
            });
            // Each record as on the device: header, then payload.
            let mut records = [[0u8; RECORD_HEADER_LEN + 100]; crate::CRC_LANES];
            for (record, (header, payload)) in records.iter_mut().zip(headers.iter().zip(payloads))
            {
                record[..RECORD_HEADER_LEN].copy_from_slice(header);
                record[RECORD_HEADER_LEN..][..payload.len()].copy_from_slice(payload);
            }
            for count in 0..=crate::CRC_LANES {
                let inputs: heapless::Vec<ChecksumInput<'_>, { crate::CRC_LANES }> = (0..count)
                    .map(|i| ChecksumInput {
                        offset: u64::from(offsets[i]),
                        record: &records[i][..RECORD_HEADER_LEN + payloads[i].len()],
                    })
                    .collect();
                let checksums = stored_checksums(&seg, &inputs);
                for i in 0..count {
                    assert_eq!(
                        checksums[i],
                        le_u32(&headers[i], RECORD_CHECKSUM),
                        "{kind:?} {i} of {count}"
                    );
                }
            }
        }
    }

    fn record_checks(
        seg: &SegmentHeader,
        offset: u32,
        bytes: &[u8; RECORD_HEADER_LEN],
        payload: &[u8],
    ) -> bool {
        let mut hasher = record_hasher(seg, u64::from(offset), bytes);
        hasher.update(payload);
        stored_checksum(hasher.finalize()) == le_u32(bytes, RECORD_CHECKSUM)
    }

    #[test]
    fn segment_header_round_trips_and_records_start_is_aligned() {
        let seg = segment();
        let bytes = seg.encode();
        assert_eq!(&bytes[..8], b"SEGWAL\x00\x1A");
        assert_eq!(SegmentHeader::decode(&bytes), Ok(seg));
        assert_eq!(seg.records_start(), 80, "64 + 10 rounded up to 8");
    }

    #[test]
    fn every_single_bit_flip_of_the_segment_header_is_caught() {
        let bytes = segment().encode();
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn blank_and_foreign_headers_are_told_apart() {
        assert_eq!(SegmentHeader::decode(&[0; 64]), Err(HeaderDefect::Blank));
        assert_eq!(SegmentHeader::decode(&[0xFF; 64]), Err(HeaderDefect::Blank));
        assert_eq!(SegmentHeader::decode(&[7; 64]), Err(HeaderDefect::BadMagic));
        let mut future = segment().encode();
        future[HEADER_VERSION].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&future),
            Err(HeaderDefect::UnsupportedVersion(2))
        );
    }

    #[test]
    fn header_validation_rejects_impossible_layouts() {
        let mut seg = segment();
        seg.record_len_max = 4096;
        assert_eq!(
            seg.validate(),
            Err(HeaderDefect::BadField("record_len_max"))
        );
        let mut seg = segment();
        seg.user_area_len_bytes = u32::MAX;
        assert_eq!(
            seg.validate(),
            Err(HeaderDefect::BadField("user_area_len_bytes"))
        );
        let mut seg = segment();
        seg.record_align_log2 = 2;
        assert_eq!(
            seg.validate(),
            Err(HeaderDefect::BadField("record_align_log2"))
        );
        let mut seg = segment();
        seg.segment_size_bytes = 4100;
        assert_eq!(
            seg.validate(),
            Err(HeaderDefect::BadField("segment_size_bytes"))
        );
    }

    #[test]
    fn record_header_round_trips_and_checksum_binds_salt_offset_and_payload() {
        let seg = segment();
        let bytes = RecordHeader::encode(&seg, 80, 80, FLAG_BATCH_CONTINUES, b"hello");
        let decoded = RecordHeader::decode(&bytes, 80, &seg, 0).unwrap();
        assert_eq!(decoded.len_bytes, 5);
        assert_eq!(decoded.flags, FLAG_BATCH_CONTINUES);
        assert!(record_checks(&seg, 80, &bytes, b"hello"));
        assert!(!record_checks(&seg, 88, &bytes, b"hello"), "wrong offset");
        assert!(!record_checks(&seg, 80, &bytes, b"hellp"), "wrong payload");
        let mut other = seg;
        other.salt ^= 1;
        assert!(!record_checks(&other, 80, &bytes, b"hello"), "wrong salt");
        assert_eq!(decoded.extent_bytes(&seg), 24);
    }

    /// The blank test is made only for headers that fail the field checks
    /// (`decode_within`): every blank header, for every erased byte and for
    /// the loosest bounds a segment can have, is still told as blank, and
    /// so it is for bounds whose records start at 0.
    #[test]
    fn every_blank_header_decodes_as_blank_whatever_the_bounds() {
        let loosest = RecordBounds {
            record_len_max: u32::MAX,
            segment_size_bytes: u32::MAX,
            records_start: segment().records_start(),
            erased_word: 0,
        };
        for records_start in [0, loosest.records_start] {
            for erased in 0..=u8::MAX {
                let bounds = RecordBounds {
                    records_start,
                    erased_word: u64::from(erased) * 0x0101_0101_0101_0101,
                    ..loosest
                };
                for blank in [[0u8; RECORD_HEADER_LEN], [erased; RECORD_HEADER_LEN]] {
                    for offset in [records_start, 4096, u32::MAX - 64] {
                        assert_eq!(
                            RecordHeader::decode_within(&blank, offset, &bounds),
                            Err(RecordDefect::Blank),
                            "erased {erased:#04x}, header {:#04x}, records from {records_start}, at {offset}",
                            blank[0]
                        );
                    }
                }
            }
        }
        // Not blank, and failing: the defect of the first check that fails.
        let seg = segment();
        let mut bytes = RecordHeader::encode(&seg, 80, 80, 0, b"x");
        bytes[RECORD_FLAGS].copy_from_slice(&(1u32 << 9).to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&bytes, 80, &seg, 0xFF),
            Err(RecordDefect::BadField)
        );
        bytes[RECORD_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&bytes, 80, &seg, 0xFF),
            Err(RecordDefect::ImplausibleLength),
            "length before fields"
        );
    }

    #[test]
    fn zeroed_and_erased_record_headers_never_validate() {
        let seg = segment();
        assert_eq!(
            RecordHeader::decode(&[0; 16], 80, &seg, 0xFF),
            Err(RecordDefect::Blank)
        );
        assert_eq!(
            RecordHeader::decode(&[0xFF; 16], 80, &seg, 0xFF),
            Err(RecordDefect::Blank)
        );
        // Zero length and zero checksum but plausible other fields: the
        // stored checksum is never 0.
        let mut bytes = [0u8; 16];
        bytes[RECORD_SYNCED].copy_from_slice(&80u32.to_le_bytes());
        assert!(!record_checks(&seg, 80, &bytes, b""));
    }

    #[test]
    fn implausible_record_headers_are_rejected_before_any_read() {
        let seg = segment();
        let mut bytes = RecordHeader::encode(&seg, 80, 80, 0, b"x");
        bytes[RECORD_LEN].copy_from_slice(&2000u32.to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&bytes, 80, &seg, 0),
            Err(RecordDefect::ImplausibleLength)
        );
        bytes[RECORD_LEN].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&bytes, 4000, &seg, 0),
            Err(RecordDefect::ImplausibleLength)
        );
        let mut bytes = RecordHeader::encode(&seg, 80, 80, 0, b"x");
        bytes[RECORD_FLAGS].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&bytes, 80, &seg, 0),
            Err(RecordDefect::BadField)
        );
        let bytes = RecordHeader::encode(&seg, 96, 96, 0, b"x");
        assert_eq!(
            RecordHeader::decode(&bytes, 88, &seg, 0),
            Err(RecordDefect::BadField),
            "synced past own offset"
        );
    }

    #[test]
    fn stored_checksum_is_never_zero() {
        assert_eq!(stored_checksum(0), 1);
        assert_eq!(stored_checksum(5), 5);
    }
}

#[cfg(test)]
mod golden {
    //! Pins format version 1 byte for byte: if one of these fails, the
    //! format changed, and `FORMAT_VERSION` must change with it.
    use super::*;

    fn hex(bytes: &[u8]) -> std::string::String {
        use core::fmt::Write;
        let mut out = std::string::String::new();
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    #[test]
    fn version_1_bytes() {
        let segment = SegmentHeader {
            checksum_kind: ChecksumKind::Crc32c,
            record_align_log2: 3,
            user_area_len_bytes: 0,
            sequence: 1,
            base_lsn: 1,
            salt: 0x0102_0304_0506_0708,
            segment_size_bytes: 1 << 20,
            record_len_max: 1 << 16,
            user_area_checksum: 0,
            prev_sequence: 1,
        };
        assert_eq!(
            hex(&segment.encode()),
            "53454757414c001a01000103000000000100000000000000010000000000000008070605040302010000100000000100000000000100000000000000cdfceaed"
        );
        assert_eq!(
            hex(&RecordHeader::encode(&segment, 64, 64, 0, b"segwal")),
            "06000000490814b24000000000000000"
        );
    }
}
