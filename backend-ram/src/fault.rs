//! [`FaultPlan`]: which faults a device injects, and when, all drawn from
//! one seed.
//!
//! A plan is plain data: building one touches no device. Attach it with
//! [`RamDevice::with_faults`](crate::RamDevice::with_faults),
//! [`RamDevice::set_fault_plan`](crate::RamDevice::set_fault_plan) or
//! [`RamStore::set_fault_plan`](crate::RamStore::set_fault_plan); the
//! counts it names (bytes, operations, the n-th write or sync) start from
//! zero when it is attached.
//!
//! # What each fault models
//!
//! | option                      | real-world cause                            | effect here                                   |
//! |-----------------------------|---------------------------------------------|-----------------------------------------------|
//! | [`power_cut_at_byte`]       | power loss during a write or erase          | prefix done, one unit torn, the rest untouched, then every write, erase and sync fails with [`ErrorKind::Io`] |
//! | [`power_cut_after_ops`]     | power loss between two requests             | that request and every later one fail         |
//! | [`torn_unit_bytes`]         | the medium's atomic unit (byte, sector, word)| the size of the torn unit                     |
//! | [`torn_fill`]               | what an interrupted unit reads back as      | random, zero or old bytes                     |
//! | [`read_bit_flips`]          | bus glitches, weak cells                    | flipped bits in what `read` returns           |
//! | [`read_bit_flip_at`]        | one known bad bit                           | the same, at a chosen place                   |
//! | [`misdirect_write`]         | firmware or controller bugs                 | the data lands at another offset              |
//! | [`no_space_after_bytes`]    | `ENOSPC` on a growing file                  | [`ErrorKind::NoSpace`], nothing changes       |
//! | [`no_space_on_allocation`]  | `ENOSPC` when the log creates a segment     | [`ErrorKind::NoSpace`] from `allocate`        |
//! | [`io_error_on_write`]       | `EIO` from the medium                       | [`ErrorKind::Io`], nothing changes            |
//! | [`sync_failure`]            | `fsync` writeback error (Linux)             | [`ErrorKind::SyncFailed`], unsynced writes dropped from the durable copy |
//! | [`strict`]                  | a logic error of the log                    | a panic naming it                             |
//!
//! [`power_cut_at_byte`]: FaultPlan::power_cut_at_byte
//! [`power_cut_after_ops`]: FaultPlan::power_cut_after_ops
//! [`torn_unit_bytes`]: FaultPlan::torn_unit_bytes
//! [`torn_fill`]: FaultPlan::torn_fill
//! [`read_bit_flips`]: FaultPlan::read_bit_flips
//! [`read_bit_flip_at`]: FaultPlan::read_bit_flip_at
//! [`misdirect_write`]: FaultPlan::misdirect_write
//! [`no_space_after_bytes`]: FaultPlan::no_space_after_bytes
//! [`no_space_on_allocation`]: FaultPlan::no_space_on_allocation
//! [`io_error_on_write`]: FaultPlan::io_error_on_write
//! [`sync_failure`]: FaultPlan::sync_failure
//! [`strict`]: FaultPlan::strict
//! [`ErrorKind::Io`]: segwal::ErrorKind::Io
//! [`ErrorKind::NoSpace`]: segwal::ErrorKind::NoSpace
//! [`ErrorKind::SyncFailed`]: segwal::ErrorKind::SyncFailed

use core::fmt;

/// What the unit a power cut interrupts holds afterwards.
///
/// On a device with `erase_before_write` (NOR flash) an interrupted *write*
/// can only move bits away from the erased value, so the fill is programmed
/// over the old contents (`old & fill` for flash erased to `0xFF`). An
/// interrupted *erase* takes the fill as is: real chips pre-program a block
/// before erasing it, so any value is possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TornFill {
    /// Random bytes, drawn from the plan's seed.
    Random,
    /// Zero bytes.
    Zero,
    /// The old contents: the unit was not reached.
    Old,
    /// One of the three above, drawn from the seed at each cut.
    #[default]
    Mixed,
}

/// A bit flipped in what `read` returns at a chosen place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BitFlip {
    /// Byte offset on the device.
    pub(crate) offset: u64,
    /// Bit within the byte, 0 (least significant) to 7.
    pub(crate) bit: u8,
    /// Every read (`true`) or only the first read that covers it.
    pub(crate) persistent: bool,
}

/// Bits flipped at random in what `read` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RandomFlips {
    /// Each byte read has a 1 in `one_in_bytes` chance of one flipped bit.
    pub(crate) one_in_bytes: u64,
    /// A flipped bit stays flipped in every later read of the device.
    pub(crate) persistent: bool,
}

/// The faults a [`RamDevice`](crate::RamDevice) or
/// [`RamStore`](crate::RamStore) injects, deterministic from one seed.
///
/// Built with chained calls; each list-like option (`misdirect_write`,
/// `io_error_on_write`, `sync_failure`, ...) may be given several times.
/// Writes, syncs and allocations are numbered from 0 in the order they
/// reach the device once the plan is attached (requests refused for bad
/// bounds or alignment, or after a power cut, get no number). In a store
/// every segment shares the plan and its counters.
///
/// `Debug` prints the seed in hex: a failing test that prints its plan can
/// be replayed exactly.
///
/// # Example
///
/// ```
/// use segwal::{BlockDevice, DeviceError, ErrorKind, Geometry};
/// use segwal_ram::{CrashModel, FaultPlan, RamDevice, TornFill};
///
/// // Cut the power 10 bytes into the stream of writes; the byte at the cut
/// // reads back as zero.
/// let plan = FaultPlan::new(0x5EED)
///     .power_cut_at_byte(10)
///     .torn_unit_bytes(1)
///     .torn_fill(TornFill::Zero);
/// let mut device = RamDevice::with_faults(Geometry::byte_addressable(64), plan);
/// device.write(0, &[b"12345678"])?;
/// let error = device.write(8, &[b"abcdefgh"]).unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Io);
/// assert!(device.is_power_cut());
///
/// // Keep every unsynced write: the second one is torn at byte 10.
/// let image = device.crash_image(&CrashModel::Live);
/// assert_eq!(&image[..12], b"12345678ab\0\0");
/// # Ok::<(), segwal_ram::RamError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FaultPlan {
    seed: u64,
    pub(crate) cut_at_byte: Option<u64>,
    pub(crate) cut_after_ops: Option<u64>,
    pub(crate) torn_unit_bytes: Option<u32>,
    pub(crate) torn_fill: TornFill,
    pub(crate) random_flips: Option<RandomFlips>,
    pub(crate) flips: Vec<BitFlip>,
    /// `(write_index, to_offset)` pairs.
    pub(crate) misdirects: Vec<(u64, u64)>,
    pub(crate) no_space_after_bytes: Option<u64>,
    pub(crate) failed_allocations: Vec<u64>,
    pub(crate) failed_writes: Vec<u64>,
    pub(crate) failed_syncs: Vec<u64>,
    pub(crate) strict: bool,
}

impl FaultPlan {
    /// A plan that injects nothing yet, drawing every random choice from
    /// `seed`.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            seed,
            cut_at_byte: None,
            cut_after_ops: None,
            torn_unit_bytes: None,
            torn_fill: TornFill::default(),
            random_flips: None,
            flips: Vec::new(),
            misdirects: Vec::new(),
            no_space_after_bytes: None,
            failed_allocations: Vec::new(),
            failed_writes: Vec::new(),
            failed_syncs: Vec::new(),
            strict: false,
        }
    }

    /// The seed every random choice derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Cuts the power after `byte_count` bytes of writes and erases,
    /// counted together across every device sharing the plan.
    ///
    /// The write or erase that would move the count past `byte_count` is
    /// interrupted: the units before the cut are done, the unit holding
    /// byte number `byte_count` is torn (see [`FaultPlan::torn_unit_bytes`]
    /// and [`FaultPlan::torn_fill`]) and the rest is untouched. The request
    /// fails with `ErrorKind::Io`, and so does every later write, erase,
    /// sync, allocation and release; reads still see the live copy. A
    /// request that ends exactly at `byte_count` completes, so cuts at
    /// `0..total_bytes` tear each unit of a workload once.
    pub fn power_cut_at_byte(mut self, byte_count: u64) -> Self {
        self.cut_at_byte = Some(byte_count);
        self
    }

    /// Cuts the power between requests: the first `operation_count` writes,
    /// erases and syncs (and, in a store, allocations and releases) run, and
    /// every later one fails with `ErrorKind::Io` and changes nothing.
    pub fn power_cut_after_ops(mut self, operation_count: u64) -> Self {
        self.cut_after_ops = Some(operation_count);
        self
    }

    /// The medium's atomic unit: a power cut tears one aligned unit of this
    /// many bytes (1 for byte-at-a-time, 512 for a disk sector, the flash
    /// word). Units are aligned to the device, not the write; a write that
    /// covers part of a unit tears only its part. Defaults to the device's
    /// `write_size_bytes`.
    ///
    /// # Panics
    ///
    /// When `unit_bytes` is not a power of two: a bug in the test.
    pub fn torn_unit_bytes(mut self, unit_bytes: u32) -> Self {
        assert!(
            unit_bytes.is_power_of_two(),
            "FaultPlan: torn_unit_bytes({unit_bytes}) is not a power of two"
        );
        self.torn_unit_bytes = Some(unit_bytes);
        self
    }

    /// What the torn unit holds after a power cut. Defaults to
    /// [`TornFill::Mixed`].
    pub fn torn_fill(mut self, fill: TornFill) -> Self {
        self.torn_fill = fill;
        self
    }

    /// Flips one random bit in a random 1 in `one_in_bytes` of the bytes
    /// `read` returns. Transient flips (`persistent == false`) touch only
    /// that read's buffer, so reading again gives different bytes.
    /// Persistent ones model a weak cell: every later read of the device
    /// returns that bit flipped, rewrites included, until the device is
    /// rebooted. The stored bytes, and so crash images, never change.
    ///
    /// # Panics
    ///
    /// When `one_in_bytes` is 0.
    pub fn read_bit_flips(mut self, one_in_bytes: u64, persistent: bool) -> Self {
        assert!(one_in_bytes > 0, "FaultPlan: read_bit_flips(0, ..)");
        self.random_flips = Some(RandomFlips {
            one_in_bytes,
            persistent,
        });
        self
    }

    /// Flips bit `bit` (0 = least significant) of the byte at `offset` in
    /// what `read` returns: in the first read covering it when transient,
    /// in every read when `persistent`. In a store the offset applies to
    /// every segment.
    ///
    /// # Panics
    ///
    /// When `bit` is above 7.
    pub fn read_bit_flip_at(mut self, offset: u64, bit: u8, persistent: bool) -> Self {
        assert!(bit < 8, "FaultPlan: bit {bit} of a byte");
        self.flips.push(BitFlip {
            offset,
            bit,
            persistent,
        });
        self
    }

    /// Sends write number `write_index` to `to_offset` on the same device
    /// instead of where it was asked to go. It reports success.
    ///
    /// The device panics when the write does not fit at `to_offset`. On
    /// flash, a strict device may later blame the log for the words the
    /// misdirected write programmed.
    pub fn misdirect_write(mut self, write_index: u64, to_offset: u64) -> Self {
        self.misdirects.push((write_index, to_offset));
        self
    }

    /// Refuses, with `ErrorKind::NoSpace`, every write that would take the
    /// bytes written (across every device sharing the plan) past
    /// `byte_count`. A refused write changes nothing and uses no space; a
    /// smaller one may still fit.
    pub fn no_space_after_bytes(mut self, byte_count: u64) -> Self {
        self.no_space_after_bytes = Some(byte_count);
        self
    }

    /// Makes allocation number `allocation_index` of a
    /// [`RamStore`](crate::RamStore) fail with `ErrorKind::NoSpace`,
    /// creating nothing.
    pub fn no_space_on_allocation(mut self, allocation_index: u64) -> Self {
        self.failed_allocations.push(allocation_index);
        self
    }

    /// Makes write number `write_index` fail with `ErrorKind::Io`. It
    /// changes nothing.
    pub fn io_error_on_write(mut self, write_index: u64) -> Self {
        self.failed_writes.push(write_index);
        self
    }

    /// Makes sync number `sync_index` fail with `ErrorKind::SyncFailed`, as
    /// `fsync` does after a writeback error on Linux: every write since the
    /// last good sync is dropped from the durable copy without a word, while
    /// the live copy (the page cache) keeps showing it. The next sync
    /// succeeds, and those writes are still lost.
    pub fn sync_failure(mut self, sync_index: u64) -> Self {
        self.failed_syncs.push(sync_index);
        self
    }

    /// In strict mode the device panics on a logic error of the log, where
    /// real hardware would quietly go wrong: a misaligned write or erase, and
    /// on a device with `erase_before_write`, a write over bytes that are
    /// not erased or over a word already programmed since its last erase.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// `true` in strict mode.
    pub fn is_strict(&self) -> bool {
        self.strict
    }
}

impl fmt::Debug for FaultPlan {
    /// Every option, with the seed in hex as the tests print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultPlan")
            .field("seed", &format_args!("{:#x}", self.seed))
            .field("cut_at_byte", &self.cut_at_byte)
            .field("cut_after_ops", &self.cut_after_ops)
            .field("torn_unit_bytes", &self.torn_unit_bytes)
            .field("torn_fill", &self.torn_fill)
            .field("random_flips", &self.random_flips)
            .field("flips", &self.flips)
            .field("misdirects", &self.misdirects)
            .field("no_space_after_bytes", &self.no_space_after_bytes)
            .field("failed_allocations", &self.failed_allocations)
            .field("failed_writes", &self.failed_writes)
            .field("failed_syncs", &self.failed_syncs)
            .field("strict", &self.strict)
            .finish()
    }
}

/// The seed a fault-injection run uses: `SEGWAL_TEST_SEED` (decimal or `0x`
/// hex) when set, `default` otherwise. Printed, so a failing run names the
/// seed that replays it.
///
/// # Panics
///
/// When `SEGWAL_TEST_SEED` is set but is not a number: a test-setup error.
pub fn seed_from_env(default: u64) -> u64 {
    let seed = match std::env::var("SEGWAL_TEST_SEED") {
        Ok(text) => {
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("SEGWAL_TEST_SEED={text:?} is not a u64"))
        }
        Err(_) => default,
    };
    println!("seed {seed:#x} (set SEGWAL_TEST_SEED to change it)");
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_seed_in_hex() {
        let plan = FaultPlan::new(0xDEAD_BEEF).power_cut_at_byte(3);
        let text = format!("{plan:?}");
        assert!(text.contains("seed: 0xdeadbeef"), "{text}");
        assert!(text.contains("cut_at_byte: Some(3)"), "{text}");
        assert_eq!(plan.seed(), 0xDEAD_BEEF);
    }

    #[test]
    fn list_options_accumulate() {
        let plan = FaultPlan::new(1)
            .io_error_on_write(2)
            .io_error_on_write(5)
            .sync_failure(0);
        assert_eq!(plan.failed_writes, vec![2, 5]);
        assert_eq!(plan.failed_syncs, vec![0]);
        assert!(!plan.is_strict());
        assert!(plan.strict(true).is_strict());
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn a_torn_unit_of_three_bytes_panics() {
        let _ = FaultPlan::new(1).torn_unit_bytes(3);
    }
}
