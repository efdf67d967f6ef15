//! Mount reads: opening a log on a ring of N slots reads each slot's header
//! and scans the newest segment, not the whole region. Printed as bytes and
//! compared with the region's size.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal_flash::RingMode;
use segwal_ram::CrashModel;
use support::*;

#[test]
fn open_reads_headers_and_one_segment() {
    const SLOTS: u32 = 32;
    let device = strict_device(SLOTS as usize, 13);
    let mut log = open_log(&device, SLOTS, RingMode::DropOldest).unwrap();
    let mut lsn = 1u64;
    while log.wal().segment_count() < SLOTS as usize {
        log.append(&payload(lsn)).unwrap();
        lsn += 1;
    }
    // Half a segment in the newest.
    for _ in 0..40 {
        log.append(&payload(lsn)).unwrap();
        lsn += 1;
    }
    let rebooted = device.reboot(&CrashModel::Live);
    let log = open_log(&rebooted, SLOTS, RingMode::DropOldest).unwrap();
    let stats = rebooted.stats();
    let region = u64::from(SLOTS) * BLOCK_BYTES as u64;
    let headers = u64::from(SLOTS) * 64;
    println!(
        "mount reads: {} bytes in {} reads for a region of {region} bytes ({SLOTS} slots of {BLOCK_BYTES}): \
         {headers} bytes of headers read by the ring, as many again by the log, plus the newest segment",
        stats.read_bytes, stats.read_calls
    );
    assert_eq!(log.wal().next_lsn().0, lsn);
    assert!(
        stats.read_bytes <= 2 * headers + 2 * BLOCK_BYTES as u64,
        "{} bytes read",
        stats.read_bytes
    );
    assert!(stats.read_bytes < region / 4);
}
