//! Power cuts inside erases: during a release (the ring erasing a dropped
//! segment's first block) and during the erase of a reused slot after a
//! reboot. At every cut byte tried, the log reopens with every
//! acknowledged record, the half-erased slot is either whole or free, and
//! the next use of the slot erases it completely first (the strict device
//! panics on any write over bytes that are not erased).
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::Lsn;
use segwal::format::record_extent_bytes;
use segwal_flash::RingMode;
use segwal_ram::{CrashModel, FaultPlan, RamDevice, TornFill};
use support::*;

const SLOTS: u32 = 4;
const CUTS: [u64; 18] = [
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 60, 63, 64, 65, 100, 1000, 4095,
];

/// Appends until the next append would start a new segment.
fn fill_to_rotation(log: &mut TestLog) {
    loop {
        let lsn = log.wal().next_lsn().0;
        let len = u32::try_from(payload(lsn).len()).unwrap();
        let remaining = BLOCK_BYTES as u64 - log.wal().active_written_bytes();
        if record_extent_bytes(len, 8) > remaining {
            return;
        }
        log.append(&payload(lsn)).unwrap();
    }
}

fn cut_plan(seed: u64, cut: u64) -> FaultPlan {
    FaultPlan::new(seed)
        .strict(true)
        .power_cut_at_byte(cut)
        .torn_unit_bytes(4)
        .torn_fill(TornFill::Mixed)
}

/// After the cut: reboot, open, check, then go round the ring twice more.
fn recover_and_go_on(device: &RamDevice, mode: RingMode, seed: u64, context: &str) {
    let rebooted = device.reboot(&CrashModel::Live);
    rebooted.set_fault_plan(FaultPlan::new(seed).strict(true));
    let mut log = open_log(&rebooted, SLOTS, mode)
        .unwrap_or_else(|e| panic!("{context}: open failed: {e:?}"));
    check_log(&mut log, context);
    let before = rebooted.erase_counts();
    for _ in 0..2 * SLOTS {
        fill_to_rotation(&mut log);
        let lsn = log.wal().next_lsn();
        if mode == RingMode::RefuseWhenFull {
            log.wal_mut().checkpoint(Lsn(lsn.0 - 1)).unwrap();
        }
        assert_eq!(log.append(&payload(lsn.0)).unwrap(), lsn, "{context}");
    }
    check_log(&mut log, context);
    let after = rebooted.erase_counts();
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "{context}: every block erased again before reuse: {before:?} -> {after:?}"
    );
}

#[test]
fn a_cut_while_releasing_the_oldest_segment() {
    for cut in CUTS {
        let seed = 0xE7A5_0000 + cut;
        let context = format!("release erase cut at byte {cut} (seed {seed:#x})");
        let device = strict_device(SLOTS as usize, seed);
        let mut log = open_log(&device, SLOTS, RingMode::DropOldest).unwrap();
        for _ in 0..SLOTS - 1 {
            fill_to_rotation(&mut log);
            let lsn = log.wal().next_lsn();
            log.append(&payload(lsn.0)).unwrap();
        }
        fill_to_rotation(&mut log);
        assert_eq!(log.wal().segment_count(), SLOTS as usize);
        // The next append drops the oldest segment: its first op is the
        // release's erase.
        device.set_fault_plan(cut_plan(seed, cut));
        let lsn = log.wal().next_lsn();
        assert!(log.append(&payload(lsn.0)).is_err(), "{context}");
        assert_eq!(device.fault_stats().torn_operations, 1, "{context}");
        drop(log);
        recover_and_go_on(&device, RingMode::DropOldest, seed ^ 1, &context);
    }
}

#[test]
fn a_cut_while_erasing_a_reused_slot_after_a_reboot() {
    for cut in CUTS {
        let seed = 0xE7A5_1000 + cut;
        let context = format!("reuse erase cut at byte {cut} (seed {seed:#x})");
        let device = strict_device(SLOTS as usize, seed);
        let mut log = open_log(&device, SLOTS, RingMode::RefuseWhenFull).unwrap();
        for _ in 0..SLOTS - 1 {
            fill_to_rotation(&mut log);
            let lsn = log.wal().next_lsn();
            log.append(&payload(lsn.0)).unwrap();
        }
        fill_to_rotation(&mut log);
        let second = log.wal().segments()[1].header.base_lsn;
        log.wal_mut().checkpoint(Lsn(second - 1)).unwrap();
        drop(log);
        // A reboot forgets that the release erased the slot's block: the
        // reuse erases it whole, and that erase is cut.
        let rebooted = device.reboot(&CrashModel::Live);
        rebooted.set_fault_plan(cut_plan(seed, cut));
        let mut log = open_log(&rebooted, SLOTS, RingMode::RefuseWhenFull).unwrap();
        let lsn = log.wal().next_lsn();
        assert!(log.append(&payload(lsn.0)).is_err(), "{context}");
        assert_eq!(rebooted.fault_stats().torn_operations, 1, "{context}");
        drop(log);
        recover_and_go_on(&rebooted, RingMode::RefuseWhenFull, seed ^ 1, &context);
    }
}
