//! Shared harness for the cross-backend integration tests.
//!
//! Every scenario in `tests/*.rs` is written once, generic over a [`Medium`]
//! (where the bytes live and how a "reboot" happens), and run over both
//! backends:
//!
//! - [`RamMedium`]: a [`RamDevice`] holding the segment at
//!   [`RAM_SEGMENT_START`], between two guard regions of [`GUARD_BYTE`], so
//!   that any arithmetic that forgets `segment_start` reads or damages
//!   bytes a test can see. A reboot is `RamDevice::from_image`.
//! - [`FileMedium`]: a [`FileDevice`] on a temporary file, segment at 0,
//!   as `segwal-std` lays segments out. A reboot rewrites the file in place
//!   and reopens it.
//!
//! Payloads come from a tiny xorshift generator ([`XorShift`]) keyed by a
//! seed and the record's index, so a failing case is reproduced by its
//! seed alone; every scenario puts the seed in its failure messages, and
//! [`test_seed`] lets `SEGWAL_TEST_SEED` replace the default one.

pub mod process;
pub mod wal_support;

use std::fmt;
use std::path::{Path, PathBuf};

use segwal::format::record_extent_bytes;
use segwal::{
    BlockDevice, ChecksumKind, Error, ReadHint, Recovered, RecoveryMode, SEQUENTIAL_WINDOW_BYTES,
    ScanReport, SegmentConfig, SegmentIdentity, SegmentReader, SegmentWriter,
};
use segwal_ram::RamDevice;
use segwal_std::FileDevice;

pub use tempfile::TempDir;

/// The sequence number every segment the harness creates carries, so a
/// `Corrupt { segment, .. }` naming it is told apart from a default 0.
pub const SEQUENCE: u64 = 7;

/// Record alignment on byte-addressable devices (files and RAM alike).
pub const RECORD_ALIGN_BYTES: u32 = 8;

/// Where [`RamMedium`] puts its segment: one guard region in.
pub const RAM_SEGMENT_START: u64 = 4096;

/// The byte the guard regions of a [`RamMedium`] hold: neither blank nor
/// anything the log writes.
pub const GUARD_BYTE: u8 = 0xEE;

/// Size of the scan scratch buffer and of reader buffers: one sequential
/// window (64 KiB), as `segwal-std` uses.
// The cast is exact: the constant is 65536.
#[allow(clippy::cast_possible_truncation)]
pub const BUFFER_BYTES: usize = SEQUENTIAL_WINDOW_BYTES as usize;

/// The seed a test runs with: `SEGWAL_TEST_SEED` (decimal or `0x` hex) when
/// set, `default` otherwise. Printed, so a failing run's output names it.
///
/// # Panics
///
/// When `SEGWAL_TEST_SEED` is set but is not a number.
pub fn test_seed(default: u64) -> u64 {
    segwal_ram::seed_from_env(default)
}

/// xorshift64* : a few lines of deterministic pseudo-randomness, no crate.
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator for `seed`. Any seed works, 0 included (the state is
    /// mixed so it is never zero).
    pub fn new(seed: u64) -> Self {
        let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        XorShift {
            state: if mixed == 0 { 1 } else { mixed },
        }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..bound` (`bound > 0`); the slight modulo bias does not
    /// matter for test data.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0)");
        self.next_u64() % bound
    }

    /// A `usize` in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        assert!(low <= high, "between({low}, {high})");
        let span = (high - low) as u64 + 1;
        low + usize::try_from(self.below(span)).expect("below a usize span")
    }

    /// Fills `out` with pseudo-random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The payload of record `index` of a run with `seed`: `len_bytes`
/// pseudo-random bytes that differ from every other record's, so a record
/// returned in the wrong place never compares equal.
pub fn payload(seed: u64, index: u64, len_bytes: usize) -> Vec<u8> {
    let mut rng = XorShift::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
    let mut out = vec![0u8; len_bytes];
    rng.fill(&mut out);
    out
}

/// Bytes a record with a `len_bytes` payload occupies on a byte-addressable
/// device: header, payload and padding to 8 bytes.
pub fn extent(len_bytes: usize) -> u64 {
    record_extent_bytes(
        u32::try_from(len_bytes).expect("test payloads fit a u32"),
        RECORD_ALIGN_BYTES,
    )
}

/// Converts a segment offset (a `u64` the log hands out) to an index into
/// a device image.
pub fn at(segment_start: u64, offset: u64) -> usize {
    usize::try_from(segment_start + offset).expect("test images fit in memory")
}

/// Where a scenario's bytes live, and how it power-cycles them.
pub trait Medium {
    /// The device type the log runs on.
    type Device: BlockDevice + Clone + fmt::Debug;

    /// `"ram"` or `"file"`, for failure messages.
    fn name(&self) -> &'static str;

    /// A handle on the device as it is now. Handles share the bytes: drop
    /// the ones a scenario no longer needs before [`Medium::reboot_with`].
    fn device(&self) -> Self::Device;

    /// Offset of the segment on the device.
    fn segment_start(&self) -> u64;

    /// Size of the segment the medium was made for.
    fn segment_size_bytes(&self) -> u32;

    /// Every byte of the device now, as a reader would see it.
    fn image(&self) -> Vec<u8>;

    /// Power-cycles the device so that it holds exactly `image` (a whole
    /// device, as [`Medium::image`] returns).
    fn reboot_with(&mut self, image: Vec<u8>);

    /// Power-cycles the device keeping the bytes it holds.
    fn reboot(&mut self) {
        let image = self.image();
        self.reboot_with(image);
    }

    /// The bytes a power cut would leave: on RAM the contents as of the last
    /// sync; on a file what the file holds (a test cannot drop the page
    /// cache).
    fn durable_image(&self) -> Vec<u8> {
        self.image()
    }

    /// Power-cycles the device as a power cut would: to its durable image.
    fn power_cut(&mut self) {
        let image = self.durable_image();
        self.reboot_with(image);
    }

    /// The bytes of the segment alone, out of the device image.
    fn segment_image(&self) -> Vec<u8> {
        let start = at(self.segment_start(), 0);
        let end = start + self.segment_size_bytes() as usize;
        self.image()[start..end].to_vec()
    }
}

/// A [`RamDevice`] with the segment between two guard regions.
#[derive(Debug)]
pub struct RamMedium {
    device: RamDevice,
    segment_size_bytes: u32,
}

impl RamMedium {
    /// A device holding guard, `segment_size_bytes` of zeros, guard.
    pub fn new(segment_size_bytes: u32) -> Self {
        let capacity_bytes = u64::from(segment_size_bytes) + 2 * RAM_SEGMENT_START;
        let capacity = usize::try_from(capacity_bytes).expect("fits in memory");
        let mut image = vec![GUARD_BYTE; capacity];
        let start = at(RAM_SEGMENT_START, 0);
        image[start..start + segment_size_bytes as usize].fill(0);
        let device =
            RamDevice::from_image(segwal::Geometry::byte_addressable(capacity_bytes), image);
        RamMedium {
            device,
            segment_size_bytes,
        }
    }

    /// The device itself, for its counters and its durable image.
    pub fn ram(&self) -> &RamDevice {
        &self.device
    }

    /// Panics unless both guard regions still hold [`GUARD_BYTE`]: the log
    /// never writes outside its segment.
    pub fn assert_guards_intact(&self, context: &str) {
        let image = self.device.live_image();
        let end = at(RAM_SEGMENT_START, u64::from(self.segment_size_bytes));
        let before = &image[..at(RAM_SEGMENT_START, 0)];
        let after = &image[end..];
        assert!(
            before.iter().chain(after).all(|&b| b == GUARD_BYTE),
            "{context}: bytes outside the segment were written"
        );
    }
}

impl Medium for RamMedium {
    type Device = RamDevice;

    fn name(&self) -> &'static str {
        "ram"
    }

    fn device(&self) -> RamDevice {
        self.device.clone()
    }

    fn segment_start(&self) -> u64 {
        RAM_SEGMENT_START
    }

    fn segment_size_bytes(&self) -> u32 {
        self.segment_size_bytes
    }

    fn image(&self) -> Vec<u8> {
        self.device.live_image()
    }

    fn durable_image(&self) -> Vec<u8> {
        self.device.durable_image()
    }

    fn reboot_with(&mut self, image: Vec<u8>) {
        let geometry = self.device.geometry();
        self.device = RamDevice::from_image(geometry, image);
    }
}

/// A [`FileDevice`] on a temporary file holding one segment at offset 0.
#[derive(Debug)]
pub struct FileMedium {
    path: PathBuf,
    device: FileDevice,
    segment_size_bytes: u32,
    // Last: the directory is removed only after the device is closed.
    _dir: TempDir,
}

impl FileMedium {
    /// A new zero-filled file of `segment_size_bytes`.
    ///
    /// # Panics
    ///
    /// When the temporary file cannot be made.
    pub fn new(segment_size_bytes: u32) -> Self {
        let (dir, path) = temp_path("segment.log");
        let device = FileDevice::create(&path, u64::from(segment_size_bytes))
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        FileMedium {
            path,
            device,
            segment_size_bytes,
            _dir: dir,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Medium for FileMedium {
    type Device = FileDevice;

    fn name(&self) -> &'static str {
        "file"
    }

    fn device(&self) -> FileDevice {
        self.device.clone()
    }

    fn segment_start(&self) -> u64 {
        0
    }

    fn segment_size_bytes(&self) -> u32 {
        self.segment_size_bytes
    }

    fn image(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_else(|e| panic!("read {}: {e}", self.path.display()))
    }

    fn reboot_with(&mut self, image: Vec<u8>) {
        assert_eq!(
            image.len() as u64,
            u64::from(self.segment_size_bytes),
            "an image of the whole file"
        );
        // In place, so the file keeps its inode, size and extents.
        std::fs::write(&self.path, image)
            .unwrap_or_else(|e| panic!("rewrite {}: {e}", self.path.display()));
        self.device = FileDevice::open(&self.path)
            .unwrap_or_else(|e| panic!("reopen {}: {e}", self.path.display()));
    }
}

/// A fresh temporary directory and a path named `name` inside it. Keep the
/// directory alive as long as the path is used.
///
/// # Panics
///
/// When no temporary directory can be made.
pub fn temp_path(name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(name);
    (dir, path)
}

/// The log's error over a medium's device.
pub type MediumError<M> = Error<<<M as Medium>::Device as segwal::ErrorType>::Error>;

/// Records as read back, in log order: `(offset, payload)`.
pub type ReadRecords = Vec<(u64, Vec<u8>)>;

/// The identity the harness gives a segment: a lone segment numbered
/// [`SEQUENCE`], LSN 1 and `salt`.
pub fn identity(salt: u64) -> SegmentIdentity {
    SegmentIdentity::first(SEQUENCE, 1, salt)
}

/// A segment config filling the medium, with `checksum_kind`.
pub fn config_for<M: Medium>(medium: &M, checksum_kind: ChecksumKind) -> SegmentConfig {
    SegmentConfig {
        checksum_kind,
        ..SegmentConfig::new(medium.segment_size_bytes())
    }
}

/// Creates a segment on the medium with `config` and `salt`.
///
/// # Panics
///
/// When creation fails: every scenario starts from a good segment.
pub fn create_segment<M: Medium>(
    medium: &M,
    config: &SegmentConfig,
    salt: u64,
) -> SegmentWriter<M::Device> {
    SegmentWriter::create(
        medium.device(),
        medium.segment_start(),
        config,
        identity(salt),
        &[],
    )
    .unwrap_or_else(|e| panic!("{}: create segment: {e}", medium.name()))
}

/// Opens the medium's segment for writing with a [`BUFFER_BYTES`] scratch.
///
/// # Errors
///
/// Whatever [`SegmentWriter::open`] returns.
pub fn open_writer<M: Medium>(
    medium: &M,
    mode: RecoveryMode,
) -> Result<(SegmentWriter<M::Device>, Recovered), MediumError<M>> {
    open_writer_with(medium, mode, BUFFER_BYTES)
}

/// As [`open_writer`], with a scan scratch of `scratch_len_bytes`.
///
/// # Errors
///
/// Whatever [`SegmentWriter::open`] returns.
pub fn open_writer_with<M: Medium>(
    medium: &M,
    mode: RecoveryMode,
    scratch_len_bytes: usize,
) -> Result<(SegmentWriter<M::Device>, Recovered), MediumError<M>> {
    let mut scratch = vec![0u8; scratch_len_bytes];
    SegmentWriter::open(medium.device(), medium.segment_start(), mode, &mut scratch)
}

/// What a reader that finds the end by scanning (strict recovery, before
/// any writer repairs the tail) sees in the medium's segment, and that
/// reader, now allowed to read what it found.
///
/// # Panics
///
/// When the header cannot be read or the scan fails: `context` says
/// which case.
pub fn scan_as_reader<M: Medium>(
    medium: &M,
    context: &str,
) -> (SegmentReader<M::Device, Vec<u8>>, ScanReport) {
    let mut scanning = SegmentReader::open(
        medium.device(),
        medium.segment_start(),
        vec![0u8; BUFFER_BYTES],
    )
    .unwrap_or_else(|e| panic!("{context}: reader: {e:?}"));
    let report = scanning
        .recover_flushed_offset(RecoveryMode::Strict)
        .unwrap_or_else(|e| panic!("{context}: scan: {e:?}"));
    (scanning, report)
}

/// A reader over the medium's segment with a [`BUFFER_BYTES`] buffer,
/// allowed to read up to `flushed_offset`.
///
/// # Panics
///
/// When the segment header cannot be read.
pub fn open_reader<M: Medium>(
    medium: &M,
    flushed_offset: u64,
) -> SegmentReader<M::Device, Vec<u8>> {
    open_reader_with(medium, flushed_offset, BUFFER_BYTES)
}

/// As [`open_reader`], with a buffer of `buffer_len_bytes`.
///
/// # Panics
///
/// When the segment header cannot be read or the buffer is refused.
pub fn open_reader_with<M: Medium>(
    medium: &M,
    flushed_offset: u64,
    buffer_len_bytes: usize,
) -> SegmentReader<M::Device, Vec<u8>> {
    let mut reader = SegmentReader::open(
        medium.device(),
        medium.segment_start(),
        vec![0u8; buffer_len_bytes],
    )
    .unwrap_or_else(|e| panic!("{}: open reader: {e}", medium.name()));
    reader.set_flushed_offset(flushed_offset);
    reader
}

/// A record the test wrote and the log acknowledged: where it went and
/// what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Offset the writer returned.
    pub offset: u64,
    /// The payload appended.
    pub payload: Vec<u8>,
}

impl Written {
    /// One past the record's last byte, padding included.
    pub fn end(&self) -> u64 {
        self.offset + extent(self.payload.len())
    }
}

/// Appends `payloads` one by one and returns what was written where.
///
/// # Panics
///
/// When an append fails.
pub fn append_all<D: BlockDevice>(
    writer: &mut SegmentWriter<D>,
    payloads: impl IntoIterator<Item = Vec<u8>>,
) -> Vec<Written> {
    payloads
        .into_iter()
        .map(|payload| {
            let appended = writer
                .append(&payload)
                .unwrap_or_else(|e| panic!("append of {} bytes: {e}", payload.len()));
            assert_eq!(appended.len_bytes as usize, payload.len());
            Written {
                offset: appended.offset,
                payload,
            }
        })
        .collect()
}

/// Every record from the first to the reader's flushed offset, read with
/// [`ReadHint::Sequential`] by following `next_offset`, as
/// `(offset, payload)`.
///
/// # Errors
///
/// The first read that fails.
pub fn read_all<D: BlockDevice, B: AsMut<[u8]> + AsRef<[u8]>>(
    reader: &mut SegmentReader<D, B>,
) -> Result<ReadRecords, Error<D::Error>> {
    let mut out = Vec::new();
    let mut position = reader.records_start();
    // A record takes at least one alignment unit: a bound on the loop.
    let steps_max = reader.flushed_offset() / u64::from(RECORD_ALIGN_BYTES) + 1;
    for _ in 0..steps_max {
        if position >= reader.flushed_offset() {
            return Ok(out);
        }
        let record = reader.read_record(position, ReadHint::Sequential)?;
        assert_eq!(record.offset, position, "a record reports its own offset");
        assert!(record.next_offset > position, "next_offset moves forward");
        out.push((record.offset, record.payload.to_vec()));
        position = record.next_offset;
    }
    panic!("read_all: more records than alignment units");
}

/// Panics unless iterating `reader` from its first record gives exactly
/// `expected` ([`assert_same_records`]).
pub fn assert_iterates_to(reader: &mut segwal_std::Reader, expected: &[Written], context: &str) {
    let start = reader.records_start();
    let read: Vec<(u64, Vec<u8>)> = reader
        .iter_from(start)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{context}: iterate: {error}"));
    assert_same_records(&read, expected, context);
}

/// Panics unless `read` (from [`read_all`] or an iterator) is exactly
/// `expected`, naming the first record that differs.
pub fn assert_same_records(read: &[(u64, Vec<u8>)], expected: &[Written], context: &str) {
    for (index, (got, want)) in read.iter().zip(expected).enumerate() {
        assert_eq!(got.0, want.offset, "{context}: offset of record {index}");
        assert!(
            got.1 == want.payload,
            "{context}: payload of record {index} at offset {} differs ({} bytes read, {} written)",
            want.offset,
            got.1.len(),
            want.payload.len()
        );
    }
    assert_eq!(
        read.len(),
        expected.len(),
        "{context}: number of records read"
    );
}

/// Panics unless every record of `expected` reads back by offset with
/// `hint`, payload equal and `next_offset` at the end of its extent.
pub fn assert_reads_by_offset<D: BlockDevice, B: AsMut<[u8]> + AsRef<[u8]>>(
    reader: &mut SegmentReader<D, B>,
    expected: &[Written],
    hint: ReadHint,
    context: &str,
) {
    for (index, want) in expected.iter().enumerate() {
        let record = reader
            .read_record(want.offset, hint)
            .unwrap_or_else(|e| panic!("{context}: read {hint:?} of record {index}: {e}"));
        assert_eq!(record.offset, want.offset, "{context}: record {index}");
        assert_eq!(record.next_offset, want.end(), "{context}: record {index}");
        assert!(
            *record.payload == want.payload[..],
            "{context}: {hint:?} read of record {index} at {} returned other bytes",
            want.offset
        );
    }
}

/// `true` when every byte of `bytes` is zero.
pub fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Where the scan's *dirty end* falls for a segment whose valid records end
/// at `records_end`: one past the last non-zero byte at or after it,
/// rounded up to [`RECORD_ALIGN_BYTES`]; `records_end` itself when
/// everything after it is zero. `segment` is the segment's image.
///
/// It is the model of what `TailState::TruncatedAt` reports on a
/// byte-addressable device: `bytes_discarded = dirty_end - records_end`.
pub fn dirty_end(segment: &[u8], records_end: u64) -> u64 {
    let from = usize::try_from(records_end).expect("fits");
    match segment[from..].iter().rposition(|&b| b != 0) {
        None => records_end,
        Some(last) => {
            let end = (from + last + 1) as u64;
            end.div_ceil(u64::from(RECORD_ALIGN_BYTES)) * u64::from(RECORD_ALIGN_BYTES)
        }
    }
}
