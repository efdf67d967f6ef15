//! Bad length: a record header whose length field lies is classified, never
//! trusted.
//!
//! Every record of a segment is synced as it is written, so each record's
//! `synced` field covers all the records before it. Then the length field
//! of one record (the last, or one in the middle) is overwritten with a
//! lie: 0, shorter than a header (1, 8, 15), off by one, exactly
//! `record_len_max`, one over it, running one byte past the segment's end,
//! running exactly to it (longer than the 64 KiB scan buffer), `2^31`,
//! `u32::MAX - 15` (wraps a `u32` once the header is added) and
//! `u32::MAX`; or the whole header is zeroed. For each lie:
//!
//! - `SegmentWriter::open` neither panics nor trusts the length: a lying
//!   last record is a torn tail (`TruncatedAt` its offset, the discarded
//!   bytes counted to the record's real end), a lying middle record is
//!   `Error::Corrupt` at its offset in `Strict` mode (the next record
//!   named as the next valid one) and a truncation there in
//!   `TruncateAtCorruption` mode;
//! - a reader told the old flushed offset refuses the record with
//!   `NotARecord` at its offset, `ImplausibleLength` when the length cannot
//!   fit and `BadChecksum` when it can, and still reads every other record;
//! - every device read issued on the way stays inside the segment and is
//!   at most one 64 KiB buffer long: no implausible length from the device
//!   sizes a read (or the buffer it goes into).
//!
//! A lie that stays plausible but is longer than the reader's buffer has
//! to be read to be checked: it is refused with `BadChecksum`, and the
//! reads it causes stay inside the flushed records.
//!
//! Runs over RAM (every lie, plus a proptest of arbitrary lengths) and a
//! file (every lie), with and without a `record_len_max` below the
//! segment's room.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use proptest::prelude::*;
use segwal::format::{RECORD_HEADER_LEN, RECORD_LEN};
use segwal::{
    BlockDevice, ChecksumKind, Corruption, Error, ErrorType, Geometry, ReadHint, RecordDefect,
    RecoveryMode, SegmentConfig, SegmentReader, SegmentWriter, TailState,
};
use segwal_tests::{
    BUFFER_BYTES, FileMedium, Medium, RamMedium, SEQUENCE, Written, XorShift, append_all, at,
    dirty_end, payload, test_seed,
};

const SEGMENT_BYTES: u32 = 256 * 1024;
const RECORDS: usize = 10;

/// What the watched device saw.
#[derive(Debug, Default)]
struct WatchLog {
    read_bytes_max: u64,
    reads_outside: Vec<(u64, u64)>,
}

/// A device that passes everything through and logs every read's size and
/// whether it stayed inside `segment`.
#[derive(Debug, Clone)]
struct Watched<D> {
    inner: D,
    segment: Range<u64>,
    log: Rc<RefCell<WatchLog>>,
}

impl<D: ErrorType> ErrorType for Watched<D> {
    type Error = D::Error;
}

impl<D: BlockDevice> BlockDevice for Watched<D> {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let len = buf.len() as u64;
        let mut log = self.log.borrow_mut();
        log.read_bytes_max = log.read_bytes_max.max(len);
        if offset < self.segment.start || offset + len > self.segment.end {
            log.reads_outside.push((offset, len));
        }
        drop(log);
        self.inner.read(offset, buf)
    }
    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), Self::Error> {
        self.inner.write(offset, pieces)
    }
    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), Self::Error> {
        self.inner.erase(offset, len_bytes)
    }
    fn sync(&mut self) -> Result<(), Self::Error> {
        self.inner.sync()
    }
}

fn watched<M: Medium>(medium: &M, log: &Rc<RefCell<WatchLog>>) -> Watched<M::Device> {
    let start = medium.segment_start();
    Watched {
        inner: medium.device(),
        segment: start..start + u64::from(medium.segment_size_bytes()),
        log: Rc::clone(log),
    }
}

/// The lie told about one record.
#[derive(Debug, Clone, Copy)]
enum Lie {
    Len(u32),
    ZeroHeader,
}

/// Every lie for the record at `offset` with a `len`-byte payload.
fn lies(offset: u64, len: u32, record_len_max: u32) -> Vec<Lie> {
    let to_end = u32::try_from(u64::from(SEGMENT_BYTES) - offset).expect("fits") - 16;
    let mut out: Vec<Lie> = [
        0,
        1,
        8,
        15,
        len - 1,
        len + 1,
        record_len_max,
        record_len_max + 1,
        to_end,
        to_end + 1,
        1 << 31,
        u32::MAX - 15,
        u32::MAX,
    ]
    .into_iter()
    .filter(|&lie| lie != len)
    .map(Lie::Len)
    .collect();
    out.push(Lie::ZeroHeader);
    out
}

/// A segment of `RECORDS` records, each synced as written.
fn prepare<M: Medium>(
    medium: &M,
    config: &SegmentConfig,
    seed: u64,
) -> (Vec<Written>, u64, Vec<u8>) {
    let mut writer = SegmentWriter::create(
        medium.device(),
        medium.segment_start(),
        config,
        segwal_tests::identity(seed),
        &[],
    )
    .expect("create");
    let mut rng = XorShift::new(seed);
    let mut written = Vec::new();
    for index in 0..RECORDS {
        written.extend(append_all(
            &mut writer,
            [payload(seed, index as u64, rng.between(20, 300))],
        ));
        writer.sync().expect("sync");
    }
    let flushed = writer.flushed_offset();
    drop(writer);
    (written, flushed, medium.image())
}

/// `clean` with `lie` told in the record header at image index `header`.
fn told(clean: &[u8], header: usize, lie: Lie) -> Vec<u8> {
    let mut image = clean.to_vec();
    match lie {
        Lie::Len(len) => image[header + RECORD_LEN.start..header + RECORD_LEN.end]
            .copy_from_slice(&len.to_le_bytes()),
        Lie::ZeroHeader => image[header..header + RECORD_HEADER_LEN].fill(0),
    }
    image
}

/// The limit a config gives: its own, or the segment's room for one record.
fn record_len_max(config: &SegmentConfig) -> u32 {
    // No user area: records start right after the 64-byte header.
    let records_start = 64;
    config
        .record_len_max
        .unwrap_or(SEGMENT_BYTES - records_start - 16)
}

/// The reason a reader must give for the lying record.
fn read_defect(offset: u64, lie: Lie, record_len_max: u32, flushed: u64) -> RecordDefect {
    match lie {
        Lie::ZeroHeader => RecordDefect::Blank,
        Lie::Len(len) => {
            let end = offset + RECORD_HEADER_LEN as u64 + u64::from(len);
            if len > record_len_max || end > flushed {
                RecordDefect::ImplausibleLength
            } else {
                RecordDefect::BadChecksum
            }
        }
    }
}

/// One lie told about one record of a prepared segment.
struct Case<'a> {
    written: &'a [Written],
    flushed: u64,
    target: usize,
    lie: Lie,
    record_len_max: u32,
    context: &'a str,
}

impl Case<'_> {
    fn record(&self) -> &Written {
        &self.written[self.target]
    }
}

fn check_lie<M: Medium>(
    medium: &mut M,
    config: &SegmentConfig,
    (written, flushed, clean): (&[Written], u64, &[u8]),
    target: usize,
    lie: Lie,
    context: &str,
) {
    let case = Case {
        written,
        flushed,
        target,
        lie,
        record_len_max: record_len_max(config),
        context,
    };
    let damaged = told(clean, at(medium.segment_start(), case.record().offset), lie);
    medium.reboot_with(damaged.clone());
    let log = Rc::new(RefCell::new(WatchLog::default()));
    check_open(medium, &case, &log);
    // A truncating open zeroed the damage: put it back for the reader.
    medium.reboot_with(damaged);
    check_reads(medium, &case, &log);

    let log = log.borrow();
    assert!(
        log.reads_outside.is_empty(),
        "{context}: reads outside the segment: {:?}",
        log.reads_outside
    );
    assert!(
        log.read_bytes_max <= BUFFER_BYTES as u64,
        "{context}: a read of {} bytes",
        log.read_bytes_max
    );
}

/// The writer's verdict: a torn tail for the last record, corruption (and
/// a truncation when asked for) for one in the middle.
fn check_open<M: Medium>(medium: &M, case: &Case<'_>, log: &Rc<RefCell<WatchLog>>) {
    let (record, context) = (case.record(), case.context);
    let torn_end = dirty_end(&medium.segment_image(), record.offset);
    let mut scratch = vec![0u8; BUFFER_BYTES];
    let mut open = |mode| {
        SegmentWriter::open(
            watched(medium, log),
            medium.segment_start(),
            mode,
            &mut scratch,
        )
        .map(|(_, recovered)| recovered)
    };
    let last = case.target + 1 == case.written.len();
    let truncated = TailState::TruncatedAt {
        offset: record.offset,
        bytes_discarded: case.flushed - record.offset,
    };
    match (last, open(RecoveryMode::Strict)) {
        (true, Ok(recovered)) => {
            // Nothing valid follows: the discarded bytes run to the last
            // non-blank unit, which a payload ending in zeros pulls in.
            let torn = TailState::TruncatedAt {
                offset: record.offset,
                bytes_discarded: torn_end - record.offset,
            };
            assert_eq!(recovered.tail, torn, "{context}");
            assert_eq!(recovered.record_count, case.target as u64, "{context}");
        }
        (
            false,
            Err(Error::Corrupt {
                segment,
                offset,
                reason,
            }),
        ) => {
            assert_eq!((segment, offset), (SEQUENCE, record.offset), "{context}");
            let next_valid_offset = case.written[case.target + 1].offset;
            assert_eq!(
                reason,
                Corruption::SyncedDataDamaged { next_valid_offset },
                "{context}"
            );
            let recovered = open(RecoveryMode::TruncateAtCorruption)
                .unwrap_or_else(|e| panic!("{context}: truncating open: {e}"));
            assert_eq!(recovered.tail, truncated, "{context}");
            assert_eq!(recovered.record_count, case.target as u64, "{context}");
        }
        (_, other) => panic!("{context}: strict open gave {other:?}"),
    }
}

/// A reader told the old flushed offset refuses the lying record, with
/// the right reason, and reads every other one.
fn check_reads<M: Medium>(medium: &M, case: &Case<'_>, log: &Rc<RefCell<WatchLog>>) {
    let (record, context, flushed) = (case.record(), case.context, case.flushed);
    let mut reader = SegmentReader::open(
        watched(medium, log),
        medium.segment_start(),
        vec![0u8; BUFFER_BYTES],
    )
    .expect("reader");
    reader.set_flushed_offset(flushed);
    let defect = read_defect(record.offset, case.lie, case.record_len_max, flushed);
    for hint in [ReadHint::Random, ReadHint::Sequential] {
        match reader.read_record(record.offset, hint) {
            Err(Error::NotARecord {
                segment,
                offset,
                reason,
            }) => assert_eq!(
                (segment, offset, reason),
                (SEQUENCE, record.offset, defect),
                "{context} {hint:?}"
            ),
            other => panic!(
                "{context}: {hint:?} read gave {:?}",
                other.map(|r| r.payload.len())
            ),
        }
    }
    let mut out = vec![0u8; 1024];
    match reader.read_record_into(record.offset, ReadHint::Random, &mut out) {
        Err(Error::NotARecord { .. }) => {}
        // The claimed length fits the flushed records but not `out`: the
        // caller learns the claim, bounded by the flushed offset.
        Err(Error::BufferTooSmall { needed_bytes, .. }) => {
            assert!(record.offset + 16 + needed_bytes <= flushed, "{context}");
        }
        other => panic!("{context}: read_record_into gave {:?}", other.map(|r| r.0)),
    }
    for (index, other) in case
        .written
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != case.target)
    {
        let read = reader
            .read_record(other.offset, ReadHint::Random)
            .unwrap_or_else(|e| panic!("{context}: record {index}: {e}"));
        assert!(
            *read.payload == other.payload[..],
            "{context}: record {index}"
        );
    }
}

fn configs() -> [SegmentConfig; 2] {
    [
        SegmentConfig {
            record_len_max: Some(4096),
            ..SegmentConfig::new(SEGMENT_BYTES)
        },
        SegmentConfig {
            checksum_kind: ChecksumKind::Crc32,
            ..SegmentConfig::new(SEGMENT_BYTES)
        },
    ]
}

fn every_lie<M: Medium>(medium: &mut M, seed: u64) {
    for config in configs() {
        let (written, flushed, clean) = prepare(medium, &config, seed);
        let record_len_max = record_len_max(&config);
        for target in [RECORDS / 2, RECORDS - 1] {
            let record = &written[target];
            let len = u32::try_from(record.payload.len()).expect("small");
            for lie in lies(record.offset, len, record_len_max) {
                let context = format!(
                    "{} seed {seed:#x} max {:?} record {target} lie {lie:?}",
                    medium.name(),
                    config.record_len_max
                );
                check_lie(
                    medium,
                    &config,
                    (&written, flushed, &clean),
                    target,
                    lie,
                    &context,
                );
            }
        }
    }
}

#[test]
fn ram_lying_lengths_are_classified() {
    let seed = test_seed(0xBAD1_0001);
    let mut medium = RamMedium::new(SEGMENT_BYTES);
    every_lie(&mut medium, seed);
    medium.assert_guards_intact(&format!("seed {seed:#x}"));
}

#[test]
fn file_lying_lengths_are_classified() {
    every_lie(&mut FileMedium::new(SEGMENT_BYTES), test_seed(0xBAD1_0002));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_length_in_any_record_is_classified(
        seed in any::<u64>(),
        target in 0..RECORDS,
        len in prop_oneof![any::<u32>(), 0u32..70_000],
        limited in any::<bool>(),
    ) {
        let config = configs()[usize::from(!limited)];
        let mut medium = RamMedium::new(SEGMENT_BYTES);
        let (written, flushed, clean) = prepare(&medium, &config, seed);
        prop_assume!(len as usize != written[target].payload.len());
        let context = format!("ram seed {seed:#x} record {target} len {len}");
        check_lie(&mut medium, &config, (&written, flushed, &clean), target, Lie::Len(len), &context);
    }
}

/// A lie that stays plausible (under `record_len_max`, inside the flushed
/// records) but is longer than the reader's buffer: the reader has to read
/// the claimed bytes to check them. It refuses the record with
/// `BadChecksum`, and its reads stay inside the flushed records: the
/// length is bounded by data the writer synced, never by the lie alone.
#[test]
fn a_plausible_lie_longer_than_the_buffer_is_refused() {
    let seed = test_seed(0xBAD1_0003);
    let mut medium = RamMedium::new(SEGMENT_BYTES);
    let config = SegmentConfig::new(SEGMENT_BYTES);
    let mut writer = SegmentWriter::create(
        medium.device(),
        medium.segment_start(),
        &config,
        segwal_tests::identity(seed),
        &[],
    )
    .expect("create");
    let written = append_all(
        &mut writer,
        (0..8).map(|i| payload(seed, i, 30_000)).collect::<Vec<_>>(),
    );
    let flushed = writer.sync().expect("sync");
    drop(writer);
    let target = &written[1];
    let lie = u32::try_from(flushed - target.offset - 16 - 8).expect("fits");
    assert!(
        u64::from(lie) > BUFFER_BYTES as u64,
        "longer than the buffer"
    );
    medium.reboot_with(told(
        &medium.image(),
        at(medium.segment_start(), target.offset),
        Lie::Len(lie),
    ));

    let log = Rc::new(RefCell::new(WatchLog::default()));
    let mut reader = SegmentReader::open(
        watched(&medium, &log),
        medium.segment_start(),
        vec![0u8; BUFFER_BYTES],
    )
    .expect("reader");
    reader.set_flushed_offset(flushed);
    for hint in [ReadHint::Random, ReadHint::Sequential] {
        match reader.read_record(target.offset, hint) {
            Err(Error::NotARecord {
                offset,
                reason: RecordDefect::BadChecksum,
                ..
            }) => assert_eq!(offset, target.offset),
            other => panic!(
                "seed {seed:#x} {hint:?}: {:?}",
                other.map(|r| r.payload.len())
            ),
        }
    }
    let log = log.borrow();
    assert!(log.reads_outside.is_empty(), "{:?}", log.reads_outside);
    assert!(
        log.read_bytes_max <= flushed - target.offset,
        "no read past the flushed records"
    );
}
