//! Test support: the flash backend over `segwal_ram::RamNorFlash`, a
//! `NorFlash` driver on the fault-injecting NOR device (AND-writes,
//! write-once words in strict mode, torn words and erases at power cuts),
//! and the workload and checks the tests share.

#![allow(dead_code, clippy::cast_possible_truncation)]

use segwal::{Lsn, WalConfig};
use segwal_flash::{FlashLog, FlashRing, RingConfig, RingMode};
use segwal_ram::RamNorFlash;
use segwal_ram::{FaultPlan, RamDevice};

/// Bytes per flash word in these tests.
pub const WORD_BYTES: usize = 4;
/// Bytes per erase block.
pub const BLOCK_BYTES: usize = 4096;

/// The flash of most tests: 4-byte words, 4 KiB erase blocks.
pub type Flash = RamNorFlash<WORD_BYTES, BLOCK_BYTES>;

/// A blank NOR device of `blocks` erase blocks, strict: programming a word
/// twice or over unerased bytes panics.
pub fn strict_device(blocks: usize, seed: u64) -> RamDevice {
    let device = RamDevice::nor_flash(
        (blocks * BLOCK_BYTES) as u64,
        WORD_BYTES as u32,
        BLOCK_BYTES as u32,
    );
    device.set_fault_plan(FaultPlan::new(seed).strict(true));
    device
}

/// A ring of `slots` one-block slots over the whole of `device`.
pub fn ring(device: &RamDevice, slots: u32, mode: RingMode) -> FlashRing<Flash> {
    let config = RingConfig {
        region_start: 0,
        slot_count: slots,
        slot_size_bytes: BLOCK_BYTES as u32,
        mode,
        salt_seed: 0x5EED_F1A5,
    };
    FlashRing::new(Flash::from_device(device.clone()), config).expect("valid ring")
}

/// The log configuration of the tests: one-block segments, synced appends.
pub fn wal_config() -> WalConfig {
    WalConfig {
        segment_size_bytes: BLOCK_BYTES as u32,
        ..WalConfig::default()
    }
}

/// The log type of the tests.
pub type TestLog = FlashLog<Flash, Vec<u8>, 64>;

/// Opens the log on a ring of `slots` slots over `device`.
pub fn open_log(
    device: &RamDevice,
    slots: u32,
    mode: RingMode,
) -> Result<TestLog, segwal_flash::FlashLogError<Flash>> {
    FlashLog::open(ring(device, slots, mode), wal_config(), vec![0u8; 8192])
}

/// The payload of record `lsn`: 0 to 40 bytes, different for each LSN.
pub fn payload(lsn: u64) -> Vec<u8> {
    let len = (lsn.wrapping_mul(7) % 41) as usize;
    (0..len)
        .map(|i| (lsn as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Checks that every record in the log reads back as `payload(lsn)`, by
/// LSN and by iteration.
pub fn check_log(log: &mut TestLog, context: &str) {
    let wal = log.wal_mut();
    let (first, next) = (wal.first_lsn().0, wal.next_lsn().0);
    for lsn in first..next {
        let data = wal
            .read(Lsn(lsn))
            .unwrap_or_else(|e| panic!("{context}: read {lsn}: {e:?}"));
        assert_eq!(&*data, &payload(lsn)[..], "{context}: lsn {lsn}");
    }
    let mut iter = wal.iter();
    let mut expected = first;
    while let Some(item) = iter.next_record() {
        let (lsn, data) = item.unwrap_or_else(|e| panic!("{context}: iter: {e:?}"));
        assert_eq!(lsn, Lsn(expected), "{context}");
        assert_eq!(&*data, &payload(expected)[..], "{context}: lsn {expected}");
        expected += 1;
    }
    assert_eq!(expected, next, "{context}: iteration ends at next_lsn");
}
