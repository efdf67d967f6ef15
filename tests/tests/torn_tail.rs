//! Torn tail: a write cut short at any byte loses that write, and only it.
//!
//! A segment holds a few records; the last one is then "torn" at every
//! byte of its extent: from the cut on, its bytes are put back to what the
//! space held before the write (zeros), or replaced by garbage (`0xA5`, as
//! a device that scrambles an interrupted sector would). After a
//! power-cycle, `SegmentWriter::open` must:
//!
//! - keep the record when its header and payload survived whole (a cut in
//!   the padding), otherwise keep exactly the records before it;
//! - report `TailState::Clean` when nothing of the record reached the
//!   device, and otherwise `TruncatedAt { offset, bytes_discarded }` with
//!   the record's offset and the bytes up to the last non-blank unit
//!   (modelled by `segwal_tests::dirty_end`);
//! - leave the discarded bytes zeroed, durably (checked after a power cut
//!   on RAM);
//! - accept a fresh append there that survives a further power cut.
//!
//! A torn multi-record `append_batch` (the second of its two device writes
//! lost, or a cut anywhere inside it) must vanish whole: the writer
//! reopens at the batch's start and no reader, scanning or told the
//! writer's flushed offset, returns any record of it. An append that was
//! never synced vanishes whole after a power cut. Runs over RAM and a
//! file, and through the `segwal-std` facade.

use segwal::{ChecksumKind, Error, ReadHint, RecoveryMode, SegmentReader, TailClass, TailState};
use segwal_std::{Reader, Writer};
use segwal_tests::{
    FileMedium, Medium, RamMedium, Written, XorShift, all_zero, append_all, assert_iterates_to,
    assert_reads_by_offset, assert_same_records, at, config_for, create_segment, dirty_end, extent,
    open_reader, open_writer, payload, read_all, scan_as_reader, temp_path, test_seed,
};

const SEGMENT_BYTES: u32 = 16 * 1024;
const GARBAGE: u8 = 0xA5;

/// Writes a few records ending with one of `last_len` bytes, syncs, and
/// returns them with the image of the device.
fn prepare<M: Medium>(medium: &M, seed: u64, last_len: usize) -> (Vec<Written>, Vec<u8>) {
    let mut writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32c), seed);
    let mut rng = XorShift::new(seed);
    let mut payloads: Vec<Vec<u8>> = (0..5)
        .map(|i| payload(seed, i, rng.between(0, 200)))
        .collect();
    payloads.push(payload(seed, 5, last_len));
    let written = append_all(&mut writer, payloads);
    writer.sync().expect("sync");
    drop(writer);
    (written, medium.image())
}

/// What the scan must conclude about a torn last record.
#[derive(Debug, PartialEq)]
enum Expected {
    /// Header and payload survived: the record stays.
    Intact,
    /// Nothing of it reached the device.
    Absent,
    /// Some of it did: discarded up to the dirty end.
    Torn { bytes_discarded: u64 },
}

/// Reopens after the tear and checks the verdict, the zeroing and that a
/// fresh append survives a further power cut.
fn check_reopen<M: Medium>(
    medium: &mut M,
    written: &[Written],
    expected: &Expected,
    context: &str,
) {
    let last = written.last().expect("records");
    let kept = match expected {
        Expected::Intact => written,
        _ => &written[..written.len() - 1],
    };
    let (writer, recovered) =
        open_writer(medium, RecoveryMode::Strict).unwrap_or_else(|e| panic!("{context}: {e}"));
    let tail = match expected {
        Expected::Intact | Expected::Absent => TailState::Clean,
        Expected::Torn { bytes_discarded } => TailState::TruncatedAt {
            offset: last.offset,
            bytes_discarded: *bytes_discarded,
        },
    };
    assert_eq!(recovered.tail, tail, "{context}");
    assert_eq!(recovered.record_count, kept.len() as u64, "{context}");
    let kept_end = kept.last().map_or(0, Written::end);
    assert_eq!(writer.written_offset(), kept_end, "{context}");

    // The zeroing was synced: it survives a power cut right after open.
    drop(writer);
    medium.power_cut();
    let segment = medium.segment_image();
    let kept_end_at = usize::try_from(kept_end).expect("fits");
    assert!(
        all_zero(&segment[kept_end_at..]),
        "{context}: bytes after the kept records were not zeroed durably"
    );

    // A fresh append, synced, survives a power cut and a reopen.
    let (mut writer, recovered) = open_writer(medium, RecoveryMode::Strict).expect("reopen");
    assert_eq!(recovered.tail, TailState::Clean, "{context}: after repair");
    let fresh = append_all(&mut writer, [payload(0xF00D, 0, 33)]);
    assert_eq!(fresh[0].offset, kept_end, "{context}");
    writer.sync().expect("sync");
    drop(writer);
    medium.power_cut();
    let (writer, recovered) = open_writer(medium, RecoveryMode::Strict).expect("reopen");
    assert_eq!(
        recovered.tail,
        TailState::Clean,
        "{context}: after fresh append"
    );
    assert_eq!(recovered.record_count, kept.len() as u64 + 1, "{context}");
    let mut all_records = kept.to_vec();
    all_records.extend(fresh);
    let mut reader = open_reader(medium, writer.flushed_offset());
    let read = read_all(&mut reader).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_same_records(&read, &all_records, context);
}

fn tear_last_record_at_every_byte<M: Medium>(medium: &mut M, seed: u64, last_len: usize) {
    let (written, clean) = prepare(medium, seed, last_len);
    let last = written.last().expect("records").clone();
    let start = at(medium.segment_start(), last.offset);
    let record_len = 16 + last_len;
    let record_extent = usize::try_from(extent(last_len)).expect("small");
    let mut outcomes = [0u32; 3];
    for fill in [0u8, GARBAGE] {
        for cut in 0..record_extent {
            let context = format!(
                "{} seed {seed:#x} last record of {last_len} bytes cut at byte {cut} filled with {fill:#x}",
                medium.name()
            );
            let mut torn = clean.clone();
            torn[start + cut..start + record_extent].fill(fill);
            let expected = if torn[start..start + record_len] == clean[start..start + record_len] {
                Expected::Intact
            } else if all_zero(&torn[start..start + record_extent]) {
                Expected::Absent
            } else {
                let segment_start = at(medium.segment_start(), 0);
                let segment = &torn[segment_start..segment_start + SEGMENT_BYTES as usize];
                Expected::Torn {
                    bytes_discarded: dirty_end(segment, last.offset) - last.offset,
                }
            };
            outcomes[match expected {
                Expected::Intact => 0,
                Expected::Absent => 1,
                Expected::Torn { .. } => 2,
            }] += 1;
            medium.reboot_with(torn);
            check_reopen(medium, &written, &expected, &context);
        }
    }
    // Every class of outcome was exercised, so the model was tested, not
    // only consulted.
    assert!(outcomes[1] > 0 && outcomes[2] > 0, "outcomes {outcomes:?}");
    if !last_len.is_multiple_of(8) {
        assert!(outcomes[0] > 0, "a cut in the padding keeps the record");
    }
}

#[test]
fn ram_tears_at_every_byte_of_the_last_record() {
    let seed = test_seed(0x7EA2_0001);
    for last_len in [0, 5, 37, 300] {
        let mut medium = RamMedium::new(SEGMENT_BYTES);
        tear_last_record_at_every_byte(&mut medium, seed, last_len);
        medium.assert_guards_intact(&format!("seed {seed:#x}"));
    }
}

#[test]
fn file_tears_at_every_byte_of_the_last_record() {
    let seed = test_seed(0x7EA2_0002);
    for last_len in [0, 37] {
        tear_last_record_at_every_byte(&mut FileMedium::new(SEGMENT_BYTES), seed, last_len);
    }
}

/// Records before a torn batch, the batch's records and the clean image.
struct BatchSetup {
    before: Vec<Written>,
    batch: Vec<Written>,
    image: Vec<u8>,
}

/// Records in the torn batch: more than one device write holds, so the
/// batch takes two (`BATCH_RECORDS_PER_WRITE` and 8).
const BATCH_LEN: usize = segwal::BATCH_RECORDS_PER_WRITE + 8;

/// A few single records, a sync, then one batch of [`BATCH_LEN`] records
/// (two device writes), synced so that its bytes are there to tear.
fn prepare_batch<M: Medium>(medium: &mut M, seed: u64) -> BatchSetup {
    let mut writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32c), seed);
    let before = append_all(
        &mut writer,
        (0..4u8).map(|i| payload(seed, u64::from(i), 50 + 7 * usize::from(i))),
    );
    writer.sync().expect("sync");
    let mut rng = XorShift::new(seed);
    let payloads: Vec<Vec<u8>> = (0..BATCH_LEN as u64)
        .map(|i| payload(seed, 100 + i, rng.between(1, 120)))
        .collect();
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let range = writer.append_batch(&slices).expect("batch");
    writer.sync().expect("sync");
    drop(writer);
    let mut offset = range.start;
    let batch = payloads
        .into_iter()
        .map(|bytes| {
            let record = Written {
                offset,
                payload: bytes,
            };
            offset = record.end();
            record
        })
        .collect();
    BatchSetup {
        before,
        batch,
        image: medium.image(),
    }
}

/// Tears the batch from segment offset `cut` on, filled with `fill`, and
/// checks that all of it is gone.
fn tear_batch<M: Medium>(medium: &mut M, setup: &BatchSetup, cut: u64, fill: u8, context: &str) {
    let batch_start = setup.batch[0].offset;
    let batch_end = setup.batch.last().expect("batch").end();
    let mut torn = setup.image.clone();
    torn[at(medium.segment_start(), cut)..at(medium.segment_start(), batch_end)].fill(fill);
    let start = at(medium.segment_start(), 0);
    let changed = |record: &Written| {
        let range =
            start + at(0, record.offset)..start + at(0, record.offset) + 16 + record.payload.len();
        torn[range.clone()] != setup.image[range]
    };
    if !setup.batch.iter().any(changed) {
        // The torn bytes equal the written ones (a last payload byte of
        // `fill`; padding is not checked): nothing of the batch was torn.
        return;
    }
    medium.reboot_with(torn);
    // The scan discards up to the last non-blank unit, or to the end of the
    // last batch record still whole if that is further (a valid record
    // counts whole, even when its last unit holds only zeros).
    let whole_end = setup
        .batch
        .iter()
        .filter(|record| record.offset + 16 + record.payload.len() as u64 <= cut)
        .map(Written::end)
        .max()
        .unwrap_or(batch_start);
    let segment = medium.segment_image();
    let discarded = dirty_end(&segment, batch_start).max(whole_end) - batch_start;
    assert!(discarded > 0, "{context}: the cut left part of the batch");

    // A reader that finds the end by scanning, before any writer repairs
    // the tail, stops at the batch's start.
    let (mut scanning, report) = scan_as_reader(medium, context);
    assert_eq!(u64::from(report.records_end), batch_start, "{context}");
    assert_eq!(report.record_count, setup.before.len() as u64, "{context}");
    assert!(
        matches!(report.tail, TailClass::Torn { offset, .. } if u64::from(offset) == batch_start),
        "{context}: {:?}",
        report.tail
    );
    assert_no_batch_record_readable(&mut scanning, setup, context);
    let all = read_all(&mut scanning).expect("read");
    assert_same_records(&all, &setup.before, context);

    let (writer, recovered) =
        open_writer(medium, RecoveryMode::Strict).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_eq!(
        recovered.tail,
        TailState::TruncatedAt {
            offset: batch_start,
            bytes_discarded: discarded
        },
        "{context}"
    );
    assert_eq!(
        recovered.record_count,
        setup.before.len() as u64,
        "{context}"
    );
    assert_eq!(writer.flushed_offset(), batch_start, "{context}");
    let mut reader = open_reader(medium, writer.flushed_offset());
    assert_no_batch_record_readable(&mut reader, setup, context);
    assert_reads_by_offset(&mut reader, &setup.before, ReadHint::Random, context);
    let all = read_all(&mut reader).expect("read");
    assert_same_records(&all, &setup.before, context);
}

fn assert_no_batch_record_readable<D: segwal::BlockDevice>(
    reader: &mut SegmentReader<D, Vec<u8>>,
    setup: &BatchSetup,
    context: &str,
) {
    for (index, record) in setup.batch.iter().enumerate() {
        for hint in [ReadHint::Random, ReadHint::Sequential] {
            match reader.read_record(record.offset, hint) {
                Err(Error::OutOfRange { .. }) => {}
                other => panic!(
                    "{context}: batch record {index} at {} read as {:?}",
                    record.offset,
                    other.map(|r| r.payload.len())
                ),
            }
        }
    }
}

fn torn_batches<M: Medium>(medium: &mut M, seed: u64) {
    let setup = prepare_batch(medium, seed);
    let mut cuts = vec![
        // The second device write never landed.
        (
            setup.batch[segwal::BATCH_RECORDS_PER_WRITE].offset,
            "second write lost",
        ),
        // Only the first record's header landed.
        (setup.batch[0].offset + 16, "first header only"),
        // Everything but the last record's last payload byte.
        (
            setup.batch[BATCH_LEN - 1].offset
                + 16
                + setup.batch[BATCH_LEN - 1].payload.len() as u64
                - 1,
            "last byte lost",
        ),
    ];
    let mut rng = XorShift::new(seed ^ 0xBA7C);
    for _ in 0..6 {
        let index = rng.between(1, BATCH_LEN - 1);
        cuts.push((setup.batch[index].offset, "at a record boundary"));
        // Inside its header or payload: a cut in the padding of the batch's
        // last record would leave the whole batch valid.
        let record_len = 16 + setup.batch[index].payload.len() as u64;
        let inside = setup.batch[index].offset + 1 + rng.below(record_len - 1);
        cuts.push((inside, "inside a record"));
    }
    for (cut, what) in cuts {
        for fill in [0u8, GARBAGE] {
            let context = format!(
                "{} seed {seed:#x} batch cut at {cut} ({what}) filled with {fill:#x}",
                medium.name()
            );
            tear_batch(medium, &setup, cut, fill, &context);
        }
    }
}

#[test]
fn ram_torn_batch_vanishes_whole() {
    torn_batches(&mut RamMedium::new(SEGMENT_BYTES), test_seed(0x7EA2_0003));
}

#[test]
fn file_torn_batch_vanishes_whole() {
    torn_batches(&mut FileMedium::new(SEGMENT_BYTES), test_seed(0x7EA2_0004));
}

/// On RAM a power cut loses exactly the writes after the last sync: an
/// unsynced append, single or batch, leaves no trace and a clean tail.
#[test]
fn unsynced_appends_vanish_whole_after_a_power_cut() {
    let seed = test_seed(0x7EA2_0005);
    let mut medium = RamMedium::new(SEGMENT_BYTES);
    let mut writer = create_segment(&medium, &config_for(&medium, ChecksumKind::Crc32), seed);
    let synced = append_all(&mut writer, (0..3).map(|i| payload(seed, i, 100)));
    writer.sync().expect("sync");
    append_all(&mut writer, [payload(seed, 3, 10)]);
    writer
        .append_batch(&[b"one", b"two", b"three"])
        .expect("batch");
    assert!(medium.ram().pending_writes() > 0, "the appends are pending");
    drop(writer);
    medium.power_cut();
    let (writer, recovered) = open_writer(&medium, RecoveryMode::Strict).expect("open");
    assert_eq!(recovered.tail, TailState::Clean, "seed {seed:#x}");
    assert_eq!(recovered.record_count, 3, "seed {seed:#x}");
    let mut reader = open_reader(&medium, writer.flushed_offset());
    let all = read_all(&mut reader).expect("read");
    assert_same_records(&all, &synced, &format!("seed {seed:#x}"));
}

/// The facade reports the tear through `tail_state`, and a scanning
/// `Reader` never returns the torn record.
#[test]
fn facade_reports_a_torn_tail() {
    let seed = test_seed(0x7EA2_0006);
    let context = format!("facade seed {seed:#x}");
    let (_dir, path) = temp_path("torn.log");
    let mut writer = Writer::create(&path, u64::from(SEGMENT_BYTES), 0).expect("create");
    let mut written = Vec::new();
    for i in 0..4 {
        let bytes = payload(seed, i, 90);
        let appended = writer.append(&bytes).expect("append");
        written.push(Written {
            offset: appended.offset,
            payload: bytes,
        });
    }
    writer.sync().expect("sync");
    drop(writer);
    let last = written.pop().expect("records");
    let mut image = std::fs::read(&path).expect("read");
    let cut = at(0, last.offset) + 40;
    image[cut..at(0, last.end())].fill(0);
    std::fs::write(&path, &image).expect("write");

    let mut reader = Reader::open(&path, None).expect("scanning reader");
    assert_iterates_to(&mut reader, &written, &context);

    let bytes_discarded = dirty_end(&image, last.offset) - last.offset;
    assert!(bytes_discarded > 0, "{context}");
    let writer = Writer::open(&path).expect("open");
    assert_eq!(
        writer.tail_state(),
        TailState::TruncatedAt {
            offset: last.offset,
            bytes_discarded
        },
        "{context}"
    );
    assert_eq!(writer.record_count(), 4 - 1, "{context}");
    let mut reader = writer.reader().expect("reader");
    assert!(
        matches!(
            reader
                .read_record(last.offset, ReadHint::Random)
                .map_err(|e| e.as_log().map(|l| matches!(l, Error::OutOfRange { .. }))),
            Err(Some(true))
        ),
        "{context}: the torn record is out of range"
    );
    let image = std::fs::read(&path).expect("read");
    assert!(all_zero(&image[at(0, last.offset)..]), "{context}: zeroed");
}
