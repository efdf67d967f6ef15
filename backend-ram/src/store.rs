//! [`RamStore`]: a log's segments in memory, with a power cut that can be
//! set to fall on any operation.
//!
//! Every write, erase, sync, allocation and release counts as one operation
//! against a budget shared by the whole store. When the budget runs out the
//! power is cut: that operation and every later one fail and change nothing.
//! [`RamStore::reboot`] then builds a fresh store from what survived:
//! the durable copy of each segment (every unsynced write lost) or the live
//! copy (every unsynced write kept). Allocations and releases are durable
//! when they return, as `segwal-std` makes them with directory fsyncs.
//!
//! Enumerating crash points is then a loop: run the workload once to count
//! its operations, then for each `n` below that count, run it again with the
//! power cut after `n` operations, reboot, and check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use segwal::{BlockDevice, ErrorKind, ErrorType, Geometry, SegmentId, SegmentStore};

use crate::device::RamDevice;
use crate::error::{Operation, RamError};

/// Counts operations and cuts the power after a set number of them.
#[derive(Debug, Default)]
struct Power {
    done: AtomicU64,
    /// Operations allowed before the cut; `u64::MAX` for no cut.
    limit: AtomicU64,
}

impl Power {
    /// Counts one operation; `false` once the power is off.
    fn take(&self) -> bool {
        let done = self.done.fetch_add(1, Ordering::SeqCst);
        done < self.limit.load(Ordering::SeqCst)
    }
}

/// A segment of a [`RamStore`]: a [`RamDevice`] behind the store's power.
#[derive(Debug, Clone)]
pub struct RamSegment {
    device: RamDevice,
    power: Arc<Power>,
}

impl RamSegment {
    /// The device underneath, for inspecting or damaging its bytes.
    pub fn device(&self) -> &RamDevice {
        &self.device
    }

    fn powered(&self, operation: Operation, offset: u64, len_bytes: u64) -> Result<(), RamError> {
        if self.power.take() {
            Ok(())
        } else {
            Err(RamError::new(ErrorKind::Io, operation, offset, len_bytes))
        }
    }
}

impl ErrorType for RamSegment {
    type Error = RamError;
}

impl BlockDevice for RamSegment {
    fn geometry(&self) -> Geometry {
        self.device.geometry()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), RamError> {
        self.device.read(offset, buf)
    }

    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), RamError> {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        self.powered(Operation::Write, offset, len as u64)?;
        self.device.write(offset, pieces)
    }

    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), RamError> {
        self.powered(Operation::Erase, offset, len_bytes)?;
        self.device.erase(offset, len_bytes)
    }

    fn sync(&mut self) -> Result<(), RamError> {
        self.powered(Operation::Sync, 0, 0)?;
        self.device.sync()
    }
}

/// What survives a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivors {
    /// Only synced bytes: every unsynced write is lost.
    Durable,
    /// Every accepted write, synced or not.
    Live,
}

/// A log's segments in memory, keyed by sequence number.
#[derive(Debug)]
pub struct RamStore {
    segments: BTreeMap<u64, RamSegment>,
    power: Arc<Power>,
    salt_state: u64,
}

impl RamStore {
    /// An empty store whose salts come from `seed`.
    pub fn new(seed: u64) -> Self {
        let power = Power {
            done: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
        };
        RamStore {
            segments: BTreeMap::new(),
            power: Arc::new(power),
            salt_state: seed | 1,
        }
    }

    /// Cuts the power after `operations` more operations (writes, erases,
    /// syncs, allocations, releases).
    pub fn cut_power_after(&self, operations: u64) {
        let done = self.power.done.load(Ordering::SeqCst);
        self.power
            .limit
            .store(done.saturating_add(operations), Ordering::SeqCst);
    }

    /// Operations counted so far.
    pub fn operations(&self) -> u64 {
        self.power.done.load(Ordering::SeqCst)
    }

    /// `true` once the power has been cut.
    pub fn is_power_cut(&self) -> bool {
        self.power.done.load(Ordering::SeqCst) > self.power.limit.load(Ordering::SeqCst)
    }

    /// A fresh store holding what survived, with the power back on. The
    /// salt sequence continues, so a rebooted log never reuses a salt.
    pub fn reboot(&self, survivors: Survivors) -> RamStore {
        let mut rebooted = RamStore::new(self.salt_state);
        for (&id, segment) in &self.segments {
            let device = &segment.device;
            let image = match survivors {
                Survivors::Durable => device.durable_image(),
                Survivors::Live => device.live_image(),
            };
            let device = RamDevice::from_image(device.geometry(), image);
            rebooted.segments.insert(
                id,
                RamSegment {
                    device,
                    power: Arc::clone(&rebooted.power),
                },
            );
        }
        rebooted
    }

    /// The segments, by sequence number.
    pub fn segments(&self) -> &BTreeMap<u64, RamSegment> {
        &self.segments
    }

    fn powered(&self, operation: Operation) -> Result<(), RamError> {
        if self.power.take() {
            Ok(())
        } else {
            Err(RamError::new(ErrorKind::Io, operation, 0, 0))
        }
    }
}

impl ErrorType for RamStore {
    type Error = RamError;
}

impl SegmentStore for RamStore {
    type Device = RamSegment;

    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), RamError> {
        self.segments.keys().for_each(|&id| visit(id));
        Ok(())
    }

    fn device(&mut self, id: SegmentId) -> Result<(&mut RamSegment, u64), RamError> {
        self.segments
            .get_mut(&id)
            .map(|segment| (segment, 0))
            .ok_or(RamError::new(ErrorKind::Other, Operation::Read, 0, 0))
    }

    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, RamError> {
        self.powered(Operation::Write)?;
        let device = RamDevice::byte_addressable(u64::from(size_bytes));
        let segment = RamSegment {
            device,
            power: Arc::clone(&self.power),
        };
        self.segments.insert(sequence, segment);
        Ok(sequence)
    }

    fn release(&mut self, id: SegmentId) -> Result<(), RamError> {
        self.powered(Operation::Erase)?;
        self.segments.remove(&id);
        Ok(())
    }

    fn fresh_salt(&mut self) -> u64 {
        // xorshift64: deterministic from the seed, never repeating within
        // its period.
        self.salt_state ^= self.salt_state << 13;
        self.salt_state ^= self.salt_state >> 7;
        self.salt_state ^= self.salt_state << 17;
        self.salt_state
    }
}
