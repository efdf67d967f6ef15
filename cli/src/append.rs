//! `segwal append`: records from stdin, one per line or length-prefixed,
//! durable when the command succeeds.
//!
//! Records are appended with manual durability and synced every
//! [`SYNC_EVERY_RECORDS`] records and at the end: one fdatasync per group
//! instead of one per line. They are not one atomic batch: after a crash,
//! a prefix of them is in the log. On an error, what was appended before it
//! is synced and counted in the message.

use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use segwal::{
    Durability, Geometry, SegmentConfig, SegmentIdentity, SegmentStore, read_segment_header,
};
use segwal_std::{AccessMode, DirStore, Wal, WalOptions};

use crate::error::{Describe, Outcome, describe_io};
use crate::text;

/// Records appended between two syncs.
const SYNC_EVERY_RECORDS: u64 = 4096;

/// Runs `segwal append`.
///
/// # Errors
///
/// A path that is a file, a directory with other files but no segment, a
/// locked or damaged log, a record too large for a segment, input that ends
/// inside a length-prefixed record, a failed write or sync.
pub fn run(
    dir: &Path,
    length_prefixed: bool,
    segment_size: Option<u64>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let existing = check_target(dir)?;
    let mut options = WalOptions {
        durability: Durability::Manual,
        // A short-lived writer: preparing a segment ahead would only make
        // the close wait for it.
        prepare_next_segment: false,
        ..WalOptions::default()
    };
    if let Some(header) = existing {
        options.segment_size_bytes = u64::from(header.segment_size_bytes);
        options.checksum_kind = header.checksum_kind;
    }
    if let Some(size) = segment_size {
        check_segment_size(size)?;
        options.segment_size_bytes = size;
    }
    let mut wal = Wal::open_with(dir, &options).describe(dir)?;
    let record_len_max = options.segment_size_bytes;
    let first = wal.next_lsn().0;
    let appended = append_all(&mut wal, dir, length_prefixed, record_len_max, input);
    let synced = wal.sync().describe(dir);
    let count = wal.next_lsn().0 - first;
    let outcome = appended.and(synced);
    if let Err(error) = outcome {
        let before = match count {
            0 => "nothing was appended".to_owned(),
            _ => format!(
                "{} before it durable: LSN {first} to {}",
                text::count(count, "record"),
                first + count - 1
            ),
        };
        return Err(anyhow::anyhow!("{error:#} ({before})"));
    }
    wal.close().describe(dir)?;
    match count {
        0 => writeln!(out, "appended no records (stdin was empty)")?,
        _ => writeln!(
            out,
            "appended {}, durable: LSN {first} to {}",
            text::count(count, "record"),
            first + count - 1
        )?,
    }
    Ok(Outcome::Success)
}

/// Refuses a segment size the log cannot lay out, before anything is
/// created: the log finds out only after it has allocated the first file.
fn check_segment_size(size_bytes: u64) -> anyhow::Result<()> {
    let rule = "a multiple of 8 bytes, from 80 (a 64-byte header and one 16-byte record header) \
                to 4 GiB - 8";
    let Ok(size) = u32::try_from(size_bytes) else {
        bail!("--segment-size {size_bytes}: too large; a segment is {rule}");
    };
    let identity = SegmentIdentity::first(1, segwal::FIRST_LSN, 0);
    let geometry = Geometry::byte_addressable(u64::from(size));
    if let Err(error) = SegmentConfig::new(size).header(&geometry, identity) {
        bail!("--segment-size {size_bytes}: {error}; a segment is {rule}");
    }
    Ok(())
}

/// What `dir` holds: `Some(newest segment header)` for an existing log,
/// `None` for a missing or empty directory (a new log).
fn check_target(dir: &Path) -> anyhow::Result<Option<segwal::SegmentHeader>> {
    match fs::metadata(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => bail!("{}", describe_io(dir, &error)),
        Ok(metadata) if !metadata.is_dir() => {
            bail!("{}: is a file, not a log directory", dir.display())
        }
        Ok(_) => {}
    }
    if segwal_std::is_log_dir(dir).describe(dir)? {
        return Ok(newest_header(dir));
    }
    let mut entries = fs::read_dir(dir).map_err(|e| anyhow::anyhow!(describe_io(dir, &e)))?;
    if entries.next().is_some() {
        bail!(
            "{}: not a segwal log (no segment files `*.seg` in it, but other files); \
             append creates a log only in a missing or empty directory",
            dir.display()
        );
    }
    Ok(None)
}

/// The newest segment's header, read without opening the log; `None` when
/// it cannot be read (the open then says why).
fn newest_header(dir: &Path) -> Option<segwal::SegmentHeader> {
    let mut store = DirStore::open(dir, AccessMode::ReadOnly).ok()?;
    let mut newest = None;
    store
        .segment_ids(&mut |id| newest = newest.max(Some(id)))
        .ok()?;
    let (device, start) = store.device(newest?).ok()?;
    read_segment_header(device, start).ok()
}

fn append_all(
    wal: &mut Wal,
    dir: &Path,
    length_prefixed: bool,
    record_len_max: u64,
    input: &mut dyn BufRead,
) -> anyhow::Result<()> {
    let mut record = Vec::new();
    let mut since_sync = 0;
    // One record per pass; input ends the loop (stdin is finite or
    // interrupted), and each record is bounded by the segment size.
    for number in 1u64.. {
        record.clear();
        let more = if length_prefixed {
            read_prefixed(input, &mut record, record_len_max, number)?
        } else {
            read_line(input, &mut record, record_len_max, number)?
        };
        if !more {
            return Ok(());
        }
        wal.append(&record)
            .describe(dir)
            .with_context(|| format!("record {number} of stdin"))?;
        since_sync += 1;
        if since_sync == SYNC_EVERY_RECORDS {
            wal.sync().describe(dir)?;
            since_sync = 0;
        }
    }
    Ok(())
}

/// Reads one line into `record`, without its `\n`; `false` at the end of
/// input.
fn read_line(
    input: &mut dyn BufRead,
    record: &mut Vec<u8>,
    len_max: u64,
    number: u64,
) -> anyhow::Result<bool> {
    // One byte over the limit (plus the newline) tells a line that is too
    // long, without reading all of it.
    let read = (&mut *input)
        .take(len_max + 2)
        .read_until(b'\n', record)
        .context("reading stdin")?;
    if read == 0 {
        return Ok(false);
    }
    if record.last() == Some(&b'\n') {
        record.pop();
    }
    if record.len() as u64 > len_max {
        bail!("line {number} of stdin is longer than a segment ({len_max} bytes)");
    }
    Ok(true)
}

/// Reads one length-prefixed record into `record`; `false` at the end of
/// input.
fn read_prefixed(
    input: &mut dyn BufRead,
    record: &mut Vec<u8>,
    len_max: u64,
    number: u64,
) -> anyhow::Result<bool> {
    let mut prefix = [0u8; 4];
    let got = read_full(input, &mut prefix)?;
    if got == 0 {
        return Ok(false);
    }
    if got < prefix.len() {
        bail!("stdin ends inside the length of record {number} ({got} of 4 bytes)");
    }
    let len = u32::from_le_bytes(prefix);
    if u64::from(len) > len_max {
        bail!("record {number} of stdin is {len} bytes, more than a segment ({len_max} bytes)");
    }
    record.resize(len as usize, 0);
    let got = read_full(input, record)?;
    if got < record.len() {
        bail!("stdin ends inside record {number} ({got} of {len} bytes)");
    }
    Ok(true)
}

/// Reads until `buf` is full or the input ends; how many bytes it got.
fn read_full(input: &mut dyn BufRead, buf: &mut [u8]) -> anyhow::Result<usize> {
    let mut got = 0;
    // Each pass reads at least one byte or ends.
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error).context("reading stdin"),
        }
    }
    Ok(got)
}
