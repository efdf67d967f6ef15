//! The running side of a [`FaultPlan`]: the power switch, the counters the
//! plan's options refer to, the random stream, and the fate of each request.
//!
//! A device asks its injector before it touches its bytes, and the injector
//! answers with a decision; it never sees the bytes themselves (reads
//! aside, whose returned buffer it damages). Every device of a
//! [`RamStore`](crate::RamStore) shares one injector, which is how a power
//! cut "at byte n" counts across the whole store.
//!
//! Lock order: a device's state, then the injector. The injector never
//! locks a device.

use core::ops::Range;
use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use segwal::{ErrorKind, Geometry};

use crate::error::{Operation, RamError};
use crate::fault::{FaultPlan, TornFill};
use crate::op::Fill;
use crate::rng::Rng;
use crate::stats::FaultStats;

/// The injector's lock. A poisoned lock means a strict-mode panic or a
/// failing assertion on another thread: the test is already failing, and
/// the counters are still worth reading.
pub(crate) fn lock(injector: &Mutex<Injector>) -> MutexGuard<'_, Injector> {
    injector.lock().unwrap_or_else(|e| e.into_inner())
}

/// A length as `u64`, saturating as `state` does.
fn u64_of(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Where a write or erase the injector let through lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fate {
    /// The bytes it covers: the requested range, or another one for a
    /// misdirected write.
    pub(crate) target: Range<usize>,
    /// `Some` when the power goes off in the middle of it.
    pub(crate) cut: Option<Cut>,
}

/// A power cut inside a write or erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cut {
    /// The unit in flight, within the target; everything before it is done.
    pub(crate) torn: Range<usize>,
    /// What the unit holds afterwards.
    pub(crate) fill: Fill,
    /// Seed for random torn bytes.
    pub(crate) seed: u64,
}

/// A plan in progress.
#[derive(Debug)]
pub(crate) struct Injector {
    plan: FaultPlan,
    rng: Rng,
    power_on: bool,
    /// Writes, erases, syncs, allocations and releases attempted since the
    /// injector was built, refused ones included. Never reset, so a store
    /// can report its operations across plans.
    operations: u64,
    /// `operations` value at which the power goes off.
    operations_limit: Option<u64>,
    /// Bytes of writes and erases let through (a torn one up to its cut)
    /// since the plan was attached.
    stream_bytes: u64,
    /// Bytes of writes that landed since the plan was attached.
    space_used_bytes: u64,
    /// Writes, syncs and allocations numbered so far.
    write_count: u64,
    sync_count: u64,
    allocation_count: u64,
    /// Per entry of `plan.flips`: a transient flip already shown.
    transient_flips_shown: Vec<bool>,
    stats: FaultStats,
}

impl Injector {
    /// An injector running `plan`, with the power on.
    pub(crate) fn new(plan: FaultPlan) -> Self {
        let mut injector = Injector {
            plan: FaultPlan::new(0),
            rng: Rng::new(0),
            power_on: true,
            operations: 0,
            operations_limit: None,
            stream_bytes: 0,
            space_used_bytes: 0,
            write_count: 0,
            sync_count: 0,
            allocation_count: 0,
            transient_flips_shown: Vec::new(),
            stats: FaultStats::default(),
        };
        injector.install(plan);
        injector
    }

    /// Replaces the plan: the power comes back on, and every count the plan
    /// refers to, and the fault statistics, start again from zero.
    pub(crate) fn install(&mut self, plan: FaultPlan) {
        self.rng = Rng::new(plan.seed());
        self.power_on = true;
        self.operations_limit = plan
            .cut_after_ops
            .map(|count| self.operations.saturating_add(count));
        self.stream_bytes = 0;
        self.space_used_bytes = 0;
        self.write_count = 0;
        self.sync_count = 0;
        self.allocation_count = 0;
        self.transient_flips_shown = vec![false; plan.flips.len()];
        self.stats = FaultStats::default();
        self.plan = plan;
    }

    pub(crate) fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    pub(crate) fn stats(&self) -> FaultStats {
        self.stats
    }

    pub(crate) fn operations(&self) -> u64 {
        self.operations
    }

    pub(crate) fn is_power_cut(&self) -> bool {
        !self.power_on
    }

    /// Turns the power on and cuts it again after `operation_count` more
    /// operations.
    pub(crate) fn cut_power_after(&mut self, operation_count: u64) {
        self.power_on = true;
        self.operations_limit = Some(self.operations.saturating_add(operation_count));
    }

    /// Counts one write, erase, sync, allocation or release, and refuses it
    /// when the power is off (or goes off now).
    pub(crate) fn begin(
        &mut self,
        operation: Operation,
        offset: u64,
        len_bytes: u64,
    ) -> Result<(), RamError> {
        let index = self.operations;
        self.operations = self.operations.saturating_add(1);
        if self.power_on && self.operations_limit.is_some_and(|limit| index >= limit) {
            self.power_on = false;
            self.stats.power_cuts += 1;
        }
        if self.power_on {
            Ok(())
        } else {
            self.stats.refused_after_cut += 1;
            Err(RamError::new(ErrorKind::Io, operation, offset, len_bytes))
        }
    }

    /// Decides a write of `range`, already checked against the geometry:
    /// refused (`EIO`, `ENOSPC`), sent elsewhere, cut short, or let through.
    ///
    /// # Panics
    ///
    /// When a misdirected write does not fit on the device.
    pub(crate) fn write_fate(
        &mut self,
        geometry: &Geometry,
        range: Range<usize>,
    ) -> Result<Fate, RamError> {
        let index = self.write_count;
        self.write_count += 1;
        let len_bytes = u64_of(range.len());
        let error = |kind| RamError::new(kind, Operation::Write, u64_of(range.start), len_bytes);
        if self.plan.failed_writes.contains(&index) {
            self.stats.write_io_errors += 1;
            return Err(error(ErrorKind::Io));
        }
        let space_after = self.space_used_bytes.saturating_add(len_bytes);
        if self
            .plan
            .no_space_after_bytes
            .is_some_and(|limit| space_after > limit)
        {
            self.stats.no_space_errors += 1;
            return Err(error(ErrorKind::NoSpace));
        }
        let target = match self.misdirect_target(index) {
            Some(to_offset) => self.misdirected(geometry, index, to_offset, range.len()),
            None => range,
        };
        let cut = self.cut_within(geometry, &target);
        if cut.is_none() {
            self.space_used_bytes = space_after;
        }
        Ok(Fate { target, cut })
    }

    fn misdirect_target(&self, write_index: u64) -> Option<u64> {
        self.plan
            .misdirects
            .iter()
            .find(|(index, _)| *index == write_index)
            .map(|&(_, to_offset)| to_offset)
    }

    fn misdirected(
        &mut self,
        geometry: &Geometry,
        write_index: u64,
        to_offset: u64,
        len: usize,
    ) -> Range<usize> {
        let fits = to_offset
            .checked_add(u64_of(len))
            .is_some_and(|end| end <= geometry.capacity_bytes);
        assert!(
            fits,
            "FaultPlan: write {write_index} ({len} bytes) misdirected to offset {to_offset} \
             does not fit a device of {} bytes",
            geometry.capacity_bytes
        );
        self.stats.misdirected_writes += 1;
        // Fits: it ends within the capacity, which the device checked
        // against `usize`.
        let start = usize::try_from(to_offset).unwrap_or(0);
        start..start + len
    }

    /// Decides an erase of `range`: cut short or let through.
    pub(crate) fn erase_fate(&mut self, geometry: &Geometry, range: Range<usize>) -> Fate {
        let cut = self.cut_within(geometry, &range);
        Fate { target: range, cut }
    }

    /// Counts `target` into the stream of written and erased bytes, and
    /// cuts the power when the plan's cut byte falls inside it.
    fn cut_within(&mut self, geometry: &Geometry, target: &Range<usize>) -> Option<Cut> {
        let start = self.stream_bytes;
        let end = start.saturating_add(u64_of(target.len()));
        let Some(cut_byte) = self.plan.cut_at_byte.filter(|&b| start <= b && b < end) else {
            self.stream_bytes = end;
            return None;
        };
        self.stream_bytes = cut_byte;
        self.power_on = false;
        self.stats.power_cuts += 1;
        self.stats.torn_operations += 1;
        // Below the target's length, so it fits in a usize.
        let into = usize::try_from(cut_byte - start).unwrap_or(0);
        let unit_bytes = self
            .plan
            .torn_unit_bytes
            .unwrap_or(geometry.write_size_bytes);
        let unit = usize::try_from(unit_bytes).unwrap_or(1);
        let at = target.start + into;
        let unit_start = at - at % unit;
        let torn = unit_start.max(target.start)..(unit_start + unit).min(target.end);
        let fill = self.draw_fill();
        Some(Cut {
            torn,
            fill,
            seed: self.rng.next_u64(),
        })
    }

    fn draw_fill(&mut self) -> Fill {
        match self.plan.torn_fill {
            TornFill::Random => Fill::Random,
            TornFill::Zero => Fill::Zero,
            TornFill::Old => Fill::Old,
            TornFill::Mixed => [Fill::Random, Fill::Zero, Fill::Old][self.rng.index_below(3)],
        }
    }

    /// Numbers one sync; `true` when the plan fails it.
    pub(crate) fn sync_fails(&mut self, dropped_operations: usize) -> bool {
        let index = self.sync_count;
        self.sync_count += 1;
        let fails = self.plan.failed_syncs.contains(&index);
        if fails {
            self.stats.sync_failures += 1;
            self.stats.dropped_operations += u64_of(dropped_operations);
        }
        fails
    }

    /// Counts and decides a store allocation.
    pub(crate) fn allocate(&mut self) -> Result<(), RamError> {
        self.begin(Operation::Write, 0, 0)?;
        let index = self.allocation_count;
        self.allocation_count += 1;
        if self.plan.failed_allocations.contains(&index) {
            self.stats.no_space_errors += 1;
            return Err(RamError::new(ErrorKind::NoSpace, Operation::Write, 0, 0));
        }
        Ok(())
    }

    /// Flips bits in `buf`, just read from `offset`: the plan's chosen
    /// flips, the device's stuck bits (`stuck`, as `(offset, bit)`), and
    /// random ones, which join `stuck` when persistent.
    pub(crate) fn damage_read(
        &mut self,
        offset: u64,
        buf: &mut [u8],
        stuck: &mut BTreeSet<(u64, u8)>,
    ) {
        let end = offset.saturating_add(u64_of(buf.len()));
        let flip = |buf: &mut [u8], at: u64, bit: u8| {
            // Within the buffer: `at` lies in `offset..end`.
            let index = usize::try_from(at - offset).unwrap_or(0);
            buf[index] ^= 1 << bit;
        };
        for (index, chosen) in self.plan.flips.iter().enumerate() {
            if !(offset..end).contains(&chosen.offset) {
                continue;
            }
            if !chosen.persistent {
                if self.transient_flips_shown[index] {
                    continue;
                }
                self.transient_flips_shown[index] = true;
            }
            flip(buf, chosen.offset, chosen.bit);
            self.stats.read_bit_flips += 1;
        }
        for &(at, bit) in stuck.range((offset, 0)..(end, 0)) {
            flip(buf, at, bit);
            self.stats.read_bit_flips += 1;
        }
        let Some(random) = self.plan.random_flips else {
            return;
        };
        for at in offset..end {
            if !self.rng.one_in(random.one_in_bytes) {
                continue;
            }
            // Below 8.
            let bit = u8::try_from(self.rng.below(8)).unwrap_or(0);
            // Already stuck means already flipped above.
            if random.persistent && !stuck.insert((at, bit)) {
                continue;
            }
            flip(buf, at, bit);
            self.stats.read_bit_flips += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(capacity_bytes: u64) -> Geometry {
        Geometry::byte_addressable(capacity_bytes)
    }

    #[test]
    fn the_cut_byte_tears_the_write_that_straddles_it() {
        let plan = FaultPlan::new(1)
            .power_cut_at_byte(10)
            .torn_unit_bytes(4)
            .torn_fill(TornFill::Zero);
        let mut injector = Injector::new(plan);
        let first = injector.write_fate(&file(64), 0..10).unwrap();
        assert_eq!(first.cut, None, "ends exactly at the cut byte");
        let second = injector.write_fate(&file(64), 20..30).unwrap();
        let cut = second.cut.expect("byte 10 of the stream is byte 20");
        assert_eq!(cut.torn, 20..24, "the 4-byte unit holding byte 20");
        assert!(injector.is_power_cut());
        assert_eq!(
            injector
                .begin(Operation::Sync, 0, 0)
                .unwrap_err()
                .operation(),
            Operation::Sync
        );
        assert_eq!(injector.stats().power_cuts, 1);
        assert_eq!(injector.stats().refused_after_cut, 1);
    }

    #[test]
    fn torn_units_are_aligned_to_the_device_and_clipped_to_the_write() {
        let plan = FaultPlan::new(1).power_cut_at_byte(1).torn_unit_bytes(512);
        let mut injector = Injector::new(plan);
        let cut = injector.write_fate(&file(4096), 500..1100).unwrap().cut;
        assert_eq!(cut.unwrap().torn, 500..512, "part of the first sector");

        let plan = FaultPlan::new(1).power_cut_at_byte(20).torn_unit_bytes(512);
        let mut injector = Injector::new(plan);
        let cut = injector.write_fate(&file(4096), 500..1100).unwrap().cut;
        assert_eq!(cut.unwrap().torn, 512..1024, "the whole second sector");
    }

    #[test]
    fn refused_writes_use_no_space_and_no_stream_bytes() {
        let plan = FaultPlan::new(1)
            .no_space_after_bytes(8)
            .io_error_on_write(0)
            .power_cut_at_byte(8);
        let mut injector = Injector::new(plan);
        let io = injector.write_fate(&file(64), 0..8).unwrap_err();
        assert_eq!(segwal::DeviceError::kind(&io), ErrorKind::Io);
        let full = injector.write_fate(&file(64), 0..9).unwrap_err();
        assert_eq!(segwal::DeviceError::kind(&full), ErrorKind::NoSpace);
        let fits = injector.write_fate(&file(64), 0..8).unwrap();
        assert_eq!(fits.cut, None, "the refused writes moved no stream bytes");
        assert_eq!(injector.stats().no_space_errors, 1);
        assert_eq!(injector.stats().write_io_errors, 1);
    }

    #[test]
    fn operations_limit_cuts_between_operations() {
        let mut injector = Injector::new(FaultPlan::new(1).power_cut_after_ops(2));
        assert!(injector.begin(Operation::Write, 0, 1).is_ok());
        assert!(injector.allocate().is_ok());
        assert!(!injector.is_power_cut(), "off only when the next one comes");
        assert!(injector.begin(Operation::Sync, 0, 0).is_err());
        assert!(injector.is_power_cut());
        assert_eq!(injector.operations(), 3, "refused operations count");
        injector.cut_power_after(1);
        assert!(injector.begin(Operation::Sync, 0, 0).is_ok(), "power back");
    }

    #[test]
    #[should_panic(expected = "misdirected to offset 60")]
    fn a_misdirected_write_that_does_not_fit_panics() {
        let mut injector = Injector::new(FaultPlan::new(1).misdirect_write(0, 60));
        let _ = injector.write_fate(&file(64), 0..8);
    }
}
