//! A minimal in-memory device for the core's own unit tests (the full
//! fault-injecting device lives in `segwal-ram`, which depends on this crate).

use std::vec;
use std::vec::Vec;

use crate::device::{BlockDevice, ErrorKind, ErrorType, Geometry, check_range};

/// Bytes in a `Vec`; NOR rules (AND-programming) when the geometry says so.
#[derive(Debug, Clone)]
pub(crate) struct MemDevice {
    pub(crate) geometry: Geometry,
    pub(crate) bytes: Vec<u8>,
    /// Fail every write after this many more (for poisoning tests).
    pub(crate) writes_before_failure: Option<u32>,
    /// Bytes read so far (for tests of how much a walk reads).
    pub(crate) bytes_read: u64,
}

impl MemDevice {
    pub(crate) fn file_like(capacity_bytes: u64) -> Self {
        Self::new(Geometry::byte_addressable(capacity_bytes))
    }

    pub(crate) fn nor(capacity_bytes: u64, write_size_bytes: u32, erase_size_bytes: u32) -> Self {
        Self::new(Geometry {
            read_size_bytes: 1,
            write_size_bytes,
            erase_size_bytes,
            erased_byte: 0xFF,
            erase_before_write: true,
            capacity_bytes,
        })
    }

    fn new(geometry: Geometry) -> Self {
        let len = usize::try_from(geometry.capacity_bytes).unwrap_or(0);
        MemDevice {
            geometry,
            bytes: vec![geometry.erased_byte; len],
            writes_before_failure: None,
            bytes_read: 0,
        }
    }
}

impl ErrorType for MemDevice {
    type Error = ErrorKind;
}

impl BlockDevice for MemDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
        check_range(
            &self.geometry,
            offset,
            buf.len() as u64,
            self.geometry.read_size_bytes,
        )?;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
        self.bytes_read += buf.len() as u64;
        Ok(())
    }

    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), ErrorKind> {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        check_range(
            &self.geometry,
            offset,
            len as u64,
            self.geometry.write_size_bytes,
        )?;
        if let Some(left) = self.writes_before_failure.as_mut() {
            if *left == 0 {
                return Err(ErrorKind::Io);
            }
            *left -= 1;
        }
        let mut at = usize::try_from(offset).unwrap_or(usize::MAX);
        for piece in pieces {
            for (stored, new) in self.bytes[at..at + piece.len()]
                .iter_mut()
                .zip(piece.iter())
            {
                *stored = if self.geometry.erase_before_write {
                    *stored & new
                } else {
                    *new
                };
            }
            at += piece.len();
        }
        Ok(())
    }

    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), ErrorKind> {
        check_range(
            &self.geometry,
            offset,
            len_bytes,
            self.geometry.erase_size_bytes,
        )?;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        let len = usize::try_from(len_bytes).unwrap_or(usize::MAX);
        self.bytes[at..at + len].fill(self.geometry.erased_byte);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// A set of in-memory segments: the minimal [`SegmentStore`] for the core's
/// WAL tests. Creation and removal are durable at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemStore {
    pub(crate) segments: std::collections::BTreeMap<u64, MemDevice>,
    pub(crate) salt: u64,
    /// Every `prepare` hint received, in order.
    pub(crate) prepare_hints: Vec<(u64, u32)>,
    /// New segments are NOR flash (4-byte words, one erase block each),
    /// not byte-addressable files.
    pub(crate) flash: bool,
}

impl ErrorType for MemStore {
    type Error = ErrorKind;
}

impl crate::store::SegmentStore for MemStore {
    type Device = MemDevice;

    fn segment_ids(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), ErrorKind> {
        self.segments.keys().for_each(|&id| visit(id));
        Ok(())
    }

    fn device(&mut self, id: u64) -> Result<(&mut MemDevice, u64), ErrorKind> {
        self.segments
            .get_mut(&id)
            .map(|d| (d, 0))
            .ok_or(ErrorKind::Other)
    }

    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<u64, ErrorKind> {
        let size_bytes = u64::from(size_bytes);
        let device = if self.flash {
            MemDevice::nor(size_bytes, 4, u32::try_from(size_bytes).unwrap_or(u32::MAX))
        } else {
            MemDevice::file_like(size_bytes)
        };
        self.segments.insert(sequence, device);
        Ok(sequence)
    }

    fn release(&mut self, id: u64) -> Result<(), ErrorKind> {
        self.segments.remove(&id);
        Ok(())
    }

    fn prepare(&mut self, sequence: u64, size_bytes: u32) {
        self.prepare_hints.push((sequence, size_bytes));
    }

    fn fresh_salt(&mut self) -> u64 {
        self.salt += 1;
        self.salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}
