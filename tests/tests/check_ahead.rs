//! Check-ahead: a sequential read that checks the records after it side by
//! side (the rest of the window with it) never hands out one whose bytes are
//! damaged, wherever in the batch the damage sits.
//!
//! A segment of 24 small records is written and synced, all of them in one
//! read window. For every record `d`, one byte of its payload (then of its
//! stored checksum) is flipped; a reader then walks the segment from the
//! first record with `ReadHint::Sequential`. Records before `d` must read
//! back exactly; record `d` must fail with `NotARecord` at its offset
//! (checked ahead by an earlier read, it may not be served from that
//! check); the records after it, read on by offset, must read back exactly
//! too. Runs on RAM (the portable checksums) and on a file (`segwal-std`'s
//! device, which installs the inline CRC32C kernel), with records of one
//! length (the side-by-side checksums' common case) and of mixed lengths.
//! One printed seed drives the payloads.

use segwal::{ChecksumKind, Error, ReadHint, RecordDefect};
use segwal_tests::{
    FileMedium, Medium, RamMedium, Written, XorShift, append_all, at, config_for, create_segment,
    open_reader, payload, test_seed,
};

const SEGMENT_BYTES: u32 = 32 * 1024;
const RECORDS: u64 = 24;

/// Writes the records, syncs, and returns them, the flushed offset and the
/// clean image.
fn prepare<M: Medium>(medium: &M, seed: u64, one_length: bool) -> (Vec<Written>, u64, Vec<u8>) {
    let mut writer = create_segment(medium, &config_for(medium, ChecksumKind::Crc32c), seed);
    let mut rng = XorShift::new(seed);
    let payloads: Vec<Vec<u8>> = (0..RECORDS)
        .map(|index| {
            let len = if one_length { 100 } else { rng.between(1, 120) };
            payload(seed, index, len)
        })
        .collect();
    let written = append_all(&mut writer, payloads);
    writer.sync().expect("sync");
    let flushed = writer.flushed_offset();
    drop(writer);
    (written, flushed, medium.image())
}

/// Walks the damaged image sequentially and checks what each read gives.
fn walk_damaged<M: Medium>(
    medium: &M,
    written: &[Written],
    flushed: u64,
    damaged: usize,
    context: &str,
) {
    let mut reader = open_reader(medium, flushed);
    for (index, want) in written.iter().enumerate() {
        match reader.read_record(want.offset, ReadHint::Sequential) {
            Ok(record) if index != damaged => {
                assert!(
                    *record.payload == want.payload[..],
                    "{context}: record {index} read back other bytes"
                );
                assert_eq!(record.next_offset, want.end(), "{context}: record {index}");
            }
            Err(Error::NotARecord { offset, reason, .. }) if index == damaged => {
                assert_eq!(
                    offset, want.offset,
                    "{context}: the damaged record is named"
                );
                assert_eq!(reason, RecordDefect::BadChecksum, "{context}");
            }
            other => panic!(
                "{context}: record {index} (damaged {damaged}) gave {:?}",
                other.map(|r| r.payload.to_vec())
            ),
        }
    }
}

/// Every record damaged in turn, in its payload and in its checksum field.
fn every_record<M: Medium>(medium: &mut M, seed: u64, one_length: bool) {
    let (written, flushed, clean) = prepare(medium, seed, one_length);
    for (damaged, record) in written.iter().enumerate() {
        // A payload byte, and the low byte of the stored checksum (bytes
        // 4..8 of the header), which no decode check looks at.
        let payload_byte = 16 + record.payload.len() / 2;
        for (what, byte) in [("payload", payload_byte), ("checksum", 4)] {
            let mut image = clean.clone();
            image[at(medium.segment_start(), record.offset) + byte] ^= 0x20;
            medium.reboot_with(image);
            let context = format!(
                "{} seed {seed:#x} one length {one_length}: {what} of record {damaged}",
                medium.name()
            );
            walk_damaged(medium, &written, flushed, damaged, &context);
        }
    }
    medium.reboot_with(clean);
}

#[test]
fn ram_sequential_reads_never_serve_a_damaged_record() {
    let seed = test_seed(0xC4EC_0001);
    println!("seed {seed:#x} (set SEGWAL_TEST_SEED to change it)");
    for one_length in [true, false] {
        every_record(&mut RamMedium::new(SEGMENT_BYTES), seed, one_length);
    }
}

#[test]
fn file_sequential_reads_never_serve_a_damaged_record() {
    let seed = test_seed(0xC4EC_0002);
    println!("seed {seed:#x} (set SEGWAL_TEST_SEED to change it)");
    for one_length in [true, false] {
        every_record(&mut FileMedium::new(SEGMENT_BYTES), seed, one_length);
    }
}
