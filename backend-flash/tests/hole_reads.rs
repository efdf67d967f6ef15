//! Reads after a flash hole: after a torn record write on flash, the log
//! resumes past the torn words and flags its next record
//! `RESUMES_AFTER_HOLE`. The open-time scan follows the hole, so the record
//! is counted. `Wal::read` and `Wal::iter` once located records by
//! walking record headers by their length, landed on the torn record and
//! failed; on flash they now take the checked walk that follows holes.
//! This test keeps that bug fixed.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::Lsn;
use segwal_flash::RingMode;
use segwal_ram::{CrashModel, FaultPlan, TornFill};
use support::*;

#[test]
fn a_record_after_a_hole_reads_back() {
    let device = strict_device(4, 21);
    let mut log = open_log(&device, 4, RingMode::RefuseWhenFull).unwrap();
    for lsn in 1..=5u64 {
        log.append(&payload(lsn)).unwrap();
    }
    // Tear the sixth record after its header: the header is intact, the
    // payload is not.
    device.set_fault_plan(
        FaultPlan::new(22)
            .strict(true)
            .power_cut_at_byte(20)
            .torn_unit_bytes(4)
            .torn_fill(TornFill::Zero),
    );
    assert!(log.append(&[0xAB; 40]).is_err());
    drop(log);
    let rebooted = device.reboot(&CrashModel::Live);
    rebooted.set_fault_plan(FaultPlan::new(23).strict(true));
    let mut log = open_log(&rebooted, 4, RingMode::RefuseWhenFull).unwrap();
    assert_eq!(log.wal().next_lsn(), Lsn(6));
    assert_eq!(log.append(&payload(6)).unwrap(), Lsn(6));
    assert_eq!(&*log.wal_mut().read(Lsn(6)).unwrap(), &payload(6)[..]);
    check_log(&mut log, "after the hole");
}
