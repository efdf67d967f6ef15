//! Round trip: the core `Wal` over a `FlashRing` on a strict NOR device
//! (no word programmed twice, nothing written over unerased bytes) appends
//! across rotations, and after a reboot (the bytes as the power cut left
//! them) reads and iterates every record, then appends on.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::{Lsn, Wal, WalTailState};
use segwal_flash::RingMode;
use segwal_ram::{CrashModel, FaultPlan};
use support::*;

#[test]
fn append_reboot_read_iterate() {
    let device = strict_device(8, 1);
    let mut wal: Wal<_, Vec<u8>, 64> = Wal::open(
        ring(&device, 8, RingMode::RefuseWhenFull),
        wal_config(),
        vec![0u8; 8192],
    )
    .unwrap();
    for lsn in 1..=300u64 {
        assert_eq!(wal.append(&payload(lsn)).unwrap(), Lsn(lsn));
    }
    assert!(wal.segment_count() >= 3, "rotated: {}", wal.segment_count());
    // A clean close writes no marker on flash: nothing to wipe later.
    drop(wal.close().unwrap());

    let rebooted = device.reboot(&CrashModel::Live);
    rebooted.set_fault_plan(FaultPlan::new(2).strict(true));
    let mut log = open_log(&rebooted, 8, RingMode::RefuseWhenFull).unwrap();
    assert_eq!(log.wal().next_lsn(), Lsn(301));
    assert_eq!(log.wal().tail_state(), WalTailState::Clean);
    check_log(&mut log, "after reboot");
    for lsn in 301..=350u64 {
        assert_eq!(log.append(&payload(lsn)).unwrap(), Lsn(lsn));
    }
    check_log(&mut log, "after more appends");
}

#[test]
fn a_checkpointed_segment_stays_gone_after_reboot() {
    let device = strict_device(8, 3);
    let mut log = open_log(&device, 8, RingMode::RefuseWhenFull).unwrap();
    for lsn in 1..=300u64 {
        log.append(&payload(lsn)).unwrap();
    }
    let removed = log.wal_mut().checkpoint(Lsn(150)).unwrap();
    assert!(removed > 0);
    let first = log.wal().first_lsn();
    let rebooted = device.reboot(&CrashModel::Live);
    let mut log = open_log(&rebooted, 8, RingMode::RefuseWhenFull).unwrap();
    assert_eq!(log.wal().first_lsn(), first, "release is durable");
    assert_eq!(log.wal().next_lsn(), Lsn(301));
    check_log(&mut log, "after checkpoint and reboot");
}
