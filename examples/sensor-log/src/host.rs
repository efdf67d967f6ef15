//! The host twin's flash: a RAM NOR flash with fault injection
//! (`segwal_ram::RamNorFlash`) laid out as the firmware's, shared by the
//! host binary and the power-cut test.

use segwal_ram::RamNorFlash;

use crate::{Layout, SCAN_BUFFER_BYTES, SensorLog};

/// Flash word: 4 bytes, as on most Cortex-M4 parts.
pub const WORD_BYTES: usize = 4;
/// Erase block: 4 KiB, as on an nRF52.
pub const BLOCK_BYTES: usize = 4096;
/// The region: four one-block slots.
pub const SLOT_COUNT: u32 = 4;

/// The simulated part.
pub type Flash = RamNorFlash<WORD_BYTES, BLOCK_BYTES>;
/// The log over it.
pub type Log = SensorLog<Flash, [u8; SCAN_BUFFER_BYTES], { SLOT_COUNT as usize }>;

/// The log's region: the whole simulated part.
pub const LAYOUT: Layout = Layout {
    region_start: 0,
    slot_count: SLOT_COUNT,
    // A small constant: the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    slot_size_bytes: BLOCK_BYTES as u32,
    salt_seed: 0xB0A2_D001,
};
