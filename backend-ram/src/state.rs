//! The bytes behind a [`RamDevice`](crate::RamDevice): a live copy, a
//! durable copy and the list of operations that separate them, plus the
//! fault injector, when one is attached.
//!
//! Invariant: applying `pending`, in order, to `durable` gives `live`,
//! except for the operations a failed sync dropped (they stay in `live`
//! only, as a page cache keeps pages whose writeback failed). Every change
//! to `live` goes through [`State::perform`], which is what keeps it true.
//!
//! Each request runs the same steps: count the call; with an injector, ask
//! it whether the power is on; check bounds and alignment (a strict plan
//! panics on misalignment); with a strict plan on flash, check the target
//! is erased; ask the injector where the request lands and whether the
//! power goes off in the middle; perform it.

use core::ops::Range;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use segwal::{DeviceError, ErrorKind, Geometry, check_range};

use crate::error::{Operation, RamError};
use crate::fault::FaultPlan;
use crate::injector::{self, Cut, Injector};
use crate::op::{PendingOp, apply};
use crate::stats::{FaultStats, Stats};

/// Everything a [`RamDevice`](crate::RamDevice) and its clones share.
pub(crate) struct State {
    geometry: Geometry,
    /// What reads see: every accepted write and erase.
    live: Vec<u8>,
    /// What survives a power cut: the contents at the last sync.
    durable: Vec<u8>,
    /// Accepted writes and erases since the last sync, oldest first. It
    /// grows with the unsynced bytes; a test device may spend that memory.
    pending: Vec<PendingOp>,
    stats: Stats,
    /// Erases per erase block. Empty until the first erase: a
    /// byte-addressable device has one erase block per byte, and most users
    /// never erase it.
    erase_counts: Vec<u32>,
    /// The fault injector, shared with every device of the same store;
    /// `None` for a device without a plan.
    faults: Option<Arc<Mutex<Injector>>>,
    /// Bits that read back flipped, as `(offset, bit)`: persistent random
    /// flips land here and stay until the device is rebooted.
    stuck_bits: BTreeSet<(u64, u8)>,
    /// One flag per flash word: programmed since its last erase. Kept only
    /// for strict plans on `erase_before_write` devices, and empty until the
    /// first strict write.
    programmed_words: Vec<bool>,
}

/// Why `geometry` cannot back a RAM device, if it cannot.
pub(crate) fn geometry_problem(geometry: &Geometry) -> Option<&'static str> {
    // The capacity rule first: `Geometry::is_valid` checks it too, and the
    // more specific message is the more useful one.
    if geometry.erase_size_bytes != 0
        && !geometry
            .capacity_bytes
            .is_multiple_of(u64::from(geometry.erase_size_bytes))
    {
        return Some("capacity_bytes must be a multiple of erase_size_bytes");
    }
    if !geometry.is_valid() {
        return Some(
            "granularities must be non-zero powers of two with \
             read_size_bytes <= write_size_bytes <= erase_size_bytes",
        );
    }
    if usize::try_from(geometry.capacity_bytes).is_err()
        || usize::try_from(geometry.erase_size_bytes).is_err()
    {
        return Some("capacity_bytes does not fit in this host's memory");
    }
    None
}

/// Panics with a message naming the problem when `geometry` is unusable: a
/// bad geometry is a bug in the test that built the device.
fn assert_geometry(geometry: &Geometry) {
    if let Some(problem) = geometry_problem(geometry) {
        panic!("RamDevice: invalid geometry {geometry:?}: {problem}");
    }
}

/// A length as `u64`. A length that does not fit cannot lie inside any
/// device, so it saturates and fails the bounds check.
fn len_u64(len_bytes: usize) -> u64 {
    u64::try_from(len_bytes).unwrap_or(u64::MAX)
}

/// A granularity as `usize`; `assert_geometry` checked they fit, and 1
/// only keeps divisions defined.
fn usize_of(bytes: u32) -> usize {
    usize::try_from(bytes).unwrap_or(1)
}

/// Checks a request with [`check_range`] and turns it into an index range.
fn validate(
    geometry: &Geometry,
    operation: Operation,
    offset: u64,
    len_bytes: u64,
    granularity_bytes: u32,
) -> Result<Range<usize>, RamError> {
    let error = |kind| RamError::new(kind, operation, offset, len_bytes);
    check_range(geometry, offset, len_bytes, granularity_bytes).map_err(error)?;
    // Cannot fail once `check_range` passed: the range ends within
    // `capacity_bytes`, which `assert_geometry` checked fits in `usize`.
    let start = usize::try_from(offset).map_err(|_| error(ErrorKind::OutOfBounds))?;
    let len = usize::try_from(len_bytes).map_err(|_| error(ErrorKind::OutOfBounds))?;
    Ok(start..start + len)
}

/// The error of a request the power cut interrupted.
fn power_cut(operation: Operation, offset: u64, len_bytes: u64) -> RamError {
    RamError::new(ErrorKind::Io, operation, offset, len_bytes)
}

impl State {
    /// A device holding `image`, both live and durable.
    ///
    /// # Panics
    ///
    /// On an invalid geometry, or when `image` is not `capacity_bytes` long.
    pub(crate) fn from_image(geometry: Geometry, image: Vec<u8>) -> Self {
        assert_geometry(&geometry);
        assert!(
            len_u64(image.len()) == geometry.capacity_bytes,
            "RamDevice: image of {} bytes for a device of {} bytes",
            image.len(),
            geometry.capacity_bytes
        );
        State {
            geometry,
            durable: image.clone(),
            live: image,
            pending: Vec::new(),
            stats: Stats::default(),
            erase_counts: Vec::new(),
            faults: None,
            stuck_bits: BTreeSet::new(),
            programmed_words: Vec::new(),
        }
    }

    /// A freshly erased device.
    ///
    /// # Panics
    ///
    /// On an invalid geometry.
    pub(crate) fn erased(geometry: Geometry) -> Self {
        assert_geometry(&geometry);
        // Fits: `assert_geometry` checked the capacity against `usize`.
        let capacity = usize::try_from(geometry.capacity_bytes).unwrap_or(0);
        Self::from_image(geometry, vec![geometry.erased_byte; capacity])
    }

    /// Runs `plan` from now on: in the injector shared with the rest of a
    /// store when there is one, in a new one otherwise.
    pub(crate) fn set_fault_plan(&mut self, plan: FaultPlan) {
        match &self.faults {
            Some(faults) => injector::lock(faults).install(plan),
            None => self.faults = Some(Arc::new(Mutex::new(Injector::new(plan)))),
        }
    }

    /// Shares `faults` with other devices (a store's segments).
    pub(crate) fn attach(&mut self, faults: Arc<Mutex<Injector>>) {
        self.faults = Some(faults);
    }

    pub(crate) fn fault_plan(&self) -> Option<FaultPlan> {
        let faults = self.faults.as_ref()?;
        Some(injector::lock(faults).plan().clone())
    }

    pub(crate) fn fault_stats(&self) -> FaultStats {
        self.faults
            .as_ref()
            .map(|faults| injector::lock(faults).stats())
            .unwrap_or_default()
    }

    pub(crate) fn is_power_cut(&self) -> bool {
        self.faults
            .as_ref()
            .is_some_and(|faults| injector::lock(faults).is_power_cut())
    }

    /// Checks a write or erase; a strict plan panics on misalignment, a
    /// logic error of the log rather than something the world did.
    fn check(
        &self,
        operation: Operation,
        offset: u64,
        len_bytes: u64,
        granularity_bytes: u32,
        strict: bool,
    ) -> Result<Range<usize>, RamError> {
        validate(
            &self.geometry,
            operation,
            offset,
            len_bytes,
            granularity_bytes,
        )
        .inspect_err(|error| {
            if strict && error.kind() == ErrorKind::Misaligned {
                panic!(
                    "strict RamDevice: misaligned {operation} of {len_bytes} bytes at offset \
                         {offset} (granularity {granularity_bytes} bytes): a logic error of the log"
                );
            }
        })
    }

    pub(crate) fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), RamError> {
        self.stats.read_calls += 1;
        let len_bytes = len_u64(buf.len());
        let range = validate(
            &self.geometry,
            Operation::Read,
            offset,
            len_bytes,
            self.geometry.read_size_bytes,
        )?;
        buf.copy_from_slice(&self.live[range]);
        if let Some(faults) = &self.faults {
            injector::lock(faults).damage_read(offset, buf, &mut self.stuck_bits);
        }
        self.stats.read_bytes += len_bytes;
        Ok(())
    }

    pub(crate) fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), RamError> {
        self.stats.write_calls += 1;
        let len_bytes = pieces
            .iter()
            .try_fold(0u64, |total, piece| total.checked_add(len_u64(piece.len())))
            .unwrap_or(u64::MAX);
        let write_size = self.geometry.write_size_bytes;
        let Some(faults) = self.faults.clone() else {
            let range = self.check(Operation::Write, offset, len_bytes, write_size, false)?;
            self.perform(PendingOp::Write {
                offset: range.start,
                bytes: pieces.concat(),
            });
            self.stats.write_bytes += len_bytes;
            return Ok(());
        };
        let mut faults = injector::lock(&faults);
        faults.begin(Operation::Write, offset, len_bytes)?;
        let strict = faults.plan().is_strict();
        let range = self.check(Operation::Write, offset, len_bytes, write_size, strict)?;
        if strict {
            self.assert_programmable(&range);
        }
        let fate = faults.write_fate(&self.geometry, range)?;
        drop(faults);
        let bytes = pieces.concat();
        let Some(cut) = fate.cut else {
            if strict {
                self.mark_programmed(&fate.target, true);
            }
            self.perform(PendingOp::Write {
                offset: fate.target.start,
                bytes,
            });
            self.stats.write_bytes += len_bytes;
            return Ok(());
        };
        let done_len = cut.torn.start - fate.target.start;
        let done = PendingOp::Write {
            offset: fate.target.start,
            bytes: bytes[..done_len].to_vec(),
        };
        self.perform_torn(done, cut);
        Err(power_cut(Operation::Write, offset, len_bytes))
    }

    pub(crate) fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), RamError> {
        self.stats.erase_calls += 1;
        let erase_size = self.geometry.erase_size_bytes;
        let Some(faults) = self.faults.clone() else {
            let range = self.check(Operation::Erase, offset, len_bytes, erase_size, false)?;
            self.count_erase(range.clone());
            self.perform(PendingOp::Erase { range });
            return Ok(());
        };
        let mut faults = injector::lock(&faults);
        faults.begin(Operation::Erase, offset, len_bytes)?;
        let strict = faults.plan().is_strict();
        let range = self.check(Operation::Erase, offset, len_bytes, erase_size, strict)?;
        let fate = faults.erase_fate(&self.geometry, range);
        drop(faults);
        // A torn erase wore the blocks as much as a whole one.
        self.count_erase(fate.target.clone());
        self.mark_programmed(&fate.target, false);
        let Some(cut) = fate.cut else {
            self.perform(PendingOp::Erase { range: fate.target });
            return Ok(());
        };
        let done = PendingOp::Erase {
            range: fate.target.start..cut.torn.start,
        };
        self.perform_torn(done, cut);
        Err(power_cut(Operation::Erase, offset, len_bytes))
    }

    pub(crate) fn sync(&mut self) -> Result<(), RamError> {
        self.stats.sync_calls += 1;
        if let Some(faults) = &self.faults {
            let mut faults = injector::lock(faults);
            faults.begin(Operation::Sync, 0, 0)?;
            if faults.sync_fails(self.pending.len()) {
                // Linux marks the pages clean after a writeback error: the
                // data stays readable but will never reach the medium.
                self.pending.clear();
                return Err(RamError::new(ErrorKind::SyncFailed, Operation::Sync, 0, 0));
            }
        }
        // Replaying the pending list costs what was written since the last
        // sync, where copying `live` would cost the whole capacity.
        for op in self.pending.drain(..) {
            apply(&self.geometry, &mut self.durable, &op);
        }
        Ok(())
    }

    /// Applies an accepted write or erase to the live copy and records it
    /// as pending. The one place the live copy changes.
    fn perform(&mut self, op: PendingOp) {
        apply(&self.geometry, &mut self.live, &op);
        self.pending.push(op);
    }

    /// Performs the part of an interrupted request that happened.
    fn perform_torn(&mut self, done: PendingOp, cut: Cut) {
        self.perform(PendingOp::Torn {
            done: Box::new(done),
            torn: cut.torn,
            fill: cut.fill,
            seed: cut.seed,
        });
    }

    /// Strict mode on flash: panics unless every word of `range` is erased
    /// and not programmed since its last erase.
    fn assert_programmable(&mut self, range: &Range<usize>) {
        if !self.geometry.erase_before_write {
            return;
        }
        let word = usize_of(self.geometry.write_size_bytes);
        if self.programmed_words.is_empty() {
            self.programmed_words = vec![false; self.live.len() / word];
        }
        let words = range.start / word..range.end / word;
        if let Some(index) = words.clone().find(|&index| self.programmed_words[index]) {
            panic!(
                "strict RamDevice: the flash word at offset {} programmed twice without an \
                 erase (write of {} bytes at offset {}): a logic error of the log",
                index * word,
                range.len(),
                range.start
            );
        }
        let erased = self.geometry.erased_byte;
        if let Some(at) = self.live[range.clone()].iter().position(|&b| b != erased) {
            panic!(
                "strict RamDevice: write of {} bytes at offset {} over unerased flash (the byte \
                 at offset {} holds {:#04x}, erased is {erased:#04x}): a logic error of the log",
                range.len(),
                range.start,
                range.start + at,
                self.live[range.start + at]
            );
        }
    }

    /// Records `range` as programmed or erased, when words are tracked.
    fn mark_programmed(&mut self, range: &Range<usize>, programmed: bool) {
        if self.programmed_words.is_empty() {
            return;
        }
        let word = usize_of(self.geometry.write_size_bytes);
        // Round outwards: a misdirected write need not be word-aligned.
        let words = range.start / word..range.end.div_ceil(word);
        self.programmed_words[words].fill(programmed);
    }

    fn count_erase(&mut self, range: Range<usize>) {
        let erase_size = usize_of(self.geometry.erase_size_bytes);
        if self.erase_counts.is_empty() {
            self.erase_counts = vec![0; self.live.len() / erase_size];
        }
        let blocks = range.start / erase_size..range.end / erase_size;
        for count in &mut self.erase_counts[blocks] {
            *count = count.saturating_add(1);
        }
    }

    pub(crate) fn live_image(&self) -> Vec<u8> {
        self.live.clone()
    }

    pub(crate) fn durable_image(&self) -> Vec<u8> {
        self.durable.clone()
    }

    /// The durable copy with the pending operations at `survivors` (indices
    /// into the pending list) replayed over it in that order.
    pub(crate) fn crash_image(&self, survivors: &[usize]) -> Vec<u8> {
        let mut image = self.durable.clone();
        for &index in survivors {
            apply(&self.geometry, &mut image, &self.pending[index]);
        }
        image
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    pub(crate) fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    pub(crate) fn erase_counts(&self) -> Vec<u32> {
        if self.erase_counts.is_empty() {
            vec![0; self.live.len() / usize_of(self.geometry.erase_size_bytes)]
        } else {
            self.erase_counts.clone()
        }
    }
}

/// A small NOR geometry (4-byte words, 16-byte blocks, 64 bytes) for the
/// crate's unit tests.
#[cfg(test)]
pub(crate) fn test_nor_geometry(erased_byte: u8) -> Geometry {
    Geometry {
        read_size_bytes: 1,
        write_size_bytes: 4,
        erase_size_bytes: 16,
        erased_byte,
        erase_before_write: true,
        capacity_bytes: 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nor(erased_byte: u8) -> Geometry {
        test_nor_geometry(erased_byte)
    }

    #[test]
    fn geometry_problems_are_named() {
        assert_eq!(geometry_problem(&nor(0xFF)), None);
        let mut bad = nor(0xFF);
        bad.capacity_bytes = 40;
        assert!(geometry_problem(&bad).is_some_and(|p| p.contains("multiple")));
        let mut bad = nor(0xFF);
        bad.write_size_bytes = 3;
        assert!(geometry_problem(&bad).is_some_and(|p| p.contains("powers of two")));
    }

    #[test]
    fn replaying_pending_onto_durable_gives_live() {
        let mut state = State::erased(nor(0xFF));
        state.write(0, &[&[0x12, 0x34], &[0x56, 0x78]]).unwrap();
        state.erase(16, 16).unwrap();
        state.write(16, &[&[0xAB; 8]]).unwrap();
        state.write(0, &[&[0xF0; 4]]).unwrap();
        assert_eq!(state.pending_count(), 4);
        assert_eq!(state.crash_image(&[0, 1, 2, 3]), state.live);
        state.sync().unwrap();
        assert_eq!(state.pending_count(), 0);
        assert_eq!(state.durable, state.live);
        assert_eq!(&state.live[..4], &[0x10, 0x30, 0x50, 0x70]);
    }

    #[test]
    fn a_torn_write_keeps_the_invariant() {
        let plan = FaultPlan::new(3).power_cut_at_byte(6).torn_unit_bytes(1);
        let mut state = State::erased(Geometry::byte_addressable(16));
        state.set_fault_plan(plan);
        state.write(0, &[b"abcd"]).unwrap();
        assert!(state.write(4, &[b"efgh"]).is_err());
        assert_eq!(state.pending_count(), 2, "the torn write is pending");
        assert_eq!(state.crash_image(&[0, 1]), state.live);
        assert_eq!(&state.live[..6], b"abcdef");
        assert_eq!(&state.live[7..], &[0; 9], "nothing after the torn byte");
    }
}
