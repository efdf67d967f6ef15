//! The storage contract every backend implements.
//!
//! One trait, [`BlockDevice`], covers three kinds of storage:
//!
//! | kind            | write unit          | erase                 | erased byte | sync        |
//! |-----------------|---------------------|-----------------------|-------------|-------------|
//! | POSIX file      | 1 byte              | not needed            | `0x00`      | `fdatasync` |
//! | NOR flash       | `WRITE_SIZE` word   | required, whole block | `0xFF`      | no-op       |
//! | SD / NAND block | 512-byte sector     | not needed            | `0x00`      | cache flush |
//!
//! The layout follows embedded-hal: an [`ErrorType`] carries the error, every
//! error reports an [`ErrorKind`] a caller can act on, and the geometry is
//! plain data the log reads once.
//!
//! # Power-loss contract (for implementers)
//!
//! - An interrupted `write` or `erase` **must** damage only the range it was
//!   writing or erasing; bytes outside it keep their last synced contents.
//! - Writes that were not followed by a successful `sync` may be lost, in
//!   whole or in part, and in any order.
//! - After a failed `sync`, the contents of everything written since the
//!   last successful `sync` are unknown, even if a later `sync` succeeds.
//!
//! # What the log promises in return
//!
//! The log never reads, modifies and writes back a device unit behind the
//! caller's back: every `write` it issues starts on a `write_size_bytes`
//! boundary and covers whole write units, so a backend never has to merge
//! old and new bytes.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The range lies outside the device's capacity.
    OutOfBounds,
    /// The offset or length is not a multiple of the required granularity.
    Misaligned,
    /// The device (or file system) has no room left (`ENOSPC`, `EFBIG`).
    NoSpace,
    /// A read, write or erase failed (`EIO` and the like).
    Io,
    /// `sync` failed: everything written since the last good sync is unknown.
    SyncFailed,
    /// Anything else.
    Other,
}

impl core::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            ErrorKind::OutOfBounds => "out of bounds",
            ErrorKind::Misaligned => "misaligned",
            ErrorKind::NoSpace => "no space left on device",
            ErrorKind::Io => "I/O error",
            ErrorKind::SyncFailed => "sync failed",
            ErrorKind::Other => "other device error",
        };
        f.write_str(text)
    }
}

/// A device error: anything `Debug` that can say which [`ErrorKind`] it is.
pub trait Error: core::fmt::Debug {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

/// Carries the error type of a device.
pub trait ErrorType {
    /// The device's error.
    type Error: Error;
}

impl<T: ErrorType + ?Sized> ErrorType for &mut T {
    type Error = T::Error;
}

/// The shape of a device, read once by the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Reads must start and end on multiples of this (1 for files).
    pub read_size_bytes: u32,
    /// Writes must start and end on multiples of this (1 for files, the
    /// flash word for NOR, 512 for SD cards). A power of two.
    pub write_size_bytes: u32,
    /// Erases cover whole blocks of this size. A power of two, a multiple of
    /// `write_size_bytes`.
    pub erase_size_bytes: u32,
    /// The value every byte holds after an erase (`0x00` for files, `0xFF`
    /// for NOR flash).
    pub erased_byte: u8,
    /// `true` when a unit must be erased before it is written again (NOR
    /// flash: programming only turns bits from 1 to 0).
    pub erase_before_write: bool,
    /// Total size of the device in bytes.
    pub capacity_bytes: u64,
}

impl Geometry {
    /// The geometry of a byte-addressable file or RAM buffer of
    /// `capacity_bytes`, erased to zero.
    pub const fn byte_addressable(capacity_bytes: u64) -> Self {
        Geometry {
            read_size_bytes: 1,
            write_size_bytes: 1,
            erase_size_bytes: 1,
            erased_byte: 0x00,
            erase_before_write: false,
            capacity_bytes,
        }
    }

    /// Checks the invariants the log relies on: granularities are non-zero
    /// powers of two and nest (`read | write | erase`), and the capacity is
    /// a whole number of erase blocks.
    pub const fn is_valid(&self) -> bool {
        self.read_size_bytes.is_power_of_two()
            && self.write_size_bytes.is_power_of_two()
            && self.erase_size_bytes.is_power_of_two()
            && self.write_size_bytes >= self.read_size_bytes
            && self.erase_size_bytes >= self.write_size_bytes
            && is_multiple_of_u32(self.capacity_bytes, self.erase_size_bytes)
    }
}

/// Positional storage: files, flash and block devices alike.
///
/// Offsets are bytes from the start of the device. See the module
/// documentation for the power-loss contract every implementation follows.
pub trait BlockDevice: ErrorType {
    /// The device's geometry. It must not change while the device is open.
    fn geometry(&self) -> Geometry;

    /// Reads `buf.len()` bytes starting at `offset`.
    ///
    /// `offset` and `buf.len()` are multiples of `read_size_bytes`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutOfBounds`] past the capacity, [`ErrorKind::Misaligned`]
    /// for a misaligned range, [`ErrorKind::Io`] when the medium fails.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Writes the concatenation of `pieces` starting at `offset`, as one
    /// operation where the device allows it (`pwritev` for files).
    ///
    /// `offset` and the total length are multiples of `write_size_bytes`;
    /// the individual pieces need not be. On a device with
    /// `erase_before_write`, the log only writes ranges that are erased and
    /// not yet programmed since. A power cut in the middle
    /// leaves any part of the range written, unwritten or damaged, and
    /// nothing outside it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutOfBounds`], [`ErrorKind::Misaligned`],
    /// [`ErrorKind::NoSpace`] when the medium is full, [`ErrorKind::Io`].
    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), Self::Error>;

    /// Returns `len_bytes` starting at `offset` to `erased_byte`.
    ///
    /// `offset` and `len_bytes` are multiples of `erase_size_bytes`. A power
    /// cut in the middle leaves any part of the range erased, old or
    /// damaged.
    ///
    /// # Errors
    ///
    /// As for [`BlockDevice::write`].
    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), Self::Error>;

    /// Makes every completed write durable (`fdatasync`; a no-op on NOR
    /// flash, whose writes are durable when they return).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::SyncFailed`]: the contents of everything written since
    /// the last successful sync are then unknown.
    fn sync(&mut self) -> Result<(), Self::Error>;
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn geometry(&self) -> Geometry {
        T::geometry(self)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        T::read(self, offset, buf)
    }
    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), Self::Error> {
        T::write(self, offset, pieces)
    }
    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), Self::Error> {
        T::erase(self, offset, len_bytes)
    }
    fn sync(&mut self) -> Result<(), Self::Error> {
        T::sync(self)
    }
}

/// Checks a request against a geometry: the shared bounds and alignment
/// rules every backend applies before touching its medium.
///
/// Returns the kind of the first rule broken, if any.
// Inline on hosts, where every device I/O of every backend calls it across
// the crate boundary; left to the compiler on bare metal, for size.
#[cfg_attr(not(target_os = "none"), inline)]
pub fn check_range(
    geometry: &Geometry,
    offset: u64,
    len_bytes: u64,
    granularity_bytes: u32,
) -> Result<(), ErrorKind> {
    let end = offset
        .checked_add(len_bytes)
        .ok_or(ErrorKind::OutOfBounds)?;
    if end > geometry.capacity_bytes {
        return Err(ErrorKind::OutOfBounds);
    }
    if !is_multiple_of_u32(offset, granularity_bytes)
        || !is_multiple_of_u32(len_bytes, granularity_bytes)
    {
        return Err(ErrorKind::Misaligned);
    }
    Ok(())
}

/// `value.is_multiple_of(u64::from(divisor))` without a `u64` division.
///
/// Why: a 32-bit core has no 64-bit divide, and one `u64 %` links
/// compiler-builtins' `u64` division (about 0.9 KiB of Thumb code) into
/// firmware. Device units are powers of two (checked by
/// [`Geometry::is_valid`]), which take a mask; any other divisor (a
/// backend may pass what it likes to [`check_range`]) takes one `u32`
/// division and a 32-step shift-and-subtract, with the same answer.
// Left to the compiler on bare metal: with a constant divisor (a flash's
// units) it folds to a mask test. Inline on hosts: every device I/O calls
// it, across the crate boundary.
#[cfg_attr(not(target_os = "none"), inline)]
pub(crate) const fn is_multiple_of_u32(value: u64, divisor: u32) -> bool {
    if divisor == 0 {
        // As `u64::is_multiple_of`: only zero is a multiple of zero.
        return value == 0;
    }
    rem_u64_by_u32(value, divisor) == 0
}

/// `value % u64::from(divisor)` (`divisor` not zero) without a `u64`
/// division: see [`is_multiple_of_u32`].
// Both casts keep what they must: the mask's low bits, and a remainder
// below a `u32` divisor.
#[allow(clippy::cast_possible_truncation)]
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) const fn rem_u64_by_u32(value: u64, divisor: u32) -> u32 {
    assert!(divisor != 0, "remainder by zero");
    if divisor.is_power_of_two() {
        return (value as u32) & (divisor - 1);
    }
    rem_u64_by_odd_u32(value, divisor)
}

/// [`rem_u64_by_u32`] for a divisor that is not a power of two: out of
/// line on hosts, so that the mask of the common case inlines at every
/// device I/O (left to the compiler on bare metal, for size).
#[allow(clippy::cast_possible_truncation)]
#[cfg_attr(not(target_os = "none"), inline(never))]
const fn rem_u64_by_odd_u32(value: u64, divisor: u32) -> u32 {
    let divisor_wide = divisor as u64;
    // The high word's remainder by the hardware's `u32` divide, then the
    // low word's 32 bits one at a time: `rem < divisor` throughout, so
    // `rem << 1 | bit` fits in 33 bits.
    let mut rem = ((value >> 32) as u32 % divisor) as u64;
    let mut bit = 32;
    while bit > 0 {
        bit -= 1;
        rem = (rem << 1) | ((value >> bit) & 1);
        if rem >= divisor_wide {
            rem -= divisor_wide;
        }
    }
    rem as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_range_rejects_overflow_and_misalignment() {
        let geometry = Geometry {
            read_size_bytes: 1,
            write_size_bytes: 4,
            erase_size_bytes: 4096,
            erased_byte: 0xFF,
            erase_before_write: true,
            capacity_bytes: 8192,
        };
        assert!(geometry.is_valid());
        assert!(
            !Geometry {
                capacity_bytes: 8000,
                ..geometry
            }
            .is_valid()
        );
        assert_eq!(check_range(&geometry, 0, 8192, 4), Ok(()));
        assert_eq!(
            check_range(&geometry, 4, 8192, 4),
            Err(ErrorKind::OutOfBounds)
        );
        assert_eq!(
            check_range(&geometry, u64::MAX, 2, 1),
            Err(ErrorKind::OutOfBounds)
        );
        assert_eq!(check_range(&geometry, 2, 4, 4), Err(ErrorKind::Misaligned));
        assert_eq!(check_range(&geometry, 0, 6, 4), Err(ErrorKind::Misaligned));
    }

    #[test]
    fn remainders_without_u64_division_match_the_operator() {
        let values = [
            0,
            1,
            2,
            3,
            4095,
            4096,
            4097,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            0x1234_5678_9ABC_DEF0,
            u64::MAX - 1,
            u64::MAX,
        ];
        let divisors = [
            1,
            2,
            3,
            4,
            7,
            512,
            4096,
            4097,
            1 << 31,
            u32::MAX - 1,
            u32::MAX,
        ];
        for value in values {
            for divisor in divisors {
                let expected = value % u64::from(divisor);
                assert_eq!(u64::from(rem_u64_by_u32(value, divisor)), expected);
                assert_eq!(is_multiple_of_u32(value, divisor), expected == 0);
            }
            assert_eq!(is_multiple_of_u32(value, 0), value.is_multiple_of(0));
        }
    }

    #[test]
    fn geometry_validity() {
        assert!(Geometry::byte_addressable(10).is_valid());
        let mut bad = Geometry::byte_addressable(10);
        bad.write_size_bytes = 3;
        assert!(!bad.is_valid());
        bad.write_size_bytes = 4;
        assert!(!bad.is_valid(), "erase smaller than write");
    }
}
