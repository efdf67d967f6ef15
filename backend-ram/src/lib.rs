//! An in-memory [`segwal::BlockDevice`] for tests, benchmarks, crash tests
//! and fuzzers.
//!
//! [`RamDevice`] behaves like any geometry a test asks for: a byte-addressable
//! file ([`RamDevice::byte_addressable`]), a NOR flash that erases to `0xFF`
//! and only clears bits when programmed ([`RamDevice::nor_flash`]), or any
//! other valid [`segwal::Geometry`] ([`RamDevice::new`]). Every request is checked
//! with [`segwal::check_range`], so a log that issues a misaligned or
//! out-of-bounds request fails here as it would on real hardware.
//!
//! # Live and durable copies
//!
//! The device keeps two copies of its bytes, as redb's crash-test backend
//! does:
//!
//! - the **live** copy holds every accepted write and erase, and is what
//!   reads return;
//! - the **durable** copy holds the contents as of the last `sync`: what
//!   survives a power cut in which every unsynced write is lost.
//!
//! Between the two sits the list of writes and erases accepted since the last
//! sync ([`RamDevice::pending_writes`] counts them); `sync` applies it to the
//! durable copy and clears it. A test simulates a power cut by taking
//! [`RamDevice::durable_image`] and "rebooting" with
//! [`RamDevice::from_image`].
//!
//! [`RamDevice::stats`] counts calls and bytes per operation, and
//! [`RamDevice::erase_counts`] records wear per erase block.
//!
//! # Fault injection
//!
//! A [`FaultPlan`], built from one seed, makes a device (or a whole
//! [`RamStore`]) misbehave the ways real storage does: power cuts at any
//! byte of any write or erase or between operations, torn units of a chosen
//! size and fill, flipped bits on read, misdirected writes, `ENOSPC`,
//! `EIO`, failed syncs that drop the unsynced writes, and, in strict mode,
//! panics on a logic error of the log. Every choice derives from the seed,
//! so a failing test that prints its plan replays exactly;
//! [`RamDevice::fault_stats`] shows which faults happened.
//!
//! A [`CrashModel`] then says which unsynced operations a power cut let
//! through, and in which order: [`RamDevice::crash_image`] and
//! [`RamStore::reboot_with`] build the bytes after the crash, without
//! changing the device, so one run yields every crash state. A reboot has
//! the power back on and no plan; give it a new plan to cut the power again
//! during recovery.
//!
//! ```
//! use segwal::BlockDevice;
//! use segwal_ram::{CrashModel, FaultPlan, RamDevice, TornFill};
//!
//! let seed = 0x5EED;
//! let plan = FaultPlan::new(seed)
//!     .power_cut_at_byte(14)
//!     .torn_unit_bytes(4)
//!     .torn_fill(TornFill::Random);
//! let mut device = RamDevice::with_faults(segwal::Geometry::byte_addressable(64), plan);
//! device.write(0, &[b"synced!!"])?;
//! device.sync()?;
//! device.write(8, &[b"one,"])?;
//! assert!(device.write(12, &[b"two,"]).is_err(), "torn at byte 14");
//!
//! // Two pending writes, the second torn: four crash states.
//! assert_eq!(device.pending_writes(), 2);
//! for model in CrashModel::all_subsets(device.pending_writes()) {
//!     let mut rebooted = device.reboot(&model);
//!     let mut buf = [0u8; 8];
//!     rebooted.read(0, &mut buf)?;
//!     assert_eq!(&buf, b"synced!!", "seed {seed:#x}, {model:?}");
//! }
//! # Ok::<(), segwal_ram::RamError>(())
//! ```
//!
//! # NOR flash drivers
//!
//! With the `nor-flash` feature, `RamNorFlash` is an `embedded-storage`
//! `NorFlash` driver over a NOR-geometry [`RamDevice`], so code written for
//! a flash chip runs on the fault-injecting device (its documentation says
//! what a power cut leaves on NOR flash).
//!
//! # Example
//!
//! ```
//! use segwal::BlockDevice;
//! use segwal_ram::RamDevice;
//!
//! let mut device = RamDevice::byte_addressable(4096);
//! device.write(0, &[b"hello ", b"world"])?;
//! device.sync()?;
//! device.write(11, &[b"!"])?;
//!
//! // Power cut: the unsynced "!" is lost.
//! let geometry = device.geometry();
//! let mut rebooted = RamDevice::from_image(geometry, device.durable_image());
//! let mut buf = [0u8; 12];
//! rebooted.read(0, &mut buf)?;
//! assert_eq!(&buf, b"hello world\0");
//! assert_eq!(device.stats().write_calls, 2);
//! # Ok::<(), segwal_ram::RamError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crash;
mod device;
mod error;
mod fault;
mod injector;
#[cfg(feature = "nor-flash")]
mod nor;
mod op;
mod rng;
mod state;
mod stats;
mod store;

pub use crash::{ARRANGEMENTS_PENDING_MAX, CrashModel, SUBSETS_PENDING_MAX, Survivors};
pub use device::RamDevice;
pub use error::{Operation, RamError};
pub use fault::{FaultPlan, TornFill, seed_from_env};
#[cfg(feature = "nor-flash")]
pub use nor::{RamNorError, RamNorFlash};
pub use stats::{FaultStats, Stats};
pub use store::{RamSegment, RamStore};

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
