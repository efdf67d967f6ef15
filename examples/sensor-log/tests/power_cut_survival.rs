//! The host twin's story as a property, over many cut points: the firmware
//! logic (`sensor_log::boot`, `log_readings`, `check_survival`) on a strict
//! RAM NOR flash, with the power cut at (a sample of) every byte of a
//! session of appends, erases and segment headers included. After each
//! cut and reboot, every acknowledged event is in the log with its bytes,
//! and the interrupted append is absent or whole, never torn (whole when
//! the cut spared its bytes and fell in its padding). Then a second cut
//! lands in the next session's appends, and after that a clean append
//! must survive a third reboot.
//!
//! A second test runs the same over a full ring that drops its oldest
//! segment in the middle of the session (the drop is an erase the cut can
//! land in). Fault plans derive from the cut byte; a failure names it.
// Lengths in these tests are small: every cast fits.
#![allow(clippy::cast_possible_truncation)]

use segwal::Lsn;
use segwal_ram::{FaultPlan, TornFill};
use sensor_log::{Event, SCAN_BUFFER_BYTES, boot, check_survival, log_readings};

use sensor_log::host::{BLOCK_BYTES, Flash, LAYOUT, Log, SLOT_COUNT, WORD_BYTES};

/// Discards the firmware's narration: the test asserts instead.
struct Quiet;

impl core::fmt::Write for Quiet {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}

fn strict(seed: u64) -> FaultPlan {
    FaultPlan::new(seed)
        .strict(true)
        .torn_unit_bytes(WORD_BYTES as u32)
        .torn_fill(TornFill::Mixed)
}

fn mount(flash: &Flash, context: &str) -> Log {
    boot(flash.clone(), &LAYOUT, [0u8; SCAN_BUFFER_BYTES], &mut Quiet)
        .unwrap_or_else(|e| panic!("{context}: mount: {e}"))
}

/// Logs up to `count` readings; returns whether all were acknowledged.
fn log(log: &mut Log, count: u32, acknowledged: &mut Vec<(Lsn, Event)>) -> bool {
    log_readings(log, count, &mut Quiet, |lsn, event| {
        acknowledged.push((lsn, *event));
    })
    .is_ok()
}

/// Bytes of flash writes and erases so far: what `power_cut_at_byte`
/// counts.
fn stream_bytes(flash: &Flash) -> u64 {
    let erased: u64 = flash
        .device()
        .erase_counts()
        .iter()
        .map(|&c| u64::from(c))
        .sum();
    flash.device().stats().write_bytes + erased * BLOCK_BYTES as u64
}

/// Reboots and mounts, and checks the acknowledged events that the ring's
/// policy has not dropped: all there, intact. After them the log holds at
/// most `in_flight`, the append the power cut interrupted, and then whole:
/// a cut that spares the record's bytes (it falls in the padding after
/// them) leaves a valid record the caller was never told about. That one
/// joins `acknowledged`, as the log now counts it. Returns the log and
/// whether the interrupted append survived.
fn reboot_and_check(
    flash: &mut Flash,
    acknowledged: &mut Vec<(Lsn, Event)>,
    in_flight: Option<Event>,
    context: &str,
) -> (Log, bool) {
    *flash = flash.power_cycle();
    flash.device().set_fault_plan(strict(0));
    let mut log = mount(flash, context);
    let first = log.summary().first_lsn;
    let kept_from = acknowledged.partition_point(|(lsn, _)| *lsn < first);
    let survival = check_survival(&mut log, &acknowledged[kept_from..])
        .unwrap_or_else(|e| panic!("{context}: read back: {e}"));
    let intact = (acknowledged.len() - kept_from) as u64;
    assert_eq!(
        (survival.intact, survival.mismatch),
        (intact, None),
        "{context}: acknowledged up to {:?}",
        acknowledged.last()
    );
    if survival.unacknowledged == 0 {
        return (log, false);
    }
    assert_eq!(survival.unacknowledged, 1, "{context}: {survival:?}");
    let next = Lsn(acknowledged.last().map_or(1, |(lsn, _)| lsn.0 + 1));
    let mut kept = None;
    log.for_each_event(next, |lsn, event| kept = Some((lsn, event)))
        .unwrap_or_else(|e| panic!("{context}: read back: {e}"));
    let (lsn, event) = kept.expect("one record after the acknowledged ones");
    assert_eq!(
        (event, in_flight.is_some()),
        (in_flight, true),
        "{context}: the record after the acknowledged ones is the interrupted append, whole"
    );
    acknowledged.push((lsn, event.expect("checked above")));
    (log, true)
}

/// A flash with `history` events logged cleanly, and those events.
fn flash_with(history: u32) -> (Flash, Vec<(Lsn, Event)>) {
    let flash = Flash::blank(u64::from(SLOT_COUNT) * BLOCK_BYTES as u64);
    flash.device().set_fault_plan(strict(0));
    let mut acknowledged = Vec::new();
    let mut log = mount(&flash, "history");
    assert!(self::log(&mut log, history, &mut acknowledged));
    (flash, acknowledged)
}

/// Cut points over a clean session of `session` appends after `history`:
/// every byte of the first `dense` bytes, then a stride that lands in
/// every write and erase. Also how many segments the session dropped.
fn cut_points(history: u32, session: u32, dense: u64, stride: usize) -> (Vec<u64>, u64) {
    let (flash, mut acknowledged) = flash_with(history);
    let mut log = mount(&flash, "clean session");
    let before = stream_bytes(&flash);
    assert!(self::log(&mut log, session, &mut acknowledged));
    let total = stream_bytes(&flash) - before;
    let cuts = (0..dense.min(total))
        .chain((dense..total).step_by(stride))
        .collect();
    (cuts, log.dropped_segments())
}

/// What one cut point gave.
struct Outcome {
    /// Events in the log at the end.
    events: u64,
    /// Interrupted appends that survived whole (0 to 2).
    interrupted_kept: u32,
}

/// One cut at `cut` in a session after `history`, then a second cut in
/// the next session, then a clean append across one more reboot.
fn cut_twice_then_append(history: u32, session: u32, cut: u64) -> Outcome {
    let context = format!("history {history}, cut at byte {cut}");
    let (mut flash, mut acknowledged) = flash_with(history);
    let mut log = mount(&flash, &context);
    flash
        .device()
        .set_fault_plan(strict(cut).power_cut_at_byte(cut));
    let finished = self::log(&mut log, session, &mut acknowledged);
    assert!(!finished, "{context}: the session ended before the cut");
    let in_flight = Event::reading(log.next_tick());
    drop(log);

    // Recovery, then a second cut in the next appends: inside a record's
    // header or payload, or in the erase and header of a new segment.
    let (mut log, first_kept) =
        reboot_and_check(&mut flash, &mut acknowledged, Some(in_flight), &context);
    let second_cut = cut.wrapping_mul(7) % 100;
    let context = format!("{context}, then at byte {second_cut}");
    flash
        .device()
        .set_fault_plan(strict(cut ^ 0xA5).power_cut_at_byte(second_cut));
    let finished = self::log(&mut log, 5, &mut acknowledged);
    assert!(!finished, "{context}: the session ended before the cut");
    let in_flight = Event::reading(log.next_tick());
    drop(log);

    // Recovery again, and a clean append that must survive a reboot.
    let (mut log, second_kept) =
        reboot_and_check(&mut flash, &mut acknowledged, Some(in_flight), &context);
    assert!(self::log(&mut log, 3, &mut acknowledged), "{context}");
    drop(log);
    let context = format!("{context}, clean");
    let (log, clean_extra) = reboot_and_check(&mut flash, &mut acknowledged, None, &context);
    assert!(!clean_extra, "{context}");
    Outcome {
        events: log.summary().event_count(),
        interrupted_kept: u32::from(first_kept) + u32::from(second_kept),
    }
}

#[test]
fn every_acknowledged_event_survives_two_cuts_and_a_clean_append_survives_a_reboot() {
    // 70 events, then a session that fills the first segment (84 events of
    // 48 bytes in a 4 KiB slot) and rotates into the second.
    let (cuts, dropped) = cut_points(70, 30, 300, 7);
    assert_eq!(dropped, 0);
    let kept: u32 = cuts
        .iter()
        .map(|&cut| cut_twice_then_append(70, 30, cut).interrupted_kept)
        .sum();
    println!(
        "sensor-log power cuts: {} cut points, each followed by a second cut; \
         {kept} interrupted appends survived whole (cut in their padding), none torn",
        cuts.len()
    );
}

#[test]
fn a_full_ring_drops_only_its_oldest_segment_across_cuts() {
    // Enough history that the session fills the last free slot and
    // rotates: the ring drops its oldest segment first.
    let history = 3 * 84 + 70;
    let (cuts, dropped) = cut_points(history, 30, 0, 11);
    assert_eq!(dropped, 1, "the clean session drops one segment");
    for &cut in &cuts {
        let outcome = cut_twice_then_append(history, 30, cut);
        // Dropping frees one slot: two full segments of events and the
        // newest segment's stay.
        assert!(
            outcome.events >= 2 * 84,
            "cut at byte {cut}: only {} events left",
            outcome.events
        );
    }
    println!(
        "sensor-log power cuts, full ring: {} cut points",
        cuts.len()
    );
}
