//! `segwal tail`: the last records, and with `--follow` every record
//! another process appends after them, read-only.
//!
//! Following polls: reopen the log read-only (what `refresh` costs: every
//! header and a scan of the newest segment), print the records past the
//! last one printed, sleep. The walk resumes at the offset where the last
//! one ended, so a poll reads only the new records.

use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::Context;

use crate::args::RecordFormat;
use crate::error::Outcome;
use crate::log::{self, CoreLog};
use crate::records;

/// Failed reopens in a row before `--follow` gives up: a reopen can fail
/// while the writer is between two steps (a segment checkpointed while it
/// was being listed), but not for long.
const REOPEN_FAILURES_MAX: u32 = 5;

/// What `segwal tail` was asked.
#[derive(Debug, Clone, Copy)]
pub struct TailArgs {
    /// Keep polling.
    pub follow: bool,
    /// Existing records to print first.
    pub lines: u64,
    /// How records are printed.
    pub format: RecordFormat,
    /// Time between polls.
    pub poll: Duration,
}

/// Runs `segwal tail`.
///
/// # Errors
///
/// A path that is not a log, a damaged record, a log that stops opening
/// for [`REOPEN_FAILURES_MAX`] polls in a row, a failed write.
pub fn run(dir: &Path, args: TailArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut log = log::open_read_only(dir, None)?;
    let mut next = log
        .next_lsn()
        .0
        .saturating_sub(args.lines)
        .max(log.first_lsn().0);
    let mut resume = None;
    // `--follow` runs until it is interrupted, as `tail -f` does: the loop
    // has no bound on purpose; each pass sleeps for the poll interval.
    loop {
        resume = records::walk(
            &mut log,
            dir,
            next..u64::MAX,
            resume,
            &mut |place, payload| records::print_record(out, args.format, place, payload),
        )?;
        next = next.max(log.next_lsn().0);
        out.flush().context("writing stdout")?;
        if !args.follow {
            return Ok(Outcome::Success);
        }
        thread::sleep(args.poll);
        log = reopen(dir, args.poll)?;
        if log.next_lsn().0 < next {
            eprintln!(
                "segwal: the log was truncated after LSN {}; following from there",
                log.next_lsn().0.saturating_sub(1)
            );
            next = log.next_lsn().0;
            resume = None;
        }
        if log.first_lsn().0 > next {
            eprintln!(
                "segwal: LSN {next} to {} were checkpointed away before they could be printed",
                log.first_lsn().0 - 1
            );
            next = log.first_lsn().0;
            resume = None;
        }
    }
}

fn reopen(dir: &Path, poll: Duration) -> anyhow::Result<Box<CoreLog>> {
    let mut failures = 0;
    loop {
        match log::open_read_only(dir, None) {
            Ok(log) => return Ok(log),
            Err(error) => {
                failures += 1;
                if failures >= REOPEN_FAILURES_MAX {
                    return Err(error);
                }
                thread::sleep(poll);
            }
        }
    }
}
