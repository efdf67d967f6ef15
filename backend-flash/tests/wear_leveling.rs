//! Wear leveling: 100,000 small appends in ring-buffer mode over 8
//! one-block slots. The ring reuses slots round-robin and erases each block
//! once per trip (at release, skipped again at reuse), so at the end every
//! erase block's erase count is within one of every other's.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::Lsn;
use segwal_flash::RingMode;
use support::*;

#[test]
fn erase_counts_differ_by_at_most_one() {
    let device = strict_device(8, 0x1EA5);
    let mut log = open_log(&device, 8, RingMode::DropOldest).unwrap();
    for lsn in 1..=100_000u64 {
        let record = lsn.to_le_bytes();
        assert_eq!(log.append(&record).unwrap(), Lsn(lsn));
    }
    let counts = device.erase_counts();
    let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    println!(
        "wear: 100,000 appends of 8 bytes, {} segments dropped; erase counts per block {counts:?} (spread {})",
        log.dropped_segments(),
        max - min
    );
    assert!(max - min <= 1, "erase counts {counts:?}");
    assert!(min > 50, "the ring went round many times: {counts:?}");
    // The newest records are all there.
    let wal = log.wal_mut();
    assert_eq!(wal.next_lsn(), Lsn(100_001));
    assert!(wal.segment_count() >= 7);
    let first = wal.first_lsn().0;
    for lsn in first..100_001 {
        assert_eq!(&*wal.read(Lsn(lsn)).unwrap(), &lsn.to_le_bytes()[..]);
    }
}
