//! The smallest useful segwal firmware, for the size budget: mount a flash
//! log (recovery included), append records, iterate over them. Nothing
//! else: no formatting, no record streams. `size.sh` holds its `.text` to
//! the budget and reports the full sensor-log firmware beside it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[path = "../sim_flash.rs"]
mod sim_flash;

use cortex_m_rt::entry;
use panic_halt as _;
use segwal::{SCAN_SCRATCH_MIN_BYTES, WalConfig};
use segwal_flash::{FlashLog, FlashRing, RingConfig, RingMode};
use sim_flash::{BLOCK_BYTES, BLOCK_COUNT, SimFlash};

/// Records appended per boot.
const RECORDS_PER_BOOT: u32 = 100;

#[entry]
fn main() -> ! {
    let mut flash = SimFlash::new();
    let mut total_bytes = 0usize;
    for _boot in 0..2 {
        let ring_config = RingConfig {
            region_start: 0,
            // Small constants: the casts are exact.
            slot_count: BLOCK_COUNT as u32,
            slot_size_bytes: BLOCK_BYTES as u32,
            mode: RingMode::DropOldest,
            salt_seed: 0x5E45_0F1A,
        };
        let wal_config = WalConfig {
            segment_size_bytes: BLOCK_BYTES as u32,
            ..WalConfig::default()
        };
        let Ok(ring) = FlashRing::new(&mut flash, ring_config) else {
            break;
        };
        let buffer = [0u8; SCAN_SCRATCH_MIN_BYTES];
        let Ok(mut log) = FlashLog::<_, _, BLOCK_COUNT>::open(ring, wal_config, buffer) else {
            break;
        };
        for reading in 0..RECORDS_PER_BOOT {
            if log.append(&reading.to_le_bytes()).is_err() {
                break;
            }
        }
        let mut records = log.wal_mut().iter();
        while let Some(Ok((_lsn, payload))) = records.next_record() {
            total_bytes += payload.len();
        }
    }
    // The flash is RAM: without this the optimizer could drop the work.
    core::hint::black_box(total_bytes);
    loop {
        core::hint::spin_loop();
    }
}
