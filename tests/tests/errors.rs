//! Errors: every refusal is a typed error that changes nothing, never a
//! panic and never unsynced or wrong data.
//!
//! - Reads at offsets that are not record starts (misaligned, inside a
//!   payload, before the first record, at or past the flushed offset where
//!   unsynced records sit, past the segment, near `u64::MAX`) fail with
//!   `OutOfRange` or `NotARecord`; a proptest reads at arbitrary offsets
//!   and accepts only the record written there or one of those errors.
//! - An append over `record_len_max` fails with `RecordTooLarge` and an
//!   append or batch that does not fit fails with `Full`; neither writes a
//!   byte (device image, written offset and record count unchanged), and
//!   a smaller append that fits still works afterwards.
//! - All of it holds for CRC-32 segments as for CRC32C ones, which carry
//!   their checksum kind in the header.
//! - The user area round-trips through `Reader::read_user_area`, a wrong
//!   buffer length is `BufferTooSmall`, and a damaged user area is
//!   `Corrupt` at offset 64 with reason `UserArea`.
//!
//! Runs over RAM and a file, and through the `segwal-std` facade.
//!
//! Two tests are ignored until the bugs they show are fixed: an aligned
//! offset within 16 bytes of `u64::MAX` overflows the range check, and a
//! flushed offset that falls inside a record's padding makes a read panic
//! on a read-planning assert.

use proptest::prelude::*;
use segwal::format::HEADER_CHECKSUM_KIND;
use segwal::{
    BlockDevice, ChecksumKind, Corruption, Error, ReadHint, SegmentConfig, SegmentReader,
    SegmentWriter,
};
use segwal_std::{Reader, SegmentOptions, Writer};
use segwal_tests::{
    BUFFER_BYTES, FileMedium, Medium, RamMedium, Written, XorShift, append_all,
    assert_reads_by_offset, at, config_for, create_segment, extent, open_reader, payload,
    temp_path, test_seed,
};

const SEGMENT_BYTES: u32 = 64 * 1024;
const KINDS: [ChecksumKind; 2] = [ChecksumKind::Crc32c, ChecksumKind::Crc32];

/// A segment with synced records and, after them, unsynced ones.
struct Layout {
    synced: Vec<Written>,
    unsynced: Vec<Written>,
    flushed: u64,
    records_start: u64,
}

fn layout<M: Medium>(medium: &M, checksum: ChecksumKind, seed: u64) -> Layout {
    let mut writer = create_segment(medium, &config_for(medium, checksum), seed);
    let records_start = writer.written_offset();
    let mut rng = XorShift::new(seed);
    let synced = append_all(
        &mut writer,
        (0..12)
            .map(|i| payload(seed, i, rng.between(17, 400)))
            .collect::<Vec<_>>(),
    );
    let flushed = writer.sync().expect("sync");
    let unsynced = append_all(
        &mut writer,
        (12..16)
            .map(|i| payload(seed, i, rng.between(17, 400)))
            .collect::<Vec<_>>(),
    );
    drop(writer);
    Layout {
        synced,
        unsynced,
        flushed,
        records_start,
    }
}

/// The kind of refusal a read at `offset` must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refusal {
    OutOfRange,
    NotARecord,
}

fn refusal<E: segwal::DeviceError>(
    result: Result<segwal::Record<'_>, Error<E>>,
) -> Result<Refusal, String> {
    match result {
        Err(Error::OutOfRange { .. }) => Ok(Refusal::OutOfRange),
        Err(Error::NotARecord { .. }) => Ok(Refusal::NotARecord),
        Err(other) => Err(format!("error {other}")),
        Ok(record) => Err(format!(
            "a record of {} bytes at {}",
            record.payload.len(),
            record.offset
        )),
    }
}

fn reads_at_wrong_offsets<M: Medium>(medium: &M, checksum: ChecksumKind, seed: u64) {
    let context = format!("{} {checksum:?} seed {seed:#x}", medium.name());
    let layout = layout(medium, checksum, seed);
    let segment_end = u64::from(medium.segment_size_bytes());
    let middle = &layout.synced[5];
    let mut cases: Vec<(u64, Refusal, &str)> = vec![
        (layout.records_start + 1, Refusal::OutOfRange, "misaligned"),
        (
            middle.offset + 4,
            Refusal::OutOfRange,
            "misaligned in a header",
        ),
        (
            middle.offset + 3,
            Refusal::OutOfRange,
            "misaligned in a header",
        ),
        (
            middle.offset + 16,
            Refusal::NotARecord,
            "the payload's start",
        ),
        (middle.offset + 8, Refusal::NotARecord, "inside the header"),
        (0, Refusal::OutOfRange, "the segment header"),
        (8, Refusal::OutOfRange, "the segment header"),
        (
            layout.records_start - 8,
            Refusal::OutOfRange,
            "before the first record",
        ),
        (layout.flushed, Refusal::OutOfRange, "at the flushed offset"),
        (
            layout.flushed - 8,
            Refusal::OutOfRange,
            "header would cross the flushed offset",
        ),
        (segment_end, Refusal::OutOfRange, "the segment's end"),
        (segment_end + 8, Refusal::OutOfRange, "past the segment"),
        (u64::MAX, Refusal::OutOfRange, "u64::MAX"),
        (1 << 40, Refusal::OutOfRange, "far past the segment"),
    ];
    for record in &layout.unsynced {
        cases.push((record.offset, Refusal::OutOfRange, "an unsynced record"));
    }
    let mut reader = open_reader(medium, layout.flushed);
    for (offset, expected, what) in cases {
        for hint in [ReadHint::Random, ReadHint::Sequential] {
            let got = refusal(reader.read_record(offset, hint));
            assert_eq!(
                got,
                Ok(expected),
                "{context}: read at {offset} ({what}), {hint:?}"
            );
        }
        let mut out = vec![0u8; 1024];
        assert!(
            matches!(
                reader.read_record_into(offset, ReadHint::Random, &mut out),
                Err(Error::OutOfRange { .. } | Error::NotARecord { .. })
            ),
            "{context}: read_record_into at {offset} ({what})"
        );
    }
    // The refusals left the reader working.
    assert_reads_by_offset(&mut reader, &layout.synced, ReadHint::Sequential, &context);
}

#[test]
fn reads_at_wrong_offsets_are_typed_refusals() {
    let seed = test_seed(0xE220_0001);
    for checksum in KINDS {
        reads_at_wrong_offsets(&RamMedium::new(SEGMENT_BYTES), checksum, seed);
        reads_at_wrong_offsets(&FileMedium::new(SEGMENT_BYTES), checksum, seed);
    }
}

/// Offsets whose header end overflows a `u64`: aligned, so only the range
/// check can refuse them.
#[test]
fn reads_at_offsets_near_u64_max_are_refused() {
    let medium = RamMedium::new(SEGMENT_BYTES);
    let layout = layout(&medium, ChecksumKind::Crc32c, 1);
    let mut reader = open_reader(&medium, layout.flushed);
    for offset in [u64::MAX - 7, u64::MAX - 15] {
        assert_eq!(
            refusal(reader.read_record(offset, ReadHint::Random)),
            Ok(Refusal::OutOfRange),
            "offset {offset}"
        );
    }
}

/// A flushed offset that is not a record boundary (as an application that
/// persisted one and read it back damaged might pass) is the reader's
/// bound, not a promise: records that do not end before it are refused.
#[test]
fn an_unaligned_flushed_offset_is_a_bound_not_a_panic() {
    let medium = RamMedium::new(SEGMENT_BYTES);
    let mut writer = create_segment(&medium, &config_for(&medium, ChecksumKind::Crc32c), 5);
    let written = append_all(&mut writer, [vec![1u8; 9], vec![2u8; 1], vec![3u8; 30]]);
    writer.sync().expect("sync");
    drop(writer);
    for (index, record) in written.iter().enumerate() {
        let payload_end = record.offset + 16 + record.payload.len() as u64;
        for flushed in payload_end..record.end() {
            let mut reader = open_reader(&medium, flushed);
            for hint in [ReadHint::Random, ReadHint::Sequential] {
                match reader.read_record(record.offset, hint) {
                    Ok(read) => assert!(
                        *read.payload == record.payload[..],
                        "record {index} flushed {flushed}"
                    ),
                    Err(Error::OutOfRange { .. } | Error::NotARecord { .. }) => {}
                    Err(other) => panic!("record {index} flushed {flushed}: {other}"),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any offset below `u64::MAX - 16` (the top is the ignored test
    /// above) gives the record written there or a refusal.
    #[test]
    fn a_read_at_any_offset_is_the_record_there_or_a_refusal(
        offsets in proptest::collection::vec(prop_oneof![0u64..70_000, 0u64..u64::MAX - 16], 1..32),
        hint in prop_oneof![Just(ReadHint::Random), Just(ReadHint::Sequential)],
    ) {
        let medium = RamMedium::new(SEGMENT_BYTES);
        let layout = layout(&medium, ChecksumKind::Crc32c, 9);
        let mut reader = open_reader(&medium, layout.flushed);
        for offset in offsets {
            match reader.read_record(offset, hint) {
                Ok(record) => {
                    let want = layout.synced.iter().find(|w| w.offset == offset);
                    prop_assert!(want.is_some_and(|w| *record.payload == w.payload[..]), "offset {}", offset);
                }
                Err(Error::OutOfRange { .. } | Error::NotARecord { .. }) => {
                    prop_assert!(layout.synced.iter().all(|w| w.offset != offset), "offset {} refused", offset);
                }
                Err(other) => prop_assert!(false, "offset {}: {}", offset, other),
            }
        }
    }
}

/// Panics unless the writer and the device are as they were.
fn assert_unchanged<D: BlockDevice, M: Medium>(
    medium: &M,
    writer: &SegmentWriter<D>,
    before: &(Vec<u8>, u64, u64),
    context: &str,
) {
    assert_eq!(
        writer.written_offset(),
        before.1,
        "{context}: written offset"
    );
    assert_eq!(writer.record_count(), before.2, "{context}: record count");
    assert!(
        medium.image() == before.0,
        "{context}: the device was written"
    );
}

fn snapshot<D: BlockDevice, M: Medium>(
    medium: &M,
    writer: &SegmentWriter<D>,
) -> (Vec<u8>, u64, u64) {
    (
        medium.image(),
        writer.written_offset(),
        writer.record_count(),
    )
}

/// Appends over `record_len_max` (1000), alone and in a batch, write
/// nothing; the largest allowed record then goes in.
fn refuse_too_large<M: Medium>(
    medium: &M,
    writer: &mut SegmentWriter<M::Device>,
    written: &mut Vec<Written>,
    seed: u64,
    context: &str,
) {
    let before = snapshot(medium, writer);
    let too_large = payload(seed, 1, 1001);
    assert!(
        matches!(
            writer.append(&too_large),
            Err(Error::RecordTooLarge {
                len_bytes: 1001,
                max_bytes: 1000
            })
        ),
        "{context}"
    );
    assert_unchanged(
        medium,
        writer,
        &before,
        &format!("{context} RecordTooLarge"),
    );
    let fits = payload(seed, 2, 1000);
    assert!(
        matches!(
            writer.append_batch(&[&fits, &too_large]),
            Err(Error::RecordTooLarge {
                len_bytes: 1001,
                ..
            })
        ),
        "{context}: a batch with one record too large"
    );
    assert_unchanged(
        medium,
        writer,
        &before,
        &format!("{context} batch RecordTooLarge"),
    );
    written.extend(append_all(writer, [fits]));
}

/// Appends and batches that do not fit write nothing; what still fits goes
/// in, to the segment's last byte.
fn refuse_when_full<M: Medium>(
    medium: &M,
    writer: &mut SegmentWriter<M::Device>,
    written: &mut Vec<Written>,
    seed: u64,
    context: &str,
) {
    // Fill with 1000-byte records until the next one does not fit.
    let mut index = 10;
    while writer.remaining_bytes() >= extent(1000) {
        index += 1;
        written.extend(append_all(writer, [payload(seed, index, 1000)]));
    }
    let remaining = writer.remaining_bytes();
    let before = snapshot(medium, writer);
    match writer.append(&payload(seed, 999, 1000)) {
        Err(Error::Full {
            needed_bytes,
            available_bytes,
        }) => {
            assert_eq!(
                (needed_bytes, available_bytes),
                (extent(1000), remaining),
                "{context}"
            );
        }
        other => panic!(
            "{context}: append when full gave {:?}",
            other.map(|a| a.offset)
        ),
    }
    assert_unchanged(medium, writer, &before, &format!("{context} Full"));
    // Two records that each fit, but not together: the batch is refused whole.
    if remaining >= 2 * 16 {
        let half = usize::try_from(remaining / 2).expect("small") - 16 + 8;
        let (a, b) = (payload(seed, 1001, half), payload(seed, 1002, half));
        assert!(extent(half) <= remaining, "{context}: each fits alone");
        assert!(
            matches!(writer.append_batch(&[&a, &b]), Err(Error::Full { .. })),
            "{context}: a batch that does not fit"
        );
        assert_unchanged(medium, writer, &before, &format!("{context} batch Full"));
    }
    // What still fits goes in, to the last byte.
    let last_len = usize::try_from(remaining - 16).expect("small");
    written.extend(append_all(writer, [payload(seed, 2000, last_len)]));
    assert_eq!(writer.remaining_bytes(), 0, "{context}");
    let before = snapshot(medium, writer);
    assert!(
        matches!(
            writer.append(b""),
            Err(Error::Full {
                needed_bytes: 16,
                available_bytes: 0
            })
        ),
        "{context}: even an empty record needs its header"
    );
    assert_unchanged(medium, writer, &before, &format!("{context} empty Full"));
}

fn too_large_and_full<M: Medium>(medium: &M, checksum: ChecksumKind, seed: u64) {
    let context = format!("{} {checksum:?} seed {seed:#x}", medium.name());
    let config = SegmentConfig {
        record_len_max: Some(1000),
        ..config_for(medium, checksum)
    };
    let mut writer = create_segment(medium, &config, seed);
    let mut written = append_all(&mut writer, [payload(seed, 0, 10)]);

    refuse_too_large(medium, &mut writer, &mut written, seed, &context);
    refuse_when_full(medium, &mut writer, &mut written, seed, &context);
    let flushed = writer.sync().expect("sync");
    drop(writer);
    let mut reader = open_reader(medium, flushed);
    assert_reads_by_offset(&mut reader, &written, ReadHint::Random, &context);

    let checksum_code = medium.image()[at(medium.segment_start(), 0) + HEADER_CHECKSUM_KIND.start];
    assert_eq!(
        checksum_code,
        checksum.code(),
        "{context}: the kind is in the header"
    );
}

#[test]
fn too_large_and_full_appends_write_nothing() {
    let seed = test_seed(0xE220_0002);
    for checksum in KINDS {
        let ram = RamMedium::new(SEGMENT_BYTES);
        too_large_and_full(&ram, checksum, seed);
        ram.assert_guards_intact(&format!("seed {seed:#x}"));
        too_large_and_full(&FileMedium::new(SEGMENT_BYTES), checksum, seed);
    }
}

/// Without a configured maximum, the limit is what one record can take in
/// an empty segment.
#[test]
fn the_default_limit_is_the_segment_room() {
    let medium = RamMedium::new(4096);
    let mut writer = create_segment(&medium, &config_for(&medium, ChecksumKind::Crc32), 1);
    let room = 4096 - 64 - 16;
    assert!(matches!(
        writer.append(&vec![7u8; room + 1]),
        Err(Error::RecordTooLarge { len_bytes, max_bytes }) if len_bytes == room as u64 + 1 && max_bytes == room as u64
    ));
    assert_eq!(writer.record_count(), 0);
    writer
        .append(&vec![7u8; room])
        .expect("a record filling the segment");
    assert_eq!(writer.remaining_bytes(), 0);
}

/// The facade passes the same refusals through `Error::Log`.
#[test]
fn facade_refusals() {
    let (_dir, path) = temp_path("errors.log");
    let options = SegmentOptions {
        record_len_max: Some(500),
        checksum_kind: ChecksumKind::Crc32,
        ..SegmentOptions::new(8192)
    };
    let mut writer = Writer::create_with(&path, &options, &[]).expect("create");
    let error = writer.append(&[0u8; 501]).expect_err("too large");
    assert!(
        matches!(
            error.as_log(),
            Some(Error::RecordTooLarge {
                len_bytes: 501,
                max_bytes: 500
            })
        ),
        "{error}"
    );
    let mut offsets = Vec::new();
    let full = loop {
        match writer.append(&[0x5Au8; 500]) {
            Ok(appended) => offsets.push(appended.offset),
            Err(error) => break error,
        }
    };
    assert!(matches!(full.as_log(), Some(Error::Full { .. })), "{full}");
    let count = writer.record_count();
    writer
        .append(b"small")
        .expect("a smaller record still fits");
    assert_eq!(writer.record_count(), count + 1);
    writer.sync().expect("sync");
    let mut reader = writer.reader().expect("reader");
    let error = reader
        .read_record(offsets[0] + 8, ReadHint::Random)
        .expect_err("inside a header");
    assert!(
        matches!(error.as_log(), Some(Error::NotARecord { .. })),
        "{error}"
    );
    let error = reader
        .read_record(8192, ReadHint::Random)
        .expect_err("past the end");
    assert!(
        matches!(error.as_log(), Some(Error::OutOfRange { .. })),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read")[HEADER_CHECKSUM_KIND.start],
        ChecksumKind::Crc32.code()
    );
}

#[test]
fn user_area_round_trips_and_damage_is_caught() {
    let (_dir, path) = temp_path("user-area.log");
    let area: Vec<u8> = payload(77, 0, 60);
    let options = SegmentOptions {
        user_area_len_bytes: 100,
        checksum_kind: ChecksumKind::Crc32,
        ..SegmentOptions::new(16 * 1024)
    };
    let mut writer = Writer::create_with(&path, &options, &area).expect("create");
    assert_eq!(writer.records_start(), 168, "64 + 100 rounded up to 8");
    let appended = writer.append(b"after the user area").expect("append");
    writer.sync().expect("sync");
    drop(writer);
    let writer = Writer::open(&path).expect("reopen");
    assert_eq!(writer.record_count(), 1);

    let mut reader = Reader::open(&path, None).expect("reader");
    let mut out = vec![0xFFu8; 100];
    reader.read_user_area(&mut out).expect("user area");
    assert_eq!(&out[..60], &area[..], "the bytes given");
    assert!(out[60..].iter().all(|&b| b == 0), "the rest zeros");
    for wrong in [0usize, 60, 99, 101] {
        let error = reader
            .read_user_area(&mut vec![0u8; wrong])
            .expect_err("wrong length");
        assert!(
            matches!(error.as_log(), Some(Error::BufferTooSmall { needed_bytes: 100, len_bytes }) if *len_bytes == wrong as u64),
            "{wrong}: {error}"
        );
    }

    let mut image = std::fs::read(&path).expect("read");
    image[64 + 70] ^= 0x01;
    std::fs::write(&path, &image).expect("write");
    let mut reader = Reader::open(&path, None).expect("reader");
    let error = reader.read_user_area(&mut out).expect_err("damaged");
    assert!(
        matches!(
            error.as_log(),
            Some(Error::Corrupt {
                segment: 0,
                offset: 64,
                reason: Corruption::UserArea
            })
        ),
        "{error}"
    );
    let record = reader
        .read_record(appended.offset, ReadHint::Random)
        .expect("records are separate");
    assert_eq!(&*record.payload, b"after the user area");

    let (_dir, path) = temp_path("too-long.log");
    let error = Writer::create_with(&path, &options, &[1u8; 101]).expect_err("area too long");
    assert!(matches!(error.as_log(), Some(Error::Config(_))), "{error}");
    assert!(!path.exists(), "a segment that failed creation is removed");
}

/// The core reader finds the user area relative to the segment's start,
/// on a device where the segment does not start at 0.
#[test]
fn user_area_of_a_segment_not_at_offset_zero() {
    let medium = RamMedium::new(8192);
    let config = SegmentConfig {
        user_area_len_bytes: 24,
        ..SegmentConfig::new(8192)
    };
    let area = payload(5, 5, 24);
    drop(
        SegmentWriter::create(
            medium.device(),
            medium.segment_start(),
            &config,
            segwal_tests::identity(4),
            &area,
        )
        .expect("create"),
    );
    let mut reader = SegmentReader::open(
        medium.device(),
        medium.segment_start(),
        vec![0u8; BUFFER_BYTES],
    )
    .expect("reader");
    let mut out = [0u8; 24];
    reader.read_user_area(&mut out).expect("user area");
    assert_eq!(&out[..], &area[..]);
    let blank = RamMedium::new(4096);
    let opened = SegmentReader::open(
        blank.device(),
        blank.segment_start(),
        vec![0u8; BUFFER_BYTES],
    );
    assert!(
        matches!(
            opened,
            Err(Error::Corrupt {
                reason: Corruption::Header(segwal::HeaderDefect::Blank),
                ..
            })
        ),
        "blank space holds no segment"
    );
    let opened = SegmentReader::open(medium.device(), medium.segment_start(), vec![0u8; 2063]);
    assert!(
        matches!(opened, Err(Error::Config(_))),
        "a reader buffer under header + 2 KiB"
    );
    medium.assert_guards_intact("user area");
}
