//! `segwal repair`: cut a torn tail, and, only when asked, the log at the
//! first damaged record.
//!
//! First a read-only look (no lock, nothing written): the log's full scan
//! and the newest segment's tail. That decides:
//!
//! | found                                   | repair                           | `--dry-run`           |
//! |-----------------------------------------|----------------------------------|-----------------------|
//! | clean                                   | nothing, exit 0                  | says so, exit 0       |
//! | torn tail only                          | open read-write: it is cut       | says what, exit 0     |
//! | damage, no `--truncate-at-corruption`   | refuses, nothing written, exit 1 | the same              |
//! | damage, `--truncate-at-corruption`      | open read-write, point-in-time   | says what, exit 0     |
//!
//! The read-write open is the library's own (`segwal_std::Wal::open_with`
//! with full verification): it takes the lock, so a writer that started
//! since the look is still refused, and in strict mode it refuses damage by
//! itself, so the look only words what the library would do.

use std::io::Write;
use std::path::Path;

use segwal::{OpenVerification, RecoveryMode, WalTailState};
use segwal_std::{Wal, WalOptions};

use crate::error::{Describe, Outcome, describe};
use crate::log::{self, TailFinding};

/// The first damage found, where the log would be cut.
#[derive(Debug, Clone, Copy)]
struct Damage {
    segment: u64,
    offset: u64,
    /// The first LSN that would be dropped.
    lsn: u64,
}

/// What the read-only look found.
#[derive(Debug)]
struct Findings {
    damage: Option<Damage>,
    tail: TailFinding,
    next_lsn: u64,
    /// The newest segment's size and checksum, for a segment the cut may
    /// have to create.
    options: WalOptions,
}

/// Runs `segwal repair`.
///
/// # Errors
///
/// A path that is not a log, a locked log, a log that does not open
/// (damaged headers or chain: nothing to cut them at), a failed write.
pub fn run(
    dir: &Path,
    truncate_at_corruption: bool,
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    log::check_log_dir(dir)?;
    if let Some(pid) = log::lock_holder(dir)? {
        let locked = segwal_std::Error::Locked {
            path: dir.to_path_buf(),
            holder_pid: Some(pid),
        };
        return Err(anyhow::Error::new(describe(&locked, dir)));
    }
    let found = look(dir)?;
    let would = if dry_run { "would " } else { "" };
    match (found.damage, truncate_at_corruption) {
        (None, _) => {
            let TailFinding::Torn {
                segment,
                offset,
                bytes,
            } = found.tail
            else {
                writeln!(out, "{}: clean, nothing to repair", dir.display())?;
                return Ok(Outcome::Success);
            };
            writeln!(
                out,
                "{would}cut the torn tail: {bytes} bytes after the last record of segment \
                 {segment} (offset {offset}), never acknowledged"
            )?;
        }
        (Some(damage), false) => {
            writeln!(
                out,
                "refusing: acknowledged records are damaged at segment {} offset {} (LSN {}). \
                 Cutting there drops {}. To cut anyway, rerun with --truncate-at-corruption \
                 (first copy the directory if the records matter)",
                damage.segment,
                damage.offset,
                damage.lsn,
                dropped(&damage, &found),
            )?;
            return Ok(Outcome::Problems);
        }
        (Some(damage), true) => {
            writeln!(
                out,
                "{would}cut the log before the damage at segment {} offset {}, dropping {}",
                damage.segment,
                damage.offset,
                dropped(&damage, &found),
            )?;
        }
    }
    if dry_run {
        writeln!(out, "dry run: nothing was written")?;
        return Ok(Outcome::Success);
    }
    repair(dir, &found, truncate_at_corruption, out)?;
    Ok(Outcome::Success)
}

/// The records a cut at `damage` drops, in words.
fn dropped(damage: &Damage, found: &Findings) -> String {
    if matches!(found.tail, TailFinding::Damaged { segment, .. } if segment == damage.segment) {
        // The records after damage in the newest segment are not counted by
        // the log (its records end at the damage), so there is no number.
        return format!(
            "LSN {} and every record written after the damage in segment {}",
            damage.lsn, damage.segment
        );
    }
    let last = found.next_lsn.saturating_sub(1).max(damage.lsn);
    format!(
        "LSN {} to {last} ({} records)",
        damage.lsn,
        last - damage.lsn + 1
    )
}

/// The read-only look.
fn look(dir: &Path) -> anyhow::Result<Findings> {
    let mut log = log::open_read_only(dir, None)?;
    let report = log.verify().describe(dir)?;
    let tail = log::newest_tail(&mut log, dir)?;
    let newest = log.segments().last().map(|info| info.header);
    // A torn tail shows in the scan as a problem at the newest segment's
    // records end; anything else is damage.
    let damage = report
        .problems
        .iter()
        .find(|problem| match tail {
            TailFinding::Torn {
                segment, offset, ..
            } => (problem.segment, problem.offset) != (segment, offset),
            _ => true,
        })
        .map(|problem| Damage {
            segment: problem.segment,
            offset: problem.offset,
            lsn: problem.lsn,
        });
    let mut options = WalOptions {
        verification: OpenVerification::Full,
        prepare_next_segment: false,
        ..WalOptions::default()
    };
    if let Some(header) = newest {
        options.segment_size_bytes = u64::from(header.segment_size_bytes);
        options.checksum_kind = header.checksum_kind;
    }
    Ok(Findings {
        damage,
        tail,
        next_lsn: log.next_lsn().0,
        options,
    })
}

/// The read-write open that cuts, and a clean close.
fn repair(
    dir: &Path,
    found: &Findings,
    truncate_at_corruption: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let options = WalOptions {
        recovery_mode: if truncate_at_corruption {
            RecoveryMode::TruncateAtCorruption
        } else {
            RecoveryMode::Strict
        },
        ..found.options.clone()
    };
    let wal = Wal::open_with(dir, &options).describe(dir)?;
    match wal.tail_state() {
        WalTailState::Clean => writeln!(out, "nothing was cut")?,
        WalTailState::TruncatedAt {
            segment,
            offset,
            bytes_discarded,
            records_discarded,
        } => {
            write!(
                out,
                "cut at segment {segment} offset {offset}: {bytes_discarded} bytes discarded"
            )?;
            if records_discarded > 0 {
                write!(out, ", {records_discarded} records among them")?;
            }
            writeln!(out)?;
        }
    }
    let (first, next) = (wal.first_lsn().0, wal.next_lsn().0);
    wal.close().describe(dir)?;
    if next > first {
        writeln!(
            out,
            "{}: repaired; it holds LSN {first} to {}",
            dir.display(),
            next - 1
        )?;
    } else {
        writeln!(out, "{}: repaired; it holds no records", dir.display())?;
    }
    Ok(())
}
