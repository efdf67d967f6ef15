//! # sensor-log: a firmware's event log on NOR flash, `no_std`
//!
//! The logic of a small sensor firmware, written once and run in two
//! places: `examples/firmware` builds it for a Cortex-M4
//! (`thumbv7em-none-eabihf`) over a flash driver, and the host twin
//! (`cargo run -p sensor-log`) runs it over `segwal_ram::RamNorFlash`, a
//! RAM NOR flash that cuts the power where it is told to.
//!
//! Each boot does what [`run`] strings together:
//!
//! 1. [`boot`]: mount the [`segwal_flash::FlashLog`] (recovery reads the
//!    slot headers and scans the newest segment, cutting a torn tail), and
//!    report what survived: how many events, the first and next LSN, how
//!    the tail ended, the last few events decoded;
//! 2. [`log_readings`]: append sensor [`Event`]s, each written field by
//!    field through a [`segwal::RecordWriter`], so a record is whole or
//!    absent after a power cut;
//! 3. [`replay`]: read every event back through a [`segwal::RecordReader`].
//!
//! Generic over any `embedded_storage` [`NorFlash`] and any
//! `core::fmt::Write` console. No allocation (the caller gives the
//! [`SCAN_BUFFER_BYTES`] buffer; records sit in fixed-size stack buffers),
//! no `unsafe`, and no `core::fmt` on the firmware's path (see
//! [`Console`]).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod console;
mod event;
#[cfg(feature = "host")]
pub mod host;
mod log;

use core::fmt::Write;

use embedded_storage::nor_flash::NorFlash;
use segwal::Lsn;

pub use console::Console;
pub use event::{EVENT_LEN_BYTES, Event, SENSOR_COUNT};
pub use log::{Layout, SCAN_BUFFER_BYTES, SensorLog, SensorLogError, Summary};

/// The byte layout of an event record, field by field.
pub mod event_format {
    pub use crate::event::{MAGNITUDE, SENSOR, SENSOR_TAG, SIGN, TICK, TICK_TAG, VALUE_TAG};
}

/// How many of the newest events a boot report shows.
pub const RECENT_EVENTS_SHOWN: u64 = 3;

/// What [`replay`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replay {
    /// Records read.
    pub records: u64,
    /// Records that were not events.
    pub undecodable: u64,
    /// `true` when every event's tick was above the previous event's.
    pub ticks_increase: bool,
    /// The newest event.
    pub last: Option<(Lsn, Event)>,
}

/// Boot: mounts the log in `flash` and reports to `console` what
/// survived: the count, the first and next LSN, how the tail ended, and
/// the last [`RECENT_EVENTS_SHOWN`] events.
///
/// # Errors
///
/// As for [`SensorLog::mount`] and [`SensorLog::for_each_event`].
pub fn boot<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, C: Write, const MAX_SEGMENTS: usize>(
    flash: F,
    layout: &Layout,
    buffer: B,
    console: &mut C,
) -> Result<SensorLog<F, B, MAX_SEGMENTS>, SensorLogError<F::Error>> {
    let mut log = SensorLog::mount(flash, layout, buffer)?;
    let summary = log.summary();
    let mut out = Console::new(console);
    out.text("[boot] mounted: ")
        .number(summary.event_count())
        .text(" events");
    if summary.event_count() > 0 {
        out.text(" (LSN ")
            .lsn(summary.first_lsn)
            .text(" to ")
            .number(summary.next_lsn.0 - 1)
            .text(")");
    }
    out.text(", next LSN ")
        .lsn(summary.next_lsn)
        .text(", segments in use: ")
        .number(summary.segment_count as u64)
        .text("; tail: ")
        .tail(summary.tail)
        .line();
    let from = Lsn(summary.next_lsn.0.saturating_sub(RECENT_EVENTS_SHOWN));
    log.for_each_event(from, |lsn, event| {
        out.text("[boot]   LSN ").lsn(lsn).text(": ");
        match event {
            Some(event) => out.event(&event).line(),
            None => out.text("not an event").line(),
        }
    })?;
    Ok(log)
}

/// Takes `count` readings and appends each (see
/// [`SensorLog::record_reading`]), calling `acknowledged` with every event
/// the log acknowledged (durable from then on). Returns how many were
/// appended.
///
/// # Errors
///
/// As for [`SensorLog::record`]: the first failed append stops the run;
/// the events before it were acknowledged.
pub fn log_readings<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, C: Write, const M: usize>(
    log: &mut SensorLog<F, B, M>,
    count: u32,
    console: &mut C,
    mut acknowledged: impl FnMut(Lsn, &Event),
) -> Result<u32, SensorLogError<F::Error>> {
    let mut out = Console::new(console);
    let first_tick = log.next_tick();
    let dropped_before = log.dropped_segments();
    for appended in 0..count {
        match log.record_reading() {
            Ok((lsn, event)) => acknowledged(lsn, &event),
            Err(error) => {
                out.text("[log] append failed after ")
                    .number(u64::from(appended))
                    .text(" readings")
                    .line();
                return Err(error);
            }
        }
    }
    out.text("[log] appended ")
        .number(u64::from(count))
        .text(" readings (ticks ")
        .number(u64::from(first_tick))
        .text(" to ")
        .number(u64::from(log.next_tick().wrapping_sub(1)))
        .text("), next LSN ")
        .lsn(log.summary().next_lsn);
    if log.dropped_segments() > dropped_before {
        out.text("; the full ring dropped ")
            .number(log.dropped_segments() - dropped_before)
            .text(" oldest segments");
    }
    out.line();
    Ok(count)
}

/// Reads every event in the log, oldest first, and reports the count.
///
/// # Errors
///
/// As for [`SensorLog::for_each_event`].
pub fn replay<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, C: Write, const M: usize>(
    log: &mut SensorLog<F, B, M>,
    console: &mut C,
) -> Result<Replay, SensorLogError<F::Error>> {
    let mut replay = Replay {
        ticks_increase: true,
        ..Replay::default()
    };
    let mut previous_tick = None;
    replay.records = log.for_each_event(Lsn(0), |lsn, event| match event {
        Some(event) => {
            replay.ticks_increase &= previous_tick.is_none_or(|tick| event.tick > tick);
            previous_tick = Some(event.tick);
            replay.last = Some((lsn, event));
        }
        None => replay.undecodable += 1,
    })?;
    let mut out = Console::new(console);
    out.text("[replay] ")
        .number(replay.records)
        .text(" records, ")
        .number(replay.undecodable)
        .text(" not events, ticks ")
        .text(if replay.ticks_increase {
            "in order"
        } else {
            "OUT OF ORDER"
        })
        .line();
    Ok(replay)
}

/// What [`check_survival`] found: every acknowledged event is in the log,
/// at its LSN, with its bytes, when `mismatch` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Survival {
    /// Acknowledged events found at their LSN with the same event.
    pub intact: u64,
    /// The first acknowledged LSN missing from the log or holding another
    /// record.
    pub mismatch: Option<Lsn>,
    /// Records after the last acknowledged one: an unacknowledged append
    /// the log kept (a torn one must never be among them).
    pub unacknowledged: u64,
}

/// Checks `acknowledged` (events the log acknowledged, in LSN order, with
/// no gap) against the log, reading from the first of them.
///
/// # Errors
///
/// As for [`SensorLog::for_each_event`].
pub fn check_survival<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, const M: usize>(
    log: &mut SensorLog<F, B, M>,
    acknowledged: &[(Lsn, Event)],
) -> Result<Survival, SensorLogError<F::Error>> {
    let mut survival = Survival::default();
    let Some(&(first_lsn, _)) = acknowledged.first() else {
        survival.unacknowledged = log.summary().event_count();
        return Ok(survival);
    };
    if log.summary().first_lsn > first_lsn {
        survival.mismatch = Some(first_lsn);
        return Ok(survival);
    }
    let mut expected = acknowledged.iter();
    log.for_each_event(first_lsn, |lsn, event| match expected.next() {
        Some(&(acked_lsn, acked_event)) => {
            if survival.mismatch.is_none() && (lsn, event) == (acked_lsn, Some(acked_event)) {
                survival.intact += 1;
            } else {
                survival.mismatch = survival.mismatch.or(Some(acked_lsn));
            }
        }
        None => survival.unacknowledged += 1,
    })?;
    if let Some(&(missing_lsn, _)) = expected.next() {
        survival.mismatch = survival.mismatch.or(Some(missing_lsn));
    }
    Ok(survival)
}

/// One boot of the firmware: [`boot`], [`log_readings`] of `readings`
/// events, [`replay`]. Returns what the replay found.
///
/// # Errors
///
/// The first error of the three steps.
///
/// # Example
///
/// Two boots on the host twin's RAM NOR flash (the firmware passes its
/// flash driver and UART instead):
///
/// ```
/// use segwal_ram::RamNorFlash;
/// use sensor_log::{Layout, SCAN_BUFFER_BYTES};
///
/// let flash = RamNorFlash::<4, 4096>::blank(4 * 4096);
/// let layout = Layout { region_start: 0, slot_count: 4, slot_size_bytes: 4096, salt_seed: 7 };
/// let mut console = String::new();
/// let buffer = [0u8; SCAN_BUFFER_BYTES];
/// let replay = sensor_log::run::<_, _, _, 4>(flash.clone(), &layout, buffer, &mut console, 10)?;
/// assert_eq!(replay.records, 10);
///
/// // The next boot finds them, and logs after them.
/// let replay = sensor_log::run::<_, _, _, 4>(flash.power_cycle(), &layout, buffer, &mut console, 5)?;
/// assert_eq!((replay.records, replay.ticks_increase), (15, true));
/// assert!(console.contains("[boot] mounted: 10 events (LSN 1 to 10)"));
/// # Ok::<(), sensor_log::SensorLogError<segwal_ram::RamNorError>>(())
/// ```
pub fn run<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, C: Write, const MAX_SEGMENTS: usize>(
    flash: F,
    layout: &Layout,
    buffer: B,
    console: &mut C,
    readings: u32,
) -> Result<Replay, SensorLogError<F::Error>> {
    let mut log = boot::<F, B, C, MAX_SEGMENTS>(flash, layout, buffer, console)?;
    log_readings(&mut log, readings, console, |_, _| {})?;
    replay(&mut log, console)
}
