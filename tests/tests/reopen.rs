//! Reopen: a cleanly closed segment reopens for writing exactly as it was
//! left, and appends carry on after it.
//!
//! Over several generations (write, sync, drop the writer, power-cycle the
//! medium, `SegmentWriter::open`), each reopen must report
//! `TailState::Clean`, the number of records written so far and the offset
//! of the last one, must leave the device bytes untouched (a clean tail
//! needs no repair), and the next append must land at the old end. After
//! every generation all records, old and new, read back by offset and by
//! iteration. Empty and completely full segments reopen too, both
//! recovery modes agree on a clean segment, and a scan with the smallest
//! scratch buffer it accepts finds records many times larger than it. Runs over RAM, a file and the
//! `segwal-std` facade.

use segwal::{ChecksumKind, Error, ReadHint, RecoveryMode, SCAN_SCRATCH_MIN_BYTES, TailState};
use segwal_std::{Reader, Writer};
use segwal_tests::{
    FileMedium, Medium, RamMedium, Written, XorShift, append_all, assert_iterates_to,
    assert_reads_by_offset, assert_same_records, config_for, create_segment, extent, open_reader,
    open_writer, open_writer_with, payload, read_all, temp_path, test_seed,
};

const SEGMENT_BYTES: u32 = 256 * 1024;
const GENERATIONS: u64 = 4;

fn generation_payloads(seed: u64, generation: u64) -> Vec<Vec<u8>> {
    let mut rng = XorShift::new(seed ^ generation);
    let count = rng.between(1, 30);
    (0..count)
        .map(|i| {
            let len = rng.between(0, 3000);
            payload(seed, generation * 1000 + i as u64, len)
        })
        .collect()
}

fn reopen_generations<M: Medium>(medium: &mut M, seed: u64) {
    let context = format!("{} seed {seed:#x}", medium.name());
    let writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32c), seed);
    drop(writer);
    let mut written: Vec<Written> = Vec::new();
    for generation in 0..GENERATIONS {
        let context = format!("{context} generation {generation}");
        medium.reboot();
        let before = medium.image();
        let (mut writer, recovered) =
            open_writer(medium, RecoveryMode::Strict).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(recovered.tail, TailState::Clean, "{context}");
        assert_eq!(recovered.record_count, written.len() as u64, "{context}");
        assert_eq!(
            recovered.last_record_offset,
            written.last().map(|w| w.offset),
            "{context}: last record offset"
        );
        assert_eq!(writer.record_count(), written.len() as u64, "{context}");
        assert!(
            medium.image() == before,
            "{context}: a clean reopen changed bytes"
        );

        let end = written.last().map_or(writer.written_offset(), Written::end);
        assert_eq!(
            writer.written_offset(),
            end,
            "{context}: appends resume at the end"
        );
        assert_eq!(
            writer.flushed_offset(),
            end,
            "{context}: everything found is durable"
        );
        let fresh = append_all(&mut writer, generation_payloads(seed, generation));
        assert_eq!(fresh[0].offset, end, "{context}: first new record");
        written.extend(fresh);
        let flushed = writer.sync().expect("sync");
        drop(writer);

        let mut reader = open_reader(medium, flushed);
        assert_reads_by_offset(&mut reader, &written, ReadHint::Random, &context);
        let all = read_all(&mut reader).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_same_records(&all, &written, &context);
    }
}

#[test]
fn ram_reopen_keeps_every_record() {
    let seed = test_seed(0x0E0E_0001);
    let mut medium = RamMedium::new(SEGMENT_BYTES);
    reopen_generations(&mut medium, seed);
    medium.assert_guards_intact(&format!("seed {seed:#x}"));
}

#[test]
fn file_reopen_keeps_every_record() {
    reopen_generations(&mut FileMedium::new(SEGMENT_BYTES), test_seed(0x0E0E_0002));
}

/// An empty segment reopens clean with no records, in both modes.
fn reopen_empty<M: Medium>(medium: &mut M) {
    drop(create_segment(
        medium,
        &config_for(medium, ChecksumKind::Crc32),
        3,
    ));
    medium.reboot();
    for mode in [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption] {
        let (writer, recovered) = open_writer(medium, mode).expect("open");
        assert_eq!(
            recovered.tail,
            TailState::Clean,
            "{} {mode:?}",
            medium.name()
        );
        assert_eq!(recovered.record_count, 0);
        assert_eq!(recovered.last_record_offset, None);
        assert_eq!(
            writer.written_offset(),
            u64::from(writer.header().records_start())
        );
    }
}

#[test]
fn empty_segments_reopen_clean() {
    reopen_empty(&mut RamMedium::new(4096));
    reopen_empty(&mut FileMedium::new(4096));
}

/// A segment filled to its last byte reopens clean, full, every record
/// intact.
fn reopen_full<M: Medium>(medium: &mut M, seed: u64) {
    let context = format!("{} seed {seed:#x}", medium.name());
    let mut writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32c), seed);
    let mut written = Vec::new();
    let mut index = 0;
    while writer.remaining_bytes() > 0 {
        // The last record takes exactly what is left.
        let room = writer.remaining_bytes() - 16;
        let len = usize::try_from(room.min(700)).expect("small");
        let len = if writer.remaining_bytes() - extent(len) < 16 {
            usize::try_from(room).expect("small")
        } else {
            len
        };
        index += 1;
        written.extend(append_all(&mut writer, [payload(seed, index, len)]));
    }
    assert_eq!(
        writer.written_offset(),
        u64::from(medium.segment_size_bytes()),
        "{context}"
    );
    writer.sync().expect("sync");
    drop(writer);
    medium.reboot();

    let (mut writer, recovered) = open_writer(medium, RecoveryMode::Strict).expect("open full");
    assert_eq!(recovered.tail, TailState::Clean, "{context}");
    assert_eq!(recovered.record_count, written.len() as u64, "{context}");
    assert_eq!(writer.remaining_bytes(), 0, "{context}");
    assert!(
        matches!(
            writer.append(b""),
            Err(Error::Full {
                needed_bytes: 16,
                available_bytes: 0
            })
        ),
        "{context}: a full segment stays full"
    );
    let mut reader = open_reader(medium, writer.flushed_offset());
    let all = read_all(&mut reader).expect("read");
    assert_same_records(&all, &written, &context);
}

#[test]
fn full_segments_reopen_clean() {
    let seed = test_seed(0x0E0E_0003);
    reopen_full(&mut RamMedium::new(64 * 1024), seed);
    reopen_full(&mut FileMedium::new(64 * 1024), seed);
}

#[test]
fn facade_reopen_keeps_every_record() {
    let seed = test_seed(0x0E0E_0004);
    let (_dir, path) = temp_path("reopen.log");
    drop(Writer::create(&path, u64::from(SEGMENT_BYTES), 0).expect("create"));
    let mut written: Vec<Written> = Vec::new();
    for generation in 0..GENERATIONS {
        let context = format!("facade seed {seed:#x} generation {generation}");
        let mut writer = Writer::open(&path).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(writer.tail_state(), TailState::Clean, "{context}");
        assert_eq!(writer.record_count(), written.len() as u64, "{context}");
        let end = written.last().map_or(writer.records_start(), Written::end);
        assert_eq!(writer.written_offset(), end, "{context}");
        assert_eq!(
            writer.flushed_offset().get(),
            end,
            "{context}: published at open"
        );
        for bytes in generation_payloads(seed, generation) {
            let appended = writer.append(&bytes).expect("append");
            written.push(Written {
                offset: appended.offset,
                payload: bytes,
            });
        }
        writer.sync().expect("sync");
        drop(writer);

        let mut reader = Reader::open(&path, None).expect("reader");
        assert_iterates_to(&mut reader, &written, &context);
    }
}

/// The scan with the smallest scratch it accepts (header + 2 KiB twice)
/// still finds records many times larger than the scratch, and one that
/// fills it to the byte.
fn reopen_with_the_smallest_scratch<M: Medium>(medium: &mut M, seed: u64) {
    let context = format!("{} seed {seed:#x}", medium.name());
    let mut writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32), seed);
    let sizes = [
        5000,
        0,
        SCAN_SCRATCH_MIN_BYTES - 16,
        70_000,
        1,
        SCAN_SCRATCH_MIN_BYTES,
        4000,
    ];
    let written = append_all(
        &mut writer,
        sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| payload(seed, i as u64, len))
            .collect::<Vec<_>>(),
    );
    writer.sync().expect("sync");
    drop(writer);
    medium.reboot();
    let (writer, recovered) =
        open_writer_with(medium, RecoveryMode::Strict, SCAN_SCRATCH_MIN_BYTES)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_eq!(recovered.tail, TailState::Clean, "{context}");
    assert_eq!(recovered.record_count, written.len() as u64, "{context}");
    let mut reader = open_reader(medium, writer.flushed_offset());
    let all = read_all(&mut reader).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_same_records(&all, &written, &context);
    let too_small = open_writer_with(medium, RecoveryMode::Strict, SCAN_SCRATCH_MIN_BYTES - 1);
    assert!(
        matches!(too_small, Err(Error::Config(segwal::ConfigError::Buffer))),
        "{context}: a scratch under the minimum is refused"
    );
}

#[test]
fn reopen_with_the_smallest_scratch_finds_large_records() {
    let seed = test_seed(0x0E0E_0005);
    reopen_with_the_smallest_scratch(&mut RamMedium::new(SEGMENT_BYTES), seed);
    reopen_with_the_smallest_scratch(&mut FileMedium::new(SEGMENT_BYTES), seed);
}
