//! `segwal dump`: records with their LSN, segment, offset and length,
//! read-only.

use std::io::Write;
use std::path::Path;

use crate::args::RecordFormat;
use crate::error::Outcome;
use crate::log;
use crate::records;

/// Runs `segwal dump`: the records from `from` to `to`, both inclusive and
/// both clamped to the log.
///
/// # Errors
///
/// A path that is not a log, a damaged record (after the records before it
/// were printed), a failed read or write.
pub fn run(
    dir: &Path,
    from: Option<u64>,
    to: Option<u64>,
    format: RecordFormat,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let mut log = log::open_read_only(dir, None)?;
    let start = from.unwrap_or(0).max(log.first_lsn().0);
    let end = to.map_or(u64::MAX, |to| to.saturating_add(1));
    records::walk(&mut log, dir, start..end, None, &mut |place, payload| {
        records::print_record(out, format, place, payload)
    })?;
    Ok(Outcome::Success)
}
