//! [`RamNorFlash`]: an [`embedded_storage`] `NorFlash` driver over a
//! [`RamDevice`], so code written for a flash chip (the `segwal-flash`
//! backend, a firmware's logger) runs on the fault-injecting device.

use core::fmt;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use segwal::{BlockDevice, DeviceError, ErrorKind};

use crate::crash::CrashModel;
use crate::device::RamDevice;
use crate::error::RamError;

/// A `NorFlash` of `WRITE`-byte words and `ERASE`-byte erase blocks over a
/// [`RamDevice`] with that NOR geometry ([`RamDevice::nor_flash`]):
/// programming only clears bits, a strict fault plan panics on a word
/// programmed twice, and a power cut tears a word or an erase.
///
/// Clones share the device's bytes, as [`RamDevice`] clones do, so a test
/// keeps one (or [`device`](Self::device)) to inspect the flash or change
/// its fault plan while the code under test owns the driver.
///
/// # Power cuts on NOR flash
///
/// A NOR chip has no write cache: a program or erase that returned is on
/// the cells, and one cut short leaves its torn unit there. So the bytes
/// after a power cut are the device's live copy, torn unit included
/// ([`CrashModel::Live`]), not the copy as of a `sync` (`NorFlash` has no
/// sync, so this driver never calls one and the device's durable copy stays
/// as it was built). [`power_cycle`](Self::power_cycle) builds the device
/// after the reboot.
///
/// ```
/// use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
/// use segwal_ram::{FaultPlan, RamNorFlash};
///
/// // 4-byte words, 4 KiB erase blocks; the power goes 6 bytes into the writes.
/// let mut flash = RamNorFlash::<4, 4096>::blank(2 * 4096);
/// flash.device().set_fault_plan(FaultPlan::new(7).power_cut_at_byte(6));
/// flash.write(0, b"abcd")?;
/// assert!(flash.write(4, b"efgh").is_err(), "cut in the second word");
///
/// let mut rebooted = flash.power_cycle();
/// let mut bytes = [0u8; 4];
/// rebooted.read(0, &mut bytes)?;
/// assert_eq!(&bytes, b"abcd", "a program that returned survives");
/// rebooted.write(8, b"ijkl")?; // the power is back on
/// # Ok::<(), segwal_ram::RamNorError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RamNorFlash<const WRITE: usize, const ERASE: usize> {
    device: RamDevice,
}

impl<const WRITE: usize, const ERASE: usize> RamNorFlash<WRITE, ERASE> {
    /// A blank (all `0xFF`) flash of `capacity_bytes`, with no fault plan.
    ///
    /// # Panics
    ///
    /// When `capacity_bytes` is not a whole number of `ERASE` blocks, or
    /// `WRITE` or `ERASE` is not a valid geometry (as for
    /// [`RamDevice::new`]): a bug in the caller.
    pub fn blank(capacity_bytes: u64) -> Self {
        let device = RamDevice::nor_flash(capacity_bytes, size_u32(WRITE), size_u32(ERASE));
        RamNorFlash { device }
    }

    /// The driver over an existing `device`.
    ///
    /// # Panics
    ///
    /// When the device is not a NOR flash of `WRITE`-byte words and
    /// `ERASE`-byte blocks: the driver's sizes would then lie to the code
    /// under test, a bug in the caller.
    pub fn from_device(device: RamDevice) -> Self {
        let geometry = device.geometry();
        assert!(
            geometry.erase_before_write
                && geometry.erased_byte == 0xFF
                && geometry.write_size_bytes == size_u32(WRITE)
                && geometry.erase_size_bytes == size_u32(ERASE),
            "RamNorFlash<{WRITE}, {ERASE}> over a device of another geometry: {geometry:?}"
        );
        RamNorFlash { device }
    }

    /// The device underneath (a handle sharing its bytes): for fault
    /// plans, images, counters and wear.
    pub fn device(&self) -> &RamDevice {
        &self.device
    }

    /// Gives the device back.
    pub fn into_device(self) -> RamDevice {
        self.device
    }

    /// The flash after a power cut and a reboot: every program and erase
    /// that reached the cells, the torn one included (see [Power cuts on
    /// NOR flash](Self#power-cuts-on-nor-flash)), with the power back on,
    /// fresh counters and no fault plan. This driver is unchanged.
    pub fn power_cycle(&self) -> Self {
        RamNorFlash {
            device: self.device.reboot(&CrashModel::Live),
        }
    }
}

/// A size given as a const generic, as the device's `u32`.
fn size_u32(size_bytes: usize) -> u32 {
    u32::try_from(size_bytes).expect("flash word and block sizes fit u32")
}

/// Why a [`RamNorFlash`] call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RamNorError {
    /// The device refused or failed the request (its kind is mapped to a
    /// [`NorFlashErrorKind`]).
    Device(RamError),
    /// An erase of `[from, to)` with `to` before `from`; nothing erased.
    ReversedRange {
        /// Start of the range asked for.
        from: u32,
        /// End of the range asked for.
        to: u32,
    },
}

impl NorFlashError for RamNorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            RamNorError::Device(error) => match error.kind() {
                ErrorKind::OutOfBounds => NorFlashErrorKind::OutOfBounds,
                ErrorKind::Misaligned => NorFlashErrorKind::NotAligned,
                _ => NorFlashErrorKind::Other,
            },
            RamNorError::ReversedRange { .. } => NorFlashErrorKind::OutOfBounds,
        }
    }
}

impl fmt::Display for RamNorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamNorError::Device(error) => write!(f, "RAM NOR flash: {error}"),
            RamNorError::ReversedRange { from, to } => {
                write!(
                    f,
                    "RAM NOR flash: erase of [{from}, {to}) ends before it starts"
                )
            }
        }
    }
}

impl std::error::Error for RamNorError {}

impl<const WRITE: usize, const ERASE: usize> ErrorType for RamNorFlash<WRITE, ERASE> {
    type Error = RamNorError;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for RamNorFlash<WRITE, ERASE> {
    /// Any byte can be read: NOR flash is memory-mapped on most parts.
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.device
            .read(u64::from(offset), bytes)
            .map_err(RamNorError::Device)
    }

    fn capacity(&self) -> usize {
        // The bytes are in memory, so their count fits `usize`.
        usize::try_from(self.device.geometry().capacity_bytes)
            .expect("an in-memory device's size fits usize")
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for RamNorFlash<WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    /// Erases `[from, to)`. A range that ends before it starts erases
    /// nothing and fails as out of bounds, as a checked driver would.
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len_bytes = to
            .checked_sub(from)
            .ok_or(RamNorError::ReversedRange { from, to })?;
        self.device
            .erase(u64::from(from), u64::from(len_bytes))
            .map_err(RamNorError::Device)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.device
            .write(u64::from(offset), &[bytes])
            .map_err(RamNorError::Device)
    }
}

#[cfg(test)]
mod tests {
    use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

    use super::*;
    use crate::FaultPlan;

    type Flash = RamNorFlash<4, 4096>;

    #[test]
    fn misuse_is_a_typed_error_not_a_panic() {
        let mut flash = Flash::blank(2 * 4096);
        let reversed = flash.erase(4096, 0).unwrap_err();
        assert_eq!(reversed, RamNorError::ReversedRange { from: 4096, to: 0 });
        assert_eq!(reversed.kind(), NorFlashErrorKind::OutOfBounds);
        assert_eq!(
            flash.write(2, b"abcd").unwrap_err().kind(),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            flash.read(2 * 4096, &mut [0u8; 1]).unwrap_err().kind(),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(flash.capacity(), 2 * 4096);
    }

    #[test]
    fn programming_clears_bits_and_erase_sets_them() {
        let mut flash = Flash::blank(4096);
        flash.write(0, &[0b1010_1010; 4]).unwrap();
        flash.write(0, &[0b1100_1100; 4]).unwrap();
        let mut bytes = [0u8; 4];
        flash.read(0, &mut bytes).unwrap();
        assert_eq!(bytes, [0b1000_1000; 4], "AND of both programs");
        flash.erase(0, 4096).unwrap();
        flash.read(0, &mut bytes).unwrap();
        assert_eq!(bytes, [0xFF; 4]);
    }

    #[test]
    fn a_power_cycle_keeps_what_reached_the_cells_and_the_torn_word() {
        let mut flash = Flash::blank(4096);
        let plan = FaultPlan::new(1)
            .power_cut_at_byte(6)
            .torn_fill(crate::TornFill::Zero);
        flash.device().set_fault_plan(plan);
        flash.write(0, b"abcd").unwrap();
        assert!(flash.write(4, b"efgh").is_err());
        let mut rebooted = flash.power_cycle();
        let mut bytes = [0u8; 8];
        rebooted.read(0, &mut bytes).unwrap();
        assert_eq!(&bytes[..4], b"abcd");
        assert_eq!(&bytes[4..], [0u8; 4], "the torn word, zero-filled");
        assert!(!rebooted.device().is_power_cut());
    }

    #[test]
    #[should_panic(expected = "another geometry")]
    fn a_device_of_another_geometry_is_refused() {
        let _ = Flash::from_device(RamDevice::nor_flash(4096, 8, 4096));
    }
}
