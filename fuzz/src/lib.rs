//! What the segwal fuzz targets share: how fuzz input becomes a device
//! geometry, a segment header, or a segment written by the log's own writer
//! (then torn or damaged), and a minimal segment store over such images.
//!
//! Bytes that a checksum protects (payloads, torn tails) come from a PRNG
//! seeded by the input, never straight from the input: libFuzzer solves
//! 4-byte compares, so raw input bytes could forge a record whose CRC
//! matches, and a model check would then fail on something no checksum can
//! catch. Raw input bytes go only where "no panic" is the whole check.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use segwal::format::{SEGMENT_HEADER_LEN, SegmentHeader, record_extent_bytes};
use segwal::{
    BlockDevice, ChecksumKind, Error, ErrorKind, ErrorType, Geometry, RecoveryMode,
    SCAN_SCRATCH_MIN_BYTES, SegmentAppender, SegmentConfig, SegmentId, SegmentIdentity,
    SegmentStore, USER_AREA_MAX_BYTES,
};
use segwal_ram::RamDevice;

/// Every segment size and start is a multiple of this: the erase block of
/// the flash geometry and the sector of the sector geometry.
pub const UNIT_BYTES: u32 = 512;

/// Largest segment the targets build: keeps an input's work small.
pub const SEGMENT_BYTES_MAX: u32 = 32 * UNIT_BYTES;

/// Largest payload the writer is asked for: above the 2 KiB a random read
/// takes along and above the smallest reader buffer, so spills happen.
pub const PAYLOAD_BYTES_MAX: usize = 4200;

/// Most write operations applied to one segment.
pub const WRITE_OPS_MAX: usize = 32;

/// Most records in one batch.
pub const BATCH_RECORDS_MAX: usize = 8;

/// splitmix64: every byte the checksums cover comes from here.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Noise(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `out`.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The kind of storage a segment lives on.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryChoice {
    /// A file: byte units, erased to zero.
    File,
    /// A block device: 512-byte reads and writes, erased to zero.
    Sector,
    /// NOR flash: byte reads, 4..32-byte program words, 512-byte erase
    /// blocks, erased to `0xFF`, programming only clears bits.
    Nor {
        /// log2 of the word size, minus 2, modulo 4.
        word_log2: u8,
    },
}

impl GeometryChoice {
    /// The geometry of a device of `capacity_bytes` (a multiple of
    /// [`UNIT_BYTES`]).
    pub fn geometry(self, capacity_bytes: u64) -> Geometry {
        match self {
            GeometryChoice::File => Geometry::byte_addressable(capacity_bytes),
            GeometryChoice::Sector => Geometry {
                read_size_bytes: UNIT_BYTES,
                write_size_bytes: UNIT_BYTES,
                erase_size_bytes: UNIT_BYTES,
                erased_byte: 0x00,
                erase_before_write: false,
                capacity_bytes,
            },
            GeometryChoice::Nor { word_log2 } => Geometry {
                read_size_bytes: 1,
                write_size_bytes: 4 << (word_log2 % 4),
                erase_size_bytes: UNIT_BYTES,
                erased_byte: 0xFF,
                erase_before_write: true,
                capacity_bytes,
            },
        }
    }

    /// A blank device of `capacity_bytes`.
    pub fn device(self, capacity_bytes: u64) -> RamDevice {
        RamDevice::new(self.geometry(capacity_bytes))
    }
}

/// A `u64` field: small values make chains and counts line up, wide and
/// near-maximum ones probe arithmetic on values read from a device.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Number {
    /// 0..=255.
    Small(u8),
    /// Anything.
    Wide(u64),
    /// `u64::MAX` minus 0..=255.
    NearMax(u8),
}

impl Number {
    /// The value.
    pub fn value(self) -> u64 {
        match self {
            Number::Small(v) => u64::from(v),
            Number::Wide(v) => v,
            Number::NearMax(v) => u64::MAX - u64::from(v),
        }
    }
}

/// The fields of a segment header, as fuzz input chooses them.
#[derive(Arbitrary, Debug, Clone)]
pub struct HeaderFields {
    /// CRC-32 instead of CRC32C.
    pub crc32: bool,
    /// Record alignment is `2^(3 + align_log2 % 8)` (header mode only; the
    /// writer takes the device's).
    pub align_log2: u8,
    /// User area length, modulo 1024.
    pub user_area_len_bytes: u16,
    /// Segment sequence number.
    pub sequence: Number,
    /// `prev_sequence = sequence - min(prev_back, sequence)`.
    pub prev_back: Number,
    /// LSN of the first record.
    pub base_lsn: Number,
    /// Salt.
    pub salt: u64,
    /// Segment size is `(size_units % 32 + 1) * UNIT_BYTES`.
    pub size_units: u8,
    /// `record_len_max`, clamped to what the segment holds; `None` for
    /// anything that fits.
    pub record_len_max: Option<u16>,
    /// Stored user-area checksum (header mode only).
    pub user_area_checksum: u32,
}

impl HeaderFields {
    /// The segment size these fields give.
    pub fn segment_size_bytes(&self) -> u32 {
        (u32::from(self.size_units) % (SEGMENT_BYTES_MAX / UNIT_BYTES) + 1) * UNIT_BYTES
    }

    fn checksum_kind(&self) -> ChecksumKind {
        if self.crc32 {
            ChecksumKind::Crc32
        } else {
            ChecksumKind::Crc32c
        }
    }

    /// Who the segment is.
    pub fn identity(&self) -> SegmentIdentity {
        let sequence = self.sequence.value();
        SegmentIdentity {
            sequence,
            base_lsn: self.base_lsn.value(),
            salt: self.salt,
            prev_sequence: sequence - self.prev_back.value().min(sequence),
        }
    }

    /// The writer's layout: the device decides the alignment.
    pub fn config(&self) -> SegmentConfig {
        SegmentConfig {
            segment_size_bytes: self.segment_size_bytes(),
            user_area_len_bytes: u32::from(self.user_area_len_bytes) % 1024,
            checksum_kind: self.checksum_kind(),
            record_len_max: self.record_len_max.map(u32::from),
        }
    }

    /// A header that passes [`SegmentHeader::validate`], or `None` when the
    /// fields cannot make one (the caller then uses raw bytes).
    pub fn header(&self) -> Option<SegmentHeader> {
        let identity = self.identity();
        let mut header = SegmentHeader {
            checksum_kind: self.checksum_kind(),
            record_align_log2: 3 + self.align_log2 % 8,
            user_area_len_bytes: u32::from(self.user_area_len_bytes) % 1024,
            sequence: identity.sequence,
            base_lsn: identity.base_lsn,
            salt: identity.salt,
            segment_size_bytes: self.segment_size_bytes(),
            record_len_max: 0,
            user_area_checksum: self.user_area_checksum,
            prev_sequence: identity.prev_sequence,
        };
        let room = header
            .segment_size_bytes
            .checked_sub(header.records_start().checked_add(16)?)?;
        header.record_len_max = self
            .record_len_max
            .map_or(room, |max| u32::from(max).min(room));
        header.validate().ok().map(|()| header)
    }
}

/// Where a payload's bytes come from.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Fill {
    /// PRNG bytes from this seed (mixed with the record's index).
    Noise(u64),
    /// One byte repeated (zero and `0xFF` included: payloads that look
    /// blank).
    Byte(u8),
}

impl Fill {
    /// A payload of `len % (PAYLOAD_BYTES_MAX + 1)` bytes for record `index`.
    pub fn payload(self, len: u16, index: u64) -> Vec<u8> {
        let len = usize::from(len) % (PAYLOAD_BYTES_MAX + 1);
        match self {
            Fill::Noise(seed) => {
                let mut out = vec![0; len];
                Noise::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407)).fill(&mut out);
                out
            }
            Fill::Byte(byte) => vec![byte; len],
        }
    }
}

/// One step of building a segment with the log's own writer.
#[derive(Arbitrary, Debug, Clone)]
pub enum WriteOp {
    /// Append one record.
    Append {
        /// Payload length (modulo `PAYLOAD_BYTES_MAX + 1`).
        len: u16,
        /// Payload bytes.
        fill: Fill,
    },
    /// Append an atomic batch (at most `BATCH_RECORDS_MAX` records).
    Batch {
        /// Payload lengths.
        lens: Vec<u16>,
        /// Payload bytes.
        fill: Fill,
    },
    /// Sync.
    Sync,
    /// Write a clean-close marker.
    Close,
    /// A write torn by a power cut: PRNG garbage right after the records.
    TornTail {
        /// Garbage length, modulo 600, plus one.
        len: u16,
        /// Garbage bytes.
        seed: u64,
        /// Reopen the writer afterwards (it then zeroes or skips the
        /// garbage); without, the writer stops here.
        reopen: bool,
    },
    /// Reopen the writer from the device.
    Reopen {
        /// Try the clean-close marker first.
        from_marker: bool,
    },
    /// Damage synced bytes anywhere in the segment: the model is off.
    Damage {
        /// Segment offset, modulo the segment size.
        offset: u16,
        /// Bytes damaged.
        len: u8,
        /// What they are xored with.
        xor: u8,
    },
}

/// A segment written by [`write_segment`], and what it must hold.
#[derive(Debug)]
pub struct Written {
    /// The device.
    pub device: RamDevice,
    /// The header the writer wrote; `None` when the writer refused the
    /// layout (the device then holds no segment).
    pub header: Option<SegmentHeader>,
    /// Every record appended, with its offset, oldest first.
    pub records: Vec<(u64, Vec<u8>)>,
    /// A clean-close marker at the end of the records: its offset and the
    /// record count it carries.
    pub marker: Option<(u32, u64)>,
    /// Synced bytes were damaged: `records` and `marker` are no longer
    /// what the segment must hold.
    pub damaged: bool,
    /// The writer stopped on a torn tail it left in place.
    pub torn_tail_left: bool,
}

/// Replaces `device` with one holding `image`, live and durable.
fn reimage(device: &RamDevice, image: Vec<u8>) -> RamDevice {
    RamDevice::from_image(device.geometry(), image)
}

/// Panics on an error the writer must not return on a healthy device: a
/// device error means the log asked for an invalid range.
fn expect_no_device_error<T>(
    result: Result<T, Error<segwal_ram::RamError>>,
    what: &str,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(Error::Device(e)) => panic!("{what}: the log made an invalid device request: {e:?}"),
        Err(_) => None,
    }
}

/// Reopens the segment by a scan, as the log does before its next append:
/// strictly while no synced byte was damaged (then the scan must find
/// every record written, no more), truncating at the damage after. `None`
/// when a damaged segment does not reopen.
///
/// # Panics
///
/// When an undamaged segment does not reopen, or reopens with another
/// record count; `what` names the case.
fn reopen_by_scan(
    device: &mut RamDevice,
    start: u64,
    scratch: &mut [u8],
    written: &Written,
    what: &str,
) -> Option<SegmentAppender> {
    let mode = if written.damaged {
        RecoveryMode::TruncateAtCorruption
    } else {
        RecoveryMode::Strict
    };
    match SegmentAppender::open(device, start, mode, scratch) {
        Ok((reopened, recovered)) => {
            if !written.damaged {
                assert_eq!(
                    recovered.record_count,
                    written.records.len() as u64,
                    "reopen {what} lost or invented records"
                );
            }
            Some(reopened)
        }
        Err(e) if !written.damaged => panic!("reopen {what} behind intact records failed: {e:?}"),
        Err(_) => None,
    }
}

/// What [`write_segment`] may do besides what the writer does itself.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Apply `Damage` operations (otherwise they do nothing).
    pub allow_damage: bool,
    /// Leave a torn tail in place when asked (otherwise the writer is
    /// always reopened on it, as the log does before its next append).
    pub may_leave_torn_tail: bool,
}

/// Builds a segment at `start` of `device` from `ops`, as the log's own
/// writer lays it out: `SegmentAppender::create`, then each operation in
/// turn, within `limits`.
///
/// # Panics
///
/// When the writer fails in a way it must not on an undamaged segment: a
/// device error, or a reopen that fails.
pub fn write_segment(
    mut device: RamDevice,
    start: u64,
    config: &SegmentConfig,
    identity: SegmentIdentity,
    user_area_seed: u64,
    ops: &[WriteOp],
    limits: WriteLimits,
) -> Written {
    let mut user_area = vec![0u8; config.user_area_len_bytes.min(USER_AREA_MAX_BYTES) as usize];
    Noise::new(user_area_seed).fill(&mut user_area);
    let mut written = Written {
        // Replaced at the end: tears and damage rebuild the device.
        device: device.clone(),
        header: None,
        records: Vec::new(),
        marker: None,
        damaged: false,
        torn_tail_left: false,
    };
    let created = SegmentAppender::create(&mut device, start, config, identity, &user_area);
    let Some(mut appender) = expect_no_device_error(created, "create") else {
        written.device = device;
        return written;
    };
    written.header = Some(*appender.header());
    let header = *appender.header();
    let size = u64::from(header.segment_size_bytes);
    let mut scratch = vec![0u8; SCAN_SCRATCH_MIN_BYTES.max(8192)];
    for op in ops.iter().take(WRITE_OPS_MAX) {
        match op {
            WriteOp::Append { len, fill } => {
                let payload = fill.payload(*len, written.records.len() as u64);
                let appended = appender.append(&mut device, &payload);
                if let Some(appended) = expect_no_device_error(appended, "append") {
                    written.records.push((appended.offset, payload));
                    written.marker = None;
                }
            }
            WriteOp::Batch { lens, fill } => {
                let payloads: Vec<Vec<u8>> = lens
                    .iter()
                    .take(BATCH_RECORDS_MAX)
                    .enumerate()
                    .map(|(i, &len)| fill.payload(len, (written.records.len() + i) as u64))
                    .collect();
                let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let appended = appender.append_batch(&mut device, &slices);
                if let Some(range) = expect_no_device_error(appended, "append_batch") {
                    if !payloads.is_empty() {
                        written.marker = None;
                    }
                    let mut offset = range.start;
                    for payload in payloads {
                        let len = u32::try_from(payload.len()).expect("payloads are small");
                        let extent = record_extent_bytes(len, header.record_align_bytes());
                        written.records.push((offset, payload));
                        offset += extent;
                    }
                    assert_eq!(offset, range.end, "append_batch range vs record extents");
                }
            }
            WriteOp::Sync => {
                expect_no_device_error(appender.sync(&mut device), "sync");
            }
            WriteOp::Close => {
                let closed = appender.write_close_marker(&mut device);
                if let Some(true) = expect_no_device_error(closed, "write_close_marker") {
                    let offset = u32::try_from(appender.written_offset()).expect("small segment");
                    written.marker = Some((offset, written.records.len() as u64));
                }
            }
            WriteOp::TornTail { len, seed, reopen } => {
                let from = appender.written_offset();
                if from >= size {
                    continue;
                }
                let to = (from + 1 + u64::from(*len % 600)).min(size);
                let mut image = device.live_image();
                let range = (start + from) as usize..(start + to) as usize;
                Noise::new(*seed).fill(&mut image[range]);
                device = reimage(&device, image);
                // The garbage starts where a marker would be: it is gone.
                written.marker = None;
                if !*reopen && limits.may_leave_torn_tail {
                    written.torn_tail_left = true;
                    break;
                }
                match reopen_by_scan(
                    &mut device,
                    start,
                    &mut scratch,
                    &written,
                    "after a torn tail",
                ) {
                    Some(reopened) => appender = reopened,
                    None => break,
                }
            }
            WriteOp::Reopen { from_marker } => {
                let clean = if *from_marker {
                    SegmentAppender::open_clean(&mut device, start, &mut scratch)
                } else {
                    Ok(None)
                };
                let clean = match clean {
                    Ok(clean) => clean,
                    Err(e) if !written.damaged => panic!("open_clean of an intact segment: {e:?}"),
                    Err(_) => break,
                };
                if let Some((reopened, recovered)) = clean {
                    if !written.damaged {
                        assert!(
                            written.marker.is_some(),
                            "open_clean found a marker never written"
                        );
                        assert_eq!(
                            recovered.record_count,
                            written.records.len() as u64,
                            "the clean-close marker's record count"
                        );
                    }
                    appender = reopened;
                    continue;
                }
                if *from_marker && !written.damaged && written.marker.is_some() {
                    panic!(
                        "open_clean missed the clean-close marker at {:?}",
                        written.marker
                    );
                }
                match reopen_by_scan(&mut device, start, &mut scratch, &written, "of a segment") {
                    Some(reopened) => appender = reopened,
                    None => break,
                }
            }
            WriteOp::Damage { offset, len, xor } => {
                if !limits.allow_damage || *xor == 0 || *len == 0 {
                    continue;
                }
                let at = start + u64::from(*offset) % size;
                let end = (at + u64::from(*len)).min(start + size);
                let mut image = device.live_image();
                for byte in &mut image[at as usize..end as usize] {
                    *byte ^= xor;
                }
                device = reimage(&device, image);
                written.damaged = true;
            }
        }
    }
    written.device = device;
    written
}

/// A [`RamDevice`] whose errors are plain [`ErrorKind`]s, so a store of
/// them needs no error type of its own.
#[derive(Debug, Clone)]
pub struct ImageDevice(pub RamDevice);

impl ErrorType for ImageDevice {
    type Error = ErrorKind;
}

impl BlockDevice for ImageDevice {
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
        self.0
            .read(offset, buf)
            .map_err(|e| segwal::DeviceError::kind(&e))
    }
    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), ErrorKind> {
        self.0
            .write(offset, pieces)
            .map_err(|e| segwal::DeviceError::kind(&e))
    }
    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), ErrorKind> {
        self.0
            .erase(offset, len_bytes)
            .map_err(|e| segwal::DeviceError::kind(&e))
    }
    fn sync(&mut self) -> Result<(), ErrorKind> {
        self.0.sync().map_err(|e| segwal::DeviceError::kind(&e))
    }
}

/// A segment store over device images the fuzzer built: `RamStore` only
/// holds segments the log created, this one holds whatever it is given.
/// Segments may start anywhere on their device.
#[derive(Debug)]
pub struct ImageStore {
    /// Devices by segment id, with the offset the segment starts at.
    pub segments: BTreeMap<SegmentId, (ImageDevice, u64)>,
    /// Ids are sequence numbers (a directory of files) rather than slots.
    pub named_by_sequence: bool,
    /// The geometry of segments the log allocates.
    pub geometry: GeometryChoice,
    salt_state: u64,
}

impl ImageStore {
    /// An empty store.
    pub fn new(named_by_sequence: bool, geometry: GeometryChoice, salt_seed: u64) -> Self {
        ImageStore {
            segments: BTreeMap::new(),
            named_by_sequence,
            geometry,
            salt_state: salt_seed,
        }
    }

    /// Adds (or replaces) segment `id`, starting at `start` of `device`.
    pub fn insert(&mut self, id: SegmentId, device: RamDevice, start: u64) {
        self.segments.insert(id, (ImageDevice(device), start));
    }
}

impl ErrorType for ImageStore {
    type Error = ErrorKind;
}

impl SegmentStore for ImageStore {
    type Device = ImageDevice;

    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), ErrorKind> {
        self.segments.keys().for_each(|&id| visit(id));
        Ok(())
    }

    fn device(&mut self, id: SegmentId) -> Result<(&mut ImageDevice, u64), ErrorKind> {
        self.segments
            .get_mut(&id)
            .map(|(device, start)| (device, *start))
            .ok_or(ErrorKind::Other)
    }

    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, ErrorKind> {
        if !size_bytes.is_multiple_of(UNIT_BYTES) {
            return Err(ErrorKind::Misaligned);
        }
        let id = if self.named_by_sequence {
            sequence
        } else {
            self.segments
                .keys()
                .next_back()
                .map_or(0, |&last| last.wrapping_add(1))
        };
        let device = self.geometry.device(u64::from(size_bytes));
        self.segments.insert(id, (ImageDevice(device), 0));
        Ok(id)
    }

    fn release(&mut self, id: SegmentId) -> Result<(), ErrorKind> {
        self.segments.remove(&id);
        Ok(())
    }

    fn fresh_salt(&mut self) -> u64 {
        self.salt_state = Noise::new(self.salt_state).next_u64();
        self.salt_state
    }

    fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> {
        self.named_by_sequence.then_some(sequence)
    }
}

/// An image of `capacity_bytes` holding `bytes` from `at`, erased elsewhere.
pub fn image_with(geometry: &Geometry, at: usize, bytes: &[u8]) -> Vec<u8> {
    let capacity = usize::try_from(geometry.capacity_bytes).expect("small device");
    let mut image = vec![geometry.erased_byte; capacity];
    let end = (at + bytes.len()).min(capacity);
    if at < end {
        image[at..end].copy_from_slice(&bytes[..end - at]);
    }
    image
}

/// `header` encoded at `start`, then `body`, on an erased device.
pub fn header_image(
    geometry: &Geometry,
    start: usize,
    header: &SegmentHeader,
    body: &[u8],
) -> Vec<u8> {
    let mut image = image_with(geometry, start + SEGMENT_HEADER_LEN, body);
    image[start..start + SEGMENT_HEADER_LEN].copy_from_slice(&header.encode());
    image
}
