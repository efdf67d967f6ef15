//! Round trip: every payload appended and synced reads back byte for byte.
//!
//! Records of awkward sizes (0 and 1 byte, exactly the 2 KiB a random read
//! fetches with the header, one byte over it, 5000 bytes, and records larger
//! than the reader's 64 KiB buffer) are appended singly and in atomic
//! batches (one of more records than one device write holds, so it takes
//! two),
//! synced, then read back four ways: by offset with `ReadHint::Random`, by
//! offset with `ReadHint::Sequential`, into a caller buffer with
//! `read_record_into`, and by iterating from the first record, with a
//! 64 KiB reader buffer and with the smallest one a reader accepts
//! (header + 2 KiB, so most records spill out of it). Each read
//! must return the exact payload, at the offset the writer returned, with
//! `next_offset` at the end of the record's padded extent. The same
//! scenario runs over a RAM device, a file device and the `segwal-std`
//! facade; a proptest repeats it for arbitrary payload lists.

use proptest::prelude::*;
use segwal::{ChecksumKind, RANDOM_READ_BYTES, ReadHint, RecoveryMode, SegmentWriter};
use segwal_std::{Reader, SegmentOptions, Writer};
use segwal_tests::{
    FileMedium, Medium, RamMedium, Written, XorShift, assert_iterates_to, assert_reads_by_offset,
    assert_same_records, config_for, create_segment, extent, open_reader, open_reader_with,
    payload, read_all, temp_path, test_seed,
};

const SEGMENT_BYTES: u32 = 1 << 20;

/// Payload sizes every run covers, in order.
const EDGE_SIZES: [usize; 14] = [
    0, 1, 100, 2048, 2049, 5000, 100_000, 0, 7, 2047, 65_520, 65_536, 70_000, 3,
];

/// One step of a plan: a single append or an atomic batch.
#[derive(Debug, Clone)]
enum Step {
    Single(Vec<u8>),
    Batch(Vec<Vec<u8>>),
}

/// The edge sizes as single appends, then batches of 5 and of one device
/// write's worth plus 8 records and
/// a few more singles, all with payloads drawn from `seed`.
fn plan(seed: u64) -> Vec<Step> {
    let mut rng = XorShift::new(seed);
    let mut index = 0u64;
    let mut next = |len: usize| {
        index += 1;
        payload(seed, index, len)
    };
    let mut steps: Vec<Step> = EDGE_SIZES
        .iter()
        .map(|&len| Step::Single(next(len)))
        .collect();
    steps.push(Step::Batch((0..5).map(|i| next(i * 1000)).collect()));
    let sizes: Vec<usize> = (0..segwal::BATCH_RECORDS_PER_WRITE + 8)
        .map(|_| rng.between(0, 3000))
        .collect();
    steps.push(Step::Batch(sizes.into_iter().map(&mut next).collect()));
    steps.push(Step::Batch(vec![next(0)]));
    steps.push(Step::Batch(Vec::new()));
    for _ in 0..20 {
        let len = rng.between(0, 9000);
        steps.push(Step::Single(next(len)));
    }
    steps
}

/// Runs `steps` through a core writer, checking the offsets it hands out.
fn write_plan<D: segwal::BlockDevice>(
    writer: &mut SegmentWriter<D>,
    steps: &[Step],
    context: &str,
) -> Vec<Written> {
    let mut written = Vec::new();
    for step in steps {
        let before = writer.written_offset();
        match step {
            Step::Single(bytes) => {
                let appended = writer
                    .append(bytes)
                    .unwrap_or_else(|e| panic!("{context}: append: {e}"));
                assert_eq!(appended.offset, before, "{context}: appends are contiguous");
                written.push(Written {
                    offset: appended.offset,
                    payload: bytes.clone(),
                });
            }
            Step::Batch(batch) => {
                let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                let range = writer
                    .append_batch(&slices)
                    .unwrap_or_else(|e| panic!("{context}: append_batch: {e}"));
                assert_eq!(range.start, before, "{context}: batch starts at the end");
                let mut offset = range.start;
                for bytes in batch {
                    written.push(Written {
                        offset,
                        payload: bytes.clone(),
                    });
                    offset += extent(bytes.len());
                }
                assert_eq!(
                    range.end, offset,
                    "{context}: batch range covers its records"
                );
            }
        }
        let last_end = written.last().map_or(before, Written::end);
        assert_eq!(
            writer.written_offset(),
            last_end,
            "{context}: written offset"
        );
    }
    written
}

fn round_trip_core<M: Medium>(medium: &M, steps: &[Step], checksum: ChecksumKind, seed: u64) {
    let context = format!("{} {checksum:?} seed {seed:#x}", medium.name());
    let mut writer = create_segment(medium, &config_for(medium, checksum), seed);
    let written = write_plan(&mut writer, steps, &context);
    assert_eq!(writer.record_count(), written.len() as u64, "{context}");
    let flushed = writer.sync().expect("sync");
    assert_eq!(
        flushed,
        writer.written_offset(),
        "{context}: sync flushes all"
    );

    let mut reader = open_reader(medium, flushed);
    assert_reads_by_offset(&mut reader, &written, ReadHint::Random, &context);
    assert_reads_by_offset(&mut reader, &written, ReadHint::Sequential, &context);
    // Backwards, so no read finds its record in the window the previous
    // one left.
    let reversed: Vec<Written> = written.iter().rev().cloned().collect();
    assert_reads_by_offset(&mut reader, &reversed, ReadHint::Random, &context);

    let all = read_all(&mut reader).unwrap_or_else(|e| panic!("{context}: iterate: {e}"));
    assert_same_records(&all, &written, &context);

    // The smallest buffer a reader takes (header + 2 KiB): every larger
    // record spills, and still reads back whole.
    let smallest = usize::try_from(RANDOM_READ_BYTES).expect("small");
    let mut small = open_reader_with(medium, flushed, smallest);
    assert_reads_by_offset(&mut small, &written, ReadHint::Sequential, &context);
    assert_reads_by_offset(&mut small, &reversed, ReadHint::Random, &context);
    let all = read_all(&mut small).unwrap_or_else(|e| panic!("{context}: small buffer: {e}"));
    assert_same_records(&all, &written, &context);

    let mut out = vec![0u8; 100_000];
    for want in &written {
        let (len, next) = reader
            .read_record_into(want.offset, ReadHint::Random, &mut out)
            .unwrap_or_else(|e| panic!("{context}: read_record_into at {}: {e}", want.offset));
        assert_eq!(next, want.end(), "{context}");
        assert!(
            out[..len] == want.payload[..],
            "{context}: read_record_into at {}",
            want.offset
        );
    }
}

#[test]
fn ram_round_trip() {
    let seed = test_seed(0x5EED_0001);
    for checksum in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
        let medium = RamMedium::new(SEGMENT_BYTES);
        round_trip_core(&medium, &plan(seed), checksum, seed);
        medium.assert_guards_intact(&format!("ram seed {seed:#x}"));
    }
}

#[test]
fn file_round_trip() {
    let seed = test_seed(0x5EED_0002);
    for checksum in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
        round_trip_core(&FileMedium::new(SEGMENT_BYTES), &plan(seed), checksum, seed);
    }
}

#[test]
fn facade_round_trip() {
    let seed = test_seed(0x5EED_0003);
    let (_dir, path) = temp_path("facade.log");
    let writer = Writer::create(&path, u64::from(SEGMENT_BYTES), 0).expect("create");
    facade_round_trip_on(writer, &path, seed, &format!("facade seed {seed:#x}"));
}

/// The same through a writer with a write-behind buffer, smaller than some
/// records (which then go through) and filled many times over; then
/// reopened buffered, appended to, and read again.
#[test]
fn facade_round_trip_buffered() {
    let seed = test_seed(0x5EED_0004);
    let (_dir, path) = temp_path("facade-buffered.log");
    let options = SegmentOptions {
        write_buffer_bytes: 4096,
        ..SegmentOptions::new(u64::from(SEGMENT_BYTES))
    };
    let writer = Writer::create_with(&path, &options, &[]).expect("create");
    let context = format!("buffered facade seed {seed:#x}");
    let mut written = facade_round_trip_on(writer, &path, seed, &context);

    let mut writer =
        Writer::open_buffered(&path, RecoveryMode::Strict, 4096).expect("reopen buffered");
    for index in 0..200usize {
        let bytes = payload(seed, 1000 + index as u64, 1 + index % 300);
        let appended = writer.append(&bytes).expect("append after reopen");
        written.push(Written {
            offset: appended.offset,
            payload: bytes,
        });
    }
    let mut outside = Reader::open(&path, None).expect("open scanning reader");
    let synced_before = outside.flushed_offset();
    assert!(
        synced_before < writer.written_offset(),
        "{context}: appends held back until the sync"
    );
    writer.sync().expect("sync");
    drop(writer);
    let mut reader = Reader::open(&path, None).expect("open scanning reader");
    assert_iterates_to(&mut reader, &written, &context);
}

/// Appends `plan(seed)` through `writer` (of the segment at `path`), syncs,
/// reads everything back by offset, by iteration, through the writer's own
/// reader and a scanning one; returns what was written.
fn facade_round_trip_on(
    mut writer: Writer,
    path: &std::path::Path,
    seed: u64,
    context: &str,
) -> Vec<Written> {
    let mut written = Vec::new();
    for step in plan(seed) {
        match step {
            Step::Single(bytes) => {
                let appended = writer.append(&bytes).expect("append");
                written.push(Written {
                    offset: appended.offset,
                    payload: bytes,
                });
            }
            Step::Batch(batch) => {
                let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                let range = writer.append_batch(&slices).expect("append_batch");
                let mut offset = range.start;
                for bytes in batch {
                    let end = offset + extent(bytes.len());
                    written.push(Written {
                        offset,
                        payload: bytes,
                    });
                    offset = end;
                }
                assert_eq!(offset, range.end, "{context}");
            }
        }
    }
    let flushed = writer.sync().expect("sync");
    assert_eq!(
        writer.flushed_offset().get(),
        flushed,
        "{context}: published"
    );

    let mut reader = Reader::open(path, Some(writer.flushed_offset())).expect("open reader");
    for hint in [ReadHint::Random, ReadHint::Sequential] {
        for want in &written {
            let record = reader.read_record(want.offset, hint).expect("read");
            assert_eq!(record.next_offset, want.end(), "{context}");
            assert!(
                *record.payload == want.payload[..],
                "{context}: {hint:?} at {}",
                want.offset
            );
        }
    }
    assert_iterates_to(&mut reader, &written, context);

    // A reader of the writer's own device, and one that finds the end by
    // scanning, see the same records.
    let mut own = writer.reader().expect("writer.reader");
    assert_iterates_to(&mut own, &written, context);
    let mut scanned = Reader::open(path, None).expect("open scanning reader");
    assert_eq!(
        scanned.flushed_offset(),
        flushed,
        "{context}: scan finds the end"
    );
    written
}

/// A plan from arbitrary sizes: each record alone or joined to the batch
/// before it.
fn arbitrary_steps(sizes: &[(usize, bool)], seed: u64) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (index, &(len, joins_batch)) in sizes.iter().enumerate() {
        let bytes = payload(seed, index as u64, len);
        match steps.last_mut() {
            Some(Step::Batch(batch)) if joins_batch => batch.push(bytes),
            _ if joins_batch => steps.push(Step::Batch(vec![bytes])),
            _ => steps.push(Step::Single(bytes)),
        }
    }
    steps
}

fn size_strategy() -> impl Strategy<Value = Vec<(usize, bool)>> {
    let len = prop_oneof![
        4 => 0usize..64,
        4 => 2000usize..2100,
        2 => 0usize..9000,
        1 => 60_000usize..80_000,
    ];
    proptest::collection::vec((len, any::<bool>()), 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn ram_round_trip_of_arbitrary_payloads(sizes in size_strategy(), seed in any::<u64>()) {
        let medium = RamMedium::new(SEGMENT_BYTES);
        round_trip_core(&medium, &arbitrary_steps(&sizes, seed), ChecksumKind::Crc32c, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn file_round_trip_of_arbitrary_payloads(sizes in size_strategy(), seed in any::<u64>()) {
        let medium = FileMedium::new(SEGMENT_BYTES);
        round_trip_core(&medium, &arbitrary_steps(&sizes, seed), ChecksumKind::Crc32, seed);
    }
}
