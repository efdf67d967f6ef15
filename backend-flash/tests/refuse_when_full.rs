//! `RingMode::RefuseWhenFull`: once every slot holds a segment, an append
//! that needs a new one fails with a `NoSpace` device error, writes nothing
//! and leaves the log usable: a checkpoint frees slots and appends go on,
//! and a reboot finds every acknowledged record.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::{Error, ErrorKind, Lsn};
use segwal_flash::{FlashError, RingMode};
use segwal_ram::CrashModel;
use support::*;

#[test]
fn a_full_ring_refuses_and_loses_nothing() {
    let device = strict_device(4, 7);
    let mut log = open_log(&device, 4, RingMode::RefuseWhenFull).unwrap();
    let mut lsn = 1u64;
    let error = loop {
        match log.append(&payload(lsn)) {
            Ok(got) => assert_eq!(got, Lsn(lsn)),
            Err(e) => break e,
        }
        lsn += 1;
        assert!(lsn < 10_000, "four 4 KiB slots never filled");
    };
    assert_eq!(error.device_kind(), Some(ErrorKind::NoSpace), "{error:?}");
    assert!(matches!(error, Error::Device(FlashError::NoSpace)));
    assert_eq!(log.wal().next_lsn(), Lsn(lsn), "nothing written");
    assert!(!log.wal().is_poisoned(), "a refusal does not poison");
    assert_eq!(log.wal().first_lsn(), Lsn(1), "nothing dropped");
    check_log(&mut log, "full");

    // Reboot: everything acknowledged is there, and it is still full.
    let rebooted = device.reboot(&CrashModel::Live);
    let mut log = open_log(&rebooted, 4, RingMode::RefuseWhenFull).unwrap();
    assert_eq!(log.wal().next_lsn(), Lsn(lsn));
    check_log(&mut log, "full after reboot");
    // Fill the rest of the active segment, then it refuses again.
    loop {
        match log.append(&payload(lsn)) {
            Ok(_) => lsn += 1,
            Err(e) => {
                assert_eq!(e.device_kind(), Some(ErrorKind::NoSpace));
                break;
            }
        }
    }

    // A checkpoint makes room.
    let second = log.wal().segments()[1].header.base_lsn;
    assert_eq!(log.wal_mut().checkpoint(Lsn(second - 1)).unwrap(), 1);
    for _ in 0..50 {
        assert_eq!(log.append(&payload(lsn)).unwrap(), Lsn(lsn));
        lsn += 1;
    }
    check_log(&mut log, "after checkpoint");
}
