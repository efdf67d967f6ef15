//! The errors of the flash backend: one for I/O, one for configuration.

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};
use segwal::{DeviceError, ErrorKind};

/// Why a flash request failed.
///
/// `Flash` carries the driver's own error; the other variants are requests
/// this crate refused before touching the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashError<E> {
    /// The flash driver failed. Its [`NorFlashErrorKind`] maps to
    /// [`ErrorKind`]: `OutOfBounds` and `NotAligned` to the same kinds,
    /// `Other` (a failed program or erase, a timeout) to [`ErrorKind::Io`].
    Flash(E),
    /// The range lies outside the region (or the segment slot).
    OutOfBounds,
    /// The offset or length is not a multiple of the flash's read, write or
    /// erase size.
    Misaligned,
    /// Every slot of the ring holds a segment: checkpoint, or open the log
    /// in [`RingMode::DropOldest`](crate::RingMode::DropOldest).
    NoSpace,
}

impl<E: NorFlashError> DeviceError for FlashError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            FlashError::Flash(error) => match error.kind() {
                NorFlashErrorKind::OutOfBounds => ErrorKind::OutOfBounds,
                NorFlashErrorKind::NotAligned => ErrorKind::Misaligned,
                // A driver's catch-all is a program, erase or bus failure.
                NorFlashErrorKind::Other => ErrorKind::Io,
                _ => ErrorKind::Other,
            },
            FlashError::OutOfBounds => ErrorKind::OutOfBounds,
            FlashError::Misaligned => ErrorKind::Misaligned,
            FlashError::NoSpace => ErrorKind::NoSpace,
        }
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for FlashError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FlashError::Flash(error) => write!(f, "flash driver error: {error:?}"),
            FlashError::OutOfBounds => f.write_str("request outside the flash region"),
            FlashError::Misaligned => f.write_str("request not aligned to the flash geometry"),
            FlashError::NoSpace => f.write_str("every slot of the flash ring is in use"),
        }
    }
}

/// A flash region or ring layout that cannot work, refused at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashConfigError {
    /// `READ_SIZE`, `WRITE_SIZE` and `ERASE_SIZE` are not powers of two
    /// with `READ_SIZE <= WRITE_SIZE <= ERASE_SIZE`, or `READ_SIZE` does
    /// not divide a 64-byte segment header.
    Geometry,
    /// `WRITE_SIZE` is larger than
    /// [`WORD_MAX_BYTES`](crate::WORD_MAX_BYTES), the stack buffer that
    /// stitches words across write pieces.
    WordTooLarge {
        /// The flash's `WRITE_SIZE`.
        write_size_bytes: u32,
    },
    /// The region does not start and end on erase-block boundaries, is
    /// empty, or does not fit in the flash (or in `u32` offsets).
    Region,
    /// A slot is not a non-zero whole number of erase blocks.
    SlotSize,
    /// No slots, or more than [`SLOT_COUNT_MAX`](crate::SLOT_COUNT_MAX).
    SlotCount,
}

impl core::fmt::Display for FlashConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FlashConfigError::Geometry => f.write_str("flash geometry unusable"),
            FlashConfigError::WordTooLarge { write_size_bytes } => write!(
                f,
                "flash word of {write_size_bytes} bytes over the {} supported",
                crate::WORD_MAX_BYTES
            ),
            FlashConfigError::Region => {
                f.write_str("region not aligned to erase blocks or outside the flash")
            }
            FlashConfigError::SlotSize => {
                f.write_str("slot size not a whole number of erase blocks")
            }
            FlashConfigError::SlotCount => f.write_str("slot count zero or too large"),
        }
    }
}
