//! [`NorFlashDevice`]: a region of any `embedded-storage` NOR flash as a
//! segwal [`BlockDevice`].
//!
//! Offsets are relative to the region's start. The geometry is the flash's
//! own (`READ_SIZE`, `WRITE_SIZE`, `ERASE_SIZE`), erased to `0xFF`, with
//! `erase_before_write`: the log then never asks for a word to be programmed
//! twice, and this adapter never programs one twice either, so it works on
//! flash with ECC words (STM32, nRF) that forbid it, not only on
//! `MultiwriteNorFlash`.
//!
//! # Power loss
//!
//! NOR programs and erases are durable when the driver returns, so `sync`
//! is a no-op. A cut during `write` leaves the words before it programmed,
//! one word torn (any bits cleared) and the rest erased; a cut during
//! `erase` leaves any mix of erased, old and random bytes in the blocks it
//! covered. Nothing outside the request changes.

use embedded_storage::nor_flash::NorFlash;
use segwal::{BlockDevice, ErrorType, Geometry};

use crate::error::{FlashConfigError, FlashError};

/// The largest flash word (`WRITE_SIZE`) supported: the stack buffer that
/// stitches a word out of several write pieces is this big.
pub const WORD_MAX_BYTES: usize = 256;

/// A segwal header is read whole; a `READ_SIZE` above it cannot read one.
const READ_SIZE_MAX_BYTES: usize = segwal::format::SEGMENT_HEADER_LEN;

/// The flash's geometry, checked: the sizes as `u32`.
pub(crate) fn flash_geometry<F: NorFlash>() -> Result<Geometry, FlashConfigError> {
    let (read, write, erase) = (F::READ_SIZE, F::WRITE_SIZE, F::ERASE_SIZE);
    let nested = read.is_power_of_two()
        && write.is_power_of_two()
        && erase.is_power_of_two()
        && read <= write
        && write <= erase
        && read <= READ_SIZE_MAX_BYTES;
    if !nested {
        return Err(FlashConfigError::Geometry);
    }
    let as_u32 = |size: usize| u32::try_from(size).map_err(|_| FlashConfigError::Geometry);
    let write_size_bytes = as_u32(write)?;
    if write > WORD_MAX_BYTES {
        return Err(FlashConfigError::WordTooLarge { write_size_bytes });
    }
    Ok(Geometry {
        read_size_bytes: as_u32(read)?,
        write_size_bytes,
        erase_size_bytes: as_u32(erase)?,
        erased_byte: 0xFF,
        erase_before_write: true,
        capacity_bytes: 0,
    })
}

/// A region `[region_start, region_start + region_len_bytes)` of a NOR
/// flash, as a [`BlockDevice`] whose offset 0 is `region_start`.
///
/// # Example
///
/// ```
/// # use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
/// # struct Chip([u8; 16384]);
/// # impl ErrorType for Chip { type Error = NorFlashErrorKind; }
/// # impl ReadNorFlash for Chip {
/// #     const READ_SIZE: usize = 1;
/// #     fn read(&mut self, o: u32, b: &mut [u8]) -> Result<(), Self::Error> {
/// #         b.copy_from_slice(&self.0[o as usize..o as usize + b.len()]); Ok(())
/// #     }
/// #     fn capacity(&self) -> usize { self.0.len() }
/// # }
/// # impl NorFlash for Chip {
/// #     const WRITE_SIZE: usize = 4;
/// #     const ERASE_SIZE: usize = 4096;
/// #     fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
/// #         self.0[from as usize..to as usize].fill(0xFF); Ok(())
/// #     }
/// #     fn write(&mut self, o: u32, b: &[u8]) -> Result<(), Self::Error> {
/// #         for (d, s) in self.0[o as usize..].iter_mut().zip(b) { *d &= *s; } Ok(())
/// #     }
/// # }
/// use segwal::BlockDevice;
/// use segwal_flash::NorFlashDevice;
///
/// // The second and third erase blocks of the chip.
/// let mut device = NorFlashDevice::new(Chip([0xFF; 16384]), 4096, 8192).unwrap();
/// assert_eq!(device.geometry().capacity_bytes, 8192);
/// device.erase(0, 4096)?;
/// // Pieces need not be word-aligned, only their total.
/// device.write(0, &[b"hel", b"lo, w", b"orld"])?;
/// let mut buf = [0u8; 12];
/// device.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello, world");
/// # Ok::<(), segwal_flash::FlashError<NorFlashErrorKind>>(())
/// ```
#[derive(Debug)]
pub struct NorFlashDevice<F> {
    flash: F,
    region_start: u32,
    region_len_bytes: u32,
}

impl<F: NorFlash> NorFlashDevice<F> {
    /// The region of `flash` starting at `region_start`, `region_len_bytes`
    /// long.
    ///
    /// # Errors
    ///
    /// [`FlashConfigError::Geometry`] or [`FlashConfigError::WordTooLarge`]
    /// for a flash this adapter cannot drive; [`FlashConfigError::Region`]
    /// for a region that is empty, not on erase-block boundaries or not
    /// inside the flash.
    pub fn new(
        flash: F,
        region_start: u32,
        region_len_bytes: u32,
    ) -> Result<Self, FlashConfigError> {
        let erase = flash_geometry::<F>()?.erase_size_bytes;
        let end = region_start
            .checked_add(region_len_bytes)
            .ok_or(FlashConfigError::Region)?;
        let fits = usize::try_from(end).is_ok_and(|end| end <= flash.capacity());
        if region_len_bytes == 0
            || !region_start.is_multiple_of(erase)
            || !region_len_bytes.is_multiple_of(erase)
            || !fits
        {
            return Err(FlashConfigError::Region);
        }
        Ok(NorFlashDevice {
            flash,
            region_start,
            region_len_bytes,
        })
    }

    /// The flash driver.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash driver, for what the log does not do itself.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash driver back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Where the region starts on the flash.
    pub fn region_start(&self) -> u32 {
        self.region_start
    }

    /// The region's length in bytes.
    pub fn region_len_bytes(&self) -> u32 {
        self.region_len_bytes
    }

    /// The absolute flash offset of `[offset, offset + len_bytes)`, checked
    /// against the region and `granularity_bytes`.
    fn absolute(
        &self,
        offset: u64,
        len_bytes: u64,
        granularity_bytes: u32,
    ) -> Result<u32, FlashError<F::Error>> {
        segwal::check_range(&self.geometry(), offset, len_bytes, granularity_bytes).map_err(
            |kind| match kind {
                segwal::ErrorKind::Misaligned => FlashError::Misaligned,
                _ => FlashError::OutOfBounds,
            },
        )?;
        // Below `region_len_bytes`, a u32, once the range check passed.
        let offset = u32::try_from(offset).map_err(|_| FlashError::OutOfBounds)?;
        Ok(self.region_start + offset)
    }

    /// Programs whole words at `at` (absolute) from `bytes`, a multiple of
    /// the word size long, and returns the offset after them.
    // Out of line: it has three callers; 32 bytes less in firmware.
    #[inline(never)]
    fn program(&mut self, at: u32, bytes: &[u8]) -> Result<u32, FlashError<F::Error>> {
        assert!(
            bytes.len().is_multiple_of(F::WRITE_SIZE),
            "programming part of a word"
        );
        if bytes.is_empty() {
            return Ok(at);
        }
        self.flash.write(at, bytes).map_err(FlashError::Flash)?;
        // Within the region (range checked by the caller), so within u32.
        let len = u32::try_from(bytes.len()).map_err(|_| FlashError::OutOfBounds)?;
        Ok(at + len)
    }
}

impl<F: NorFlash> ErrorType for NorFlashDevice<F> {
    type Error = FlashError<F::Error>;
}

impl<F: NorFlash> BlockDevice for NorFlashDevice<F> {
    // Built from the flash type's constants at each call, not kept in a
    // field: the compiler then knows at every caller that this device
    // erases before writing, and drops what only other devices need (the
    // clean-close marker search, zeroing torn tails): 1.9 KiB of
    // Thumb code in firmware (examples/firmware/FIGURES.md). `new` checked
    // the constants, so the fallback is never taken.
    fn geometry(&self) -> Geometry {
        let units = flash_geometry::<F>().unwrap_or(Geometry::byte_addressable(0));
        Geometry {
            capacity_bytes: u64::from(self.region_len_bytes),
            ..units
        }
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let len = buf.len() as u64;
        let at = self.absolute(offset, len, self.geometry().read_size_bytes)?;
        if buf.is_empty() {
            return Ok(());
        }
        self.flash.read(at, buf).map_err(FlashError::Flash)
    }

    /// Programs every word of the range exactly once, in address order.
    /// Small pieces (a record header, a short payload, padding) are
    /// gathered in a [`WORD_MAX_BYTES`] buffer on the stack and programmed
    /// together; pieces of at least that size go to the flash straight from
    /// the caller's memory. A word that straddles two pieces is always
    /// assembled in the buffer.
    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), Self::Error> {
        let word = F::WRITE_SIZE;
        let total: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        let mut at = self.absolute(offset, total, self.geometry().write_size_bytes)?;
        // A multiple of any word size this adapter accepts.
        let mut gather = [0xFFu8; WORD_MAX_BYTES];
        let mut gathered = 0usize;
        for piece in pieces {
            let mut rest: &[u8] = piece;
            while !rest.is_empty() {
                if gathered == 0 && rest.len() >= WORD_MAX_BYTES {
                    let whole = rest.len() - rest.len() % word;
                    at = self.program(at, &rest[..whole])?;
                    rest = &rest[whole..];
                    continue;
                }
                let take = (WORD_MAX_BYTES - gathered).min(rest.len());
                gather[gathered..gathered + take].copy_from_slice(&rest[..take]);
                gathered += take;
                rest = &rest[take..];
                if gathered == WORD_MAX_BYTES {
                    at = self.program(at, &gather)?;
                    gathered = 0;
                }
            }
        }
        // The total is a multiple of the word (checked above), and so is
        // everything programmed so far: what is left is whole words.
        assert!(
            gathered.is_multiple_of(word),
            "a whole-word write left a partial word"
        );
        self.program(at, &gather[..gathered])?;
        Ok(())
    }

    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), Self::Error> {
        let from = self.absolute(offset, len_bytes, self.geometry().erase_size_bytes)?;
        if len_bytes == 0 {
            return Ok(());
        }
        // Below the region length, a u32, once the range check passed.
        let len = u32::try_from(len_bytes).map_err(|_| FlashError::OutOfBounds)?;
        self.flash
            .erase(from, from + len)
            .map_err(FlashError::Flash)
    }

    /// A no-op: NOR programs and erases are durable when they return.
    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
