//! [`SimFlash`]: a NOR flash simulated in RAM, so the example runs on any
//! Cortex-M4 board (or none: it only has to link). Replace it with your
//! HAL's flash driver: anything implementing `embedded_storage`'s
//! `NorFlash` will do (`nrf-hal`'s NVMC, `embassy-stm32`'s `Flash`, ...).

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

/// Bytes per program unit: a 32-bit word, as on most Cortex-M4 parts.
pub const WORD_BYTES: usize = 4;
/// Bytes per erase block: a 4 KiB page, as on an nRF52.
pub const BLOCK_BYTES: usize = 4096;
/// Erase blocks in the simulated part.
pub const BLOCK_COUNT: usize = 4;

/// `BLOCK_COUNT` erase blocks of NOR flash in RAM, with NOR rules: reads
/// of any byte, programs of whole aligned words that can only clear bits,
/// erases of whole aligned blocks back to `0xFF`.
#[derive(Debug)]
pub struct SimFlash {
    bytes: [u8; BLOCK_COUNT * BLOCK_BYTES],
}

impl SimFlash {
    /// A blank part: every byte erased.
    pub const fn new() -> Self {
        SimFlash {
            bytes: [0xFF; BLOCK_COUNT * BLOCK_BYTES],
        }
    }

    /// The bytes `[offset, offset + len)`, if they are on the part and
    /// `offset` and `len` are multiples of `unit`.
    fn range(
        &mut self,
        offset: u32,
        len: usize,
        unit: usize,
    ) -> Result<&mut [u8], NorFlashErrorKind> {
        // u32 to usize is lossless on a 32-bit Cortex-M (and on hosts).
        let start = offset as usize;
        if !start.is_multiple_of(unit) || !len.is_multiple_of(unit) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        let end = start
            .checked_add(len)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        self.bytes
            .get_mut(start..end)
            .ok_or(NorFlashErrorKind::OutOfBounds)
    }
}

impl ErrorType for SimFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        bytes.copy_from_slice(self.range(offset, bytes.len(), 1)?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for SimFlash {
    const WRITE_SIZE: usize = WORD_BYTES;
    const ERASE_SIZE: usize = BLOCK_BYTES;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to.checked_sub(from).ok_or(NorFlashErrorKind::OutOfBounds)?;
        self.range(from, len as usize, BLOCK_BYTES)?.fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let cells = self.range(offset, bytes.len(), WORD_BYTES)?;
        // Programming only clears bits: a word written twice without an
        // erase holds the AND of both, as on the real part.
        for (cell, byte) in cells.iter_mut().zip(bytes) {
            *cell &= byte;
        }
        Ok(())
    }
}
