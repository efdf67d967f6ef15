//! [`RamDevice`]: the handle tests hold, and its [`BlockDevice`] impl.

use core::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use segwal::{BlockDevice, ErrorType, Geometry};

use crate::crash::{CrashModel, survivors};
use crate::error::RamError;
use crate::fault::FaultPlan;
use crate::injector::Injector;
use crate::state::State;
use crate::stats::{FaultStats, Stats};

/// An in-memory [`BlockDevice`] with a live and a durable copy of its bytes.
///
/// Clones share one device: every clone reads and writes the same bytes and
/// counters, so reader threads can each hold a clone while a writer appends.
/// Each call takes one lock for its whole duration, so a `write` of several
/// pieces is seen whole or not at all by other clones.
///
/// See the [crate documentation](crate) for the live/durable model.
#[derive(Clone)]
pub struct RamDevice {
    /// Copied out of the state so [`BlockDevice::geometry`] needs no lock;
    /// it never changes.
    geometry: Geometry,
    state: Arc<Mutex<State>>,
}

impl RamDevice {
    /// A device of `geometry` with every byte erased
    /// (`geometry.erased_byte`).
    ///
    /// # Panics
    ///
    /// When the geometry is invalid ([`Geometry::is_valid`] fails, or
    /// `capacity_bytes` is not a multiple of `erase_size_bytes`, or does not
    /// fit in memory): that is a bug in the test that built it.
    pub fn new(geometry: Geometry) -> Self {
        Self::with_state(geometry, State::erased(geometry))
    }

    /// A file-like device of `capacity_bytes`: reads, writes and erases of
    /// any byte range, erased to `0x00`, no erase needed before a write.
    pub fn byte_addressable(capacity_bytes: u64) -> Self {
        Self::new(Geometry::byte_addressable(capacity_bytes))
    }

    /// A NOR flash of `capacity_bytes`: byte reads, writes of whole
    /// `write_size_bytes` words, erases of whole `erase_size_bytes` blocks
    /// to `0xFF`, and programming that only clears bits (`old & new`).
    ///
    /// # Panics
    ///
    /// As for [`RamDevice::new`].
    pub fn nor_flash(capacity_bytes: u64, write_size_bytes: u32, erase_size_bytes: u32) -> Self {
        Self::new(Geometry {
            read_size_bytes: 1,
            write_size_bytes,
            erase_size_bytes,
            erased_byte: 0xFF,
            erase_before_write: true,
            capacity_bytes,
        })
    }

    /// A device that starts from a saved image, both live and durable: a
    /// "reboot" from a [`RamDevice::durable_image`] taken earlier. Counters
    /// and erase counts start at zero.
    ///
    /// # Panics
    ///
    /// As for [`RamDevice::new`], and when `bytes` is not exactly
    /// `geometry.capacity_bytes` long.
    pub fn from_image(geometry: Geometry, bytes: Vec<u8>) -> Self {
        Self::with_state(geometry, State::from_image(geometry, bytes))
    }

    /// A freshly erased device of `geometry` that injects the faults of
    /// `plan` from its first request on.
    ///
    /// # Panics
    ///
    /// As for [`RamDevice::new`].
    pub fn with_faults(geometry: Geometry, plan: FaultPlan) -> Self {
        let device = Self::new(geometry);
        device.set_fault_plan(plan);
        device
    }

    /// Takes its faults from `faults` from now on, shared with the other
    /// segments of a store.
    pub(crate) fn share_faults(&self, faults: Arc<Mutex<Injector>>) {
        self.lock().attach(faults);
    }

    fn with_state(geometry: Geometry, state: State) -> Self {
        RamDevice {
            geometry,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A poisoned lock means another thread panicked mid-call: a test is
    /// already failing, and the bytes are still worth inspecting.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes as reads see them now, synced or not.
    pub fn live_image(&self) -> Vec<u8> {
        self.lock().live_image()
    }

    /// The bytes as of the last successful `sync`: what a power cut would
    /// leave if every unsynced write were lost.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable_image()
    }

    /// How many accepted operations (writes and erases alike, a torn one
    /// included) have not been made durable by a `sync` yet: the operations
    /// a [`CrashModel`] chooses from, numbered from 0, oldest first.
    pub fn pending_writes(&self) -> usize {
        self.lock().pending_count()
    }

    /// The bytes a power cut now would leave under `model`: the durable
    /// copy with the pending operations the model keeps replayed over it,
    /// in the model's order. The device itself does not change, so one
    /// device yields every crash state of a workload.
    ///
    /// # Panics
    ///
    /// On a [`CrashModel::Exactly`] naming an operation that is not pending,
    /// or one twice.
    ///
    /// # Example
    ///
    /// ```
    /// use segwal::BlockDevice;
    /// use segwal_ram::{CrashModel, RamDevice};
    ///
    /// let mut device = RamDevice::byte_addressable(8);
    /// device.write(0, &[b"ab"])?;
    /// device.write(0, &[b"c"])?;
    /// // Both kept, replayed newest first: the older write wins.
    /// let image = device.crash_image(&CrashModel::Exactly(vec![1, 0]));
    /// assert_eq!(&image[..2], b"ab");
    /// assert_eq!(&device.crash_image(&CrashModel::Live)[..2], b"cb");
    /// # Ok::<(), segwal_ram::RamError>(())
    /// ```
    pub fn crash_image(&self, model: &CrashModel) -> Vec<u8> {
        let state = self.lock();
        let lists = survivors(model, &[state.pending_count()]);
        let kept = lists.first().map_or(&[][..], Vec::as_slice);
        state.crash_image(kept)
    }

    /// A new device holding [`RamDevice::crash_image`] for `model`, both
    /// live and durable, with the power on, fresh counters and no fault
    /// plan: the device after a power cut and a reboot. Give it a plan with
    /// [`RamDevice::set_fault_plan`] to cut the power again during
    /// recovery.
    ///
    /// # Panics
    ///
    /// As for [`RamDevice::crash_image`].
    pub fn reboot(&self, model: &CrashModel) -> RamDevice {
        RamDevice::from_image(self.geometry, self.crash_image(model))
    }

    /// Injects the faults of `plan` from now on, replacing any earlier plan:
    /// the power comes back on, and the counts the plan refers to and
    /// [`RamDevice::fault_stats`] start from zero. The device's bytes and
    /// pending operations are kept.
    ///
    /// On a segment of a [`RamStore`](crate::RamStore) this replaces the
    /// plan of the whole store, which every segment shares.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.lock().set_fault_plan(plan);
    }

    /// The plan being injected, if any.
    pub fn fault_plan(&self) -> Option<FaultPlan> {
        self.lock().fault_plan()
    }

    /// The faults injected since the plan was attached; all zero without
    /// one.
    pub fn fault_stats(&self) -> FaultStats {
        self.lock().fault_stats()
    }

    /// `true` once the fault plan has cut the power: every later write,
    /// erase and sync fails with [`ErrorKind::Io`](segwal::ErrorKind::Io).
    pub fn is_power_cut(&self) -> bool {
        self.lock().is_power_cut()
    }

    /// The I/O counters since the device was built or
    /// [`RamDevice::reset_stats`] was last called.
    pub fn stats(&self) -> Stats {
        self.lock().stats()
    }

    /// Sets every I/O counter back to zero. Erase counts are kept: they
    /// record wear, not a test's I/O.
    pub fn reset_stats(&self) {
        self.lock().reset_stats();
    }

    /// How many times each erase block has been erased, indexed by block
    /// (`offset / erase_size_bytes`), one entry per block of the device.
    pub fn erase_counts(&self) -> Vec<u32> {
        self.lock().erase_counts()
    }
}

impl fmt::Debug for RamDevice {
    /// The geometry, the pending count and the fault plan; the images are
    /// too big to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamDevice")
            .field("geometry", &self.geometry)
            .field("pending_writes", &self.pending_writes())
            .field("fault_plan", &self.fault_plan())
            .finish_non_exhaustive()
    }
}

impl ErrorType for RamDevice {
    type Error = RamError;
}

impl BlockDevice for RamDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Reads from the live copy: a read sees every accepted write, synced
    /// or not, as a file's page cache would. A fault plan may flip bits in
    /// what it returns.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), RamError> {
        self.lock().read(offset, buf)
    }

    /// Applies the concatenated pieces to the live copy and records them as
    /// one pending operation. Never fails for a valid range unless a fault
    /// plan says so.
    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), RamError> {
        self.lock().write(offset, pieces)
    }

    /// Erases the range in the live copy, records it as one pending
    /// operation and counts one erase for every block it covers (a torn
    /// erase included).
    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), RamError> {
        self.lock().erase(offset, len_bytes)
    }

    /// Makes every pending operation durable. Never fails unless a fault
    /// plan says so; a failed sync drops the pending operations from the
    /// durable copy (see [`FaultPlan::sync_failure`]).
    fn sync(&mut self) -> Result<(), RamError> {
        self.lock().sync()
    }
}
