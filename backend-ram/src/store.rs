//! [`RamStore`]: a log's segments in memory, with one fault plan (power cuts
//! included) shared by every segment.
//!
//! Every write, erase, sync, allocation and release counts as one operation
//! against the store's [`FaultPlan`]; a power cut by operation count or by
//! byte falls on the store as a whole, and after it that operation and
//! every later one fail. [`RamStore::reboot_with`] then builds a fresh store
//! from what survived under a [`CrashModel`]: any subset of each segment's
//! unsynced operations, in any order. Allocations and releases are durable
//! when they return, as `segwal-std` makes them with directory fsyncs.
//!
//! Enumerating crash points is then a loop: run the workload once to count
//! its operations (or bytes), then for each `n` below that count, run it
//! again with the power cut after `n`, reboot under each crash model of
//! interest, and check. A second plan on the rebooted store cuts the power
//! again during recovery.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use segwal::{BlockDevice, ErrorType, Geometry, SegmentId, SegmentStore};

use crate::crash::{CrashModel, Survivors, survivors};
use crate::device::RamDevice;
use crate::error::{Operation, RamError};
use crate::fault::FaultPlan;
use crate::injector::{self, Injector};
use crate::stats::FaultStats;

/// A segment of a [`RamStore`]: a [`RamDevice`] sharing the store's fault
/// plan.
#[derive(Debug, Clone)]
pub struct RamSegment {
    device: RamDevice,
}

impl RamSegment {
    /// The device underneath, for inspecting or damaging its bytes.
    pub fn device(&self) -> &RamDevice {
        &self.device
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
        self.device.write(offset, pieces)
    }

    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), RamError> {
        self.device.erase(offset, len_bytes)
    }

    fn sync(&mut self) -> Result<(), RamError> {
        self.device.sync()
    }
}

/// A log's segments in memory, keyed by sequence number.
///
/// # Example
///
/// The core [`segwal::Wal`] over a `RamStore`, through a power cut: the
/// acknowledged record survives, the one whose sync the cut refused does
/// not.
///
/// ```
/// use segwal::{Lsn, Wal, WalConfig};
/// use segwal_ram::{RamStore, Survivors};
///
/// let config = WalConfig {
///     segment_size_bytes: 64 * 1024,
///     ..WalConfig::default() // Durability::Sync: synced before `Ok`
/// };
/// type RamWal = Wal<RamStore, Vec<u8>, 16>;
/// let mut wal = RamWal::open(RamStore::new(7), config, vec![0; 64 * 1024])?;
/// let acknowledged = wal.append(b"acknowledged")?;
///
/// // The power goes after one more operation: the next record's write
/// // lands in the live copy, its sync is refused, the append fails.
/// wal.store_mut().cut_power_after(1);
/// assert!(wal.append(b"never acknowledged").is_err());
///
/// // Reboot with only the synced bytes, and open the log again.
/// let store = wal.store_mut().reboot(Survivors::Durable);
/// let mut wal = RamWal::open(store, config, vec![0; 64 * 1024])?;
/// assert_eq!(&*wal.read(acknowledged)?, b"acknowledged");
/// assert_eq!(wal.next_lsn(), Lsn(2), "the unacknowledged record is gone");
/// # Ok::<(), segwal::Error<segwal_ram::RamError>>(())
/// ```
#[derive(Debug)]
pub struct RamStore {
    segments: BTreeMap<u64, RamSegment>,
    faults: Arc<Mutex<Injector>>,
    salt_state: u64,
}

impl RamStore {
    /// An empty store whose salts come from `seed`, with no faults planned.
    pub fn new(seed: u64) -> Self {
        RamStore {
            segments: BTreeMap::new(),
            faults: Arc::new(Mutex::new(Injector::new(FaultPlan::new(seed)))),
            salt_state: seed | 1,
        }
    }

    /// An empty store whose salts come from `seed`, injecting the faults of
    /// `plan` into every segment it will hold.
    pub fn with_faults(seed: u64, plan: FaultPlan) -> Self {
        let store = Self::new(seed);
        store.set_fault_plan(plan);
        store
    }

    fn faults(&self) -> MutexGuard<'_, Injector> {
        injector::lock(&self.faults)
    }

    /// Injects the faults of `plan` into every segment from now on,
    /// replacing any earlier plan: the power comes back on, and the counts
    /// the plan refers to and [`RamStore::fault_stats`] start from zero.
    /// [`RamStore::operations`] keeps counting.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.faults().install(plan);
    }

    /// The faults injected since the plan was attached, across all
    /// segments.
    pub fn fault_stats(&self) -> FaultStats {
        self.faults().stats()
    }

    /// Turns the power on and cuts it after `operations` more operations
    /// (writes, erases, syncs, allocations, releases).
    pub fn cut_power_after(&self, operations: u64) {
        self.faults().cut_power_after(operations);
    }

    /// Operations counted so far, refused ones included.
    pub fn operations(&self) -> u64 {
        self.faults().operations()
    }

    /// `true` once the power has been cut.
    pub fn is_power_cut(&self) -> bool {
        self.faults().is_power_cut()
    }

    /// Pending (unsynced) operations across all segments: the operations a
    /// [`CrashModel`] chooses from, numbered segment by segment in sequence
    /// order, oldest first within each.
    pub fn pending_writes(&self) -> usize {
        self.segments
            .values()
            .map(|segment| segment.device.pending_writes())
            .sum()
    }

    /// A fresh store holding what survived, with the power back on: every
    /// segment's durable copy ([`Survivors::Durable`]) or its durable copy
    /// with every pending operation replayed ([`Survivors::Live`]). The
    /// salt sequence continues, so a rebooted log never reuses a salt.
    pub fn reboot(&self, survivors: Survivors) -> RamStore {
        self.reboot_with(&CrashModel::from(survivors))
    }

    /// A fresh store holding what a power cut leaves under `model`, with
    /// the power back on and no fault plan; give it one with
    /// [`RamStore::set_fault_plan`] to cut the power again during recovery.
    /// The salt sequence continues.
    ///
    /// # Panics
    ///
    /// On a [`CrashModel::Exactly`] naming an operation that is not pending,
    /// or one twice.
    ///
    /// # Example
    ///
    /// ```
    /// use segwal::{BlockDevice, SegmentStore};
    /// use segwal_ram::{CrashModel, RamStore};
    ///
    /// let mut store = RamStore::new(1);
    /// let id = store.allocate(0, 64)?;
    /// let (segment, _) = store.device(id)?;
    /// segment.write(0, &[b"first"])?;
    /// segment.write(8, &[b"second"])?;
    ///
    /// // Two unsynced writes: four crash states.
    /// assert_eq!(store.pending_writes(), 2);
    /// for model in CrashModel::all_subsets(store.pending_writes()) {
    ///     let mut rebooted = store.reboot_with(&model);
    ///     let (segment, _) = rebooted.device(id)?;
    ///     let mut buf = [0u8; 5];
    ///     segment.read(0, &mut buf)?;
    ///     assert!(&buf == b"first" || buf == [0; 5], "{model:?}");
    /// }
    /// # Ok::<(), segwal_ram::RamError>(())
    /// ```
    pub fn reboot_with(&self, model: &CrashModel) -> RamStore {
        let counts: Vec<usize> = self
            .segments
            .values()
            .map(|segment| segment.device.pending_writes())
            .collect();
        let lists = survivors(model, &counts);
        let mut rebooted = RamStore::new(self.salt_state);
        for ((&id, segment), kept) in self.segments.iter().zip(&lists) {
            let geometry = segment.device.geometry();
            let image = segment
                .device
                .crash_image(&CrashModel::Exactly(kept.clone()));
            let device = RamDevice::from_image(geometry, image);
            device.share_faults(Arc::clone(&rebooted.faults));
            rebooted.segments.insert(id, RamSegment { device });
        }
        rebooted
    }

    /// The segments, by sequence number.
    pub fn segments(&self) -> &BTreeMap<u64, RamSegment> {
        &self.segments
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
            .ok_or(RamError::new(
                segwal::ErrorKind::Other,
                Operation::Read,
                0,
                0,
            ))
    }

    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, RamError> {
        self.faults().allocate()?;
        let geometry = Geometry::byte_addressable(u64::from(size_bytes));
        let device = RamDevice::new(geometry);
        device.share_faults(Arc::clone(&self.faults));
        self.segments.insert(sequence, RamSegment { device });
        Ok(sequence)
    }

    fn release(&mut self, id: SegmentId) -> Result<(), RamError> {
        self.faults().begin(Operation::Erase, 0, 0)?;
        self.segments.remove(&id);
        Ok(())
    }

    fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> {
        Some(sequence)
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
