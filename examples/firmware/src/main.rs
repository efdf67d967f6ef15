//! The sensor-log firmware for a Cortex-M4F (`thumbv7em-none-eabihf`): the
//! `sensor-log` crate's logic (the same the host twin runs under power
//! cuts, `cargo run -p sensor-log` from the repository root) over a NOR
//! flash.
//!
//! It boots twice on one flash: the first boot mounts a blank region, logs
//! readings and replays them; the second mounts what the first left
//! (recovery), logs more and replays everything. Then it idles.
//!
//! The flash is simulated in RAM ([`sim_flash::SimFlash`]): replace it with
//! your HAL's flash driver. The console counts bytes instead of printing:
//! give `sensor_log::run` your UART or RTT channel (any `core::fmt::Write`).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod sim_flash;

use cortex_m_rt::entry;
use panic_halt as _;
use sensor_log::{Layout, SCAN_BUFFER_BYTES};
use sim_flash::{BLOCK_BYTES, BLOCK_COUNT, SimFlash};

/// Readings each boot logs.
const READINGS_PER_BOOT: u32 = 100;

/// Slots of the log's ring: the whole simulated part, one block each.
const SLOT_COUNT: usize = BLOCK_COUNT;

/// The log's region. On a real part, leave the program's own pages out of
/// it (`region_start` past them, or a region at the end of the flash).
const LAYOUT: Layout = Layout {
    region_start: 0,
    // Both are small constants: the casts are exact.
    slot_count: SLOT_COUNT as u32,
    slot_size_bytes: BLOCK_BYTES as u32,
    // A per-board value in real firmware (a chip id from the FICR/UID).
    salt_seed: 0x5E45_0F1A,
};

/// A console that prints nothing and counts what it was given: debug
/// output costs nothing here, yet the narration stays compiled in.
#[derive(Debug, Default)]
struct ByteCounter {
    bytes: usize,
}

impl core::fmt::Write for ByteCounter {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        self.bytes += text.len();
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    // In the stack frame of `main`, which never returns: as good as a
    // static, without the `unsafe` a `static mut` would need.
    let mut flash = SimFlash::new();
    let mut buffer = [0u8; SCAN_BUFFER_BYTES];
    let mut console = ByteCounter::default();

    let mut records = [0u64; 2];
    for records_after_boot in &mut records {
        // `&mut SimFlash` is a `NorFlash` too: both boots share the part.
        let replay = sensor_log::run::<_, _, _, SLOT_COUNT>(
            &mut flash,
            &LAYOUT,
            &mut buffer[..],
            &mut console,
            READINGS_PER_BOOT,
        );
        // A real firmware would report a failure on its console and
        // carry on without its log.
        *records_after_boot = replay.map_or(0, |replay| replay.records);
    }

    // The flash is RAM and the console prints nothing: without this the
    // optimizer could prove the work above has no effect and drop it.
    core::hint::black_box((records, console.bytes));
    loop {
        // A real firmware sleeps here (`cortex_m::asm::wfi()`) until its
        // next sensor interrupt.
        core::hint::spin_loop();
    }
}
