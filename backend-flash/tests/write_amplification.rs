//! Write amplification: a 16-byte record on a 4-byte-word flash programs
//! exactly its 16-byte header and its 16-byte payload, 32 bytes: no marker,
//! no commit word, no padding, no word programmed twice (strict device).
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal_flash::RingMode;
use support::*;

#[test]
fn a_16_byte_record_programs_32_bytes() {
    let device = strict_device(8, 11);
    let mut log = open_log(&device, 8, RingMode::DropOldest).unwrap();
    // Fill one segment's worth without rotating: 4 KiB - 64-byte header.
    let records = (BLOCK_BYTES as u64 - 64) / 32;
    device.reset_stats();
    for _ in 0..records {
        log.append(&[0xA5; 16]).unwrap();
    }
    let stats = device.stats();
    let per_record = stats.write_bytes as f64 / records as f64;
    println!(
        "write amplification: {records} records of 16 bytes programmed {} bytes in {} writes, \
         {per_record} bytes per record; {} erases",
        stats.write_bytes, stats.write_calls, stats.erase_calls
    );
    assert_eq!(stats.write_bytes, 32 * records);
    assert_eq!(stats.write_calls, records, "one program call per record");
    assert_eq!(stats.erase_calls, 0);
}
