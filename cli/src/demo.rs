//! `segwal demo`: the main job, end to end, in a temporary directory.
//!
//! 1. Several threads append through one [`SharedWal`]; each append
//!    returns only once its record is durable (group commit).
//! 2. A writer *process* (this binary's hidden `demo-writer` command) does
//!    the same and reports each acknowledged record on stdout as
//!    `ack LSN THREAD SEQ`; after a number of acknowledgements it is killed
//!    with SIGKILL while its threads are still writing.
//! 3. The log is reopened (timed), every acknowledged record of both
//!    phases is read back and compared byte for byte (a payload is a pure
//!    function of its thread and sequence number, so the ack line is all
//!    the check needs), and the whole log gets a full checksum scan.
//!
//! A SIGKILL loses nothing the kernel has accepted: written bytes are in
//! the page cache. What the kill can leave is a write cut in the middle
//! and records written but not yet acknowledged; the summary reports both.
//! Power cuts, which also drop unsynced bytes, are simulated by the crash
//! tests of the `segwal-tests` crate.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use segwal::{Lsn, WalTailState};
use segwal_std::{SharedWal, Wal, WalOptions};

use crate::error::{Describe, Outcome};

/// Appending threads, in this process and in the writer process.
const THREADS: u32 = 4;
/// Records each thread appends in phase 1, at most.
const PHASE_ONE_RECORDS_PER_THREAD: u64 = 2_000;
/// Phase 1 stops early after this long (a slow disk).
const PHASE_ONE_TIME_MAX: Duration = Duration::from_secs(3);
/// Acknowledgements the writer process gets before the kill.
const ACKS_BEFORE_KILL: u64 = 1_000;
/// The kill comes after this long at the latest (a slow disk).
const KILL_AFTER_MAX: Duration = Duration::from_secs(4);
/// Records each writer thread appends at most; it is killed long before.
const WRITER_RECORDS_PER_THREAD_MAX: u64 = 1_000_000;
/// The writer stops by itself after this long, should no kill come.
const WRITER_TIME_MAX: Duration = Duration::from_secs(60);
/// Small segments, so the demo rotates through several.
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Bytes per payload.
const PAYLOAD_BYTES: usize = 200;

/// The payload thread `thread` appends as its `seq`th record.
fn payload(thread: u32, seq: u64) -> Vec<u8> {
    let mut bytes = format!("segwal demo: thread {thread}, record {seq}; ").into_bytes();
    let mut fill = u64::from(thread) * 7 + seq;
    while bytes.len() < PAYLOAD_BYTES {
        // Within 0..26: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        bytes.push(b'a' + (fill % 26) as u8);
        fill += 1;
    }
    bytes
}

/// An acknowledged record: its LSN and what it must hold.
#[derive(Debug, Clone, Copy)]
struct Ack {
    lsn: u64,
    thread: u32,
    seq: u64,
}

fn options() -> WalOptions {
    WalOptions {
        segment_size_bytes: SEGMENT_BYTES,
        ..WalOptions::default()
    }
}

/// Runs `segwal demo`.
///
/// # Errors
///
/// When the temporary directory cannot be made, the writer process cannot
/// be started or dies before it was killed, or any log operation fails.
/// A lost acknowledged record is not an error: it is reported, with
/// [`Outcome::Problems`].
pub fn run(out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let temp = tempfile::Builder::new()
        .prefix("segwal-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = temp.path().join("wal");
    writeln!(
        out,
        "segwal demo in {} (removed at the end)",
        temp.path().display()
    )?;
    writeln!(
        out,
        "  {} KiB segments, CRC32C, every acknowledgement after fdatasync",
        SEGMENT_BYTES / 1024
    )?;

    let (mut acks, elapsed, first_of_writer) = phase_one(&dir)?;
    let rate = records_per_second(acks.len(), elapsed);
    writeln!(
        out,
        "1. {THREADS} threads appended {} records through one log, each acknowledged once \
         durable (group commit): {:.2} s, {rate} records/s",
        acks.len(),
        elapsed.as_secs_f64()
    )?;

    let killed = phase_two(&dir)?;
    writeln!(
        out,
        "2. a writer process (pid {}, {THREADS} threads) was killed with SIGKILL after {} \
         acknowledgements, while writing; {} acknowledged in all",
        killed.pid,
        killed.acks_at_kill,
        killed.acks.len()
    )?;
    let writer_acks = killed.acks.len() as u64;
    acks.extend(killed.acks);

    let checked = phase_three(&dir, &acks)?;
    drop(temp);
    let unacknowledged = checked
        .next_lsn
        .saturating_sub(first_of_writer)
        .saturating_sub(writer_acks);
    print_recovery(out, &checked, acks.len() as u64, unacknowledged)?;
    if checked.lost.is_empty() && checked.scan_clean {
        writeln!(out, "OK: every acknowledged record survived the crash")?;
        Ok(Outcome::Success)
    } else {
        writeln!(out, "FAILED: acknowledged records were lost or damaged")?;
        Ok(Outcome::Problems)
    }
}

/// Phase 3's lines: the reopen, the read-back and the scan.
fn print_recovery(
    out: &mut dyn Write,
    checked: &Checked,
    acks: u64,
    unacknowledged: u64,
) -> anyhow::Result<()> {
    let open_ms = checked.open_time.as_secs_f64() * 1e3;
    match checked.tail {
        WalTailState::Clean => writeln!(
            out,
            "3. reopened in {open_ms:.1} ms; nothing to discard: no write was cut in the middle"
        )?,
        WalTailState::TruncatedAt {
            segment,
            offset,
            bytes_discarded,
            ..
        } => writeln!(
            out,
            "3. reopened in {open_ms:.1} ms; discarded a torn tail of {bytes_discarded} bytes \
             (segment {segment}, offset {offset}): the write the kill cut short, never \
             acknowledged"
        )?,
    }
    writeln!(
        out,
        "   {} of {acks} acknowledged records read back byte for byte; {unacknowledged} \
         written but not yet acknowledged at the kill survived too",
        acks - checked.lost.len() as u64,
    )?;
    writeln!(
        out,
        "   full checksum scan: {} segments, {} records, {}",
        checked.segments,
        checked.records,
        if checked.scan_clean {
            "clean"
        } else {
            "PROBLEMS"
        }
    )?;
    for ack in checked.lost.iter().take(10) {
        writeln!(
            out,
            "   LOST: LSN {} (thread {}, record {})",
            ack.lsn, ack.thread, ack.seq
        )?;
    }
    Ok(())
}

fn records_per_second(count: usize, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    // Display only; far below 2^53.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let rate = (count as f64 / seconds).round() as u64;
    rate
}

/// Phase 1: threads of this process append through one `SharedWal`.
/// Returns the acknowledgements, the time taken and the next LSN.
fn phase_one(dir: &Path) -> anyhow::Result<(Vec<Ack>, Duration, u64)> {
    let wal = SharedWal::open(dir, &options()).describe(dir)?;
    let started = Instant::now();
    let deadline = started + PHASE_ONE_TIME_MAX;
    let acks = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let wal = &wal;
                scope.spawn(move || -> anyhow::Result<Vec<Ack>> {
                    let mut acks = Vec::new();
                    for seq in 0..PHASE_ONE_RECORDS_PER_THREAD {
                        if Instant::now() > deadline {
                            break;
                        }
                        let lsn = wal.append(&payload(thread, seq)).describe(dir)?;
                        acks.push(Ack {
                            lsn: lsn.0,
                            thread,
                            seq,
                        });
                    }
                    Ok(acks)
                })
            })
            .collect();
        let mut acks = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(result) => acks.extend(result?),
                Err(_) => bail!("an appending thread panicked"),
            }
        }
        Ok(acks)
    })?;
    let elapsed = started.elapsed();
    let next_lsn = wal.next_lsn().0;
    wal.close().describe(dir)?;
    Ok((acks, elapsed, next_lsn))
}

/// What phase 2 saw.
#[derive(Debug)]
struct Killed {
    pid: u32,
    acks_at_kill: u64,
    acks: Vec<Ack>,
}

/// Kills the writer process if it is still running when dropped (an error
/// path), so that no writer outlives the demo or its directory.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Phase 2: the writer process, killed with SIGKILL mid-write.
fn phase_two(dir: &Path) -> anyhow::Result<Killed> {
    let exe = std::env::current_exe().context("finding the segwal binary to run the writer")?;
    let child = Command::new(exe)
        .arg("demo-writer")
        .arg(dir)
        .args(["--threads", &THREADS.to_string()])
        .args(["--segment-size", &SEGMENT_BYTES.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the writer process")?;
    let mut writer = Writer(child);
    let pid = writer.0.id();
    let stdout = writer.0.stdout.take().context("the writer's stdout")?;
    let (sender, receiver) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = parse_ack(&line)
                && sender.send(ack).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + KILL_AFTER_MAX;
    let mut acks = Vec::new();
    while (acks.len() as u64) < ACKS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(ack) => acks.push(ack),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = writer.0.wait().context("waiting for the writer")?;
                let mut stderr = String::new();
                if let Some(mut pipe) = writer.0.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                bail!(
                    "the writer process stopped by itself ({status}) after {} acknowledgements: {}",
                    acks.len(),
                    crate::error::one_line(&stderr)
                );
            }
        }
    }
    let acks_at_kill = acks.len() as u64;
    // `Child::kill` is SIGKILL on Unix.
    writer.0.kill().context("killing the writer")?;
    writer.0.wait().context("waiting for the killed writer")?;
    // Lines the writer printed before it died are acknowledgements too.
    if reader.join().is_err() {
        bail!("the thread reading the writer's acknowledgements panicked");
    }
    acks.extend(receiver.try_iter());
    Ok(Killed {
        pid,
        acks_at_kill,
        acks,
    })
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.split(' ');
    if words.next()? != "ack" {
        return None;
    }
    Some(Ack {
        lsn: words.next()?.parse().ok()?,
        thread: words.next()?.parse().ok()?,
        seq: words.next()?.parse().ok()?,
    })
}

/// What phase 3 found.
#[derive(Debug)]
struct Checked {
    open_time: Duration,
    tail: WalTailState,
    next_lsn: u64,
    lost: Vec<Ack>,
    segments: u64,
    records: u64,
    scan_clean: bool,
}

/// Phase 3: reopen, read back every acknowledged record, scan everything.
fn phase_three(dir: &Path, acks: &[Ack]) -> anyhow::Result<Checked> {
    let started = Instant::now();
    let mut wal = Wal::open_with(dir, &options()).describe(dir)?;
    let open_time = started.elapsed();
    let mut lost = Vec::new();
    let mut record = Vec::new();
    for ack in acks {
        let intact = wal.read_into(Lsn(ack.lsn), &mut record).is_ok()
            && record == payload(ack.thread, ack.seq);
        if !intact {
            lost.push(*ack);
        }
    }
    let report = wal.verify().describe(dir)?;
    let checked = Checked {
        open_time,
        tail: wal.tail_state(),
        next_lsn: wal.next_lsn().0,
        lost,
        segments: report.segments,
        records: report.records,
        scan_clean: report.is_clean(),
    };
    wal.close().describe(dir)?;
    Ok(checked)
}

/// Runs the hidden `demo-writer` command: `threads` threads append until
/// the demo kills the process, each printing `ack LSN THREAD SEQ` once its
/// record is durable.
///
/// # Errors
///
/// When the log cannot be opened or an append fails.
pub fn writer(dir: &Path, threads: u32, segment_size: u64) -> anyhow::Result<Outcome> {
    let options = WalOptions {
        segment_size_bytes: segment_size,
        ..WalOptions::default()
    };
    let wal = SharedWal::open(dir, &options).describe(dir)?;
    let deadline = Instant::now() + WRITER_TIME_MAX;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|index| {
                let wal = &wal;
                // Thread numbers after phase 1's, so payloads differ.
                let thread = THREADS + index;
                scope.spawn(move || -> anyhow::Result<()> {
                    for seq in 0..WRITER_RECORDS_PER_THREAD_MAX {
                        if Instant::now() > deadline {
                            break;
                        }
                        let lsn = wal.append(&payload(thread, seq)).describe(dir)?;
                        let mut stdout = std::io::stdout().lock();
                        if writeln!(stdout, "ack {} {thread} {seq}", lsn.0).is_err() {
                            // The demo is gone: nobody to acknowledge to.
                            break;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(result) => result?,
                Err(_) => bail!("an appending thread panicked"),
            }
        }
        Ok(())
    })?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_pure_and_distinct() {
        assert_eq!(payload(1, 2), payload(1, 2));
        assert_ne!(payload(1, 2), payload(2, 1));
        assert_eq!(payload(7, 123_456).len(), PAYLOAD_BYTES);
    }

    #[test]
    fn ack_lines_parse() {
        let ack = parse_ack("ack 12 5 7").expect("an ack line");
        assert_eq!((ack.lsn, ack.thread, ack.seq), (12, 5, 7));
        assert!(parse_ack("ack 12 5").is_none());
        assert!(parse_ack("hello").is_none());
    }
}
