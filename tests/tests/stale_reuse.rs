//! Stale reuse: records from an earlier use of the same space never come
//! back.
//!
//! A segment is filled with records, synced, and then a new segment is
//! created over the same bytes (`SegmentWriter::create` on the same RAM
//! region or the same file, a new salt, sometimes a different user area or
//! checksum so the record positions shift) and given fewer, different
//! records. The old records' bytes are still on the device after the new
//! ones. Then:
//!
//! - a scanning reader finds exactly the new records;
//! - reading at every old record offset, even with the old (larger)
//!   flushed offset, returns the new record that starts there, if one
//!   does, and otherwise `NotARecord` or `OutOfRange`: never an old
//!   payload;
//! - reopening for writing keeps exactly the new records, reports the
//!   stale bytes as a tail it discarded (the scan cannot tell them from a
//!   torn write, and says so rather than keep them), zeroes them, and a
//!   further reopen is clean.
//!
//! Runs over RAM and a file.

use segwal::{ChecksumKind, Error, ReadHint, RecoveryMode, SegmentConfig, TailState};
use segwal_tests::{
    FileMedium, Medium, RamMedium, Written, XorShift, all_zero, append_all, assert_same_records,
    dirty_end, open_reader, open_writer, payload, read_all, scan_as_reader, test_seed,
};

const SEGMENT_BYTES: u32 = 64 * 1024;

/// How the second use of the space differs from the first.
#[derive(Debug, Clone, Copy)]
struct Reuse {
    new_records: usize,
    user_area_len_bytes: u32,
    checksum_kind: ChecksumKind,
}

/// Creates a segment over the medium's space with `config` and `salt`,
/// appends `count` records of 1..=`len_max` bytes drawn from `seed`, and
/// syncs; returns them and the flushed offset.
fn fill<M: Medium>(
    medium: &M,
    config: &SegmentConfig,
    salt: u64,
    seed: u64,
    count: usize,
    len_max: usize,
) -> (Vec<Written>, u64) {
    let mut writer = segwal::SegmentWriter::create(
        medium.device(),
        medium.segment_start(),
        config,
        segwal_tests::identity(salt),
        &[],
    )
    .expect("create");
    let mut rng = XorShift::new(seed);
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|i| payload(seed, i as u64, rng.between(1, len_max)))
        .collect();
    let written = append_all(&mut writer, payloads);
    let flushed = writer.sync().expect("sync");
    (written, flushed)
}

fn stale_reuse<M: Medium>(medium: &mut M, seed: u64, reuse: Reuse) {
    let context = format!("{} seed {seed:#x} {reuse:?}", medium.name());
    let first = SegmentConfig::new(medium.segment_size_bytes());
    let (old, old_flushed) = fill(medium, &first, seed, seed, 80, 400);
    let second = SegmentConfig {
        user_area_len_bytes: reuse.user_area_len_bytes,
        checksum_kind: reuse.checksum_kind,
        ..first
    };
    let (new, new_flushed) = fill(
        medium,
        &second,
        seed ^ 0x5A17,
        seed ^ 0xFFFF,
        reuse.new_records,
        150,
    );
    assert!(
        new_flushed < old_flushed,
        "{context}: the new records cover less"
    );
    medium.reboot();

    let (mut scanning, report) = scan_as_reader(medium, &context);
    assert_eq!(u64::from(report.records_end), new_flushed, "{context}");
    assert_eq!(report.record_count, new.len() as u64, "{context}");
    let all = read_all(&mut scanning).expect("read");
    assert_same_records(&all, &new, &context);

    for flushed in [new_flushed, old_flushed] {
        let mut reader = open_reader(medium, flushed);
        for stale in &old {
            for hint in [ReadHint::Random, ReadHint::Sequential] {
                match reader.read_record(stale.offset, hint) {
                    Ok(record) => {
                        let current = new.iter().find(|w| w.offset == stale.offset);
                        assert!(
                            current.is_some_and(|w| *record.payload == w.payload[..]),
                            "{context}: reader told {flushed} returned stale bytes at {}",
                            stale.offset
                        );
                    }
                    Err(Error::NotARecord { .. } | Error::OutOfRange { .. }) => {}
                    Err(other) => panic!("{context}: read at {}: {other}", stale.offset),
                }
            }
        }
        // Following the records past the new ones runs into stale bytes,
        // which are not records.
        if flushed == old_flushed {
            assert!(
                matches!(read_all(&mut reader), Err(Error::NotARecord { offset, .. }) if offset == new_flushed),
                "{context}: iteration past the new records"
            );
        }
    }

    reopen_discards_the_stale_bytes(medium, &new, new_flushed, seed, &context);
}

/// Reopening for writing keeps the new records, reports and zeroes the
/// stale bytes after them, and the next reopen is clean.
fn reopen_discards_the_stale_bytes<M: Medium>(
    medium: &mut M,
    new: &[Written],
    new_flushed: u64,
    seed: u64,
    context: &str,
) {
    let segment = medium.segment_image();
    let stale_end = dirty_end(&segment, new_flushed);
    assert!(
        stale_end > new_flushed,
        "{context}: stale bytes are there to find"
    );
    let (mut writer, recovered) = open_writer(medium, RecoveryMode::Strict).expect("reopen");
    assert_eq!(recovered.record_count, new.len() as u64, "{context}");
    assert_eq!(
        recovered.tail,
        TailState::TruncatedAt {
            offset: new_flushed,
            bytes_discarded: stale_end - new_flushed
        },
        "{context}"
    );
    let segment = medium.segment_image();
    assert!(
        all_zero(&segment[usize::try_from(new_flushed).expect("fits")..]),
        "{context}: stale bytes zeroed"
    );
    let mut expected = new.to_vec();
    expected.extend(append_all(&mut writer, [payload(seed, 9999, 77)]));
    writer.sync().expect("sync");
    drop(writer);
    medium.power_cut();
    let (writer, recovered) = open_writer(medium, RecoveryMode::Strict).expect("reopen");
    assert_eq!(recovered.tail, TailState::Clean, "{context}");
    let mut reader = open_reader(medium, writer.flushed_offset());
    let all = read_all(&mut reader).expect("read");
    assert_same_records(&all, &expected, context);
}

const REUSES: [Reuse; 4] = [
    Reuse {
        new_records: 12,
        user_area_len_bytes: 0,
        checksum_kind: ChecksumKind::Crc32c,
    },
    Reuse {
        new_records: 12,
        user_area_len_bytes: 40,
        checksum_kind: ChecksumKind::Crc32c,
    },
    Reuse {
        new_records: 30,
        user_area_len_bytes: 0,
        checksum_kind: ChecksumKind::Crc32,
    },
    Reuse {
        new_records: 0,
        user_area_len_bytes: 0,
        checksum_kind: ChecksumKind::Crc32c,
    },
];

#[test]
fn ram_reused_region_never_returns_stale_records() {
    let seed = test_seed(0x57A1_0001);
    for reuse in REUSES {
        let mut medium = RamMedium::new(SEGMENT_BYTES);
        stale_reuse(&mut medium, seed, reuse);
        medium.assert_guards_intact(&format!("seed {seed:#x}"));
    }
}

#[test]
fn file_rewritten_in_place_never_returns_stale_records() {
    let seed = test_seed(0x57A1_0002);
    for reuse in REUSES {
        stale_reuse(&mut FileMedium::new(SEGMENT_BYTES), seed, reuse);
    }
}
