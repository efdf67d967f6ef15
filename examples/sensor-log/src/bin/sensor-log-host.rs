//! The host twin of the sensor-log firmware: the same logic
//! (`sensor_log::boot`, `log_readings`, `replay`) over `RamNorFlash`, a
//! RAM NOR flash with NOR rules (bits only clear when programmed, erase to
//! `0xFF`; strict: a word programmed twice panics) that cuts the power
//! where it is told to. It narrates six boots:
//!
//! 1. a blank flash: mount, log, replay;
//! 2. the power fails in the middle of an append (header written, payload
//!    torn), and the board reboots from what the flash holds;
//! 3. recovery: every acknowledged event is there, the torn one is not;
//! 4. a second cut in a row, this time inside the next record's header;
//! 5. recovery again, then a clean append;
//! 6. the clean append survived the reboot.
//!
//! Every check also runs in `tests/power_cut_survival.rs` over many cut
//! points; here it is told as a story, and a failed check exits non-zero.
// The geometry constants are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

use std::process::ExitCode;

use segwal::Lsn;
use segwal_ram::{FaultPlan, TornFill};
use sensor_log::{Event, SCAN_BUFFER_BYTES, Survival, boot, check_survival, log_readings, replay};

use sensor_log::host::{BLOCK_BYTES, Flash, LAYOUT, Log, SLOT_COUNT, WORD_BYTES};

/// The seed of every fault plan (torn fill); printed so a run replays.
const SEED: u64 = 0x5E45_0001;

/// The firmware's console: stdout.
struct Stdout;

impl core::fmt::Write for Stdout {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        print!("{text}");
        Ok(())
    }
}

/// The board across reboots: its flash (a handle sharing the bytes with
/// the one the firmware owns) and every event the log acknowledged.
struct Board {
    flash: Flash,
    acknowledged: Vec<(Lsn, Event)>,
}

impl Board {
    /// Powers the firmware up and mounts the log: its boot report prints.
    fn boot(&self) -> Result<Log, String> {
        boot(
            self.flash.clone(),
            &LAYOUT,
            [0u8; SCAN_BUFFER_BYTES],
            &mut Stdout,
        )
        .map_err(|e| format!("mount failed: {e}"))
    }

    /// Logs `count` readings, remembering each acknowledged one.
    fn log(&mut self, log: &mut Log, count: u32) -> Result<u32, String> {
        let acknowledged = &mut self.acknowledged;
        log_readings(log, count, &mut Stdout, |lsn, event| {
            acknowledged.push((lsn, *event));
        })
        .map_err(|e| e.to_string())
    }

    /// Cuts the power `byte` bytes into the flash writes from now on.
    fn arm_power_cut(&self, byte: u64) {
        let plan = FaultPlan::new(SEED)
            .strict(true)
            .torn_unit_bytes(WORD_BYTES as u32)
            .torn_fill(TornFill::Mixed)
            .power_cut_at_byte(byte);
        self.flash.device().set_fault_plan(plan);
    }

    /// The reboot: the flash keeps every program that completed and the
    /// torn word (NOR has no write cache); the power is back on.
    fn reboot(&mut self) {
        self.flash = self.flash.power_cycle();
        self.flash
            .device()
            .set_fault_plan(FaultPlan::new(SEED).strict(true));
        println!("(host) reboot: the flash keeps what it held when the power went");
    }

    /// Checks the mounted log against what was acknowledged.
    fn check(&self, log: &mut Log) -> Result<(), String> {
        let survival =
            check_survival(log, &self.acknowledged).map_err(|e| format!("check: {e}"))?;
        let last = self.acknowledged.last().map_or(0, |(lsn, _)| lsn.0);
        match survival {
            Survival {
                mismatch: None,
                unacknowledged: 0,
                intact,
            } => {
                println!(
                    "(host) check: all {intact} acknowledged events read back (LSN 1 to {last}) \
                     with their bytes, and nothing else"
                );
                Ok(())
            }
            other => Err(format!(
                "acknowledged up to LSN {last}, the log says {other:?}"
            )),
        }
    }
}

fn step(title: &str) {
    println!("\n== {title} ==");
}

fn story() -> Result<(), String> {
    println!(
        "sensor-log, host twin: the firmware's logic over a RAM NOR flash \
         ({SLOT_COUNT} slots of {BLOCK_BYTES} B, {WORD_BYTES}-byte words, strict), seed {SEED:#x}"
    );
    let mut board = Board {
        flash: Flash::blank(u64::from(SLOT_COUNT) * BLOCK_BYTES as u64),
        acknowledged: Vec::new(),
    };
    board
        .flash
        .device()
        .set_fault_plan(FaultPlan::new(SEED).strict(true));

    step("boot 1: a blank flash");
    let mut log = board.boot()?;
    board.log(&mut log, 40)?;
    replay(&mut log, &mut Stdout).map_err(|e| e.to_string())?;

    step("boot 2: the power fails in the middle of an append");
    drop(log);
    let mut log = board.boot()?;
    board.log(&mut log, 12)?;
    let torn = Event::reading(log.next_tick());
    // A record is a 16-byte header and the 27-byte event: byte 24 is in
    // the payload, so the header lands whole and the payload is torn.
    println!(
        "(host) the power will fail 24 bytes into the next append (tick {})",
        torn.tick
    );
    board.arm_power_cut(24);
    match board.log(&mut log, 5) {
        Err(error) => println!("(host) that append failed, unacknowledged: {error}"),
        Ok(_) => return Err("the append survived its power cut".into()),
    }
    drop(log);
    board.reboot();

    step("boot 3: recovery");
    let mut log = board.boot()?;
    board.check(&mut log)?;
    let mut torn_found = false;
    log.for_each_event(Lsn(0), |_, event| torn_found |= event == Some(torn))
        .map_err(|e| e.to_string())?;
    if torn_found {
        return Err(format!("the torn event (tick {}) came back", torn.tick));
    }
    println!(
        "(host) the torn event (tick {}) is not in the log",
        torn.tick
    );

    step("boot 4: a second cut in a row, inside the next record's header");
    println!("(host) the power will fail 8 bytes into the next append");
    board.arm_power_cut(8);
    match board.log(&mut log, 5) {
        Err(error) => println!("(host) that append failed, unacknowledged: {error}"),
        Ok(_) => return Err("the append survived its power cut".into()),
    }
    drop(log);
    board.reboot();

    step("boot 5: recovery again, then a clean append");
    let mut log = board.boot()?;
    board.check(&mut log)?;
    board.log(&mut log, 20)?;
    replay(&mut log, &mut Stdout).map_err(|e| e.to_string())?;
    drop(log);
    board.reboot();

    step("boot 6: the clean append survived the reboot");
    let mut log = board.boot()?;
    board.check(&mut log)?;
    board.log(&mut log, 10)?;
    let replayed = replay(&mut log, &mut Stdout).map_err(|e| e.to_string())?;
    if replayed.undecodable > 0 || !replayed.ticks_increase {
        return Err(format!("replay: {replayed:?}"));
    }
    board.check(&mut log)?;
    Ok(())
}

fn main() -> ExitCode {
    match story() {
        Ok(()) => {
            println!("\nok: every acknowledged event survived two power cuts in a row");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\nFAILED: {error}");
            ExitCode::FAILURE
        }
    }
}
