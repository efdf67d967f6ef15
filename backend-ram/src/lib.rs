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

mod device;
mod error;
mod state;
mod stats;
mod store;

pub use device::RamDevice;
pub use error::{Operation, RamError};
pub use stats::Stats;
pub use store::{RamSegment, RamStore, Survivors};

#[cfg(test)]
mod tests;
