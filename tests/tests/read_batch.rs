//! `read_batch`: a scan a window at a time gives exactly the records that
//! `read_record` gives one at a time, never one whose bytes are damaged and
//! never one past the flushed offset.
//!
//! - Mixed lengths, some larger than the reader's buffer (those come back
//!   alone, the long way), across many windows: every record in order,
//!   each payload and next offset as written.
//! - Every record of one window damaged in turn (a payload byte, then the
//!   stored checksum): the batches before it serve the records before it,
//!   the batch at it fails with `NotARecord` naming it, and the batches
//!   after it serve the rest.
//! - A flushed offset lowered into the middle of the records after the
//!   window held them all (and were checked): the batches stop there, a
//!   batch asked for at it is `OutOfRange`, and so is a `read_record`
//!   after a sequential read checked the whole window.
//!
//! Runs on RAM (the portable checksums) and on a file (`segwal-std`'s
//! device, which installs the inline CRC32C kernel). One printed seed
//! drives the payloads.

use segwal::{ChecksumKind, Error, ReadHint, RecordDefect, SegmentReader};
use segwal_tests::{
    FileMedium, Medium, RamMedium, Written, XorShift, append_all, at, config_for, create_segment,
    open_reader, open_reader_with, payload, test_seed,
};

/// Writes `payloads`, syncs, and returns the records, the flushed offset
/// and the clean image.
fn prepare<M: Medium>(
    medium: &M,
    seed: u64,
    payloads: Vec<Vec<u8>>,
) -> (Vec<Written>, u64, Vec<u8>) {
    let mut writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32c), seed);
    let written = append_all(&mut writer, payloads);
    writer.sync().expect("sync");
    let flushed = writer.flushed_offset();
    drop(writer);
    (written, flushed, medium.image())
}

/// Reads batches from `from` until `end`, and returns every record served
/// (offset, payload, next offset) and how many batches it took.
fn scan<D: segwal::BlockDevice>(
    reader: &mut SegmentReader<D, Vec<u8>>,
    from: u64,
    end: u64,
    context: &str,
) -> (Vec<(u64, Vec<u8>, u64)>, usize) {
    let mut served = Vec::new();
    let mut batches = 0;
    let mut position = from;
    while position < end {
        let mut batch = reader
            .read_batch(position)
            .unwrap_or_else(|e| panic!("{context}: batch at {position}: {e:?}"));
        batches += 1;
        let before = served.len();
        for record in &mut batch {
            served.push((record.offset, record.payload.to_vec(), record.next_offset));
        }
        assert!(
            served.len() > before,
            "{context}: an empty batch at {position}"
        );
        assert_eq!(
            batch.next_offset(),
            served.last().map(|s| s.2).unwrap_or(position),
            "{context}: the batch ends after its last record"
        );
        position = batch.next_offset();
    }
    (served, batches)
}

/// `served` are `written` exactly, in order.
fn assert_served(served: &[(u64, Vec<u8>, u64)], written: &[Written], context: &str) {
    assert_eq!(served.len(), written.len(), "{context}: records served");
    for (index, (got, want)) in served.iter().zip(written).enumerate() {
        assert_eq!(got.0, want.offset, "{context}: offset of record {index}");
        assert!(
            got.1 == want.payload,
            "{context}: payload of record {index}"
        );
        assert_eq!(
            got.2,
            want.end(),
            "{context}: next offset of record {index}"
        );
    }
}

/// Mixed lengths across many windows of an 8 KiB buffer, one record in
/// twenty larger than it.
fn many_windows<M: Medium>(medium: &M, seed: u64) {
    let mut rng = XorShift::new(seed);
    let payloads: Vec<Vec<u8>> = (0..400)
        .map(|index| {
            let len = if index % 20 == 7 {
                rng.between(9_000, 12_000)
            } else {
                rng.between(0, 300)
            };
            payload(seed, index, len)
        })
        .collect();
    let (written, flushed, _) = prepare(medium, seed, payloads);
    let mut reader = open_reader_with(medium, flushed, 8 * 1024);
    let context = format!("{} seed {seed:#x}", medium.name());
    let (served, batches) = scan(&mut reader, written[0].offset, flushed, &context);
    assert_served(&served, &written, &context);
    // The large records come alone, and the small ones between them in
    // batches of more than one.
    assert!(
        batches > 20 && batches < written.len(),
        "{context}: {batches} batches"
    );
}

/// Every record of one window damaged in turn.
fn every_record_damaged<M: Medium>(medium: &mut M, seed: u64) {
    let mut rng = XorShift::new(seed);
    let payloads: Vec<Vec<u8>> = (0..24)
        .map(|index| {
            payload(
                seed,
                index,
                if index < 12 { 100 } else { rng.between(1, 120) },
            )
        })
        .collect();
    let (written, flushed, clean) = prepare(medium, seed, payloads);
    for (damaged, record) in written.iter().enumerate() {
        // A payload byte, and the low byte of the stored checksum (bytes
        // 4..8 of the header), which no decode check looks at.
        let payload_byte = 16 + record.payload.len() / 2;
        for (what, byte) in [("payload", payload_byte), ("checksum", 4)] {
            let mut image = clean.clone();
            image[at(medium.segment_start(), record.offset) + byte] ^= 0x20;
            medium.reboot_with(image);
            let context = format!(
                "{} seed {seed:#x}: {what} of record {damaged}",
                medium.name()
            );
            let mut reader = open_reader(medium, flushed);
            let (before, _) = scan(&mut reader, written[0].offset, record.offset, &context);
            assert_served(&before, &written[..damaged], &context);
            match reader.read_batch(record.offset) {
                Err(Error::NotARecord { offset, reason, .. }) => {
                    assert_eq!(
                        offset, record.offset,
                        "{context}: the damaged record is named"
                    );
                    assert_eq!(reason, RecordDefect::BadChecksum, "{context}");
                }
                Ok(mut batch) => panic!(
                    "{context}: the damaged record was served: {:?}",
                    batch.next().map(|r| r.payload.to_vec())
                ),
                Err(e) => panic!("{context}: {e:?}"),
            }
            let (after, _) = scan(&mut reader, record.end(), flushed, &context);
            assert_served(&after, &written[damaged + 1..], &context);
        }
    }
    medium.reboot_with(clean);
}

/// A flushed offset on the boundary of record 10 of 30, lowered there
/// after a batch of all 30 filled the window (as after a truncation).
fn stops_at_the_flushed_offset<M: Medium>(medium: &M, seed: u64) {
    let payloads: Vec<Vec<u8>> = (0..30).map(|index| payload(seed, index, 64)).collect();
    let (written, all_flushed, _) = prepare(medium, seed, payloads);
    let flushed = written[10].offset;
    let context = format!("{} seed {seed:#x}: flushed at record 10", medium.name());
    let mut reader = open_reader(medium, all_flushed);
    let (all, _) = scan(&mut reader, written[0].offset, all_flushed, &context);
    assert_served(&all, &written, &context);
    reader.set_flushed_offset(flushed);
    let (served, batches) = scan(&mut reader, written[0].offset, flushed, &context);
    assert_served(&served, &written[..10], &context);
    assert_eq!(batches, 1, "{context}: one window");
    assert!(
        matches!(reader.read_batch(flushed), Err(Error::OutOfRange { .. })),
        "{context}: a batch at the flushed offset"
    );
    // One record at a time: the first read checks the whole window, and
    // the lowered offset must still stop the reads after it.
    let mut reader = open_reader(medium, all_flushed);
    let first = reader
        .read_record(written[0].offset, ReadHint::Sequential)
        .expect("first record");
    assert!(*first.payload == written[0].payload[..], "{context}");
    // An offset inside a checked record's payload is no record, checked
    // run or not.
    let inside = written[3].offset + 16 + 32;
    assert!(
        matches!(
            reader.read_record(inside, ReadHint::Sequential),
            Err(Error::NotARecord { .. })
        ),
        "{context}: a read inside record 3's payload"
    );
    let first = reader
        .read_record(written[0].offset, ReadHint::Sequential)
        .expect("first record again");
    assert!(*first.payload == written[0].payload[..], "{context}");
    reader.set_flushed_offset(flushed);
    for (index, want) in written.iter().enumerate().take(10).skip(1) {
        let record = reader
            .read_record(want.offset, ReadHint::Sequential)
            .unwrap_or_else(|e| panic!("{context}: record {index}: {e:?}"));
        assert!(
            *record.payload == want.payload[..],
            "{context}: record {index}"
        );
    }
    assert!(
        matches!(
            reader.read_record(flushed, ReadHint::Sequential),
            Err(Error::OutOfRange { .. })
        ),
        "{context}: a read at the lowered flushed offset"
    );
}

#[test]
fn ram_batches_serve_every_record_exactly_once() {
    let seed = test_seed(0xBA7C_0001);
    println!("seed {seed:#x} (set SEGWAL_TEST_SEED to change it)");
    let mut medium = RamMedium::new(512 * 1024);
    many_windows(&medium, seed);
    let mut medium_small = RamMedium::new(32 * 1024);
    every_record_damaged(&mut medium_small, seed);
    medium = RamMedium::new(32 * 1024);
    stops_at_the_flushed_offset(&medium, seed);
}

#[test]
fn file_batches_serve_every_record_exactly_once() {
    let seed = test_seed(0xBA7C_0002);
    println!("seed {seed:#x} (set SEGWAL_TEST_SEED to change it)");
    many_windows(&FileMedium::new(512 * 1024), seed);
    every_record_damaged(&mut FileMedium::new(32 * 1024), seed);
    stops_at_the_flushed_offset(&FileMedium::new(32 * 1024), seed);
}
