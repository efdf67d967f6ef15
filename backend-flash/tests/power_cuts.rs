//! Power cuts at (a sample of) every byte of a ring-buffer workload with
//! rotations and dropped segments, on a strict NOR device with 4-byte torn
//! words (random, zero or old fill): after each cut the log reopens with
//! every acknowledged record, and recovery never programs a word twice nor
//! writes over torn bytes. Then a second cut lands during the next open and
//! appends, and after that reboot a clean append that returned `Ok` must
//! survive a third reboot (the phantom-header case: a record acknowledged
//! behind a torn header or tail must not vanish).
//!
//! Seeds derive from the cut byte; a failure prints it.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::Lsn;
use segwal_flash::RingMode;
use segwal_ram::{CrashModel, FaultPlan, RamDevice, TornFill};
use support::*;

const SLOTS: u32 = 4;
const RECORDS: u64 = 700;

fn plan(seed: u64, cut: Option<u64>) -> FaultPlan {
    let plan = FaultPlan::new(seed)
        .strict(true)
        .torn_unit_bytes(4)
        .torn_fill(TornFill::Mixed);
    match cut {
        Some(byte) => plan.power_cut_at_byte(byte),
        None => plan,
    }
}

/// Opens the log and appends up to `last`; returns the last acknowledged
/// LSN (0 if none) when the power goes or the work is done.
fn run(device: &RamDevice, last: u64) -> u64 {
    let Ok(mut log) = open_log(device, SLOTS, RingMode::DropOldest) else {
        return 0;
    };
    let mut acked = log.wal().next_lsn().0 - 1;
    while acked < last {
        match log.append(&payload(acked + 1)) {
            Ok(lsn) => {
                assert_eq!(lsn, Lsn(acked + 1));
                acked += 1;
            }
            Err(_) => break,
        }
    }
    acked
}

/// Reboots keeping every completed flash operation (NOR writes are durable
/// when they return), with a strict plan and an optional cut.
fn reboot(device: &RamDevice, seed: u64, cut: Option<u64>) -> RamDevice {
    let rebooted = device.reboot(&CrashModel::Live);
    rebooted.set_fault_plan(plan(seed, cut));
    rebooted
}

/// Opens after a cut and checks: every acknowledged record is there, at
/// most one unacknowledged record beyond it, everything reads back.
/// `read_all` reads every record by LSN and by iteration; without it the
/// records are checked by a full scan ([`segwal::Wal::verify`]), which
/// follows flash holes as reads do (`hole_reads.rs`).
fn open_and_check(device: &RamDevice, acked: u64, context: &str, read_all: bool) -> TestLog {
    let mut log = open_log(device, SLOTS, RingMode::DropOldest)
        .unwrap_or_else(|e| panic!("{context}: open failed: {e:?}"));
    let next = log.wal().next_lsn().0;
    assert!(
        next == acked + 1 || next == acked + 2,
        "{context}: next LSN {next}, acknowledged up to {acked}"
    );
    if acked > 0 {
        assert!(
            log.wal().first_lsn().0 <= acked,
            "{context}: the newest acknowledged record was dropped"
        );
    }
    // A torn tail the log stepped over stays on flash, and `verify`
    // reports it as a problem of the active segment; what matters is that
    // the scan finds every record the log counts.
    let report = log.wal_mut().verify().unwrap();
    assert_eq!(
        report.records,
        next - log.wal().first_lsn().0,
        "{context}: every record scanned: {report:?}"
    );
    if read_all {
        check_log(&mut log, context);
    }
    log
}

fn stream_bytes(device: &RamDevice) -> u64 {
    let erased: u64 = device.erase_counts().iter().map(|&c| u64::from(c)).sum();
    device.stats().write_bytes + erased * BLOCK_BYTES as u64
}

fn cut_points() -> Vec<u64> {
    let clean = strict_device(SLOTS as usize, 0);
    assert_eq!(run(&clean, RECORDS), RECORDS);
    let total = stream_bytes(&clean);
    // Every byte of the first segment's creation and first records, then a
    // stride that still lands in every write and erase of the run.
    let cuts: Vec<u64> = (0..600).chain((600..total).step_by(13)).collect();
    println!(
        "power cuts: {} cut points over {total} bytes of writes and erases",
        cuts.len()
    );
    cuts
}

fn cut_device(seed: u64, cut: u64) -> RamDevice {
    let device = RamDevice::nor_flash(
        u64::from(SLOTS) * BLOCK_BYTES as u64,
        WORD_BYTES as u32,
        BLOCK_BYTES as u32,
    );
    device.set_fault_plan(plan(seed, Some(cut)));
    device
}

#[test]
fn every_acknowledged_record_survives_a_cut() {
    for cut in cut_points() {
        let seed = 0xC07_0000 + cut;
        let context = format!("cut at byte {cut} (seed {seed:#x})");
        let device = cut_device(seed, cut);
        let acked = run(&device, RECORDS);
        let rebooted = reboot(&device, seed ^ 1, None);
        drop(open_and_check(&rebooted, acked, &context, true));
    }
}

/// The full sequence, with records after flash holes checked by scan only.
#[test]
fn a_second_cut_in_recovery_then_a_clean_append_survives() {
    second_cut_then_clean_append(false);
}

/// The same, reading every record: fails on the core's reads after a hole.
#[test]
fn a_second_cut_in_recovery_then_a_clean_append_survives_and_reads_back() {
    second_cut_then_clean_append(true);
}

fn second_cut_then_clean_append(read_all: bool) {
    for cut in cut_points() {
        let seed = 0xC07_0000 + cut;
        let context = format!("cut at byte {cut} (seed {seed:#x})");
        let device = cut_device(seed, cut);
        let acked = run(&device, RECORDS);

        // A second cut during the next open and the appends after it.
        let second_cut = (seed.wrapping_mul(0x9E37_79B9) >> 7) % 5000;
        let recovering = reboot(&device, seed ^ 2, Some(second_cut));
        let acked_again = run(&recovering, acked + 30).max(acked);

        // Second reboot: check, then one clean append.
        let context = format!("{context}, second cut at byte {second_cut}");
        let second = reboot(&recovering, seed ^ 3, None);
        let mut log = open_and_check(&second, acked_again, &context, read_all);
        let lsn = log.wal().next_lsn();
        assert_eq!(log.append(&payload(lsn.0)).unwrap(), lsn, "{context}");
        drop(log);

        // Third reboot: the clean append survived.
        let third = reboot(&second, seed ^ 4, None);
        let context = format!("{context}, clean append of {lsn}");
        let log = open_and_check(&third, lsn.0, &context, read_all);
        assert_eq!(log.wal().next_lsn(), Lsn(lsn.0 + 1), "{context}");
    }
}
