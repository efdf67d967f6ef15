//! `segwal info`: what the log holds and in what state, read-only.

use std::io::Write;
use std::path::Path;

use indicatif::HumanBytes;
use serde::Serialize;

use crate::args::ReportFormat;
use crate::error::{Outcome, is_damage, segment_path};
use crate::log::{self, TailFinding};
use crate::records;
use crate::text::{checksum_name, describe_tail};

/// The report, as JSON prints it.
#[derive(Debug, Serialize)]
struct Info {
    dir: String,
    /// The writer holding the lock, when one holds it and recorded its pid.
    lock_holder_pid: Option<u32>,
    first_lsn: u64,
    next_lsn: u64,
    records: u64,
    /// The newest segment's checksum (new segments get the writer's).
    checksum: &'static str,
    tail: TailFinding,
    segments: Vec<Segment>,
}

/// One segment.
#[derive(Debug, Serialize)]
struct Segment {
    sequence: u64,
    file: String,
    first_lsn: u64,
    /// `None` for a segment without records yet.
    last_lsn: Option<u64>,
    records: u64,
    size_bytes: u32,
    /// Header and records, up to the end of the last record; `None` when
    /// a record header on the way is damaged (see `damage`).
    used_bytes: Option<u64>,
    fill_percent: Option<f64>,
    checksum: &'static str,
    /// Why the fill is unknown: a damaged record header (`segwal verify`
    /// checks every record; info only steps over their headers).
    damage: Option<String>,
}

/// Runs `segwal info`.
///
/// # Errors
///
/// A path that is not a log, a log that does not open, a failed read.
pub fn run(dir: &Path, format: ReportFormat, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut log = log::open_read_only(dir, None)?;
    let lock_holder_pid = log::lock_holder(dir)?;
    let tail = log::newest_tail(&mut log, dir)?;
    let next_lsn = log.next_lsn().0;
    let infos = log.segments().to_vec();
    let mut segments = Vec::with_capacity(infos.len());
    for (index, info) in infos.iter().enumerate() {
        let header = info.header;
        let end = infos
            .get(index + 1)
            .map_or(next_lsn, |next| next.header.base_lsn);
        let records = end.saturating_sub(header.base_lsn);
        let (used_bytes, damage) = match records::records_end(&mut log, dir, index) {
            Ok(used) => (Some(used), None),
            Err(error) if is_damage(&error) => (None, Some(format!("{error:#}"))),
            Err(error) => return Err(error),
        };
        let size_bytes = header.segment_size_bytes;
        segments.push(Segment {
            sequence: header.sequence,
            file: segment_path(dir, header.sequence).display().to_string(),
            first_lsn: header.base_lsn,
            last_lsn: (records > 0).then(|| end - 1),
            records,
            size_bytes,
            used_bytes,
            fill_percent: used_bytes.map(|used| percent(used, u64::from(size_bytes))),
            checksum: checksum_name(header.checksum_kind),
            damage,
        });
    }
    let info = Info {
        dir: dir.display().to_string(),
        lock_holder_pid,
        first_lsn: log.first_lsn().0,
        next_lsn,
        records: next_lsn - log.first_lsn().0,
        checksum: infos
            .last()
            .map_or("none", |info| checksum_name(info.header.checksum_kind)),
        tail,
        segments,
    };
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &info)?;
            writeln!(out)?;
        }
        ReportFormat::Text => print_text(out, &info)?,
    }
    Ok(Outcome::Success)
}

fn print_text(out: &mut dyn Write, info: &Info) -> anyhow::Result<()> {
    writeln!(out, "log        {}", info.dir)?;
    match info.lock_holder_pid {
        Some(pid) => writeln!(
            out,
            "lock       held by process {pid} (a writer is running)"
        )?,
        None => writeln!(out, "lock       free")?,
    }
    if info.records == 0 {
        writeln!(
            out,
            "records    none (the next append gets LSN {})",
            info.next_lsn
        )?;
    } else {
        writeln!(
            out,
            "records    {} (LSN {} to {}; the next append gets {})",
            info.records,
            info.first_lsn,
            info.next_lsn - 1,
            info.next_lsn
        )?;
    }
    writeln!(out, "checksum   {}", info.checksum)?;
    writeln!(out, "tail       {}", describe_tail(&info.tail))?;
    writeln!(out, "segments   {}", info.segments.len())?;
    writeln!(
        out,
        "  {:>8}  {:>10}  {:>10}  {:>8}  {:>11}  {:>11}  {:>6}  checksum",
        "sequence", "first LSN", "last LSN", "records", "size", "used", "fill"
    )?;
    for segment in &info.segments {
        let last = segment
            .last_lsn
            .map_or_else(|| "-".to_owned(), |lsn| lsn.to_string());
        let used = segment
            .used_bytes
            .map_or_else(|| "?".to_owned(), |used| HumanBytes(used).to_string());
        let fill = segment
            .fill_percent
            .map_or_else(|| "?".to_owned(), |fill| format!("{fill:.1}%"));
        writeln!(
            out,
            "  {:>8}  {:>10}  {:>10}  {:>8}  {:>11}  {:>11}  {:>6}  {}",
            segment.sequence,
            segment.first_lsn,
            last,
            segment.records,
            HumanBytes(u64::from(segment.size_bytes)).to_string(),
            used,
            fill,
            segment.checksum
        )?;
    }
    for segment in &info.segments {
        if let Some(damage) = &segment.damage {
            writeln!(out, "damaged    {damage}")?;
        }
    }
    Ok(())
}

/// `part` as a percentage of `whole`, one decimal.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Display only: the precision lost above 2^53 bytes is irrelevant.
    #[allow(clippy::cast_precision_loss)]
    let ratio = part as f64 / whole as f64;
    (ratio * 1000.0).round() / 10.0
}
